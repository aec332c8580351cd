package fanout

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/fanoutd/fanoutd/fanout/internal/efostream"
	"github.com/fanoutd/fanoutd/internal/testutil"
	"github.com/fanoutd/fanoutd/internal/testutil/emutest"
	"github.com/fanoutd/fanoutd/record"
)

// observedReader wraps a consumer's real readers and counts the events with
// records they returned, so that a test knows when one was read ahead.
type observedReader struct {
	streamReader
	events atomic.Int64
}

func (o *observedReader) shard(id string, log zerolog.Logger) shardReader {
	return observedShard{o.streamReader.shard(id, log), o}
}

type observedShard struct {
	shardReader
	o *observedReader
}

func (s observedShard) open(ctx context.Context, at position) (reader, error) {
	r, err := s.shardReader.open(ctx, at)
	if err != nil {
		return nil, err
	}
	return observedNext{r, s.o}, nil
}

type observedNext struct {
	reader
	o *observedReader
}

func (r observedNext) next(b *efostream.Buffers, dst []record.Record) (readEvent, []record.Record, bool, error) {
	ev, recs, ok, err := r.reader.next(b, dst)
	if ok && err == nil && len(recs) > len(dst) {
		r.o.events.Add(1)
	}
	return ev, recs, ok, err
}

// heldBatch is a recorder whose first call waits for its verdict.
type heldBatch struct {
	*recorder
	once    sync.Once
	entered chan struct{}
	verdict chan error
}

func newHeldBatch(r *recorder) *heldBatch {
	return &heldBatch{recorder: r, entered: make(chan struct{}), verdict: make(chan error, 1)}
}

func (g *heldBatch) Handle(ctx context.Context, b *record.Batch) error {
	first := false
	g.once.Do(func() { first = true; close(g.entered) })
	if first {
		if err := <-g.verdict; err != nil {
			return err
		}
	}
	return g.recorder.Handle(ctx, b)
}

// observedConsumer is a consumer of spec whose handler is g, whose readers
// are counted, and that reads ahead with a pool of its own (one spare).
func (h *harness) observedConsumer(spec StreamSpec, d Decoder, g *heldBatch) (*StreamConsumer, *observedReader) {
	timers := fastTimers()
	timers.IdleTimeout = 20 * time.Second // the held batch is not a stall
	c := NewStreamConsumer(spec, Options{Client: h.kc, Checkpoints: h.store, Handler: g, Timers: timers, Log: zerolog.Nop(), Decoder: d})
	o := &observedReader{streamReader: c.reader}
	c.reader = o
	c.spares = newSlotPool(1)
	return c, o
}

func waitEntered(t *testing.T, g *heldBatch) {
	t.Helper()
	select {
	case <-g.entered:
	case <-time.After(20 * time.Second):
		t.Fatal("timed out waiting for the first batch")
	}
}

// An event read ahead of a batch that fails is dropped: its position is
// not taken, and the next reader reads it again, after the failed one.
func TestEventReadAheadOfAFailureIsReadAgain(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		spec    StreamSpec
		decoder Decoder
	}{{StreamSpec{Name: "s"}, DecoderFanoutd}, {StreamSpec{Name: "s"}, DecoderSDK}, {pollingSpec("s"), ""}} {
		spec := tc.spec
		t.Run(fmt.Sprintf("%s%s", spec.Read, tc.decoder), func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, emutest.Options())
			if err := h.emu.CreateStream("s", 1); err != nil {
				t.Fatal(err)
			}
			ks := keys(4)
			h.put("s", ks, 0, 1)
			g := newHeldBatch(h.rec)
			c, o := h.observedConsumer(spec, tc.decoder, g)
			h.start(c)
			waitEntered(t, g)
			h.put("s", ks, 1, 2)
			testutil.WaitFor(t, 20*time.Second, "an event read ahead", func() bool { return o.events.Load() >= 2 })
			g.verdict <- errors.New("injected handler failure")
			testutil.WaitFor(t, 20*time.Second, "12 records", func() bool { return h.rec.count() >= 12 })
			checkExactlyInOrder(t, h.rec.handled(), ks, 3)
			if st := c.Shards()[0]; st.Subscriptions < 2 || st.Ends["handler"] != 1 {
				t.Fatalf("%d readers opened, ends %v; want a second after the failed batch", st.Subscriptions, st.Ends)
			}
		})
	}
}

// A stream started at LATEST whose first records fail to be delivered while
// the next response was read ahead gets them again, and only them: the
// reader goes back to the iterator those records were read with, where a
// new one would start at LATEST less its skew, before the first records.
func TestPollingLatestRedeliversAfterAFailureReadAhead(t *testing.T) {
	t.Parallel()
	h := newHarness(t, emutest.Options())
	if err := h.emu.CreateStream("s", 1); err != nil {
		t.Fatal(err)
	}
	ks := keys(4)
	h.put("s", ks, 0, 3) // before the start: not read
	spec := pollingSpec("s")
	spec.StartPosition = StartLatest
	g := newHeldBatch(h.rec)
	c, o := h.observedConsumer(spec, "", g)
	h.start(c)
	testutil.WaitFor(t, 20*time.Second, "a call at LATEST", func() bool { return polls(c, PollOK) > 0 })
	h.put("s", ks, 3, 1)
	waitEntered(t, g)
	h.put("s", ks, 4, 1)
	testutil.WaitFor(t, 20*time.Second, "a response read ahead", func() bool { return o.events.Load() >= 2 })
	g.verdict <- errors.New("injected handler failure")
	testutil.WaitFor(t, 20*time.Second, "8 records", func() bool { return h.rec.count() >= 8 })
	for _, k := range ks {
		var got []string
		for _, r := range h.rec.handled() {
			if r.PartitionKey == k {
				got = append(got, string(r.Data))
			}
		}
		if want := []string{k + ":3", k + ":4"}; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("key %s: %v, want %v", k, got, want)
		}
	}
}

// Reading ahead borrows spare slots and gives them all back: shards that
// end, fail and stop leave the pool whole for the others.
func TestSpareSlotsComeBack(t *testing.T) {
	t.Parallel()
	h := newHarness(t, emutest.Options())
	if err := h.emu.CreateStream("s", 4); err != nil {
		t.Fatal(err)
	}
	ks := keys(16)
	h.put("s", ks, 0, 20)
	g := newHeldBatch(h.rec)
	c, _ := h.observedConsumer(StreamSpec{Name: "s"}, "", g)
	c.spares = newSlotPool(2)
	stop := h.start(c)
	waitEntered(t, g)
	g.verdict <- errors.New("injected handler failure")
	h.put("s", ks, 20, 20)
	testutil.WaitFor(t, 20*time.Second, "640 records", func() bool { return h.rec.count() >= 640 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if n := len(c.spares); n != 2 {
		t.Fatalf("%d spare slots back in the pool after the stop, want 2", n)
	}
	checkExactlyInOrder(t, h.rec.handled(), ks, 40)
}
