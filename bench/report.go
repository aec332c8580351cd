package bench

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/fanoutd/fanoutd/fanout"
)

// Results are every figure of a run (the JSON of --json).
type Results struct {
	Machine benchMachine    `json:"machine"`
	Params  benchParams     `json:"params"`
	CatchUp []catchUpResult `json:"catch_up"`
	Steady  []steadyResult  `json:"steady"`
	Idle    []idleResult    `json:"idle"`
	Targets []targetResult  `json:"targets"`
}

type benchMachine struct {
	CPUs        int    `json:"cpus"`
	CPUModel    string `json:"cpu_model"`
	GoVersion   string `json:"go_version"`
	Version     string `json:"fanoutd_version"`
	LoadAverage string `json:"load_average"`
	StartedAt   string `json:"started_at"`
}

type benchParams struct {
	Records      int    `json:"records"`
	Size         int    `json:"size"`
	Shards       int    `json:"shards"`
	Mode         string `json:"mode"`
	Read         string `json:"read"`
	Limits       string `json:"limits"`
	Duration     string `json:"duration"`
	IdleShards   int    `json:"idle_shards"`
	IdleDuration string `json:"idle_duration"`
	IdleSettle   string `json:"idle_settle"`
	Baseline     bool   `json:"baseline"`
	Rounds       int    `json:"rounds"`
}

type catchUpResult struct {
	Relay              string  `json:"relay"`
	Mode               string  `json:"mode"`
	Round              int     `json:"round"`
	Records            int     `json:"records"`
	Delivered          int     `json:"delivered"`
	Seconds            float64 `json:"seconds"`
	RecordsPerSec      float64 `json:"records_per_sec"`
	MBPerSec           float64 `json:"mb_per_sec"`
	CPUMicrosPerRecord float64 `json:"cpu_us_per_record"`
	PeakRSS            int64   `json:"peak_rss_bytes"`
	// BenchCPUMicrosPerRecord is the bench process's own CPU (emulator,
	// NATS server, subscribers) from the relay's start to the last record,
	// per record; CoresUsed is both processes' CPU over that time. Where
	// CoresUsed is near the machine's cores, the rate is the machine's,
	// shared by the relay and what feeds and drains it.
	BenchCPUMicrosPerRecord float64 `json:"bench_cpu_us_per_record"`
	CoresUsed               float64 `json:"cores_used"`
}

type steadyResult struct {
	Relay     string  `json:"relay"`
	Mode      string  `json:"mode"`
	Round     int     `json:"round"`
	Rate      float64 `json:"rate"`
	Records   int     `json:"records"`
	Delivered int     `json:"delivered"`
	P50Millis float64 `json:"latency_p50_ms"`
	P99Millis float64 `json:"latency_p99_ms"`
	MaxMillis float64 `json:"latency_max_ms"`
	// CPUMicrosPerRecord is the relay's CPU over its whole run (start,
	// subscribe, the records, stop) divided by the records.
	CPUMicrosPerRecord float64 `json:"cpu_us_per_record"`
	PeakRSS            int64   `json:"peak_rss_bytes"`
}

type idleResult struct {
	Relay      string  `json:"relay"`
	Round      int     `json:"round"`
	Shards     int     `json:"shards"`
	Subscribed int     `json:"subscribed"`
	Seconds    float64 `json:"seconds"`
	RSS        int64   `json:"rss_bytes"`
	PeakRSS    int64   `json:"peak_rss_bytes"`
	CPUPercent float64 `json:"cpu_percent_of_one_core"`
}

// targetResult is one of fanoutd's performance targets (against the
// baseline relay, and absolute) and whether this run meets it.
type targetResult struct {
	Target string `json:"target"`
	Mode   string `json:"mode,omitempty"`
	Value  string `json:"value"`
	// Holds is nil when the run cannot tell (no --baseline, phase not run).
	Holds *bool `json:"holds"`
}

func machineInfo(version string) benchMachine {
	m := benchMachine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), Version: version, StartedAt: time.Now().UTC().Format(time.RFC3339)}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) >= 3 {
			m.LoadAverage = strings.Join(f[:3], " ")
		}
	}
	return m
}

func printMachine(w io.Writer, m benchMachine) {
	fmt.Fprintf(w, "fanoutd bench: %s, %d CPUs (%s), %s, load average %s, %s\n\n", m.Version, m.CPUs, m.CPUModel, m.GoVersion, m.LoadAverage, m.StartedAt)
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// percentile of sorted durations, nearest rank; q=1 is the maximum.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// medians of one relay (and mode) over its rounds.
type catchUpMedian struct{ rate, mbs, cpu, rss, benchCPU, cores float64 }

func catchUpMedianOf(res *Results, relay, mode string) (catchUpMedian, bool) {
	var rate, mbs, cpu, rss, benchCPU, cores []float64
	for _, r := range res.CatchUp {
		if r.Relay == relay && r.Mode == mode {
			rate, mbs, cpu, rss = append(rate, r.RecordsPerSec), append(mbs, r.MBPerSec), append(cpu, r.CPUMicrosPerRecord), append(rss, float64(r.PeakRSS))
			benchCPU, cores = append(benchCPU, r.BenchCPUMicrosPerRecord), append(cores, r.CoresUsed)
		}
	}
	return catchUpMedian{median(rate), median(mbs), median(cpu), median(rss), median(benchCPU), median(cores)}, len(rate) > 0
}

type steadyMedian struct{ p50, p99, max, cpu, rss float64 }

func steadyMedianOf(res *Results, relay, mode string) (steadyMedian, bool) {
	var p50, p99, mx, cpu, rss []float64
	for _, r := range res.Steady {
		if r.Relay == relay && r.Mode == mode {
			p50, p99, mx = append(p50, r.P50Millis), append(p99, r.P99Millis), append(mx, r.MaxMillis)
			cpu, rss = append(cpu, r.CPUMicrosPerRecord), append(rss, float64(r.PeakRSS))
		}
	}
	return steadyMedian{median(p50), median(p99), median(mx), median(cpu), median(rss)}, len(p50) > 0
}

type idleMedian struct{ rss, peak, cpu float64 }

func idleMedianOf(res *Results, relay string) (idleMedian, bool) {
	var rss, peak, cpu []float64
	for _, r := range res.Idle {
		if r.Relay == relay {
			rss, peak, cpu = append(rss, float64(r.RSS)), append(peak, float64(r.PeakRSS)), append(cpu, r.CPUPercent)
		}
	}
	return idleMedian{median(rss), median(peak), median(cpu)}, len(rss) > 0
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return math.NaN()
	}
	return a / b
}

func holds(ok bool) *bool { return &ok }

// evaluateTargets checks the performance targets on the medians of this run.
func evaluateTargets(res *Results, modes []string, withBaseline bool) []targetResult {
	var out []targetResult
	for _, mode := range modes {
		f, okF := catchUpMedianOf(res, relayFanoutd, mode)
		b, okB := catchUpMedianOf(res, relayBaseline, mode)
		if okF && okB && withBaseline {
			cpu, rss, rate := ratio(f.cpu, b.cpu), ratio(f.rss, b.rss), ratio(f.rate, b.rate)
			out = append(out,
				targetResult{"catch-up CPU per record <= 1/4 of baseline", mode, fmt.Sprintf("%.2fx", cpu), holds(cpu <= 0.25)},
				targetResult{"catch-up peak RSS <= 1/8 of baseline", mode, fmt.Sprintf("%.2fx", rss), holds(rss <= 0.125)},
				targetResult{"catch-up rate >= 1.5x baseline", mode, fmt.Sprintf("%.2fx", rate), holds(rate >= 1.5)})
		} else {
			out = append(out, targetResult{"catch-up ratios to baseline", mode, "n/a (needs --baseline and the catchup phase)", nil})
		}
		if okF {
			out = append(out, targetResult{"catch-up peak RSS < 64 MiB", mode, mib(int64(f.rss)), holds(f.rss < 64<<20)})
		}
		if s, ok := steadyMedianOf(res, relayFanoutd, mode); ok {
			t := targetResult{"steady-state added latency p99 < 5 ms", mode, fmt.Sprintf("%.2f ms", s.p99), holds(s.p99 < 5)}
			if res.Params.Read == readPolling {
				// A caught-up poller waits polling.interval between calls.
				t.Value, t.Holds = t.Value+" (an EFO target: polling waits polling.interval)", nil
			}
			out = append(out, t)
		}
	}
	if i, ok := idleMedianOf(res, relayFanoutd); ok {
		what := "subscriptions"
		if res.Params.Read == readPolling {
			what = "shards polled"
		}
		out = append(out,
			targetResult{fmt.Sprintf("%d idle %s RSS < 256 MiB", res.Params.IdleShards, what), "", mib(int64(i.rss)), holds(i.rss < 256<<20)},
			targetResult{fmt.Sprintf("%d idle %s CPU < 2%% of one core", res.Params.IdleShards, what), "", fmt.Sprintf("%.2f%%", i.cpu), holds(i.cpu < 2)})
	}
	return out
}

// PrintResults prints res as tables, with the ratios and targets when
// withBaseline.
func PrintResults(w io.Writer, res *Results, modes []string, withBaseline bool) {
	relays := []string{relayFanoutd}
	if withBaseline {
		relays = append(relays, relayBaseline)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	printSetup(w, res)
	fmtRatio := func(a, b float64) string {
		if !withBaseline {
			return ""
		}
		if b == 0 {
			return "n/a"
		}
		return fmt.Sprintf("%.2fx", a/b)
	}
	if len(res.CatchUp) > 0 {
		fmt.Fprintf(w, "catch-up: %d records of %d B on %d shards, TRIM_HORIZON (median of %d rounds)\n", res.Params.Records, res.Params.Size, res.Params.Shards, res.Params.Rounds)
		fmt.Fprintln(tw, "mode\trelay\trecords/s\tMB/s\tCPU-µs/record\tpeak RSS\tbench CPU-µs/record\tcores used\tdelivered (all rounds)\t")
		for _, mode := range modes {
			for _, relay := range relays {
				m, ok := catchUpMedianOf(res, relay, mode)
				if !ok {
					continue
				}
				fmt.Fprintf(tw, "%s\t%s\t%.0f\t%.1f\t%.2f\t%s\t%.2f\t%.2f\t%s\t\n", mode, relay, m.rate, m.mbs, m.cpu, mib(int64(m.rss)), m.benchCPU, m.cores, delivered(res, relay, mode))
			}
			if withBaseline {
				f, _ := catchUpMedianOf(res, relayFanoutd, mode)
				b, _ := catchUpMedianOf(res, relayBaseline, mode)
				fmt.Fprintf(tw, "%s\tfanoutd/baseline\t%s\t%s\t%s\t%s\t\t\t\t\n", mode, fmtRatio(f.rate, b.rate), fmtRatio(f.mbs, b.mbs), fmtRatio(f.cpu, b.cpu), fmtRatio(f.rss, b.rss))
			}
		}
		tw.Flush()
		fmt.Fprintln(w)
	}
	if len(res.Steady) > 0 {
		fmt.Fprintf(w, "steady state: %s at a set rate on %d shards; added latency = NATS receipt - emulator arrival (median of %d rounds)\n",
			res.Params.Duration, res.Params.Shards, res.Params.Rounds)
		fmt.Fprintln(tw, "mode\trelay\trate\tp50 ms\tp99 ms\tmax ms\tCPU-µs/record\tpeak RSS\tdelivered (all rounds)\t")
		for _, mode := range modes {
			rate := 0.0
			for _, relay := range relays {
				m, ok := steadyMedianOf(res, relay, mode)
				if !ok {
					continue
				}
				for _, r := range res.Steady {
					if r.Mode == mode {
						rate = r.Rate
					}
				}
				fmt.Fprintf(tw, "%s\t%s\t%.0f\t%.2f\t%.2f\t%.2f\t%.2f\t%s\t%s\t\n", mode, relay, rate, m.p50, m.p99, m.max, m.cpu, mib(int64(m.rss)), steadyDelivered(res, relay, mode))
			}
			if withBaseline {
				f, _ := steadyMedianOf(res, relayFanoutd, mode)
				b, _ := steadyMedianOf(res, relayBaseline, mode)
				fmt.Fprintf(tw, "%s\tfanoutd/baseline\t\t%s\t%s\t%s\t%s\t%s\t\t\n", mode, fmtRatio(f.p50, b.p50), fmtRatio(f.p99, b.p99), fmtRatio(f.max, b.max), fmtRatio(f.cpu, b.cpu), fmtRatio(f.rss, b.rss))
			}
		}
		tw.Flush()
		fmt.Fprintln(w)
	}
	if len(res.Idle) > 0 {
		verb, noun := "subscribed", "subscription"
		if res.Params.Read == readPolling {
			verb, noun = "polled", "shard's first poll"
		}
		fmt.Fprintf(w, "idle: %d shards %s, no traffic, measured for %s from %s after the last %s (median of %d rounds)\n", res.Params.IdleShards, verb, res.Params.IdleDuration, res.Params.IdleSettle, noun, res.Params.Rounds)
		fmt.Fprintf(tw, "relay\t%s\tRSS\tpeak RSS\tCPU %% of one core\t\n", verb)
		for _, relay := range relays {
			m, ok := idleMedianOf(res, relay)
			if !ok {
				continue
			}
			sub := 0
			for _, r := range res.Idle {
				if r.Relay == relay {
					sub = r.Subscribed
				}
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%.2f\t\n", relay, sub, mib(int64(m.rss)), mib(int64(m.peak)), m.cpu)
		}
		if withBaseline {
			f, _ := idleMedianOf(res, relayFanoutd)
			b, _ := idleMedianOf(res, relayBaseline)
			fmt.Fprintf(tw, "fanoutd/baseline\t\t%s\t%s\t%s\t\n", fmtRatio(f.rss, b.rss), fmtRatio(f.peak, b.peak), fmtRatio(f.cpu, b.cpu))
		}
		tw.Flush()
		fmt.Fprintln(w)
	}
	printTargets(w, res)
}

// printSetup says how the run read the stream and which emulator limits
// were on.
func printSetup(w io.Writer, res *Results) {
	if res.Params.Read == readPolling {
		fmt.Fprintf(w, "read: polling (fanoutd: polling.interval %s, max_records %d; baseline: a GetRecords loop per shard, 10000 records a call, 1s wait when caught up)\n",
			fanout.DefaultPollingInterval, fanout.MaxPollingRecords)
	} else {
		fmt.Fprintf(w, "read: enhanced fan-out\n")
	}
	if res.Params.Limits != "" {
		fmt.Fprintf(w, "emulator limits: %s\n", res.Params.Limits)
	}
	fmt.Fprintln(w)
}

// printTargets lists the performance targets with the figures measured.
func printTargets(w io.Writer, res *Results) {
	fmt.Fprintln(w, "targets:")
	tt := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, t := range res.Targets {
		verdict := "n/a"
		if t.Holds != nil {
			verdict = map[bool]string{true: "holds", false: "NOT MET"}[*t.Holds]
		}
		fmt.Fprintf(tt, "  %s\t%s\t%s\t%s\n", t.Target, t.Mode, t.Value, verdict)
	}
	tt.Flush()
}

// delivered is "n/N" summed over the rounds of relay in mode.
func delivered(res *Results, relay, mode string) string {
	got, want := 0, 0
	for _, r := range res.CatchUp {
		if r.Relay == relay && r.Mode == mode {
			got, want = got+r.Delivered, want+r.Records
		}
	}
	return fmt.Sprintf("%d/%d", got, want)
}

func steadyDelivered(res *Results, relay, mode string) string {
	got, want := 0, 0
	for _, r := range res.Steady {
		if r.Relay == relay && r.Mode == mode {
			got, want = got+r.Delivered, want+r.Records
		}
	}
	return fmt.Sprintf("%d/%d", got, want)
}
