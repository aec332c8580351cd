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
	EnforceLimits           bool          `help:"Apply AWS's documented API limits: control-plane calls per second, 1,000 records and 1 MiB a second written per shard, 5 GetRecords a second per shard."`
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
	delay := c.ConsumerActivationDelay
	if delay == 0 {
		delay = -1
	}
	srv, err := emulator.New(emulator.Options{
		Addr:                    c.Listen,
		PlainHTTP:               c.PlainHTTP,
		CAFile:                  c.CAFile,
		Region:                  c.Region,
		SubscriptionLifetime:    c.SubscriptionLifetime,
		ConsumerActivationDelay: delay,
		EnforceLimits:           c.EnforceLimits,
	})
	if err != nil {
		return err
	}
	defer srv.Close()
	for _, sp := range specs {
		if sp.onDemand {
			err = srv.CreateOnDemandStream(sp.name)
		} else {
			err = srv.CreateStream(sp.name, sp.shards)
		}
		if err != nil {
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
	fmt.Fprintf(w, "\nThen, e.g.: aws kinesis list-streams\nPress Ctrl-C to stop.\n")
	<-ctx.Done()
	return nil
}
