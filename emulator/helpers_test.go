package emulator

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"

	"github.com/fanoutd/fanoutd/internal/testutil"
)

// fast are options that run AWS's timers in milliseconds.
func fast() Options {
	return Options{
		ConsumerActivationDelay: -1,
		ConsumerDeletionDelay:   -1,
		TakeoverGrace:           -1,
		SubscribeRate:           -1,
		EmptyEventInterval:      200 * time.Millisecond,
	}
}

func startEmulator(t testing.TB, opts Options) *Server {
	t.Helper()
	s, err := New(opts)
	if err != nil {
		t.Fatalf("start emulator: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// withStream starts an emulator with a stream "s" of shards shards, and a
// client for it.
func withStream(t testing.TB, opts Options, shards int) (*Server, *kinesis.Client) {
	t.Helper()
	s := startEmulator(t, opts)
	if err := s.CreateStream("s", shards); err != nil {
		t.Fatal(err)
	}
	return s, newClient(t, s)
}

// newClient is an official SDK client for s, as a user's program would make
// one, with retries off so tests see every error.
func newClient(t testing.TB, s *Server) *kinesis.Client {
	t.Helper()
	ctx := context.Background()
	opts := []func(*config.LoadOptions) error{
		config.WithRegion(s.Region()),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("emulator", "emulator", "")),
		config.WithRetryMaxAttempts(1),
	}
	if pem := s.CAPEM(); pem != nil {
		opts = append(opts, config.WithCustomCABundle(bytes.NewReader(pem)))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		t.Fatalf("load SDK config: %v", err)
	}
	return kinesis.NewFromConfig(cfg, func(o *kinesis.Options) {
		o.BaseEndpoint = aws.String(s.URL())
	})
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// wantAPIError asserts err is an AWS API error with the code.
func wantAPIError(t testing.TB, err error, code string) {
	t.Helper()
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("got error %v, want API error %s", err, code)
	}
	if ae.ErrorCode() != code {
		t.Fatalf("got error code %s (%v), want %s", ae.ErrorCode(), err, code)
	}
}

// activeConsumer registers a consumer through the SDK and returns its ARN.
func activeConsumer(t testing.TB, c *kinesis.Client, s *Server, stream, name string) string {
	t.Helper()
	out, err := c.RegisterStreamConsumer(ctxT(t), &kinesis.RegisterStreamConsumerInput{
		StreamARN: aws.String(s.StreamARN(stream)), ConsumerName: aws.String(name)})
	if err != nil {
		t.Fatalf("register consumer: %v", err)
	}
	arn := aws.ToString(out.Consumer.ConsumerARN)
	testutil.WaitFor(t, 10*time.Second, "consumer ACTIVE", func() bool {
		d, err := c.DescribeStreamConsumer(ctxT(t), &kinesis.DescribeStreamConsumerInput{ConsumerARN: aws.String(arn)})
		return err == nil && d.ConsumerDescription.ConsumerStatus == types.ConsumerStatusActive
	})
	return arn
}

type sub struct {
	t      testing.TB
	stream *kinesis.SubscribeToShardEventStream
}

func subscribe(t testing.TB, c *kinesis.Client, consumerARN, shardID string, pos types.StartingPosition) (*sub, error) {
	// One client per subscription: in aws-sdk-go-v2 service/kinesis v1.56
	// (smithy-go v1.28) a client's event-stream codec shares one payload
	// buffer between all its streams, a data race between concurrent
	// subscriptions. kinesis.New gives the copy a codec of its own while
	// sharing the HTTP client and its connections.
	c = kinesis.New(c.Options())
	out, err := c.SubscribeToShard(ctxT(t), &kinesis.SubscribeToShardInput{
		ConsumerARN: aws.String(consumerARN), ShardId: aws.String(shardID), StartingPosition: &pos})
	if err != nil {
		return nil, err
	}
	st := out.GetStream()
	t.Cleanup(func() { st.Close() })
	return &sub{t: t, stream: st}, nil
}

func mustSubscribe(t testing.TB, c *kinesis.Client, consumerARN, shardID string, pos types.StartingPosition) *sub {
	t.Helper()
	s, err := subscribe(t, c, consumerARN, shardID, pos)
	if err != nil {
		t.Fatalf("subscribe %s: %v", shardID, err)
	}
	return s
}

// next returns the next event, or nil and false when the stream ended.
func (s *sub) next(timeout time.Duration) (*types.SubscribeToShardEvent, bool) {
	s.t.Helper()
	select {
	case ev, ok := <-s.stream.Events():
		if !ok {
			return nil, false
		}
		e, isEvent := ev.(*types.SubscribeToShardEventStreamMemberSubscribeToShardEvent)
		if !isEvent {
			s.t.Fatalf("unexpected event type %T", ev)
		}
		return &e.Value, true
	case <-time.After(timeout):
		s.t.Fatalf("no event within %v", timeout)
		return nil, false
	}
}

// last reads events until the stream ends and returns the last one.
func (s *sub) last(timeout time.Duration) *types.SubscribeToShardEvent {
	s.t.Helper()
	var last *types.SubscribeToShardEvent
	for {
		ev, ok := s.next(timeout)
		if !ok {
			return last
		}
		last = ev
	}
}

// collect reads events until n records arrived, returning the records and the
// last event.
func (s *sub) collect(n int, timeout time.Duration) ([]types.Record, *types.SubscribeToShardEvent) {
	s.t.Helper()
	var recs []types.Record
	var last *types.SubscribeToShardEvent
	deadline := time.Now().Add(timeout)
	for len(recs) < n {
		ev, ok := s.next(time.Until(deadline))
		if !ok {
			s.t.Fatalf("stream ended after %d of %d records: %v", len(recs), n, s.stream.Err())
		}
		recs = append(recs, ev.Records...)
		last = ev
	}
	return recs, last
}

// end waits for the stream to end and returns its error.
func (s *sub) end(timeout time.Duration) error {
	s.t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case _, ok := <-s.stream.Events():
			if !ok {
				return s.stream.Err()
			}
		case <-deadline:
			s.t.Fatalf("stream did not end within %v", timeout)
		}
	}
}

// resubscribeAfter subscribes to shard 0 of stream "s" after cont, once no
// subscription to the stream is left.
func resubscribeAfter(t testing.TB, s *Server, c *kinesis.Client, consumerARN string, cont *string) *sub {
	t.Helper()
	waitNoSubscriptions(t, s)
	return mustSubscribe(t, c, consumerARN, ShardID(0), types.StartingPosition{Type: types.ShardIteratorTypeAfterSequenceNumber, SequenceNumber: cont})
}

// subscribedShard sets up a stream "s" of one shard and a subscription to
// it that sent its first event.
func subscribedShard(t *testing.T) (*Server, *kinesis.Client, string, *sub) {
	t.Helper()
	s, c, arn := setupStream(t, fast(), 1)
	sb := mustSubscribe(t, c, arn, ShardID(0), trimHorizon())
	sb.next(5 * time.Second)
	return s, c, arn, sb
}

// waitNoSubscriptions waits until stream "s" has no subscription left.
func waitNoSubscriptions(t testing.TB, s *Server) {
	t.Helper()
	testutil.WaitFor(t, 5*time.Second, "no subscription", func() bool { return s.ActiveSubscriptions("s", "") == 0 })
}

func trimHorizon() types.StartingPosition {
	return types.StartingPosition{Type: types.ShardIteratorTypeTrimHorizon}
}

func errorsAs(err error, target any) bool { return errors.As(err, target) }
