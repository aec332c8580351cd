package emulator

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

func TestInjectedExceptionFrames(t *testing.T) {
	t.Parallel()
	s, c, arn := setupStream(t, fast(), 1)
	for _, tc := range []struct {
		typ   string
		check func(error) bool
	}{
		{ErrInternalFailure, func(err error) bool { var e *types.InternalFailureException; return errors.As(err, &e) }},
		{ErrKMSThrottling, func(err error) bool { var e *types.KMSThrottlingException; return errors.As(err, &e) }},
		{ErrKMSDisabled, func(err error) bool { var e *types.KMSDisabledException; return errors.As(err, &e) }},
		{ErrResourceNotFound, func(err error) bool { var e *types.ResourceNotFoundException; return errors.As(err, &e) }},
		{ErrResourceInUse, func(err error) bool { var e *types.ResourceInUseException; return errors.As(err, &e) }},
	} {
		t.Run(tc.typ, func(t *testing.T) {
			sb := mustSubscribe(t, c, arn, ShardID(0), trimHorizon())
			sb.next(5 * time.Second)
			if n := s.EndSubscriptions("s", ShardID(0), tc.typ, "boom"); n != 1 {
				t.Fatalf("ended %d subscriptions", n)
			}
			err := sb.end(5 * time.Second)
			if !tc.check(err) {
				t.Fatalf("stream error %T %v, want %s", err, err, tc.typ)
			}
			var ae smithy.APIError
			if errors.As(err, &ae) && ae.ErrorMessage() != "boom" {
				t.Fatalf("message %q", ae.ErrorMessage())
			}
			waitNoSubscriptions(t, s)
		})
	}
}

func TestCutMidFrame(t *testing.T) {
	t.Parallel()
	s, c, arn, sb := subscribedShard(t)
	if n := s.CutSubscriptions("s", ""); n != 1 {
		t.Fatalf("cut %d", n)
	}
	// The SDK reports a reset stream as an error, or a clean end: either way
	// the stream closes and no half event is delivered.
	deadline := time.After(5 * time.Second)
	for {
		select {
		case ev, ok := <-sb.stream.Events():
			if !ok {
				t.Logf("after cut: %v", sb.stream.Err())
				waitNoSubscriptions(t, s)
				// A new subscription works.
				s.PutRecord("s", "k", []byte("x"))
				sb2 := mustSubscribe(t, c, arn, ShardID(0), trimHorizon())
				if recs, _ := sb2.collect(1, 5*time.Second); string(recs[0].Data) != "x" {
					t.Fatal("no record after cut")
				}
				return
			}
			e := ev.(*types.SubscribeToShardEventStreamMemberSubscribeToShardEvent)
			if aws.ToString(e.Value.ContinuationSequenceNumber) == "0" {
				t.Fatal("half frame delivered as an event")
			}
		case <-deadline:
			t.Fatal("stream not closed after cut")
		}
	}
}

func TestDropConnections(t *testing.T) {
	t.Parallel()
	s, _, _, sb := subscribedShard(t)
	if n := s.DropConnections(); n < 1 {
		t.Fatalf("dropped %d", n)
	}
	sb.end(5 * time.Second)
	waitNoSubscriptions(t, s)
}

func TestStallAndResume(t *testing.T) {
	t.Parallel()
	s, _, _, sb := subscribedShard(t)
	if n := s.StallSubscriptions("s", ShardID(0)); n != 1 {
		t.Fatalf("stalled %d", n)
	}
	s.PutRecord("s", "k", []byte("x"))
	// Several heartbeat intervals pass with no event and no end.
	select {
	case ev, ok := <-sb.stream.Events():
		t.Fatalf("stalled stream sent %v (open=%v)", ev, ok)
	case <-time.After(time.Second):
	}
	if s.ActiveSubscriptions("s", "") != 1 {
		t.Fatal("stalled subscription closed")
	}
	s.ResumeSubscriptions("s", ShardID(0))
	if recs, _ := sb.collect(1, 5*time.Second); string(recs[0].Data) != "x" {
		t.Fatal("no record after resume")
	}
}

func TestFailNextAndThrottle(t *testing.T) {
	t.Parallel()
	s, c, arn := setupStream(t, fast(), 1)
	ctx := ctxT(t)
	s.FailNext("SubscribeToShard", 1, ErrInternalFailure, "injected")
	_, err := subscribe(t, c, arn, ShardID(0), trimHorizon())
	var ife *types.InternalFailureException
	if !errors.As(err, &ife) {
		t.Fatalf("got %v", err)
	}
	var re *smithyhttp.ResponseError
	if !errors.As(err, &re) || re.HTTPStatusCode() != http.StatusInternalServerError {
		t.Fatalf("status: %v", err)
	}
	s.FailNextStatus("ListShards", 1, http.StatusBadGateway, "BadGateway", "upstream")
	_, err = c.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String("s")})
	if !errors.As(err, &re) || re.HTTPStatusCode() != http.StatusBadGateway {
		t.Fatalf("502: %v", err)
	}
	s.Throttle("PutRecord", 1)
	_, err = c.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("s"), PartitionKey: aws.String("k"), Data: []byte("x")})
	wantAPIError(t, err, ErrProvisionedThroughput)
	s.Throttle("SubscribeToShard", 1)
	_, err = subscribe(t, c, arn, ShardID(0), trimHorizon())
	wantAPIError(t, err, ErrLimitExceeded)
	// Faults are used up: the next calls succeed.
	if _, err := c.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("s"), PartitionKey: aws.String("k"), Data: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	mustSubscribe(t, c, arn, ShardID(0), trimHorizon())
	// The SDK's own retries ride over a single 500, as they would on AWS.
	s.FailNext("DescribeStreamSummary", 1, ErrInternalFailure, "once")
	retrying := kinesis.New(c.Options(), func(o *kinesis.Options) { o.RetryMaxAttempts = 3 })
	if _, err := retrying.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("s")}); err != nil {
		t.Fatalf("retried call: %v", err)
	}
}

func TestDeleteStreamEndsSubscriptions(t *testing.T) {
	t.Parallel()
	s, _, _, sb := subscribedShard(t)
	if err := s.DeleteStream("s"); err != nil {
		t.Fatal(err)
	}
	err := sb.end(5 * time.Second)
	var nf *types.ResourceNotFoundException
	if !errors.As(err, &nf) {
		t.Fatalf("got %v", err)
	}
}

func TestDeregisterEndsSubscriptions(t *testing.T) {
	t.Parallel()
	s, c, arn, sb := subscribedShard(t)
	if err := s.DeregisterConsumer(arn); err != nil {
		t.Fatal(err)
	}
	sb.end(5 * time.Second)
	_, err := subscribe(t, c, arn, ShardID(0), trimHorizon())
	wantAPIError(t, err, ErrResourceNotFound)
}

// A subscription's reads are limited (AWS: 2 MiB/s per shard and consumer)
// once its burst is spent: the time asserted is a lower bound, which a slow
// machine can only exceed.
func TestReadThroughputLimit(t *testing.T) {
	t.Parallel()
	opts := fast()
	opts.ReadThroughput = 4 << 20 // 4 MiB/s, with the emulator's 11 MiB burst
	s, c, arn := setupStream(t, opts, 1)
	data := make([]byte, 1<<20-100)
	const records = 15 // 15 MiB: 4 MiB over the burst, a second at 4 MiB/s
	for i := 0; i < records; i++ {
		if _, _, err := s.PutRecord("s", "k", data); err != nil {
			t.Fatal(err)
		}
	}
	sb := mustSubscribe(t, c, arn, ShardID(0), trimHorizon())
	start := time.Now()
	sb.collect(records, 30*time.Second)
	if d := time.Since(start); d < 800*time.Millisecond {
		t.Fatalf("15 MiB read in %v: faster than the 4 MiB/s limit allows after the burst", d)
	}
}
