package main

import (
	"context"
)

// RunCmd is the daemon.
type RunCmd struct {
	Config string `short:"c" required:"" placeholder:"FILE" help:"Config file (YAML)."`
}

// Run loads the config and relays until SIGTERM or SIGINT.
func (r *RunCmd) Run(ctx context.Context, std stdio) error {
	cfg, err := loadConfig(r.Config)
	if err != nil {
		return err
	}
	log := newLogger(cfg.Log, std.err)
	return runDaemon(ctx, cfg, log, daemonHooks{})
}
