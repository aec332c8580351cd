package daemon

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/fanoutd/fanoutd/fanout"
	"github.com/fanoutd/fanoutd/internal/testutil"
	"github.com/fanoutd/fanoutd/internal/testutil/e2e"
	"github.com/fanoutd/fanoutd/internal/testutil/emutest"
	"github.com/fanoutd/fanoutd/subscriber"
)

// pollingStream is stream "s" read by polling, paced for tests.
const pollingStream = `  - name: s
    subject: "kinesis.{stream}.{partition_key}"
    read: polling
    polling:
      interval: 250ms`

// efoStream is stream "s" read through enhanced fan-out.
const efoStream = `  - name: s
    subject: "kinesis.{stream}.{partition_key}"`

// coreConfig writes the config of streams relayed to core NATS, records
// too large for a message dead-lettered (no Object Store to wait for).
func (e *e2eEnv) coreConfig(streams string) string {
	e.t.Helper()
	c := e.Config(false, streams)
	c.NATS = "  large_records: dead_letter\n"
	return c.Write(e.t)
}

// storedMsgs is every message of JetStream stream KINESIS, in order.
func storedMsgs(t *testing.T, js jetstream.JetStream) []*nats.Msg {
	t.Helper()
	ctx := context.Background()
	s, err := js.Stream(ctx, "KINESIS")
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []*nats.Msg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, &nats.Msg{Subject: m.Subject, Header: m.Header, Data: m.Data})
	}
	return out
}

// metricOf reads one sample of the daemon logging to logs; -1 if absent.
func metricOf(t *testing.T, logs *testutil.SyncBuffer, series string) float64 {
	t.Helper()
	_, body := e2e.Get(t, "http://"+e2e.WaitHTTPAddr(t, logs)+"/metrics")
	return e2e.MetricValue(body, series)
}

// checkStoredOnce waits for want's records in JetStream, then checks each
// is stored once, in order per key, and that core subscribers saw each
// published once too (nothing was published twice, deduplicated or not).
func (e *e2eEnv) checkStoredOnce(js jetstream.JetStream, want map[string]int) {
	e.t.Helper()
	total := 0
	for _, n := range want {
		total += n
	}
	testutil.WaitFor(e.t, 60*time.Second, fmt.Sprintf("%d records stored", total), func() bool { return streamMsgCount(js, "KINESIS") >= total })
	testutil.CheckDelivered(e.t, e2e.Deliveries(storedMsgs(e.t, js)), want, testutil.ExactlyOnce)
	testutil.WaitFor(e.t, 20*time.Second, "every publish seen", func() bool { return len(e.Msgs.OnSubject("kinesis.")) >= total })
	testutil.CheckDelivered(e.t, e2e.Deliveries(e.Msgs.OnSubject("kinesis.")), want, testutil.ExactlyOnce)
}

// consumersOf lists the EFO consumers registered on stream.
func (e *e2eEnv) consumersOf(stream string) []string {
	e.t.Helper()
	out, err := emutest.Client(e.t, e.Emu).ListStreamConsumers(context.Background(),
		&kinesis.ListStreamConsumersInput{StreamARN: aws.String(e.Emu.StreamARN(stream))})
	if err != nil {
		e.t.Fatal(err)
	}
	var names []string
	for _, c := range out.Consumers {
		names = append(names, aws.ToString(c.ConsumerName))
	}
	return names
}

// A backlog and a live producer read by polling: every record stored once
// in JetStream, in order per key; no EFO consumer registered.
func TestRunPollingBacklogAndLiveOnceInOrder(t *testing.T) {
	e := newE2E(t, emutest.Options(), true)
	js := createRecordStream(t, e.NS.ClientURL(), "kinesis.>", "fanoutd.deadletter.>")
	if err := e.Emu.CreateStream("s", 3); err != nil {
		t.Fatal(err)
	}
	backlog := e2e.Keys(8)
	e.Put("s", backlog, 0, 25)
	p := e2e.NewProducer(e.Emu)
	stop := e.run(e.config(true, pollingStream))
	p.Produce()
	testutil.WaitFor(t, 20*time.Second, "300 live records", func() bool { return p.ProducedSoFar() >= 300 })
	p.StopProducing()
	want := p.Want()
	for _, k := range backlog {
		want[k] = 25
	}
	e.checkStoredOnce(js, want)
	if c := e.consumersOf("s"); len(c) != 0 {
		t.Fatalf("consumers registered while polling: %v", c)
	}
	if v := metricOf(t, e.logs, `fanoutd_stream_read_mode{mode="polling",stream="s"}`); v != 1 {
		t.Fatalf("read mode polling = %v", v)
	}
	if v := metricOf(t, e.logs, `fanoutd_getrecords_calls_total{result="ok",stream="s"}`); v <= 0 {
		t.Fatalf("GetRecords ok calls = %v", v)
	}
	if err := stop(); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}

// A split and a merge while polling under load: parents before children,
// every record stored once, in order per key.
func TestRunPollingThroughSplitAndMerge(t *testing.T) {
	e := newE2E(t, emutest.Options(), true)
	js := createRecordStream(t, e.NS.ClientURL(), "kinesis.>", "fanoutd.deadletter.>")
	if err := e.Emu.CreateStream("s", 2); err != nil {
		t.Fatal(err)
	}
	p := e2e.NewProducer(e.Emu)
	e.run(e.config(true, pollingStream))
	p.Produce()
	grow := func(what string) {
		n := streamMsgCount(js, "KINESIS")
		testutil.WaitFor(t, 20*time.Second, what, func() bool { return streamMsgCount(js, "KINESIS") >= n+100 })
	}
	grow("records before the split")
	kids, err := e.Emu.SplitShard("s", "shardId-000000000000")
	if err != nil {
		t.Fatal(err)
	}
	grow("records after the split")
	if _, err := e.Emu.MergeShards("s", kids[0], kids[1]); err != nil {
		t.Fatal(err)
	}
	grow("records after the merge")
	p.StopProducing()
	e.checkStoredOnce(js, p.Want())
	ended := 0
	for _, s := range e.d.shards() {
		if s.State == fanout.ShardEnded {
			ended++
		}
	}
	if ended != 3 {
		t.Fatalf("%d shards ended, want 3 (the split parent and the merged pair)", ended)
	}
}

// Iterators that expire between calls, mid-stream: each is replaced from
// the last record delivered, nothing lost or repeated.
func TestRunPollingReplacesExpiredIterators(t *testing.T) {
	opts := emutest.Options()
	opts.IteratorLifetime = 300 * time.Millisecond
	e := newE2E(t, opts, true)
	js := createRecordStream(t, e.NS.ClientURL(), "kinesis.>", "fanoutd.deadletter.>")
	if err := e.Emu.CreateStream("s", 2); err != nil {
		t.Fatal(err)
	}
	p := e2e.NewProducer(e.Emu)
	// A caught-up shard waits 500 ms between calls: longer than an
	// iterator lives.
	e.run(e.config(true, strings.Replace(pollingStream, "250ms", "500ms", 1)))
	p.Produce()
	testutil.WaitFor(t, 30*time.Second, "iterators expired mid-stream", func() bool {
		return metricOf(t, e.logs, `fanoutd_getrecords_calls_total{result="expired",stream="s"}`) >= 4
	})
	p.StopProducing()
	e.checkStoredOnce(js, p.Want())
}

// Two applications poll the same shards (two daemons, two consumer names,
// two subjects): the shards' shared 5 calls a second refuse some calls,
// each refusal is counted by the daemon that got it and retried after a
// backoff, and both applications get every record once, in order.
func TestRunTwoPollingApplicationsShareTheShards(t *testing.T) {
	e := newE2E(t, emutest.Options(), false)
	if err := e.Emu.CreateStream("s", 2); err != nil {
		t.Fatal(err)
	}
	keys := e2e.Keys(8)
	e.Put("s", keys, 0, 40)
	app := func(name string) (*Daemon, *testutil.SyncBuffer) {
		// 20 records a call: the backlog takes several calls in a row.
		c := e.Config(false, fmt.Sprintf(`  - name: s
    consumer: %s
    subject: "%s.{stream}.{partition_key}"
    read: polling
    polling:
      interval: 250ms
      max_records: 20`, name, name))
		c.NATS = "  large_records: dead_letter\n"
		c.CheckpointDir = t.TempDir() // each application its own
		d, err := e.open(c.Write(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		return d, e.logs
	}
	start := time.Now()
	a, logsA := app("a")
	b, logsB := app("b")
	e.Put("s", keys, 40, 10)
	for _, name := range []string{"a", "b"} {
		testutil.WaitFor(t, 60*time.Second, "every record to application "+name, func() bool { return len(e.Msgs.OnSubject(name+".")) >= 50*len(keys) })
	}
	e2e.ExactlyOnceInOrder(t, e.Msgs.OnSubject("a."), keys, 50)
	e2e.ExactlyOnceInOrder(t, e.Msgs.OnSubject("b."), keys, 50)

	apps := []struct {
		d    *Daemon
		logs *testutil.SyncBuffer
	}{{a, logsA}, {b, logsB}}
	for _, app := range apps {
		// Caught up, both still poll every 220 ms: 9 calls a second for 5.
		testutil.WaitFor(t, 20*time.Second, "throttled calls counted", func() bool {
			return metricOf(t, app.logs, `fanoutd_getrecords_calls_total{result="throttled",stream="s"}`) > 0
		})
	}
	var throttled uint64
	for _, app := range apps {
		app.d.mu.Lock()
		c := app.d.streams["s"].consumer
		app.d.mu.Unlock()
		if err := app.d.Close(); err != nil {
			t.Fatal(err)
		}
		// Each application keeps within 5 calls a second per shard,
		// refused calls included: a refusal is retried after a backoff.
		var calls, n uint64
		for _, st := range c.Shards() {
			calls += st.Polls[fanout.PollOK] + st.Polls[fanout.PollThrottled]
			n += st.Polls[fanout.PollThrottled]
		}
		throttled += n
		if rate := float64(calls) / time.Since(start).Seconds() / 2; rate > 5 {
			t.Fatalf("an application made %.1f calls a second per shard (%d throttled)", rate, n)
		}
	}
	// Every refusal was counted by the application it refused, but for the
	// answers to calls in flight at shutdown: one per application and shard
	// at most.
	if refused := uint64(e.Emu.ReadsRefused("s")); throttled > refused || refused > throttled+2*2 {
		t.Fatalf("the daemons counted %d throttled calls, the emulator refused %d", throttled, refused)
	}
}

// A 10 MiB record amid a producer's small ones, read by polling: stored
// once through the Object Store, byte-identical, the small records once and
// in order. (The call that returns it makes the shard refuse calls for 5 s,
// as AWS does.)
func TestRunPollingReadsA10MiBRecord(t *testing.T) {
	e := newE2E(t, emutest.Options(), true)
	js := createRecordStream(t, e.NS.ClientURL(), "kinesis.>", "fanoutd.deadletter.>")
	if err := e.Emu.CreateStream("s", 1); err != nil {
		t.Fatal(err)
	}
	if _, err := emutest.Client(t, e.Emu).UpdateMaxRecordSize(context.Background(), &kinesis.UpdateMaxRecordSizeInput{
		StreamARN: aws.String(e.Emu.StreamARN("s")), MaxRecordSizeInKiB: aws.Int32(10240)}); err != nil {
		t.Fatal(err)
	}
	c := e.Config(true, pollingStream)
	c.Timers = map[string]string{"idle_timeout": "30s"}
	e.run(c.Write(t))
	p := e2e.NewProducer(e.Emu)
	p.Produce()
	testutil.WaitFor(t, 20*time.Second, "the first records", func() bool { return streamMsgCount(js, "KINESIS") >= 100 })
	big := make([]byte, 10<<20-len("big"))
	for i := range big {
		big[i] = byte(i*31 + 7)
	}
	if _, _, err := e.Emu.PutRecord("s", "big", big); err != nil {
		t.Fatal(err)
	}
	n := p.ProducedSoFar()
	testutil.WaitFor(t, 20*time.Second, "records after the large one", func() bool { return p.ProducedSoFar() >= n+100 })
	total := p.StopProducing() + 1
	testutil.WaitFor(t, 60*time.Second, "every record stored", func() bool { return streamMsgCount(js, "KINESIS") >= total })
	var small []*nats.Msg
	refs := 0
	for _, m := range storedMsgs(t, js) {
		if !subscriber.IsObjectReference(m) {
			small = append(small, m)
			continue
		}
		refs++
		data, err := subscriber.Fetch(context.Background(), js, m)
		if err != nil {
			t.Fatalf("fetch the record behind %v: %v", m.Header, err)
		}
		if !bytes.Equal(data, big) {
			t.Fatalf("the large record: %d bytes, not the %d bytes written", len(data), len(big))
		}
	}
	if refs != 1 {
		t.Fatalf("%d references stored, want 1", refs)
	}
	testutil.CheckDelivered(t, e2e.Deliveries(small), p.Want(), testutil.ExactlyOnce)
}

// auto on a stream that has its maximum of consumers (20) reads by
// polling: one warning that says why and what it costs, the read mode in the gauge and /status, every record
// relayed.
func TestRunAutoPollsWhenConsumerLimitReached(t *testing.T) {
	opts := emutest.Options()
	opts.ConsumerActivationDelay = -1 // the others' consumers are ACTIVE at once
	e := newE2E(t, opts, false)
	if err := e.Emu.CreateStream("s", 2); err != nil {
		t.Fatal(err)
	}
	// Twenty other applications have their consumers: AWS's maximum.
	for i := range 20 {
		if _, err := e.Emu.RegisterConsumer("s", fmt.Sprintf("app%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	keys := e2e.Keys(6)
	e.Put("s", keys, 0, 20)
	stop := e.run(e.coreConfig(strings.Replace(pollingStream, "read: polling", "read: auto", 1)))
	e.Put("s", keys, 20, 20)
	testutil.WaitFor(t, 30*time.Second, "every record", func() bool { return len(e.Msgs.OnSubject("kinesis.")) >= 40*len(keys) })
	e2e.ExactlyOnceInOrder(t, e.Msgs.OnSubject("kinesis."), keys, 40)
	logs := e.logs.String()
	if n := strings.Count(logs, "enhanced fan-out unavailable; reading by polling"); n != 1 {
		t.Fatalf("the fallback is logged %d times, want once:\n%s", n, logs)
	}
	if !strings.Contains(logs, `"reason":"the stream has 20 EFO consumers, its maximum`) || !strings.Contains(logs, `"cost":"polling shares`) {
		t.Fatalf("the fallback does not say why and what it costs:\n%s", logs)
	}
	if c := e.consumersOf("s"); len(c) != 20 {
		t.Fatalf("consumers %v, want the 20 others only", c)
	}
	if v := metricOf(t, e.logs, `fanoutd_stream_read_mode{mode="polling",stream="s"}`); v != 1 {
		t.Fatalf("read mode polling = %v", v)
	}
	if v := metricOf(t, e.logs, `fanoutd_stream_read_mode{mode="efo",stream="s"}`); v != 0 {
		t.Fatalf("read mode efo = %v", v)
	}
	_, body := e2e.Get(t, "http://"+e2e.WaitHTTPAddr(t, e.logs)+"/status")
	var status struct {
		Streams []struct {
			Name     string `json:"name"`
			ReadMode string `json:"read_mode"`
		} `json:"streams"`
	}
	if err := json.Unmarshal([]byte(body), &status); err != nil {
		t.Fatalf("/status: %v\n%s", err, body)
	}
	if len(status.Streams) != 1 || status.Streams[0].ReadMode != "polling" {
		t.Fatalf("/status streams: %+v", status.Streams)
	}
	if err := stop(); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}

// Reloads from efo to polling and back while a producer writes: each
// mode continues from the other's checkpoints, nothing lost, nothing
// published twice.
func TestReloadSwitchesReadModeUnderLoad(t *testing.T) {
	e := newE2E(t, emutest.Options(), true)
	js := createRecordStream(t, e.NS.ClientURL(), "kinesis.>", "fanoutd.deadletter.>")
	if err := e.Emu.CreateStream("s", 2); err != nil {
		t.Fatal(err)
	}
	c := e.Config(true, efoStream)
	path := c.Write(t)
	p := e2e.NewProducer(e.Emu)
	stop := e.run(path)
	p.Produce()
	for _, step := range []struct {
		streams string
		mode    fanout.ReadMode
	}{{efoStream, fanout.ReadEFO}, {pollingStream, fanout.ReadPolling}, {efoStream, fanout.ReadEFO}} {
		if step.streams != c.Streams {
			c.Streams = step.streams
			c.WriteFile(t, path)
			if err := e.d.Reload(t.Context(), path); err != nil {
				t.Fatalf("reload to %s: %v", step.mode, err)
			}
		}
		if got := e.d.readModes()["s"]; got != step.mode {
			t.Fatalf("read mode %s, want %s", got, step.mode)
		}
		n := streamMsgCount(js, "KINESIS")
		testutil.WaitFor(t, 20*time.Second, "records read by "+string(step.mode), func() bool { return streamMsgCount(js, "KINESIS") >= n+100 })
	}
	p.StopProducing()
	e.checkStoredOnce(js, p.Want())
	if err := stop(); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}

// The KPL conformance fixtures relayed by polling are the messages
// enhanced fan-out relays: subjects, headers (Nats-Msg-Id and the
// sub-sequence numbers among them) and data, so JetStream deduplicates
// across a switch of read mode.
func TestRunPollingRelaysKPLFixturesAsEFODoes(t *testing.T) {
	fx := loadKPLFixture(t)
	e := newE2E(t, emutest.Options(), false)
	if err := e.Emu.CreateStream("s", 1); err != nil {
		t.Fatal(err)
	}
	want := 0
	for _, c := range fx.Cases {
		for _, kr := range c.KinesisRecords {
			data, _ := base64.StdEncoding.DecodeString(kr.Data)
			if _, _, err := e.Emu.PutRecordHashKey("s", kr.PartitionKey, aws.ToString(kr.ExplicitHashKey), data); err != nil {
				t.Fatal(err)
			}
		}
		want += len(c.UserRecords)
	}
	// Each mode as its own application (its own checkpoints), one after
	// the other, on the same subjects.
	for i, stream := range []string{efoStream + "\n    consumer: byefo", pollingStream + "\n    consumer: bypolling"} {
		stop := e.run(e.coreConfig(stream))
		testutil.WaitFor(t, 20*time.Second, "the user records", func() bool { return len(e.Msgs.OnSubject("kinesis.")) >= (i+1)*want })
		if err := stop(); err != nil {
			t.Fatal(err)
		}
	}
	msgs := e.Msgs.OnSubject("kinesis.")
	if len(msgs) != 2*want {
		t.Fatalf("%d messages, want %d by each mode", len(msgs), want)
	}
	subs := 0
	for i, x := range msgs[:want] {
		y := msgs[want+i]
		if x.Subject != y.Subject || !bytes.Equal(x.Data, y.Data) || fmt.Sprint(x.Header) != fmt.Sprint(y.Header) {
			t.Fatalf("message %d differs:\nEFO     %s %v %q\npolling %s %v %q", i, x.Subject, x.Header, x.Data, y.Subject, y.Header, y.Data)
		}
		if x.Header.Get("Kinesis-Sub-Sequence-Number") != "" {
			subs++
		}
	}
	if subs == 0 {
		t.Fatal("no aggregated record in the fixtures")
	}
}
