package baseline

import (
	"context"
	"errors"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// pollInterval is the wait after a call that found the shard caught up,
// as the AWS developer guide's GetRecords example waits a second.
const pollInterval = time.Second

// Polling (Config.Polling) relays each shard by GetRecords, as the
// developer guide shows it: GetShardIterator at TRIM_HORIZON, then
// GetRecords with the returned NextShardIterator until it is nil, the SDK's
// default retries, and a backoff on ProvisionedThroughputExceededException.

// poll reads the shard until ctx ends or the shard is closed and read to
// its end.
func (r *shardRelay) poll(ctx context.Context, kc *kinesis.Client) {
	var iter *string
	for ctx.Err() == nil {
		if iter == nil {
			in := &kinesis.GetShardIteratorInput{StreamName: aws.String(r.cfg.Stream), ShardId: aws.String(r.shardID),
				ShardIteratorType: types.ShardIteratorTypeTrimHorizon}
			if r.continuation != nil {
				in.ShardIteratorType, in.StartingSequenceNumber = types.ShardIteratorTypeAfterSequenceNumber, r.continuation
			}
			out, err := kc.GetShardIterator(ctx, in)
			if err != nil {
				pause(ctx, time.Second)
				continue
			}
			iter = out.ShardIterator
		}
		out, err := kc.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter, Limit: aws.Int32(10000)})
		var throttled *types.ProvisionedThroughputExceededException
		switch {
		case errors.As(err, &throttled):
			pause(ctx, time.Second)
			continue
		case err != nil:
			iter = nil // expired or otherwise unusable: a new one from the last record
			pause(ctx, time.Second)
			continue
		}
		if err := r.publish(ctx, out.Records); err != nil {
			pause(ctx, time.Second)
			iter = nil
			continue
		}
		if n := len(out.Records); n > 0 {
			r.continuation = out.Records[n-1].SequenceNumber
		}
		if out.NextShardIterator == nil {
			return // the shard is closed and read to its end
		}
		iter = out.NextShardIterator
		if aws.ToInt64(out.MillisBehindLatest) == 0 {
			pause(ctx, pollInterval)
		}
	}
}

func pause(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
