package config

import (
	"testing"
	"time"

	"github.com/fanoutd/fanoutd/fanout"
)

// The keys under timers: and their defaults, as documented.
func TestTimerKeysAndDefaults(t *testing.T) {
	want := []struct {
		key string
		d   time.Duration
	}{
		{"idle_timeout", time.Minute},
		{"shard_sync_interval", time.Minute},
		{"min_resubscribe_interval", time.Second},
		{"backoff_initial", 200 * time.Millisecond},
		{"backoff_max", 30 * time.Second},
		{"consumer_poll_initial", 500 * time.Millisecond},
		{"consumer_poll_max", 5 * time.Second},
		{"consumer_active_timeout", 2 * time.Minute},
		{"shutdown_timeout", 20 * time.Second},
		{"stall_timeout", 2 * time.Minute},
		{"checkpoint_write_timeout", 10 * time.Second},
	}
	tc := Default().Timers
	got := tc.fields()
	if len(got) != len(want) {
		t.Fatalf("%d timers, want %d", len(got), len(want))
	}
	for i, w := range want {
		if got[i].key != w.key || time.Duration(*got[i].d) != w.d {
			t.Errorf("timer %d: %s %v, want %s %v", i, got[i].key, *got[i].d, w.key, w.d)
		}
	}
	if got, want := Default().Checkpoint.Interval, Duration(time.Second); got != want {
		t.Errorf("checkpoint.interval: %v, want %v", got, want)
	}
}

// Every timer of the consumer is set from its key, none from another's.
func TestFanoutTimersFromTheirKeys(t *testing.T) {
	cfg := Default()
	for i, f := range cfg.Timers.fields() {
		*f.d = Duration(time.Duration(i+1) * time.Millisecond)
	}
	cfg.Checkpoint.Interval = Duration(time.Hour)
	ft := cfg.FanoutTimers()
	specs := fanout.TimerSpecs()
	for _, s := range specs {
		if got, want := *s.Field(&ft), time.Duration(*cfg.Timers.field(s.Key)); got != want {
			t.Errorf("%s: %v, want %v", s.Key, got, want)
		}
	}
	if ft.CheckpointInterval != time.Hour {
		t.Errorf("CheckpointInterval: %v, want 1h", ft.CheckpointInterval)
	}
}
