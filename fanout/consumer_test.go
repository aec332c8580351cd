package fanout

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/rs/zerolog"

	"github.com/fanoutd/fanoutd/checkpoint"
	"github.com/fanoutd/fanoutd/emulator"
	"github.com/fanoutd/fanoutd/internal/testutil"
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
	// The endpoint, CA and credentials are passed, not set in the process's
	// environment: tests run in parallel, each with its own emulator.
	kc, err := NewClient(context.Background(), ClientOptions{
		Region:   emu.Region(),
		Endpoint: emu.URL(),
		CABundle: emu.CAPEM(),
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: "emulator", SecretAccessKey: "emulator", Source: "test"}, nil
		}),
	})
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

// deliveries are the records as the shared checker takes them.
func deliveries(recs []record.Record) []testutil.Delivery {
	out := make([]testutil.Delivery, len(recs))
	for i, r := range recs {
		out[i] = testutil.Delivery{PartitionKey: r.PartitionKey, Data: r.Data}
	}
	return out
}

// checkExactlyInOrder asserts that every key's records arrived exactly once,
// in the order they were written, 0..n-1.
func checkExactlyInOrder(t *testing.T, recs []record.Record, ks []string, n int) {
	t.Helper()
	testutil.CheckDelivered(t, deliveries(recs), testutil.Want(ks, n), testutil.ExactlyOnce)
}
