package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/fanoutd/fanoutd/emulator"
	"github.com/fanoutd/fanoutd/internal/testutil"
	"github.com/fanoutd/fanoutd/internal/testutil/emutest"
	"github.com/fanoutd/fanoutd/relay"
)

// e2e is one end-to-end setup: the emulator over HTTP/2 and TLS, an
// in-process NATS server, and the daemon's own code run as `fanoutd run`.
type e2e struct {
	t    *testing.T
	emu  *emulator.Server
	ns   *server.Server
	dir  string // checkpoints
	msgs *collector
	logs *testutil.SyncBuffer // of the last run
	env  []string             // the emulator's environment, for child processes
}

// newE2E is for tests that run the daemon's code in this process: the
// daemon finds the emulator through the SDK's own environment chain, as a
// user's does, so the test sets the process's environment and cannot run in
// parallel.
func newE2E(t *testing.T, opts emulator.Options, jetstream bool) *e2e {
	t.Helper()
	e := startE2E(t, opts, jetstream)
	for _, line := range e.env {
		k, v, _ := strings.Cut(line, "=")
		t.Setenv(k, v)
	}
	return e
}

// newProcessE2E is for tests that run the daemon only as child processes:
// each child is given the emulator's environment (fanoutdProcess), this
// process's is left alone, and the test runs in parallel with the others
// of its kind.
func newProcessE2E(t *testing.T, opts emulator.Options, jetstream bool) *e2e {
	t.Helper()
	t.Parallel()
	return startE2E(t, opts, jetstream)
}

func startE2E(t *testing.T, opts emulator.Options, jetstream bool) *e2e {
	t.Helper()
	emu, err := emulator.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emu.Close() })
	ns := testutil.StartNATS(t, testutil.NATSOptions{JetStream: jetstream})
	e := &e2e{t: t, emu: emu, ns: ns, dir: t.TempDir(), msgs: &collector{}, env: emu.EnvLines()}
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	sub, err := nc.Subscribe(">", e.msgs.add)
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.SetPendingLimits(-1, -1); err != nil { // a burst is never dropped as a slow consumer
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return e
}

// config writes a config file for the given streams (YAML list items).
func (e *e2e) config(jetstream bool, streams string) string {
	e.t.Helper()
	body := fmt.Sprintf(`aws:
  region: us-east-1
streams:
%s
nats:
  servers: [%q]
  jetstream: %v
  publish_timeout: 5s
checkpoint:
  dir: %q
  interval: 0s
log:
  level: debug
  format: json
http:
  listen: "127.0.0.1:0"
timers:
  idle_timeout: 2s
  shard_sync_interval: 500ms
  min_resubscribe_interval: 50ms
  backoff_initial: 20ms
  backoff_max: 300ms
  consumer_poll_initial: 20ms
  consumer_poll_max: 100ms
  consumer_active_timeout: 20s
  shutdown_timeout: 5s
`, streams, e.ns.ClientURL(), jetstream, e.dir)
	path := filepath.Join(e.t.TempDir(), "fanoutd.yaml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		e.t.Fatal(err)
	}
	return path
}

// run starts `fanoutd run --config path`; stop cancels it (as SIGTERM does)
// and returns the exit code.
func (e *e2e) run(path string) (stop func() int) {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	logs := &testutil.SyncBuffer{}
	e.logs = logs
	e.t.Cleanup(func() {
		if e.t.Failed() {
			e.t.Logf("daemon log:\n%s", logs.String())
		}
	})
	go func() {
		done <- runContext(ctx, []string{"run", "--config", path}, logs, logs)
	}()
	var once sync.Once
	code := -1
	stop = func() int {
		once.Do(func() {
			cancel()
			select {
			case code = <-done:
			case <-time.After(30 * time.Second):
				e.t.Fatal("daemon did not stop")
			}
		})
		return code
	}
	e.t.Cleanup(func() { stop() })
	return stop
}

type collector struct {
	mu   sync.Mutex
	msgs []*nats.Msg
	skip atomic.Pointer[string] // a subject not kept (a test counts it itself)
}

func (c *collector) add(m *nats.Msg) {
	if skip := c.skip.Load(); skip != nil && m.Subject == *skip {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.msgs = append(c.msgs, m)
}

func (c *collector) onSubject(prefix string) []*nats.Msg {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*nats.Msg
	for _, m := range c.msgs {
		if strings.HasPrefix(m.Subject, prefix) {
			out = append(out, m)
		}
	}
	return out
}

func testKeys(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("user%d", i)
	}
	return out
}

// put writes records "key:i" for i in [from, from+n) for every key.
func (e *e2e) put(stream string, keys []string, from, n int) {
	e.t.Helper()
	for i := from; i < from+n; i++ {
		for _, k := range keys {
			if _, _, err := e.emu.PutRecord(stream, k, []byte(fmt.Sprintf("%s:%d", k, i))); err != nil {
				e.t.Fatal(err)
			}
		}
	}
}

// natsDeliveries are NATS messages as the shared checker takes them (the
// partition key header is escaped: not compared).
func natsDeliveries(msgs []*nats.Msg) []testutil.Delivery {
	out := make([]testutil.Delivery, len(msgs))
	for i, m := range msgs {
		out[i] = testutil.Delivery{Data: m.Data}
	}
	return out
}

// exactlyOnceInOrder checks every key got records 0..n-1 once each, in order.
func exactlyOnceInOrder(t *testing.T, msgs []*nats.Msg, keys []string, n int) {
	t.Helper()
	testutil.CheckDelivered(t, natsDeliveries(msgs), testutil.Want(keys, n), testutil.ExactlyOnce)
}

func TestRunRelaysEveryRecordOnceWithHeaders(t *testing.T) {
	e := newE2E(t, emutest.Options(), false)
	if err := e.emu.CreateStream("orders", 3); err != nil {
		t.Fatal(err)
	}
	keys := append(testKeys(10), "a.b c*>") // a key that a subject token can't hold as is
	e.put("orders", keys, 0, 10)
	stop := e.run(e.config(false, `  - name: orders
    subject: "kinesis.{stream}.{partition_key}"`))
	e.put("orders", keys, 10, 10)
	total := len(keys) * 20
	testutil.WaitFor(t, 30*time.Second, "every record", func() bool { return len(e.msgs.onSubject("kinesis.")) >= total })
	msgs := e.msgs.onSubject("kinesis.")
	exactlyOnceInOrder(t, msgs, keys, 20)

	// Subject and headers, checked against what the emulator stored.
	stored := map[string]emulator.Record{}
	shards, _ := e.emu.Shards("orders")
	for _, sh := range shards {
		recs, _ := e.emu.Records("orders", sh.ID)
		for _, r := range recs {
			stored[string(r.Data)] = r
		}
	}
	for _, m := range msgs {
		r := stored[string(m.Data)]
		wantSubject := "kinesis.orders." + string(relay.SanitizeToken(nil, r.PartitionKey))
		if m.Subject != wantSubject {
			t.Fatalf("subject %q, want %q", m.Subject, wantSubject)
		}
		h := m.Header
		for k, want := range map[string]string{
			"Kinesis-Stream":          "orders",
			"Kinesis-Shard-Id":        r.ShardID,
			"Kinesis-Sequence-Number": r.SequenceNumber,
			"Kinesis-Arrival-Time":    r.Arrival.UTC().Format("2006-01-02T15:04:05.000Z"),
			"Nats-Msg-Id":             "orders:" + r.ShardID + ":" + r.SequenceNumber + ":0",
		} {
			if got := h.Get(k); got != want {
				t.Fatalf("%s: %s = %q, want %q", m.Data, k, got, want)
			}
		}
		if pk := h.Get("Kinesis-Partition-Key"); pk != relay.EscapeHeaderValue(r.PartitionKey) {
			t.Fatalf("partition key header %q for %q", pk, r.PartitionKey)
		}
		if _, ok := h["Kinesis-Sub-Sequence-Number"]; ok {
			t.Fatal("plain record has a sub-sequence number")
		}
	}
	if code := stop(); code != 0 {
		t.Fatalf("exit %d after shutdown", code)
	}
}

type kplFixture struct {
	Cases []struct {
		Name           string `json:"name"`
		KinesisRecords []struct {
			PartitionKey    string  `json:"partitionKey"`
			ExplicitHashKey *string `json:"explicitHashKey"`
			Data            string  `json:"data"`
		} `json:"kinesisRecords"`
		UserRecords []struct {
			PartitionKey    string  `json:"partitionKey"`
			ExplicitHashKey *string `json:"explicitHashKey"`
			Data            string  `json:"data"`
		} `json:"userRecords"`
	} `json:"cases"`
}

func TestRunKPLFixtureArrivesAsUserRecords(t *testing.T) {
	raw, err := os.ReadFile("../../kpl/testdata/kpl-aggregated.json")
	if err != nil {
		t.Fatal(err)
	}
	var fx kplFixture
	if err := json.Unmarshal(raw, &fx); err != nil {
		t.Fatal(err)
	}
	e := newE2E(t, emutest.Options(), false)
	if err := e.emu.CreateStream("s", 1); err != nil {
		t.Fatal(err)
	}
	type want struct{ pk, ehk, data string }
	var wants []want
	for _, c := range fx.Cases {
		for _, kr := range c.KinesisRecords {
			data, _ := base64.StdEncoding.DecodeString(kr.Data)
			ehk := ""
			if kr.ExplicitHashKey != nil {
				ehk = *kr.ExplicitHashKey
			}
			if _, _, err := e.emu.PutRecordHashKey("s", kr.PartitionKey, ehk, data); err != nil {
				t.Fatal(err)
			}
		}
		for _, ur := range c.UserRecords {
			d, _ := base64.StdEncoding.DecodeString(ur.Data)
			w := want{pk: ur.PartitionKey, data: string(d)}
			if ur.ExplicitHashKey != nil {
				w.ehk = *ur.ExplicitHashKey
			}
			wants = append(wants, w)
		}
	}
	e.run(e.config(false, "  - name: s"))
	testutil.WaitFor(t, 20*time.Second, "user records", func() bool { return len(e.msgs.onSubject("kinesis.")) >= len(wants) })
	msgs := e.msgs.onSubject("kinesis.")
	if len(msgs) != len(wants) {
		t.Fatalf("%d messages, want %d", len(msgs), len(wants))
	}
	subSeq := 0
	lastSeq := ""
	ids := map[string]bool{}
	for i, m := range msgs {
		w := wants[i]
		if string(m.Data) != w.data || m.Header.Get("Kinesis-Partition-Key") != w.pk || m.Header.Get("Kinesis-Explicit-Hash-Key") != w.ehk {
			t.Fatalf("message %d: %q pk=%q ehk=%q, want %+v", i, m.Data, m.Header.Get("Kinesis-Partition-Key"), m.Header.Get("Kinesis-Explicit-Hash-Key"), w)
		}
		seq := m.Header.Get("Kinesis-Sequence-Number")
		if seq != lastSeq {
			subSeq, lastSeq = 0, seq
		}
		if got := m.Header.Get("Kinesis-Sub-Sequence-Number"); got != fmt.Sprint(subSeq) {
			t.Fatalf("message %d: sub-sequence %q, want %d", i, got, subSeq)
		}
		id := m.Header.Get("Nats-Msg-Id")
		if id != fmt.Sprintf("s:%s:%s:%d", emulator.ShardID(0), seq, subSeq) || ids[id] {
			t.Fatalf("message %d: Nats-Msg-Id %q (sub-records must not collide)", i, id)
		}
		ids[id] = true
		subSeq++
	}
}

func TestRunJetStreamStoresEachRecordOnce(t *testing.T) {
	e := newE2E(t, emutest.Options(), true)
	nc, err := nats.Connect(e.ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := nc.JetStream()
	if _, err := js.AddStream(&nats.StreamConfig{Name: "KINESIS", Subjects: []string{"kinesis.>", "fanoutd.deadletter.>"}, Storage: nats.FileStorage}); err != nil {
		t.Fatal(err)
	}
	if err := e.emu.CreateStream("s", 2); err != nil {
		t.Fatal(err)
	}
	keys := testKeys(5)
	e.put("s", keys, 0, 20)
	path := e.config(true, "  - name: s")
	stop := e.run(path)
	testutil.WaitFor(t, 20*time.Second, "stored", func() bool {
		si, err := js.StreamInfo("KINESIS")
		return err == nil && si.State.Msgs >= 100
	})
	stop()
	// Forget the checkpoints: the restart replays everything, and JetStream
	// drops the replay by Nats-Msg-Id.
	if err := os.RemoveAll(filepath.Join(e.dir, "s")); err != nil {
		t.Fatal(err)
	}
	e.put("s", keys, 20, 5)
	e.run(path)
	testutil.WaitFor(t, 20*time.Second, "stored after replay", func() bool {
		si, err := js.StreamInfo("KINESIS")
		return err == nil && si.State.Msgs >= 125
	})
	// Settle: let the replay finish, then count.
	testutil.WaitFor(t, 20*time.Second, "replay seen by core subscribers", func() bool { return len(e.msgs.onSubject("kinesis.")) >= 225 })
	si, err := js.StreamInfo("KINESIS")
	if err != nil {
		t.Fatal(err)
	}
	if si.State.Msgs != 125 {
		t.Fatalf("stream holds %d messages, want 125 (each record once)", si.State.Msgs)
	}
	var stored []*nats.Msg
	for seq := uint64(1); seq <= si.State.LastSeq; seq++ {
		m, err := js.GetMsg("KINESIS", seq)
		if err != nil {
			t.Fatal(err)
		}
		stored = append(stored, &nats.Msg{Subject: m.Subject, Data: m.Data, Header: m.Header})
	}
	exactlyOnceInOrder(t, stored, keys, 25)
}

func TestRunRejectsInvalidConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(path, []byte("streams:\n  - name: s\n    start_position: EARLIEST\n    subjct: x\n"), 0o600)
	for _, cmd := range []string{"run", "validate"} {
		var out, errOut bytes.Buffer
		code := runContext(context.Background(), []string{cmd, "--config", path}, &out, &errOut)
		if code != 2 {
			t.Fatalf("%s: exit %d, want 2", cmd, code)
		}
		if !strings.Contains(errOut.String(), "streams[0].subjct: unknown key") {
			t.Fatalf("%s: message %q", cmd, errOut.String())
		}
	}
	good := filepath.Join(t.TempDir(), "good.yaml")
	os.WriteFile(good, []byte("streams:\n  - name: s\ncheckpoint:\n  dir: /tmp/x\n"), 0o600)
	var out, errOut bytes.Buffer
	if code := runContext(context.Background(), []string{"validate", "--config", good}, &out, &errOut); code != 0 || !strings.Contains(out.String(), "OK") {
		t.Fatalf("validate good: %d %q %q", code, out.String(), errOut.String())
	}
}

func TestRunJetStreamWithoutCapturingStreamExits2(t *testing.T) {
	e := newE2E(t, emutest.Options(), true)
	if err := e.emu.CreateStream("s", 1); err != nil {
		t.Fatal(err)
	}
	var out, errOut testutil.SyncBuffer // NATS callbacks may still log after run returns
	code := runContext(context.Background(), []string{"run", "--config", e.config(true, "  - name: s")}, &out, &errOut)
	if code != 2 || !strings.Contains(errOut.String(), "no JetStream stream captures kinesis.s") {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
}

func TestRunCreatesConfiguredJetStreamStream(t *testing.T) {
	e := newE2E(t, emutest.Options(), true)
	if err := e.emu.CreateStream("s", 1); err != nil {
		t.Fatal(err)
	}
	path := e.config(true, "  - name: s")
	raw, _ := os.ReadFile(path)
	raw = bytes.Replace(raw, []byte("  publish_timeout: 5s\n"), []byte("  publish_timeout: 5s\n  stream:\n    name: KINESIS\n    subjects: [\"kinesis.>\", \"fanoutd.deadletter.>\"]\n    duplicate_window: 30s\n"), 1)
	os.WriteFile(path, raw, 0o600)
	e.put("s", testKeys(3), 0, 4)
	e.run(path)
	nc, err := nats.Connect(e.ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := nc.JetStream()
	testutil.WaitFor(t, 20*time.Second, "12 stored", func() bool {
		si, err := js.StreamInfo("KINESIS")
		return err == nil && si.State.Msgs == 12
	})
	si, _ := js.StreamInfo("KINESIS")
	if si.Config.Duplicates != 30*time.Second || si.Config.Storage != nats.FileStorage {
		t.Fatalf("stream config %+v", si.Config)
	}
}

// A deleted stream stops alone, reported in the log, the metrics and
// /status; the others keep running. It is probed, and read again (as the
// new stream it is) when it is created again, without a reload.
func TestRunDeletedStreamStopsAloneAndComesBack(t *testing.T) {
	e := newE2E(t, emutest.Options(), false)
	for _, s := range []string{"a", "b"} {
		if err := e.emu.CreateStream(s, 1); err != nil {
			t.Fatal(err)
		}
	}
	stop := e.run(e.config(false, "  - name: a\n  - name: b"))
	keys := testKeys(2)
	e.put("a", keys, 0, 3)
	e.put("b", keys, 0, 3)
	testutil.WaitFor(t, 20*time.Second, "both streams", func() bool { return len(e.msgs.onSubject("kinesis.")) >= 12 })
	if err := e.emu.DeleteStream("a"); err != nil {
		t.Fatal(err)
	}
	e.put("b", keys, 3, 3)
	testutil.WaitFor(t, 20*time.Second, "stream b goes on", func() bool { return len(e.msgs.onSubject("kinesis.b")) >= 12 })
	exactlyOnceInOrder(t, e.msgs.onSubject("kinesis.b"), keys, 6)
	testutil.WaitFor(t, 20*time.Second, "stream a reported", func() bool {
		return strings.Contains(e.logs.String(), `"stream":"a"`) && strings.Contains(e.logs.String(), "stream deleted; probing")
	})
	addr := waitHTTPAddr(t, e.logs)
	if _, body := get(t, "http://"+addr+"/metrics"); metricValue(body, `fanoutd_stream_stopped{stream="a"}`) != 1 {
		t.Fatalf("no fanoutd_stream_stopped for stream a")
	}
	if _, body := get(t, "http://"+addr+"/status"); !strings.Contains(body, `"stopped_streams"`) || !strings.Contains(body, `"a": "stream a: stream not found`) {
		t.Fatalf("/status does not report stream a: %s", body)
	}

	if err := e.emu.CreateStream("a", 2); err != nil {
		t.Fatal(err)
	}
	e.put("a", keys, 3, 3)
	testutil.WaitFor(t, 30*time.Second, "stream a read again", func() bool { return len(e.msgs.onSubject("kinesis.a")) >= 12 })
	exactlyOnceInOrder(t, e.msgs.onSubject("kinesis.a"), keys, 6)
	testutil.WaitFor(t, 10*time.Second, "stream a no longer reported stopped", func() bool {
		_, body := get(t, "http://"+addr+"/metrics")
		return metricValue(body, `fanoutd_stream_stopped{stream="a"}`) <= 0
	})
	if code := stop(); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

// With AWS's API limits enforced, the daemon's own calls (describe, register,
// consumer polling, shard listing, subscribing) stay within them. (With the
// 20 ms consumer polling of the other tests, this test fails.)
func TestRunStaysWithinAWSLimits(t *testing.T) {
	opts := emutest.Options()
	opts.EnforceLimits = true
	opts.SubscribeRate, opts.TakeoverGrace = 0, 0 // AWS's values
	opts.ConsumerActivationDelay = time.Second
	e := newE2E(t, opts, false)
	for _, s := range []string{"a", "b", "c"} {
		if err := e.emu.CreateStream(s, 4); err != nil {
			t.Fatal(err)
		}
	}
	path := e.config(false, "  - name: a\n  - name: b\n  - name: c")
	raw, _ := os.ReadFile(path)
	// Production-like polling; the other test timers are kept.
	raw = bytes.Replace(raw, []byte("consumer_poll_initial: 20ms"), []byte("consumer_poll_initial: 500ms"), 1)
	raw = bytes.Replace(raw, []byte("consumer_poll_max: 100ms"), []byte("consumer_poll_max: 5s"), 1)
	os.WriteFile(path, raw, 0o600)
	e.run(path)
	keys := testKeys(8)
	for _, s := range []string{"a", "b", "c"} {
		e.put(s, keys, 0, 5)
	}
	testutil.WaitFor(t, 30*time.Second, "every record", func() bool { return len(e.msgs.onSubject("kinesis.")) >= 120 })
	for _, op := range []string{"DescribeStreamSummary", "RegisterStreamConsumer", "DescribeStreamConsumer", "ListShards"} {
		if n := e.emu.LimitHits(op); n != 0 {
			t.Errorf("%s throttled %d times", op, n)
		}
	}
}
