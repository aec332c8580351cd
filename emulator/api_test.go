package emulator

import (
	"context"
	"crypto/md5"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// A user's program configured only by the environment reaches the emulator
// over HTTP/2 and TLS.
func TestSDKFromEnvironmentUsesHTTP2(t *testing.T) {
	s := startEmulator(t, fast())
	for _, line := range s.EnvLines() {
		k, v, _ := strings.Cut(line, "=")
		t.Setenv(k, v)
	}
	cfg, err := config.LoadDefaultConfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var protos []string
	c := kinesis.NewFromConfig(cfg, func(o *kinesis.Options) {
		o.APIOptions = append(o.APIOptions, func(st *middleware.Stack) error {
			return st.Deserialize.Add(middleware.DeserializeMiddlewareFunc("proto", func(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (middleware.DeserializeOutput, middleware.Metadata, error) {
				out, md, err := next.HandleDeserialize(ctx, in)
				if r, ok := out.RawResponse.(*smithyhttp.Response); ok {
					protos = append(protos, r.Proto)
				}
				return out, md, err
			}), middleware.After)
		})
	})
	ctx := ctxT(t)
	if _, err := c.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("orders"), ShardCount: aws.Int32(2)}); err != nil {
		t.Fatal(err)
	}
	out, err := c.ListStreams(ctx, &kinesis.ListStreamsInput{})
	if err != nil {
		t.Fatal(err)
	}
	if got := out.StreamNames; len(got) != 1 || got[0] != "orders" {
		t.Fatalf("streams = %v", got)
	}
	if len(protos) != 2 || protos[0] != "HTTP/2.0" || protos[1] != "HTTP/2.0" {
		t.Fatalf("client saw protocols %v, want HTTP/2.0", protos)
	}
	if got := s.ProtocolCounts(); got["HTTP/2.0"] != 2 || len(got) != 1 {
		t.Fatalf("server saw protocols %v", got)
	}
}

func TestPlainHTTP(t *testing.T) {
	t.Parallel()
	opts := fast()
	opts.PlainHTTP = true
	s := startEmulator(t, opts)
	if !strings.HasPrefix(s.URL(), "http://") || s.CAFile() != "" {
		t.Fatalf("url %s ca %q", s.URL(), s.CAFile())
	}
	c := newClient(t, s)
	if _, err := c.CreateStream(ctxT(t), &kinesis.CreateStreamInput{StreamName: aws.String("a"), ShardCount: aws.Int32(1)}); err != nil {
		t.Fatal(err)
	}
	arn := activeConsumer(t, c, s, "a", "c")
	if _, _, err := s.PutRecord("a", "k", []byte("x")); err != nil {
		t.Fatal(err)
	}
	sb := mustSubscribe(t, c, arn, ShardID(0), trimHorizon())
	recs, _ := sb.collect(1, 5*time.Second)
	if string(recs[0].Data) != "x" {
		t.Fatalf("data %q", recs[0].Data)
	}
}

func TestStreamLifecycle(t *testing.T) {
	t.Parallel()
	s := startEmulator(t, fast())
	c := newClient(t, s)
	ctx := ctxT(t)
	for i := 0; i < 5; i++ {
		if _, err := c.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String(fmt.Sprintf("s%d", i)), ShardCount: aws.Int32(int32(i + 1))}); err != nil {
			t.Fatal(err)
		}
	}
	_, err := c.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("s0"), ShardCount: aws.Int32(1)})
	wantAPIError(t, err, ErrResourceInUse)
	_, err = c.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("bad name"), ShardCount: aws.Int32(1)})
	wantAPIError(t, err, ErrValidation)
	_, err = c.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("zero"), ShardCount: aws.Int32(0)})
	wantAPIError(t, err, ErrInvalidArgument)

	// ListStreams pages through all five.
	var names []string
	in := &kinesis.ListStreamsInput{Limit: aws.Int32(2)}
	for {
		out, err := c.ListStreams(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, out.StreamNames...)
		if !aws.ToBool(out.HasMoreStreams) {
			break
		}
		in = &kinesis.ListStreamsInput{Limit: aws.Int32(2), NextToken: out.NextToken}
	}
	if got := strings.Join(names, ","); got != "s0,s1,s2,s3,s4" {
		t.Fatalf("streams %s", got)
	}

	sum, err := c.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("s2")})
	if err != nil {
		t.Fatal(err)
	}
	d := sum.StreamDescriptionSummary
	if aws.ToString(d.StreamARN) != "arn:aws:kinesis:us-east-1:000000000000:stream/s2" || aws.ToInt32(d.OpenShardCount) != 3 ||
		d.StreamStatus != types.StreamStatusActive || d.StreamModeDetails.StreamMode != types.StreamModeProvisioned ||
		aws.ToInt32(d.RetentionPeriodHours) != 24 || d.StreamCreationTimestamp == nil {
		t.Fatalf("summary %+v", d)
	}
	// by ARN too
	desc, err := c.DescribeStream(ctx, &kinesis.DescribeStreamInput{StreamARN: d.StreamARN, Limit: aws.Int32(2)})
	if err != nil {
		t.Fatal(err)
	}
	if len(desc.StreamDescription.Shards) != 2 || !aws.ToBool(desc.StreamDescription.HasMoreShards) {
		t.Fatalf("describe: %d shards, more=%v", len(desc.StreamDescription.Shards), aws.ToBool(desc.StreamDescription.HasMoreShards))
	}

	if _, err := c.DeleteStream(ctx, &kinesis.DeleteStreamInput{StreamName: aws.String("s2")}); err != nil {
		t.Fatal(err)
	}
	_, err = c.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("s2")})
	var nf *types.ResourceNotFoundException
	wantAPIError(t, err, ErrResourceNotFound)
	if !errorsAs(err, &nf) {
		t.Fatalf("not typed: %T", err)
	}
	_, err = c.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("nope"), PartitionKey: aws.String("k"), Data: []byte("x")})
	wantAPIError(t, err, ErrResourceNotFound)

	// A stream with consumers is deleted only with EnforceConsumerDeletion.
	activeConsumer(t, c, s, "s1", "c")
	_, err = c.DeleteStream(ctx, &kinesis.DeleteStreamInput{StreamName: aws.String("s1")})
	wantAPIError(t, err, ErrResourceInUse)
	if _, err := c.DeleteStream(ctx, &kinesis.DeleteStreamInput{StreamName: aws.String("s1"), EnforceConsumerDeletion: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
}

func TestOnDemandStream(t *testing.T) {
	t.Parallel()
	s := startEmulator(t, fast())
	c := newClient(t, s)
	ctx := ctxT(t)
	if _, err := c.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("od"),
		StreamModeDetails: &types.StreamModeDetails{StreamMode: types.StreamModeOnDemand}}); err != nil {
		t.Fatal(err)
	}
	sum, err := c.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("od")})
	if err != nil {
		t.Fatal(err)
	}
	if sum.StreamDescriptionSummary.StreamModeDetails.StreamMode != types.StreamModeOnDemand || aws.ToInt32(sum.StreamDescriptionSummary.OpenShardCount) != 4 {
		t.Fatalf("summary %+v", sum.StreamDescriptionSummary)
	}
	_, err = c.UpdateShardCount(ctx, &kinesis.UpdateShardCountInput{StreamName: aws.String("od"), TargetShardCount: aws.Int32(8), ScalingType: types.ScalingTypeUniformScaling})
	wantAPIError(t, err, ErrInvalidArgument)
	// The emulator reshards an on-demand stream on its own when told to.
	if err := s.UpdateShardCount("od", 8); err != nil {
		t.Fatal(err)
	}
	ls, err := c.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String("od"), ShardFilter: &types.ShardFilter{Type: types.ShardFilterTypeAtLatest}})
	if err != nil {
		t.Fatal(err)
	}
	if len(ls.Shards) != 8 {
		t.Fatalf("%d open shards", len(ls.Shards))
	}
}

func TestListShards(t *testing.T) {
	t.Parallel()
	s, c := withStream(t, fast(), 5)
	ctx := ctxT(t)
	var ids []string
	in := &kinesis.ListShardsInput{StreamName: aws.String("s"), MaxResults: aws.Int32(2)}
	for {
		out, err := c.ListShards(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		for _, sh := range out.Shards {
			ids = append(ids, aws.ToString(sh.ShardId))
		}
		if out.NextToken == nil {
			break
		}
		in = &kinesis.ListShardsInput{NextToken: out.NextToken, MaxResults: aws.Int32(2)}
	}
	if len(ids) != 5 || ids[0] != "shardId-000000000000" || ids[4] != "shardId-000000000004" {
		t.Fatalf("ids %v", ids)
	}
	_, err := c.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String("s"), NextToken: aws.String("x")})
	wantAPIError(t, err, ErrInvalidArgument)
	_, err = c.ListShards(ctx, &kinesis.ListShardsInput{NextToken: aws.String("garbage")})
	wantAPIError(t, err, ErrInvalidArgument)

	// Uniform hash ranges covering the whole space.
	out, err := c.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String("s")})
	if err != nil {
		t.Fatal(err)
	}
	checkCoverage(t, out.Shards)

	// After a split: filters see the lineage.
	before := time.Now().Add(-time.Second)
	kids, err := s.SplitShard("s", ShardID(1))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		filter types.ShardFilter
		want   int
	}{
		{types.ShardFilter{Type: types.ShardFilterTypeAtLatest}, 6},
		{types.ShardFilter{Type: types.ShardFilterTypeAtTrimHorizon}, 5},
		{types.ShardFilter{Type: types.ShardFilterTypeFromTrimHorizon}, 7},
		{types.ShardFilter{Type: types.ShardFilterTypeAfterShardId, ShardId: aws.String(ShardID(3))}, 3},
		{types.ShardFilter{Type: types.ShardFilterTypeAtTimestamp, Timestamp: aws.Time(before)}, 5},
		{types.ShardFilter{Type: types.ShardFilterTypeFromTimestamp, Timestamp: aws.Time(before)}, 7},
	} {
		out, err := c.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String("s"), ShardFilter: &tc.filter})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Shards) != tc.want {
			t.Errorf("filter %s: %d shards, want %d", tc.filter.Type, len(out.Shards), tc.want)
		}
	}
	out, err = c.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String("s"), ExclusiveStartShardId: aws.String(ShardID(4))})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Shards) != 2 || aws.ToString(out.Shards[0].ShardId) != kids[0] || aws.ToString(out.Shards[0].ParentShardId) != ShardID(1) {
		t.Fatalf("children %+v", out.Shards)
	}
	_, err = c.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String("s"), ShardFilter: &types.ShardFilter{Type: types.ShardFilterTypeAfterShardId}})
	wantAPIError(t, err, ErrInvalidArgument)
}

// checkCoverage asserts that open shards cover the hash space exactly once.
func checkCoverage(t *testing.T, shards []types.Shard) {
	t.Helper()
	type rng struct{ a, b *big.Int }
	var rs []rng
	for _, sh := range shards {
		if sh.SequenceNumberRange.EndingSequenceNumber != nil {
			continue
		}
		a, _ := new(big.Int).SetString(*sh.HashKeyRange.StartingHashKey, 10)
		b, _ := new(big.Int).SetString(*sh.HashKeyRange.EndingHashKey, 10)
		rs = append(rs, rng{a, b})
	}
	for i := 0; i < len(rs); i++ {
		for j := i + 1; j < len(rs); j++ {
			if rs[j].a.Cmp(rs[i].a) < 0 {
				rs[i], rs[j] = rs[j], rs[i]
			}
		}
	}
	next := big.NewInt(0)
	for _, r := range rs {
		if r.a.Cmp(next) != 0 {
			t.Fatalf("gap or overlap at %s (range starts %s)", next, r.a)
		}
		next = new(big.Int).Add(r.b, big.NewInt(1))
	}
	if next.Cmp(new(big.Int).Lsh(big.NewInt(1), 128)) != 0 {
		t.Fatalf("ranges end at %s", next)
	}
}

func TestPutRecordRouting(t *testing.T) {
	t.Parallel()
	_, c := withStream(t, fast(), 4)
	ctx := ctxT(t)
	ls, err := c.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String("s")})
	if err != nil {
		t.Fatal(err)
	}
	owner := func(h *big.Int) string {
		for _, sh := range ls.Shards {
			a, _ := new(big.Int).SetString(*sh.HashKeyRange.StartingHashKey, 10)
			b, _ := new(big.Int).SetString(*sh.HashKeyRange.EndingHashKey, 10)
			if a.Cmp(h) <= 0 && b.Cmp(h) >= 0 {
				return *sh.ShardId
			}
		}
		return ""
	}
	seen := map[string]bool{}
	lastSeq := map[string]*big.Int{}
	shardsHit := map[string]bool{}
	for i := 0; i < 200; i++ {
		pk := fmt.Sprintf("user%d", i)
		out, err := c.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("s"), PartitionKey: aws.String(pk), Data: []byte(pk)})
		if err != nil {
			t.Fatal(err)
		}
		sum := md5.Sum([]byte(pk))
		if want := owner(new(big.Int).SetBytes(sum[:])); aws.ToString(out.ShardId) != want {
			t.Fatalf("%s went to %s, want %s", pk, aws.ToString(out.ShardId), want)
		}
		seq := aws.ToString(out.SequenceNumber)
		if seen[seq] {
			t.Fatalf("duplicate sequence number %s", seq)
		}
		seen[seq] = true
		n, ok := new(big.Int).SetString(seq, 10)
		if !ok {
			t.Fatalf("sequence number %q is not decimal", seq)
		}
		if prev := lastSeq[*out.ShardId]; prev != nil && n.Cmp(prev) <= 0 {
			t.Fatalf("sequence numbers not increasing in %s", *out.ShardId)
		}
		lastSeq[*out.ShardId] = n
		shardsHit[*out.ShardId] = true
	}
	if len(shardsHit) != 4 {
		t.Fatalf("200 keys hit only %d shards", len(shardsHit))
	}
	// Explicit hash keys route by value, not by the partition key.
	out, err := c.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("s"), PartitionKey: aws.String("k"),
		ExplicitHashKey: aws.String("340282366920938463463374607431768211455"), Data: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(out.ShardId) != ShardID(3) {
		t.Fatalf("max hash key went to %s", aws.ToString(out.ShardId))
	}
	out, err = c.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("s"), PartitionKey: aws.String("k"), ExplicitHashKey: aws.String("0"), Data: []byte("x")})
	if err != nil || aws.ToString(out.ShardId) != ShardID(0) {
		t.Fatalf("hash key 0: %v %v", out, err)
	}

	for name, in := range map[string]*kinesis.PutRecordInput{
		"data over 1 MiB":      {PartitionKey: aws.String("k"), Data: make([]byte, 1<<20)},
		"key over 256":         {PartitionKey: aws.String(strings.Repeat("k", 257)), Data: []byte("x")},
		"hash key too big":     {PartitionKey: aws.String("k"), ExplicitHashKey: aws.String("340282366920938463463374607431768211456"), Data: []byte("x")},
		"hash key not decimal": {PartitionKey: aws.String("k"), ExplicitHashKey: aws.String("12a"), Data: []byte("x")},
	} {
		in.StreamName = aws.String("s")
		_, err := c.PutRecord(ctx, in)
		if err == nil {
			t.Fatalf("%s: no error", name)
		}
		wantAPIError(t, err, ErrInvalidArgument)
	}
	// A key of exactly 256 characters and 1 MiB in all is fine.
	if _, err := c.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("s"), PartitionKey: aws.String(strings.Repeat("k", 256)), Data: make([]byte, 1<<20-256)}); err != nil {
		t.Fatal(err)
	}
}

func TestPutRecords(t *testing.T) {
	t.Parallel()
	s, c := withStream(t, fast(), 2)
	ctx := ctxT(t)
	var entries []types.PutRecordsRequestEntry
	for i := 0; i < 10; i++ {
		entries = append(entries, types.PutRecordsRequestEntry{PartitionKey: aws.String(fmt.Sprint(i)), Data: []byte{byte(i)}})
	}
	s.FailPutRecordsEntries(2, ErrProvisionedThroughput)
	out, err := c.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: entries})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToInt32(out.FailedRecordCount) != 2 || aws.ToString(out.Records[0].ErrorCode) != ErrProvisionedThroughput ||
		out.Records[2].SequenceNumber == nil || out.Records[2].ErrorCode != nil {
		t.Fatalf("result %+v", out)
	}
	total := 0
	for _, id := range []string{ShardID(0), ShardID(1)} {
		recs, _ := s.Records("s", id)
		total += len(recs)
	}
	if total != 8 {
		t.Fatalf("%d records stored, want 8", total)
	}
	_, err = c.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: make([]types.PutRecordsRequestEntry, 501)})
	if err == nil {
		t.Fatal("501 entries accepted")
	}
	big := make([]types.PutRecordsRequestEntry, 11) // over the 10 MiB of one request
	for i := range big {
		big[i] = types.PutRecordsRequestEntry{PartitionKey: aws.String("k"), Data: make([]byte, 1000*1000)}
	}
	_, err = c.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: big})
	wantAPIError(t, err, ErrInvalidArgument)
}

func TestGetRecordsPolling(t *testing.T) {
	t.Parallel()
	opts := fast()
	opts.GetRecordsPerSecond = -1 // it reads the shard more than 5 times a second
	s, c := withStream(t, opts, 1)
	ctx := ctxT(t)
	var seqs []string
	for i := 0; i < 5; i++ {
		_, seq, err := s.PutRecord("s", "k", []byte{byte('a' + i)})
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, seq)
	}
	// f arrives a second after e on the emulator's clock; AT_TIMESTAMP half
	// way between starts at f.
	s.AdvanceClock(time.Second)
	_, seqs5, _ := s.PutRecord("s", "k", []byte("f"))
	seqs = append(seqs, seqs5)
	stored, _ := s.Records("s", ShardID(0))
	mid := stored[5].Arrival.Add(-500 * time.Millisecond)

	read := func(in *kinesis.GetShardIteratorInput) string {
		t.Helper()
		in.StreamName, in.ShardId = aws.String("s"), aws.String(ShardID(0))
		it, err := c.GetShardIterator(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		out, err := c.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator})
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		for _, r := range out.Records {
			b.Write(r.Data)
			if r.ApproximateArrivalTimestamp == nil {
				t.Fatal("no arrival timestamp")
			}
		}
		if out.NextShardIterator == nil {
			t.Fatal("open shard has no next iterator")
		}
		return b.String()
	}
	for _, tc := range []struct {
		in   kinesis.GetShardIteratorInput
		want string
	}{
		{kinesis.GetShardIteratorInput{ShardIteratorType: types.ShardIteratorTypeTrimHorizon}, "abcdef"},
		{kinesis.GetShardIteratorInput{ShardIteratorType: types.ShardIteratorTypeLatest}, ""},
		{kinesis.GetShardIteratorInput{ShardIteratorType: types.ShardIteratorTypeAtSequenceNumber, StartingSequenceNumber: aws.String(seqs[2])}, "cdef"},
		{kinesis.GetShardIteratorInput{ShardIteratorType: types.ShardIteratorTypeAfterSequenceNumber, StartingSequenceNumber: aws.String(seqs[2])}, "def"},
		{kinesis.GetShardIteratorInput{ShardIteratorType: types.ShardIteratorTypeAtTimestamp, Timestamp: aws.Time(mid)}, "f"},
	} {
		if got := read(&tc.in); got != tc.want {
			t.Errorf("%s: got %q want %q", tc.in.ShardIteratorType, got, tc.want)
		}
	}
	// Limit and the iterator chain.
	it, _ := c.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String("s"), ShardId: aws.String(ShardID(0)), ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
	out, err := c.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator, Limit: aws.Int32(4)})
	if err != nil || len(out.Records) != 4 {
		t.Fatalf("limit: %v %v", out, err)
	}
	out, err = c.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: out.NextShardIterator})
	if err != nil || len(out.Records) != 2 {
		t.Fatalf("next: %v %v", out, err)
	}
	// Bad inputs.
	_, err = c.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String("s"), ShardId: aws.String(ShardID(7)), ShardIteratorType: types.ShardIteratorTypeLatest})
	wantAPIError(t, err, ErrResourceNotFound)
	_, err = c.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String("s"), ShardId: aws.String(ShardID(0)), ShardIteratorType: types.ShardIteratorTypeAtSequenceNumber, StartingSequenceNumber: aws.String("12x")})
	wantAPIError(t, err, ErrInvalidArgument)
	_, err = c.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String("s"), ShardId: aws.String(ShardID(0)), ShardIteratorType: types.ShardIteratorTypeAtTimestamp})
	wantAPIError(t, err, ErrInvalidArgument)
	_, err = c.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: aws.String("bogus")})
	wantAPIError(t, err, ErrInvalidArgument)
	// Iterators expire after 5 minutes.
	s.AdvanceClock(6 * time.Minute)
	_, err = c.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator})
	wantAPIError(t, err, ErrExpiredIterator)
}

// A sequence number from another shard is rejected.
func TestSequenceNumberFromOtherShard(t *testing.T) {
	t.Parallel()
	s, c := withStream(t, fast(), 2)
	k0, k1 := keyFor(t, s, "s", ShardID(0)), keyFor(t, s, "s", ShardID(1))
	_, seq0, _ := s.PutRecord("s", k0, []byte("x"))
	_, _, _ = s.PutRecord("s", k1, []byte("y"))
	_, err := c.GetShardIterator(ctxT(t), &kinesis.GetShardIteratorInput{StreamName: aws.String("s"), ShardId: aws.String(ShardID(1)),
		ShardIteratorType: types.ShardIteratorTypeAfterSequenceNumber, StartingSequenceNumber: aws.String(seq0)})
	wantAPIError(t, err, ErrInvalidArgument)
}

// keyFor finds a partition key routed to shardID.
func keyFor(t testing.TB, s *Server, stream, shardID string) string {
	t.Helper()
	for i := 0; i < 10000; i++ {
		k := fmt.Sprintf("key%d", i)
		if id, _ := s.ShardForKey(stream, k); id == shardID {
			return k
		}
	}
	t.Fatalf("no key for %s", shardID)
	return ""
}

func TestGetRecordsAtShardEnd(t *testing.T) {
	t.Parallel()
	s, c := withStream(t, fast(), 1)
	ctx := ctxT(t)
	s.PutRecord("s", "k", []byte("x"))
	kids, err := s.SplitShard("s", ShardID(0))
	if err != nil {
		t.Fatal(err)
	}
	it, _ := c.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String("s"), ShardId: aws.String(ShardID(0)), ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
	out, err := c.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Records) != 1 || out.NextShardIterator != nil || len(out.ChildShards) != 2 || aws.ToString(out.ChildShards[0].ShardId) != kids[0] {
		t.Fatalf("at end: %d records, next %v, children %+v", len(out.Records), out.NextShardIterator, out.ChildShards)
	}
}

func TestRetention(t *testing.T) {
	t.Parallel()
	s, c := withStream(t, fast(), 1)
	_, old, _ := s.PutRecord("s", "k", []byte("old"))
	s.AdvanceClock(25 * time.Hour)
	s.PutRecord("s", "k", []byte("new"))
	arn := activeConsumer(t, c, s, "s", "c")
	_, err := subscribe(t, c, arn, ShardID(0), types.StartingPosition{Type: types.ShardIteratorTypeAtSequenceNumber, SequenceNumber: aws.String(old)})
	wantAPIError(t, err, ErrInvalidArgument)
	sb := mustSubscribe(t, c, arn, ShardID(0), trimHorizon())
	recs, _ := sb.collect(1, 5*time.Second)
	if string(recs[0].Data) != "new" {
		t.Fatalf("trim horizon starts at %q", recs[0].Data)
	}
}
