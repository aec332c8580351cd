package config

import (
	"testing"
	"time"
)

func TestStreamConfig_Helpers(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		s            StreamConfig
		name, region string
	}{
		{StreamConfig{Name: "orders"}, "orders", ""},
		{StreamConfig{ARN: "arn:aws:kinesis:ap-south-1:123456789012:stream/clicks"}, "clicks", "ap-south-1"},
		{StreamConfig{ARN: "bogus"}, "", ""},
		{StreamConfig{}, "", ""},
	} {
		if got := tc.s.StreamName(); got != tc.name {
			t.Errorf("%+v.StreamName() = %q, want %q", tc.s, got, tc.name)
		}
		if got := tc.s.Region(); got != tc.region {
			t.Errorf("%+v.Region() = %q, want %q", tc.s, got, tc.region)
		}
	}
	if got := (StreamConfig{StartTimestamp: "2024-01-02T15:04:05+02:00"}).StartTime(); !got.Equal(time.Date(2024, 1, 2, 13, 4, 5, 0, time.UTC)) {
		t.Errorf("StartTime() = %v", got)
	}
	if got := (StreamConfig{}).StartTime(); !got.IsZero() {
		t.Errorf("StartTime() of empty = %v, want zero", got)
	}
}

func TestDuration(t *testing.T) {
	t.Parallel()
	cfg, err := LoadBytes([]byte("streams: [{name: a}]\ncheckpoint: {dir: /x}\ntimers: {idle_timeout: 1.5s, backoff_max: 1h2m}\n"), mapLookup(nil))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := time.Duration(cfg.Timers.IdleTimeout), 1500*time.Millisecond; got != want {
		t.Fatalf("IdleTimeout = %v, want %v", got, want)
	}
	if got, want := cfg.Timers.BackoffMax.String(), "1h2m0s"; got != want {
		t.Fatalf("BackoffMax = %v, want %v", got, want)
	}
}
