package main

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/fanoutd/fanoutd/internal/testutil"
	"github.com/fanoutd/fanoutd/jsassets"
)

// The README's single-server `nats stream add` makes, on one server, a
// stream that captures the example config's subjects and takes fanoutd's
// fast batches: its flags, read as natscli v0.4.0 reads them, build the
// stream on an in-process server. A flag this test does not know fails it,
// so that the README and this reading stay in step.
func TestReadmeStreamAddWorksOnASingleServer(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var line string
	lines := strings.Split(string(readme), "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "# a single server") && i+1 < len(lines) {
			line = lines[i+1]
		}
	}
	if !strings.HasPrefix(line, "nats stream add ") {
		t.Fatalf("README has no single-server nats stream add under \"# a single server\": %q", line)
	}
	args := strings.Fields(strings.TrimPrefix(line, "nats stream add "))
	cfg := jetstream.StreamConfig{Name: args[0]}
	for i := 1; i < len(args); i++ {
		value := func() string {
			i++
			return strings.Trim(args[i], "'")
		}
		switch args[i] {
		case "--subjects":
			cfg.Subjects = append(cfg.Subjects, value())
		case "--storage":
			if value() == "memory" {
				cfg.Storage = jetstream.MemoryStorage
			}
		case "--replicas":
			if cfg.Replicas, err = strconv.Atoi(value()); err != nil {
				t.Fatal(err)
			}
		case "--dupe-window":
			if cfg.Duplicates, err = time.ParseDuration(value()); err != nil {
				t.Fatal(err)
			}
		case "--allow-fast": // natscli v0.4.0: AllowBatchPublish, "allow_batched"
			cfg.AllowBatchPublish = true
		case "--defaults":
		default:
			t.Fatalf("README's nats stream add has flag %q, unknown to this test", args[i])
		}
	}
	ns := testutil.StartNATS(t, testutil.NATSOptions{JetStream: true})
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, cfg); err != nil {
		t.Fatalf("%s on a single server: %v", line, err)
	}
	// The example config's subjects (deploy/fanoutd.example.yaml).
	c, err := jsassets.CheckCapture(ctx, nc, []string{"kinesis.orders.user1", "clicks.shardId-000000000000"})
	if err != nil {
		t.Fatal(err)
	}
	if !c.Batched || c.Window < 5*time.Minute {
		t.Fatalf("the README's stream: batched %t (not allowed by %v), duplicate window %v", c.Batched, c.Unbatched, c.Window)
	}
}
