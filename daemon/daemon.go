// Package daemon is the running relay as a library type: it wires the
// checkpoint store, the NATS connection and publisher, the Kinesis client
// and the monitor to one consumer per configured stream, decides which
// stream failures are fatal, applies reloads, and shuts down in order. It
// owns no flags, signals or exit codes: cmd/fanoutd does.
package daemon

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/fanoutd/fanoutd/checkpoint"
	"github.com/fanoutd/fanoutd/config"
	"github.com/fanoutd/fanoutd/coordination"
	"github.com/fanoutd/fanoutd/fanout"
	"github.com/fanoutd/fanoutd/monitor"
	"github.com/fanoutd/fanoutd/relay"
)

// Options are what Open needs besides the config.
type Options struct {
	Log     zerolog.Logger
	Version string
	// Endpoint, Region, CABundle and Credentials, when set, win over the
	// config's aws section and the SDK's chain for the Kinesis client: an
	// emulator in the same process (the demo, tests) that the environment
	// does not name.
	Endpoint, Region string
	CABundle         []byte
	Credentials      aws.CredentialsProvider
	// SetLogLevel, when set, is called when a reload changes log.level.
	SetLogLevel func(level string)
}

// Daemon is a running relay.
type Daemon struct {
	log      zerolog.Logger
	opts     Options
	store    checkpoint.Store
	nc       *nats.Conn
	pub      *relay.Publisher
	kc       *kinesis.Client
	mon      *monitor.Monitor
	notifier *monitor.Notifier
	httpAddr string
	stopHTTP func()
	// group is this instance's membership when several share the shards.
	group *coordination.Group
	// outage wakes the shards when NATS is back, and logs the resumption.
	outage *natsOutage

	// runCtx is the streams' parent; it ends with the fatal failure as its
	// cause, or on Close.
	runCtx     context.Context
	cancelRun  context.CancelCauseFunc
	notifyDone chan struct{}
	stopNotify context.CancelFunc
	closeOnce  sync.Once
	closeErr   error

	// cfg is the configuration in effect. A reload stores a new one whole;
	// none is ever edited, so a reader may keep what it loaded.
	cfg atomic.Pointer[config.Config]

	mu      sync.Mutex
	streams map[string]*runningStream
	// stopped are the streams that stopped alone (missing at start), with
	// why, for /status and the metrics, until a reload starts them again.
	stopped map[string]string
}

// runningStream is one stream's consumer; it ends on its own context.
type runningStream struct {
	name     string
	consumer *fanout.StreamConsumer
	cancel   context.CancelFunc
	done     chan struct{}
}

// Open starts relaying every stream of cfg: it opens the checkpoint store,
// the HTTP endpoint, connects to NATS (and prepares JetStream), and starts
// one consumer per stream. The relay runs until Close, or until a fatal
// failure ends Failed.
func Open(ctx context.Context, cfg *config.Config, o Options) (_ *Daemon, err error) {
	d := &Daemon{log: o.Log, opts: o, streams: map[string]*runningStream{}, stopped: map[string]string{}}
	d.cfg.Store(cfg)
	var undo []func()
	defer func() {
		if err != nil {
			slices.Reverse(undo)
			for _, f := range undo {
				f()
			}
		}
	}()
	if cfg.Checkpoint.Store == config.StoreFile {
		store, err := checkpoint.NewFileStore(cfg.Checkpoint.Dir)
		if err != nil {
			return nil, checkpointDirFailure(err)
		}
		d.store = store
		undo = append(undo, func() { store.Close() })
	}

	routes, err := streamRoutes(cfg)
	if err != nil {
		return nil, &ConfigError{err}
	}
	subjects := subjectTemplates(routes)
	if err := d.startMonitor(cfg, &undo); err != nil {
		return nil, err
	}
	nc, err := d.connectNATS(ctx, cfg)
	if err != nil {
		return nil, err
	}
	undo = append(undo, nc.Close)
	batched := false
	if cfg.NATS.JetStream {
		if batched, err = prepareJetStream(ctx, nc, cfg, subjects, d.log); err != nil {
			return nil, err
		}
	}
	if cfg.Checkpoint.Store == config.StoreJetStream {
		if err := d.openShared(ctx, cfg); err != nil {
			return nil, err
		}
		undo = append(undo, func() { d.store.Close() })
		if d.group != nil {
			undo = append(undo, func() { d.group.Close(context.Background()) })
		}
	}
	large, objects, err := prepareObjectStore(ctx, nc, cfg, d.log)
	if err != nil {
		return nil, err
	}
	co := cfg.NATS.ConnOptions()
	d.pub, err = relay.NewPublisher(nc, routes, relay.Options{
		JetStream:         cfg.NATS.JetStream,
		Direct:            &co,
		PublishTimeout:    time.Duration(cfg.NATS.PublishTimeout),
		NoBatchPublish:    !batched,
		Oversize:          large,
		Objects:           objects,
		ObjectBucket:      cfg.NATS.ObjectStore.Bucket,
		ObserveObject:     d.mon.ObserveObjectPut,
		DeadLetterSubject: cfg.NATS.DeadLetterSubject,
		Log:               d.log.With().Str("component", "relay").Logger(),
		Observe: func(stream string, records int, took time.Duration, err error) {
			d.mon.ObservePublish(stream, records, took, err)
			d.outage.published(err)
		},
	})
	if err != nil {
		return nil, err
	}
	d.setMonitorSources()

	d.kc, err = fanout.NewClient(ctx, fanout.ClientOptions{
		Region:      cmp.Or(o.Region, cfg.AWS.Region),
		Profile:     cfg.AWS.Profile,
		Endpoint:    cmp.Or(o.Endpoint, cfg.AWS.Endpoint),
		CABundle:    o.CABundle,
		Credentials: o.Credentials,
		Log:         &d.log,
	})
	if err != nil {
		// No region, a profile that does not exist, a malformed shared
		// file or AWS_* variable: the same at every start.
		return nil, &ConfigError{err}
	}
	if err := d.checkAWS(ctx, cfg); err != nil {
		return nil, err
	}

	d.startStreams(cfg)
	return d, nil
}

// startMonitor starts the monitor, the notifier and the HTTP endpoint, and
// adds to undo what stops them.
func (d *Daemon) startMonitor(cfg *config.Config, undo *[]func()) error {
	d.mon = monitor.New(monitor.Sources{Shards: d.shards}, time.Duration(cfg.Timers.StallTimeout), d.opts.Version)
	d.notifier = monitor.NewNotifier(d.mon, d.log)
	// The notifier runs from here on, so that the STATUS line says what the
	// start waits for.
	notifyCtx, stopNotify := context.WithCancel(context.Background())
	d.stopNotify, d.notifyDone = stopNotify, make(chan struct{})
	go func() { defer close(d.notifyDone); d.notifier.Run(notifyCtx) }()
	*undo = append(*undo, func() { stopNotify(); <-d.notifyDone })
	if cfg.HTTP.Listen != "" {
		if err := d.serveHTTP(cfg.HTTP.Listen); err != nil {
			return listenFailure(err)
		}
		*undo = append(*undo, d.stopHTTP)
	}
	return nil
}

// setMonitorSources gives the monitor what it reports on, once all of it
// is open.
func (d *Daemon) setMonitorSources() {
	src := monitor.Sources{Shards: d.shards, Publisher: d.pub.Stats, PublisherStreams: d.pub.StreamStats, Objects: d.pub.ObjectStats,
		NATSConnected: d.nc.IsConnected, Streams: d.streamNames, StoppedStreams: d.stoppedStreams, ReadModes: d.readModes}
	if d.group != nil {
		src.Group = d.groupStatus
	}
	d.mon.SetSources(src)
}

// connectNATS connects to NATS with the outage tracker on its events.
func (d *Daemon) connectNATS(ctx context.Context, cfg *config.Config) (*nats.Conn, error) {
	d.outage = newNATSOutage(d.log)
	co := cfg.NATS.ConnOptions()
	co.OnDisconnect, co.OnReconnect = d.outage.disconnected, d.outage.reconnected
	nc, err := relay.Connect(ctx, co, d.log) // its lines carry "component":"nats"
	if err != nil {
		if _, ok := errors.AsType[*relay.PermanentError](err); ok {
			return nil, &ConfigError{err}
		}
		return nil, err
	}
	d.nc = nc
	return nc, nil
}

// startStreams starts one consumer per configured stream.
func (d *Daemon) startStreams(cfg *config.Config) {
	d.log.Info().Int("streams", len(cfg.Streams)).Bool("jetstream", cfg.NATS.JetStream).Str("version", d.opts.Version).Msg("fanoutd starting")
	d.runCtx, d.cancelRun = context.WithCancelCause(context.Background())
	d.mu.Lock()
	for _, s := range cfg.Streams {
		d.startStreamLocked(s)
	}
	d.mu.Unlock()
	d.mon.SetStarted()
}

// Failed is closed when a stream failed in a way that stops the daemon;
// Err then says why.
func (d *Daemon) Failed() <-chan struct{} { return d.runCtx.Done() }

// Err is the fatal failure once Failed is closed (nil after a plain Close).
func (d *Daemon) Err() error {
	if err := context.Cause(d.runCtx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// Close shuts down in order: stop reading, let in-flight batches finish
// (within timers.shutdown_timeout), write the final checkpoints, drain
// NATS. It returns the fatal failure that ended the daemon, if any.
func (d *Daemon) Close() error {
	d.closeOnce.Do(func() {
		d.log.Info().Msg("shutting down: finishing in-flight batches")
		d.notifier.Stopping()
		d.mon.SetStopping()
		d.stopAll() // every shard's final checkpoint, then its lease released
		d.cancelRun(context.Canceled)
		d.stopNotify()
		<-d.notifyDone
		if d.group != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := d.group.Close(ctx); err != nil {
				d.log.Warn().Err(err).Msg("leave the group")
			}
			cancel()
		}
		d.pub.Close()
		drainNATS(d.nc, time.Duration(d.config().Timers.ShutdownTimeout), d.log)
		if d.stopHTTP != nil {
			d.stopHTTP()
		}
		d.store.Close()
		st := d.pub.Stats()
		d.log.Info().Uint64("published", st.Published).Uint64("dead_lettered", st.DeadLettered).Msg("fanoutd stopped")
		d.closeErr = d.Err()
	})
	return d.closeErr
}

// streamRoutes are the relay's routes of cfg's streams, by name.
func streamRoutes(cfg *config.Config) (map[string]*relay.Route, error) {
	routes := map[string]*relay.Route{}
	for i, s := range cfg.Streams {
		r, err := s.Route()
		if err != nil {
			return nil, fmt.Errorf("streams[%d].%w", i, err)
		}
		routes[s.StreamName()] = r
	}
	return routes, nil
}

// subjectTemplates are the routes' templates, for the JetStream checks.
func subjectTemplates(routes map[string]*relay.Route) map[string]*relay.SubjectTemplate {
	out := make(map[string]*relay.SubjectTemplate, len(routes))
	for stream, r := range routes {
		out[stream] = r.Subject
	}
	return out
}

// config is the configuration in effect (read-only).
func (d *Daemon) config() *config.Config { return d.cfg.Load() }

// serveHTTP starts the HTTP endpoint.
func (d *Daemon) serveHTTP(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("http.listen %s: %w: stop what holds the port, or set another http.listen (\"\" for no HTTP endpoint)", addr, err)
	}
	d.httpAddr = ln.Addr().String()
	srv := monitor.NewServer(d.mon.Handler(), monitor.DefaultServerOptions())
	go srv.Serve(ln)
	d.log.Info().Str("addr", d.httpAddr).Msg("HTTP endpoint listening")
	d.stopHTTP = func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}
	return nil
}

// streamNames are the streams being consumed, those deleted and probed
// left out (monitor source: each must have a reading shard to be ready).
func (d *Daemon) streamNames() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for name, rs := range d.streams {
		if rs.consumer.Deleted() == "" {
			out = append(out, name)
		}
	}
	return out
}

// stoppedStreams are the streams that stopped alone, and those deleted
// while read that are being probed until they exist again (monitor source).
func (d *Daemon) stoppedStreams() map[string]string {
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

// readModes is how each running stream is read now (monitor source).
func (d *Daemon) readModes() map[string]fanout.ReadMode {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[string]fanout.ReadMode, len(d.streams))
	for name, rs := range d.streams {
		out[name] = rs.consumer.ReadMode()
	}
	return out
}

// shards is every known shard of every running stream (monitor source).
func (d *Daemon) shards() []fanout.ShardStatus {
	d.mu.Lock()
	streams := slices.Collect(maps.Values(d.streams))
	d.mu.Unlock()
	var out []fanout.ShardStatus
	for _, rs := range streams {
		out = append(out, rs.consumer.Shards()...)
	}
	return out
}

// startStreamLocked starts one stream's consumer on its own context; its
// failure is handled by streamFailed, which never blocks. Called with d.mu
// held.
func (d *Daemon) startStreamLocked(s config.StreamConfig) {
	cfg := d.config()
	o := fanout.Options{Client: d.kc, Checkpoints: d.store, Handler: d.pub, Timers: cfg.FanoutTimers(), Log: d.log,
		Decoder: fanout.Decoder(cfg.AWS.Decoder), Resume: d.outage.resume}
	if d.group != nil {
		o.Leases = groupLeases{d.group}
	}
	c := fanout.NewStreamConsumer(s.Spec(), o)
	sctx, cancel := context.WithCancel(d.runCtx)
	rs := &runningStream{name: s.StreamName(), consumer: c, cancel: cancel, done: make(chan struct{})}
	d.streams[rs.name] = rs
	go func() {
		defer close(rs.done)
		if err := c.Run(sctx); err != nil {
			d.streamFailed(rs, err)
		}
	}()
}

// streamFailed handles a stream whose consumer stopped with an error: a
// stream missing at start stops alone while others run; anything else ends
// the daemon (Failed).
func (d *Daemon) streamFailed(rs *runningStream, err error) {
	name := rs.name
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.streams[name] != rs { // being stopped by a reload or Close
		d.log.Error().Err(err).Str("stream", name).Msg("stream failed while it was being stopped")
		return
	}
	delete(d.streams, name)
	if errors.Is(err, fanout.ErrStreamNotFound) && len(d.streams) > 0 {
		d.stopped[name] = err.Error()
		d.log.Error().Err(err).Str("stream", name).Int("streams_running", len(d.streams)).Msg("stream stopped")
		return
	}
	d.log.Error().Err(err).Str("stream", name).Msg("stream failed")
	if operatorFailure(err) {
		err = &ConfigError{err}
	}
	d.cancelRun(err)
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

func (d *Daemon) stopAll() {
	d.mu.Lock()
	streams := slices.Collect(maps.Values(d.streams))
	clear(d.streams)
	d.mu.Unlock()
	stopStreams(streams)
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
