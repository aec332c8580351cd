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
	Payload   string        `default:"text" enum:"text,json" help:"What the producer writes: text, or json (orders and payments, each on a subject built from its data)."`
}

func (d *DemoCmd) options() demo.Options {
	return demo.Options{Duration: d.Duration, Rate: d.Rate, Shards: d.Shards, JetStream: d.JetStream, Quiet: d.Quiet, Read: fanout.ReadMode(d.Read), Payload: d.Payload}
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

// Help is the detail `fanoutd help demo` shows under the summary.
func (d *DemoCmd) Help() string {
	return `Runs the whole path on one machine, nothing to install: a Kinesis emulator and
a NATS server in-process, a producer, the real relay, and a subscriber that
prints each message as fanoutd tail does; then a summary (produced, received,
duplicates, lag). It exits non-zero if a record was lost or the relay failed.

--payload text (the default) writes "user signup", "page view", ... on
kinesis.demo.<partition key>. --payload json writes JSON orders and payments
({"entity":"order","event":"created","customer":{"id":"c-1"},...}) and routes
each by its data, with the subject
kinesis.demo.{data.entity}.{data.event}.{data.customer.id}: subscribers pick
what they want with kinesis.demo.order.created.> or kinesis.demo.*.*.c-3.
Every tenth record has no customer and lands on the fallback token _.

Examples:

    fanoutd demo --duration 10s
    fanoutd demo --payload json --duration 10s
    fanoutd demo --jetstream --read polling --quiet --duration 30s`
}
