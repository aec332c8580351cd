package fanout

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/fanoutd/fanoutd/checkpoint"
	"github.com/fanoutd/fanoutd/internal/testutil"
	"github.com/fanoutd/fanoutd/internal/testutil/emutest"
	"github.com/fanoutd/fanoutd/kpl"
	"github.com/fanoutd/fanoutd/record"
)

func TestEveryRecordOnceInOrder(t *testing.T) {
	t.Parallel()
	h := newHarness(t, emutest.Options())
	if err := h.emu.CreateStream("orders", 3); err != nil {
		t.Fatal(err)
	}
	ks := keys(12)
	h.put("orders", ks, 0, 20)
	c := h.consumer(StreamSpec{Name: "orders"}, fastTimers())
	h.start(c)
	h.put("orders", ks, 20, 20)
	testutil.WaitFor(t, 20*time.Second, "480 records", func() bool { return h.rec.count() >= 480 })
	checkExactlyInOrder(t, h.rec.all(), ks, 40)
	// Records of a shard carry its sequence numbers in increasing order.
	for _, st := range c.Shards() {
		recs := h.rec.shard(st.ShardID)
		for i := 1; i < len(recs); i++ {
			if recs[i].SequenceNumber <= recs[i-1].SequenceNumber {
				t.Fatalf("%s: sequence numbers out of order", st.ShardID)
			}
		}
	}
}

// Subscriptions end (as at the end of their 5 minutes, driven by the
// emulator, not by the clock) and are renewed within AWS's limits: one
// SubscribeToShard per second per shard, and a 5-second takeover grace.
func TestAcrossSubscriptionExpiry(t *testing.T) {
	t.Parallel()
	opts := emutest.Options()
	opts.SubscribeRate, opts.TakeoverGrace = 0, 0 // AWS's values
	h := newHarness(t, opts)
	if err := h.emu.CreateStream("s", 2); err != nil {
		t.Fatal(err)
	}
	ks := keys(6)
	timers := fastTimers()
	timers.IdleTimeout = time.Minute // only the emulator ends subscriptions here
	c := h.consumer(StreamSpec{Name: "s"}, timers)
	h.start(c)
	// Each round: records, then every subscription ends cleanly; the next
	// round starts once both shards subscribed again.
	const rounds = 3
	var subs map[string]uint64
	for i := 0; i < rounds; i++ {
		subs = freshSubscriptions(t, c, 2, subs)
		h.put("s", ks, i*6, 6)
		testutil.WaitFor(t, 20*time.Second, "the round's records", func() bool { return h.rec.count() >= (i+1)*36 })
		if n := h.emu.EndSubscriptions("s", "", "", ""); n != 2 {
			t.Fatalf("round %d: %d subscriptions ended, want 2", i, n)
		}
	}
	freshSubscriptions(t, c, 2, subs)
	checkExactlyInOrder(t, h.rec.all(), ks, rounds*6)
	var ended uint64
	for _, st := range c.Shards() {
		ended += st.Ends["expired"]
	}
	if ended != 2*rounds {
		t.Fatalf("%d subscriptions ended cleanly, want %d", ended, 2*rounds)
	}
	if hits := h.emu.LimitHits("SubscribeToShard"); hits == 0 {
		t.Logf("no renewal was refused by the subscribe rate limit")
	}
}

func TestSplitAndMergeKeepKeyOrder(t *testing.T) {
	t.Parallel()
	h := newHarness(t, emutest.Options())
	if err := h.emu.CreateStream("s", 2); err != nil {
		t.Fatal(err)
	}
	ks := keys(16)
	c := h.consumer(StreamSpec{Name: "s"}, fastTimers())
	// Handler is slow on parents so children have data before parents end.
	h.put("s", ks, 0, 10)
	kids, err := h.emu.SplitShard("s", "shardId-000000000000")
	if err != nil {
		t.Fatal(err)
	}
	h.put("s", ks, 10, 10)
	if _, err := h.emu.MergeShards("s", kids[0], kids[1]); err != nil {
		t.Fatal(err)
	}
	h.put("s", ks, 20, 10)
	h.start(c)
	h.put("s", ks, 30, 10)
	if err := h.emu.UpdateShardCount("s", 4); err != nil {
		t.Fatal(err)
	}
	h.put("s", ks, 40, 10)
	testutil.WaitFor(t, 30*time.Second, "800 records", func() bool { return h.rec.count() >= 800 })
	// Order per key across shards: merge in handling order.
	checkExactlyInOrder(t, h.rec.handled(), ks, 50)
	ended := 0
	for _, st := range c.Shards() {
		if st.State == "ended" {
			ended++
		}
	}
	if ended < 4 {
		t.Fatalf("%d shards ended", ended)
	}
}

func TestKPLRecordsArriveAsUserRecords(t *testing.T) {
	t.Parallel()
	h := newHarness(t, emutest.Options())
	if err := h.emu.CreateStream("s", 1); err != nil {
		t.Fatal(err)
	}
	agg := kpl.Aggregate([]record.Record{
		{PartitionKey: "user1", Data: []byte("user1:0")},
		{PartitionKey: "user1", Data: []byte("user1:1")},
		{PartitionKey: "user2", Data: []byte("user2:0"), ExplicitHashKey: "42"},
	})
	_, seq, err := h.emu.PutRecord("s", "user1", agg)
	if err != nil {
		t.Fatal(err)
	}
	h.emu.PutRecord("s", "user3", []byte("user3:0"))
	h.start(h.consumer(StreamSpec{Name: "s"}, fastTimers()))
	testutil.WaitFor(t, 10*time.Second, "4 records", func() bool { return h.rec.count() >= 4 })
	recs := h.rec.all()
	if len(recs) != 4 {
		t.Fatalf("%d records", len(recs))
	}
	for i, want := range []struct {
		data, pk, ehk string
		sub           int64
		agg           bool
	}{{"user1:0", "user1", "", 0, true}, {"user1:1", "user1", "", 1, true}, {"user2:0", "user2", "42", 2, true}, {"user3:0", "user3", "", 0, false}} {
		r := recs[i]
		if string(r.Data) != want.data || r.PartitionKey != want.pk || r.ExplicitHashKey != want.ehk || r.SubSequenceNumber != want.sub || r.Aggregated != want.agg {
			t.Fatalf("record %d: %+v", i, r)
		}
		if i < 3 && r.SequenceNumber != seq {
			t.Fatalf("sub-record %d has sequence %s, want %s", i, r.SequenceNumber, seq)
		}
	}
}

func TestRestartResumesFromCheckpoint(t *testing.T) {
	t.Parallel()
	h := newHarness(t, emutest.Options())
	if err := h.emu.CreateStream("s", 2); err != nil {
		t.Fatal(err)
	}
	ks := keys(8)
	h.put("s", ks, 0, 10)
	stop := h.start(h.consumer(StreamSpec{Name: "s"}, fastTimers()))
	testutil.WaitFor(t, 10*time.Second, "80 records", func() bool { return h.rec.count() >= 80 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	h.put("s", ks, 10, 10)
	// A new consumer with the same store (a restarted daemon) reads only what is new.
	h.start(h.consumer(StreamSpec{Name: "s", StartPosition: StartLatest}, fastTimers()))
	testutil.WaitFor(t, 10*time.Second, "160 records", func() bool { return h.rec.count() >= 160 })
	checkExactlyInOrder(t, h.rec.all(), ks, 20)
	cps, err := h.store.List(t.Context(), "s", "fanoutd")
	if err != nil || len(cps) != 2 {
		t.Fatalf("checkpoints %v %v", cps, err)
	}
}

func TestHandlerFailureRedelivers(t *testing.T) {
	t.Parallel()
	h := newHarness(t, emutest.Options())
	if err := h.emu.CreateStream("s", 1); err != nil {
		t.Fatal(err)
	}
	ks := keys(4)
	h.put("s", ks, 0, 5)
	h.rec.fail = 3
	h.start(h.consumer(StreamSpec{Name: "s"}, fastTimers()))
	testutil.WaitFor(t, 10*time.Second, "20 records", func() bool { return h.rec.count() >= 20 })
	h.put("s", ks, 5, 5)
	testutil.WaitFor(t, 10*time.Second, "40 records", func() bool { return h.rec.count() >= 40 })
	checkExactlyInOrder(t, h.rec.all(), ks, 10)
}

func TestSurvivesKinesisFaults(t *testing.T) {
	t.Parallel()
	h := newHarness(t, emutest.Options())
	if err := h.emu.CreateStream("s", 2); err != nil {
		t.Fatal(err)
	}
	ks := keys(8)
	timers := fastTimers()
	timers.IdleTimeout = 500 * time.Millisecond
	c := h.consumer(StreamSpec{Name: "s"}, timers)
	h.start(c)
	testutil.WaitFor(t, 10*time.Second, "subscriptions", func() bool { return h.emu.ActiveSubscriptions("s", "") == 2 })
	n := 0
	round := func(fault func()) {
		t.Helper()
		fault()
		h.put("s", ks, n, 3)
		n += 3
		testutil.WaitFor(t, 15*time.Second, "records after fault", func() bool { return h.rec.count() >= n*len(ks) })
	}
	round(func() { h.emu.EndSubscriptions("s", "", "InternalFailureException", "") })
	round(func() { h.emu.EndSubscriptions("s", "", "KMSThrottlingException", "") })
	round(func() { h.emu.EndSubscriptions("s", "", "ResourceInUseException", "") })
	round(func() { h.emu.CutSubscriptions("s", "") })
	round(func() { h.emu.DropConnections() })
	round(func() { h.emu.StallSubscriptions("s", "") }) // the idle watchdog recovers
	round(func() { h.emu.Throttle("SubscribeToShard", 3); h.emu.EndSubscriptions("s", "", "", "") })
	round(func() {
		h.emu.FailNext("SubscribeToShard", 2, "InternalFailureException", "500")
		h.emu.CutSubscriptions("s", "")
	})
	checkExactlyInOrder(t, h.rec.all(), ks, n)
}

func TestConsumerReusedAndReregistered(t *testing.T) {
	t.Parallel()
	h := newHarness(t, emutest.Options())
	if err := h.emu.CreateStream("s", 1); err != nil {
		t.Fatal(err)
	}
	arn, err := h.emu.RegisterConsumer("s", "fanoutd")
	if err != nil {
		t.Fatal(err)
	}
	c := h.consumer(StreamSpec{Name: "s"}, fastTimers())
	h.start(c)
	testutil.WaitFor(t, 10*time.Second, "subscription", func() bool { return h.emu.ActiveSubscriptions("s", "") == 1 })
	if got := c.reader.(*efo).consumerARN(); got != arn {
		t.Fatalf("consumer %s, want the existing %s", got, arn)
	}
	ks := keys(3)
	h.put("s", ks, 0, 3)
	testutil.WaitFor(t, 10*time.Second, "9 records", func() bool { return h.rec.count() >= 9 })
	// Deregistered behind our back: registered again, reading resumes.
	if err := h.emu.DeregisterConsumer(arn); err != nil {
		t.Fatal(err)
	}
	h.put("s", ks, 3, 3)
	testutil.WaitFor(t, 15*time.Second, "18 records", func() bool { return h.rec.count() >= 18 })
	checkExactlyInOrder(t, h.rec.all(), ks, 6)
	// (The new ARN may equal the old one: it ends with the creation time in
	// seconds.) The daemon registered it itself, once.
	if n := h.emu.OpCount("RegisterStreamConsumer"); n != 1 {
		t.Fatalf("%d registrations by the daemon, want 1", n)
	}
}

func TestMissingStreamFails(t *testing.T) {
	t.Parallel()
	h := newHarness(t, emutest.Options())
	c := h.consumer(StreamSpec{Name: "nope"}, fastTimers())
	err := c.Run(t.Context())
	if !errors.Is(err, ErrStreamNotFound) {
		t.Fatalf("got %v", err)
	}
}

func TestExpiredCheckpoint(t *testing.T) {
	t.Parallel()
	h := newHarness(t, emutest.Options())
	if err := h.emu.CreateStream("s", 1); err != nil {
		t.Fatal(err)
	}
	_, seq, _ := h.emu.PutRecord("s", "k", []byte("k:0"))
	h.emu.PutRecord("s", "k", []byte("k:1"))
	h.emu.AdvanceClock(25 * time.Hour)
	h.emu.PutRecord("s", "k", []byte("k:2"))
	if err := h.store.Put(t.Context(), "s", "fanoutd", "shardId-000000000000", checkpoint.Checkpoint{SequenceNumber: seq}); err != nil {
		t.Fatal(err)
	}
	err := h.consumer(StreamSpec{Name: "s"}, fastTimers()).Run(t.Context())
	if !errors.Is(err, ErrExpiredCheckpoint) || !contains(err.Error(), "on_expired_checkpoint: trim_horizon") {
		t.Fatalf("got %v", err)
	}
	h.start(h.consumer(StreamSpec{Name: "s", OnExpiredCheckpoint: OnExpiredTrimHorizon}, fastTimers()))
	testutil.WaitFor(t, 10*time.Second, "the kept record", func() bool { return h.rec.count() >= 1 })
	if recs := h.rec.all(); len(recs) != 1 || string(recs[0].Data) != "k:2" {
		t.Fatalf("got %v", recs)
	}
}

func contains(s, sub string) bool {
	return len(s) >= len(sub) && (s == sub || len(sub) == 0 || indexOf(s, sub) >= 0)
}

func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}

// An outage makes every retry fail the same way: the warnings are
// rate-limited per shard, not one per retry.
func TestRepeatedWarningsAreRateLimited(t *testing.T) {
	t.Parallel()
	h := newHarness(t, emutest.Options())
	if err := h.emu.CreateStream("s", 1); err != nil {
		t.Fatal(err)
	}
	h.put("s", keys(1), 0, 1)
	h.rec.fail = 30
	var buf testutil.SyncBuffer
	c := NewStreamConsumer(StreamSpec{Name: "s"}, Options{Client: h.kc, Checkpoints: h.store, Handler: h.rec,
		Timers: fastTimers(), Log: zerolog.New(&buf).Level(zerolog.WarnLevel)})
	c.timers.BackoffMax = 20 * time.Millisecond
	h.start(c)
	testutil.WaitFor(t, 20*time.Second, "the record after 30 failures", func() bool { return h.rec.count() >= 1 })
	if n := strings.Count(buf.String(), "could not deliver a batch"); n < 1 || n > 5 {
		t.Fatalf("%d warnings for 30 failures, want 1..5", n)
	}
}

// A handler error wrapping record.ErrStop stops the stream instead of being retried.
func TestHandlerErrStopStopsTheStream(t *testing.T) {
	t.Parallel()
	h := newHarness(t, emutest.Options())
	if err := h.emu.CreateStream("s", 1); err != nil {
		t.Fatal(err)
	}
	h.put("s", keys(1), 0, 1)
	stop := &stopHandler{}
	c := NewStreamConsumer(StreamSpec{Name: "s"}, Options{Client: h.kc, Checkpoints: h.store, Timers: fastTimers(), Log: zerolog.Nop(), Handler: stop})
	err := c.Run(t.Context())
	if calls := stop.calls; !errors.Is(err, record.ErrStop) || calls != 1 {
		t.Fatalf("Run: %v after %d calls, want record.ErrStop after 1", err, calls)
	}
	if cps, _ := h.store.List(t.Context(), "s", "fanoutd"); len(cps) != 0 {
		t.Fatalf("checkpoint moved past the undelivered batch: %v", cps)
	}
}

// stopHandler refuses every batch with record.ErrStop.
type stopHandler struct{ calls int }

func (s *stopHandler) Handle(ctx context.Context, b *record.Batch) error {
	s.calls++
	return fmt.Errorf("record too large: %w", record.ErrStop)
}
