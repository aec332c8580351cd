package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/fanoutd/fanoutd/internal/testutil"
	"github.com/fanoutd/fanoutd/internal/testutil/e2e"
	"github.com/fanoutd/fanoutd/internal/testutil/emutest"
)

// The fault suite: the emulator, an in-process NATS server (JetStream on
// file storage), the daemon as a real child process, and a producer writing
// many records over many partition keys, while faults are injected one at a
// time. After each, every record must be in JetStream exactly once and in
// order per key (core NATS mode: at least once, duplicates reported), and the
// daemon must have caught up within recoveryBound of the fault being healed.

const (
	// recoveryBound bounds each wait of a scenario (the fault taking effect,
	// the catch-up after it is healed): generous for 2 busy cores with -race.
	recoveryBound = 60 * time.Second
)

type faultEnv struct {
	t        *testing.T
	e        *e2e.Env
	js       bool
	batched  bool // the JetStream stream allows fast batches
	storeDir string
	port     int
	path     string
	cmd      *exec.Cmd
	out      *testutil.SyncBuffer
	*e2e.Producer
}

func portOf(ns *server.Server) int {
	_, p, _ := net.SplitHostPort(strings.TrimPrefix(ns.ClientURL(), "nats://"))
	n, _ := strconv.Atoi(p)
	return n
}

// newFaultEnv sets up the emulator, NATS and the daemon's config. In
// JetStream mode the records stream allows fast batches (as the streams
// fanoutd creates do); newFaultEnvMode chooses.
func newFaultEnv(t *testing.T, js bool) *faultEnv {
	return newFaultEnvMode(t, js, js)
}

func newFaultEnvMode(t *testing.T, js, batched bool) *faultEnv {
	t.Helper()
	opts := emutest.Options()
	opts.SubscriptionLifetime = 3 * time.Second // renewals happen during every scenario
	e := newProcessE2E(t, opts, false)
	f := &faultEnv{t: t, e: e, js: js, batched: batched, Producer: e2e.NewProducer(e.Emu)}
	if js {
		// A JetStream server whose store survives restarts, on a fixed port.
		e.NS.Shutdown()
		f.storeDir = t.TempDir()
		e.NS = testutil.StartNATS(t, testutil.NATSOptions{JetStream: true, Port: 0, StoreDir: f.storeDir})
		f.port = portOf(e.NS)
		nc := f.conn()
		defer nc.Close()
		js, _ := jetstream.New(nc)
		if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: "KINESIS",
			Subjects: []string{"kinesis.>", "fanoutd.deadletter.>"}, Storage: jetstream.FileStorage,
			Duplicates: 5 * time.Minute, Discard: jetstream.DiscardNew, AllowBatchPublish: batched}); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.Emu.CreateStream("s", 3); err != nil {
		t.Fatal(err)
	}
	c := e.Config(js, "  - name: s\n    subject: \"kinesis.{stream}.{partition_key}\"")
	// A short idle timeout so that stalls are noticed within the scenario.
	c.Timers = map[string]string{"idle_timeout": "1s"}
	f.path = c.Write(t)
	return f
}

func (f *faultEnv) conn() *nats.Conn {
	f.t.Helper()
	nc, err := nats.Connect(f.e.NS.ClientURL())
	if err != nil {
		f.t.Fatal(err)
	}
	return nc
}

func (f *faultEnv) startDaemon() {
	f.cmd, f.out = fanoutdProcess(f.t, f.e.EnvLines(), "run", "--config", f.path)
}

// delivered counts the distinct records that reached NATS.
func (f *faultEnv) delivered() int {
	if f.js {
		nc, err := nats.Connect(f.e.NS.ClientURL(), nats.Timeout(time.Second))
		if err != nil {
			return 0
		}
		defer nc.Close()
		js, _ := jetstream.New(nc)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		s, err := js.Stream(ctx, "KINESIS")
		if err != nil {
			return 0
		}
		return int(s.CachedInfo().State.Msgs)
	}
	seen := map[string]bool{}
	for _, m := range f.e.Msgs.OnSubject("kinesis.") {
		seen[string(m.Data)] = true
	}
	return len(seen)
}

// waitProgress waits until at least n records more than now were delivered.
func (f *faultEnv) waitProgress(n int) {
	f.t.Helper()
	base := f.delivered()
	testutil.WaitFor(f.t, recoveryBound, fmt.Sprintf("%d more records delivered", n), func() bool { return f.delivered() >= base+n })
}

// finish stops the producer, waits until everything was delivered, and
// checks the result. It returns how long the catch-up took.
func (f *faultEnv) finish(healed time.Time) {
	f.t.Helper()
	total := f.StopProducing()
	testutil.WaitFor(f.t, recoveryBound, fmt.Sprintf("all %d records delivered", total), func() bool { return f.delivered() >= total })
	f.t.Logf("caught up %v after the fault was healed (bound %v); %d records", time.Since(healed).Round(time.Millisecond), recoveryBound, total)
	if f.js {
		f.checkJetStream(total)
	} else {
		f.checkCore(total)
	}
}

func (f *faultEnv) checkJetStream(total int) {
	f.t.Helper()
	nc := f.conn()
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	s, err := js.Stream(ctx, "KINESIS")
	if err != nil {
		f.t.Fatal(err)
	}
	info := s.CachedInfo()
	if int(info.State.Msgs) != total {
		f.t.Fatalf("JetStream holds %d messages, want exactly %d", info.State.Msgs, total)
	}
	var stored []testutil.Delivery
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			f.t.Fatal(err)
		}
		stored = append(stored, testutil.Delivery{Data: m.Data})
	}
	testutil.CheckDelivered(f.t, stored, f.Want(), testutil.ExactlyOnce)
}

func (f *faultEnv) checkCore(total int) {
	f.t.Helper()
	msgs := f.e.Msgs.OnSubject("kinesis.")
	dups := testutil.CheckDelivered(f.t, e2e.Deliveries(msgs), f.Want(), testutil.AtLeastOnce)
	f.t.Logf("core NATS: %d messages for %d records: %d duplicates", len(msgs), total, dups)
}

type faultScenario struct {
	name string
	js   bool // JetStream only (core NATS has no store to recover into)
	// inject breaks something and returns a func that heals it (or nil).
	inject func(f *faultEnv) (heal func())
	// took reports that the fault had its effect on the daemon; it is
	// polled (with a deadline) before healing.
	took func(f *faultEnv) bool
}

var faultScenarios = []faultScenario{
	{name: "connection cuts", inject: func(f *faultEnv) func() {
		for i := 0; i < 3; i++ {
			f.e.Emu.CutSubscriptions("s", "")
			f.waitProgress(50)
		}
		f.e.Emu.DropConnections()
		return nil
	}, took: func(f *faultEnv) bool { return f.e.Emu.OpCount("SubscribeToShard") >= 3*4 }},
	{name: "exception frames", inject: func(f *faultEnv) func() {
		for _, exc := range []string{"InternalFailureException", "ResourceInUseException", "KMSThrottlingException", "ResourceNotFoundException"} {
			f.endUntilCounted(exc)
			f.waitProgress(50)
		}
		return nil
	}, took: func(f *faultEnv) bool {
		// Counted, not logged: repeated warnings are rate-limited, so on a
		// busy machine (idle-timeout warnings first) a log line may be dropped.
		for _, code := range []string{"InternalFailureException", "ResourceInUseException", "KMSThrottlingException", "ResourceNotFoundException"} {
			if f.metricIf(`fanoutd_subscribe_errors_total{error="`+code+`",stream="s"}`) < 1 {
				return false
			}
		}
		return true
	}},
	{name: "throttling and 5xx", inject: func(f *faultEnv) func() {
		f.e.Emu.Throttle("SubscribeToShard", 6)
		f.e.Emu.FailNextStatus("SubscribeToShard", 3, 503, "ServiceUnavailableException", "injected")
		f.e.Emu.Throttle("ListShards", 3)
		f.e.Emu.EndSubscriptions("s", "", "", "")
		return nil
	}, took: func(f *faultEnv) bool { return f.e.Emu.PendingFaults() == 0 }},
	{name: "stalled streams", inject: func(f *faultEnv) func() {
		// Stalled until the idle watchdog recovered on its own.
		f.untilCounted(`fanoutd_subscriptions_ended_total{reason="idle",stream="s"}`, func() int { return f.e.Emu.StallSubscriptions("s", "") })
		return nil
	}, took: func(f *faultEnv) bool {
		return f.metricIf(`fanoutd_subscriptions_ended_total{reason="idle",stream="s"}`) >= 1
	}},
	{name: "split and merge", inject: func(f *faultEnv) func() {
		kids, err := f.e.Emu.SplitShard("s", "shardId-000000000001")
		if err != nil {
			f.t.Fatal(err)
		}
		f.waitProgress(100)
		if _, err := f.e.Emu.MergeShards("s", kids[0], kids[1]); err != nil {
			f.t.Fatal(err)
		}
		return nil
	}, took: func(f *faultEnv) bool { return f.metricIf(`fanoutd_shards{state="ended",stream="s"}`) >= 3 }},
	{name: "SIGKILL and restart", inject: func(f *faultEnv) func() {
		f.cmd.Process.Signal(syscall.SIGKILL)
		f.cmd.Wait()
		return func() { f.startDaemon() }
	}, took: func(f *faultEnv) bool { return f.cmd.ProcessState != nil }},
	{name: "NATS server restart", js: true, inject: func(f *faultEnv) func() {
		f.e.NS.Shutdown()
		f.e.NS.WaitForShutdown()
		return func() {
			f.e.NS = testutil.StartNATS(f.t, testutil.NATSOptions{JetStream: true, Port: f.port, StoreDir: f.storeDir})
		}
	}, took: func(f *faultEnv) bool {
		return f.metricIf(`fanoutd_subscriptions_ended_total{reason="handler",stream="s"}`) >= 1
	}},
	{name: "JetStream stream full", js: true, inject: func(f *faultEnv) func() {
		nc := f.conn()
		defer nc.Close()
		js, _ := jetstream.New(nc)
		ctx := context.Background()
		s, _ := js.Stream(ctx, "KINESIS")
		cfg := s.CachedInfo().Config
		full := cfg
		full.MaxMsgs = int64(s.CachedInfo().State.Msgs) + 20
		if _, err := js.UpdateStream(ctx, full); err != nil {
			f.t.Fatal(err)
		}
		return func() {
			nc := f.conn()
			defer nc.Close()
			js, _ := jetstream.New(nc)
			cfg.MaxMsgs = -1
			if _, err := js.UpdateStream(context.Background(), cfg); err != nil {
				f.t.Fatal(err)
			}
		}
	}, took: func(f *faultEnv) bool { return f.metricIf(`fanoutd_publish_failed_batches_total{stream="s"}`) >= 1 }},
}

// endUntilCounted ends the daemon's subscriptions with an exception frame
// of type exc until the daemon counted one. A frame sent to a subscription
// that is ending already (renewed every 3 s here) is lost: it is sent again,
// at most every half second, while none was counted.
func (f *faultEnv) endUntilCounted(exc string) {
	f.t.Helper()
	f.untilCounted(`fanoutd_subscribe_errors_total{error="`+exc+`",stream="s"}`, func() int { return f.e.Emu.EndSubscriptions("s", "", exc, "") })
}

// untilCounted applies fault (which returns how many subscriptions it
// reached) until the daemon's counter metric grew, applying it again at
// most every half second while it did not.
func (f *faultEnv) untilCounted(metric string, fault func() int) {
	f.t.Helper()
	before := max(f.metricIf(metric), 0)
	var last time.Time
	testutil.WaitFor(f.t, recoveryBound, metric+" to grow", func() bool {
		if f.metricIf(metric) > before {
			return true
		}
		if time.Since(last) >= 500*time.Millisecond && fault() > 0 {
			last = time.Now()
		}
		return false
	})
}

func runFaultSuite(t *testing.T, js, batched bool) {
	if testing.Short() {
		t.Skip("slow: the daemon as a process through every fault (run without -short)")
	}
	for _, sc := range faultScenarios {
		if sc.js && !js {
			continue
		}
		t.Run(sc.name, func(t *testing.T) {
			f := newFaultEnvMode(t, js, batched)
			f.startDaemon()
			f.Produce()
			f.waitProgress(100)
			heal := sc.inject(f)
			testutil.WaitFor(t, recoveryBound, "the fault to take effect", func() bool { return sc.took(f) })
			if heal != nil {
				heal()
			}
			healed := time.Now()
			f.waitProgress(100)
			f.finish(healed)
			if js {
				// Which publishing path the records took, for the log;
				// both are checked the same way above.
				f.t.Logf("records stored by batch publishing: %.0f", f.metricIf("fanoutd_jetstream_batched_records_total"))
			}
			if t.Failed() {
				t.Logf("daemon output:\n%s", f.out.String())
			}
		})
	}
}

// TestFaultSuiteJetStream: into a stream that allows fast batches, the
// default of the streams fanoutd creates.
func TestFaultSuiteJetStream(t *testing.T) { runFaultSuite(t, true, true) }

// TestFaultSuiteJetStreamPerMessage: into a stream without allow_batched,
// every message confirmed by its own PubAck.
func TestFaultSuiteJetStreamPerMessage(t *testing.T) { runFaultSuite(t, true, false) }

func TestFaultSuiteCoreNATS(t *testing.T) { runFaultSuite(t, false, false) }

// metric scrapes one series (name with its labels, as exposed) from the
// daemon's /metrics; the test fails if it is not there.
func (f *faultEnv) metric(name string) float64 {
	f.t.Helper()
	v := f.metricIf(name)
	if v < 0 {
		f.t.Fatalf("no metric %s", name)
	}
	return v
}

// metricIf is metric, -1 when the series is absent (or the daemon's HTTP
// endpoint is not up yet).
func (f *faultEnv) metricIf(name string) float64 {
	f.t.Helper()
	addr := ""
	for _, line := range strings.Split(f.out.String(), "\n") {
		if strings.Contains(line, "HTTP endpoint listening") {
			if _, rest, ok := strings.Cut(line, `"addr":"`); ok {
				addr, _, _ = strings.Cut(rest, `"`)
			}
		}
	}
	if addr == "" {
		return -1
	}
	res, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return -1
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			n, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				f.t.Fatalf("%s: %v", name, err)
			}
			return n
		}
	}
	return -1
}

// While NATS is down and records keep coming, the daemon stops reading
// (Kinesis keeps the data) and its memory stays flat; once NATS is back,
// everything arrives. The daemon's Go heap (from its own /metrics, which the
// race detector does not inflate) and its RSS are sampled and reported; the
// bound asserted on the heap is far below the backlog.
func TestMemoryFlatWhileNATSDown(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: a 62 MiB backlog while NATS is down (run without -short)")
	}
	f := newFaultEnv(t, true)
	f.startDaemon()
	f.Produce()
	f.waitProgress(200)
	f.StopProducing()
	testutil.WaitFor(t, recoveryBound, "caught up", func() bool { return f.delivered() >= f.ProducedSoFar() })
	const heap = "go_memstats_heap_inuse_bytes"
	before, rssBefore := f.metric(heap), f.metric("process_resident_memory_bytes")
	peak, rssPeak := before, rssBefore
	sample := func() {
		peak = max(peak, f.metric(heap))
		rssPeak = max(rssPeak, f.metric("process_resident_memory_bytes"))
	}

	f.e.NS.Shutdown()
	f.e.NS.WaitForShutdown()
	const records, size = 4000, 16 << 10 // 62.5 MiB of backlog
	data := make([]byte, size)
	for i := 0; i < records; i++ {
		copy(data, fmt.Sprintf("big%02d:%d:", i%8, i))
		if _, _, err := f.e.Emu.PutRecord("s", fmt.Sprintf("big%02d", i%8), data); err != nil {
			t.Fatal(err)
		}
		if i%200 == 0 {
			sample()
		}
	}
	// Keep sampling while the daemon keeps retrying against the outage.
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		sample()
		time.Sleep(100 * time.Millisecond) // sampling interval, not synchronisation
	}
	const mib = 1 << 20
	t.Logf("daemon while %d MiB piled up in Kinesis with NATS down: Go heap in use %.1f MiB before, peak %.1f MiB (growth %.1f MiB); RSS %.1f MiB before, peak %.1f MiB",
		records*size/mib, before/mib, peak/mib, (peak-before)/mib, rssBefore/mib, rssPeak/mib)
	// The documented bound: about 12 MiB per reading shard (a subscription's
	// 1 MiB HTTP/2 buffer, two decoded events of up to ~3 MiB, GC headroom).
	if growth := peak - before; growth > 3*12*mib {
		t.Fatalf("Go heap grew by %.1f MiB while NATS was down: the daemon is buffering the backlog", growth/mib)
	}
	f.e.NS = testutil.StartNATS(t, testutil.NATSOptions{JetStream: true, Port: f.port, StoreDir: f.storeDir})
	total := f.ProducedSoFar() + records
	testutil.WaitFor(t, 60*time.Second, "backlog delivered", func() bool { return f.delivered() >= total })
}
