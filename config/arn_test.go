package config

import (
	"testing"
	"time"
)

func TestParseStreamARN(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want StreamARN
		ok   bool
	}{
		{"arn:aws:kinesis:us-east-1:123456789012:stream/orders", StreamARN{"aws", "us-east-1", "123456789012", "orders"}, true},
		{"arn:aws-cn:kinesis:cn-north-1:123456789012:stream/a.b_c-d", StreamARN{"aws-cn", "cn-north-1", "123456789012", "a.b_c-d"}, true},
		{"arn:aws:kinesis:us-east-1:123456789012:stream/", StreamARN{}, false},
		{"arn:aws:kinesis:us-east-1:12345:stream/orders", StreamARN{}, false},
		{"arn:aws:sqs:us-east-1:123456789012:stream/orders", StreamARN{}, false},
		{"arn:aws:kinesis:us-east-1:123456789012:stream/orders/consumer/c:1", StreamARN{}, false},
		{"orders", StreamARN{}, false},
	} {
		got, err := ParseStreamARN(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseStreamARN(%q) = %+v, %v; want %+v, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
		if tc.ok && got.String() != tc.in {
			t.Errorf("String() = %q, want %q", got.String(), tc.in)
		}
	}
}

func TestParseConsumerARN(t *testing.T) {
	in := "arn:aws:kinesis:eu-west-1:123456789012:stream/payments/consumer/fanoutd:1700000000"
	got, err := ParseConsumerARN(in)
	if err != nil {
		t.Fatal(err)
	}
	want := ConsumerARN{StreamARN{"aws", "eu-west-1", "123456789012", "payments"}, "fanoutd", "1700000000"}
	if got != want {
		t.Fatalf("ParseConsumerARN = %+v, want %+v", got, want)
	}
	if got.String() != in {
		t.Fatalf("String() = %q, want %q", got.String(), in)
	}
	if _, err := ParseConsumerARN("arn:aws:kinesis:eu-west-1:123456789012:stream/payments/consumer/fanoutd"); err == nil {
		t.Fatal("ParseConsumerARN without creation time: want error")
	}
}

func TestStreamConfig_Helpers(t *testing.T) {
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
