package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/fanoutd/fanoutd/bench"
	"github.com/fanoutd/fanoutd/internal/baseline"
)

// BenchCmd measures the daemon against in-process Kinesis and NATS, beside a
// plain SDK relay with --baseline (package bench).
type BenchCmd struct {
	bench.Options `embed:""`

	// BaselineRelay runs the baseline relay itself (the bench's child).
	BaselineRelay string `name:"baseline-relay" hidden:"" placeholder:"FILE"`
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
	o := b.Options
	o.Version, o.Progress = Version(), std.err
	return bench.Run(ctx, o, w)
}
