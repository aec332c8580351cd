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
	"github.com/fanoutd/fanoutd/internal/baseline"
)

// Results are every figure of a run (the JSON of --json).
type Results struct {
	Machine benchMachine    `json:"machine"`
	Params  benchParams     `json:"params"`
	CatchUp []catchUpResult `json:"catch_up"`
	Steady  []steadyResult  `json:"steady"`
	Idle    []idleResult    `json:"idle"`
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
	Records int    `json:"records"`
	Size    int    `json:"size"`
	Shards  int    `json:"shards"`
	Mode    string `json:"mode"`
	// Modes are the modes Mode names, in the order run.
	Modes        []string `json:"modes"`
	Read         string   `json:"read"`
	Limits       string   `json:"limits"`
	Duration     string   `json:"duration"`
	IdleShards   int      `json:"idle_shards"`
	IdleDuration string   `json:"idle_duration"`
	IdleSettle   string   `json:"idle_settle"`
	// Baseline: the asynchronous baseline ran; BaselineSync: the
	// synchronous one too, in the JetStream modes.
	Baseline     bool `json:"baseline"`
	BaselineSync bool `json:"baseline_sync"`
	Rounds       int  `json:"rounds"`
}

// relays are the relays run in mode, fanoutd first.
func (p benchParams) relays(mode string) []string {
	relays := []string{relayFanoutd}
	if p.Baseline {
		relays = append(relays, relayBaseline)
	}
	if p.BaselineSync && mode != modeCore {
		relays = append(relays, relayBaselineSync)
	}
	return relays
}

// baselines are the relays run in mode that fanoutd is compared with.
func (p benchParams) baselines(mode string) []string {
	return p.relays(mode)[1:]
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

// PrintResults prints res as tables, with fanoutd's ratio to each baseline
// run.
func PrintResults(w io.Writer, res *Results) {
	modes := res.Params.Modes
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	printSetup(w, res)
	fmtRatio := func(a, b float64) string {
		if b == 0 {
			return "n/a"
		}
		return fmt.Sprintf("%.2fx", a/b)
	}
	if len(res.CatchUp) > 0 {
		fmt.Fprintf(w, "catch-up: %d records of %d B on %d shards, TRIM_HORIZON (median of %d rounds)\n", res.Params.Records, res.Params.Size, res.Params.Shards, res.Params.Rounds)
		fmt.Fprintln(tw, "mode\trelay\trecords/s\tMB/s\tCPU-µs/record\tpeak RSS\tbench CPU-µs/record\tcores used\tdelivered (all rounds)\t")
		for _, mode := range modes {
			for _, relay := range res.Params.relays(mode) {
				m, ok := catchUpMedianOf(res, relay, mode)
				if !ok {
					continue
				}
				fmt.Fprintf(tw, "%s\t%s\t%.0f\t%.1f\t%.2f\t%s\t%.2f\t%.2f\t%s\t\n", mode, relay, m.rate, m.mbs, m.cpu, mib(int64(m.rss)), m.benchCPU, m.cores, delivered(res, relay, mode))
			}
			f, _ := catchUpMedianOf(res, relayFanoutd, mode)
			for _, base := range res.Params.baselines(mode) {
				b, _ := catchUpMedianOf(res, base, mode)
				fmt.Fprintf(tw, "%s\tfanoutd/%s\t%s\t%s\t%s\t%s\t\t\t\t\n", mode, base, fmtRatio(f.rate, b.rate), fmtRatio(f.mbs, b.mbs), fmtRatio(f.cpu, b.cpu), fmtRatio(f.rss, b.rss))
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
			for _, relay := range res.Params.relays(mode) {
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
			f, _ := steadyMedianOf(res, relayFanoutd, mode)
			for _, base := range res.Params.baselines(mode) {
				b, _ := steadyMedianOf(res, base, mode)
				fmt.Fprintf(tw, "%s\tfanoutd/%s\t\t%s\t%s\t%s\t%s\t%s\t\t\n", mode, base, fmtRatio(f.p50, b.p50), fmtRatio(f.p99, b.p99), fmtRatio(f.max, b.max), fmtRatio(f.cpu, b.cpu), fmtRatio(f.rss, b.rss))
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
		for _, relay := range res.Params.relays(modeCore) {
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
		f, _ := idleMedianOf(res, relayFanoutd)
		for _, base := range res.Params.baselines(modeCore) {
			b, _ := idleMedianOf(res, base)
			fmt.Fprintf(tw, "fanoutd/%s\t\t%s\t%s\t%s\t\n", base, fmtRatio(f.rss, b.rss), fmtRatio(f.peak, b.peak), fmtRatio(f.cpu, b.cpu))
		}
		tw.Flush()
		fmt.Fprintln(w)
	}
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
	for _, m := range res.Params.Modes {
		switch m {
		case modeJetStream:
			fmt.Fprintf(w, "%s: into a stream with allow_batched (fanoutd publishes fast batches)\n", m)
		case modeJetStreamNoBatch:
			fmt.Fprintf(w, "%s: into a stream without allow_batched (fanoutd publishes message by message)\n", m)
		}
	}
	if res.Params.Baseline {
		fmt.Fprintf(w, "baseline: aws-sdk-go-v2 and nats.go; core: a publish per record, a flush per event; JetStream: PublishMsgAsync, at most %d acks outstanding, every ack of an event awaited before the next\n",
			baseline.AsyncWindow)
	}
	if res.Params.BaselineSync {
		fmt.Fprintf(w, "baseline-sync: the same relay, JetStream: a synchronous PubAck per message\n")
	}
	fmt.Fprintln(w)
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
