package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/fanoutd/fanoutd/internal/testutil"
	"github.com/fanoutd/fanoutd/internal/testutil/emutest"
	"github.com/fanoutd/fanoutd/record"
	"github.com/fanoutd/fanoutd/relay"
)

// tailRun is one `fanoutd tail` run in-process.
type tailRun struct {
	out, err *testutil.SyncBuffer
	done     chan int
	cancel   context.CancelFunc
}

// startTail runs `fanoutd tail args...` and waits until it has subscribed,
// so that what is published next reaches it.
func startTail(t *testing.T, args ...string) *tailRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &tailRun{out: &testutil.SyncBuffer{}, err: &testutil.SyncBuffer{}, done: make(chan int, 1), cancel: cancel}
	go func() { r.done <- runContext(ctx, append([]string{"tail"}, args...), r.out, r.err) }()
	t.Cleanup(func() {
		cancel()
		if t.Failed() {
			t.Logf("tail stdout:\n%s\ntail stderr:\n%s", r.out.String(), r.err.String())
		}
	})
	testutil.WaitFor(t, 10*time.Second, "tail to subscribe", func() bool {
		select {
		case code := <-r.done:
			t.Fatalf("tail exited with %d before subscribing: %s", code, r.err.String())
		default:
		}
		return strings.Contains(r.err.String(), "subscribed to")
	})
	return r
}

// wait returns tail's exit code.
func (r *tailRun) wait(t *testing.T) int {
	t.Helper()
	select {
	case code := <-r.done:
		return code
	case <-time.After(20 * time.Second):
		t.Fatal("tail did not exit")
		return -1
	}
}

// recordMsg is a message as the relay publishes it.
func recordMsg(subject, pk, seq string, subSeq int64, data []byte) *nats.Msg {
	m := nats.NewMsg(subject)
	m.Header, _ = relay.RecordHeader(&record.Batch{Stream: "orders", ShardID: "shardId-000000000001"}, &record.Record{
		PartitionKey: pk, SequenceNumber: seq, SubSequenceNumber: subSeq, Aggregated: subSeq > 0,
		ArrivalTime: time.Date(2026, 11, 25, 23, 52, 14, 730e6, time.UTC),
	})
	m.Data = data
	return m
}

func publish(t *testing.T, url string, msgs ...*nats.Msg) {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	for _, m := range msgs {
		if err := nc.PublishMsg(m); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
}

var binaryData = append([]byte{0x1f, 0x8b, 0x08, 0x00, 0xff}, make([]byte, 100)...)

func TestTailPrintsHeadersDecodedAndData(t *testing.T) {
	ns := testutil.StartNATS(t, testutil.NATSOptions{JetStream: false})
	r := startTail(t, "kinesis.>", "--server", ns.ClientURL(), "--count", "3")
	publish(t, ns.ClientURL(),
		recordMsg("kinesis.orders", "caf\u00e9 100%", "4900000000000000000001", 2, []byte(`{"event":"user signup"}`)),
		recordMsg("kinesis.orders", "user1", "4900000000000000000002", 0, binaryData),
		recordMsg("kinesis.orders", " k\r\n", "4900000000000000000003", 0, []byte("line one\nline two\n")),
		recordMsg("other.subject", "user1", "4900000000000000000004", 0, []byte("not for us")),
	)
	if code := r.wait(t); code != 0 {
		t.Fatalf("exit %d: %s", code, r.err.String())
	}
	out := r.out.String()
	for _, want := range []string{
		"#1 kinesis.orders  lag ",
		"  Kinesis-Stream: orders\n",
		"  Kinesis-Shard-Id: shardId-000000000001\n",
		"  Kinesis-Partition-Key: caf\u00e9 100%\n", // percent-decoded
		"  Kinesis-Sequence-Number: 4900000000000000000001\n",
		"  Kinesis-Sub-Sequence-Number: 2\n",
		"  Kinesis-Arrival-Time: 2026-11-25T23:52:14.730Z\n",
		"  Nats-Msg-Id: orders:shardId-000000000001:4900000000000000000001:2\n",
		`  data (23 bytes): {"event":"user signup"}` + "\n",
		"#2 kinesis.orders",
		"  data (105 bytes, binary):\n    00000000  1f 8b 08 00 ff 00",
		"    ... 41 more bytes",
		"  base64: H4sIAP8A",
		"  Kinesis-Partition-Key: \" k\\r\\n\"\n", // quoted: spaces and control characters
		"  data (18 bytes, 2 lines):\n    line one\n    line two\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if strings.Contains(out, "not for us") || strings.Contains(out, "#4") {
		t.Errorf("printed more than --count or another subject:\n%s", out)
	}
	// Headers in the documented order.
	first := out[:strings.Index(out, "#2 ")]
	last := -1
	for _, h := range []string{"Kinesis-Stream", "Kinesis-Shard-Id", "Kinesis-Partition-Key", "Kinesis-Sequence-Number", "Kinesis-Sub-Sequence-Number", "Kinesis-Arrival-Time", "Nats-Msg-Id", "data"} {
		i := strings.Index(first, "  "+h)
		if i < last {
			t.Errorf("%s out of order in\n%s", h, first)
		}
		last = i
	}
	if t.Failed() {
		t.Logf("output:\n%s", out)
	}
}

func TestTailJSON(t *testing.T) {
	ns := testutil.StartNATS(t, testutil.NATSOptions{JetStream: false})
	r := startTail(t, "--server", ns.ClientURL(), "--count", "3", "--json")
	dl := nats.NewMsg("fanoutd.deadletter.orders") // not under the default kinesis.>
	publish(t, ns.ClientURL(),
		recordMsg("kinesis.orders.a", "caf\u00e9", "49001", 1, []byte("hello")),
		dl,
		recordMsg("kinesis.orders.b", "user2", "49002", 0, binaryData),
		recordMsg("kinesis.orders.c", "", "49003", 0, nil),
	)
	if code := r.wait(t); code != 0 {
		t.Fatalf("exit %d: %s", code, r.err.String())
	}
	lines := strings.Split(strings.TrimSpace(r.out.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines, want 3:\n%s", len(lines), r.out.String())
	}
	var got []map[string]any
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("not JSON: %q: %v", l, err)
		}
		got = append(got, m)
	}
	text := got[0]
	for k, want := range map[string]any{
		"subject": "kinesis.orders.a", "stream": "orders", "shard_id": "shardId-000000000001",
		"partition_key": "caf\u00e9", "sequence_number": "49001", "sub_sequence_number": 1.0,
		"arrival_time": "2026-11-25T23:52:14.730Z", "msg_id": "orders:shardId-000000000001:49001:1",
		"size": 5.0, "data": "hello", "data_encoding": "utf-8",
	} {
		if text[k] != want {
			t.Errorf("%s = %#v, want %#v", k, text[k], want)
		}
	}
	if h := text["headers"].(map[string]any)["Kinesis-Partition-Key"].([]any)[0]; h != "caf%C3%A9" {
		t.Errorf("raw header %v, want it as sent", h)
	}
	bin := got[1]
	if bin["data"] != base64.StdEncoding.EncodeToString(binaryData) || bin["data_encoding"] != "base64" || bin["size"] != 105.0 {
		t.Errorf("binary data %v size %v", bin["data"], bin["size"])
	}
	if _, ok := bin["sub_sequence_number"]; ok {
		t.Errorf("plain record has a sub_sequence_number: %v", bin)
	}
	empty := got[2]
	if empty["data"] != "" || empty["data_encoding"] != "utf-8" || empty["partition_key"] != "" {
		t.Errorf("empty record: %v", empty)
	}
}

// A CloudWatch Logs event unpacked from a record (payload:
// cloudwatch_logs) shows its log group, stream, owner, id and timestamp
// after the Kinesis headers, and as named fields in --json.
func TestTailShowsCloudWatchLogsEvents(t *testing.T) {
	ns := testutil.StartNATS(t, testutil.NATSOptions{JetStream: false})
	logged := time.UnixMilli(time.Now().Add(-3 * time.Second).UnixMilli()) // CloudWatch Logs keeps milliseconds
	m := nats.NewMsg("logs.app")
	m.Header, _ = relay.RecordHeader(&record.Batch{Stream: "logs", ShardID: "shardId-000000000000"}, &record.Record{
		PartitionKey: "6a0f", SequenceNumber: "49007", ArrivalTime: time.Now(),
		Unpacked: &record.Unpacked{Index: 1, LogGroup: "/aws/lambda/orders", LogStream: "2026/12/07/[$LATEST]abc",
			Owner: "123456789012", EventID: "3195310660696698337880902507980421114328961542429822156", Timestamp: logged.UnixMilli(),
			SubscriptionFilters: "to-kinesis"},
	})
	m.Data = []byte("ERROR payment failed")
	want := map[string]string{
		"log_group": "/aws/lambda/orders", "log_stream": "2026/12/07/[$LATEST]abc", "owner": "123456789012",
		"event_id": "3195310660696698337880902507980421114328961542429822156", "event_timestamp": relay.FormatArrivalTime(logged),
	}

	human := startTail(t, "logs.>", "--server", ns.ClientURL(), "--count", "1")
	js := startTail(t, "logs.>", "--server", ns.ClientURL(), "--count", "1", "--json")
	publish(t, ns.ClientURL(), m)
	if code := human.wait(t); code != 0 {
		t.Fatalf("exit %d: %s", code, human.err.String())
	}
	out := human.out.String()
	// Logged 3 s before it arrived: about 3 s ago (more on a busy machine).
	if first := out[:strings.IndexByte(out+"\n", '\n')]; !regexp.MustCompile(`^#1 logs\.app  lag \S+  logged [3-9][.0-9]*m?s ago$`).MatchString(first) {
		t.Errorf("first line %q", first)
	}
	for _, w := range []string{
		"  Kinesis-Arrival-Time: 20", "  Cloudwatch-Log-Group: /aws/lambda/orders\n", "  Cloudwatch-Log-Stream: 2026/12/07/[$LATEST]abc\n",
		"  Cloudwatch-Owner: 123456789012\n", "  Cloudwatch-Event-Timestamp: " + want["event_timestamp"] + "\n",
		"  Nats-Msg-Id: logs:shardId-000000000000:49007:0:1\n", "  data (20 bytes): ERROR payment failed\n"} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
	if i, j := strings.Index(out, "Kinesis-Arrival-Time"), strings.Index(out, "Cloudwatch-Log-Group"); i < 0 || j < i || j > strings.Index(out, "Nats-Msg-Id") {
		t.Errorf("CloudWatch headers not between the Kinesis ones and Nats-Msg-Id:\n%s", out)
	}

	if code := js.wait(t); code != 0 {
		t.Fatalf("--json: exit %d: %s", code, js.err.String())
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(js.out.String()), &got); err != nil {
		t.Fatalf("not JSON: %q: %v", js.out.String(), err)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %#v, want %q", k, got[k], v)
		}
	}
}

func TestTailRawPrintsDataOnly(t *testing.T) {
	ns := testutil.StartNATS(t, testutil.NATSOptions{JetStream: false})
	r := startTail(t, "kinesis.*.user1", "--server", ns.ClientURL(), "-n", "2", "--raw")
	publish(t, ns.ClientURL(),
		recordMsg("kinesis.orders.user2", "user2", "1", 0, []byte("skipped")),
		recordMsg("kinesis.orders.user1", "user1", "2", 0, []byte(`{"a":1}`)),
		recordMsg("kinesis.clicks.user1", "user1", "3", 0, []byte("b")),
	)
	if code := r.wait(t); code != 0 {
		t.Fatalf("exit %d: %s", code, r.err.String())
	}
	if got, want := r.out.String(), "{\"a\":1}\nb\n"; got != want {
		t.Fatalf("output %q, want %q", got, want)
	}
}

// --config connects with the nats section, so authentication works as it
// does for the daemon.
func TestTailWithConfigUsesItsNATSSettings(t *testing.T) {
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true, Authorization: "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	t.Cleanup(ns.Shutdown)
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS not ready")
	}
	writeConfig := func(token string) string {
		path := filepath.Join(t.TempDir(), "fanoutd.yaml")
		body := fmt.Sprintf("streams:\n  - name: orders\nnats:\n  servers: [%q]\n  token: %s\n  publish_timeout: 2s\ncheckpoint:\n  dir: %q\n",
			ns.ClientURL(), token, t.TempDir())
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	t.Setenv("FANOUTD_TEST_NATS_TOKEN", "s3cret")
	r := startTail(t, "--config", writeConfig("${FANOUTD_TEST_NATS_TOKEN}"), "--count", "1")
	nc, err := nats.Connect(ns.ClientURL(), nats.Token("s3cret"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := nc.PublishMsg(recordMsg("kinesis.orders", "k", "1", 0, []byte("authenticated"))); err != nil {
		t.Fatal(err)
	}
	if code := r.wait(t); code != 0 || !strings.Contains(r.out.String(), "data (13 bytes): authenticated") {
		t.Fatalf("exit %d, output %q", code, r.out.String())
	}

	var out, errOut testutil.SyncBuffer
	if code := runContext(context.Background(), []string{"tail", "--config", writeConfig("wrong")}, &out, &errOut); code != 1 {
		t.Fatalf("wrong token: exit %d, want 1", code)
	}
	if msg := errOut.String(); !strings.Contains(strings.ToLower(msg), "authorization violation") || strings.Contains(msg, "wrong") {
		t.Fatalf("wrong token: message %q (must name the cause, never the token)", msg)
	}
}

func TestTailUsageErrors(t *testing.T) {
	ns := testutil.StartNATS(t, testutil.NATSOptions{JetStream: false})
	for _, args := range [][]string{
		{"--json", "--raw"},
		{"--config", "x.yaml", "--server", ns.ClientURL()},
		{"--count", "-1"},
		{"kinesis..orders", "--server", ns.ClientURL()},
		{"--config", filepath.Join(t.TempDir(), "missing.yaml")},
	} {
		var out, errOut testutil.SyncBuffer
		if code := runContext(context.Background(), append([]string{"tail"}, args...), &out, &errOut); code != 2 {
			t.Errorf("%v: exit %d, want 2 (%s)", args, code, errOut.String())
		}
	}
}

// Ctrl-C in a real process: exit 0, nothing on stdout but messages.
func TestTailSIGINTExitsCleanly(t *testing.T) {
	ns := testutil.StartNATS(t, testutil.NATSOptions{JetStream: false})
	cmd, out := fanoutdProcess(t, nil, "tail", "--server", ns.ClientURL())
	testutil.WaitFor(t, 10*time.Second, "tail to subscribe", func() bool { return strings.Contains(out.String(), "subscribed to kinesis.>") })
	publish(t, ns.ClientURL(), recordMsg("kinesis.orders", "k", "1", 0, []byte("before ctrl-c")))
	testutil.WaitFor(t, 10*time.Second, "the message", func() bool { return strings.Contains(out.String(), "before ctrl-c") })
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := waitExit(t, cmd, 10*time.Second); code != 0 {
		t.Fatalf("exit %d after SIGINT", code)
	}
}

// End to end: records put into Kinesis come out of `fanoutd tail` decoded,
// through a running daemon.
func TestTailShowsRecordsRelayedByTheDaemon(t *testing.T) {
	e := newProcessE2E(t, emutest.Options(), false)
	if err := e.Emu.CreateStream("orders", 2); err != nil {
		t.Fatal(err)
	}
	fanoutdProcess(t, e.EnvLines(), "run", "--config", configFile(t, e, false, `  - name: orders
    subject: "kinesis.{stream}.{partition_key}"`))
	testutil.WaitFor(t, 20*time.Second, "subscriptions", func() bool { return e.Emu.ActiveSubscriptions("orders", "") == 2 })
	r := startTail(t, "kinesis.orders.>", "--server", e.NS.ClientURL(), "--count", "3")
	stored := map[string][2]string{} // data -> shard, sequence
	for _, rec := range []struct{ pk, data string }{{"user1", "user signup"}, {"caf\u00e9 a.b", "user login"}, {"user3", "page view"}} {
		shard, seq, err := e.Emu.PutRecord("orders", rec.pk, []byte(rec.data))
		if err != nil {
			t.Fatal(err)
		}
		stored[rec.data] = [2]string{shard, seq}
	}
	if code := r.wait(t); code != 0 {
		t.Fatalf("exit %d: %s", code, r.err.String())
	}
	out := r.out.String()
	for data, at := range stored {
		if !strings.Contains(out, fmt.Sprintf("data (%d bytes): %s\n", len(data), data)) {
			t.Errorf("output lacks data %q", data)
		}
		if !strings.Contains(out, "Kinesis-Shard-Id: "+at[0]+"\n  Kinesis-Partition-Key: ") ||
			!strings.Contains(out, "Kinesis-Sequence-Number: "+at[1]+"\n") ||
			!strings.Contains(out, "Nats-Msg-Id: orders:"+at[0]+":"+at[1]+":0\n") {
			t.Errorf("output lacks the headers of %q (%s %s)", data, at[0], at[1])
		}
	}
	for _, want := range []string{" kinesis.orders." + string(relay.SanitizeToken(nil, "caf\u00e9 a.b")) + "  lag ", "Kinesis-Partition-Key: caf\u00e9 a.b\n", "Kinesis-Stream: orders\n", "Kinesis-Arrival-Time: 20"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("output:\n%s", out)
	}
}
