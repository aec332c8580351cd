// Package demo runs the whole path on one machine with nothing installed:
// an in-process Kinesis emulator and NATS server, a producer, the real relay
// (package daemon), and a subscriber that prints what it receives.
package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
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
	// Payload is what the producer writes: PayloadText ("" too) or
	// PayloadJSON.
	Payload string

	// Log is the relay's logger; Version its version.
	Log     zerolog.Logger
	Version string
}

// Values of Options.Payload.
const (
	// PayloadText: short texts ("user signup"), on kinesis.demo.<key>.
	PayloadText = "text"
	// PayloadJSON: JSON events of orders and payments, each on a subject
	// built from its data (see jsonSubject).
	PayloadJSON = "json"
)

var demoEvents = []string{"user signup", "user login", "page view", "cart add", "user logout"}

// Validate checks the options.
func (d *Options) Validate() error {
	if d.Rate <= 0 || d.Shards < 1 {
		return fmt.Errorf("--rate must be > 0 and --shards >= 1")
	}
	if d.Read != "" && !slices.Contains(fanout.ReadModes, d.Read) {
		return fmt.Errorf("--read must be efo, polling or auto (got %q)", d.Read)
	}
	if d.Payload != "" && d.Payload != PayloadText && d.Payload != PayloadJSON {
		return fmt.Errorf("--payload must be text or json (got %q)", d.Payload)
	}
	return nil
}

// json reports whether the producer writes JSON records.
func (d *Options) json() bool { return d.Payload == PayloadJSON }

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
	ns, stopNATS, err := startNATS(d.JetStream)
	if err != nil {
		return err
	}
	defer stopNATS()
	dir, err := os.MkdirTemp("", "fanoutd-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	cfg, err := relayConfig(emu, ns.ClientURL(), d.JetStream, dir, d.Read, d.json())
	if err != nil {
		return err
	}
	if d.JetStream {
		if err := createStreams(ns.ClientURL(), cfg); err != nil {
			return err
		}
	}
	subject, err := subscription(cfg)
	if err != nil {
		return err
	}
	printIntro(w, d, cfg, emu.URL(), ns.ClientURL(), subject)

	sub := &demoSubscriber{w: w, quiet: d.Quiet, json: d.json(), seen: map[string]int{}, bySubject: map[string]int{}}
	nc, err := sub.subscribe(ns.ClientURL(), subject)
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

	produced := produce(prodCtx, emu, d.Rate, d.json())
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

// jsonSubject routes each JSON record by what it says: its entity, event
// and customer. Under kinesis.>, which the DEMO stream captures.
const jsonSubject = "kinesis.demo.{data.entity}.{data.event}.{data.customer.id}"

// printIntro says what the demo runs, produces and subscribes to.
func printIntro(w io.Writer, d Options, cfg *config.Config, emuURL, natsURL, subject string) {
	fmt.Fprintf(w, "fanoutd demo: Kinesis emulator %s, stream demo (%d shards, read: %s), NATS %s%s\n",
		emuURL, d.Shards, cfg.Streams[0].Read, natsURL, map[bool]string{true: " with JetStream", false: ""}[d.JetStream])
	if !d.json() {
		fmt.Fprintf(w, "producing %.0f records/s for keys user1..user5 (every 5th is a KPL aggregate); subscribed to kinesis.>\n\n", d.Rate)
		return
	}
	fmt.Fprintf(w, "producing %.0f JSON records/s for keys user1..user5 (every 5th is a KPL aggregate): %s (every 10th without a customer)\n",
		d.Rate, strings.Join(jsonEventNames(), ", "))
	fmt.Fprintf(w, "subject %s (a missing field: %s); subscribed to %s\n", cfg.Streams[0].Subject, cfg.Streams[0].SubjectFallback, subject)
	fmt.Fprintf(w, "pick some from another terminal: fanoutd tail 'kinesis.demo.payment.>' --server %s\n\n", natsURL)
}

// subscription is the subject that matches every subject the demo stream's
// template renders.
func subscription(cfg *config.Config) (string, error) {
	if cfg.Streams[0].Subject != jsonSubject {
		return "kinesis.>", nil
	}
	t, err := relay.ParseSubjectTemplate(cfg.Streams[0].Subject)
	if err != nil {
		return "", err
	}
	return t.FilterSubject(), nil
}

// relayConfig is the relay's configuration for the demo's emulator and NATS
// server, with its checkpoints in dir; with jsonData, subjects come from
// the records' data.
func relayConfig(emu *emulator.Server, natsURL string, js bool, dir string, read fanout.ReadMode, jsonData bool) (*config.Config, error) {
	cfg := config.Default()
	st := config.DefaultStream()
	st.Name, st.Consumer, st.Subject = "demo", "fanoutd-demo", "kinesis.{stream}.{partition_key}"
	if jsonData {
		st.Subject = jsonSubject
	}
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
	// Nothing the demo's JetStream keeps needs to outlive it.
	cfg.NATS.DeadLetterStream.Storage, cfg.NATS.ObjectStore.Storage = "memory", "memory"
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

// startNATS starts an in-process NATS server on a free port, with
// JetStream when js (its storage in a temporary directory); stop shuts it
// down and removes that directory.
func startNATS(js bool) (ns *server.Server, stop func(), err error) {
	opts := &server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true, JetStream: js}
	removeDir := func() {}
	if js {
		dir, err := os.MkdirTemp("", "fanoutd-demo-js-")
		if err != nil {
			return nil, nil, err
		}
		opts.StoreDir = dir
		removeDir = func() { os.RemoveAll(dir) }
	}
	ns, err = server.NewServer(opts)
	if err != nil {
		removeDir()
		return nil, nil, fmt.Errorf("start NATS server: %w", err)
	}
	stop = func() {
		ns.Shutdown()
		ns.WaitForShutdown()
		removeDir()
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		stop()
		return nil, nil, fmt.Errorf("NATS server did not start")
	}
	return ns, stop, nil
}

// createStreams creates what the relay publishes to on the demo's
// JetStream: the stream DEMO for the records, and the dead-letter stream
// and the Object Store bucket the relay would create with one replica
// (warning that one server's storage is a risk, which is the point of a
// demo's server, not news to its user).
func createStreams(url string, cfg *config.Config) error {
	nc, err := nats.Connect(url)
	if err != nil {
		return err
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	spec := jsassets.StreamSpec{Name: "DEMO", Subjects: []string{"kinesis.>"}, Replicas: 1, Storage: jsassets.MemoryStorage}
	if err := jsassets.EnsureStream(ctx, nc, spec, zerolog.Nop()); err != nil {
		return err
	}
	dlt, err := relay.ParseSubjectTemplate(cfg.NATS.DeadLetterSubject)
	if err != nil {
		return err
	}
	if err := jsassets.EnsureDeadLetterStream(ctx, nc, cfg.NATS.DeadLetterStream.Spec(), []string{dlt.FilterSubject()}, zerolog.Nop()); err != nil {
		return err
	}
	_, err = jsassets.EnsureObjectStore(ctx, nc, cfg.NATS.ObjectStore.Spec(), zerolog.Nop())
	return err
}

// produce writes records at rate until ctx ends and returns how many user
// records it wrote: texts, or with jsonData JSON events (see jsonRecord).
func produce(ctx context.Context, emu *emulator.Server, rate float64, jsonData bool) int {
	t := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer t.Stop()
	n, made := 0, 0 // user records written, and made
	// The data of a record of customer (the key's number), or text.
	data := func(customer, text int) []byte {
		defer func() { made++ }()
		if jsonData {
			return jsonRecord(made, customer)
		}
		return []byte(demoEvents[text%len(demoEvents)])
	}
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
				recs = append(recs, record.Record{PartitionKey: key, Data: data(i%5+1, i+j)})
			}
			if _, _, err := emu.PutRecord("demo", key, kpl.Aggregate(recs)); err == nil {
				n += len(recs)
			}
			continue
		}
		if _, _, err := emu.PutRecord("demo", key, data(i%5+1, i)); err == nil {
			n++
		}
	}
}

// jsonEvents are the JSON records' kinds: entity and event. Four, against
// five keys, so that every customer has every kind.
var jsonEvents = [][2]string{{"order", "created"}, {"order", "shipped"}, {"payment", "failed"}, {"order", "cancelled"}}

// jsonEventNames are the kinds as "order.created".
func jsonEventNames() []string {
	var out []string
	for _, e := range jsonEvents {
		out = append(out, e[0]+"."+e[1])
	}
	return out
}

// demoOrder is one JSON record.
type demoOrder struct {
	Entity   string `json:"entity"`
	Event    string `json:"event"`
	OrderID  string `json:"order_id"`
	Customer *struct {
		ID string `json:"id"`
	} `json:"customer,omitempty"`
	Amount float64 `json:"amount"`
}

// jsonRecord is the data of the nth JSON record, of customer c-<customer>;
// every 10th has no customer, so that its subject shows the fallback token.
func jsonRecord(n, customer int) []byte {
	e := jsonEvents[n%len(jsonEvents)]
	o := demoOrder{Entity: e[0], Event: e[1], OrderID: fmt.Sprintf("o-%d", 1001+n/len(jsonEvents)), Amount: float64(5+n%17) * 2.5}
	if n%10 != 1 {
		o.Customer = &struct {
			ID string `json:"id"`
		}{ID: fmt.Sprintf("c-%d", customer)}
	}
	b, _ := json.Marshal(o) // cannot fail: strings and a number
	return b
}

type demoSubscriber struct {
	w     io.Writer
	quiet bool
	json  bool // the records are JSON: count them by subject

	mu        sync.Mutex
	count     int
	seen      map[string]int // Nats-Msg-Id -> times received
	bySubject map[string]int // subject -> records received (once each)
	lagSum    time.Duration
	lagMax    time.Duration
}

// subscribe connects to NATS and subscribes to subject, everything the
// relay publishes; the subscription is in place when it returns.
func (s *demoSubscriber) subscribe(url, subject string) (*nats.Conn, error) {
	nc, err := nats.Connect(url, nats.Name("fanoutd-demo-subscriber"))
	if err != nil {
		return nil, err
	}
	if _, err := nc.Subscribe(subject, s.onMsg); err != nil {
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
	id := m.Header.Get(nats.MsgIdHdr)
	if s.seen[id] == 0 {
		s.bySubject[m.Subject]++
	}
	s.seen[id]++
	s.lagSum += lag
	s.lagMax = max(s.lagMax, lag)
	if s.quiet {
		return
	}
	// The same printer as `fanoutd tail`.
	io.WriteString(s.w, subscriber.Format(m, s.count, now))
}

// printSubjects counts the records by their subject's kind (all but the
// last token, the customer), and those on the fallback token.
func (s *demoSubscriber) printSubjects() {
	kinds, fallback := map[string]int{}, 0
	token := config.DefaultStream().SubjectFallback
	for subj, n := range s.bySubject {
		i := strings.LastIndexByte(subj, '.')
		kinds[subj[:i]+".*"] += n
		if subj[i+1:] == token {
			fallback += n
		}
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(kinds)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, kinds[k]))
	}
	fmt.Fprintf(s.w, "by subject: %s; %d without a customer on kinesis.demo.*.*.%s\n", strings.Join(parts, ", "), fallback, token)
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
	if s.json {
		s.printSubjects()
	}
	if len(s.seen) < produced {
		return fmt.Errorf("%d records were not received", produced-len(s.seen))
	}
	return nil
}
