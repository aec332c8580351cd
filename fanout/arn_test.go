package fanout

import (
	"testing"
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
