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

	"github.com/fanoutd/fanoutd/internal/testutil"
	"github.com/fanoutd/fanoutd/internal/testutil/emutest"
	"github.com/fanoutd/fanoutd/record"
)

// producer writes records "key:i" for every key, as fast as the emulator
// takes them, until stopped; it returns how many rounds it wrote.
type producer struct {
	h      *harness
	stream string
	keys   []string
	rounds atomic.Int64
	stop   chan struct{}
	done   chan struct{}
}

func (h *harness) produce(stream string, ks []string) *producer {
	p := &producer{h: h, stream: stream, keys: ks, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for i := 0; ; i++ {
			select {
			case <-p.stop:
				return
			default:
			}
			for _, k := range ks {
				if _, _, err := h.emu.PutRecord(stream, k, fmt.Appendf(nil, "%s:%d", k, i)); err != nil {
					h.t.Errorf("put: %v", err)
					return
				}
			}
			p.rounds.Store(int64(i + 1))
		}
	}()
	return p
}

// waitRounds waits until the producer wrote n more rounds.
func (p *producer) waitRounds(n int64) {
	p.h.t.Helper()
	target := p.rounds.Load() + n
	testutil.WaitFor(p.h.t, 30*time.Second, fmt.Sprintf("%d rounds produced", target), func() bool { return p.rounds.Load() >= target })
}

func (p *producer) finish() int {
	close(p.stop)
	<-p.done
	return int(p.rounds.Load())
}

// subscribedAll waits until every reading shard of c has an open
// subscription and at least want shards are reading.
func subscribedAll(t *testing.T, c *StreamConsumer, want int) {
	t.Helper()
	testutil.WaitFor(t, 20*time.Second, "every shard subscribed", func() bool {
		n := 0
		for _, st := range c.Shards() {
			if st.State == "reading" {
				if !st.Subscribed {
					return false
				}
				n++
			}
		}
		return n >= want
	})
}

// freshSubscriptions waits until at least n shards of c are reading and
// each has an open subscription opened after the counts in before (nil: any),
// and returns the new counts. A subscription the emulator is told to end
// after this is one of these: Server.EndSubscriptions sent to an older one,
// still ending, would be lost.
func freshSubscriptions(t *testing.T, c *StreamConsumer, n int, before map[string]uint64) map[string]uint64 {
	t.Helper()
	var now map[string]uint64
	testutil.WaitFor(t, 30*time.Second, "a new subscription on every shard", func() bool {
		now = map[string]uint64{}
		for _, st := range c.Shards() {
			if st.State != "reading" {
				continue
			}
			if !st.Subscribed || st.Subscriptions <= before[st.ShardID] {
				return false
			}
			now[st.ShardID] = st.Subscriptions
		}
		return len(now) >= n
	})
	return now
}

// With LATEST (and AT_TIMESTAMP), the start position applies only to the
// shards of a stream's first read: children of a split or a merge start at
// TRIM_HORIZON, so what producers wrote to them before they were
// subscribed is not skipped. The same holds when the stream is polled.
func TestReshardChildrenLoseNothingWithLatestOrTimestamp(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		start StartPosition
		read  ReadMode
	}{{StartLatest, ReadEFO}, {StartAtTimestamp, ReadEFO}, {StartLatest, ReadPolling}, {StartAtTimestamp, ReadPolling}} {
		start := tc.start
		t.Run(string(start)+"/"+string(tc.read), func(t *testing.T) {
			h := newHarness(t, emutest.Options())
			if err := h.emu.CreateStream("s", 2); err != nil {
				t.Fatal(err)
			}
			// Records from before the start are not wanted with either position.
			h.put("s", []string{"old"}, 0, 5)
			spec := StreamSpec{Name: "s", StartPosition: start, Read: tc.read, Polling: PollingSpec{Interval: 50 * time.Millisecond}}
			if start == StartAtTimestamp {
				h.emu.AdvanceClock(time.Second)
				spec.StartTimestamp = h.emu.Now()
			}
			c := h.consumer(spec, fastTimers())
			h.start(c)
			subscribedAll(t, c, 2)

			ks := keys(16)
			p := h.produce("s", ks)
			p.waitRounds(20)
			kids, err := h.emu.SplitShard("s", "shardId-000000000000")
			if err != nil {
				t.Fatal(err)
			}
			p.waitRounds(20)
			if _, err := h.emu.MergeShards("s", kids[0], kids[1]); err != nil {
				t.Fatal(err)
			}
			p.waitRounds(20)
			n := p.finish()
			testutil.WaitFor(t, 30*time.Second, "every record", func() bool { return h.rec.count() >= n*len(ks) })
			checkExactlyInOrder(t, h.rec.handled(), ks, n)
			noOld(t, h.rec.handled())
			ended := 0
			for _, st := range c.Shards() {
				if st.State == "ended" {
					ended++
				}
			}
			if ended != 3 {
				t.Fatalf("%d shards ended, want 3 (a parent and the two children of the split)", ended)
			}
		})
	}
}

// A first read with LATEST skips the shards that are already closed (they
// will get nothing new) and records them as ended, so that their open
// children start at once and a restart does not read them from the start.
func TestLatestFirstReadSkipsClosedShards(t *testing.T) {
	t.Parallel()
	h := newHarness(t, emutest.Options())
	if err := h.emu.CreateStream("s", 1); err != nil {
		t.Fatal(err)
	}
	h.put("s", []string{"old"}, 0, 5)
	if _, err := h.emu.SplitShard("s", "shardId-000000000000"); err != nil {
		t.Fatal(err)
	}
	h.put("s", []string{"old"}, 5, 5)
	c := h.consumer(StreamSpec{Name: "s", StartPosition: StartLatest}, fastTimers())
	stop := h.start(c)
	subscribedAll(t, c, 2)
	ks := keys(8)
	h.put("s", ks, 0, 10)
	testutil.WaitFor(t, 20*time.Second, "80 records", func() bool { return h.rec.count() >= 80 })
	checkExactlyInOrder(t, h.rec.handled(), ks, 10)
	noOld(t, h.rec.handled())
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	cp, ok, err := h.store.Get(t.Context(), "s", "fanoutd", "shardId-000000000000")
	if err != nil || !ok || !cp.ShardEnded {
		t.Fatalf("checkpoint of the closed parent: %+v %v %v, want ShardEnded", cp, ok, err)
	}
	// A restart reads nothing old.
	h.start(h.consumer(StreamSpec{Name: "s", StartPosition: StartLatest}, fastTimers()))
	h.put("s", ks, 10, 10)
	testutil.WaitFor(t, 20*time.Second, "160 records", func() bool { return h.rec.count() >= 160 })
	checkExactlyInOrder(t, h.rec.handled(), ks, 20)
	noOld(t, h.rec.handled())
}

// noOld fails if a record written before the start ("old:i") was delivered.
func noOld(t *testing.T, recs []record.Record) {
	t.Helper()
	for _, r := range recs {
		if r.PartitionKey == "old" {
			t.Fatalf("record %q from before the start position was delivered", r.Data)
		}
	}
}

// A stream deleted and created again under its name (same ARN, same shard
// IDs) while fanoutd is stopped: the old checkpoints (one of them an ended
// shard that is open again in the new stream) are discarded and the new
// stream is read from the start position.
func TestRecreatedStreamWhileStopped(t *testing.T) {
	t.Parallel()
	h := newHarness(t, emutest.Options())
	if err := h.emu.CreateStream("s", 2); err != nil {
		t.Fatal(err)
	}
	ks := keys(8)
	h.put("s", ks, 0, 5)
	if _, err := h.emu.SplitShard("s", "shardId-000000000000"); err != nil {
		t.Fatal(err)
	}
	h.put("s", ks, 5, 5)
	c := h.consumer(StreamSpec{Name: "s"}, fastTimers())
	stop := h.start(c)
	testutil.WaitFor(t, 20*time.Second, "80 records", func() bool { return h.rec.count() >= 80 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if cp, _, _ := h.store.Get(t.Context(), "s", "fanoutd", "shardId-000000000000"); !cp.ShardEnded {
		t.Fatalf("shard 0 checkpoint %+v, want ended", cp)
	}

	if err := h.emu.DeleteStream("s"); err != nil {
		t.Fatal(err)
	}
	if err := h.emu.CreateStream("s", 2); err != nil {
		t.Fatal(err)
	}
	h.put("s", ks, 100, 10)
	h.rec = newRecorder()
	var logs testutil.SyncBuffer
	c = NewStreamConsumer(StreamSpec{Name: "s"}, Options{Client: h.kc, Checkpoints: h.store, Handler: h.rec, Timers: fastTimers(), Log: zerolog.New(&logs)})
	h.start(c)
	testutil.WaitFor(t, 20*time.Second, "80 records of the new stream", func() bool { return h.rec.count() >= 80 })
	recs := h.rec.handled()
	for i := range recs {
		var n int
		if _, err := fmt.Sscanf(string(recs[i].Data), recs[i].PartitionKey+":%d", &n); err != nil {
			t.Fatalf("record %q: %v", recs[i].Data, err)
		}
		recs[i].Data = testutil.RecordData(recs[i].PartitionKey, n-100)
	}
	checkExactlyInOrder(t, recs, ks, 10)
	if !contains(logs.String(), "deleted and created again") {
		t.Fatalf("no warning about the recreated stream in:\n%s", logs.String())
	}
	cps, err := h.store.List(t.Context(), "s", "fanoutd")
	if err != nil {
		t.Fatal(err)
	}
	created := c.created.UnixMilli()
	for id, cp := range cps {
		if cp.StreamCreated.UnixMilli() != created {
			t.Fatalf("checkpoint of %s names stream incarnation %v, want %v", id, cp.StreamCreated, c.created)
		}
	}
}

// A stream deleted while it is read is reported, probed, and read again as
// a new stream when it is created again, without a restart.
func TestRecreatedStreamWhileRunning(t *testing.T) {
	t.Parallel()
	h := newHarness(t, emutest.Options())
	if err := h.emu.CreateStream("s", 2); err != nil {
		t.Fatal(err)
	}
	ks := keys(8)
	h.put("s", ks, 0, 10)
	c := h.consumer(StreamSpec{Name: "s"}, fastTimers())
	stop := h.start(c)
	testutil.WaitFor(t, 20*time.Second, "80 records", func() bool { return h.rec.count() >= 80 })
	if err := h.emu.DeleteStream("s"); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 20*time.Second, "the deletion reported", func() bool { return c.Deleted() != "" })
	if err := h.emu.CreateStream("s", 3); err != nil {
		t.Fatal(err)
	}
	h.put("s", ks, 10, 10)
	testutil.WaitFor(t, 30*time.Second, "160 records", func() bool { return h.rec.count() >= 160 })
	checkExactlyInOrder(t, h.rec.handled(), ks, 20)
	if d := c.Deleted(); d != "" {
		t.Fatalf("still reported deleted: %s", d)
	}
	if n := len(c.Shards()); n != 3 {
		t.Fatalf("%d shards, want the new stream's 3", n)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// gate blocks the first batch of one shard until released, then fails it.
type gate struct {
	*recorder
	shard   string
	blocked chan struct{}
	release chan struct{}
	once    sync.Once
}

func (g *gate) Handle(ctx context.Context, b *record.Batch) error {
	if b.ShardID == g.shard {
		first := false
		g.once.Do(func() { first = true })
		if first {
			close(g.blocked)
			<-g.release
			return errors.New("injected: the batch was not delivered")
		}
	}
	return g.recorder.Handle(ctx, b)
}

// A parent shard that ages out of retention while fanoutd still lists it:
// SubscribeToShard answers ResourceNotFoundException. The shard counts as
// ended (warning, metric) and its children start.
func TestParentAgedOutOfRetention(t *testing.T) {
	t.Parallel()
	h := newHarness(t, emutest.Options())
	if err := h.emu.CreateStream("s", 1); err != nil {
		t.Fatal(err)
	}
	h.put("s", []string{"old"}, 0, 5)
	if _, err := h.emu.SplitShard("s", "shardId-000000000000"); err != nil {
		t.Fatal(err)
	}
	g := &gate{recorder: h.rec, shard: "shardId-000000000000", blocked: make(chan struct{}), release: make(chan struct{})}
	var logs testutil.SyncBuffer
	c := NewStreamConsumer(StreamSpec{Name: "s"}, Options{Client: h.kc, Checkpoints: h.store, Handler: g, Timers: fastTimers(), Log: zerolog.New(&logs)})
	h.start(c)
	select {
	case <-g.blocked:
	case <-time.After(20 * time.Second):
		t.Fatal("the parent's first batch never came")
	}
	// While the parent's batch is in flight, its records age out.
	h.emu.AdvanceClock(25 * time.Hour)
	close(g.release)
	ks := keys(8)
	h.put("s", ks, 0, 10)
	testutil.WaitFor(t, 20*time.Second, "80 records from the children", func() bool { return h.rec.count() >= 80 })
	checkExactlyInOrder(t, h.rec.handled(), ks, 10)
	var gone uint64
	for _, st := range c.Shards() {
		gone += st.Ends["shard_gone"]
	}
	if gone != 1 {
		t.Fatalf("%d shard_gone ends, want 1", gone)
	}
	if !contains(logs.String(), "no longer listed") {
		t.Fatalf("no warning in:\n%s", logs.String())
	}
	if cp, _, _ := h.store.Get(t.Context(), "s", "fanoutd", "shardId-000000000000"); !cp.ShardEnded {
		t.Fatalf("checkpoint of the gone shard %+v, want ended", cp)
	}
}
