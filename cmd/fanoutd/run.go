package main

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/fanoutd/fanoutd/config"
	"github.com/fanoutd/fanoutd/daemon"
	"github.com/fanoutd/fanoutd/monitor"
)

// defaultGCPercent is the garbage collector's target when GOGC is not set:
// the heap may grow by 35 % of what is live between collections, where
// Go's default (GOGC=100) lets it double. fanoutd's live heap is mostly
// large byte buffers without pointers (the events being relayed), cheap to
// mark, so collecting more often costs little CPU: in fanoutd bench's
// catch-up (8 shards, 300 000 records), 35 took 2 to 5 MiB off the peak RSS
// of 50 (core 66 to 63 MiB, JetStream 64 to 62, without batches 70 to 65)
// at the same CPU per record within the runs' noise; 25 took 5 to 8 MiB off
// for 2 to 9 % more CPU per record. GOGC in the environment wins.
const defaultGCPercent = 35

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
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(defaultGCPercent)
	}
	stopProfiles, err := monitor.StartProfiles() // FANOUTD_CPUPROFILE, FANOUTD_HEAPPROFILE (fanoutd bench --profile)
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
	return runDaemon(ctx, cfg, daemon.Options{Log: log, Version: Version(), SetLogLevel: level.set}, r.Config, reload)
}

// runDaemon relays until ctx ends or a stream fails, applying a reload of
// configPath on every value of reload, then shuts down in order. It returns
// nil after a clean shutdown, and the error (exit non-zero, so that systemd
// restarts the daemon) when it can't start or a stream failed.
func runDaemon(ctx context.Context, cfg *config.Config, o daemon.Options, configPath string, reload <-chan struct{}) error {
	d, err := daemon.Open(ctx, cfg, o)
	if err != nil {
		if errors.Is(err, context.Canceled) && ctx.Err() != nil {
			return nil // SIGTERM during the start: nothing to shut down
		}
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return d.Close()
		case <-d.Failed():
			return d.Close()
		case <-reload:
			d.Reload(ctx, configPath)
		}
	}
}
