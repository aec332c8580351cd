package main

import (
	"context"
	"io"

	"github.com/fanoutd/fanoutd/config"
	"github.com/fanoutd/fanoutd/demo"
)

// DemoCmd runs the whole path on one machine with nothing installed (package
// demo).
type DemoCmd struct {
	demo.Options `embed:""`
}

// Run runs the demo.
func (d *DemoCmd) Run(ctx context.Context, w io.Writer, std stdio) error {
	if err := d.Validate(); err != nil {
		return usageError{err}
	}
	o := d.Options
	o.Log, _ = newLogger(config.LogConfig{Level: "warn", Format: "console"}, std.err)
	o.Version = Version()
	return demo.Run(ctx, o, w)
}
