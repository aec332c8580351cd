package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fanoutd/fanoutd/internal/testutil"
	"github.com/fanoutd/fanoutd/internal/testutil/e2e"
	"github.com/fanoutd/fanoutd/internal/testutil/emutest"
	"github.com/fanoutd/fanoutd/kpl"
	"github.com/fanoutd/fanoutd/record"
)

// notifySocket is a NOTIFY_SOCKET as systemd provides it: a unixgram socket
// that collects what the daemon sends.
type notifySocket struct {
	path string
	mu   sync.Mutex
	msgs []notifyMsg
}

type notifyMsg struct {
	at   time.Time
	text string
}

func newNotifySocket(t *testing.T) *notifySocket {
	t.Helper()
	dir, err := os.MkdirTemp("", "sd") // short: unix socket paths are limited to 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	ns := &notifySocket{path: filepath.Join(dir, "notify")}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: ns.path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			ns.mu.Lock()
			for _, line := range strings.Split(string(buf[:n]), "\n") {
				ns.msgs = append(ns.msgs, notifyMsg{at: time.Now(), text: line})
			}
			ns.mu.Unlock()
		}
	}()
	return ns
}

// since returns the messages received at or after t.
func (ns *notifySocket) since(t time.Time) []notifyMsg {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	var out []notifyMsg
	for _, m := range ns.msgs {
		if !m.at.Before(t) {
			out = append(out, m)
		}
	}
	return out
}

func (ns *notifySocket) count(prefix string, from time.Time) int {
	n := 0
	for _, m := range ns.since(from) {
		if strings.HasPrefix(m.text, prefix) {
			n++
		}
	}
	return n
}

// READY, WATCHDOG, STATUS and STOPPING reach a real NOTIFY_SOCKET; a stalled
// shard stops the watchdog pings and turns /readyz to 503, and both come
// back when the shard moves again.
func TestSystemdNotifyAndStallDetection(t *testing.T) {
	e := newProcessE2E(t, emutest.Options(), false)
	if err := e.Emu.CreateStream("s", 2); err != nil {
		t.Fatal(err)
	}
	c := e.Config(false, "  - name: s")
	// A stall is caught by stall_timeout long before the idle watchdog would
	// heal it by resubscribing.
	c.Timers = map[string]string{"idle_timeout": "60s", "stall_timeout": "1500ms"}
	path := c.Write(t)

	sock := newNotifySocket(t)
	start := time.Now()
	cmd, out := fanoutdProcess(t, append(e.EnvLines(), "NOTIFY_SOCKET="+sock.path,
		"WATCHDOG_USEC=400000"), // pings every 200 ms
		"run", "--config", path)
	addr := e2e.WaitHTTPAddr(t, out)

	testutil.WaitFor(t, 20*time.Second, "READY=1", func() bool { return sock.count("READY=1", start) == 1 })
	testutil.WaitFor(t, 10*time.Second, "WATCHDOG=1 pings", func() bool { return sock.count("WATCHDOG=1", start) >= 3 })
	testutil.WaitFor(t, 10*time.Second, "STATUS", func() bool { return sock.count("STATUS=2/2 shards subscribed", start) >= 1 })
	if code, body := e2e.Get(t, "http://"+addr+"/readyz"); code != 200 {
		t.Fatalf("/readyz %d: %s", code, body)
	}

	e.Emu.StallSubscriptions("s", "")
	testutil.WaitFor(t, 10*time.Second, "/readyz 503", func() bool {
		code, body := e2e.Get(t, "http://"+addr+"/readyz")
		return code == 503 && strings.Contains(body, "stalled shards")
	})
	stalled := time.Now()
	// Several watchdog intervals with no ping. A ping the notifier decided on
	// just before the stall crossed the threshold may still land after it
	// was seen (on a busy machine, several ticks of 200 ms later): count from
	// a second later, for five ticks.
	quiet := stalled.Add(time.Second)
	testutil.WaitFor(t, 10*time.Second, "2s after the stall was seen", func() bool { return time.Since(stalled) > 2*time.Second })
	if n := sock.count("WATCHDOG=1", quiet); n != 0 {
		t.Fatalf("%d watchdog pings while a shard was stalled", n)
	}
	testutil.WaitFor(t, 10*time.Second, "a STATUS line saying STALLED", func() bool { return strings.Contains(lastStatus(sock), "STALLED") })
	_, body := e2e.Get(t, "http://"+addr+"/metrics")
	if v := e2e.MetricValue(body, `fanoutd_shard_stalled{shard="shardId-000000000000",stream="s"}`); v != 1 {
		t.Fatalf("fanoutd_shard_stalled = %v", v)
	}

	e.Emu.ResumeSubscriptions("s", "")
	resumed := time.Now()
	testutil.WaitFor(t, 10*time.Second, "watchdog pings again", func() bool { return sock.count("WATCHDOG=1", resumed) >= 2 })
	testutil.WaitFor(t, 10*time.Second, "/readyz 200", func() bool { code, _ := e2e.Get(t, "http://"+addr+"/readyz"); return code == 200 })

	stopAt := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	if code := waitExit(t, cmd, 20*time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if sock.count("STOPPING=1", stopAt) != 1 {
		t.Fatalf("no STOPPING=1: %v", sock.since(stopAt))
	}
}

func lastStatus(ns *notifySocket) string {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	for i := len(ns.msgs) - 1; i >= 0; i-- {
		if strings.HasPrefix(ns.msgs[i].text, "STATUS=") {
			return ns.msgs[i].text
		}
	}
	return ""
}

// The metrics match a known load, and `fanoutd status` shows them.
func TestMetricsMatchKnownLoad(t *testing.T) {
	e := newProcessE2E(t, emutest.Options(), false)
	if err := e.Emu.CreateStream("s", 2); err != nil {
		t.Fatal(err)
	}
	keys := e2e.Keys(5)
	e.Put("s", keys, 0, 8) // 40 records, 5 or 6 bytes each
	agg := kpl.Aggregate([]record.Record{{PartitionKey: "k", Data: []byte("abc")}, {PartitionKey: "k", Data: []byte("defg")}})
	e.Emu.PutRecord("s", "k", agg) // 2 user records, 7 bytes
	// A record over NATS' max_payload (1 MiB by default): a dead letter.
	e.Emu.PutRecord("s", "big", bytes.Repeat([]byte("x"), 1<<20-100))
	cmd, logs := fanoutdProcess(t, e.EnvLines(), "run", "--config", configFile(t, e, false, "  - name: s"))
	addr := e2e.WaitHTTPAddr(t, logs)
	wantBytes := 0
	for i := 0; i < 8; i++ {
		for _, k := range keys {
			wantBytes += len(fmt.Sprintf("%s:%d", k, i))
		}
	}
	wantBytes += 7
	var body string
	// A shard's read count moves after the relay confirmed its batch: wait
	// for both.
	testutil.WaitFor(t, 20*time.Second, "42 records relayed and 43 read in the metrics", func() bool {
		_, body = e2e.Get(t, "http://"+addr+"/metrics")
		return e2e.MetricValue(body, `fanoutd_records_relayed_total{stream="s"}`) >= 42 &&
			e2e.MetricValue(body, `fanoutd_records_read_total{shard="shardId-000000000000",stream="s"}`)+
				e2e.MetricValue(body, `fanoutd_records_read_total{shard="shardId-000000000001",stream="s"}`) >= 43
	})
	sum := func(series string) float64 {
		total := 0.0
		for _, p := range strings.Split(series, "+") {
			total += e2e.MetricValue(body, p)
		}
		return total
	}
	for series, want := range map[string]float64{
		`fanoutd_records_relayed_total{stream="s"}`: 42,
		`fanoutd_bytes_relayed_total{stream="s"}`:   float64(wantBytes),
		`fanoutd_dead_letters_total{stream="s"}`:    1,
		`fanoutd_records_read_total{shard="shardId-000000000000",stream="s"}` + "+" + `fanoutd_records_read_total{shard="shardId-000000000001",stream="s"}`: 43,
		`fanoutd_shards{state="reading",stream="s"}`: 2,
		`fanoutd_nats_connected`:                     1,
		`fanoutd_ready`:                              1,
		`fanoutd_subscriptions_started_total{shard="shardId-000000000000",stream="s"}`: 1,
		`fanoutd_subscriptions_started_total{shard="shardId-000000000001",stream="s"}`: 1,
		`fanoutd_millis_behind_latest{shard="shardId-000000000000",stream="s"}`:        0,
	} {
		if got := sum(series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	// Every non-empty batch was timed: two shards, at least one batch each.
	if n := e2e.MetricValue(body, `fanoutd_publish_duration_seconds_count{stream="s"}`); n < 2 {
		t.Errorf("publish histogram count %v", n)
	}
	if !strings.Contains(body, `fanoutd_build_info{version=`) {
		t.Error("no build info")
	}
	// A subscription ended by an exception frame is counted by reason and code.
	e.Emu.EndSubscriptions("s", emulatorShard0, "InternalFailureException", "")
	testutil.WaitFor(t, 10*time.Second, "error counted", func() bool {
		_, body = e2e.Get(t, "http://"+addr+"/metrics")
		return e2e.MetricValue(body, `fanoutd_subscribe_errors_total{error="InternalFailureException",stream="s"}`) == 1 &&
			e2e.MetricValue(body, `fanoutd_subscriptions_ended_total{reason="error",stream="s"}`) == 1
	})
	if code, _ := e2e.Get(t, "http://"+addr+"/healthz"); code != 200 {
		t.Fatalf("/healthz %d", code)
	}
	var st struct {
		Streams []struct {
			Name   string
			Shards []struct {
				ID         string `json:"id"`
				State      string `json:"state"`
				Checkpoint string `json:"checkpoint"`
				Records    int    `json:"records"`
			} `json:"shards"`
		} `json:"streams"`
	}
	_, sbody := e2e.Get(t, "http://"+addr+"/status")
	if err := json.Unmarshal([]byte(sbody), &st); err != nil || len(st.Streams) != 1 || len(st.Streams[0].Shards) != 2 {
		t.Fatalf("/status: %v %s", err, sbody)
	}
	total := 0
	for _, sh := range st.Streams[0].Shards {
		if sh.State != "reading" || sh.Checkpoint == "" {
			t.Fatalf("shard %+v", sh)
		}
		total += sh.Records
	}
	if total != 43 { // the dead-lettered record counts as handled
		t.Fatalf("/status records %d", total)
	}

	// fanoutd status prints the table.
	var out, errOut bytes.Buffer
	if code := runContext(context.Background(), []string{"status", "--url", "http://" + addr}, &out, &errOut); code != 0 {
		t.Fatalf("status: exit %d: %s", code, errOut.String())
	}
	for _, want := range []string{"ready", "shardId-000000000000", "shardId-000000000001", "reading", "1 dead letters"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("status output lacks %q:\n%s", want, out.String())
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if code := waitExit(t, cmd, 20*time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
	var out2, errOut2 bytes.Buffer
	if code := runContext(context.Background(), []string{"status", "--url", "http://" + addr}, &out2, &errOut2); code != 1 || !strings.Contains(errOut2.String(), "is it running") {
		t.Fatalf("status of a stopped daemon: exit %d: %s", code, errOut2.String())
	}
}

const emulatorShard0 = "shardId-000000000000"

// SIGHUP: a valid new file adds a stream, changes a subject and the log
// level without losing or repeating records; an invalid one is rejected
// with its problems logged, and the running config stays.
func TestSIGHUPReload(t *testing.T) {
	e := newProcessE2E(t, emutest.Options(), false)
	for _, s := range []string{"a", "b"} {
		if err := e.Emu.CreateStream(s, 1); err != nil {
			t.Fatal(err)
		}
	}
	c := e.Config(false, "  - name: a")
	path := c.Write(t)
	cmd, out := fanoutdProcess(t, e.EnvLines(), "run", "--config", path)
	keys := e2e.Keys(3)
	e.Put("a", keys, 0, 5)
	testutil.WaitFor(t, 20*time.Second, "stream a", func() bool { return len(e.Msgs.OnSubject("kinesis.a")) >= 15 })

	// Valid: add stream b, move a to a new subject, lower the log level.
	c.Streams = "  - name: a\n    subject: \"relay.{stream}.{partition_key}\"\n  - name: b"
	c.LogLevel = "info"
	c.WriteFile(t, path)
	cmd.Process.Signal(syscall.SIGHUP)
	testutil.WaitFor(t, 20*time.Second, "reloaded", func() bool { return strings.Contains(out.String(), "configuration reloaded") })
	e.Put("a", keys, 5, 5)
	e.Put("b", keys, 0, 5)
	testutil.WaitFor(t, 20*time.Second, "a on its new subject and b", func() bool {
		return len(e.Msgs.OnSubject("relay.a.")) >= 15 && len(e.Msgs.OnSubject("kinesis.b")) >= 15
	})
	e2e.ExactlyOnceInOrder(t, append(e.Msgs.OnSubject("kinesis.a"), e.Msgs.OnSubject("relay.a.")...), keys, 10)
	e2e.ExactlyOnceInOrder(t, e.Msgs.OnSubject("kinesis.b"), keys, 5)
	before := strings.Count(out.String(), `"level":"debug"`)
	addr := e2e.WaitHTTPAddr(t, out)
	_, body := e2e.Get(t, "http://"+addr+"/metrics")
	okAt := e2e.MetricValue(body, "fanoutd_config_last_reload_success_timestamp_seconds")
	if v := e2e.MetricValue(body, "fanoutd_config_last_reload_successful"); v != 1 || okAt <= 0 {
		t.Fatalf("after a valid reload: fanoutd_config_last_reload_successful %v, success timestamp %v", v, okAt)
	}

	// Invalid: rejected, logged by key path; both streams keep running.
	c.Streams += "\n    start_position: EARLIEST"
	c.WriteFile(t, path)
	cmd.Process.Signal(syscall.SIGHUP)
	testutil.WaitFor(t, 20*time.Second, "rejection", func() bool {
		return strings.Contains(out.String(), "config reload rejected") && strings.Contains(out.String(), "streams[1].start_position")
	})
	e.Put("a", keys, 10, 5)
	e.Put("b", keys, 5, 5)
	testutil.WaitFor(t, 20*time.Second, "both still relayed", func() bool {
		return len(e.Msgs.OnSubject("relay.a.")) >= 30 && len(e.Msgs.OnSubject("kinesis.b")) >= 30
	})
	e2e.ExactlyOnceInOrder(t, append(e.Msgs.OnSubject("kinesis.a"), e.Msgs.OnSubject("relay.a.")...), keys, 15)
	e2e.ExactlyOnceInOrder(t, e.Msgs.OnSubject("kinesis.b"), keys, 10)
	if after := strings.Count(out.String(), `"level":"debug"`); after != before {
		t.Fatalf("debug lines after the level went to info: %d -> %d", before, after)
	}
	_, body = e2e.Get(t, "http://"+addr+"/metrics")
	if v, at := e2e.MetricValue(body, "fanoutd_config_last_reload_successful"), e2e.MetricValue(body, "fanoutd_config_last_reload_success_timestamp_seconds"); v != 0 || at != okAt {
		t.Fatalf("after a rejected reload: fanoutd_config_last_reload_successful %v (want 0), success timestamp %v (want %v, unchanged)", v, at, okAt)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if code := waitExit(t, cmd, 20*time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
}
