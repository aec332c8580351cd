package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/fanoutd/fanoutd/checkpoint"
	"github.com/fanoutd/fanoutd/config"
	"github.com/fanoutd/fanoutd/fanout"
	"github.com/fanoutd/fanoutd/monitor"
	"github.com/fanoutd/fanoutd/relay"
)

// daemonHooks lets `fanoutd demo` run the daemon against an in-process
// emulator, and `fanoutd run` pass its reload signal and log level.
type daemonHooks struct {
	caBundle    []byte
	credentials aws.CredentialsProvider
	// configPath is reloaded on every value from reload (SIGHUP).
	configPath string
	reload     <-chan struct{}
	// level, when set, is the logger's level switch (log.level reloads).
	level *levelSwitch
}

// runningStream is one stream's consumer and how to stop it.
type runningStream struct {
	cfg      config.StreamConfig
	consumer *fanout.StreamConsumer
	cancel   context.CancelFunc
	done     chan struct{}
}

// daemon is a running relay: the shared parts (checkpoint store, NATS,
// publisher, Kinesis client, monitor) and one consumer per stream.
type daemon struct {
	log      zerolog.Logger
	hooks    daemonHooks
	store    checkpoint.Store
	nc       *nats.Conn
	pub      *relay.Publisher
	kc       *kinesis.Client
	mon      *monitor.Monitor
	notifier *monitor.Notifier
	httpAddr string
	failed   chan streamFailure

	mu      sync.Mutex
	cfg     *config.Config
	streams map[string]*runningStream
	// stopped are the streams that stopped alone (deleted), with why, for
	// /status and the metrics, until a reload starts them again.
	stopped map[string]string
}

type streamFailure struct {
	name string
	rs   *runningStream
	err  error
}

// runDaemon relays every configured stream until ctx ends, then shuts down in
// order: stop reading, let in-flight batches finish (bounded), write final
// checkpoints, drain NATS. It returns nil after a clean shutdown, and an
// error (exit non-zero, so systemd restarts it) when it can't start or a
// stream fails.
func runDaemon(ctx context.Context, cfg *config.Config, log zerolog.Logger, hooks daemonHooks) error {
	d := &daemon{log: log, hooks: hooks, cfg: cfg, streams: map[string]*runningStream{}, stopped: map[string]string{}, failed: make(chan streamFailure, 16)}
	store, err := checkpoint.NewFileStore(cfg.Checkpoint.Dir)
	if err != nil {
		return fmt.Errorf("checkpoint store: %w", err)
	}
	d.store = store
	defer store.Close()

	subjects, err := subjectTemplates(cfg)
	if err != nil {
		return usageError{err}
	}
	d.mon = monitor.New(monitor.Sources{Shards: d.shards}, time.Duration(cfg.Timers.StallTimeout), Version())
	d.notifier = monitor.NewNotifier(d.mon, log)

	if cfg.HTTP.Listen != "" {
		stopHTTP, err := d.serveHTTP(cfg.HTTP.Listen)
		if err != nil {
			return err
		}
		defer stopHTTP()
	}

	nc, err := relay.Connect(ctx, cfg.NATS, log.With().Str("component", "nats").Logger())
	if err != nil {
		return err
	}
	d.nc = nc
	defer nc.Close()
	if cfg.NATS.JetStream {
		if err := prepareJetStream(ctx, nc, cfg, subjects, log); err != nil {
			return err
		}
	}
	d.pub, err = relay.NewPublisher(nc, subjects, relay.Options{
		JetStream:         cfg.NATS.JetStream,
		PublishTimeout:    time.Duration(cfg.NATS.PublishTimeout),
		Oversize:          cfg.NATS.Oversize,
		DeadLetterSubject: cfg.NATS.DeadLetterSubject,
		Log:               log.With().Str("component", "relay").Logger(),
		Observe:           d.mon.ObservePublish,
	})
	if err != nil {
		return err
	}
	d.mon.SetSources(monitor.Sources{Shards: d.shards, Publisher: d.pub.Stats, PublisherStreams: d.pub.StreamStats, NATSConnected: nc.IsConnected, Streams: d.streamNames, StoppedStreams: d.stoppedStreams})

	d.kc, err = fanout.NewClient(ctx, fanout.ClientOptions{
		Region:      cfg.AWS.Region,
		Profile:     cfg.AWS.Profile,
		Endpoint:    cfg.AWS.Endpoint,
		CABundle:    hooks.caBundle,
		Credentials: hooks.credentials,
	})
	if err != nil {
		return err
	}

	log.Info().Int("streams", len(cfg.Streams)).Bool("jetstream", cfg.NATS.JetStream).Str("version", Version()).Msg("fanoutd starting")
	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	d.mu.Lock()
	for _, s := range cfg.Streams {
		d.startStreamLocked(runCtx, s)
	}
	d.mu.Unlock()
	d.mon.SetStarted()
	notifyCtx, stopNotify := context.WithCancel(context.Background())
	notifyDone := make(chan struct{})
	go func() { defer close(notifyDone); d.notifier.Run(notifyCtx) }()

loop:
	for {
		select {
		case <-runCtx.Done():
			break loop
		case <-hooks.reload:
			d.reload(runCtx)
		case f := <-d.failed:
			if d.streamFailed(f) {
				cancel(f.err)
			}
		}
	}
	if ctx.Err() != nil {
		log.Info().Msg("shutting down: finishing in-flight batches")
	}
	d.notifier.Stopping()
	d.mon.SetStopping()
	d.stopAll()
	stopNotify()
	<-notifyDone
	drainNATS(nc, time.Duration(cfg.Timers.ShutdownTimeout), log)
	st := d.pub.Stats()
	log.Info().Uint64("published", st.Published).Uint64("dead_lettered", st.DeadLettered).Msg("fanoutd stopped")
	if err := context.Cause(runCtx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

func subjectTemplates(cfg *config.Config) (map[string]*relay.SubjectTemplate, error) {
	subjects := map[string]*relay.SubjectTemplate{}
	for i, s := range cfg.Streams {
		t, err := relay.ParseSubjectTemplate(s.Subject)
		if err != nil {
			return nil, fmt.Errorf("streams[%d].subject: %w", i, err)
		}
		subjects[s.StreamName()] = t
	}
	return subjects, nil
}

// serveHTTP starts the HTTP endpoint and returns how to stop it.
func (d *daemon) serveHTTP(addr string) (func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("http.listen %s: %w", addr, err)
	}
	d.httpAddr = ln.Addr().String()
	srv := monitor.NewServer(d.mon.Handler(), monitor.DefaultServerOptions())
	go srv.Serve(ln)
	d.log.Info().Str("addr", d.httpAddr).Msg("HTTP endpoint listening: /metrics /healthz /readyz /status")
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}, nil
}

// streamNames are the streams being consumed (monitor source).
func (d *daemon) streamNames() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Collect(maps.Keys(d.streams))
}

// stoppedStreams are the streams that stopped alone, and those deleted
// while read that are being probed until they exist again (monitor source).
func (d *daemon) stoppedStreams() map[string]string {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := maps.Clone(d.stopped)
	for name, rs := range d.streams {
		if why := rs.consumer.Deleted(); why != "" {
			out[name] = why
		}
	}
	return out
}

// shards is every known shard of every running stream (monitor source).
func (d *daemon) shards() []fanout.ShardStatus {
	d.mu.Lock()
	streams := slices.Collect(maps.Values(d.streams))
	d.mu.Unlock()
	var out []fanout.ShardStatus
	for _, rs := range streams {
		out = append(out, rs.consumer.Shards()...)
	}
	return out
}

func (d *daemon) timers() fanout.Timers {
	t := d.cfg.Timers
	return fanout.Timers{
		IdleTimeout:            time.Duration(t.IdleTimeout),
		ShardSyncInterval:      time.Duration(t.ShardSyncInterval),
		MinResubscribeInterval: time.Duration(t.MinResubscribeInterval),
		BackoffInitial:         time.Duration(t.BackoffInitial),
		BackoffMax:             time.Duration(t.BackoffMax),
		ConsumerPollInitial:    time.Duration(t.ConsumerPollInitial),
		ConsumerPollMax:        time.Duration(t.ConsumerPollMax),
		ConsumerActiveTimeout:  time.Duration(t.ConsumerActiveTimeout),
		ShutdownTimeout:        time.Duration(t.ShutdownTimeout),
		CheckpointInterval:     time.Duration(d.cfg.Checkpoint.Interval),
	}
}

// startStreamLocked starts one stream's consumer. Called with d.mu held.
func (d *daemon) startStreamLocked(ctx context.Context, s config.StreamConfig) {
	c := fanout.NewStreamConsumer(fanout.StreamSpec{
		Name:                s.StreamName(),
		ARN:                 s.ARN,
		Consumer:            s.Consumer,
		ConsumerARN:         s.ConsumerARN,
		StartPosition:       string(s.StartPosition),
		StartTimestamp:      s.StartTime(),
		OnExpiredCheckpoint: s.OnExpiredCheckpoint,
	}, fanout.Options{Client: d.kc, Checkpoints: d.store, Handler: d.pub, Timers: d.timers(), Log: d.log})
	sctx, cancel := context.WithCancel(ctx)
	rs := &runningStream{cfg: s, consumer: c, cancel: cancel, done: make(chan struct{})}
	d.streams[s.StreamName()] = rs
	go func() {
		defer close(rs.done)
		if err := c.Run(sctx); err != nil {
			select {
			case d.failed <- streamFailure{name: s.StreamName(), rs: rs, err: err}:
			case <-ctx.Done():
				// Shutting down: nobody reads d.failed any more.
				d.log.Error().Err(err).Str("stream", s.StreamName()).Msg("stream failed")
			}
		}
	}()
}

// streamFailed handles a stream whose consumer stopped with an error. It
// reports whether the daemon must stop: a deleted stream stops alone while
// others run; anything else is fatal.
func (d *daemon) streamFailed(f streamFailure) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.streams[f.name] != f.rs {
		return false // stopped by a reload meanwhile
	}
	delete(d.streams, f.name)
	if errors.Is(f.err, fanout.ErrStreamNotFound) && len(d.streams) > 0 {
		d.stopped[f.name] = f.err.Error()
		d.log.Error().Err(f.err).Str("stream", f.name).Int("streams_running", len(d.streams)).Msg("stream stopped")
		return false
	}
	d.log.Error().Err(f.err).Str("stream", f.name).Msg("stream failed")
	return true
}

// stopStreams stops the given streams and waits: in-flight batches finish
// and final checkpoints are written.
func stopStreams(streams []*runningStream) {
	for _, rs := range streams {
		rs.cancel()
	}
	for _, rs := range streams {
		<-rs.done
	}
}

func (d *daemon) stopAll() {
	d.mu.Lock()
	streams := slices.Collect(maps.Values(d.streams))
	d.mu.Unlock()
	stopStreams(streams)
}

// reload re-reads the config file (SIGHUP). Streams added, removed or changed
// take effect, subjects and the log level too; an invalid file is rejected
// with its problems logged and the running config stays. Stopping a stream
// finishes its in-flight batches and writes final checkpoints, so a reload
// replays nothing.
func (d *daemon) reload(ctx context.Context) {
	d.notifier.Reloading()
	defer d.notifier.Reloaded()
	path := d.hooks.configPath
	cfg, err := config.Load(path)
	if err != nil {
		var ve *config.ValidationError
		if errors.As(err, &ve) {
			for _, p := range ve.Problems {
				d.log.Error().Str("path", p.Path).Msg("config reload rejected: " + p.Message)
			}
		} else {
			d.log.Error().Err(err).Msg("config reload rejected")
		}
		d.log.Warn().Str("config", path).Msg("keeping the running configuration")
		return
	}
	subjects, err := subjectTemplates(cfg)
	if err != nil {
		d.log.Error().Err(err).Msg("config reload rejected; keeping the running configuration")
		return
	}
	old := d.cfg
	if old.NATS.JetStream {
		// The nats section takes effect at the next restart: check the new
		// streams against the running one.
		chk := *cfg
		chk.NATS, chk.Checkpoint = old.NATS, old.Checkpoint
		if err := prepareJetStream(ctx, d.nc, &chk, subjects, d.log); err != nil {
			d.log.Error().Err(err).Msg("config reload rejected; keeping the running configuration")
			return
		}
	}
	for _, c := range []struct {
		key      string
		old, new any
	}{
		{"aws", old.AWS, cfg.AWS}, {"nats", old.NATS, cfg.NATS}, {"checkpoint", old.Checkpoint, cfg.Checkpoint},
		{"timers", old.Timers, cfg.Timers}, {"http", old.HTTP, cfg.HTTP}, {"log.format", old.Log.Format, cfg.Log.Format},
	} {
		if !reflect.DeepEqual(c.old, c.new) {
			d.log.Warn().Str("section", c.key).Msg("changed in the config file; it takes effect at the next restart")
		}
	}
	if d.hooks.level != nil && cfg.Log.Level != old.Log.Level {
		d.hooks.level.set(cfg.Log.Level)
		d.log.Info().Str("level", cfg.Log.Level).Msg("log level changed")
	}

	want := map[string]config.StreamConfig{}
	for _, s := range cfg.Streams {
		want[s.StreamName()] = s
	}
	d.mu.Lock()
	var stop []*runningStream
	var added, removed, restarted, resubjected []string
	for name, rs := range d.streams {
		s, ok := want[name]
		switch {
		case !ok:
			stop = append(stop, rs)
			removed = append(removed, name)
		case !sameExceptSubject(rs.cfg, s):
			stop = append(stop, rs)
			restarted = append(restarted, name)
		case rs.cfg.Subject != s.Subject:
			rs.cfg = s
			resubjected = append(resubjected, name)
		}
	}
	for _, rs := range stop {
		delete(d.streams, rs.cfg.StreamName())
	}
	// Until the stopped streams finished their batches, publish with the
	// union of the old and new templates.
	union, _ := subjectTemplates(old)
	maps.Copy(union, subjects)
	d.pub.SetSubjects(union)
	d.mu.Unlock()

	stopStreams(stop)
	d.pub.SetSubjects(subjects)

	d.mu.Lock()
	d.cfg.Streams = cfg.Streams
	for name := range d.stopped {
		if _, ok := want[name]; !ok {
			delete(d.stopped, name)
		}
	}
	d.cfg.Log.Level = cfg.Log.Level
	for _, s := range cfg.Streams {
		if _, ok := d.streams[s.StreamName()]; !ok {
			if !slices.Contains(restarted, s.StreamName()) {
				added = append(added, s.StreamName())
			}
			delete(d.stopped, s.StreamName())
			d.startStreamLocked(ctx, s)
		}
	}
	d.mu.Unlock()
	d.log.Info().Strs("added", added).Strs("removed", removed).Strs("restarted", restarted).Strs("subjects_changed", resubjected).
		Msg("configuration reloaded")
}

// sameExceptSubject reports whether two stream configs differ at most in
// their subject (which changes without restarting the consumer).
func sameExceptSubject(a, b config.StreamConfig) bool {
	a.Subject, b.Subject = "", ""
	return a == b
}

// restartAllowance is the time a restart after a crash is assumed to take
// (systemd's RestartSec plus start-up), part of the worst replay gap.
const restartAllowance = time.Minute

// prepareJetStream creates or checks nats.stream, then makes sure a stream
// captures every subject fanoutd publishes to, creating the dead-letter
// stream (nats.dead_letter_stream) when none captures the dead letters, and
// warns when the duplicate window can't hide the replay after a crash. It
// runs at start and before a reload is applied. Missing permission to
// create the dead-letter stream is a usageError (exit 2).
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
	window, err := relay.CheckCapture(ctx, nc, relay.SampleSubjects(subjects, consumer))
	if err != nil {
		return err
	}
	// No stream for the dead letters: create one, as Kafka Connect creates
	// its dead-letter topic.
	dlSamples := relay.SampleSubjects(dl, consumer)
	var notCaptured *relay.NotCapturedError
	if _, err := relay.CheckCapture(ctx, nc, dlSamples); errors.As(err, &notCaptured) {
		if err := relay.EnsureDeadLetterStream(ctx, nc, cfg.NATS.DeadLetterStream, []string{dlt.FilterSubject()}, log); err != nil {
			if errors.Is(err, relay.ErrJetStreamPermission) {
				return usageError{err}
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
		log.Warn().Str("timeout", d.String()).Msg("NATS drain timed out")
		nc.Close()
	}
}
