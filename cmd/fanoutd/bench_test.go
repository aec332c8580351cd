package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fanoutd/fanoutd/bench"
)

// TestBench runs `fanoutd bench` with tiny loads in every mode (core,
// JetStream into a stream with allow_batched and into one without), both
// relays as real child processes (this test binary standing in for
// fanoutd, see TestMain), and checks that every figure is there, that both
// relays delivered every record, and that the output passes no verdict. It
// asserts no timings.
func TestBench(t *testing.T) {
	t.Setenv("FANOUTD_TEST_MAIN", "1") // the children run main's code
	// Under -race a process sleeps 1s before it exits (atexit_sleep_ms):
	// 14 child processes would add 14s.
	t.Setenv("GORACE", "atexit_sleep_ms=0")
	profiles := t.TempDir()
	var out, errOut bytes.Buffer
	code := runContext(context.Background(), []string{"bench", "--records", "2000", "--shards", "2", "--idle-shards", "20",
		"--duration", "500ms", "--idle-duration", "500ms", "--idle-settle", "0s", "--rate", "500", "--baseline", "--rounds", "1", "--profile", profiles, "--json"}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out.String(), errOut.String())
	}
	// stderr is a buffer, not a terminal: plain progress lines.
	if strings.Contains(errOut.String(), "\r") || !strings.Contains(errOut.String(), "records/s") {
		t.Errorf("progress on a buffer has carriage returns, or no summary line:\n%q", errOut.String())
	}
	var res bench.Results
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out.String())
	}
	if got, want := len(res.CatchUp), 6; got != want { // 2 relays x 3 modes
		t.Fatalf("%d catch-up results, want %d: %+v", got, want, res.CatchUp)
	}
	seen := map[string]bool{}
	for _, r := range res.CatchUp {
		seen[r.Relay+"/"+r.Mode] = true
		if r.Delivered != 2000 || r.Records != 2000 {
			t.Errorf("catch-up %s %s delivered %d of %d records, want 2000", r.Relay, r.Mode, r.Delivered, r.Records)
		}
		if r.RecordsPerSec <= 0 || r.MBPerSec <= 0 || r.CPUMicrosPerRecord <= 0 || r.PeakRSS <= 0 {
			t.Errorf("catch-up %s %s lacks a figure: %+v", r.Relay, r.Mode, r)
		}
	}
	for _, k := range []string{"fanoutd/core", "fanoutd/jetstream", "fanoutd/jetstream-nobatch", "baseline/core", "baseline/jetstream", "baseline/jetstream-nobatch"} {
		if !seen[k] {
			t.Errorf("no catch-up result for %s", k)
		}
	}
	if got, want := len(res.Steady), 6; got != want {
		t.Fatalf("%d steady-state results, want %d: %+v", got, want, res.Steady)
	}
	for _, r := range res.Steady {
		if r.Records == 0 || r.Delivered != r.Records {
			t.Errorf("steady %s %s delivered %d of %d records", r.Relay, r.Mode, r.Delivered, r.Records)
		}
		if r.Rate != 500 || r.P50Millis <= 0 || r.P99Millis < r.P50Millis || r.MaxMillis < r.P99Millis || r.CPUMicrosPerRecord <= 0 || r.PeakRSS <= 0 {
			t.Errorf("steady %s %s lacks a figure: %+v", r.Relay, r.Mode, r)
		}
	}
	if got, want := len(res.Idle), 2; got != want {
		t.Fatalf("%d idle results, want %d: %+v", got, want, res.Idle)
	}
	for _, r := range res.Idle {
		if r.Subscribed != 20 || r.RSS <= 0 || r.PeakRSS < r.RSS || r.CPUPercent < 0 {
			t.Errorf("idle %s: %+v", r.Relay, r)
		}
	}
	if strings.Contains(out.String(), "target") || strings.Contains(out.String(), "holds") {
		t.Errorf("the JSON judges the figures:\n%s", out.String())
	}
	// The daemon wrote its profiles; the baseline is not profiled.
	for _, name := range []string{"catchup-core-r1.cpu.pprof", "catchup-jetstream-r1.heap.pprof", "catchup-jetstream-nobatch-r1.cpu.pprof", "steady-core-r1.cpu.pprof", "idle-r1.heap.pprof"} {
		if fi, err := os.Stat(filepath.Join(profiles, name)); err != nil || fi.Size() == 0 {
			t.Errorf("profile %s: %v", name, err)
		}
	}
	if !strings.Contains(errOut.String(), "catch-up  baseline      jetstream-nobatch round 1: ") {
		t.Errorf("no progress summary on stderr:\n%s", errOut.String())
	}

	// The tables print every figure of the same results.
	var text bytes.Buffer
	bench.PrintResults(&text, &res)
	for _, want := range []string{"records/s", "MB/s", "CPU-µs/record", "peak RSS", "p50 ms", "p99 ms", "max ms", "CPU % of one core",
		"fanoutd/baseline", "2000/2000", "read: enhanced fan-out", "emulator limits: SubscribeToShard: 2 MiB/s",
		"jetstream-nobatch: into a stream without allow_batched", "baseline: aws-sdk-go-v2 and nats.go", "PublishMsgAsync"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("tables lack %q:\n%s", want, text.String())
		}
	}
	for _, verdict := range []string{"target", "holds", "NOT MET", "baseline-sync"} {
		if strings.Contains(text.String(), verdict) {
			t.Errorf("tables say %q:\n%s", verdict, text.String())
		}
	}
}

// TestBenchBaselineSync runs the synchronous-PubAck baseline beside the
// asynchronous one in JetStream mode: both deliver every record, and the
// tables give fanoutd's ratio to each.
func TestBenchBaselineSync(t *testing.T) {
	t.Setenv("FANOUTD_TEST_MAIN", "1")
	t.Setenv("GORACE", "atexit_sleep_ms=0")
	var out, errOut bytes.Buffer
	code := runContext(context.Background(), []string{"bench", "--mode", "jetstream-nobatch", "--phases", "catchup", "--records", "2000", "--shards", "2",
		"--baseline", "--baseline-sync", "--rounds", "1", "--json"}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out.String(), errOut.String())
	}
	var res bench.Results
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out.String())
	}
	var relays []string
	for _, r := range res.CatchUp {
		relays = append(relays, r.Relay)
		if r.Mode != "jetstream-nobatch" || r.Delivered != 2000 || r.RecordsPerSec <= 0 || r.CPUMicrosPerRecord <= 0 {
			t.Errorf("catch-up %s: %+v", r.Relay, r)
		}
	}
	if got, want := strings.Join(relays, ","), "fanoutd,baseline,baseline-sync"; got != want {
		t.Errorf("relays %s, want %s", got, want)
	}
	var text bytes.Buffer
	bench.PrintResults(&text, &res)
	for _, want := range []string{"fanoutd/baseline ", "fanoutd/baseline-sync", "baseline-sync: the same relay, JetStream: a synchronous PubAck per message"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("tables lack %q:\n%s", want, text.String())
		}
	}
}

// --baseline-sync is a second baseline: alone, it is a usage error.
func TestBenchBaselineSyncNeedsBaseline(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := runContext(context.Background(), []string{"bench", "--baseline-sync"}, &out, &errOut); code != 2 {
		t.Fatalf("exit %d, want 2\n%s", code, errOut.String())
	}
	if !strings.Contains(errOut.String(), "--baseline-sync adds a second baseline to --baseline's") {
		t.Errorf("stderr:\n%s", errOut.String())
	}
}

// TestBenchPolling runs `fanoutd bench --read polling` with tiny loads in
// core mode: both relays read by GetRecords, deliver every record, and the
// output says which read limits the emulator applied.
func TestBenchPolling(t *testing.T) {
	t.Setenv("FANOUTD_TEST_MAIN", "1")
	t.Setenv("GORACE", "atexit_sleep_ms=0")
	var out, errOut bytes.Buffer
	code := runContext(context.Background(), []string{"bench", "--read", "polling", "--mode", "core", "--records", "2000", "--shards", "2", "--idle-shards", "20",
		"--duration", "500ms", "--idle-duration", "500ms", "--idle-settle", "0s", "--rate", "500", "--baseline", "--rounds", "1", "--json"}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out.String(), errOut.String())
	}
	var res bench.Results
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out.String())
	}
	if res.Params.Read != "polling" || !strings.Contains(res.Params.Limits, "2 MiB/s per shard and the 5 s after a 10 MiB call off") {
		t.Errorf("params: read %q, limits %q", res.Params.Read, res.Params.Limits)
	}
	if got, want := len(res.CatchUp), 2; got != want {
		t.Fatalf("%d catch-up results, want %d: %+v", got, want, res.CatchUp)
	}
	for _, r := range res.CatchUp {
		if r.Delivered != 2000 || r.RecordsPerSec <= 0 || r.CPUMicrosPerRecord <= 0 || r.PeakRSS <= 0 {
			t.Errorf("catch-up %s: %+v", r.Relay, r)
		}
	}
	if got, want := len(res.Steady), 2; got != want {
		t.Fatalf("%d steady-state results, want %d: %+v", got, want, res.Steady)
	}
	for _, r := range res.Steady {
		if r.Records == 0 || r.Delivered != r.Records || r.P50Millis <= 0 {
			t.Errorf("steady %s: %+v", r.Relay, r)
		}
	}
	for _, r := range res.Idle {
		if r.Subscribed != 20 { // shards polled
			t.Errorf("idle %s polled %d shards, want 20", r.Relay, r.Subscribed)
		}
	}
	var text bytes.Buffer
	bench.PrintResults(&text, &res)
	for _, want := range []string{"read: polling", "emulator limits: GetRecords: 5 calls/s per shard", "20 shards polled", "fanoutd/baseline", "2000/2000"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("tables lack %q:\n%s", want, text.String())
		}
	}
}
