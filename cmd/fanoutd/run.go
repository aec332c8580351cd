package main

import (
	"context"
	"os"
)

// RunCmd is the daemon.
type RunCmd struct {
	Config string `short:"c" required:"" placeholder:"FILE" help:"Config file (YAML)."`
}

// Run loads the config and relays until SIGTERM or SIGINT.
func (r *RunCmd) Run(ctx context.Context) error {
	cfg, err := loadConfig(r.Config)
	if err != nil {
		return err
	}
	log := newLogger(cfg.Log, os.Stderr)
	return runDaemon(ctx, cfg, log, daemonHooks{})
}
