package fanout

import (
	"reflect"
	"testing"
	"time"
)

// Every timer of Timers but CheckpointInterval has one row in TimerSpecs.
func TestTimerSpecsCoverTimers(t *testing.T) {
	var tm Timers
	fields := map[*time.Duration]string{}
	v := reflect.ValueOf(&tm).Elem()
	for i := range v.NumField() {
		fields[v.Field(i).Addr().Interface().(*time.Duration)] = v.Type().Field(i).Name
	}
	delete(fields, &tm.CheckpointInterval)
	keys := map[string]bool{}
	for _, s := range TimerSpecs() {
		p := s.Field(&tm)
		if _, ok := fields[p]; !ok {
			t.Errorf("%s: its field is CheckpointInterval or another row's", s.Key)
		}
		delete(fields, p)
		if keys[s.Key] || s.Default <= 0 {
			t.Errorf("%s: a key twice, or a default not greater than zero (%v)", s.Key, s.Default)
		}
		keys[s.Key] = true
	}
	for _, name := range fields {
		t.Errorf("Timers.%s has no row in TimerSpecs", name)
	}
	// withDefaults fills every timer but CheckpointInterval (0 is valid).
	got := (Timers{}).withDefaults()
	if got.CheckpointInterval != 0 {
		t.Errorf("withDefaults set CheckpointInterval to %v", got.CheckpointInterval)
	}
	got.CheckpointInterval = DefaultCheckpointInterval
	if got != DefaultTimers() {
		t.Errorf("zero timers with defaults: %+v, want %+v", got, DefaultTimers())
	}
}
