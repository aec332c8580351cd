package config

import (
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/fanoutd/fanoutd/fanout"
)

// DefaultStallTimeout is timers.stall_timeout, the one timer of
// TimersConfig that is not the consumer's (the monitor's).
const DefaultStallTimeout = 2 * time.Minute

// timerField is one key under timers: and its value in a TimersConfig.
type timerField struct {
	key string
	d   *Duration
}

// fields are every timer of t by its YAML key, in the order of the type:
// the defaults, the consumer's timers and the checks derive from them and
// from fanout.TimerSpecs, so that a new timer is a field of each type.
func (t *TimersConfig) fields() []timerField {
	v := reflect.ValueOf(t).Elem()
	out := make([]timerField, v.NumField())
	for i := range out {
		key, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("yaml"), ",")
		out[i] = timerField{key: key, d: v.Field(i).Addr().Interface().(*Duration)}
	}
	return out
}

// field is the timer of t under key; it panics on a key TimersConfig does
// not have (a fanout timer without a config key: TestEveryFanoutTimerHasAKey).
func (t *TimersConfig) field(key string) *Duration {
	for _, f := range t.fields() {
		if f.key == key {
			return f.d
		}
	}
	panic(fmt.Sprintf("config: no key timers.%s", key))
}

// defaultTimers are fanout's production timers and DefaultStallTimeout.
func defaultTimers() TimersConfig {
	t := TimersConfig{StallTimeout: Duration(DefaultStallTimeout)}
	for _, s := range fanout.TimerSpecs() {
		*t.field(s.Key) = Duration(s.Default)
	}
	return t
}

// FanoutTimers are the durations the consumer waits on.
func (c *Config) FanoutTimers() fanout.Timers {
	t := c.Timers
	ft := fanout.Timers{CheckpointInterval: time.Duration(c.Checkpoint.Interval)}
	for _, s := range fanout.TimerSpecs() {
		*s.Field(&ft) = time.Duration(*t.field(s.Key))
	}
	return ft
}

func (t TimersConfig) validate(ps *problems) {
	for _, f := range t.fields() {
		positive("timers."+f.key, *f.d, ps)
	}
	notAbove("timers.backoff_initial", t.BackoffInitial, "timers.backoff_max", t.BackoffMax, ps)
	notAbove("timers.consumer_poll_initial", t.ConsumerPollInitial, "timers.consumer_poll_max", t.ConsumerPollMax, ps)
}
