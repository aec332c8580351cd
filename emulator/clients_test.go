package emulator

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Tests that drive the emulator with the AWS CLI and boto3 as users run
// them: independent implementations of the Kinesis protocol, from Debian's
// packages (awscli, python3-boto3; .ci/run installs them). The binaries are
// called by their Debian paths, so that a pyenv or pip copy earlier on PATH
// does not stand in for them.
const (
	debianAWS     = "/usr/bin/aws"
	debianPython3 = "/usr/bin/python3"
)

// cliEnv is the environment a user gets from `fanoutd emulator`'s printed
// lines, in an empty HOME so that no local AWS config takes part.
func cliEnv(t *testing.T, s *Server) []string {
	t.Helper()
	home := t.TempDir()
	env := []string{
		"HOME=" + home,
		"PATH=/usr/bin:/bin",
		"AWS_CONFIG_FILE=" + filepath.Join(home, "config"),
		"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(home, "credentials"),
		"AWS_PAGER=",
		"AWS_EC2_METADATA_DISABLED=true",
	}
	return append(env, s.EnvLines()...)
}

// awsCLI runs the AWS CLI against one emulator.
type awsCLI struct {
	t        *testing.T
	env      []string
	major    int
	baseArgs []string
}

var cliVersionRE = regexp.MustCompile(`aws-cli/(\d+)\.(\d+)\.`)

func newAWSCLI(t *testing.T, s *Server) *awsCLI {
	t.Helper()
	if _, err := os.Stat(debianAWS); err != nil {
		t.Skipf("%s not installed (apt-get install awscli; .ci/run installs it)", debianAWS)
	}
	c := &awsCLI{t: t, env: cliEnv(t, s)}
	out, err := exec.Command(debianAWS, "--version").CombinedOutput()
	m := cliVersionRE.FindStringSubmatch(string(out))
	if err != nil || m == nil {
		t.Fatalf("aws --version: %v: %s", err, out)
	}
	c.major, _ = strconv.Atoi(m[1])
	minor, _ := strconv.Atoi(m[2])
	// AWS_ENDPOINT_URL_KINESIS is read from AWS CLI v2.13 and v1.29 on;
	// older ones (Debian 12 ships 2.9) need --endpoint-url, as the README
	// says.
	if (c.major == 2 && minor < 13) || (c.major == 1 && minor < 29) {
		c.baseArgs = []string{"--endpoint-url", s.URL()}
	}
	c.baseArgs = append(c.baseArgs, "--output", "json")
	return c
}

// run runs `aws kinesis args...` and returns stdout, stderr and the exit code.
func (c *awsCLI) run(args ...string) (string, string, int) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, debianAWS, append(append(append([]string(nil), c.baseArgs...), "kinesis"), args...)...)
	cmd.Env = c.env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			c.t.Fatalf("aws %s: %v", strings.Join(args, " "), err)
		}
		code = ee.ExitCode()
	}
	return stdout.String(), stderr.String(), code
}

// ok runs a command that must succeed and decodes its JSON output into v
// (when v is not nil).
func (c *awsCLI) ok(v any, args ...string) string {
	c.t.Helper()
	out, errOut, code := c.run(args...)
	if code != 0 {
		c.t.Fatalf("aws kinesis %s: exit %d: %s", strings.Join(args, " "), code, errOut)
	}
	if v != nil {
		if err := json.Unmarshal([]byte(out), v); err != nil {
			c.t.Fatalf("aws kinesis %s: output is not JSON: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	return out
}

// fails runs a command that must fail with AWS's error line for op, code
// and message, exactly as the CLI prints an error the service sent.
func (c *awsCLI) fails(op, code, msg string, args ...string) {
	c.t.Helper()
	_, errOut, exit := c.run(args...)
	if exit == 0 {
		c.t.Fatalf("aws kinesis %s succeeded, want %s", strings.Join(args, " "), code)
	}
	want := "An error occurred (" + code + ") when calling the " + op + " operation: " + msg
	if strings.TrimSpace(errOut) != want {
		c.t.Fatalf("aws kinesis %s: stderr\n%s\nwant\n%s", strings.Join(args, " "), strings.TrimSpace(errOut), want)
	}
}

// dataArgs are the arguments that pass --data as raw text: v2 takes base64
// by default.
func (c *awsCLI) dataArgs(data string) []string {
	if c.major >= 2 {
		return []string{"--cli-binary-format", "raw-in-base64-out", "--data", data}
	}
	return []string{"--data", data}
}

func TestAWSCLIWalkthrough(t *testing.T) {
	t.Parallel()
	s := startEmulator(t, fast())
	aws := newAWSCLI(t, s)

	if out := aws.ok(nil, "create-stream", "--stream-name", "walk", "--shard-count", "1"); strings.TrimSpace(out) != "" {
		t.Fatalf("create-stream printed %q, want nothing", out)
	}
	var desc struct {
		StreamDescription struct {
			StreamName, StreamARN, StreamStatus string
			Shards                              []struct{ ShardId string }
		}
	}
	aws.ok(&desc, "describe-stream", "--stream-name", "walk")
	if d := desc.StreamDescription; d.StreamStatus != StatusActive || d.StreamARN != s.StreamARN("walk") || len(d.Shards) != 1 || d.Shards[0].ShardId != "shardId-000000000000" {
		t.Fatalf("describe-stream = %+v", d)
	}
	var put struct{ ShardId, SequenceNumber string }
	aws.ok(&put, append([]string{"put-record", "--stream-name", "walk", "--partition-key", "user1"}, aws.dataArgs("hello, kinesis")...)...)
	if put.ShardId != "shardId-000000000000" || len(put.SequenceNumber) != 56 {
		t.Fatalf("put-record = %+v", put)
	}
	iter := strings.TrimSpace(aws.ok(nil, "get-shard-iterator", "--stream-name", "walk", "--shard-id", put.ShardId,
		"--shard-iterator-type", "TRIM_HORIZON", "--query", "ShardIterator", "--output", "text"))
	var recs struct {
		Records []struct {
			Data, PartitionKey, SequenceNumber string
		}
		NextShardIterator  string
		MillisBehindLatest int64
	}
	aws.ok(&recs, "get-records", "--shard-iterator", iter)
	if len(recs.Records) != 1 || recs.NextShardIterator == "" {
		t.Fatalf("get-records = %+v", recs)
	}
	r := recs.Records[0]
	data, err := base64.StdEncoding.DecodeString(r.Data)
	if err != nil || string(data) != "hello, kinesis" || r.PartitionKey != "user1" || r.SequenceNumber != put.SequenceNumber {
		t.Fatalf("record = %+v (data %q, %v)", r, data, err)
	}

	var limits struct{ ShardLimit, OpenShardCount, OnDemandStreamCount, OnDemandStreamCountLimit int }
	aws.ok(&limits, "describe-limits")
	if limits.ShardLimit != 500 || limits.OpenShardCount != 1 || limits.OnDemandStreamCountLimit != 50 {
		t.Fatalf("describe-limits = %+v", limits)
	}

	aws.ok(nil, "add-tags-to-stream", "--stream-name", "walk", "--tags", "env=dev,team=data")
	aws.ok(nil, "remove-tags-from-stream", "--stream-name", "walk", "--tag-keys", "env")
	var tags struct {
		Tags        []struct{ Key, Value string }
		HasMoreTags bool
	}
	aws.ok(&tags, "list-tags-for-stream", "--stream-name", "walk")
	if len(tags.Tags) != 1 || tags.Tags[0].Key != "team" || tags.Tags[0].Value != "data" || tags.HasMoreTags {
		t.Fatalf("list-tags-for-stream = %+v", tags)
	}
}

func TestAWSCLIConsumersAndResharding(t *testing.T) {
	t.Parallel()
	s := startEmulator(t, fast())
	aws := newAWSCLI(t, s)
	if err := s.CreateStream("orders", 2); err != nil {
		t.Fatal(err)
	}
	arn := s.StreamARN("orders")

	var reg struct {
		Consumer struct{ ConsumerName, ConsumerARN, ConsumerStatus string }
	}
	aws.ok(&reg, "register-stream-consumer", "--stream-arn", arn, "--consumer-name", "app")
	if reg.Consumer.ConsumerName != "app" || !strings.HasPrefix(reg.Consumer.ConsumerARN, arn+"/consumer/app:") {
		t.Fatalf("register-stream-consumer = %+v", reg)
	}
	var desc struct {
		ConsumerDescription struct{ ConsumerStatus, StreamARN string }
	}
	aws.ok(&desc, "describe-stream-consumer", "--consumer-arn", reg.Consumer.ConsumerARN)
	if desc.ConsumerDescription.ConsumerStatus != StatusActive || desc.ConsumerDescription.StreamARN != arn {
		t.Fatalf("describe-stream-consumer = %+v", desc)
	}
	var list struct {
		Consumers []struct{ ConsumerName string }
	}
	aws.ok(&list, "list-stream-consumers", "--stream-arn", arn)
	if len(list.Consumers) != 1 || list.Consumers[0].ConsumerName != "app" {
		t.Fatalf("list-stream-consumers = %+v", list)
	}
	aws.ok(nil, "deregister-stream-consumer", "--consumer-arn", reg.Consumer.ConsumerARN)
	aws.ok(&list, "list-stream-consumers", "--stream-arn", arn)
	if len(list.Consumers) != 0 {
		t.Fatalf("list-stream-consumers after deregister = %+v", list)
	}

	aws.ok(nil, "split-shard", "--stream-name", "orders", "--shard-to-split", "shardId-000000000000",
		"--new-starting-hash-key", "85070591730234615865843651857942052864")
	aws.ok(nil, "merge-shards", "--stream-name", "orders", "--shard-to-merge", "shardId-000000000002",
		"--adjacent-shard-to-merge", "shardId-000000000003")
	var upd struct {
		StreamName                          string
		CurrentShardCount, TargetShardCount int
	}
	aws.ok(&upd, "update-shard-count", "--stream-name", "orders", "--target-shard-count", "4", "--scaling-type", "UNIFORM_SCALING")
	if upd.StreamName != "orders" || upd.CurrentShardCount != 2 || upd.TargetShardCount != 4 {
		t.Fatalf("update-shard-count = %+v", upd)
	}
	var shards struct {
		Shards []struct {
			ShardId             string
			SequenceNumberRange struct{ EndingSequenceNumber string }
		}
	}
	aws.ok(&shards, "list-shards", "--stream-name", "orders", "--shard-filter", "Type=AT_LATEST")
	if len(shards.Shards) != 4 {
		t.Fatalf("list-shards AT_LATEST = %d shards, want 4: %+v", len(shards.Shards), shards)
	}
	for _, sh := range shards.Shards {
		if sh.SequenceNumberRange.EndingSequenceNumber != "" {
			t.Fatalf("open shard %s has an ending sequence number", sh.ShardId)
		}
	}
}

func TestAWSCLIErrorsAsAWSSendsThem(t *testing.T) {
	t.Parallel()
	s := startEmulator(t, fast())
	aws := newAWSCLI(t, s)
	if err := s.CreateStream("s", 1); err != nil {
		t.Fatal(err)
	}
	aws.fails("DescribeStream", ErrResourceNotFound, "Stream nope under account 000000000000 not found.",
		"describe-stream", "--stream-name", "nope")
	aws.fails("CreateStream", ErrResourceInUse, "Stream s under account 000000000000 already exists.",
		"create-stream", "--stream-name", "s", "--shard-count", "1")
	aws.fails("GetShardIterator", ErrResourceNotFound, "Shard shardId-000000000009 in stream s under account 000000000000 does not exist",
		"get-shard-iterator", "--stream-name", "s", "--shard-id", "shardId-000000000009", "--shard-iterator-type", "TRIM_HORIZON")
	aws.fails("IncreaseStreamRetentionPeriod", ErrInvalidArgument, "Maximum allowed retention period is 8760 hours. Requested retention period (9000 hours) is too long.",
		"increase-stream-retention-period", "--stream-name", "s", "--retention-period-hours", "9000")
	aws.fails("UpdateStreamMode", ErrUnknownOperation, "UpdateStreamMode is a Kinesis operation the fanoutd emulator does not serve.",
		"update-stream-mode", "--stream-arn", s.StreamARN("s"), "--stream-mode-details", "StreamMode=ON_DEMAND")
}

// TestBoto3 runs testdata/boto3_client.py: the walkthrough, limits, tags,
// errors and subscribe_to_shard reading events, as a boto3 user writes them.
func TestBoto3(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat(debianPython3); err != nil {
		t.Skipf("%s not installed", debianPython3)
	}
	if out, err := exec.Command(debianPython3, "-c", "import boto3").CombinedOutput(); err != nil {
		t.Skipf("boto3 is not importable by %s (apt-get install python3-boto3; .ci/run installs it): %s", debianPython3, out)
	}
	s := startEmulator(t, fast())
	if err := s.CreateStream("orders", 1); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, debianPython3, filepath.Join("testdata", "boto3_client.py"))
	cmd.Env = append(cliEnv(t, s), "EMULATOR_ENDPOINT="+s.URL())
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("boto3_client.py: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	var got struct {
		Walkthrough string            `json:"walkthrough"`
		Limits      map[string]int    `json:"limits"`
		Tags        map[string]string `json:"tags"`
		NotFound    struct{ Code, Message string }
		Subscribed  []string `json:"subscribed"`
		Continues   bool     `json:"continues"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatalf("boto3_client.py output is not JSON: %v\n%s", err, stdout.String())
	}
	if got.Walkthrough != "hello, boto3" {
		t.Errorf("walkthrough read %q, want %q", got.Walkthrough, "hello, boto3")
	}
	if got.Limits["ShardLimit"] != 500 || got.Limits["OpenShardCount"] != 1 {
		t.Errorf("limits = %v", got.Limits)
	}
	if len(got.Tags) != 1 || got.Tags["team"] != "data" {
		t.Errorf("tags = %v", got.Tags)
	}
	if got.NotFound.Code != ErrResourceNotFound || got.NotFound.Message != "Stream nope under account 000000000000 not found." {
		t.Errorf("describe_stream of a missing stream: %+v", got.NotFound)
	}
	if strings.Join(got.Subscribed, ",") != "hello, boto3,event 1,event 2" || !got.Continues {
		t.Errorf("subscribe_to_shard read %q (continuation %v), want the 3 records in order", got.Subscribed, got.Continues)
	}
}

// The AWS CLI's polling walk meets GetRecords' limits as on AWS: a read
// past the shard's throughput refuses the next call, and an old iterator
// has expired.
func TestAWSCLIPollingLimits(t *testing.T) {
	t.Parallel()
	opts := fast()
	opts.GetRecordsThroughput = 1 << 10 // a 64 KiB read refuses the calls of the next minute
	s := startEmulator(t, opts)
	aws := newAWSCLI(t, s)
	// The CLI retries throttling by default; with one attempt, it says
	// "(reached max retries: 0)" in each error line.
	aws.env = append(aws.env, "AWS_MAX_ATTEMPTS=1")
	if err := s.CreateStream("s", 1); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.PutRecord("s", "k", bytes.Repeat([]byte("x"), 64<<10)); err != nil {
		t.Fatal(err)
	}
	iter := strings.TrimSpace(aws.ok(nil, "get-shard-iterator", "--stream-name", "s", "--shard-id", "shardId-000000000000",
		"--shard-iterator-type", "TRIM_HORIZON", "--query", "ShardIterator", "--output", "text"))
	var recs struct {
		Records           []struct{ Data string }
		NextShardIterator string
	}
	aws.ok(&recs, "get-records", "--shard-iterator", iter)
	if len(recs.Records) != 1 || recs.NextShardIterator == "" {
		t.Fatalf("get-records = %d records, next %q", len(recs.Records), recs.NextShardIterator)
	}
	_, errOut, code := aws.run("get-records", "--shard-iterator", recs.NextShardIterator)
	want := "An error occurred (ProvisionedThroughputExceededException) when calling the GetRecords operation (reached max retries: 0): " +
		"Rate exceeded for Shard - 000000000000/s/shardId-000000000000"
	if code == 0 || strings.TrimSpace(errOut) != want {
		t.Fatalf("get-records after 64 KiB at 1 KiB/s: exit %d, stderr\n%s\nwant\n%s", code, errOut, want)
	}

	s.AdvanceClock(6 * time.Minute)
	_, errOut, code = aws.run("get-records", "--shard-iterator", iter)
	expired := regexp.MustCompile(`^An error occurred \(ExpiredIteratorException\) when calling the GetRecords operation \(reached max retries: 0\): Iterator expired\. ` +
		`The iterator was created at time \w{3} \w{3} \d{2} \d{2}:\d{2}:\d{2} UTC \d{4} while right now it is \w{3} \w{3} \d{2} \d{2}:\d{2}:\d{2} UTC \d{4} ` +
		`which is further in the future than the tolerated delay of 300000 milliseconds\.$`)
	if code == 0 || !expired.MatchString(strings.TrimSpace(errOut)) {
		t.Fatalf("get-records with a 6 minutes old iterator: exit %d, stderr %s", code, errOut)
	}
}
