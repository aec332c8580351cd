package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/fanoutd/fanoutd/checkpoint"
	"github.com/fanoutd/fanoutd/config"
	"github.com/fanoutd/fanoutd/fanout"
	"github.com/fanoutd/fanoutd/relay"
)

// daemonHooks lets `fanoutd demo` run the daemon against an in-process
// emulator, and tests observe it.
type daemonHooks struct {
	caBundle    []byte
	credentials aws.CredentialsProvider
	// started is called once every stream consumer runs.
	started func(consumers []*fanout.StreamConsumer, pub *relay.Publisher)
}

// runDaemon relays every configured stream until ctx ends, then shuts down in
// order: stop reading, let in-flight batches finish (bounded), write final
// checkpoints, drain NATS. It returns nil after a clean shutdown, and an
// error (exit non-zero, so systemd restarts it) when it can't start or a
// stream fails.
func runDaemon(ctx context.Context, cfg *config.Config, log zerolog.Logger, hooks daemonHooks) error {
	store, err := checkpoint.NewFileStore(cfg.Checkpoint.Dir)
	if err != nil {
		return fmt.Errorf("checkpoint store: %w", err)
	}
	defer store.Close()

	subjects := map[string]*relay.SubjectTemplate{}
	for i, s := range cfg.Streams {
		t, err := relay.ParseSubjectTemplate(s.Subject)
		if err != nil {
			return usageError{fmt.Errorf("streams[%d].subject: %w", i, err)}
		}
		subjects[s.StreamName()] = t
	}

	nc, err := relay.Connect(ctx, cfg.NATS, log.With().Str("component", "nats").Logger())
	if err != nil {
		return err
	}
	defer nc.Close()
	if cfg.NATS.JetStream {
		if err := prepareJetStream(ctx, nc, cfg, subjects, log); err != nil {
			return err
		}
	}
	pub, err := relay.NewPublisher(nc, subjects, relay.Options{
		JetStream:         cfg.NATS.JetStream,
		PublishTimeout:    time.Duration(cfg.NATS.PublishTimeout),
		Oversize:          cfg.NATS.Oversize,
		DeadLetterSubject: cfg.NATS.DeadLetterSubject,
		Log:               log.With().Str("component", "relay").Logger(),
	})
	if err != nil {
		return err
	}

	kc, err := fanout.NewClient(ctx, fanout.ClientOptions{
		Region:      cfg.AWS.Region,
		Profile:     cfg.AWS.Profile,
		Endpoint:    cfg.AWS.Endpoint,
		CABundle:    hooks.caBundle,
		Credentials: hooks.credentials,
	})
	if err != nil {
		return err
	}

	timers := fanout.Timers{
		IdleTimeout:            time.Duration(cfg.Timers.IdleTimeout),
		ShardSyncInterval:      time.Duration(cfg.Timers.ShardSyncInterval),
		MinResubscribeInterval: time.Duration(cfg.Timers.MinResubscribeInterval),
		BackoffInitial:         time.Duration(cfg.Timers.BackoffInitial),
		BackoffMax:             time.Duration(cfg.Timers.BackoffMax),
		ConsumerPollInitial:    time.Duration(cfg.Timers.ConsumerPollInitial),
		ConsumerPollMax:        time.Duration(cfg.Timers.ConsumerPollMax),
		ConsumerActiveTimeout:  time.Duration(cfg.Timers.ConsumerActiveTimeout),
		ShutdownTimeout:        time.Duration(cfg.Timers.ShutdownTimeout),
		CheckpointInterval:     time.Duration(cfg.Checkpoint.Interval),
	}
	var consumers []*fanout.StreamConsumer
	for _, s := range cfg.Streams {
		consumers = append(consumers, fanout.NewStreamConsumer(fanout.StreamSpec{
			Name:                s.StreamName(),
			ARN:                 s.ARN,
			Consumer:            s.Consumer,
			ConsumerARN:         s.ConsumerARN,
			StartPosition:       string(s.StartPosition),
			StartTimestamp:      s.StartTime(),
			OnExpiredCheckpoint: s.OnExpiredCheckpoint,
		}, fanout.Options{Client: kc, Checkpoints: store, Handler: pub, Timers: timers, Log: log}))
	}

	log.Info().Int("streams", len(consumers)).Bool("jetstream", cfg.NATS.JetStream).Msg("fanoutd starting")
	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	var mu sync.Mutex
	running := len(consumers)
	for _, c := range consumers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := c.Run(runCtx)
			if err == nil {
				return
			}
			mu.Lock()
			running--
			left := running
			mu.Unlock()
			if errors.Is(err, fanout.ErrStreamNotFound) && left > 0 {
				// A deleted stream stops alone; the others keep running.
				log.Error().Err(err).Str("stream", c.Name()).Int("streams_running", left).Msg("stream stopped")
				return
			}
			log.Error().Err(err).Str("stream", c.Name()).Msg("stream failed")
			cancel(err)
		}()
	}
	if hooks.started != nil {
		hooks.started(consumers, pub)
	}
	<-runCtx.Done()
	if ctx.Err() != nil {
		log.Info().Msg("shutting down: finishing in-flight batches")
	}
	wg.Wait()
	drainNATS(nc, time.Duration(cfg.Timers.ShutdownTimeout), log)
	st := pub.Stats()
	log.Info().Uint64("published", st.Published).Uint64("dead_lettered", st.DeadLettered).Msg("fanoutd stopped")
	if err := context.Cause(runCtx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// restartAllowance is the time a restart after a crash is assumed to take
// (systemd's RestartSec plus start-up), part of the worst replay gap.
const restartAllowance = time.Minute

// prepareJetStream creates or checks nats.stream, then makes sure a stream
// captures every subject fanoutd publishes to, and warns when its duplicate
// window can't hide the replay after a crash.
func prepareJetStream(ctx context.Context, nc *nats.Conn, cfg *config.Config, subjects map[string]*relay.SubjectTemplate, log zerolog.Logger) error {
	if cfg.NATS.Stream.Name != "" {
		if err := relay.EnsureStream(ctx, nc, cfg.NATS.Stream, log); err != nil {
			return err
		}
	}
	consumers := map[string]string{}
	dl := map[string]*relay.SubjectTemplate{}
	dlt, err := relay.ParseSubjectTemplate(cfg.NATS.DeadLetterSubject)
	if err != nil {
		return usageError{fmt.Errorf("nats.dead_letter_subject: %w", err)}
	}
	for _, s := range cfg.Streams {
		consumers[s.StreamName()] = s.Consumer
		dl[s.StreamName()] = dlt
	}
	consumer := func(stream string) string { return consumers[stream] }
	samples := append(relay.SampleSubjects(subjects, consumer), relay.SampleSubjects(dl, consumer)...)
	window, err := relay.CheckCapture(ctx, nc, samples)
	if err != nil {
		return err
	}
	if gap := time.Duration(cfg.Checkpoint.Interval) + restartAllowance; window > 0 && window < gap {
		log.Warn().Dur("duplicate_window", window).Dur("worst_replay_gap", gap).
			Msg("the JetStream duplicate window is shorter than the worst replay gap (checkpoint.interval plus a restart): records replayed after a crash may be stored twice")
	}
	return nil
}

// drainNATS flushes what is buffered and closes the connection, within d.
func drainNATS(nc *nats.Conn, d time.Duration, log zerolog.Logger) {
	closed := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	if err := nc.Drain(); err != nil {
		nc.Close()
		return
	}
	select {
	case <-closed:
	case <-time.After(d):
		log.Warn().Dur("timeout", d).Msg("NATS drain timed out")
		nc.Close()
	}
}
