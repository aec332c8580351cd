package emulator

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/fanoutd/fanoutd/internal/testutil"
)

func setupStream(t *testing.T, opts Options, shards int) (*Server, *kinesis.Client, string) {
	t.Helper()
	s, c := withStream(t, opts, shards)
	return s, c, activeConsumer(t, c, s, "s", "fanoutd")
}

func TestConsumerLifecycle(t *testing.T) {
	t.Parallel()
	opts := fast()
	opts.ConsumerActivationDelay = 300 * time.Millisecond
	opts.ConsumerDeletionDelay = 300 * time.Millisecond
	s, c := withStream(t, opts, 1)
	ctx := ctxT(t)
	streamARN := aws.String(s.StreamARN("s"))
	reg, err := c.RegisterStreamConsumer(ctx, &kinesis.RegisterStreamConsumerInput{StreamARN: streamARN, ConsumerName: aws.String("app")})
	if err != nil {
		t.Fatal(err)
	}
	arn := aws.ToString(reg.Consumer.ConsumerARN)
	if reg.Consumer.ConsumerStatus != types.ConsumerStatusCreating {
		t.Fatalf("status %s", reg.Consumer.ConsumerStatus)
	}
	if want := s.StreamARN("s") + "/consumer/app:"; len(arn) <= len(want) || arn[:len(want)] != want {
		t.Fatalf("consumer ARN %s", arn)
	}
	// Subscribing while CREATING fails with ResourceInUseException.
	_, err = subscribe(t, c, arn, ShardID(0), trimHorizon())
	wantAPIError(t, err, ErrResourceInUse)
	var inUse *types.ResourceInUseException
	if !errors.As(err, &inUse) {
		t.Fatalf("not typed: %T", err)
	}
	_, err = c.RegisterStreamConsumer(ctx, &kinesis.RegisterStreamConsumerInput{StreamARN: streamARN, ConsumerName: aws.String("app")})
	wantAPIError(t, err, ErrResourceInUse)

	testutil.WaitFor(t, 5*time.Second, "ACTIVE", func() bool {
		d, err := c.DescribeStreamConsumer(ctx, &kinesis.DescribeStreamConsumerInput{StreamARN: streamARN, ConsumerName: aws.String("app")})
		return err == nil && d.ConsumerDescription.ConsumerStatus == types.ConsumerStatusActive && aws.ToString(d.ConsumerDescription.ConsumerARN) == arn &&
			aws.ToString(d.ConsumerDescription.StreamARN) == *streamARN
	})
	// At most 5 consumers CREATING at once.
	for i := 0; i < 5; i++ {
		if _, err := c.RegisterStreamConsumer(ctx, &kinesis.RegisterStreamConsumerInput{StreamARN: streamARN, ConsumerName: aws.String(fmt.Sprint("c", i))}); err != nil {
			t.Fatal(err)
		}
	}
	_, err = c.RegisterStreamConsumer(ctx, &kinesis.RegisterStreamConsumerInput{StreamARN: streamARN, ConsumerName: aws.String("c5")})
	wantAPIError(t, err, ErrLimitExceeded)

	list, err := c.ListStreamConsumers(ctx, &kinesis.ListStreamConsumersInput{StreamARN: streamARN, MaxResults: aws.Int32(4)})
	if err != nil || len(list.Consumers) != 4 || list.NextToken == nil {
		t.Fatalf("list: %v %v", list, err)
	}
	list2, err := c.ListStreamConsumers(ctx, &kinesis.ListStreamConsumersInput{StreamARN: streamARN, NextToken: list.NextToken})
	if err != nil || len(list2.Consumers) != 2 {
		t.Fatalf("list page 2: %v %v", list2, err)
	}

	if _, err := c.DeregisterStreamConsumer(ctx, &kinesis.DeregisterStreamConsumerInput{ConsumerARN: aws.String(arn)}); err != nil {
		t.Fatal(err)
	}
	d, err := c.DescribeStreamConsumer(ctx, &kinesis.DescribeStreamConsumerInput{ConsumerARN: aws.String(arn)})
	if err != nil || d.ConsumerDescription.ConsumerStatus != types.ConsumerStatusDeleting {
		t.Fatalf("after deregister: %v %v", d, err)
	}
	testutil.WaitFor(t, 5*time.Second, "consumer gone", func() bool {
		_, err := c.DescribeStreamConsumer(ctx, &kinesis.DescribeStreamConsumerInput{ConsumerARN: aws.String(arn)})
		var nf *types.ResourceNotFoundException
		return errors.As(err, &nf)
	})
	_, err = subscribe(t, c, arn, ShardID(0), trimHorizon())
	wantAPIError(t, err, ErrResourceNotFound)
	_, err = c.DescribeStreamConsumer(ctx, &kinesis.DescribeStreamConsumerInput{ConsumerARN: aws.String("not-an-arn")})
	wantAPIError(t, err, ErrValidation)
}

func TestSubscribeDeliversRecordsPromptly(t *testing.T) {
	t.Parallel()
	s, c, arn := setupStream(t, fast(), 1)
	sb := mustSubscribe(t, c, arn, ShardID(0), types.StartingPosition{Type: types.ShardIteratorTypeLatest})
	first, ok := sb.next(5 * time.Second)
	if !ok || len(first.Records) != 0 || first.ContinuationSequenceNumber == nil {
		t.Fatalf("first event %+v", first)
	}
	for i := 0; i < 50; i++ {
		start := time.Now()
		_, seq, err := s.PutRecord("s", fmt.Sprint("k", i), []byte(fmt.Sprint(i)))
		if err != nil {
			t.Fatal(err)
		}
		recs, last := sb.collect(1, 5*time.Second)
		if len(recs) != 1 || string(recs[0].Data) != fmt.Sprint(i) || aws.ToString(recs[0].SequenceNumber) != seq ||
			aws.ToString(recs[0].PartitionKey) != fmt.Sprint("k", i) || recs[0].ApproximateArrivalTimestamp == nil {
			t.Fatalf("record %d: %+v", i, recs)
		}
		if aws.ToString(last.ContinuationSequenceNumber) != seq {
			t.Fatalf("continuation %s, want %s", aws.ToString(last.ContinuationSequenceNumber), seq)
		}
		// Far below the 200 ms heartbeat: records are pushed, not polled.
		if d := time.Since(start); d > 150*time.Millisecond {
			t.Logf("record %d took %v", i, d)
		}
	}
}

func TestSubscribeEmptyEventsAndContinuation(t *testing.T) {
	t.Parallel()
	s, c, arn := setupStream(t, fast(), 1)
	for i := 0; i < 3; i++ {
		s.PutRecord("s", "k", []byte{byte('a' + i)})
	}
	sb := mustSubscribe(t, c, arn, ShardID(0), trimHorizon())
	recs, last := sb.collect(3, 5*time.Second)
	if len(recs) != 3 || aws.ToInt64(last.MillisBehindLatest) != 0 {
		t.Fatalf("recs %d behind %d", len(recs), aws.ToInt64(last.MillisBehindLatest))
	}
	// With nothing new, empty events keep coming and carry the continuation.
	for i := 0; i < 2; i++ {
		ev, ok := sb.next(5 * time.Second)
		if !ok || len(ev.Records) != 0 || aws.ToString(ev.ContinuationSequenceNumber) != aws.ToString(last.ContinuationSequenceNumber) {
			t.Fatalf("empty event %+v", ev)
		}
	}
	// The continuation resumes exactly after the last record.
	s.PutRecord("s", "k", []byte("d"))
	sb.stream.Close()
	sb2 := resubscribeAfter(t, s, c, arn, last.ContinuationSequenceNumber)
	recs, _ = sb2.collect(1, 5*time.Second)
	if string(recs[0].Data) != "d" {
		t.Fatalf("resumed at %q", recs[0].Data)
	}
}

func TestSubscribeEmptyShardContinuation(t *testing.T) {
	t.Parallel()
	s, c, arn := setupStream(t, fast(), 1)
	sb := mustSubscribe(t, c, arn, ShardID(0), trimHorizon())
	ev, _ := sb.next(5 * time.Second)
	cont := ev.ContinuationSequenceNumber
	sb.stream.Close()
	s.PutRecord("s", "k", []byte("a"))
	sb2 := resubscribeAfter(t, s, c, arn, cont)
	recs, _ := sb2.collect(1, 5*time.Second)
	if string(recs[0].Data) != "a" {
		t.Fatalf("got %q", recs[0].Data)
	}
}

func TestSubscribeStartingPositions(t *testing.T) {
	t.Parallel()
	s, c, arn := setupStream(t, fast(), 1)
	var seqs []string
	for i := 0; i < 4; i++ {
		_, seq, _ := s.PutRecord("s", "k", []byte{byte('a' + i)})
		seqs = append(seqs, seq)
	}
	recs, _ := s.Records("s", ShardID(0))
	tsC := recs[2].Arrival
	for i, tc := range []struct {
		pos  types.StartingPosition
		want string
	}{
		{trimHorizon(), "abcd"},
		{types.StartingPosition{Type: types.ShardIteratorTypeAtSequenceNumber, SequenceNumber: aws.String(seqs[1])}, "bcd"},
		{types.StartingPosition{Type: types.ShardIteratorTypeAfterSequenceNumber, SequenceNumber: aws.String(seqs[1])}, "cd"},
		{types.StartingPosition{Type: types.ShardIteratorTypeAtTimestamp, Timestamp: aws.Time(tsC)}, "cd"},
		{types.StartingPosition{Type: types.ShardIteratorTypeLatest}, ""},
	} {
		t.Run(string(tc.pos.Type), func(t *testing.T) {
			waitNoSubscriptions(t, s)
			sb := mustSubscribe(t, c, arn, ShardID(0), tc.pos)
			defer sb.stream.Close()
			marker := byte('V' + i) // earlier subtests' markers are skipped
			s.PutRecord("s", "k", []byte{marker})
			var got string
			for got == "" || got[len(got)-1] != marker {
				ev, ok := sb.next(5 * time.Second)
				if !ok {
					t.Fatal("ended")
				}
				for _, r := range ev.Records {
					if d := r.Data[0]; d >= 'a' || d == marker {
						got += string(r.Data)
					}
				}
			}
			got = got[:len(got)-1]
			if tc.pos.Type == types.ShardIteratorTypeAtTimestamp {
				// Arrival times have millisecond precision, as on AWS: records
				// put in the same millisecond as c are read too.
				for len(got) > len(tc.want) && got[0] < 'c' {
					got = got[1:]
				}
			}
			if got != tc.want {
				t.Fatalf("got %q want %q", got, tc.want)
			}
		})
	}
	_, err := subscribe(t, c, arn, ShardID(0), types.StartingPosition{Type: types.ShardIteratorTypeAtSequenceNumber, SequenceNumber: aws.String("1")})
	wantAPIError(t, err, ErrInvalidArgument)
	_, err = subscribe(t, c, arn, ShardID(9), trimHorizon())
	wantAPIError(t, err, ErrResourceNotFound)
	_, err = subscribe(t, c, s.StreamARN("s")+"/consumer/ghost:1", ShardID(0), trimHorizon())
	wantAPIError(t, err, ErrResourceNotFound)
}

func TestSubscriptionLifetime(t *testing.T) {
	t.Parallel()
	opts := fast()
	opts.SubscriptionLifetime = 500 * time.Millisecond
	_, c, arn := setupStream(t, opts, 1)
	start := time.Now()
	sb := mustSubscribe(t, c, arn, ShardID(0), trimHorizon())
	if err := sb.end(10 * time.Second); err != nil {
		t.Fatalf("lifetime end: %v", err)
	}
	if d := time.Since(start); d < 450*time.Millisecond {
		t.Fatalf("ended after %v, before its lifetime", d)
	}
}

func TestSubscribeRateAndTakeover(t *testing.T) {
	t.Parallel()
	opts := fast()
	opts.SubscribeRate = 0 // AWS's 1s
	opts.TakeoverGrace = 0 // AWS's 5s
	s, c, arn := setupStream(t, opts, 1)
	first := mustSubscribe(t, c, arn, ShardID(0), trimHorizon())
	// Within a second: LimitExceededException.
	_, err := subscribe(t, c, arn, ShardID(0), trimHorizon())
	wantAPIError(t, err, ErrLimitExceeded)
	var le *types.LimitExceededException
	if !errors.As(err, &le) {
		t.Fatalf("not typed: %T", err)
	}
	// After a second but within 5 s of the first: ResourceInUseException.
	var inUse *types.ResourceInUseException
	testutil.WaitFor(t, 5*time.Second, "ResourceInUseException", func() bool {
		_, err := subscribe(t, c, arn, ShardID(0), trimHorizon())
		if err == nil {
			t.Fatal("second subscription accepted within 5 s")
		}
		return errors.As(err, &inUse)
	})
	// After 5 s the call takes over; the old stream ends with ResourceInUseException.
	var second *sub
	testutil.WaitFor(t, 10*time.Second, "takeover", func() bool {
		var err error
		second, err = subscribe(t, c, arn, ShardID(0), trimHorizon())
		return err == nil
	})
	err = first.end(5 * time.Second)
	if !errors.As(err, &inUse) {
		t.Fatalf("old stream ended with %v, want ResourceInUseException", err)
	}
	s.PutRecord("s", "k", []byte("x"))
	if recs, _ := second.collect(1, 5*time.Second); string(recs[0].Data) != "x" {
		t.Fatalf("new subscription read %q", recs[0].Data)
	}
	if n := s.ActiveSubscriptions("s", ShardID(0)); n != 1 {
		t.Fatalf("%d active subscriptions", n)
	}
}

func TestShardEndAfterSplitAndMerge(t *testing.T) {
	t.Parallel()
	s, c, arn := setupStream(t, fast(), 2)
	k0 := keyFor(t, s, "s", ShardID(0))
	s.PutRecord("s", k0, []byte("before"))
	sb := mustSubscribe(t, c, arn, ShardID(0), trimHorizon())
	if recs, _ := sb.collect(1, 5*time.Second); string(recs[0].Data) != "before" {
		t.Fatal("no record")
	}
	kids, err := s.SplitShard("s", ShardID(0))
	if err != nil {
		t.Fatal(err)
	}
	last := sb.last(5 * time.Second)
	if err := sb.stream.Err(); err != nil {
		t.Fatalf("end of shard: %v", err)
	}
	if last == nil || last.ContinuationSequenceNumber != nil || len(last.ChildShards) != 2 {
		t.Fatalf("last event %+v", last)
	}
	for i, ch := range last.ChildShards {
		if aws.ToString(ch.ShardId) != kids[i] || len(ch.ParentShards) != 1 || ch.ParentShards[0] != ShardID(0) || ch.HashKeyRange == nil {
			t.Fatalf("child %+v", ch)
		}
	}
	// Records after the split go to the children; a resubscribe on the parent
	// at its end gets the final event at once.
	s.PutRecord("s", k0, []byte("after"))
	recs, _ := s.Records("s", ShardID(0))
	if len(recs) != 1 {
		t.Fatalf("closed parent got a record")
	}

	// Merge the two children; a reader of each gets a single child with both parents.
	child, err := s.MergeShards("s", kids[0], kids[1])
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range kids {
		sb := mustSubscribe(t, c, arn, k, trimHorizon())
		last := sb.last(5 * time.Second)
		if last == nil || last.ContinuationSequenceNumber != nil || len(last.ChildShards) != 1 ||
			aws.ToString(last.ChildShards[0].ShardId) != child || len(last.ChildShards[0].ParentShards) != 2 {
			t.Fatalf("%s last event %+v", k, last)
		}
	}
	_, err = s.MergeShards("s", child, ShardID(1))
	if err != nil {
		t.Fatalf("adjacent merge: %v", err)
	}
	_, err = c.MergeShards(ctxT(t), &kinesis.MergeShardsInput{StreamName: aws.String("s"), ShardToMerge: aws.String(kids[0]), AdjacentShardToMerge: aws.String(kids[1])})
	wantAPIError(t, err, ErrInvalidArgument)
}

func TestUpdateShardCountKeepsLineage(t *testing.T) {
	t.Parallel()
	_, c := withStream(t, fast(), 2)
	ctx := ctxT(t)
	for _, target := range []int32{4, 3, 6, 3, 2, 1} {
		if _, err := c.UpdateShardCount(ctx, &kinesis.UpdateShardCountInput{StreamName: aws.String("s"), TargetShardCount: aws.Int32(target), ScalingType: types.ScalingTypeUniformScaling}); err != nil {
			t.Fatalf("to %d: %v", target, err)
		}
		out, err := c.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String("s")})
		if err != nil {
			t.Fatal(err)
		}
		checkCoverage(t, out.Shards)
		byID := map[string]types.Shard{}
		open := 0
		for _, sh := range out.Shards {
			byID[*sh.ShardId] = sh
			if sh.SequenceNumberRange.EndingSequenceNumber == nil {
				open++
			}
		}
		if open != int(target) {
			t.Fatalf("target %d: %d open", target, open)
		}
		for _, sh := range out.Shards {
			for _, p := range []*string{sh.ParentShardId, sh.AdjacentParentShardId} {
				if p == nil {
					continue
				}
				if ps, ok := byID[*p]; !ok || ps.SequenceNumberRange.EndingSequenceNumber == nil {
					t.Fatalf("%s has parent %s that is not a closed shard", *sh.ShardId, *p)
				}
			}
		}
	}
	_, err := c.UpdateShardCount(ctx, &kinesis.UpdateShardCountInput{StreamName: aws.String("s"), TargetShardCount: aws.Int32(3), ScalingType: types.ScalingTypeUniformScaling})
	wantAPIError(t, err, ErrLimitExceeded)
}

// Empty events advance the continuation as time (other shards' records)
// passes, and resuming after it loses nothing.
func TestEmptyEventsAdvanceTheContinuation(t *testing.T) {
	t.Parallel()
	s, c, arn := setupStream(t, fast(), 2)
	k0, k1 := keyFor(t, s, "s", ShardID(0)), keyFor(t, s, "s", ShardID(1))
	s.PutRecord("s", k0, []byte("a"))
	sb := mustSubscribe(t, c, arn, ShardID(0), trimHorizon())
	_, last := sb.collect(1, 5*time.Second)
	first := aws.ToString(last.ContinuationSequenceNumber)
	for i := 0; i < 3; i++ {
		s.PutRecord("s", k1, []byte("other shard"))
	}
	var advanced string
	testutil.WaitFor(t, 5*time.Second, "an advanced continuation", func() bool {
		ev, ok := sb.next(5 * time.Second)
		if !ok || len(ev.Records) != 0 {
			t.Fatalf("unexpected %+v", ev)
		}
		advanced = aws.ToString(ev.ContinuationSequenceNumber)
		return advanced > first
	})
	sb.stream.Close()
	s.PutRecord("s", k0, []byte("b"))
	sb2 := resubscribeAfter(t, s, c, arn, aws.String(advanced))
	if recs, _ := sb2.collect(1, 5*time.Second); string(recs[0].Data) != "b" {
		t.Fatalf("resumed at %q", recs[0].Data)
	}
}
