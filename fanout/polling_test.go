package fanout

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/smithy-go/middleware"
	"github.com/rs/zerolog"

	"github.com/fanoutd/fanoutd/internal/testutil"
	"github.com/fanoutd/fanoutd/internal/testutil/emutest"
	"github.com/fanoutd/fanoutd/kpl"
	"github.com/fanoutd/fanoutd/record"
)

// pollingSpec is a stream read by polling, paced for tests.
func pollingSpec(name string) StreamSpec {
	return StreamSpec{Name: name, Read: ReadPolling, Polling: PollingSpec{Interval: 50 * time.Millisecond}}
}

// polls sums the GetRecords calls of c's shards with result.
func polls(c *StreamConsumer, result string) uint64 {
	var n uint64
	for _, st := range c.Shards() {
		n += st.Polls[result]
	}
	return n
}

// consumers lists the EFO consumers registered on a stream.
func (h *harness) consumers(stream string) []string {
	h.t.Helper()
	out, err := h.kc.ListStreamConsumers(h.t.Context(), &kinesis.ListStreamConsumersInput{StreamARN: aws.String(h.emu.StreamARN(stream))})
	if err != nil {
		h.t.Fatal(err)
	}
	var names []string
	for _, c := range out.Consumers {
		names = append(names, aws.ToString(c.ConsumerName))
	}
	return names
}

func TestPollingReadsBacklogAndLiveRecordsOnceInOrder(t *testing.T) {
	t.Parallel()
	opts := emutest.Options()
	opts.EnforceLimits = true // 5 GetRecords calls a second per shard
	h := newHarness(t, opts)
	if err := h.emu.CreateStream("orders", 3); err != nil {
		t.Fatal(err)
	}
	ks := keys(12)
	h.put("orders", ks, 0, 20)
	c := h.consumer(pollingSpec("orders"), fastTimers())
	h.start(c)
	testutil.WaitFor(t, 20*time.Second, "the backlog", func() bool { return h.rec.count() >= 240 })
	h.put("orders", ks, 20, 20)
	testutil.WaitFor(t, 20*time.Second, "480 records", func() bool { return h.rec.count() >= 480 })
	checkExactlyInOrder(t, h.rec.all(), ks, 40)
	if got := h.consumers("orders"); len(got) != 0 {
		t.Fatalf("consumers %v registered by a polling stream", got)
	}
	if c.ReadMode() != ReadPolling {
		t.Fatalf("read mode %s", c.ReadMode())
	}
	if n := polls(c, PollOK); n == 0 {
		t.Fatal("no GetRecords call counted")
	}
	if n := polls(c, PollThrottled); n != 0 {
		t.Fatalf("%d calls throttled: the reader exceeded 5 calls a second per shard", n)
	}
	for _, st := range c.Shards() {
		if st.Checkpoint == "" {
			t.Fatalf("%s: no checkpoint", st.ShardID)
		}
	}
}

// Checkpoints are the same in both modes: a stream read by EFO, then by
// polling, then by EFO again, from one store, delivers every record once,
// KPL sub-records included, and the records are the same in every field as
// those a single EFO read of the whole stream delivers.
func TestPollingAndEFOResumeEachOthersCheckpoints(t *testing.T) {
	t.Parallel()
	h := newHarness(t, emutest.Options())
	if err := h.emu.CreateStream("s", 2); err != nil {
		t.Fatal(err)
	}
	ks := keys(6)
	aggregate := func(round int) {
		agg := kpl.Aggregate([]record.Record{
			{PartitionKey: "agg", Data: fmt.Appendf(nil, "agg:%d", 2*round)},
			{PartitionKey: "agg", Data: fmt.Appendf(nil, "agg:%d", 2*round+1), ExplicitHashKey: "7"},
		})
		if _, _, err := h.emu.PutRecord("s", "agg", agg); err != nil {
			t.Fatal(err)
		}
	}
	want := 0
	phase := func(spec StreamSpec, round int) {
		t.Helper()
		h.put("s", ks, round*5, 5)
		aggregate(round)
		want += len(ks)*5 + 2
		stop := h.start(h.consumer(spec, fastTimers()))
		testutil.WaitFor(t, 20*time.Second, fmt.Sprintf("%d records", want), func() bool { return h.rec.count() >= want })
		if err := stop(); err != nil {
			t.Fatal(err)
		}
	}
	phase(StreamSpec{Name: "s"}, 0)
	phase(pollingSpec("s"), 1)
	phase(StreamSpec{Name: "s"}, 2)
	phase(pollingSpec("s"), 3)
	w := testutil.Want(ks, 20)
	w["agg"] = 8
	testutil.CheckDelivered(t, deliveries(h.rec.all()), w, testutil.ExactlyOnce)

	// One EFO read of the whole stream, under another name.
	all := newRecorder()
	c := NewStreamConsumer(StreamSpec{Name: "s", Consumer: "reference"}, Options{Client: h.kc, Checkpoints: h.store, Handler: all, Timers: fastTimers(), Log: zerolog.Nop()})
	h.start(c)
	testutil.WaitFor(t, 20*time.Second, "the reference read", func() bool { return all.count() >= want })
	for _, shard := range []string{"shardId-000000000000", "shardId-000000000001"} {
		a, b := h.rec.shard(shard), all.shard(shard)
		if len(a) != len(b) {
			t.Fatalf("%s: %d records across modes, %d by EFO alone", shard, len(a), len(b))
		}
		for i := range a {
			x, y := a[i], b[i]
			if !bytes.Equal(x.Data, y.Data) || x.PartitionKey != y.PartitionKey || x.ExplicitHashKey != y.ExplicitHashKey ||
				x.SequenceNumber != y.SequenceNumber || x.SubSequenceNumber != y.SubSequenceNumber || x.Aggregated != y.Aggregated ||
				!x.ArrivalTime.Equal(y.ArrivalTime) {
				t.Fatalf("%s record %d differs across modes:\n%+v\n%+v", shard, i, x, y)
			}
		}
	}
}

// Switching modes while a producer writes: each consumer stops with its
// final checkpoints, the next, in the other mode, goes on from them.
func TestSwitchingReadModesUnderLoadLosesNothing(t *testing.T) {
	t.Parallel()
	h := newHarness(t, emutest.Options())
	if err := h.emu.CreateStream("s", 3); err != nil {
		t.Fatal(err)
	}
	ks := keys(12)
	p := h.produce("s", ks)
	for _, spec := range []StreamSpec{{Name: "s"}, pollingSpec("s"), {Name: "s"}, pollingSpec("s")} {
		c := h.consumer(spec, fastTimers())
		stop := h.start(c)
		p.waitRounds(10)
		n := h.rec.count()
		testutil.WaitFor(t, 20*time.Second, "records read in mode "+string(c.ReadMode()), func() bool { return h.rec.count() > n })
		if err := stop(); err != nil {
			t.Fatal(err)
		}
	}
	n := p.finish()
	h.start(h.consumer(StreamSpec{Name: "s"}, fastTimers()))
	testutil.WaitFor(t, 30*time.Second, "every record", func() bool { return h.rec.count() >= n*len(ks) })
	checkExactlyInOrder(t, h.rec.all(), ks, n)
}

func TestPollingReadsChildrenAfterParents(t *testing.T) {
	t.Parallel()
	h := newHarness(t, emutest.Options())
	if err := h.emu.CreateStream("s", 2); err != nil {
		t.Fatal(err)
	}
	ks := keys(16)
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
	c := h.consumer(pollingSpec("s"), fastTimers())
	h.start(c)
	h.put("s", ks, 30, 10)
	if err := h.emu.UpdateShardCount("s", 4); err != nil {
		t.Fatal(err)
	}
	h.put("s", ks, 40, 10)
	testutil.WaitFor(t, 30*time.Second, "800 records", func() bool { return h.rec.count() >= 800 })
	checkExactlyInOrder(t, h.rec.handled(), ks, 50)
	ended := 0
	for _, st := range c.Shards() {
		if st.State == ShardEnded {
			ended++
		}
	}
	if ended < 4 {
		t.Fatalf("%d shards ended", ended)
	}
}

// An iterator that expires between two calls is replaced from the last
// record delivered: nothing lost, nothing repeated.
func TestPollingReplacesExpiredIterators(t *testing.T) {
	t.Parallel()
	opts := emutest.Options()
	opts.IteratorLifetime = 300 * time.Millisecond
	h := newHarness(t, opts)
	if err := h.emu.CreateStream("s", 1); err != nil {
		t.Fatal(err)
	}
	ks := keys(4)
	spec := pollingSpec("s")
	spec.Polling.Interval = 500 * time.Millisecond // longer than an iterator lives
	c := h.consumer(spec, fastTimers())
	h.start(c)
	for round := range 3 {
		h.put("s", ks, round*5, 5)
		testutil.WaitFor(t, 20*time.Second, "the round's records", func() bool { return h.rec.count() >= (round+1)*20 })
		n := polls(c, PollExpired)
		testutil.WaitFor(t, 20*time.Second, "an iterator expired", func() bool { return polls(c, PollExpired) > n })
	}
	checkExactlyInOrder(t, h.rec.all(), ks, 15)
}

// A shard polled less often than the idle timeout is not taken for a
// stalled one: the reader says it is alive in between.
func TestPollingIntervalLongerThanIdleTimeout(t *testing.T) {
	t.Parallel()
	h := newHarness(t, emutest.Options())
	if err := h.emu.CreateStream("s", 1); err != nil {
		t.Fatal(err)
	}
	spec := pollingSpec("s")
	// The idle timeout leaves a call on a busy machine two seconds between
	// two heartbeats; the interval is longer than the timeout.
	spec.Polling.Interval = 4 * time.Second
	timers := fastTimers()
	timers.IdleTimeout = 3 * time.Second
	c := h.consumer(spec, timers)
	h.start(c)
	ks := keys(2)
	h.put("s", ks, 0, 2)
	testutil.WaitFor(t, 20*time.Second, "two waits of an interval", func() bool { return polls(c, PollOK) >= 3 })
	h.put("s", ks, 2, 2)
	testutil.WaitFor(t, 20*time.Second, "8 records", func() bool { return h.rec.count() >= 8 })
	checkExactlyInOrder(t, h.rec.all(), ks, 4)
	for _, st := range c.Shards() {
		if st.Ends["idle"] != 0 || st.Subscriptions != 1 {
			t.Fatalf("the reader was reopened: %d opens, ends %v", st.Subscriptions, st.Ends)
		}
	}
}

// Throttled calls are retried after a backoff and counted.
func TestPollingRetriesThrottledCalls(t *testing.T) {
	t.Parallel()
	h := newHarness(t, emutest.Options())
	if err := h.emu.CreateStream("s", 1); err != nil {
		t.Fatal(err)
	}
	ks := keys(4)
	h.put("s", ks, 0, 5)
	h.emu.Throttle("GetRecords", 4)
	c := h.consumer(pollingSpec("s"), fastTimers())
	h.start(c)
	testutil.WaitFor(t, 20*time.Second, "20 records", func() bool { return h.rec.count() >= 20 })
	h.put("s", ks, 5, 5)
	testutil.WaitFor(t, 20*time.Second, "40 records", func() bool { return h.rec.count() >= 40 })
	checkExactlyInOrder(t, h.rec.all(), ks, 10)
	if n := polls(c, PollThrottled); n < 4 {
		t.Fatalf("%d throttled calls counted, want at least the 4 refused", n)
	}
	for _, st := range c.Shards() {
		if st.Ends["error"] != 0 {
			t.Fatalf("a throttled call ended the reader: %v", st.Ends)
		}
	}
}

// After a large response the next call waits for the shard's read budget
// (2 MiB a second) to pay for it, and 5 s after one of 10 MiB: a backlog of
// large records is read without a refused call.
func TestPollingPacesCallsByTheBytesRead(t *testing.T) {
	t.Parallel()
	h := newHarness(t, emutest.Options())
	if err := h.emu.CreateStream("s", 1); err != nil {
		t.Fatal(err)
	}
	const n = 14
	for i := range n {
		// 1 MiB with the key: ten of them are a 10 MiB response.
		data := bytes.Repeat([]byte{byte('a' + i)}, 1<<20-1)
		if _, _, err := h.emu.PutRecord("s", "k", data); err != nil {
			t.Fatal(err)
		}
	}
	timers := fastTimers()
	// A 10 MiB response takes seconds to decode on a busy machine under
	// -race: the idle watchdog must not cut it off once Kinesis counted it.
	timers.IdleTimeout = 30 * time.Second
	c := h.consumer(pollingSpec("s"), timers)
	h.start(c)
	testutil.WaitFor(t, 60*time.Second, "the backlog", func() bool { return h.rec.count() >= n })
	if got, refused := polls(c, PollThrottled), h.emu.ReadsRefused("s"); got != 0 || refused != 0 {
		t.Fatalf("%d calls throttled (%d refused by the emulator): calls were not paced by the bytes read", got, refused)
	}
}

// A shard whose calls are all refused is not made to look alive: its
// heartbeats keep the reader open but count no event, keep the lag last
// read and show no activity, so that the shard turns stalled.
func TestPollingHeartbeatsOfAThrottledShardShowNoProgress(t *testing.T) {
	t.Parallel()
	h := newHarness(t, emutest.Options())
	if err := h.emu.CreateStream("s", 1); err != nil {
		t.Fatal(err)
	}
	h.put("s", keys(4), 0, 10)
	h.emu.AdvanceClock(time.Minute) // the backlog is a minute old
	spec := pollingSpec("s")
	spec.Polling.MaxRecords = 1
	timers := fastTimers()
	timers.IdleTimeout = time.Second // a heartbeat every third of a second, between backoffs of up to a second
	logs := &testutil.SyncBuffer{}
	c := NewStreamConsumer(spec, Options{Client: h.kc, Checkpoints: h.store, Handler: h.rec, Timers: timers, Log: zerolog.New(logs)})
	h.start(c)
	testutil.WaitFor(t, 20*time.Second, "a record", func() bool { return h.rec.count() > 0 })
	// A call in flight when the throttle starts may still succeed (or have
	// been refused by the shard's own rate limit): two refusals counted
	// after it started, the second made after the first answered, leave
	// no success to come.
	base := polls(c, PollThrottled)
	h.emu.Throttle("GetRecords", 1_000_000)
	testutil.WaitFor(t, 20*time.Second, "two throttled calls", func() bool { return polls(c, PollThrottled) >= base+2 })
	before := c.Shards()[0]
	if before.MillisBehindLatest < 60_000 {
		t.Fatalf("lag %d ms before the throttle, want the backlog's minute", before.MillisBehindLatest)
	}
	// The backoff grows to a second: heartbeats come in between.
	testutil.WaitFor(t, 20*time.Second, "6 throttled calls", func() bool { return polls(c, PollThrottled) >= base+6 })
	after := c.Shards()[0]
	if after.Events != before.Events || !after.LastEvent.Equal(before.LastEvent) {
		t.Fatalf("events %d -> %d, last event %v -> %v: heartbeats counted as events", before.Events, after.Events, before.LastEvent, after.LastEvent)
	}
	if after.MillisBehindLatest != before.MillisBehindLatest {
		t.Fatalf("lag %d -> %d ms while no call succeeded", before.MillisBehindLatest, after.MillisBehindLatest)
	}
	if !after.LastActivity.Equal(before.LastActivity) {
		t.Fatalf("activity %v -> %v while no call succeeded: the shard would never show as stalled", before.LastActivity, after.LastActivity)
	}
	if after.Subscriptions != 1 || after.Ends["idle"] != 0 {
		t.Fatalf("the reader was reopened: %d opens, ends %v", after.Subscriptions, after.Ends)
	}
	if n := strings.Count(logs.String(), `"message":"every read refused; backing off"`); n != 1 {
		t.Fatalf("%d warnings that every read is refused, want 1:\n%s", n, logs.String())
	}
}

// A stream started at LATEST whose first records fail to be delivered gets
// them again: the reader goes on with the iterator those records were read
// with, where a new LATEST iterator would skip them.
func TestPollingLatestRedeliversAfterHandlerFailure(t *testing.T) {
	t.Parallel()
	h := newHarness(t, emutest.Options())
	if err := h.emu.CreateStream("s", 1); err != nil {
		t.Fatal(err)
	}
	ks := keys(4)
	h.put("s", ks, 0, 3) // before the start: not read
	spec := pollingSpec("s")
	spec.StartPosition = StartLatest
	c := h.consumer(spec, fastTimers())
	h.start(c)
	testutil.WaitFor(t, 20*time.Second, "a call at LATEST", func() bool { return polls(c, PollOK) > 0 })
	h.rec.mu.Lock()
	h.rec.fail = 1
	h.rec.mu.Unlock()
	h.put("s", ks, 3, 5)
	testutil.WaitFor(t, 20*time.Second, "20 records", func() bool { return h.rec.count() >= 20 })
	h.put("s", ks, 8, 2)
	testutil.WaitFor(t, 20*time.Second, "28 records", func() bool { return h.rec.count() >= 28 })
	for _, k := range ks {
		var got []string
		for _, r := range h.rec.all() {
			if r.PartitionKey == k {
				got = append(got, string(r.Data))
			}
		}
		if want := fmt.Sprintf("%s:3", k); len(got) != 7 || got[0] != want {
			t.Fatalf("key %s: %v, want %s to %s:9 once each", k, got, want, k)
		}
	}
}

// A stream started at LATEST whose iterators expire before its first record
// goes on from when it started, not from a new LATEST: the records written
// meanwhile are read.
func TestPollingLatestKeepsItsStartAcrossExpiredIterators(t *testing.T) {
	t.Parallel()
	opts := emutest.Options()
	opts.IteratorLifetime = 300 * time.Millisecond
	h := newHarness(t, opts)
	if err := h.emu.CreateStream("s", 1); err != nil {
		t.Fatal(err)
	}
	spec := pollingSpec("s")
	spec.StartPosition = StartLatest
	spec.Polling.Interval = 500 * time.Millisecond // longer than an iterator lives
	c := h.consumer(spec, fastTimers())
	h.start(c)
	testutil.WaitFor(t, 20*time.Second, "an iterator expired", func() bool { return polls(c, PollExpired) > 0 })
	ks := keys(4)
	for round := range 3 {
		// Right after a call: the next one finds its iterator expired.
		n := polls(c, PollOK)
		testutil.WaitFor(t, 20*time.Second, "a call", func() bool { return polls(c, PollOK) > n })
		h.put("s", ks, round*5, 5)
		testutil.WaitFor(t, 20*time.Second, "the round's records", func() bool { return h.rec.count() >= (round+1)*20 })
	}
	checkExactlyInOrder(t, h.rec.all(), ks, 15)
}

// The shard loop's logs speak of readers, whatever reads the shard.
func TestPollingLogsSpeakOfReadersNotSubscriptions(t *testing.T) {
	t.Parallel()
	h := newHarness(t, emutest.Options())
	if err := h.emu.CreateStream("s", 1); err != nil {
		t.Fatal(err)
	}
	h.emu.FailNextStatus("GetRecords", 1, 500, "InternalFailureException", "injected")
	logs := &testutil.SyncBuffer{}
	c := NewStreamConsumer(pollingSpec("s"), Options{Client: h.kc, Checkpoints: h.store, Handler: h.rec, Timers: fastTimers(), Log: zerolog.New(logs)})
	h.start(c)
	ks := keys(2)
	h.put("s", ks, 0, 2)
	testutil.WaitFor(t, 20*time.Second, "4 records", func() bool { return h.rec.count() >= 4 })
	out := logs.String()
	for _, msg := range []string{`"message":"reader opened"`, `"message":"read failed; retrying with backoff"`} {
		if !strings.Contains(out, msg) {
			t.Fatalf("no %s in the logs:\n%s", msg, out)
		}
	}
	if strings.Contains(out, "subscri") {
		t.Fatalf("a polled shard's logs speak of subscriptions:\n%s", out)
	}
	if strings.Contains(out, "EFO consumer still registered") {
		t.Fatalf("a consumer said registered while none is:\n%s", out)
	}
}

// A stream switched to polling says that its EFO consumer, billed while
// registered, is still there, and how to deregister it.
func TestPollingSaysItsEFOConsumerIsStillRegistered(t *testing.T) {
	t.Parallel()
	h := newHarness(t, emutest.Options())
	if err := h.emu.CreateStream("s", 1); err != nil {
		t.Fatal(err)
	}
	stop := h.start(h.consumer(StreamSpec{Name: "s"}, fastTimers()))
	h.put("s", keys(2), 0, 1)
	testutil.WaitFor(t, 20*time.Second, "2 records by EFO", func() bool { return h.rec.count() >= 2 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	logs := &testutil.SyncBuffer{}
	h.start(NewStreamConsumer(pollingSpec("s"), Options{Client: h.kc, Checkpoints: h.store, Handler: h.rec, Timers: fastTimers(), Log: zerolog.New(logs)}))
	h.put("s", keys(2), 1, 1)
	testutil.WaitFor(t, 20*time.Second, "2 more records by polling", func() bool { return h.rec.count() >= 4 })
	out := logs.String()
	if n := strings.Count(out, `"message":"EFO consumer still registered"`); n != 1 || !strings.Contains(out, "fanoutd consumers deregister --stream s --consumer fanoutd") {
		t.Fatalf("%d lines saying the consumer is still registered, want 1 with the command to deregister it:\n%s", n, out)
	}
}

// autoConsumer is a consumer in auto mode whose log is kept.
func (h *harness) autoConsumer(name string) (*StreamConsumer, *testutil.SyncBuffer) {
	return h.autoConsumerDecoder(name, "")
}

func (h *harness) autoConsumerDecoder(name string, d Decoder) (*StreamConsumer, *testutil.SyncBuffer) {
	logs := &testutil.SyncBuffer{}
	spec := pollingSpec(name)
	spec.Read = ReadAuto
	c := NewStreamConsumer(spec, Options{Client: h.kc, Checkpoints: h.store, Handler: h.rec, Timers: fastTimers(), Log: zerolog.New(logs), Decoder: d})
	return c, logs
}

// checkFellBack checks that c reads by polling, said why once, and read
// every record.
func checkFellBack(t *testing.T, h *harness, c *StreamConsumer, logs *testutil.SyncBuffer, why string) {
	t.Helper()
	ks := keys(4)
	h.put("s", ks, 0, 5)
	testutil.WaitFor(t, 20*time.Second, "20 records", func() bool { return h.rec.count() >= 20 })
	checkExactlyInOrder(t, h.rec.all(), ks, 5)
	if c.ReadMode() != ReadPolling {
		t.Fatalf("read mode %s, want polling", c.ReadMode())
	}
	out := logs.String()
	if n := strings.Count(out, "enhanced fan-out unavailable; reading by polling"); n != 1 {
		t.Fatalf("%d fallback warnings, want 1:\n%s", n, out)
	}
	if !strings.Contains(out, why) || !strings.Contains(out, `"cost":`) {
		t.Fatalf("the warning does not say %q and what polling costs:\n%s", why, out)
	}
}

func TestAutoPollsWhenTheStreamHasItsMaximumOfConsumers(t *testing.T) {
	t.Parallel()
	opts := emutest.Options()
	opts.ConsumerActivationDelay = -1
	h := newHarness(t, opts)
	if err := h.emu.CreateStream("s", 2); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if _, err := h.emu.RegisterConsumer("s", fmt.Sprintf("app%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	c, logs := h.autoConsumer("s")
	h.start(c)
	checkFellBack(t, h, c, logs, "20 EFO consumers, its maximum")
}

// Refusals that go on, from an endpoint that does not report the stream's
// consumer count, are taken for its maximum.
func TestAutoPollsWhenRegistrationKeepsBeingRefused(t *testing.T) {
	t.Parallel()
	h := newHarness(t, emutest.Options())
	if err := h.emu.CreateStream("s", 2); err != nil {
		t.Fatal(err)
	}
	h.emu.FailNext("RegisterStreamConsumer", 1000, "LimitExceededException", "Stream s already has 5 registered consumers, the maximum.")
	h.kc = kinesis.New(h.kc.Options(), func(o *kinesis.Options) { o.APIOptions = append(o.APIOptions, withoutConsumerCount) })
	c, logs := h.autoConsumer("s")
	h.start(c)
	checkFellBack(t, h, c, logs, "keeps answering LimitExceededException and the stream's consumer count is unavailable")
}

// withoutConsumerCount drops ConsumerCount from DescribeStreamSummary's
// answers, as endpoints that do not report it answer.
func withoutConsumerCount(st *middleware.Stack) error {
	return st.Initialize.Add(middleware.InitializeMiddlewareFunc("withoutConsumerCount",
		func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			out, md, err := next.HandleInitialize(ctx, in)
			if o, ok := out.Result.(*kinesis.DescribeStreamSummaryOutput); ok && o.StreamDescriptionSummary != nil {
				o.StreamDescriptionSummary.ConsumerCount = nil
			}
			return out, md, err
		}), middleware.After)
}

// A stream with fewer than 20 consumers has room for another: refusals
// (5 consumers being created at once in the account, the call rate),
// however many, are retried, and auto stays on enhanced fan-out. The SDK
// makes 3 attempts per call: 12 refusals are at least 4 calls refused.
func TestAutoKeepsRegisteringWhileTheStreamHasRoom(t *testing.T) {
	t.Parallel()
	for _, refusals := range []int{2, 12} {
		t.Run(strconv.Itoa(refusals), func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, emutest.Options())
			if err := h.emu.CreateStream("s", 1); err != nil {
				t.Fatal(err)
			}
			h.emu.FailNext("RegisterStreamConsumer", refusals, "LimitExceededException", "Account already has 5 consumers in CREATING state, the maximum.")
			logs := &testutil.SyncBuffer{}
			spec := pollingSpec("s")
			spec.Read = ReadAuto
			timers := fastTimers()
			timers.ConsumerActiveTimeout = time.Minute
			c := NewStreamConsumer(spec, Options{Client: h.kc, Checkpoints: h.store, Handler: h.rec, Timers: timers, Log: zerolog.New(logs)})
			h.start(c)
			ks := keys(4)
			h.put("s", ks, 0, 5)
			testutil.WaitFor(t, 20*time.Second, "20 records", func() bool { return h.rec.count() >= 20 })
			if c.ReadMode() != ReadEFO || h.emu.PendingFaults() != 0 {
				t.Fatalf("read mode %s, %d faults left", c.ReadMode(), h.emu.PendingFaults())
			}
			if strings.Contains(logs.String(), "reading by polling") {
				t.Fatalf("fell back:\n%s", logs.String())
			}
		})
	}
}

func TestAutoPollsWhenSubscribeToShardIsNotServed(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		status  int
		code    string
		decoder Decoder
	}{
		{"unknown operation", 400, "UnknownOperationException", DecoderFanoutd},
		{"not found", 404, "ApiNotImplemented", DecoderFanoutd},
		{"not implemented", 501, "NotImplemented", DecoderFanoutd},
		{"unknown operation, SDK decoder", 400, "UnknownOperationException", DecoderSDK},
		{"not found, SDK decoder", 404, "ApiNotImplemented", DecoderSDK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, emutest.Options())
			if err := h.emu.CreateStream("s", 2); err != nil {
				t.Fatal(err)
			}
			h.emu.FailNextStatus("SubscribeToShard", 1000, tc.status, tc.code, "not served here")
			c, logs := h.autoConsumerDecoder("s", tc.decoder)
			h.start(c)
			checkFellBack(t, h, c, logs, "does not serve SubscribeToShard")
		})
	}
}

// With enhanced fan-out available, auto reads through it.
func TestAutoReadsThroughEFOWhenItCan(t *testing.T) {
	t.Parallel()
	h := newHarness(t, emutest.Options())
	if err := h.emu.CreateStream("s", 1); err != nil {
		t.Fatal(err)
	}
	c, logs := h.autoConsumer("s")
	h.start(c)
	ks := keys(4)
	h.put("s", ks, 0, 5)
	testutil.WaitFor(t, 20*time.Second, "20 records", func() bool { return h.rec.count() >= 20 })
	if c.ReadMode() != ReadEFO || polls(c, PollOK) != 0 {
		t.Fatalf("read mode %s, %d GetRecords calls", c.ReadMode(), polls(c, PollOK))
	}
	if got := h.consumers("s"); len(got) != 1 {
		t.Fatalf("consumers %v", got)
	}
	if strings.Contains(logs.String(), "reading by polling") {
		t.Fatalf("fell back:\n%s", logs.String())
	}
}

// The KPL conformance fixtures (records made by awslabs' aggregation
// library) read by polling yield the user records, sub-sequence numbers
// and all, that enhanced fan-out yields.
func TestPollingReadsKPLFixturesAsEFODoes(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("../kpl/testdata/kpl-aggregated.json")
	if err != nil {
		t.Fatal(err)
	}
	var fx struct {
		Cases []struct {
			KinesisRecords []struct {
				PartitionKey    string  `json:"partitionKey"`
				ExplicitHashKey *string `json:"explicitHashKey"`
				Data            []byte  `json:"data"`
			} `json:"kinesisRecords"`
			UserRecords []json.RawMessage `json:"userRecords"`
		} `json:"cases"`
	}
	if err := json.Unmarshal(raw, &fx); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, emutest.Options())
	if err := h.emu.CreateStream("s", 1); err != nil {
		t.Fatal(err)
	}
	want := 0
	for _, c := range fx.Cases {
		for _, kr := range c.KinesisRecords {
			if _, _, err := h.emu.PutRecordHashKey("s", kr.PartitionKey, aws.ToString(kr.ExplicitHashKey), kr.Data); err != nil {
				t.Fatal(err)
			}
		}
		want += len(c.UserRecords)
	}
	read := func(spec StreamSpec) []record.Record {
		rec := newRecorder()
		spec.Consumer = string(spec.Read)
		h.start(NewStreamConsumer(spec, Options{Client: h.kc, Checkpoints: h.store, Handler: rec, Timers: fastTimers(), Log: zerolog.Nop()}))
		testutil.WaitFor(t, 20*time.Second, "the user records by "+spec.Consumer, func() bool { return rec.count() >= want })
		return rec.all()
	}
	byEFO, byPolling := read(StreamSpec{Name: "s", Read: ReadEFO}), read(pollingSpec("s"))
	if len(byEFO) != want || len(byPolling) != want {
		t.Fatalf("%d records by EFO, %d by polling, want %d", len(byEFO), len(byPolling), want)
	}
	aggregated := 0
	for i := range byEFO {
		x, y := byEFO[i], byPolling[i]
		if !bytes.Equal(x.Data, y.Data) || x.PartitionKey != y.PartitionKey || x.ExplicitHashKey != y.ExplicitHashKey ||
			x.SequenceNumber != y.SequenceNumber || x.SubSequenceNumber != y.SubSequenceNumber || x.Aggregated != y.Aggregated ||
			!x.ArrivalTime.Equal(y.ArrivalTime) {
			t.Fatalf("record %d differs:\nEFO     %+v\npolling %+v", i, x, y)
		}
		if y.Aggregated {
			aggregated++
		}
	}
	if aggregated == 0 {
		t.Fatal("no aggregated record in the fixtures")
	}
}

// A polled shard with nothing new writes no checkpoint (its position does
// not move), but its checkpoint is found current: what the checkpoint age
// reports, so that an idle shard is not taken for one whose writes fail.
func TestPollingIdleShardCheckpointFoundCurrent(t *testing.T) {
	t.Parallel()
	h := newHarness(t, emutest.Options())
	if err := h.emu.CreateStream("s", 1); err != nil {
		t.Fatal(err)
	}
	c := NewStreamConsumer(pollingSpec("s"), Options{Client: h.kc, Checkpoints: h.store, Handler: h.rec, Timers: fastTimers(), Log: zerolog.Nop()})
	h.start(c)
	h.put("s", keys(1), 0, 1)
	var saved time.Time
	testutil.WaitFor(t, 20*time.Second, "the record's checkpoint written", func() bool {
		sh := c.Shards()
		if len(sh) != 1 || sh[0].CheckpointSavedAt.IsZero() {
			return false
		}
		saved = sh[0].CheckpointSavedAt
		return h.rec.count() >= 1
	})
	testutil.WaitFor(t, 20*time.Second, "the checkpoint found current after it was written", func() bool {
		sh := c.Shards()[0]
		return sh.CheckpointCurrentAt.Sub(sh.CheckpointSavedAt) >= 1500*time.Millisecond
	})
	if got := c.Shards()[0].CheckpointSavedAt; !got.Equal(saved) {
		t.Fatalf("checkpoint written again at %v (first %v) with nothing new", got, saved)
	}
}

// A permission refused by AWS fails the stream, in either read mode, with
// the AWS error kept (the daemon exits 2 on it): retrying cannot cure it.
func TestReadPermissionRefusedFailsTheStream(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		mode ReadMode
		op   string
	}{{ReadPolling, "GetShardIterator"}, {ReadPolling, "GetRecords"}, {ReadEFO, "SubscribeToShard"}} {
		t.Run(string(tc.mode)+"/"+tc.op, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, emutest.Options())
			if err := h.emu.CreateStream("s", 1); err != nil {
				t.Fatal(err)
			}
			h.emu.FailNextStatus(tc.op, 1<<20, 400, "AccessDeniedException", "User: arn:aws:iam::000000000000:user/x is not authorized to perform: kinesis:"+tc.op)
			spec := pollingSpec("s")
			spec.Read = tc.mode
			c := NewStreamConsumer(spec, Options{Client: h.kc, Checkpoints: h.store, Handler: h.rec, Timers: fastTimers(), Log: zerolog.Nop()})
			done := make(chan error, 1)
			go func() { done <- c.Run(context.Background()) }()
			select {
			case err := <-done:
				if errorCode(err) != codeAccessDenied || !strings.Contains(err.Error(), "IAM policy") {
					t.Fatalf("Run = %v, want the AccessDeniedException with a hint", err)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("the stream kept retrying a refused permission")
			}
		})
	}
}
