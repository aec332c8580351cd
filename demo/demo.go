// Package demo runs the whole path on one machine with nothing installed:
// an in-process Kinesis emulator and NATS server, a producer, the real relay
// (package daemon), and a subscriber that prints what it receives.
package demo

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/fanoutd/fanoutd/config"
	"github.com/fanoutd/fanoutd/daemon"
	"github.com/fanoutd/fanoutd/emulator"
	"github.com/fanoutd/fanoutd/fanout"
	"github.com/fanoutd/fanoutd/jsassets"
	"github.com/fanoutd/fanoutd/kpl"
	"github.com/fanoutd/fanoutd/record"
	"github.com/fanoutd/fanoutd/relay"
	"github.com/fanoutd/fanoutd/subscriber"
)

// Options are the demo's settings (`fanoutd demo` documents each).
type Options struct {
	Duration  time.Duration // 0: until ctx ends
	Rate      float64       // Kinesis records produced per second
	Shards    int
	JetStream bool // publish through JetStream (a stream DEMO captures kinesis.>)
	Quiet     bool // print only the summary
	// Read is how the relay reads the stream; "" is enhanced fan-out.
	Read fanout.ReadMode

	// Log is the relay's logger; Version its version.
	Log     zerolog.Logger
	Version string
}

var demoEvents = []string{"user signup", "user login", "page view", "cart add", "user logout"}

// Validate checks the options.
func (d *Options) Validate() error {
	if d.Rate <= 0 || d.Shards < 1 {
		return fmt.Errorf("--rate must be > 0 and --shards >= 1")
	}
	if d.Read != "" && !slices.Contains(fanout.ReadModes, d.Read) {
		return fmt.Errorf("--read must be efo, polling or auto (got %q)", d.Read)
	}
	return nil
}

// Run runs the demo until the duration passes or ctx ends, printing on w,
// then prints a summary. It fails if a record was lost, and at once when
// the relay fails.
func Run(ctx context.Context, d Options, w io.Writer) error {
	if err := d.Validate(); err != nil {
		return err
	}
	if d.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d.Duration)
		defer cancel()
	}

	emu, err := emulator.New(emulator.Options{ConsumerActivationDelay: 500 * time.Millisecond})
	if err != nil {
		return err
	}
	defer emu.Close()
	if err := emu.CreateStream("demo", d.Shards); err != nil {
		return err
	}
	ns, err := startNATS(d.JetStream)
	if err != nil {
		return err
	}
	defer ns.Shutdown()
	dir, err := os.MkdirTemp("", "fanoutd-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	cfg, err := relayConfig(emu, ns.ClientURL(), d.JetStream, dir, d.Read)
	if err != nil {
		return err
	}

	fmt.Fprintf(w, "fanoutd demo: Kinesis emulator %s, stream demo (%d shards, read: %s), NATS %s%s\n",
		emu.URL(), d.Shards, cfg.Streams[0].Read, ns.ClientURL(), map[bool]string{true: " with JetStream", false: ""}[d.JetStream])
	fmt.Fprintf(w, "producing %.0f records/s for keys user1..user5 (every 5th is a KPL aggregate); subscribed to kinesis.>\n\n", d.Rate)

	sub := &demoSubscriber{w: w, quiet: d.Quiet, seen: map[string]int{}}
	nc, err := sub.subscribe(ns.ClientURL())
	if err != nil {
		return err
	}
	defer nc.Close()

	daemonCtx, stopDaemon := context.WithCancel(context.Background())
	defer stopDaemon()
	// The producer stops when the demo's time is up, or at once when the
	// relay stops on its own (it failed): the demo then exits with its error.
	prodCtx, stopProducing := context.WithCancel(ctx)
	defer stopProducing()
	var relayErr error
	relayDone := make(chan struct{})
	go func() {
		defer close(relayDone)
		defer stopProducing()
		relayErr = runRelay(daemonCtx, cfg, daemon.Options{Log: d.Log, Version: d.Version,
			CABundle:    emu.CAPEM(),
			Credentials: credentials.NewStaticCredentialsProvider("demo", "demo", ""),
		})
	}()
	relayStopped := func() error {
		if relayErr != nil {
			return fmt.Errorf("relay stopped: %w", relayErr)
		}
		return fmt.Errorf("relay stopped")
	}

	produced := produce(prodCtx, emu, d.Rate)
	// Let the relay catch up with what was produced before stopping it.
	deadline := time.Now().Add(15 * time.Second)
	for sub.unique() < produced && time.Now().Before(deadline) {
		select {
		case <-relayDone:
			return relayStopped()
		case <-time.After(20 * time.Millisecond):
		}
	}
	select {
	case <-relayDone:
		return relayStopped()
	default:
	}
	stopDaemon()
	<-relayDone
	if relayErr != nil {
		return fmt.Errorf("relay: %w", relayErr)
	}
	return sub.summary(produced)
}

// relayConfig is the relay's configuration for the demo's emulator and NATS
// server, with its checkpoints in dir.
func relayConfig(emu *emulator.Server, natsURL string, js bool, dir string, read fanout.ReadMode) (*config.Config, error) {
	cfg := config.Default()
	st := config.DefaultStream()
	st.Name, st.Consumer, st.Subject = "demo", "fanoutd-demo", "kinesis.{stream}.{partition_key}"
	if read != "" {
		st.Read = read
	}
	cfg.Streams = []config.StreamConfig{st}
	cfg.AWS.Region, cfg.AWS.Endpoint = emu.Region(), emu.URL()
	cfg.NATS.Servers = []string{natsURL}
	cfg.NATS.JetStream = js
	if !js {
		// The core-mode server has no JetStream, so no Object Store.
		cfg.NATS.LargeRecords = relay.OversizeDeadLetter
	}
	cfg.Checkpoint.Dir = dir
	cfg.Log.Level, cfg.Log.Format = "warn", "console"
	cfg.HTTP.Listen = "" // the demo may run beside a daemon on the default port
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// runRelay runs the daemon until ctx ends or it fails.
func runRelay(ctx context.Context, cfg *config.Config, o daemon.Options) error {
	d, err := daemon.Open(ctx, cfg, o)
	if err != nil {
		return err
	}
	select {
	case <-ctx.Done():
	case <-d.Failed():
	}
	return d.Close()
}

// startNATS starts an in-process NATS server on a free port.
func startNATS(js bool) (*server.Server, error) {
	opts := &server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true, JetStream: js}
	if js {
		dir, err := os.MkdirTemp("", "fanoutd-demo-js-")
		if err != nil {
			return nil, err
		}
		opts.StoreDir = dir
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("start NATS server: %w", err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		return nil, fmt.Errorf("NATS server did not start")
	}
	if js {
		nc, err := nats.Connect(ns.ClientURL())
		if err != nil {
			return nil, err
		}
		defer nc.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		spec := jsassets.StreamSpec{Name: "DEMO", Subjects: []string{"kinesis.>"}, Replicas: 1, Storage: jsassets.MemoryStorage}
		if err := jsassets.EnsureStream(ctx, nc, spec, zerolog.Nop()); err != nil {
			return nil, err
		}
	}
	return ns, nil
}

// produce writes records at rate until ctx ends and returns how many user
// records it wrote.
func produce(ctx context.Context, emu *emulator.Server, rate float64) int {
	t := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer t.Stop()
	n := 0
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return n
		case <-t.C:
		}
		key := fmt.Sprintf("user%d", i%5+1)
		if i%5 == 4 {
			var recs []record.Record
			for j := 0; j < 3; j++ {
				recs = append(recs, record.Record{PartitionKey: key, Data: []byte(demoEvents[(i+j)%len(demoEvents)])})
			}
			if _, _, err := emu.PutRecord("demo", key, kpl.Aggregate(recs)); err == nil {
				n += len(recs)
			}
			continue
		}
		if _, _, err := emu.PutRecord("demo", key, []byte(demoEvents[i%len(demoEvents)])); err == nil {
			n++
		}
	}
}

type demoSubscriber struct {
	w     io.Writer
	quiet bool

	mu     sync.Mutex
	count  int
	seen   map[string]int // Nats-Msg-Id -> times received
	lagSum time.Duration
	lagMax time.Duration
}

// subscribe connects to NATS and subscribes to everything the relay
// publishes; the subscription is in place when it returns.
func (s *demoSubscriber) subscribe(url string) (*nats.Conn, error) {
	nc, err := nats.Connect(url, nats.Name("fanoutd-demo-subscriber"))
	if err != nil {
		return nil, err
	}
	if _, err := nc.Subscribe("kinesis.>", s.onMsg); err != nil {
		nc.Close()
		return nil, err
	}
	if err := nc.Flush(); err != nil {
		nc.Close()
		return nil, err
	}
	return nc, nil
}

func (s *demoSubscriber) onMsg(m *nats.Msg) {
	now := time.Now()
	var lag time.Duration
	if at, err := time.Parse(time.RFC3339Nano, m.Header.Get(relay.HeaderArrivalTime)); err == nil {
		lag = now.Sub(at)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.count++
	s.seen[m.Header.Get(nats.MsgIdHdr)]++
	s.lagSum += lag
	s.lagMax = max(s.lagMax, lag)
	if s.quiet {
		return
	}
	// The same printer as `fanoutd tail`.
	io.WriteString(s.w, subscriber.Format(m, s.count, now))
}

func (s *demoSubscriber) unique() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.seen)
}

func (s *demoSubscriber) summary(produced int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	dups := s.count - len(s.seen)
	avg := time.Duration(0)
	if s.count > 0 {
		avg = s.lagSum / time.Duration(s.count)
	}
	fmt.Fprintf(s.w, "\nsummary: produced %d user records, received %d messages (%d unique, %d duplicates), lag avg %v max %v\n",
		produced, s.count, len(s.seen), dups, avg.Round(time.Millisecond), s.lagMax.Round(time.Millisecond))
	if len(s.seen) < produced {
		return fmt.Errorf("%d records were not received", produced-len(s.seen))
	}
	return nil
}
