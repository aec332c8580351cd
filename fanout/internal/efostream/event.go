package efostream

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/fanoutd/fanoutd/record"
)

// Event is what a SubscribeToShardEvent says besides its records.
type Event struct {
	// Continuation is nil when the shard ended.
	Continuation       *string
	MillisBehindLatest int64
	ChildShards        []types.ChildShard
}

func eventOf(ev *types.SubscribeToShardEvent) Event {
	return Event{
		Continuation:       ev.ContinuationSequenceNumber,
		MillisBehindLatest: aws.ToInt64(ev.MillisBehindLatest),
		ChildShards:        ev.ChildShards,
	}
}

// Records appends Kinesis records (of a SubscribeToShardEvent or a
// GetRecords response) to dst as they are, KPL aggregates whole. Data
// slices alias the records'.
func Records(dst []record.Record, recs []types.Record) []record.Record {
	for i := range recs {
		r := &recs[i]
		dst = append(dst, record.Record{Data: r.Data, PartitionKey: aws.ToString(r.PartitionKey), SequenceNumber: aws.ToString(r.SequenceNumber), ArrivalTime: aws.ToTime(r.ApproximateArrivalTimestamp)})
	}
	return dst
}

// SDKSubscription is one SubscribeToShard stream read by aws-sdk-go-v2's
// own event-stream reader.
type SDKSubscription struct {
	ctx    context.Context
	stream *kinesis.SubscribeToShardEventStream
}

// SubscribeSDK sends SubscribeToShard through the SDK, on a client of its
// own: in aws-sdk-go-v2 service/kinesis v1.56 all event streams of one
// client share one decoder payload buffer, a data race between concurrent
// subscriptions; kinesis.New gives the copy a fresh codec and keeps the
// shared HTTP client.
func SubscribeSDK(ctx context.Context, base *kinesis.Client, in *kinesis.SubscribeToShardInput) (*SDKSubscription, error) {
	out, err := kinesis.New(base.Options()).SubscribeToShard(ctx, in)
	if err != nil {
		return nil, err
	}
	return &SDKSubscription{ctx: ctx, stream: out.GetStream()}, nil
}

// Next is Subscription.Next, through the SDK.
func (s *SDKSubscription) Next(dst []record.Record) (Event, []record.Record, bool, error) {
	for {
		select {
		case <-s.ctx.Done():
			return Event{}, dst, false, s.ctx.Err()
		case ev, ok := <-s.stream.Events():
			if !ok {
				return Event{}, dst, false, s.stream.Err()
			}
			e, isEvent := ev.(*types.SubscribeToShardEventStreamMemberSubscribeToShardEvent)
			if !isEvent {
				continue
			}
			return eventOf(&e.Value), Records(dst, e.Value.Records), true, nil
		}
	}
}

// Close ends the stream.
func (s *SDKSubscription) Close() { _ = s.stream.Close() }
