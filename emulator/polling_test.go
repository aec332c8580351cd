package emulator

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/fanoutd/fanoutd/internal/testutil"
)

// iterator returns a shard iterator of stream "s".
func iterator(t testing.TB, c *kinesis.Client, shardID string, typ types.ShardIteratorType, seq *string) *string {
	t.Helper()
	out, err := c.GetShardIterator(ctxT(t), &kinesis.GetShardIteratorInput{StreamName: aws.String("s"), ShardId: aws.String(shardID),
		ShardIteratorType: typ, StartingSequenceNumber: seq})
	if err != nil {
		t.Fatalf("get shard iterator %s: %v", shardID, err)
	}
	return out.ShardIterator
}

func getRecords(t testing.TB, c *kinesis.Client, it *string, limit int32) (*kinesis.GetRecordsOutput, error) {
	in := &kinesis.GetRecordsInput{ShardIterator: it}
	if limit > 0 {
		in.Limit = aws.Int32(limit)
	}
	return c.GetRecords(ctxT(t), in)
}

// wantReadRefused asserts err is the refusal AWS sends for GetRecords over a
// shard's read limits.
func wantReadRefused(t testing.TB, err error, shardID string) {
	t.Helper()
	wantAPIError(t, err, ErrProvisionedThroughput)
	if want := "Rate exceeded for Shard - 000000000000/s/" + shardID; !strings.Contains(err.Error(), want) {
		t.Fatalf("error %v does not say %q", err, want)
	}
}

// Every caller's GetRecords calls count against the shard's 5 a second: the
// 6th of 6 calls in a row is refused, whoever makes it, and the shard serves
// again 200 ms later at the earliest. Other shards are not affected.
func TestGetRecordsFiveCallsASecondPerShard(t *testing.T) {
	t.Parallel()
	const shards = 8 // a shard for each try: a slow machine may need several
	s, a := withStream(t, fast(), shards)
	b := newClient(t, s)
	for i := 0; i < shards; i++ {
		shard := ShardID(i)
		itA := iterator(t, a, shard, types.ShardIteratorTypeLatest, nil)
		itB := iterator(t, b, shard, types.ShardIteratorTypeLatest, nil)
		start := time.Now()
		var errs []error
		for call := 0; call < 6; call++ {
			c, it := a, itA
			if call%2 == 1 {
				c, it = b, itB
			}
			_, err := getRecords(t, c, it, 0)
			errs = append(errs, err)
		}
		if time.Since(start) >= 200*time.Millisecond {
			continue // too slow a machine to make 6 calls before a 6th is due: try the next shard
		}
		for call, err := range errs[:5] {
			if err != nil {
				t.Fatalf("call %d of 5 in a row: %v", call+1, err)
			}
		}
		wantReadRefused(t, errs[5], shard)
		if _, err := getRecords(t, a, iterator(t, a, ShardID((i+1)%shards), types.ShardIteratorTypeLatest, nil), 0); err != nil {
			t.Fatalf("another shard: %v", err)
		}
		testutil.WaitFor(t, 5*time.Second, "the shard to serve again", func() bool {
			_, err := getRecords(t, b, itB, 0)
			return err == nil
		})
		if d := time.Since(start); d < 200*time.Millisecond {
			t.Fatalf("the shard served a 6th call %v after the first", d)
		}
		if s.ReadsRefused("s") == 0 {
			t.Fatal("ReadsRefused counts no refusal")
		}
		return
	}
	t.Skip("no shard got 6 calls within 200 ms")
}

// Two callers share a shard's read throughput: a call may read past what is
// left (up to 10 MiB), and then every caller's calls are refused until the
// rate has made up for it.
func TestGetRecordsThroughputSharedByCallers(t *testing.T) {
	t.Parallel()
	// Small figures, so that sending the records takes little of the time
	// the test measures, however busy the machine.
	opts := fast()
	opts.GetRecordsThroughput = 64 << 10
	s, a := withStream(t, opts, 2)
	b := newClient(t, s)
	key0 := keyFor(t, s, "s", ShardID(0))
	data := bytes.Repeat([]byte("x"), 64<<10-len(key0))
	for i := 0; i < 6; i++ { // 384 KiB
		if _, _, err := s.PutRecord("s", key0, data); err != nil {
			t.Fatal(err)
		}
	}
	itA := iterator(t, a, ShardID(0), types.ShardIteratorTypeTrimHorizon, nil)
	itB := iterator(t, b, ShardID(0), types.ShardIteratorTypeTrimHorizon, nil)
	start := time.Now()
	out, err := getRecords(t, a, itA, 0)
	if err != nil || len(out.Records) != 6 {
		t.Fatalf("first read: %v", err)
	}
	// 384 KiB read from a budget of at most 64 KiB at 64 KiB/s: 5 s of debt.
	_, err = getRecords(t, b, itB, 0)
	wantReadRefused(t, err, ShardID(0))
	if _, err := getRecords(t, b, iterator(t, b, ShardID(1), types.ShardIteratorTypeLatest, nil), 0); err != nil {
		t.Fatalf("another shard: %v", err)
	}
	var got *kinesis.GetRecordsOutput
	testutil.WaitFor(t, 15*time.Second, "the shard to serve again", func() bool {
		got, err = getRecords(t, b, itB, 0)
		return err == nil
	})
	if d := time.Since(start); d < 5*time.Second {
		t.Fatalf("the shard served again %v after a 384 KiB read at 64 KiB/s", d)
	}
	if len(got.Records) != 6 {
		t.Fatalf("second caller got %d records", len(got.Records))
	}

	// Unlimited: nothing is refused.
	opts.GetRecordsThroughput = -1
	s, c := withStream(t, opts, 1)
	for i := 0; i < 6; i++ {
		s.PutRecord("s", "k", data)
	}
	for i := 0; i < 3; i++ {
		if _, err := getRecords(t, c, iterator(t, c, ShardID(0), types.ShardIteratorTypeTrimHorizon, nil), 0); err != nil {
			t.Fatalf("unlimited throughput, read %d: %v", i, err)
		}
	}
}

// A call that returns 10 MiB makes the shard refuse the calls of the next
// GetRecordsCooldown; one that returns a byte less does not.
func TestGetRecordsCooldownAfterTenMiB(t *testing.T) {
	t.Parallel()
	opts := fast()
	opts.GetRecordsThroughput = -1
	// Longer than AWS's 5 s: the cooldown starts when the emulator has read
	// the records, and on a busy machine under -race sending and decoding
	// 10 MiB takes seconds; the next call must still come within it.
	const cooldown = 10 * time.Second
	opts.GetRecordsCooldown = cooldown
	s, c := withStream(t, opts, 1)
	ctx := ctxT(t)
	if _, err := c.UpdateMaxRecordSize(ctx, &kinesis.UpdateMaxRecordSizeInput{StreamARN: aws.String(s.StreamARN("s")), MaxRecordSizeInKiB: aws.Int32(10240)}); err != nil {
		t.Fatal(err)
	}
	// With the partition key "k": 10 MiB less a byte, exactly 10 MiB.
	for _, n := range []int{10<<20 - 2, 10<<20 - 1, 1} {
		if _, _, err := s.PutRecord("s", "k", make([]byte, n)); err != nil {
			t.Fatal(err)
		}
	}
	// No Limit: a call returns records up to 10 MiB, always at least one.
	it := iterator(t, c, ShardID(0), types.ShardIteratorTypeTrimHorizon, nil)
	out, err := getRecords(t, c, it, 0)
	if err != nil || len(out.Records) != 1 {
		t.Fatalf("read of 10 MiB less a byte: %v", err)
	}
	start := time.Now()
	out, err = getRecords(t, c, out.NextShardIterator, 0)
	if err != nil || len(out.Records) != 1 || len(out.Records[0].Data) != 10<<20-1 {
		t.Fatalf("read after 10 MiB less a byte: %v", err)
	}
	next := out.NextShardIterator
	_, err = getRecords(t, c, next, 0)
	wantReadRefused(t, err, ShardID(0))
	testutil.WaitFor(t, 2*cooldown, "the shard to serve again", func() bool {
		out, err = getRecords(t, c, next, 0)
		return err == nil
	})
	if d := time.Since(start); d < cooldown {
		t.Fatalf("the shard served again %v after a 10 MiB read", d)
	}
	if len(out.Records) != 1 || len(out.Records[0].Data) != 1 {
		t.Fatalf("after the cooldown: %d records", len(out.Records))
	}
}

// An iterator expires IteratorLifetime after it was issued; each
// NextShardIterator is issued afresh.
func TestIteratorLifetime(t *testing.T) {
	t.Parallel()
	opts := fast()
	opts.IteratorLifetime = 10 * time.Second
	s, c := withStream(t, opts, 1)
	_, seq, _ := s.PutRecord("s", "k", []byte("a"))
	it := iterator(t, c, ShardID(0), types.ShardIteratorTypeTrimHorizon, nil)
	s.AdvanceClock(6 * time.Second)
	out, err := getRecords(t, c, it, 0)
	if err != nil || len(out.Records) != 1 {
		t.Fatalf("6 s old iterator: %v", err)
	}
	s.PutRecord("s", "k", []byte("b"))
	s.AdvanceClock(6 * time.Second)
	_, err = getRecords(t, c, it, 0)
	wantAPIError(t, err, ErrExpiredIterator)
	javaDate := `\w{3} \w{3} \d{2} \d{2}:\d{2}:\d{2} UTC \d{4}`
	re := regexp.MustCompile(`Iterator expired\. The iterator was created at time ` + javaDate + ` while right now it is ` + javaDate +
		` which is further in the future than the tolerated delay of 10000 milliseconds\.$`)
	if !re.MatchString(err.Error()) {
		t.Fatalf("message %q is not AWS's", err)
	}
	out, err = getRecords(t, c, out.NextShardIterator, 0)
	if err != nil || len(out.Records) != 1 || string(out.Records[0].Data) != "b" {
		t.Fatalf("next iterator, 6 s old: %v", err)
	}
	// A new iterator from the last position delivered reads on.
	out, err = getRecords(t, c, iterator(t, c, ShardID(0), types.ShardIteratorTypeAfterSequenceNumber, &seq), 0)
	if err != nil || len(out.Records) != 1 || string(out.Records[0].Data) != "b" {
		t.Fatalf("iterator after %s: %v", seq, err)
	}
}

func childShardsString(cs []types.ChildShard) string {
	var b strings.Builder
	for _, c := range cs {
		fmt.Fprintf(&b, "%s%v[%s..%s] ", aws.ToString(c.ShardId), c.ParentShards,
			aws.ToString(c.HashKeyRange.StartingHashKey), aws.ToString(c.HashKeyRange.EndingHashKey))
	}
	return b.String()
}

// GetRecords reads a closed shard to its end; the call that reaches the end
// has no NextShardIterator and names the children as SubscribeToShard's last
// event does.
func TestGetRecordsShardEndChildShards(t *testing.T) {
	t.Parallel()
	s, c, arn := setupStream(t, fast(), 2)
	k0 := keyFor(t, s, "s", ShardID(0))
	s.PutRecord("s", k0, []byte("x"))
	s.PutRecord("s", k0, []byte("y"))
	child, err := s.MergeShards("s", ShardID(0), ShardID(1))
	if err != nil {
		t.Fatal(err)
	}
	out, err := getRecords(t, c, iterator(t, c, ShardID(0), types.ShardIteratorTypeTrimHorizon, nil), 1)
	if err != nil || out.NextShardIterator == nil || len(out.ChildShards) != 0 {
		t.Fatalf("before the end: next %v, children %s, %v", out.NextShardIterator, childShardsString(out.ChildShards), err)
	}
	out, err = getRecords(t, c, out.NextShardIterator, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Records) != 1 || out.NextShardIterator != nil {
		t.Fatalf("at the end: %d records, next %v", len(out.Records), out.NextShardIterator)
	}
	want := child + "[" + ShardID(0) + " " + ShardID(1) + "][0.." + maxHashKey.String() + "] "
	if got := childShardsString(out.ChildShards); got != want {
		t.Fatalf("children %q, want %q", got, want)
	}
	last := mustSubscribe(t, c, arn, ShardID(0), trimHorizon()).last(5 * time.Second)
	if got := childShardsString(last.ChildShards); got != want {
		t.Fatalf("SubscribeToShard's children %q, GetRecords' %q", got, want)
	}
}

// RegisterStreamConsumer answers LimitExceededException once a stream has
// its maximum of consumers: 20 by default, MaxConsumersPerStream, or what
// SetMaxConsumers set.
func TestConsumerLimitPerStream(t *testing.T) {
	t.Parallel()
	register := func(c *kinesis.Client, s *Server, name string) error {
		_, err := c.RegisterStreamConsumer(ctxT(t), &kinesis.RegisterStreamConsumerInput{
			StreamARN: aws.String(s.StreamARN("s")), ConsumerName: aws.String(name)})
		return err
	}
	s, c := withStream(t, fast(), 1)
	for i := 0; i < 20; i++ {
		if err := register(c, s, fmt.Sprintf("app%d", i)); err != nil {
			t.Fatalf("consumer %d: %v", i+1, err)
		}
	}
	wantAPIErrorMsg(t, register(c, s, "app20"), ErrLimitExceeded, "Stream s under account 000000000000 already has 20 registered consumers, the maximum.")

	opts := fast()
	opts.MaxConsumersPerStream = 1
	s, c = withStream(t, opts, 1)
	if err := register(c, s, "a"); err != nil {
		t.Fatal(err)
	}
	wantAPIErrorMsg(t, register(c, s, "b"), ErrLimitExceeded, "already has 1 registered consumers, the maximum.")
	if err := s.SetMaxConsumers("s", 2); err != nil {
		t.Fatal(err)
	}
	if err := register(c, s, "b"); err != nil {
		t.Fatalf("after SetMaxConsumers 2: %v", err)
	}

	opts.MaxConsumersPerStream = -1
	s, c = withStream(t, opts, 1)
	wantAPIError(t, register(c, s, "a"), ErrLimitExceeded)
	if err := s.SetMaxConsumers("s", 0); err != nil {
		t.Fatal(err)
	}
	wantAPIError(t, register(c, s, "a"), ErrLimitExceeded)
}

// Without SubscribeToShard the endpoint answers it as kinesis-mock or as an
// AWS endpoint without the operation would; consumers still register and
// GetRecords still reads.
func TestSubscribeToShardNotServed(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		how    NotServed
		code   string
		status int
	}{
		{NotServedKinesisMock, "ApiNotImplemented", http.StatusNotFound},
		{NotServedUnknownOperation, ErrUnknownOperation, http.StatusBadRequest},
	} {
		opts := fast()
		opts.WithoutSubscribeToShard = tc.how
		s, c, arn := setupStream(t, opts, 1)
		s.PutRecord("s", "k", []byte("x"))
		_, err := subscribe(t, c, arn, ShardID(0), trimHorizon())
		wantAPIError(t, err, tc.code)
		var re *smithyhttp.ResponseError
		if !errors.As(err, &re) || re.HTTPStatusCode() != tc.status {
			t.Fatalf("%s: %v, want HTTP %d", tc.how, err, tc.status)
		}
		if s.OpCount("SubscribeToShard") != 1 {
			t.Fatalf("%s: SubscribeToShard counted %d times", tc.how, s.OpCount("SubscribeToShard"))
		}
		out, err := getRecords(t, c, iterator(t, c, ShardID(0), types.ShardIteratorTypeTrimHorizon, nil), 0)
		if err != nil || len(out.Records) != 1 {
			t.Fatalf("%s: GetRecords: %v", tc.how, err)
		}
	}
}

// A call returns at most 10,000 records, and Limit takes 1 to 10,000.
func TestGetRecordsAtMostTenThousandRecords(t *testing.T) {
	t.Parallel()
	s, c := withStream(t, fast(), 1)
	for i := 0; i < 10001; i++ {
		if _, _, err := s.PutRecord("s", "k", []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	it := iterator(t, c, ShardID(0), types.ShardIteratorTypeTrimHorizon, nil)
	out, err := getRecords(t, c, it, 0)
	if err != nil || len(out.Records) != 10000 {
		t.Fatalf("no Limit: %v", err)
	}
	if out, err = getRecords(t, c, out.NextShardIterator, 0); err != nil || len(out.Records) != 1 {
		t.Fatalf("the 10,001st: %v", err)
	}
	for _, limit := range []int32{-1, 10001} {
		_, err := c.GetRecords(ctxT(t), &kinesis.GetRecordsInput{ShardIterator: it, Limit: aws.Int32(limit)})
		wantAPIErrorMsg(t, err, ErrInvalidArgument, "Limit must be between 1 and 10000.")
	}
}

// PolledShards counts the shards of a stream that served a GetRecords call;
// GetShardIterator alone does not count.
func TestPolledShards(t *testing.T) {
	s, c := withStream(t, fast(), 3)
	if got := s.PolledShards("s"); got != 0 {
		t.Fatalf("PolledShards before any call = %d, want 0", got)
	}
	ids := []string{"shardId-000000000000", "shardId-000000000001"}
	its := []*string{iterator(t, c, ids[0], types.ShardIteratorTypeTrimHorizon, nil), iterator(t, c, ids[1], types.ShardIteratorTypeTrimHorizon, nil)}
	if got := s.PolledShards("s"); got != 0 {
		t.Fatalf("PolledShards after GetShardIterator = %d, want 0", got)
	}
	if _, err := getRecords(t, c, its[0], 0); err != nil {
		t.Fatal(err)
	}
	if got := s.PolledShards("s"); got != 1 {
		t.Fatalf("PolledShards after one shard's call = %d, want 1", got)
	}
	if _, err := getRecords(t, c, its[1], 0); err != nil {
		t.Fatal(err)
	}
	if got, unknown := s.PolledShards("s"), s.PolledShards("none"); got != 2 || unknown != 0 {
		t.Fatalf("PolledShards = %d (unknown stream: %d), want 2 (0)", got, unknown)
	}
}
