package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/fanoutd/fanoutd/emulator"
	"github.com/fanoutd/fanoutd/internal/testutil"
	"github.com/fanoutd/fanoutd/internal/testutil/e2e"
	"github.com/fanoutd/fanoutd/internal/testutil/emutest"
)

// TestMain lets the test binary stand in for the fanoutd binary: with
// FANOUTD_TEST_MAIN=1 it runs main's code on its arguments, so tests can
// send real signals to a real process without a separate build.
func TestMain(m *testing.M) {
	if os.Getenv("FANOUTD_TEST_MAIN") == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// fanoutdProcess starts `fanoutd args...` as a child process, with env
// (KEY=value lines, such as an emulator's) added to this process's
// environment.
func fanoutdProcess(t *testing.T, env []string, args ...string) (*exec.Cmd, *testutil.SyncBuffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(append(os.Environ(), "FANOUTD_TEST_MAIN=1"), env...)
	out := &testutil.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("process output:\n%s", out.String())
		}
	})
	return cmd, out
}

func waitExit(t *testing.T, cmd *exec.Cmd, d time.Duration) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(d):
		t.Fatalf("process did not exit within %v", d)
		return -1
	}
}

// SIGTERM: stop reading, finish in-flight batches, write final checkpoints,
// drain NATS, exit 0.
func TestSIGTERMShutsDownCleanly(t *testing.T) {
	e := newProcessE2E(t, emutest.Options(), false)
	if err := e.Emu.CreateStream("s", 2); err != nil {
		t.Fatal(err)
	}
	keys := e2e.Keys(4)
	e.Put("s", keys, 0, 5)
	cmd, out := fanoutdProcess(t, e.EnvLines(), "run", "--config", configFile(t, e, false, "  - name: s"))
	testutil.WaitFor(t, 20*time.Second, "records", func() bool { return len(e.Msgs.OnSubject("kinesis.")) >= 20 })
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := waitExit(t, cmd, 20*time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM", code)
	}
	if !strings.Contains(out.String(), "fanoutd stopped") {
		t.Fatalf("no clean-stop log line:\n%s", out.String())
	}
	files, _ := filepath.Glob(filepath.Join(e.Dir, "s", "fanoutd", "*.json"))
	if len(files) != 2 {
		t.Fatalf("checkpoint files %v", files)
	}
	e2e.ExactlyOnceInOrder(t, e.Msgs.OnSubject("kinesis."), keys, 5)
}

// A second SIGTERM while the first one's shutdown waits for a batch
// JetStream does not confirm (a full stream that discards new messages)
// exits 1 at once, as `fanoutd help run` says.
func TestSecondSIGTERMExitsAtOnce(t *testing.T) {
	e := newProcessE2E(t, emutest.Options(), true)
	if err := e.Emu.CreateStream("s", 1); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(e.NS.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	st, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "KINESIS", Subjects: []string{"kinesis.>", "fanoutd.deadletter.>"},
		MaxMsgs: 3, Discard: jetstream.DiscardNew})
	if err != nil {
		t.Fatal(err)
	}
	e.Put("s", e2e.Keys(1), 0, 10)
	c := e.Config(true, "  - name: s")
	c.PublishTimeout = "2m"
	c.Timers = map[string]string{"shutdown_timeout": "2m"}
	cmd, out := fanoutdProcess(t, e.EnvLines(), "run", "--config", c.Write(t))
	testutil.WaitFor(t, 30*time.Second, "the stream full", func() bool {
		info, err := st.Info(t.Context())
		return err == nil && info.State.Msgs == 3
	})
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "the shutdown begun", func() bool { return strings.Contains(out.String(), "shutting down") })
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := waitExit(t, cmd, 15*time.Second); code != exitFailure {
		t.Fatalf("exit %d after a second SIGTERM, want %d", code, exitFailure)
	}
	if !strings.Contains(out.String(), "exiting now") {
		t.Fatalf("no word of the second signal:\n%s", out.String())
	}
}

// A fatal error exits non-zero, so that systemd restarts the daemon.
func TestUnreachableNATSExitsNonZero(t *testing.T) {
	e := newProcessE2E(t, emutest.Options(), false)
	if err := e.Emu.CreateStream("s", 1); err != nil {
		t.Fatal(err)
	}
	path := configFile(t, e, false, "  - name: s")
	e.NS.Shutdown()
	cmd, out := fanoutdProcess(t, e.EnvLines(), "run", "--config", path)
	if code := waitExit(t, cmd, 30*time.Second); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	if !strings.Contains(out.String(), "nats") && !strings.Contains(out.String(), "NATS") {
		t.Fatalf("error does not name NATS:\n%s", out.String())
	}
}

func TestDemoRunsAndLosesNothing(t *testing.T) {
	var out, errOut bytes.Buffer
	code := runContext(context.Background(), []string{"demo", "--duration", "2s", "--rate", "20"}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out.String(), errOut.String())
	}
	s := out.String()
	for _, want := range []string{"kinesis.demo.user1", "Kinesis-Shard-Id: shardId-", "Kinesis-Sub-Sequence-Number: 2", "data (11 bytes): user signup\n", "summary: produced", " 0 duplicates"} {
		if !strings.Contains(s, want) {
			t.Fatalf("demo output lacks %q:\n%s", want, s)
		}
	}
}

// The demo's messages are the same when the relay polls: KPL sub-records
// with their sub-sequence numbers, nothing lost, nothing twice.
func TestDemoReadPollingLosesNothing(t *testing.T) {
	var out, errOut bytes.Buffer
	code := runContext(context.Background(), []string{"demo", "--read", "polling", "--duration", "2s", "--rate", "20"}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out.String(), errOut.String())
	}
	s := out.String()
	for _, want := range []string{"read: polling", "kinesis.demo.user1", "Kinesis-Shard-Id: shardId-", "Kinesis-Sub-Sequence-Number: 2", "data (11 bytes): user signup\n", "summary: produced", " 0 duplicates"} {
		if !strings.Contains(s, want) {
			t.Fatalf("demo output lacks %q:\n%s", want, s)
		}
	}
}

// --payload json: JSON records, each on a subject built from its data, the
// fallback token where the customer is missing; nothing lost.
func TestDemoPayloadJSONRoutesByData(t *testing.T) {
	var out, errOut bytes.Buffer
	code := runContext(context.Background(), []string{"demo", "--payload", "json", "--duration", "2s", "--rate", "20"}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out.String(), errOut.String())
	}
	s := out.String()
	for _, want := range []string{"subscribed to kinesis.demo.*.*.*\n", "#1 kinesis.demo.", `  data (94 bytes): {"entity":"order","event":"created","order_id":"o-1001","customer":{"id":"c-1"},"amount":12.5}`,
		"kinesis.demo.order.shipped._  lag ", `"order_id":"o-1001","amount":15}`, "summary: produced", " 0 duplicates", "by subject: "} {
		if !strings.Contains(s, want) {
			t.Fatalf("demo output lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "kinesis.demo.user") {
		t.Fatalf("a message on a partition key subject:\n%s", s)
	}
}

// Two daemons on one checkpoint directory: the second exits 2 at once and
// names the first one's PID; the first keeps relaying.
func TestSecondDaemonOnSameDirExits2(t *testing.T) {
	e := newProcessE2E(t, emutest.Options(), false)
	if err := e.Emu.CreateStream("s", 1); err != nil {
		t.Fatal(err)
	}
	path := configFile(t, e, false, "  - name: s")
	first, _ := fanoutdProcess(t, e.EnvLines(), "run", "--config", path)
	lock := filepath.Join(e.Dir, ".lock")
	pid := strconv.Itoa(first.Process.Pid)
	testutil.WaitFor(t, 20*time.Second, "first daemon holds the lock", func() bool {
		data, err := os.ReadFile(lock)
		return err == nil && strings.TrimSpace(string(data)) == pid
	})
	second, out := fanoutdProcess(t, e.EnvLines(), "run", "--config", path)
	if code := waitExit(t, second, 20*time.Second); code != 2 {
		t.Fatalf("second daemon: exit %d, want 2\n%s", code, out.String())
	}
	if want := "is in use by another fanoutd (pid " + pid + ")"; !strings.Contains(out.String(), want) {
		t.Fatalf("second daemon's error lacks %q:\n%s", want, out.String())
	}
	e.Put("s", e2e.Keys(2), 0, 3)
	testutil.WaitFor(t, 20*time.Second, "records from the first daemon", func() bool { return len(e.Msgs.OnSubject("kinesis.")) >= 6 })
}

// `fanoutd demo --jetstream` starts (fanoutd creates its dead-letter
// stream), shows records and exits 0.
func TestDemoJetStream(t *testing.T) {
	var out, errOut testutil.SyncBuffer
	code := runContext(context.Background(), []string{"demo", "--jetstream", "--duration", "10s"}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out.String(), errOut.String())
	}
	for _, want := range []string{"with JetStream", "kinesis.demo.user1", "summary: produced", " 0 duplicates"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("demo output lacks %q:\n%s", want, out.String())
		}
	}
}

// newProcessE2E is for tests that run the daemon only as child processes:
// each child is given the emulator's environment (fanoutdProcess), this
// process's is left alone, and the test runs in parallel with the others
// of its kind.
func newProcessE2E(t *testing.T, opts emulator.Options, jetstream bool) *e2e.Env {
	t.Helper()
	t.Parallel()
	return e2e.Start(t, opts, jetstream)
}

// configFile writes the config of the given streams (YAML list items); the
// child finds the emulator through its environment.
func configFile(t *testing.T, e *e2e.Env, jetstream bool, streams string) string {
	t.Helper()
	return e.Config(jetstream, streams).Write(t)
}
