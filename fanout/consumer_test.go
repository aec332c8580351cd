package fanout

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/rs/zerolog"

	"github.com/fanoutd/fanoutd/checkpoint"
	"github.com/fanoutd/fanoutd/emulator"
	"github.com/fanoutd/fanoutd/record"
)

// recorder is a Handler that keeps what it was given, and can be told to fail.
type recorder struct {
	mu      sync.Mutex
	byShard map[string][]record.Record
	order   []record.Record // every record in the order it was handled
	fail    int             // fail this many next calls
	calls   int
}

func newRecorder() *recorder { return &recorder{byShard: map[string][]record.Record{}} }

func (r *recorder) Handle(ctx context.Context, b *record.Batch) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if r.fail > 0 {
		r.fail--
		return errors.New("injected handler failure")
	}
	for _, rec := range b.Records {
		rec.Data = append([]byte(nil), rec.Data...)
		r.byShard[b.ShardID] = append(r.byShard[b.ShardID], rec)
		r.order = append(r.order, rec)
	}
	return nil
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, recs := range r.byShard {
		n += len(recs)
	}
	return n
}

func (r *recorder) all() []record.Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []record.Record
	for _, recs := range r.byShard {
		out = append(out, recs...)
	}
	return out
}

func (r *recorder) handled() []record.Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]record.Record(nil), r.order...)
}

func (r *recorder) shard(id string) []record.Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]record.Record(nil), r.byShard[id]...)
}

type harness struct {
	t     *testing.T
	emu   *emulator.Server
	kc    *kinesis.Client
	store checkpoint.Store
	rec   *recorder
}

func fastEmulator() emulator.Options {
	return emulator.Options{
		ConsumerActivationDelay: 200 * time.Millisecond,
		ConsumerDeletionDelay:   -1,
		SubscribeRate:           -1,
		TakeoverGrace:           -1,
		EmptyEventInterval:      100 * time.Millisecond,
	}
}

func fastTimers() Timers {
	return Timers{
		IdleTimeout:            2 * time.Second,
		ShardSyncInterval:      500 * time.Millisecond,
		MinResubscribeInterval: 20 * time.Millisecond,
		BackoffInitial:         20 * time.Millisecond,
		BackoffMax:             200 * time.Millisecond,
		ConsumerPollInitial:    20 * time.Millisecond,
		ConsumerPollMax:        100 * time.Millisecond,
		ConsumerActiveTimeout:  10 * time.Second,
		ShutdownTimeout:        5 * time.Second,
		CheckpointInterval:     0,
	}
}

func newHarness(t *testing.T, opts emulator.Options) *harness {
	t.Helper()
	emu, err := emulator.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emu.Close() })
	for _, line := range emu.EnvLines() {
		k, v, _ := strings.Cut(line, "=")
		t.Setenv(k, v)
	}
	kc, err := NewClient(context.Background(), ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	store, err := checkpoint.NewFileStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, emu: emu, kc: kc, store: store, rec: newRecorder()}
}

func (h *harness) consumer(spec StreamSpec, timers Timers) *StreamConsumer {
	if testing.Verbose() {
		return NewStreamConsumer(spec, Options{Client: h.kc, Checkpoints: h.store, Handler: h.rec, Timers: timers,
			Log: zerolog.New(zerolog.NewTestWriter(h.t)).Level(zerolog.DebugLevel)})
	}
	return NewStreamConsumer(spec, Options{Client: h.kc, Checkpoints: h.store, Handler: h.rec, Timers: timers, Log: zerolog.Nop()})
}

// start runs a consumer in the background; stop cancels it and returns Run's error.
func (h *harness) start(c *StreamConsumer) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(20 * time.Second):
				h.t.Fatal("consumer did not stop")
			}
		})
		return err
	}
	h.t.Cleanup(func() { stop() })
	return stop
}

// put writes n records per key, data "key:i", and returns what each key expects.
func (h *harness) put(stream string, keys []string, from, n int) {
	h.t.Helper()
	for i := from; i < from+n; i++ {
		for _, k := range keys {
			if _, _, err := h.emu.PutRecord(stream, k, []byte(fmt.Sprintf("%s:%d", k, i))); err != nil {
				h.t.Fatal(err)
			}
		}
	}
}

func keys(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("user%d", i)
	}
	return out
}

// checkExactlyInOrder asserts that every key's records arrived exactly once,
// in the order they were written, 0..n-1.
func checkExactlyInOrder(t *testing.T, recs []record.Record, ks []string, n int) {
	t.Helper()
	next := map[string]int{}
	for _, r := range recs {
		k, i := parseData(t, r.Data)
		if k != r.PartitionKey {
			t.Fatalf("record %q has partition key %s", r.Data, r.PartitionKey)
		}
		if i != next[k] {
			t.Fatalf("key %s: got record %d, want %d (duplicate or gap or reorder)", k, i, next[k])
		}
		next[k]++
	}
	for _, k := range ks {
		if next[k] != n {
			t.Fatalf("key %s: %d records, want %d", k, next[k], n)
		}
	}
}

func parseData(t *testing.T, d []byte) (string, int) {
	t.Helper()
	k, i, ok := strings.Cut(string(d), ":")
	if !ok {
		t.Fatalf("bad data %q", d)
	}
	var n int
	fmt.Sscan(i, &n)
	return k, n
}
