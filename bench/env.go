package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/fanoutd/fanoutd/emulator"
	"github.com/fanoutd/fanoutd/internal/baseline"
)

const (
	benchSubjects   = "kinesis.>"
	benchDeadLetter = "fanoutd.deadletter.>"
	benchJSStream   = "BENCH"
	benchConsumer   = "fanoutd-bench"
)

// benchEnv is one measured run's world: a fresh emulator, a fresh NATS
// server (with JetStream on file storage in the JetStream modes, and the
// stream capturing the records), and the bench's own subscriber. A fresh one
// per run keeps runs from sharing memory or state.
type benchEnv struct {
	jetstream bool
	// batched: the stream allows fast batches (allow_batched).
	batched bool
	polling bool
	dir     string
	emu     *emulator.Server
	ns      *server.Server
	nc      *nats.Conn
	js      natsjs.JetStream
	recv    *benchReceiver
}

func newBenchEnv(mode string, polling bool) (_ *benchEnv, err error) {
	e := &benchEnv{jetstream: mode != modeCore, batched: mode == modeJetStream, polling: polling, recv: &benchReceiver{seen: map[string]time.Time{}}}
	defer func() {
		if err != nil {
			e.close()
		}
	}()
	if e.dir, err = os.MkdirTemp("", "fanoutd-bench-"); err != nil {
		return nil, err
	}
	// No throttling: the bench measures the relay, not AWS's limits; only
	// GetRecords' 5 calls a second per shard stay (readLimits says why).
	e.emu, err = emulator.New(emulator.Options{
		ConsumerActivationDelay: -1,
		ConsumerDeletionDelay:   -1,
		SubscribeRate:           -1,
		TakeoverGrace:           -1,
		ReadThroughput:          -1,
		GetRecordsThroughput:    -1,
		GetRecordsCooldown:      -1,
		EmptyEventInterval:      emptyEventInterval,
	})
	if err != nil {
		return nil, err
	}
	opts := &server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true, JetStream: e.jetstream,
		StoreDir: filepath.Join(e.dir, "jetstream")}
	if e.ns, err = server.NewServer(opts); err != nil {
		return nil, fmt.Errorf("start NATS server: %w", err)
	}
	e.ns.Start()
	if !e.ns.ReadyForConnections(10 * time.Second) {
		return nil, fmt.Errorf("NATS server did not start")
	}
	if e.nc, err = nats.Connect(e.ns.ClientURL(), nats.Name("fanoutd-bench-subscriber")); err != nil {
		return nil, err
	}
	sub, err := e.nc.Subscribe(benchSubjects, e.recv.onMsg)
	if err != nil {
		return nil, err
	}
	_ = sub.SetPendingLimits(-1, -1) // never drop: a slow bench must not look like a lossy relay
	if e.jetstream {
		if e.js, err = natsjs.New(e.nc); err != nil {
			return nil, err
		}
		if err := e.createStream(); err != nil {
			return nil, err
		}
	}
	return e, e.nc.Flush()
}

// createStream creates the stream that captures the records, with the
// settings fanoutd gives the stream it creates (jsassets.EnsureStream), and
// allow_batched only in the batched mode: fanoutd publishes into a stream
// without it message by message, a PubAck each, as into a stream created
// before nats-server 2.14. The baseline publishes message by message
// either way.
func (e *benchEnv) createStream() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := e.js.CreateStream(ctx, natsjs.StreamConfig{
		Name:              benchJSStream,
		Subjects:          []string{benchSubjects, benchDeadLetter},
		Replicas:          1,
		Storage:           natsjs.FileStorage,
		MaxBytes:          -1,
		MaxMsgs:           -1,
		Discard:           natsjs.DiscardNew,
		AllowBatchPublish: e.batched,
	})
	if err != nil {
		return fmt.Errorf("create JetStream stream %s: %w", benchJSStream, err)
	}
	return nil
}

func (e *benchEnv) close() {
	if e.nc != nil {
		e.nc.Close()
	}
	if e.ns != nil {
		e.ns.Shutdown()
		e.ns.WaitForShutdown()
	}
	if e.emu != nil {
		e.emu.Close()
	}
	if e.dir != "" {
		_ = os.RemoveAll(e.dir)
	}
}

// jsMessages is how many messages the JetStream stream holds.
func (e *benchEnv) jsMessages() (uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := e.js.Stream(ctx, benchJSStream)
	if err != nil {
		return 0, err
	}
	return s.CachedInfo().State.Msgs, nil
}

// readLimits says which of AWS's read limits the bench's emulator applies.
// GetRecords' 5 calls a second per shard stay on: a polling reader paces
// itself by them, so they are part of what it costs, and at 10,000 records
// a call they do not bound a catch-up here. The 2 MiB/s per shard (EFO:
// per consumer), and the 5 s after a 10 MiB call that enforce the same
// rate, would bound both relays at the emulator's limiter instead of
// measuring them.
func readLimits(read string) string {
	if read == readPolling {
		return "GetRecords: 5 calls/s per shard on; 2 MiB/s per shard and the 5 s after a 10 MiB call off"
	}
	return "SubscribeToShard: 2 MiB/s per shard and consumer, 1 call/s per shard and consumer, 5 s takeover grace off; consumers ACTIVE at once"
}

// reading is how many shards of stream the relay subscribed to, or polled.
func (e *benchEnv) reading(stream string) int {
	if e.polling {
		return e.emu.PolledShards(stream)
	}
	return e.emu.ActiveSubscriptions(stream, "")
}

func (e *benchEnv) readingVerb() string {
	if e.polling {
		return "polled"
	}
	return "subscribed"
}

// emptyEventInterval is how often the emulator sends an empty event on a
// subscription with nothing new (its default, as AWS does about every 5 s).
const emptyEventInterval = 5 * time.Second

// childEnv is the relay process's environment: the SDK's variables that
// point it at the emulator (endpoint, region, credentials, CA bundle).
func (e *benchEnv) childEnv(extra ...string) []string {
	return append(append(os.Environ(), e.emu.EnvLines()...), extra...)
}

// daemonConfig writes a config file for `fanoutd run` reading stream.
func (e *benchEnv) daemonConfig(stream string, batch bool, read string) (string, error) {
	body := fmt.Sprintf(`aws:
  region: %s
  endpoint: %s
streams:
  - name: %s
    consumer: %s
    start_position: TRIM_HORIZON
    read: %s
nats:
  servers: [%q]
  jetstream: %v
  batch_publish: %v
checkpoint:
  dir: %q
log:
  level: warn
  format: json
http:
  listen: ""
timers:
  consumer_poll_initial: 50ms
  consumer_poll_max: 200ms
`, e.emu.Region(), e.emu.URL(), stream, benchConsumer, read, e.ns.ClientURL(), e.jetstream, batch, filepath.Join(e.dir, "checkpoints"))
	path := filepath.Join(e.dir, "fanoutd.yaml")
	return path, os.WriteFile(path, []byte(body), 0o600)
}

// baselineConfig writes the baseline relay's config file: asynchronous
// JetStream publishing, or synchronous with sync.
func (e *benchEnv) baselineConfig(stream string, polling, sync bool) (string, error) {
	publish := baseline.PublishAsync
	if sync {
		publish = baseline.PublishSync
	}
	b, err := json.Marshal(baseline.Config{Stream: stream, Consumer: benchConsumer, NATSURL: e.ns.ClientURL(),
		JetStream: e.jetstream, Subject: "kinesis." + stream, Polling: polling, Publish: publish})
	if err != nil {
		return "", err
	}
	path := filepath.Join(e.dir, "baseline.json")
	return path, os.WriteFile(path, b, 0o600)
}

// benchReceiver is the bench's NATS subscriber: it notes when each record
// (by shard and sequence number) first arrived.
type benchReceiver struct {
	mu          sync.Mutex
	seen        map[string]time.Time
	first, last time.Time
	dups        int
}

func (r *benchReceiver) onMsg(m *nats.Msg) {
	now := time.Now()
	key := m.Header.Get("Kinesis-Shard-Id") + "/" + m.Header.Get("Kinesis-Sequence-Number")
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.seen[key]; dup {
		r.dups++
		return
	}
	r.seen[key] = now
	if r.first.IsZero() {
		r.first = now
	}
	r.last = now
}

func (r *benchReceiver) unique() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.seen)
}

// span is the time from the first to the last record received.
func (r *benchReceiver) span() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last.Sub(r.first)
}

// latencies joins the receipt times with the emulator's arrival time of
// every record of stream, and returns them sorted.
func (r *benchReceiver) latencies(emu *emulator.Server, stream string) ([]time.Duration, error) {
	shards, err := emu.Shards(stream)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []time.Duration
	for _, sh := range shards {
		recs, err := emu.Records(stream, sh.ID)
		if err != nil {
			return nil, err
		}
		for _, rec := range recs {
			if at, ok := r.seen[sh.ID+"/"+rec.SequenceNumber]; ok {
				out = append(out, at.Sub(rec.Arrival))
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out, nil
}

// benchPayload is a record of size bytes; its first bytes say which.
func benchPayload(buf []byte, i int) []byte {
	for j := range buf {
		buf[j] = byte('a' + j%26)
	}
	copy(buf, fmt.Sprintf("%d:", i))
	return buf
}
