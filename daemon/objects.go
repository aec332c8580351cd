package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/fanoutd/fanoutd/config"
	"github.com/fanoutd/fanoutd/jsassets"
	"github.com/fanoutd/fanoutd/record"
	"github.com/fanoutd/fanoutd/relay"
)

// prepareObjectStore returns the policy for large records, and the Object
// Store bucket with nats.large_records: object_store. With
// nats.jetstream: true the bucket is opened, or created, at start. In core
// mode it is opened at start if it exists, else created at the first large
// record (objectStoreOnDemand): core NATS users may never have one, and
// their JetStream keeps nothing of fanoutd's until then. Core mode on a
// server without JetStream applies dead_letter instead, said loudly: such
// records then carry no data. Missing permission for the bucket is a
// ConfigError.
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
		spec.OpenOnly = true
	}
	obs, err := jsassets.EnsureObjectStore(ctx, nc, spec, log)
	switch {
	case errors.Is(err, jsassets.ErrNoJetStream) && !cfg.NATS.JetStream:
		log.Warn().Err(err).Int64("max_payload", nc.MaxPayload()).
			Str("effect", "records too big for one message become dead letters (metadata only)").
			Str("hint", "enable JetStream on the server, or set nats.large_records: dead_letter (or fail) to silence this").
			Msg("no Object Store for large records: the NATS server has no JetStream")
		return relay.OversizeDeadLetter, nil, nil
	case errors.Is(err, jsassets.ErrBucketMissing):
		log.Info().Str("bucket", spec.Bucket).Int64("max_payload", nc.MaxPayload()).
			Msg("Object Store bucket for large records: created at the first record too big for one message")
		spec.OpenOnly = false
		return policy, &objectStoreOnDemand{nc: nc, spec: spec, log: log, sem: make(chan struct{}, 1)}, nil
	case errors.Is(err, jsassets.ErrJetStreamPermission):
		return "", nil, &ConfigError{err}
	case err != nil:
		return "", nil, err
	}
	return policy, obs, nil
}

// objectStoreOnDemand is the Object Store bucket of large records, created
// at the first call. Shards that meet their first large record at once wait
// for one creation (bounded by their contexts); a creation that fails fails
// their batches, which are replayed and try again. Missing permission stops
// the stream (record.ErrStop): no replay cures it.
type objectStoreOnDemand struct {
	nc   *nats.Conn
	spec jsassets.ObjectStoreSpec
	log  zerolog.Logger
	sem  chan struct{} // held while the bucket is being created
	obs  atomic.Pointer[jetstream.ObjectStore]
}

var _ relay.ObjectStore = (*objectStoreOnDemand)(nil)

// open returns the bucket, creating it at the first call that succeeds.
func (o *objectStoreOnDemand) open(ctx context.Context) (jetstream.ObjectStore, error) {
	if obs := o.obs.Load(); obs != nil {
		return *obs, nil
	}
	select {
	case o.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for the Object Store bucket %s: %w", o.spec.Bucket, ctx.Err())
	}
	defer func() { <-o.sem }()
	if obs := o.obs.Load(); obs != nil {
		return *obs, nil
	}
	o.log.Info().Str("bucket", o.spec.Bucket).Msg("first large record: creating the Object Store bucket")
	obs, err := jsassets.EnsureObjectStore(ctx, o.nc, o.spec, o.log)
	if errors.Is(err, jsassets.ErrJetStreamPermission) {
		return nil, fmt.Errorf("%w: %w", record.ErrStop, err)
	}
	if err != nil {
		return nil, err
	}
	o.obs.Store(&obs)
	return obs, nil
}

func (o *objectStoreOnDemand) Put(ctx context.Context, meta jetstream.ObjectMeta, r io.Reader) (*jetstream.ObjectInfo, error) {
	obs, err := o.open(ctx)
	if err != nil {
		return nil, err
	}
	return obs.Put(ctx, meta, r)
}

func (o *objectStoreOnDemand) GetInfo(ctx context.Context, name string, opts ...jetstream.GetObjectInfoOpt) (*jetstream.ObjectInfo, error) {
	obs, err := o.open(ctx)
	if err != nil {
		return nil, err
	}
	return obs.GetInfo(ctx, name, opts...)
}
