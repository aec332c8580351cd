package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/fanoutd/fanoutd/bench"
	"github.com/fanoutd/fanoutd/internal/baseline"
)

// BenchCmd measures the daemon against in-process Kinesis and NATS, beside a
// plain SDK relay with --baseline (package bench).
type BenchCmd struct {
	Records      int           `default:"100000" help:"Catch-up backlog: records."`
	Size         int           `default:"512" help:"Record size in bytes."`
	Shards       int           `default:"8" help:"Shards of the catch-up and steady-state streams."`
	Mode         string        `default:"all" help:"NATS publishing modes, comma-separated: core, jetstream (a stream with allow_batched), jetstream-nobatch (a stream without); all (the three) or both (core and jetstream)."`
	Read         string        `default:"efo" enum:"efo,polling" help:"How both relays read the shards: efo (enhanced fan-out) or polling (GetRecords)."`
	Rate         float64       `help:"Steady-state records per second (default: a tenth of the measured catch-up rate)."`
	Duration     time.Duration `default:"10s" help:"Steady-state duration."`
	IdleShards   int           `default:"1000" name:"idle-shards" help:"Shards subscribed with no traffic in the idle phase."`
	IdleDuration time.Duration `default:"10s" name:"idle-duration" help:"How long the idle phase is measured, once every shard is subscribed."`
	IdleSettle   time.Duration `default:"6s" name:"idle-settle" help:"Wait between the last subscription and the idle measurement: each shard's first checkpoint is written at its first empty event, within one empty-event interval (5s)."`
	Phases       string        `default:"catchup,steady,idle" help:"Phases to run (comma-separated)."`
	Baseline     bool          `help:"Run the same loads through a plain aws-sdk-go-v2 + nats.go relay (JetStream: asynchronous publishing, each event's acks awaited) and print the ratios."`
	BaselineSync bool          `name:"baseline-sync" help:"With --baseline, also run the plain relay with a synchronous PubAck per message, in the JetStream modes, as a second baseline."`
	NoBatch      bool          `name:"no-batch-publish" help:"Run fanoutd with nats.batch_publish: false (JetStream mode: a PubAck per message)."`
	Rounds       int           `default:"2" help:"Runs of each phase per relay, alternating fanoutd and the baselines."`
	Profile      string        `placeholder:"DIR" help:"Write the daemon's CPU profile and its heap profile at the peak of its live heap (pprof) of every run into DIR."`
	JSON         bool          `name:"json" help:"Print the results as JSON."`

	// BaselineRelay runs the baseline relay itself (the bench's child).
	BaselineRelay string `name:"baseline-relay" hidden:"" placeholder:"FILE"`
}

func (b *BenchCmd) options() bench.Options {
	return bench.Options{Records: b.Records, Size: b.Size, Shards: b.Shards, Mode: b.Mode, Read: b.Read, Rate: b.Rate, Duration: b.Duration,
		IdleShards: b.IdleShards, IdleDuration: b.IdleDuration, IdleSettle: b.IdleSettle, Phases: b.Phases, Baseline: b.Baseline,
		BaselineSync: b.BaselineSync, NoBatch: b.NoBatch, Rounds: b.Rounds, Profile: b.Profile, JSON: b.JSON}
}

// Validate checks the flags (kong calls it once they are parsed).
func (b *BenchCmd) Validate() error {
	o := b.options()
	return o.Validate()
}

// Run runs the bench, or, as the bench's child, the baseline relay.
func (b *BenchCmd) Run(ctx context.Context, w io.Writer, std stdio) error {
	if b.BaselineRelay != "" {
		raw, err := os.ReadFile(b.BaselineRelay)
		if err != nil {
			return err
		}
		var c baseline.Config
		if err := json.Unmarshal(raw, &c); err != nil {
			return fmt.Errorf("%s: %w", b.BaselineRelay, err)
		}
		return baseline.Run(ctx, c)
	}
	if err := b.Validate(); err != nil {
		return usageError{err}
	}
	o := b.options()
	o.Version, o.Progress, o.ProgressLive = Version(), std.err, isTerminal(std.err)
	return bench.Run(ctx, o, w)
}
