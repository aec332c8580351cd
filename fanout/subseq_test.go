package fanout

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/fanoutd/fanoutd/internal/testutil"
	"github.com/fanoutd/fanoutd/internal/testutil/emutest"
	"github.com/fanoutd/fanoutd/kpl"
	"github.com/fanoutd/fanoutd/record"
)

// failingFrom is a recorder whose calls from the from-th on fail, until
// failures have failed (0: for ever).
type failingFrom struct {
	*recorder
	mu       sync.Mutex
	calls    int
	from     int
	failures int
	failed   int
}

func (f *failingFrom) Handle(ctx context.Context, b *record.Batch) error {
	f.mu.Lock()
	f.calls++
	fail := f.calls >= f.from && (f.failures == 0 || f.failed < f.failures)
	if fail {
		f.failed++
	}
	f.mu.Unlock()
	if fail {
		return errors.New("injected handler failure")
	}
	return f.recorder.Handle(ctx, b)
}

func (f *failingFrom) failedCalls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.failed
}

// aggregateUsers is how many user records the test aggregate holds: four
// batches of at most record.MaxBatchRecords.
const aggregateUsers = 3*record.MaxBatchRecords + 500

// putAggregate writes a plain record, an aggregate of aggregateUsers user
// records and another plain record, and returns how many records that is.
func putAggregate(t *testing.T, h *harness) int {
	t.Helper()
	users := make([]record.Record, aggregateUsers)
	for i := range users {
		users[i] = record.Record{PartitionKey: "agg", Data: fmt.Appendf(nil, "agg:%d", i)}
	}
	for _, data := range [][]byte{[]byte("before"), kpl.Aggregate(users), []byte("after")} {
		if _, _, err := h.emu.PutRecord("s", "k", data); err != nil {
			t.Fatal(err)
		}
	}
	return aggregateUsers + 2
}

// checkOnce checks that recs hold every record putAggregate wrote once, in
// order.
func checkOnce(t *testing.T, recs []record.Record) {
	t.Helper()
	want := []string{"before"}
	for i := range aggregateUsers {
		want = append(want, fmt.Sprintf("agg:%d", i))
	}
	want = append(want, "after")
	if len(recs) != len(want) {
		t.Fatalf("%d records delivered, want %d", len(recs), len(want))
	}
	for i, r := range recs {
		if string(r.Data) != want[i] {
			t.Fatalf("record %d is %q, want %q", i, r.Data, want[i])
		}
		if r.Aggregated && r.SubSequenceNumber != int64(i-1) {
			t.Fatalf("record %d: sub-sequence %d", i, r.SubSequenceNumber)
		}
	}
}

func hasAfter(rec *recorder) func() bool {
	return func() bool {
		recs := rec.handled()
		return len(recs) > 0 && string(recs[len(recs)-1].Data) == "after"
	}
}

// A batch that fails inside a KPL aggregate is retried from there: the
// batches confirmed before it are not handed over again.
func TestAggregateRetryGoesOnAfterTheConfirmedBatches(t *testing.T) {
	t.Parallel()
	for _, spec := range []StreamSpec{{Name: "s"}, pollingSpec("s")} {
		t.Run(string(cmp.Or(spec.Read, ReadEFO)), func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, emutest.Options())
			if err := h.emu.CreateStream("s", 1); err != nil {
				t.Fatal(err)
			}
			putAggregate(t, h)
			f := &failingFrom{recorder: h.rec, from: 3, failures: 1}
			c := NewStreamConsumer(spec, Options{Client: h.kc, Checkpoints: h.store, Handler: f, Timers: fastTimers(), Log: zerolog.Nop()})
			h.start(c)
			testutil.WaitFor(t, 30*time.Second, "the last record", hasAfter(h.rec))
			if f.failedCalls() != 1 {
				t.Fatalf("%d failed calls, want 1", f.failedCalls())
			}
			checkOnce(t, h.rec.handled())
		})
	}
}

// A consumer stopped inside a KPL aggregate writes its final checkpoint
// inside it; the next one, in either read mode, goes on at the next user
// record.
func TestStoppedInsideAnAggregateResumesAtTheNextUserRecord(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name          string
		first, second StreamSpec
	}{
		{"efo", StreamSpec{Name: "s"}, StreamSpec{Name: "s"}},
		{"polling", pollingSpec("s"), pollingSpec("s")},
		{"efo_to_polling", StreamSpec{Name: "s"}, pollingSpec("s")},
		{"polling_to_efo", pollingSpec("s"), StreamSpec{Name: "s"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, emutest.Options())
			if err := h.emu.CreateStream("s", 1); err != nil {
				t.Fatal(err)
			}
			putAggregate(t, h)
			f := &failingFrom{recorder: h.rec, from: 3}
			// Only the final checkpoint, at the stop, is written after the
			// first batch.
			timers := fastTimers()
			timers.CheckpointInterval = time.Hour
			stop := h.start(NewStreamConsumer(tc.first, Options{Client: h.kc, Checkpoints: h.store, Handler: f, Timers: timers, Log: zerolog.Nop()}))
			testutil.WaitFor(t, 30*time.Second, "a failed batch", func() bool { return f.failedCalls() > 0 })
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			cp, ok, err := h.store.Get(t.Context(), "s", "fanoutd", "shardId-000000000000")
			if err != nil || !ok || !cp.InAggregate || cp.SubSequenceNumber != 2*record.MaxBatchRecords-2 {
				t.Fatalf("checkpoint %+v, %v, %v; want inside the aggregate after sub-sequence %d", cp, ok, err, 2*record.MaxBatchRecords-2)
			}
			h.start(h.consumer(tc.second, fastTimers()))
			testutil.WaitFor(t, 30*time.Second, "the last record", hasAfter(h.rec))
			checkOnce(t, h.rec.handled())
		})
	}
}

// A batch that fails after whole records of a large event is retried after
// the last record confirmed, not from the event's start.
func TestLargeEventRetryGoesOnAfterTheConfirmedBatches(t *testing.T) {
	t.Parallel()
	for _, spec := range []StreamSpec{{Name: "s"}, pollingSpec("s")} {
		t.Run(string(cmp.Or(spec.Read, ReadEFO)), func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, emutest.Options())
			if err := h.emu.CreateStream("s", 1); err != nil {
				t.Fatal(err)
			}
			ks := keys(1)
			const n = 3*record.MaxBatchRecords + 10
			h.put("s", ks, 0, n)
			f := &failingFrom{recorder: h.rec, from: 2, failures: 1}
			c := NewStreamConsumer(spec, Options{Client: h.kc, Checkpoints: h.store, Handler: f, Timers: fastTimers(), Log: zerolog.Nop()})
			h.start(c)
			testutil.WaitFor(t, 30*time.Second, "the last record", func() bool {
				recs := h.rec.handled()
				return len(recs) > 0 && string(recs[len(recs)-1].Data) == fmt.Sprintf("%s:%d", ks[0], n-1)
			})
			if f.failedCalls() != 1 {
				t.Fatalf("%d failed calls, want 1", f.failedCalls())
			}
			checkExactlyInOrder(t, h.rec.handled(), ks, n)
		})
	}
}

// A shard handed over inside a KPL aggregate writes its final checkpoint
// there: the next owner goes on at the next user record.
func TestHandoffInsideAnAggregate(t *testing.T) {
	t.Parallel()
	h := newHarness(t, emutest.Options())
	if err := h.emu.CreateStream("s", 1); err != nil {
		t.Fatal(err)
	}
	putAggregate(t, h)
	f := &failingFrom{recorder: h.rec, from: 3}
	timers := fastTimers()
	timers.CheckpointInterval = time.Hour
	lease := &testLease{done: make(chan struct{})}
	lease.valid.Store(true)
	c := NewStreamConsumer(StreamSpec{Name: "s"}, Options{Client: h.kc, Checkpoints: h.store, Handler: f, Timers: timers, Log: zerolog.Nop(),
		Leases: &testLeases{lease: lease}})
	stop := h.start(c)
	testutil.WaitFor(t, 30*time.Second, "a failed batch", func() bool { return f.failedCalls() > 0 })
	close(lease.done)
	testutil.WaitFor(t, 30*time.Second, "the final checkpoint inside the aggregate", func() bool {
		cp, ok, err := h.store.Get(t.Context(), "s", "fanoutd", "shardId-000000000000")
		return err == nil && ok && cp.InAggregate && cp.SubSequenceNumber == 2*record.MaxBatchRecords-2
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	h.start(h.consumer(pollingSpec("s"), fastTimers()))
	testutil.WaitFor(t, 30*time.Second, "the last record", hasAfter(h.rec))
	checkOnce(t, h.rec.handled())
}
