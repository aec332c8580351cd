// Package emutest holds the emulator preset the packages' tests share. It is
// apart from testutil because the emulator's own tests use testutil.
package emutest

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/fanoutd/fanoutd/emulator"
)

// Options runs AWS's slow timers in milliseconds (a consumer is ACTIVE
// after 200 ms and deleted at once; no subscribe rate limit, no takeover
// grace; an empty event every 100 ms) and keeps everything else as AWS has
// it, subscriptions of 5 minutes included: tests end them on demand
// (Server.EndSubscriptions) instead of waiting for them to expire.
func Options() emulator.Options {
	return emulator.Options{
		ConsumerActivationDelay: 200 * time.Millisecond,
		ConsumerDeletionDelay:   -1,
		SubscribeRate:           -1,
		TakeoverGrace:           -1,
		EmptyEventInterval:      100 * time.Millisecond,
	}
}

// Client is an official SDK client for s, its endpoint, region, credentials
// and CA given explicitly (nothing from the environment), so that tests
// using it can run in parallel.
func Client(t testing.TB, s *emulator.Server) *kinesis.Client {
	t.Helper()
	opts := []func(*config.LoadOptions) error{
		config.WithRegion(s.Region()),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("emulator", "emulator", "")),
	}
	if pem := s.CAPEM(); pem != nil {
		opts = append(opts, config.WithCustomCABundle(bytes.NewReader(pem)))
	}
	cfg, err := config.LoadDefaultConfig(context.Background(), opts...)
	if err != nil {
		t.Fatalf("load SDK config: %v", err)
	}
	return kinesis.NewFromConfig(cfg, func(o *kinesis.Options) { o.BaseEndpoint = aws.String(s.URL()) })
}
