package daemon

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/fanoutd/fanoutd/config"
	"github.com/fanoutd/fanoutd/relay"
)

// restartAllowance is the time a restart after a crash is assumed to take
// (systemd's RestartSec plus start-up), part of the worst replay gap.
const restartAllowance = time.Minute

// prepareJetStream creates or checks nats.stream, then makes sure a stream
// captures every subject fanoutd publishes to, creating the dead-letter
// stream (nats.dead_letter_stream) when none captures the dead letters, and
// warns when the duplicate window can't hide the replay after a crash. It
// runs at start and before a reload is applied. Missing permission to
// create the dead-letter stream is a ConfigError.
func prepareJetStream(ctx context.Context, nc *nats.Conn, cfg *config.Config, subjects map[string]*relay.SubjectTemplate, log zerolog.Logger) error {
	if cfg.NATS.Stream.Name != "" {
		if err := relay.EnsureStream(ctx, nc, cfg.NATS.Stream.Spec(), log); err != nil {
			return err
		}
	}
	consumers := map[string]string{}
	dl := map[string]*relay.SubjectTemplate{}
	dlt, err := relay.ParseSubjectTemplate(cfg.NATS.DeadLetterSubject)
	if err != nil {
		return &ConfigError{fmt.Errorf("nats.dead_letter_subject: %w", err)}
	}
	for _, s := range cfg.Streams {
		consumers[s.StreamName()] = s.Consumer
		dl[s.StreamName()] = dlt
	}
	consumer := func(stream string) string { return consumers[stream] }
	window, err := relay.CheckCapture(ctx, nc, relay.SampleSubjects(subjects, consumer))
	if err != nil {
		return err
	}
	// No stream for the dead letters: create one, as Kafka Connect creates
	// its dead-letter topic.
	dlSamples := relay.SampleSubjects(dl, consumer)
	var notCaptured *relay.NotCapturedError
	if _, err := relay.CheckCapture(ctx, nc, dlSamples); errors.As(err, &notCaptured) {
		if err := relay.EnsureDeadLetterStream(ctx, nc, cfg.NATS.DeadLetterStream.Spec(), []string{dlt.FilterSubject()}, log); err != nil {
			if errors.Is(err, relay.ErrJetStreamPermission) {
				return &ConfigError{err}
			}
			return err
		}
		if _, err := relay.CheckCapture(ctx, nc, dlSamples); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	if gap := time.Duration(cfg.Checkpoint.Interval) + restartAllowance; window > 0 && window < gap {
		log.Warn().Str("duplicate_window", window.String()).Str("worst_replay_gap", gap.String()).
			Msg("the JetStream duplicate window is shorter than the worst replay gap (checkpoint.interval plus a restart): records replayed after a crash may be stored twice")
	}
	return nil
}
