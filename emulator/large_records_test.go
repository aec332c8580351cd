package emulator

import (
	"bytes"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// After UpdateMaxRecordSize to 10 MiB, PutRecord and PutRecords take records
// up to the stream's limit (PutRecords up to 10 MiB per request, as the API
// reference says), and SubscribeToShard delivers each large record byte for
// byte, alone in its event (an event holds about 1 MiB of records, but
// always at least one), in order with the small ones around it.
func TestLargeRecordsUpToMaxRecordSize(t *testing.T) {
	s, c, arn := setupStream(t, fast(), 1)
	ctx := ctxT(t)
	if _, err := c.UpdateMaxRecordSize(ctx, &kinesis.UpdateMaxRecordSizeInput{StreamARN: aws.String(s.StreamARN("s")), MaxRecordSizeInKiB: aws.Int32(10240)}); err != nil {
		t.Fatal(err)
	}
	fill := func(n int, seed byte) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i*13) + seed
		}
		return b
	}
	tenMiB := fill(10<<20-1, 1) // with the partition key "k": exactly 10 MiB
	want := [][]byte{[]byte("small 0"), tenMiB, []byte("small 1"), fill(3<<20, 2), []byte("small 2")}
	for _, data := range want[:4] {
		if _, err := c.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("s"), PartitionKey: aws.String("k"), Data: data}); err != nil {
			t.Fatalf("PutRecord of %d bytes: %v", len(data), err)
		}
	}
	if _, err := c.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("s"), PartitionKey: aws.String("k"), Data: append(tenMiB, 0)}); err == nil {
		t.Fatal("PutRecord of 10 MiB + 1 byte: accepted")
	}
	out, err := c.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: []types.PutRecordsRequestEntry{
		{PartitionKey: aws.String("k"), Data: want[4]},
		{PartitionKey: aws.String("k"), Data: tenMiB[:8<<20]},
	}})
	if err != nil || aws.ToInt32(out.FailedRecordCount) != 0 {
		t.Fatalf("PutRecords of 8 MiB: %v", err)
	}
	want = append(want, tenMiB[:8<<20])

	sub := mustSubscribe(t, c, arn, ShardID(0), trimHorizon())
	var got [][]byte
	deadline := time.Now().Add(20 * time.Second)
	for len(got) < len(want) {
		ev, ok := sub.next(time.Until(deadline))
		if !ok {
			t.Fatalf("stream ended after %d records: %v", len(got), sub.stream.Err())
		}
		for _, r := range ev.Records {
			if len(r.Data) > 1<<20 && len(ev.Records) != 1 {
				t.Fatalf("a record of %d bytes shares its event with %d others", len(r.Data), len(ev.Records)-1)
			}
			got = append(got, r.Data)
		}
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("record %d: %d bytes, want %d bytes as put", i, len(got[i]), len(want[i]))
		}
	}
}
