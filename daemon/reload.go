package daemon

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"time"

	"github.com/fanoutd/fanoutd/config"
)

// Plan is what a reload changes, by stream name.
type Plan struct {
	// Added streams start; Removed ones stop (finishing their batches and
	// writing final checkpoints); Restarted ones stop and start again with
	// new settings; Rerouted ones only change how their records become
	// messages (subject, subject_fallback, filter, payload,
	// max_decompressed), without a restart.
	Added, Removed, Restarted, Rerouted []string
}

// PlanReload compares the running streams with the wanted ones. It is a
// pure function: names are sorted.
func PlanReload(running, want []config.StreamConfig) Plan {
	have := map[string]config.StreamConfig{}
	for _, s := range running {
		have[s.StreamName()] = s
	}
	var p Plan
	seen := map[string]bool{}
	for _, s := range want {
		name := s.StreamName()
		seen[name] = true
		old, ok := have[name]
		switch {
		case !ok:
			p.Added = append(p.Added, name)
		case !sameExceptRoute(old, s):
			p.Restarted = append(p.Restarted, name)
		case !reflect.DeepEqual(old, s):
			p.Rerouted = append(p.Rerouted, name)
		}
	}
	for name := range have {
		if !seen[name] {
			p.Removed = append(p.Removed, name)
		}
	}
	for _, l := range []*[]string{&p.Added, &p.Removed, &p.Restarted, &p.Rerouted} {
		slices.Sort(*l)
	}
	return p
}

// sameExceptRoute reports whether two stream configs differ at most in
// their route (which changes without restarting the consumer).
func sameExceptRoute(a, b config.StreamConfig) bool {
	return reflect.DeepEqual(a.WithoutRoute(), b.WithoutRoute())
}

// Reload loads the config file at path and applies its streams, subjects
// and log level; the other sections take effect at the next start (each
// changed one is logged), except coordination: a file that changes it is
// rejected. An invalid file, or one whose subjects no
// JetStream stream captures, is rejected with every problem logged: the
// running configuration stays, and the error is returned. Stopping a
// stream finishes its in-flight batches and writes final checkpoints, so a
// reload replays nothing. The outcome is exported as
// fanoutd_config_last_reload_successful.
func (d *Daemon) Reload(ctx context.Context, path string) error {
	d.notifier.Reloading()
	defer d.notifier.Reloaded()
	err := d.reload(ctx, path)
	d.mon.SetReloaded(err == nil, time.Now())
	if err != nil {
		var ve *config.ValidationError
		if errors.As(err, &ve) {
			for _, p := range ve.Problems {
				d.log.Error().Str("path", p.Path).Str("problem", p.Message).Msg("config reload rejected")
			}
		} else {
			d.log.Error().Err(err).Msg("config reload rejected")
		}
		d.log.Warn().Str("config", path).Msg("keeping the running configuration")
	}
	return err
}

func (d *Daemon) reload(ctx context.Context, path string) error {
	cfg, err := config.Load(path)
	if err != nil {
		return err
	}
	routes, err := streamRoutes(cfg)
	if err != nil {
		return err
	}
	subjects := subjectTemplates(routes)
	old := d.config()
	if !reflect.DeepEqual(old.Coordination, cfg.Coordination) {
		// The group's mode, bucket, lease TTL and this instance's name are
		// what every lease held now was taken under: changing them under
		// running shards would let two instances read one shard.
		return &config.ValidationError{File: path, Problems: []config.Problem{{Path: "coordination",
			Message: "changed in the config file, and it can't change while fanoutd runs: restore it to reload the rest, or restart fanoutd (systemctl restart fanoutd) to apply it"}}}
	}
	batched := false
	if old.NATS.JetStream {
		// The nats section takes effect at the next restart: check the new
		// streams against the running one.
		chk := *cfg
		chk.NATS, chk.Checkpoint = old.NATS, old.Checkpoint
		if batched, err = prepareJetStream(ctx, d.nc, &chk, subjects, d.log); err != nil {
			return fmt.Errorf("JetStream: %w", err)
		}
	}
	for _, c := range []struct {
		key      string
		old, new any
	}{
		{"aws", old.AWS, cfg.AWS}, {"nats", old.NATS, cfg.NATS}, {"checkpoint", old.Checkpoint, cfg.Checkpoint},
		{"timers", old.Timers, cfg.Timers}, {"http", old.HTTP, cfg.HTTP}, {"log.format", old.Log.Format, cfg.Log.Format},
	} {
		if !reflect.DeepEqual(c.old, c.new) {
			d.log.Warn().Str("section", c.key).Msg("changed in the config file; it takes effect at the next restart")
		}
	}
	if d.opts.SetLogLevel != nil && cfg.Log.Level != old.Log.Level {
		d.opts.SetLogLevel(cfg.Log.Level)
		d.log.Info().Str("level", cfg.Log.Level).Msg("log level changed")
	}

	d.mu.Lock()
	var running []config.StreamConfig
	for _, s := range old.Streams {
		if _, ok := d.streams[s.StreamName()]; ok {
			running = append(running, s)
		}
	}
	plan := PlanReload(running, cfg.Streams)
	want := map[string]config.StreamConfig{}
	for _, s := range cfg.Streams {
		want[s.StreamName()] = s
	}
	var stop []*runningStream
	for _, name := range slices.Concat(plan.Removed, plan.Restarted) {
		stop = append(stop, d.streams[name])
		delete(d.streams, name)
	}
	// Until the stopped streams finished their batches, publish with the
	// union of the old and new templates.
	union, _ := streamRoutes(old)
	maps.Copy(union, routes)
	d.pub.SetRoutes(union)
	d.mu.Unlock()

	stopStreams(stop)
	d.pub.SetRoutes(routes)
	// The streams found now: one edited to allow batches (or not) since.
	d.pub.SetBatchPublish(batched)

	// The other sections apply at the next start: the running ones stay.
	next := *old
	next.Streams, next.Log.Level = cfg.Streams, cfg.Log.Level
	d.mu.Lock()
	d.cfg.Store(&next)
	for name := range d.stopped {
		if _, ok := want[name]; !ok {
			delete(d.stopped, name)
		}
	}
	for _, s := range cfg.Streams {
		if _, ok := d.streams[s.StreamName()]; !ok {
			delete(d.stopped, s.StreamName())
			d.startStreamLocked(s)
		}
	}
	d.mu.Unlock()
	d.log.Info().Strs("added", plan.Added).Strs("removed", plan.Removed).Strs("restarted", plan.Restarted).
		Strs("routes_changed", plan.Rerouted).Msg("configuration reloaded")
	return nil
}
