// Package bench measures the relay the way users compare relays: the real
// daemon runs as a child process against an in-process emulator and NATS
// server, and its CPU time and memory come from the kernel's accounting of
// that process. With Baseline, a plain SDK relay (internal/baseline) takes
// the same loads in the same run, alternating with fanoutd. The bench
// reports figures and ratios; it judges none of them.
package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/fanoutd/fanoutd/fanout"
	"github.com/fanoutd/fanoutd/monitor"
)

// Options are the loads and phases of a run (`fanoutd bench` documents
// each).
type Options struct {
	Records int // catch-up backlog
	Size    int // record size in bytes
	Shards  int // of the catch-up and steady-state streams
	// Mode is a comma-separated list of NATS modes (core, jetstream,
	// jetstream-nobatch), or all of them ("all"), or "both" (core and
	// jetstream).
	Mode string
	// Read is how both relays read the shards: "efo" (enhanced fan-out,
	// the default) or "polling" (GetRecords).
	Read string
	// Rate is the steady-state records per second; 0: a tenth of the
	// measured catch-up rate.
	Rate         float64
	Duration     time.Duration // steady state
	IdleShards   int
	IdleDuration time.Duration
	// IdleSettle is the wait between the last subscription and the idle
	// measurement: each shard's first checkpoint is written at its first
	// empty event.
	IdleSettle time.Duration
	Phases     string // comma-separated
	// Baseline runs the same loads through internal/baseline too, with
	// asynchronous JetStream publishing; BaselineSync adds its synchronous
	// JetStream publishing as a second baseline (JetStream modes).
	Baseline     bool
	BaselineSync bool
	NoBatch      bool   // fanoutd with nats.batch_publish: false
	Rounds       int    // runs of each phase per relay
	Profile      string // directory for the daemon's pprof profiles
	JSON         bool

	// Version is fanoutd's version, for the report; Progress receives the
	// progress (nil: none): one line redrawn in place when ProgressLive (a
	// terminal), else plain lines, fewer of them, for a file or a pipe.
	Version      string
	Progress     io.Writer
	ProgressLive bool
}

const (
	relayFanoutd      = "fanoutd"
	relayBaseline     = "baseline"
	relayBaselineSync = "baseline-sync"

	modeCore      = "core"
	modeJetStream = "jetstream"
	// modeJetStreamNoBatch is JetStream into a stream without
	// allow_batched: fanoutd publishes message by message.
	modeJetStreamNoBatch = "jetstream-nobatch"

	readEFO     = string(fanout.ReadEFO)
	readPolling = string(fanout.ReadPolling)
)

// Validate checks the options.
func (b *Options) Validate() error {
	_, _, err := b.validate()
	return err
}

// Run runs the phases and prints the results on w. The relays run as
// children: this executable, which must be fanoutd (`fanoutd run` and
// `fanoutd bench --baseline-relay`).
func Run(ctx context.Context, b Options, w io.Writer) error {
	phases, modes, err := b.validate()
	if err != nil {
		return err
	}
	if b.Progress == nil {
		b.Progress = io.Discard
	}
	if b.Profile != "" {
		if err := os.MkdirAll(b.Profile, 0o755); err != nil {
			return err
		}
	}
	res := &Results{Machine: machineInfo(b.Version), Params: benchParams{
		Records: b.Records, Size: b.Size, Shards: b.Shards, Mode: b.Mode, Modes: modes, Read: b.read(), Limits: readLimits(b.read()), Duration: b.Duration.String(),
		IdleShards: b.IdleShards, IdleDuration: b.IdleDuration.String(), IdleSettle: b.IdleSettle.String(), Baseline: b.Baseline, BaselineSync: b.BaselineSync,
		Rounds: b.Rounds,
	}}
	if !b.JSON {
		printMachine(w, res.Machine)
	}
	prog := &progress{w: b.Progress, live: b.ProgressLive}

	if phases["catchup"] {
		for round := 1; round <= b.Rounds; round++ {
			for _, mode := range modes {
				for _, relay := range res.Params.relays(mode) {
					r, err := b.catchUp(ctx, prog, relay, mode, round)
					if err != nil {
						return fmt.Errorf("catch-up %s %s round %d: %w", relay, mode, round, err)
					}
					res.CatchUp = append(res.CatchUp, r)
				}
			}
		}
	}
	if phases["steady"] {
		for round := 1; round <= b.Rounds; round++ {
			for _, mode := range modes {
				rate := b.steadyRate(res, mode)
				for _, relay := range res.Params.relays(mode) {
					r, err := b.steady(ctx, prog, relay, mode, round, rate)
					if err != nil {
						return fmt.Errorf("steady state %s %s round %d: %w", relay, mode, round, err)
					}
					res.Steady = append(res.Steady, r)
				}
			}
		}
	}
	if phases["idle"] {
		for round := 1; round <= b.Rounds; round++ {
			for _, relay := range res.Params.relays(modeCore) {
				r, err := b.idle(ctx, prog, relay, round)
				if err != nil {
					return fmt.Errorf("idle %s round %d: %w", relay, round, err)
				}
				res.Idle = append(res.Idle, r)
			}
		}
	}
	if b.JSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	PrintResults(w, res)
	return nil
}

func (b *Options) validate() (map[string]bool, []string, error) {
	switch {
	case b.Records < 1, b.Size < 1, b.Shards < 1, b.IdleShards < 1, b.Rounds < 1:
		return nil, nil, fmt.Errorf("--records, --size, --shards, --idle-shards and --rounds must be at least 1")
	case b.Size > 1<<20:
		return nil, nil, fmt.Errorf("--size: a Kinesis record holds at most 1 MiB")
	case b.Duration <= 0, b.IdleDuration <= 0:
		return nil, nil, fmt.Errorf("--duration and --idle-duration must be positive")
	case b.Rate < 0:
		return nil, nil, fmt.Errorf("--rate must not be negative")
	case b.Read != "" && b.Read != readEFO && b.Read != readPolling:
		return nil, nil, fmt.Errorf("--read: %q is not efo or polling", b.Read)
	case b.BaselineSync && !b.Baseline:
		return nil, nil, fmt.Errorf("--baseline-sync adds a second baseline to --baseline's: give both")
	}
	phases := map[string]bool{}
	for _, p := range strings.Split(b.Phases, ",") {
		switch p = strings.TrimSpace(p); p {
		case "catchup", "steady", "idle":
			phases[p] = true
		default:
			return nil, nil, fmt.Errorf("--phases: unknown phase %q (catchup, steady, idle)", p)
		}
	}
	if phases["steady"] && !phases["catchup"] && b.Rate == 0 {
		return nil, nil, fmt.Errorf("--phases: steady without catchup needs --rate")
	}
	modes, err := parseModes(b.Mode)
	if err != nil {
		return nil, nil, err
	}
	return phases, modes, nil
}

// parseModes reads --mode: a comma-separated list of modes, each once, in
// the order given; "all" is every mode, "both" core and jetstream.
func parseModes(s string) ([]string, error) {
	var modes []string
	seen := map[string]bool{}
	for _, m := range strings.Split(s, ",") {
		var add []string
		switch m = strings.TrimSpace(m); m {
		case modeCore, modeJetStream, modeJetStreamNoBatch:
			add = []string{m}
		case "both":
			add = []string{modeCore, modeJetStream}
		case "all", "":
			add = []string{modeCore, modeJetStream, modeJetStreamNoBatch}
		default:
			return nil, fmt.Errorf("--mode: unknown mode %q (core, jetstream, jetstream-nobatch, both, all)", m)
		}
		for _, a := range add {
			if !seen[a] {
				seen[a] = true
				modes = append(modes, a)
			}
		}
	}
	return modes, nil
}

func (b *Options) read() string {
	if b.Read == "" {
		return readEFO
	}
	return b.Read
}

// newEnv is a fresh world for one run in mode.
func (b *Options) newEnv(mode string) (*benchEnv, error) {
	return newBenchEnv(mode, b.read() == readPolling)
}

// steadyRate is --rate, or a tenth of the slowest relay's median catch-up
// rate in mode, so that every relay can keep up with it.
func (b *Options) steadyRate(res *Results, mode string) float64 {
	if b.Rate > 0 {
		return b.Rate
	}
	rate := 0.0
	for _, relay := range res.Params.relays(mode) {
		var rates []float64
		for _, r := range res.CatchUp {
			if r.Relay == relay && r.Mode == mode {
				rates = append(rates, r.RecordsPerSec)
			}
		}
		if m := median(rates); m > 0 && (rate == 0 || m < rate) {
			rate = m
		}
	}
	return max(rate/10, 1)
}

// startRelay starts relay as a child process reading stream.
func (b *Options) startRelay(env *benchEnv, relay, stream, profileName string) (*benchChild, error) {
	if relay != relayFanoutd {
		path, err := env.baselineConfig(stream, b.read() == readPolling, relay == relayBaselineSync)
		if err != nil {
			return nil, err
		}
		return startBenchChild([]string{"bench", "--baseline-relay", path}, env.childEnv())
	}
	path, err := env.daemonConfig(stream, !b.NoBatch, b.read())
	if err != nil {
		return nil, err
	}
	var extra []string
	if b.Profile != "" {
		extra = append(extra,
			monitor.EnvCPUProfile+"="+filepath.Join(b.Profile, profileName+".cpu.pprof"),
			monitor.EnvHeapProfile+"="+filepath.Join(b.Profile, profileName+".heap.pprof"))
	}
	return startBenchChild([]string{"run", "--config", path}, env.childEnv(extra...))
}

// waitFor polls cond every 20ms until it holds, the child exits, ctx ends or
// timeout passes; cond also updates the progress line.
func waitFor(ctx context.Context, c *benchChild, timeout time.Duration, what string, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if err := c.exitedEarly(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not done within %v; relay output:\n%s", what, timeout, c.out.String())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// waitReading waits until the relay subscribed to each of the shards of
// stream, or polled each of them.
func waitReading(ctx context.Context, prog *progress, env *benchEnv, child *benchChild, stream string, shards int, label string, timeout time.Duration) error {
	err := waitFor(ctx, child, timeout, "read every shard", func() (bool, error) {
		n := env.reading(stream)
		prog.show("%s: %d/%d shards %s", label, n, shards, env.readingVerb())
		return n >= shards, nil
	})
	if err != nil {
		prog.done()
	}
	return err
}

func (b *Options) catchUp(ctx context.Context, prog *progress, relay, mode string, round int) (catchUpResult, error) {
	r := catchUpResult{Relay: relay, Mode: mode, Round: round, Records: b.Records}
	env, err := b.newEnv(mode)
	if err != nil {
		return r, err
	}
	defer env.close()
	const stream = "catchup"
	if err := env.emu.CreateStream(stream, b.Shards); err != nil {
		return r, err
	}
	label := fmt.Sprintf("catch-up  %-13s %-17s round %d", relay, mode, round)
	buf := make([]byte, b.Size)
	for i := 0; i < b.Records; i++ {
		if _, _, err := env.emu.PutRecord(stream, fmt.Sprintf("key-%d", i), benchPayload(buf, i)); err != nil {
			return r, fmt.Errorf("write backlog: %w", err)
		}
		if i%10000 == 0 {
			prog.show("%s: writing backlog %d/%d", label, i, b.Records)
		}
	}
	child, err := b.startRelay(env, relay, stream, fmt.Sprintf("catchup-%s-r%d", mode, round))
	if err != nil {
		return r, err
	}
	defer child.kill()
	start := time.Now()
	selfStart := selfCPU()
	timeout := 5*time.Minute + time.Duration(b.Records)*time.Millisecond
	err = waitFor(ctx, child, timeout, "deliver the backlog", func() (bool, error) {
		n := env.recv.unique()
		prog.show("%s: %d/%d records, %.0f records/s", label, n, b.Records, float64(n)/time.Since(start).Seconds())
		if n < b.Records {
			return false, nil
		}
		if !env.jetstream {
			return true, nil
		}
		msgs, err := env.jsMessages()
		return msgs >= uint64(b.Records), err
	})
	if err != nil {
		prog.done()
		return r, err
	}
	span := env.recv.span()
	self := selfCPU() - selfStart
	wall := time.Since(start)
	u, err := child.stop(30 * time.Second)
	prog.done()
	if err != nil {
		return r, err
	}
	r.BenchCPUMicrosPerRecord = float64(self.Microseconds()) / float64(b.Records)
	r.CoresUsed = (self + u.CPU).Seconds() / wall.Seconds()
	r.Delivered = env.recv.unique()
	r.Seconds = span.Seconds()
	if span > 0 {
		r.RecordsPerSec = float64(b.Records) / span.Seconds()
	}
	r.MBPerSec = r.RecordsPerSec * float64(b.Size) / 1e6
	r.CPUMicrosPerRecord = float64(u.CPU.Microseconds()) / float64(b.Records)
	r.PeakRSS = u.MaxRSS
	if env.jetstream {
		msgs, err := env.jsMessages()
		if err != nil {
			return r, err
		}
		r.Delivered = int(min(msgs, uint64(r.Delivered)))
	}
	prog.line("%s: %.0f records/s, %.1f MB/s, %.2f CPU-µs/record, peak RSS %s", label, r.RecordsPerSec, r.MBPerSec, r.CPUMicrosPerRecord, mib(r.PeakRSS))
	return r, nil
}

func (b *Options) steady(ctx context.Context, prog *progress, relay, mode string, round int, rate float64) (steadyResult, error) {
	r := steadyResult{Relay: relay, Mode: mode, Round: round, Rate: rate}
	env, err := b.newEnv(mode)
	if err != nil {
		return r, err
	}
	defer env.close()
	const stream = "steady"
	if err := env.emu.CreateStream(stream, b.Shards); err != nil {
		return r, err
	}
	label := fmt.Sprintf("steady    %-13s %-17s round %d", relay, mode, round)
	child, err := b.startRelay(env, relay, stream, fmt.Sprintf("steady-%s-r%d", mode, round))
	if err != nil {
		return r, err
	}
	defer child.kill()
	if err := waitReading(ctx, prog, env, child, stream, b.Shards, label, 2*time.Minute); err != nil {
		return r, err
	}
	// Produce at rate: after each millisecond, write what the rate owes.
	buf := make([]byte, b.Size)
	start := time.Now()
	tick := time.NewTicker(time.Millisecond)
	lastShow := start
	for produced := 0; ; {
		now := time.Now()
		el := now.Sub(start)
		if el >= b.Duration {
			r.Records = produced
			break
		}
		for owed := int(rate * el.Seconds()); produced < owed; produced++ {
			if _, _, err := env.emu.PutRecord(stream, fmt.Sprintf("key-%d", produced), benchPayload(buf, produced)); err != nil {
				tick.Stop()
				prog.done()
				return r, fmt.Errorf("produce: %w", err)
			}
		}
		if now.Sub(lastShow) >= 250*time.Millisecond {
			lastShow = now
			prog.show("%s: %d records produced at %.0f/s, %d received", label, produced, rate, env.recv.unique())
			if err := child.exitedEarly(); err != nil {
				tick.Stop()
				prog.done()
				return r, err
			}
		}
		select {
		case <-ctx.Done():
			tick.Stop()
			prog.done()
			return r, ctx.Err()
		case <-tick.C:
		}
	}
	tick.Stop()
	err = waitFor(ctx, child, 2*time.Minute, "deliver every produced record", func() (bool, error) {
		n := env.recv.unique()
		prog.show("%s: %d/%d records received", label, n, r.Records)
		return n >= r.Records, nil
	})
	if err != nil {
		prog.done()
		return r, err
	}
	u, err := child.stop(30 * time.Second)
	prog.done()
	if err != nil {
		return r, err
	}
	r.Delivered = env.recv.unique()
	r.PeakRSS = u.MaxRSS
	if r.Records > 0 {
		r.CPUMicrosPerRecord = float64(u.CPU.Microseconds()) / float64(r.Records)
	}
	lat, err := env.recv.latencies(env.emu, stream)
	if err != nil {
		return r, err
	}
	r.P50Millis, r.P99Millis, r.MaxMillis = millis(percentile(lat, 0.50)), millis(percentile(lat, 0.99)), millis(percentile(lat, 1))
	prog.line("%s: %d records at %.0f/s, added latency p50 %.2f ms, p99 %.2f ms, max %.2f ms, %.2f CPU-µs/record, peak RSS %s",
		label, r.Records, rate, r.P50Millis, r.P99Millis, r.MaxMillis, r.CPUMicrosPerRecord, mib(r.PeakRSS))
	return r, nil
}

func (b *Options) idle(ctx context.Context, prog *progress, relay string, round int) (idleResult, error) {
	r := idleResult{Relay: relay, Round: round, Shards: b.IdleShards, Seconds: b.IdleDuration.Seconds()}
	env, err := b.newEnv(modeCore)
	if err != nil {
		return r, err
	}
	defer env.close()
	const stream = "idle"
	if err := env.emu.CreateStream(stream, b.IdleShards); err != nil {
		return r, err
	}
	label := fmt.Sprintf("idle      %-13s %-17s round %d", relay, modeCore, round)
	child, err := b.startRelay(env, relay, stream, fmt.Sprintf("idle-r%d", round))
	if err != nil {
		return r, err
	}
	defer child.kill()
	if err := waitReading(ctx, prog, env, child, stream, b.IdleShards, label, 10*time.Minute); err != nil {
		return r, err
	}
	// Idle is what comes after start-up: each shard's first empty event
	// brings its first checkpoint write (fanoutd writes the position of a
	// shard without a checkpoint at once, so that a restart does not
	// resolve LATEST again), all within one empty-event interval of the
	// last subscription. The measurement starts after that (--idle-settle).
	if err := runUntil(ctx, child, time.Now().Add(b.IdleSettle), func(left time.Duration) {
		prog.show("%s: every shard %s; waiting %.0fs for start-up to settle", label, env.readingVerb(), left.Seconds())
	}); err != nil {
		prog.done()
		return r, err
	}
	pid := child.cmd.Process.Pid
	cpu0, _, err := procSample(pid)
	if err != nil {
		prog.done()
		return r, err
	}
	t0 := time.Now()
	if err := runUntil(ctx, child, t0.Add(b.IdleDuration), func(left time.Duration) {
		prog.show("%s: measuring, %.0fs left", label, left.Seconds())
	}); err != nil {
		prog.done()
		return r, err
	}
	cpu1, rss, err := procSample(pid)
	wall := time.Since(t0)
	if err != nil {
		prog.done()
		return r, err
	}
	r.Subscribed = env.reading(stream)
	u, err := child.stop(30 * time.Second)
	prog.done()
	if err != nil {
		return r, err
	}
	r.RSS, r.PeakRSS = rss, u.MaxRSS
	r.CPUPercent = 100 * (cpu1 - cpu0).Seconds() / wall.Seconds()
	prog.line("%s: %d shards, RSS %s (peak %s), CPU %.2f%% of one core", label, b.IdleShards, mib(r.RSS), mib(r.PeakRSS), r.CPUPercent)
	return r, nil
}

// progress is the progress line on stderr: redrawn in place on a
// terminal (live), else printed as plain lines: a file or a pipe keeps
// every '\r' redraw, which makes a log unreadable.
type progress struct {
	w    io.Writer
	live bool
	last time.Time
	wide int
}

// plainEvery is how often a plain progress line is printed.
const plainEvery = 5 * time.Second

// show rewrites the progress line, at most 4 times a second; or, not live,
// prints it as a line of its own at most every plainEvery.
func (p *progress) show(format string, args ...any) {
	every := 250 * time.Millisecond
	if !p.live {
		every = plainEvery
	}
	if time.Since(p.last) < every {
		return
	}
	p.last = time.Now()
	s := fmt.Sprintf(format, args...)
	if !p.live {
		fmt.Fprintln(p.w, s)
		return
	}
	fmt.Fprintf(p.w, "\r%-*s", p.wide, s)
	p.wide = max(p.wide, len(s))
}

// done clears the progress line.
func (p *progress) done() {
	if p.wide > 0 {
		fmt.Fprintf(p.w, "\r%-*s\r", p.wide, "")
	}
	p.wide, p.last = 0, time.Time{}
}

// line prints a finished run's summary on its own line.
func (p *progress) line(format string, args ...any) {
	p.done()
	fmt.Fprintf(p.w, format+"\n", args...)
}

// selfCPU is the bench process's own CPU time so far (user and system): the
// emulator, the NATS server and the bench's subscribers, which share the
// machine with the relay being measured.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// runUntil lets the relay run until end, calling show with the time left
// every 250 ms; it returns early if the relay exits or ctx ends.
func runUntil(ctx context.Context, child *benchChild, end time.Time, show func(left time.Duration)) error {
	for now := time.Now(); now.Before(end); now = time.Now() {
		show(end.Sub(now))
		if err := child.exitedEarly(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(min(time.Until(end), 250*time.Millisecond)):
		}
	}
	return nil
}
