package daemon

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/fanoutd/fanoutd/config"
	"github.com/fanoutd/fanoutd/jsassets"
	"github.com/fanoutd/fanoutd/relay"
)

// restartAllowance is the time a restart after a crash is assumed to take
// (systemd's RestartSec plus start-up), part of the worst replay gap.
const restartAllowance = time.Minute

// prepareJetStream creates or checks nats.stream, then makes sure a stream
// captures every subject fanoutd publishes to, creating the dead-letter
// stream (nats.dead_letter_stream) when none captures the dead letters, and
// warns when the duplicate window can't hide the replay after a crash. It
// runs at start and before a reload is applied. Record subjects no stream
// captures, and missing permission to create the dead-letter stream, are
// ConfigErrors. It returns whether the records may go in fast batches
// (nats.batch_publish, and every stream capturing their subjects allows
// it), and says why not when not.
func prepareJetStream(ctx context.Context, nc *nats.Conn, cfg *config.Config, subjects map[string]*relay.SubjectTemplate, log zerolog.Logger) (bool, error) {
	if cfg.NATS.Stream.Name != "" {
		if err := jsassets.EnsureStream(ctx, nc, cfg.NATS.Stream.Spec(), log); noJetStream(err) {
			return false, &ConfigError{fmt.Errorf("nats.stream: %w: enable JetStream on the server (or for fanoutd's account), or set nats.jetstream: false", err)}
		} else if err != nil {
			return false, err
		}
	}
	consumers := map[string]string{}
	dl := map[string]*relay.SubjectTemplate{}
	dlt, err := relay.ParseSubjectTemplate(cfg.NATS.DeadLetterSubject)
	if err != nil {
		return false, &ConfigError{fmt.Errorf("nats.dead_letter_subject: %w", err)}
	}
	for _, s := range cfg.Streams {
		consumers[s.StreamName()] = s.Consumer
		dl[s.StreamName()] = dlt
	}
	consumer := func(stream string) string { return consumers[stream] }
	capture, err := jsassets.CheckCapture(ctx, nc, relay.SampleSubjects(subjects, consumer))
	if _, ok := errors.AsType[*jsassets.NotCapturedError](err); ok {
		return false, &ConfigError{err}
	} else if noJetStream(err) {
		return false, &ConfigError{fmt.Errorf("%w: enable JetStream on the server (or for fanoutd's account), or set nats.jetstream: false", err)}
	} else if err != nil {
		return false, err
	}
	// No stream for the dead letters: create one, as Kafka Connect creates
	// its dead-letter topic.
	dlSamples := relay.SampleSubjects(dl, consumer)
	var notCaptured *jsassets.NotCapturedError
	if _, err := jsassets.CheckCapture(ctx, nc, dlSamples); errors.As(err, &notCaptured) {
		if err := jsassets.EnsureDeadLetterStream(ctx, nc, cfg.NATS.DeadLetterStream.Spec(), []string{dlt.FilterSubject()}, log); err != nil {
			if errors.Is(err, jsassets.ErrJetStreamPermission) {
				return false, &ConfigError{err}
			}
			return false, err
		}
		if _, err := jsassets.CheckCapture(ctx, nc, dlSamples); err != nil {
			return false, err
		}
	} else if err != nil {
		return false, err
	}
	if gap := time.Duration(cfg.Checkpoint.Interval) + restartAllowance; capture.Window > 0 && capture.Window < gap {
		log.Warn().Str("duplicate_window", capture.Window.String()).Str("worst_replay_gap", gap.String()).
			Str("hint", "the worst replay gap is checkpoint.interval plus a restart: records replayed after a crash may be stored twice").
			Msg("JetStream duplicate window shorter than the worst replay gap")
	}
	if !cfg.NATS.BatchPublish {
		return false, nil
	}
	switch {
	case len(capture.Unbatched) > 0:
		log.Info().Strs("jetstream_streams", capture.Unbatched).Str("reason", "these streams do not allow batch publishing (allow_batched)").
			Str("hint", "allow it for about half the CPU per record, or set nats.batch_publish: false to silence this").
			Msg("publishing message by message, a PubAck each")
	case !capture.Batched:
		log.Info().Str("server_version", nc.ConnectedServerVersion()).Str("reason", "batch publishing needs nats-server 2.14 or later").
			Msg("publishing message by message, a PubAck each")
	}
	return capture.Batched, nil
}

// noJetStream reports whether the server answered that it has no
// JetStream, or none for fanoutd's account. (A server without JetStream
// may also just not answer: a timeout, which a busy cluster gives too, so
// that is not taken for one.)
func noJetStream(err error) bool {
	return errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount)
}
