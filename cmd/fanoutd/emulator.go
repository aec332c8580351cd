package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/fanoutd/fanoutd/emulator"
)

// EmulatorCmd runs the local Kinesis endpoint until interrupted.
type EmulatorCmd struct {
	Listen                  string        `default:"127.0.0.1:4567" help:"Address to listen on."`
	Streams                 string        `placeholder:"NAME:SHARDS,..." help:"Streams to create at start, e.g. orders:4,clicks:2 (NAME:on-demand for an on-demand stream)."`
	PlainHTTP               bool          `name:"plain-http" help:"Serve plain HTTP (HTTP/1.1 and cleartext HTTP/2) instead of HTTP/2 over TLS."`
	CAFile                  string        `name:"ca-file" placeholder:"PATH" help:"Where to write the generated CA certificate (PEM); default a temporary file."`
	Region                  string        `default:"us-east-1" help:"Region in ARNs."`
	SubscriptionLifetime    time.Duration `default:"5m" help:"How long a SubscribeToShard stream lives (AWS: 5m)."`
	ConsumerActivationDelay time.Duration `default:"3s" help:"How long a registered consumer stays CREATING."`
	StreamCreationDelay     time.Duration `default:"500ms" help:"How long a stream made by CreateStream stays CREATING (streams from --streams are ACTIVE at once)."`
	StreamUpdateDelay       time.Duration `default:"500ms" help:"How long a stream stays UPDATING after a reshard or a retention, encryption or record size change."`
	StreamDeletionDelay     time.Duration `default:"500ms" help:"How long a deleted stream stays DELETING."`
	IteratorLifetime        time.Duration `default:"5m" help:"How long a shard iterator is valid after it was issued (AWS: 5m)."`
	GetRecordsPerSecond     int           `name:"get-records-per-second" default:"5" help:"GetRecords calls a shard serves a second, shared by every caller (AWS: 5; 0 for unlimited)."`
	GetRecordsThroughput    int           `name:"get-records-throughput" default:"2097152" help:"Bytes a second a shard serves to GetRecords, shared by every caller (AWS: 2 MiB; 0 for unlimited)."`
	GetRecordsCooldown      time.Duration `name:"get-records-cooldown" default:"5s" help:"How long a shard refuses GetRecords after a call that returned 10 MiB (AWS: 5s; 0 for none)."`
	MaxConsumersPerStream   int           `default:"20" help:"Consumers a stream takes; RegisterStreamConsumer past it fails with LimitExceededException (AWS: 20; 0 for none)."`
	WithoutSubscribeToShard string        `enum:",kinesis-mock,unknown-operation" default:"" placeholder:"ANSWER" help:"Do not serve SubscribeToShard; answer it as kinesis-mock does (kinesis-mock: HTTP 404 ApiNotImplemented) or as AWS answers an operation it does not have (unknown-operation: HTTP 400 UnknownOperationException)."`
	EnforceLimits           bool          `help:"Apply AWS's documented API limits: control-plane calls per second, 1,000 records and 1 MiB a second written per shard, 5 GetShardIterator a second per shard (GetRecords' limits always apply)."`
}

type streamSpec struct {
	name     string
	shards   int
	onDemand bool
}

func parseStreams(s string) ([]streamSpec, error) {
	var out []streamSpec
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	for _, part := range strings.Split(s, ",") {
		name, n, ok := strings.Cut(strings.TrimSpace(part), ":")
		if !ok || name == "" {
			return nil, fmt.Errorf("--streams: %q is not NAME:SHARDS", part)
		}
		if n == "on-demand" {
			out = append(out, streamSpec{name: name, onDemand: true})
			continue
		}
		count, err := strconv.Atoi(n)
		if err != nil || count < 1 {
			return nil, fmt.Errorf("--streams: %q: shard count must be a positive integer or on-demand", part)
		}
		out = append(out, streamSpec{name: name, shards: count})
	}
	return out, nil
}

// Run starts the emulator, prints how to reach it and serves until ctx ends.
func (c *EmulatorCmd) Run(ctx context.Context, w io.Writer) error {
	specs, err := parseStreams(c.Streams)
	if err != nil {
		return usageError{err}
	}
	// Zero on the command line means none; in Options it means the default.
	none := func(d time.Duration) time.Duration {
		if d == 0 {
			return -1
		}
		return d
	}
	unlimited := func(n int) int {
		if n == 0 {
			return -1
		}
		return n
	}
	srv, err := emulator.New(emulator.Options{
		Addr:                    c.Listen,
		PlainHTTP:               c.PlainHTTP,
		CAFile:                  c.CAFile,
		Region:                  c.Region,
		SubscriptionLifetime:    c.SubscriptionLifetime,
		ConsumerActivationDelay: none(c.ConsumerActivationDelay),
		StreamCreationDelay:     none(c.StreamCreationDelay),
		StreamUpdateDelay:       none(c.StreamUpdateDelay),
		StreamDeletionDelay:     none(c.StreamDeletionDelay),
		IteratorLifetime:        c.IteratorLifetime,
		GetRecordsPerSecond:     unlimited(c.GetRecordsPerSecond),
		GetRecordsThroughput:    unlimited(c.GetRecordsThroughput),
		GetRecordsCooldown:      none(c.GetRecordsCooldown),
		MaxConsumersPerStream:   unlimited(c.MaxConsumersPerStream),
		WithoutSubscribeToShard: emulator.NotServed(c.WithoutSubscribeToShard),
		EnforceLimits:           c.EnforceLimits,
	})
	if err != nil {
		return err
	}
	defer srv.Close()
	for _, sp := range specs {
		if err := srv.SeedStream(sp.name, sp.shards, sp.onDemand); err != nil {
			return fmt.Errorf("create stream %s: %w", sp.name, err)
		}
	}
	fmt.Fprintf(w, "Kinesis emulator listening on %s\n", srv.URL())
	if f := srv.CAFile(); f != "" {
		fmt.Fprintf(w, "CA certificate: %s\n", f)
	}
	for _, sp := range specs {
		fmt.Fprintf(w, "stream: %s\n", srv.StreamARN(sp.name))
	}
	fmt.Fprintf(w, "\nPoint the AWS CLI and SDKs at it with:\n\n")
	for _, l := range srv.EnvLines() {
		fmt.Fprintf(w, "export %s\n", l)
	}
	fmt.Fprintf(w, "\nThen, e.g.: aws kinesis list-streams\n")
	fmt.Fprintf(w, "Clients older than AWS_ENDPOINT_URL_KINESIS (AWS CLI v2 before 2.13, v1 before 1.29,\n"+
		"botocore/boto3 before 1.31, as in Debian 12) need the endpoint on each call:\n"+
		"  aws --endpoint-url %s kinesis list-streams\n"+
		"  boto3.client(\"kinesis\", endpoint_url=%q)\n", srv.URL(), srv.URL())
	fmt.Fprintf(w, "Press Ctrl-C to stop.\n")
	<-ctx.Done()
	return nil
}

// Help is the detail `fanoutd help emulator` shows under the summary.
func (c *EmulatorCmd) Help() string {
	return `Serves the Kinesis API (JSON 1.1 over HTTP/2 and TLS, SubscribeToShard included)
and prints the environment lines that point the AWS CLI and SDKs at it.

Examples:

    fanoutd emulator --streams orders:2,clicks:on-demand
    aws --endpoint-url https://127.0.0.1:4567 kinesis describe-stream --stream-name orders`
}
