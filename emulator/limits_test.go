package emulator

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

func TestAPILimitsOnlyWhenEnforced(t *testing.T) {
	t.Parallel()
	for _, enforce := range []bool{false, true} {
		opts := fast()
		opts.EnforceLimits = enforce
		s, c := withStream(t, opts, 1)
		// 20 a second with a burst of 20: enforced, back-to-back calls are
		// refused well before 200 of them, however slow the machine.
		throttled, calls := 0, 0
		for ; calls < 200 && (throttled == 0 || !enforce); calls++ {
			_, err := c.DescribeStreamSummary(ctxT(t), &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("s")})
			if err != nil {
				wantAPIError(t, err, ErrLimitExceeded)
				throttled++
			}
		}
		if enforce && (throttled == 0 || s.LimitHits("DescribeStreamSummary") != throttled) {
			t.Fatalf("enforced: %d of %d calls throttled (hits %d)", throttled, calls, s.LimitHits("DescribeStreamSummary"))
		}
		if !enforce && throttled != 0 {
			t.Fatalf("not enforced: %d calls throttled", throttled)
		}
	}
}

func TestShardWriteAndReadLimits(t *testing.T) {
	t.Parallel()
	opts := fast()
	opts.EnforceLimits = true
	_, c := withStream(t, opts, 1)
	// 1 MiB a second: 600 KB records sent back to back are refused within a
	// few calls, however slow the machine (each call would have to take
	// over 0.6 s for the bucket to keep up).
	var err error
	for i := 0; i < 20 && err == nil; i++ {
		_, err = c.PutRecord(ctxT(t), &kinesis.PutRecordInput{StreamName: aws.String("s"), PartitionKey: aws.String("k"), Data: bytes.Repeat([]byte("x"), 600<<10)})
	}
	wantAPIError(t, err, ErrProvisionedThroughput)

	// 1,000 records a second: PutRecords reports the excess entry by entry.
	_, c2 := withStream(t, opts, 1)
	entries := make([]types.PutRecordsRequestEntry, 500)
	for i := range entries {
		entries[i] = types.PutRecordsRequestEntry{PartitionKey: aws.String("k"), Data: []byte("x")}
	}
	failed := 0
	for i := 0; i < 20 && failed == 0; i++ {
		out, err := c2.PutRecords(ctxT(t), &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: entries})
		if err != nil {
			t.Fatal(err)
		}
		failed += int(aws.ToInt32(out.FailedRecordCount))
		for _, r := range out.Records {
			if r.ErrorCode != nil && aws.ToString(r.ErrorCode) != ErrProvisionedThroughput {
				t.Fatalf("error code %s", aws.ToString(r.ErrorCode))
			}
		}
	}
	if failed == 0 {
		t.Fatal("10,000 entries sent back to back: none refused")
	}

	// GetRecords: 5 calls a second per shard.
	it, err := c2.GetShardIterator(ctxT(t), &kinesis.GetShardIteratorInput{StreamName: aws.String("s"), ShardId: aws.String(ShardID(0)), ShardIteratorType: types.ShardIteratorTypeLatest})
	if err != nil {
		t.Fatal(err)
	}
	err = nil
	for i := 0; i < 50 && err == nil; i++ {
		_, err = c2.GetRecords(ctxT(t), &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator})
	}
	wantAPIError(t, err, ErrProvisionedThroughput)
}

// With EnforceLimits, the 6th of 6 GetShardIterator calls in a row on a
// shard is refused; without, none is.
func TestGetShardIteratorLimitWhenEnforced(t *testing.T) {
	t.Parallel()
	for _, enforce := range []bool{false, true} {
		t.Run(fmt.Sprintf("enforced=%t", enforce), func(t *testing.T) {
			opts := fast()
			opts.EnforceLimits = enforce
			const shards = 5
			_, c := withStream(t, opts, shards)
			// Six calls must fit in well under a second; a busy machine gets
			// a fresh shard (and its own five a second) to try again.
			for shard := range shards {
				start := time.Now()
				var errs []error
				for range 6 {
					_, err := c.GetShardIterator(ctxT(t), &kinesis.GetShardIteratorInput{StreamName: aws.String("s"), ShardId: aws.String(ShardID(shard)),
						ShardIteratorType: types.ShardIteratorTypeLatest})
					errs = append(errs, err)
				}
				if time.Since(start) >= 200*time.Millisecond {
					continue
				}
				for i, err := range errs[:5] {
					if err != nil {
						t.Fatalf("call %d: %v", i+1, err)
					}
				}
				if !enforce {
					if errs[5] != nil {
						t.Fatalf("not enforced: 6th call: %v", errs[5])
					}
					return
				}
				wantReadRefused(t, errs[5], ShardID(shard))
				return
			}
			t.Skip("too slow a machine to make 6 calls before a 6th is due, on every shard")
		})
	}
}
