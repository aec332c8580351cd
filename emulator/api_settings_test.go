package emulator

import (
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

func wantAPIErrorMsg(t *testing.T, err error, code, msgPart string) {
	t.Helper()
	wantAPIError(t, err, code)
	if !strings.Contains(err.Error(), msgPart) {
		t.Fatalf("error %v does not say %q", err, msgPart)
	}
}

func TestDescribeLimitsCountsShardsAndOnDemandStreams(t *testing.T) {
	t.Parallel()
	s := startEmulator(t, fast())
	c := newClient(t, s)
	if err := s.CreateStream("a", 3); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateOnDemandStream("b"); err != nil {
		t.Fatal(err)
	}
	out, err := c.DescribeLimits(ctxT(t), &kinesis.DescribeLimitsInput{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := aws.ToInt32(out.ShardLimit), int32(500); got != want {
		t.Errorf("ShardLimit = %d, want %d", got, want)
	}
	if got, want := aws.ToInt32(out.OpenShardCount), int32(3+4); got != want {
		t.Errorf("OpenShardCount = %d, want %d", got, want)
	}
	if got, want := aws.ToInt32(out.OnDemandStreamCount), int32(1); got != want {
		t.Errorf("OnDemandStreamCount = %d, want %d", got, want)
	}
	if got, want := aws.ToInt32(out.OnDemandStreamCountLimit), int32(50); got != want {
		t.Errorf("OnDemandStreamCountLimit = %d, want %d", got, want)
	}
}

func TestShardQuotaEnforcedWithLimits(t *testing.T) {
	t.Parallel()
	opts := fast()
	opts.EnforceLimits = true
	opts.Region = "eu-central-1" // quota 200
	s := startEmulator(t, opts)
	c := newClient(t, s)
	_, err := c.CreateStream(ctxT(t), &kinesis.CreateStreamInput{StreamName: aws.String("big"), ShardCount: aws.Int32(201)})
	wantAPIErrorMsg(t, err, ErrLimitExceeded, "This request would exceed the shard limit for the account 000000000000 in eu-central-1. Current shard count for the account: 0. Limit: 200.")
}

func TestStreamTags(t *testing.T) {
	t.Parallel()
	s := startEmulator(t, fast())
	c := newClient(t, s)
	ctx := ctxT(t)
	if _, err := c.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("s"), ShardCount: aws.Int32(1),
		Tags: map[string]string{"team": "data"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AddTagsToStream(ctx, &kinesis.AddTagsToStreamInput{StreamName: aws.String("s"),
		Tags: map[string]string{"env": "dev", "team": "platform"}}); err != nil {
		t.Fatal(err)
	}
	out, err := c.ListTagsForStream(ctx, &kinesis.ListTagsForStreamInput{StreamName: aws.String("s"), Limit: aws.Int32(1)})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Tags) != 1 || aws.ToString(out.Tags[0].Key) != "env" || !aws.ToBool(out.HasMoreTags) {
		t.Fatalf("first page = %+v, more %v; want env and more", out.Tags, aws.ToBool(out.HasMoreTags))
	}
	out, err = c.ListTagsForStream(ctx, &kinesis.ListTagsForStreamInput{StreamName: aws.String("s"), ExclusiveStartTagKey: aws.String("env")})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Tags) != 1 || aws.ToString(out.Tags[0].Value) != "platform" || aws.ToBool(out.HasMoreTags) {
		t.Fatalf("second page = %+v; want team=platform and no more", out.Tags)
	}
	if _, err := c.RemoveTagsFromStream(ctx, &kinesis.RemoveTagsFromStreamInput{StreamName: aws.String("s"), TagKeys: []string{"env", "absent"}}); err != nil {
		t.Fatal(err)
	}
	tags, _ := s.StreamTags("s")
	if len(tags) != 1 || tags["team"] != "platform" {
		t.Fatalf("tags after remove = %v", tags)
	}

	eleven := map[string]string{}
	for i := range 11 {
		eleven[string(rune('a'+i))] = "v"
	}
	_, err = c.AddTagsToStream(ctx, &kinesis.AddTagsToStreamInput{StreamName: aws.String("s"), Tags: eleven})
	wantAPIErrorMsg(t, err, ErrInvalidArgument, "a given request cannot have more than 10 tags")
	_, err = c.AddTagsToStream(ctx, &kinesis.AddTagsToStreamInput{StreamName: aws.String("s"), Tags: map[string]string{"aws:x": "v"}})
	wantAPIErrorMsg(t, err, ErrInvalidArgument, "reserved prefix 'aws:'")
	for i := 0; i < 5; i++ {
		batch := map[string]string{}
		for j := range 10 {
			batch[string(rune('a'+i))+string(rune('a'+j))] = "v"
		}
		_, err = c.AddTagsToStream(ctx, &kinesis.AddTagsToStreamInput{StreamName: aws.String("s"), Tags: batch})
	}
	wantAPIErrorMsg(t, err, ErrInvalidArgument, "cannot have more than 50 tags")
	_, err = c.AddTagsToStream(ctx, &kinesis.AddTagsToStreamInput{StreamName: aws.String("nope"), Tags: map[string]string{"k": "v"}})
	wantAPIErrorMsg(t, err, ErrResourceNotFound, "Stream nope under account 000000000000 not found.")
}

func TestConsumerTagsAtRegistration(t *testing.T) {
	t.Parallel()
	s, c := withStream(t, fast(), 1)
	reg, err := c.RegisterStreamConsumer(ctxT(t), &kinesis.RegisterStreamConsumerInput{StreamARN: aws.String(s.StreamARN("s")),
		ConsumerName: aws.String("app"), Tags: map[string]string{"owner": "me"}})
	if err != nil {
		t.Fatal(err)
	}
	tags, err := s.ConsumerTags(aws.ToString(reg.Consumer.ConsumerARN))
	if err != nil || tags["owner"] != "me" {
		t.Fatalf("consumer tags = %v, %v", tags, err)
	}
}

func TestUpdateMaxRecordSizeAllowsLargeRecords(t *testing.T) {
	t.Parallel()
	s, c := withStream(t, fast(), 1)
	ctx := ctxT(t)
	big := make([]byte, 2<<20)
	_, err := c.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("s"), PartitionKey: aws.String("k"), Data: big})
	wantAPIError(t, err, ErrInvalidArgument)
	_, err = c.UpdateMaxRecordSize(ctx, &kinesis.UpdateMaxRecordSizeInput{StreamARN: aws.String(s.StreamARN("s")), MaxRecordSizeInKiB: aws.Int32(10241)})
	wantAPIErrorMsg(t, err, ErrValidation, "Value '10241' at 'maxRecordSizeInKiB' failed to satisfy constraint: Member must have value less than or equal to 10240")
	if _, err := c.UpdateMaxRecordSize(ctx, &kinesis.UpdateMaxRecordSizeInput{StreamARN: aws.String(s.StreamARN("s")), MaxRecordSizeInKiB: aws.Int32(10240)}); err != nil {
		t.Fatal(err)
	}
	sum, err := c.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("s")})
	if err != nil {
		t.Fatal(err)
	}
	if got := aws.ToInt32(sum.StreamDescriptionSummary.MaxRecordSizeInKiB); got != 10240 {
		t.Fatalf("MaxRecordSizeInKiB = %d, want 10240", got)
	}
	if _, err := c.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("s"), PartitionKey: aws.String("k"), Data: big}); err != nil {
		t.Fatalf("2 MiB record after raising the limit: %v", err)
	}
}

func TestEnhancedMonitoringRetentionEncryption(t *testing.T) {
	t.Parallel()
	_, c := withStream(t, fast(), 1)
	ctx := ctxT(t)
	name := aws.String("s")
	mon, err := c.EnableEnhancedMonitoring(ctx, &kinesis.EnableEnhancedMonitoringInput{StreamName: name,
		ShardLevelMetrics: []types.MetricsName{types.MetricsNameIncomingBytes, types.MetricsNameOutgoingRecords}})
	if err != nil {
		t.Fatal(err)
	}
	if len(mon.CurrentShardLevelMetrics) != 0 || len(mon.DesiredShardLevelMetrics) != 2 {
		t.Fatalf("enable: current %v desired %v", mon.CurrentShardLevelMetrics, mon.DesiredShardLevelMetrics)
	}
	if _, err := c.DisableEnhancedMonitoring(ctx, &kinesis.DisableEnhancedMonitoringInput{StreamName: name,
		ShardLevelMetrics: []types.MetricsName{types.MetricsNameIncomingBytes}}); err != nil {
		t.Fatal(err)
	}
	_, err = c.EnableEnhancedMonitoring(ctx, &kinesis.EnableEnhancedMonitoringInput{StreamName: name, ShardLevelMetrics: []types.MetricsName{"Bogus"}})
	wantAPIError(t, err, ErrValidation)

	if _, err := c.IncreaseStreamRetentionPeriod(ctx, &kinesis.IncreaseStreamRetentionPeriodInput{StreamName: name, RetentionPeriodHours: aws.Int32(48)}); err != nil {
		t.Fatal(err)
	}
	_, err = c.IncreaseStreamRetentionPeriod(ctx, &kinesis.IncreaseStreamRetentionPeriodInput{StreamName: name, RetentionPeriodHours: aws.Int32(30)})
	wantAPIErrorMsg(t, err, ErrInvalidArgument, "Requested retention period (30 hours) for stream s can not be shorter than existing retention period (48 hours). Use DecreaseRetentionPeriod API.")
	_, err = c.DecreaseStreamRetentionPeriod(ctx, &kinesis.DecreaseStreamRetentionPeriodInput{StreamName: name, RetentionPeriodHours: aws.Int32(12)})
	wantAPIErrorMsg(t, err, ErrInvalidArgument, "Minimum allowed retention period is 24 hours. Requested retention period (12 hours) is too short.")
	_, err = c.IncreaseStreamRetentionPeriod(ctx, &kinesis.IncreaseStreamRetentionPeriodInput{StreamName: name, RetentionPeriodHours: aws.Int32(9000)})
	wantAPIErrorMsg(t, err, ErrInvalidArgument, "Maximum allowed retention period is 8760 hours.")

	if _, err := c.StartStreamEncryption(ctx, &kinesis.StartStreamEncryptionInput{StreamName: name, EncryptionType: types.EncryptionTypeKms, KeyId: aws.String("alias/aws/kinesis")}); err != nil {
		t.Fatal(err)
	}
	d, err := c.DescribeStream(ctx, &kinesis.DescribeStreamInput{StreamName: name})
	if err != nil {
		t.Fatal(err)
	}
	sd := d.StreamDescription
	if sd.EncryptionType != types.EncryptionTypeKms || aws.ToString(sd.KeyId) != "alias/aws/kinesis" || aws.ToInt32(sd.RetentionPeriodHours) != 48 ||
		len(sd.EnhancedMonitoring) != 1 || len(sd.EnhancedMonitoring[0].ShardLevelMetrics) != 1 || sd.EnhancedMonitoring[0].ShardLevelMetrics[0] != types.MetricsNameOutgoingRecords {
		t.Fatalf("description = encryption %s key %s retention %d monitoring %+v", sd.EncryptionType, aws.ToString(sd.KeyId), aws.ToInt32(sd.RetentionPeriodHours), sd.EnhancedMonitoring)
	}
	if _, err := c.StopStreamEncryption(ctx, &kinesis.StopStreamEncryptionInput{StreamName: name, EncryptionType: types.EncryptionTypeKms, KeyId: aws.String("alias/aws/kinesis")}); err != nil {
		t.Fatal(err)
	}
	sum, err := c.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: name})
	if err != nil {
		t.Fatal(err)
	}
	if sum.StreamDescriptionSummary.EncryptionType != types.EncryptionTypeNone || sum.StreamDescriptionSummary.KeyId != nil {
		t.Fatalf("after stop: %s %v", sum.StreamDescriptionSummary.EncryptionType, sum.StreamDescriptionSummary.KeyId)
	}
}

// TestStreamStatusLifecycle: CREATING after CreateStream, UPDATING during a
// reshard, DELETING after DeleteStream, with AWS's answers in each state.
func TestStreamStatusLifecycle(t *testing.T) {
	t.Parallel()
	opts := fast()
	opts.StreamCreationDelay = time.Hour
	opts.StreamUpdateDelay = time.Hour
	opts.StreamDeletionDelay = time.Hour
	s := startEmulator(t, opts)
	c := newClient(t, s)
	ctx := ctxT(t)
	name := aws.String("s")
	if _, err := c.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: name, ShardCount: aws.Int32(2)}); err != nil {
		t.Fatal(err)
	}
	status := func() types.StreamStatus {
		t.Helper()
		out, err := c.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: name})
		if err != nil {
			t.Fatal(err)
		}
		return out.StreamDescriptionSummary.StreamStatus
	}
	if got := status(); got != types.StreamStatusCreating {
		t.Fatalf("status after CreateStream = %s, want CREATING", got)
	}
	_, err := c.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: name, PartitionKey: aws.String("k"), Data: []byte("x")})
	wantAPIError(t, err, ErrResourceNotFound)
	_, err = c.ListShards(ctx, &kinesis.ListShardsInput{StreamName: name})
	wantAPIErrorMsg(t, err, ErrResourceInUse, "Stream s under account 000000000000 not ACTIVE, instead in state CREATING")
	_, err = c.RegisterStreamConsumer(ctx, &kinesis.RegisterStreamConsumerInput{StreamARN: aws.String(s.StreamARN("s")), ConsumerName: aws.String("app")})
	wantAPIError(t, err, ErrResourceInUse)

	s.AdvanceClock(time.Hour)
	if got := status(); got != types.StreamStatusActive {
		t.Fatalf("status after the creation delay = %s, want ACTIVE", got)
	}
	if _, err := c.UpdateShardCount(ctx, &kinesis.UpdateShardCountInput{StreamName: name, TargetShardCount: aws.Int32(4), ScalingType: types.ScalingTypeUniformScaling}); err != nil {
		t.Fatal(err)
	}
	if got := status(); got != types.StreamStatusUpdating {
		t.Fatalf("status during a reshard = %s, want UPDATING", got)
	}
	_, err = c.UpdateShardCount(ctx, &kinesis.UpdateShardCountInput{StreamName: name, TargetShardCount: aws.Int32(2), ScalingType: types.ScalingTypeUniformScaling})
	wantAPIErrorMsg(t, err, ErrResourceInUse, "not ACTIVE, instead in state UPDATING")
	if _, err := c.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: name, PartitionKey: aws.String("k"), Data: []byte("x")}); err != nil {
		t.Fatalf("PutRecord while UPDATING: %v", err)
	}
	if _, err := c.ListShards(ctx, &kinesis.ListShardsInput{StreamName: name}); err != nil {
		t.Fatalf("ListShards while UPDATING: %v", err)
	}
	s.AdvanceClock(time.Hour)
	if _, err := c.DeleteStream(ctx, &kinesis.DeleteStreamInput{StreamName: name}); err != nil {
		t.Fatal(err)
	}
	if got := status(); got != types.StreamStatusDeleting {
		t.Fatalf("status after DeleteStream = %s, want DELETING", got)
	}
	s.AdvanceClock(time.Hour)
	_, err = c.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: name})
	wantAPIError(t, err, ErrResourceNotFound)
}

func TestNotServedOperationAnswersUnknownOperation(t *testing.T) {
	t.Parallel()
	s, c := withStream(t, fast(), 1)
	_, err := c.UpdateStreamMode(ctxT(t), &kinesis.UpdateStreamModeInput{StreamARN: aws.String(s.StreamARN("s")),
		StreamModeDetails: &types.StreamModeDetails{StreamMode: types.StreamModeOnDemand}})
	wantAPIErrorMsg(t, err, ErrUnknownOperation, "UpdateStreamMode is a Kinesis operation the fanoutd emulator does not serve.")
	for _, op := range notServed {
		for _, served := range servedOperations() {
			if op == served {
				t.Errorf("%s is both served and not served", op)
			}
		}
	}
}

// servedOperations lists the operations the emulator serves, sorted.
func servedOperations() []string {
	out := []string{"SubscribeToShard"}
	for op := range handlers {
		out = append(out, op)
	}
	sort.Strings(out)
	return out
}
