package daemon

import (
	"reflect"
	"testing"
	"time"

	"github.com/fanoutd/fanoutd/config"
	"github.com/fanoutd/fanoutd/fanout"
)

func TestPlanReload(t *testing.T) {
	s := func(name, subject string) config.StreamConfig {
		c := config.DefaultStream()
		c.Name, c.Subject = name, subject
		return c
	}
	latest := s("b", "kinesis.{stream}")
	latest.StartPosition = fanout.StartLatest
	polled := s("a", "x")
	polled.Read = fanout.ReadPolling
	slower := polled
	slower.Polling.Interval = config.Duration(5 * time.Second)
	filtered := s("a", "x")
	filtered.Filter = []config.FilterPattern{`{"data": {"a": [1]}}`}
	unpacked := filtered
	unpacked.Payload, unpacked.SubjectFallback, unpacked.MaxDecompressed = "gzip", "none", 1<<20
	byARN := config.DefaultStream()
	byARN.ARN = "arn:aws:kinesis:us-east-1:123456789012:stream/a"
	for _, tc := range []struct {
		name          string
		running, want []config.StreamConfig
		plan          Plan
	}{
		{"nothing", nil, nil, Plan{}},
		{"unchanged", []config.StreamConfig{s("a", "x")}, []config.StreamConfig{s("a", "x")}, Plan{}},
		{"first start", nil, []config.StreamConfig{s("b", "x"), s("a", "x")}, Plan{Added: []string{"a", "b"}}},
		{"all removed", []config.StreamConfig{s("a", "x"), s("b", "x")}, nil, Plan{Removed: []string{"a", "b"}}},
		{"subject only", []config.StreamConfig{s("a", "x")}, []config.StreamConfig{s("a", "y")}, Plan{Rerouted: []string{"a"}}},
		{"filter only", []config.StreamConfig{s("a", "x")}, []config.StreamConfig{filtered}, Plan{Rerouted: []string{"a"}}},
		{"payload, fallback and limit", []config.StreamConfig{filtered}, []config.StreamConfig{unpacked}, Plan{Rerouted: []string{"a"}}},
		{"another setting restarts", []config.StreamConfig{s("b", "kinesis.{stream}")}, []config.StreamConfig{latest}, Plan{Restarted: []string{"b"}}},
		{"setting and subject restart", []config.StreamConfig{s("b", "x")}, []config.StreamConfig{latest}, Plan{Restarted: []string{"b"}}},
		{"read mode restarts", []config.StreamConfig{s("a", "x")}, []config.StreamConfig{polled}, Plan{Restarted: []string{"a"}}},
		{"polling pace restarts", []config.StreamConfig{polled}, []config.StreamConfig{slower}, Plan{Restarted: []string{"a"}}},
		{"name to the same stream's ARN restarts", []config.StreamConfig{s("a", "kinesis.{stream}")}, []config.StreamConfig{byARN}, Plan{Restarted: []string{"a"}}},
		{"mixed", []config.StreamConfig{s("a", "x"), s("b", "kinesis.{stream}"), s("c", "x"), s("d", "x")},
			[]config.StreamConfig{s("a", "x"), latest, s("c", "z"), s("e", "x")},
			Plan{Added: []string{"e"}, Removed: []string{"d"}, Restarted: []string{"b"}, Rerouted: []string{"c"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := PlanReload(tc.running, tc.want); !reflect.DeepEqual(got, tc.plan) {
				t.Fatalf("PlanReload = %+v, want %+v", got, tc.plan)
			}
		})
	}
}
