package main

import (
	"context"
	"io"
	"time"

	"github.com/fanoutd/fanoutd/config"
	"github.com/fanoutd/fanoutd/demo"
	"github.com/fanoutd/fanoutd/fanout"
)

// DemoCmd runs the whole path on one machine with nothing installed (package
// demo).
type DemoCmd struct {
	Duration  time.Duration `help:"Stop after this long (default: until Ctrl-C)."`
	Rate      float64       `default:"4" help:"Kinesis records produced per second."`
	Shards    int           `default:"2" help:"Shards of the demo stream."`
	JetStream bool          `name:"jetstream" help:"Publish through JetStream (a stream DEMO captures kinesis.>)."`
	Quiet     bool          `help:"Print only the summary."`
	Read      string        `default:"efo" enum:"efo,polling,auto" help:"How the relay reads the stream: efo (enhanced fan-out), polling (GetRecords) or auto."`
}

func (d *DemoCmd) options() demo.Options {
	return demo.Options{Duration: d.Duration, Rate: d.Rate, Shards: d.Shards, JetStream: d.JetStream, Quiet: d.Quiet, Read: fanout.ReadMode(d.Read)}
}

// Validate checks the flags (kong calls it once they are parsed).
func (d *DemoCmd) Validate() error {
	o := d.options()
	return o.Validate()
}

// Run runs the demo.
func (d *DemoCmd) Run(ctx context.Context, w io.Writer, std stdio) error {
	if err := d.Validate(); err != nil {
		return usageError{err}
	}
	o := d.options()
	o.Log, _ = newLogger(config.LogConfig{Level: "warn", Format: "console"}, std.err)
	o.Version = Version()
	return demo.Run(ctx, o, w)
}
