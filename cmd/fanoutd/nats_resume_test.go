package main

import (
	"context"
	"encoding/json"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/fanoutd/fanoutd/internal/testutil"
	"github.com/fanoutd/fanoutd/internal/testutil/e2e"
	"github.com/fanoutd/fanoutd/internal/testutil/emutest"
)

// After a NATS outage long enough for a shard's backoff to reach 8 to 16 s,
// delivery resumes within a second or so of the reconnect, not when the
// backoff next fires, and one line says so, with how long delivery stopped
// and how many shards waited. Every line the daemon writes through the
// fault is one JSON object with unique keys.
func TestDeliveryResumesAtNATSReconnect(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: a NATS outage of 10 to 20 s (run without -short)")
	}
	e := newProcessE2E(t, emutest.Options(), false)
	e.NS.Shutdown()
	store := t.TempDir()
	e.NS = testutil.StartNATS(t, testutil.NATSOptions{JetStream: true, StoreDir: store})
	port := portOf(e.NS)
	nc, err := nats.Connect(e.NS.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "KINESIS", Subjects: []string{"kinesis.>", "fanoutd.deadletter.>"},
		Storage: jetstream.FileStorage, Duplicates: 5 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	nc.Close()
	if err := e.Emu.CreateStream("s", 1); err != nil {
		t.Fatal(err)
	}
	c := e.Config(true, "  - name: s")
	c.Timers = map[string]string{"backoff_initial": "1s", "backoff_max": "60s"}
	c.PublishTimeout = "500ms"
	path := c.Write(t)

	cmd, out := fanoutdProcess(t, e.EnvLines(), "run", "--config", path)
	addr := e2e.WaitHTTPAddr(t, out)
	stored := func() uint64 {
		nc, err := nats.Connect(e.NS.ClientURL())
		if err != nil {
			return 0
		}
		defer nc.Close()
		js, _ := jetstream.New(nc)
		s, err := js.Stream(ctx, "KINESIS")
		if err != nil {
			return 0
		}
		return s.CachedInfo().State.Msgs
	}
	e.Put("s", []string{"k"}, 0, 1)
	testutil.WaitFor(t, 30*time.Second, "the first record stored", func() bool { return stored() == 1 })

	e.NS.Shutdown()
	e.NS.WaitForShutdown()
	e.Put("s", []string{"k"}, 1, 1)
	// Failure k is followed by a backoff of 1 s x 2^(k-1), less up to half:
	// after the fifth it is 8 to 16 s, far beyond NATS's own reconnect delay
	// (at most 5 s).
	const handlerEnds = `fanoutd_subscriptions_ended_total{reason="handler",stream="s"}`
	testutil.WaitFor(t, 60*time.Second, "5 failed deliveries", func() bool {
		_, body := e2e.Get(t, "http://"+addr+"/metrics")
		return e2e.MetricValue(body, handlerEnds) >= 5
	})
	e.NS = testutil.StartNATS(t, testutil.NATSOptions{JetStream: true, Port: port, StoreDir: store})
	testutil.WaitFor(t, 30*time.Second, "the record of the outage stored", func() bool { return stored() == 2 })

	var reconnected time.Time
	testutil.WaitFor(t, 10*time.Second, "the resumption logged", func() bool {
		reconnected = logTime(out.String(), "reconnected to NATS")
		return !reconnected.IsZero() && strings.Contains(out.String(), "delivery resumed after the NATS outage")
	})
	nc, err = nats.Connect(e.NS.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ = jetstream.New(nc)
	s, err := js.Stream(ctx, "KINESIS")
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.GetMsg(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if gap := m.Time.Sub(reconnected); gap > 2*time.Second {
		t.Fatalf("the record was stored %v after the reconnect, want within 2s", gap)
	}
	line := firstLogLine(out.String(), "delivery resumed after the NATS outage")
	var resumed struct {
		StoppedFor   string `json:"stopped_for"`
		ShardsWaited int    `json:"shards_waited"`
	}
	if err := json.Unmarshal([]byte(line), &resumed); err != nil {
		t.Fatal(err)
	}
	if d, err := time.ParseDuration(resumed.StoppedFor); err != nil || d < 5*time.Second || resumed.ShardsWaited != 1 {
		t.Fatalf("resumption line %s: want stopped_for over 5s and shards_waited 1", line)
	}

	cmd.Process.Signal(syscall.SIGTERM)
	if code := waitExit(t, cmd, 20*time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
	checkJSONLog(t, out.String())
}

// firstLogLine is the first JSON log line whose message is msg.
func firstLogLine(log, msg string) string {
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, `"message":"`+msg+`"`) {
			return line
		}
	}
	return ""
}

// logTime is the time of the first log line whose message is msg.
func logTime(log, msg string) time.Time {
	var l struct {
		Time time.Time `json:"time"`
	}
	if json.Unmarshal([]byte(firstLogLine(log, msg)), &l) != nil {
		return time.Time{}
	}
	return l.Time
}
