package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

// RunCmd is the daemon.
type RunCmd struct {
	Config string `short:"c" required:"" placeholder:"FILE" help:"Config file (YAML)."`
}

// Run loads the config and relays until SIGTERM or SIGINT; SIGHUP reloads
// the config file.
func (r *RunCmd) Run(ctx context.Context, std stdio) error {
	cfg, err := loadConfig(r.Config)
	if err != nil {
		return err
	}
	log, level := newLogger(cfg.Log, std.err)
	stopProfiles, err := startProfiles() // FANOUTD_CPUPROFILE, FANOUTD_HEAPPROFILE (fanoutd bench --profile)
	if err != nil {
		return err
	}
	defer func() {
		if err := stopProfiles(); err != nil {
			log.Error().Err(err).Msg("write profile")
		}
	}()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	reload := make(chan struct{}, 1)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				select {
				case reload <- struct{}{}:
				default: // a reload is already pending
				}
			}
		}
	}()
	return runDaemon(ctx, cfg, log, daemonHooks{configPath: r.Config, reload: reload, level: level})
}
