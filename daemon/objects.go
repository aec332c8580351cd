package daemon

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/fanoutd/fanoutd/config"
	"github.com/fanoutd/fanoutd/jsassets"
	"github.com/fanoutd/fanoutd/relay"
)

// prepareObjectStore opens (creating it if missing) the Object Store bucket
// of large records when nats.large_records is object_store, and returns the
// policy that applies with it: object_store, or dead_letter when the NATS
// server has no JetStream (said loudly: such records then carry no data).
// Missing permission for the bucket is a ConfigError.
func prepareObjectStore(ctx context.Context, nc *nats.Conn, cfg *config.Config, log zerolog.Logger) (relay.OversizePolicy, relay.ObjectStore, error) {
	policy := cfg.NATS.LargeRecordPolicy()
	if cfg.NATS.Oversize != "" {
		log.Warn().Str("oversize", string(cfg.NATS.Oversize)).Str("hint", "rename it nats.large_records (it still applies)").
			Msg("nats.oversize is deprecated")
	}
	if policy != relay.OversizeObjectStore {
		return policy, nil, nil
	}
	spec := cfg.NATS.ObjectStore.Spec()
	if !cfg.NATS.JetStream {
		// Core mode on a server that may have no JetStream: do not hold
		// the start for long when nothing answers.
		spec.Probe = 2 * time.Second
	}
	obs, err := jsassets.EnsureObjectStore(ctx, nc, spec, log)
	switch {
	case errors.Is(err, jsassets.ErrNoJetStream) && !cfg.NATS.JetStream:
		log.Warn().Err(err).Int64("max_payload", nc.MaxPayload()).
			Str("effect", "records too big for one message become dead letters (metadata only)").
			Str("hint", "enable JetStream on the server, or set nats.large_records: dead_letter (or fail) to silence this").
			Msg("no Object Store for large records: the NATS server has no JetStream")
		return relay.OversizeDeadLetter, nil, nil
	case errors.Is(err, jsassets.ErrJetStreamPermission):
		return "", nil, &ConfigError{err}
	case err != nil:
		return "", nil, err
	}
	return policy, obs, nil
}
