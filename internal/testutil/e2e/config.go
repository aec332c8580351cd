package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// Config renders the daemon's config file for an end-to-end test. The
// fields are what tests vary; the rest is the same for all: JSON logs at
// debug, the HTTP endpoint on a free port, timers short enough for tests.
type Config struct {
	// Streams are the YAML list items of streams:.
	Streams string
	// Region is aws.region (us-east-1 when empty); Endpoint is aws.endpoint
	// (none when empty: the SDK's environment says).
	Region, Endpoint string
	// AWS, NATS and Checkpoint are more lines of their sections, indented.
	AWS, NATS, Checkpoint string
	Servers               []string
	JetStream             bool
	// PublishTimeout is nats.publish_timeout (5s when empty).
	PublishTimeout string
	// CheckpointDir is where checkpoints are written; empty keeps them in
	// JetStream.
	CheckpointDir string
	// CheckpointInterval is checkpoint.interval (0s, after every batch,
	// when empty).
	CheckpointInterval string
	// Coordination are the lines of coordination:, indented (none when empty).
	Coordination string
	// LogLevel is log.level (debug when empty).
	LogLevel string
	// HTTPListen is http.listen (a free port when empty).
	HTTPListen string
	// Timers override the tests' timers, or add to them, by key.
	Timers map[string]string
}

// testTimers run the daemon's waits in milliseconds where AWS allows.
var testTimers = [][2]string{
	{"idle_timeout", "2s"},
	{"shard_sync_interval", "500ms"},
	{"min_resubscribe_interval", "50ms"},
	{"backoff_initial", "20ms"},
	{"backoff_max", "300ms"},
	{"consumer_poll_initial", "20ms"},
	{"consumer_poll_max", "100ms"},
	{"consumer_active_timeout", "20s"},
	{"shutdown_timeout", "5s"},
}

// YAML is the config file's text.
func (c Config) YAML() string {
	var b strings.Builder
	region := c.Region
	if region == "" {
		region = "us-east-1"
	}
	fmt.Fprintf(&b, "aws:\n  region: %s\n", region)
	if c.Endpoint != "" {
		fmt.Fprintf(&b, "  endpoint: %s\n", c.Endpoint)
	}
	b.WriteString(c.AWS)
	fmt.Fprintf(&b, "streams:\n%s\n", strings.TrimSuffix(c.Streams, "\n"))
	servers := make([]string, len(c.Servers))
	for i, s := range c.Servers {
		servers[i] = strconv.Quote(s)
	}
	publish := c.PublishTimeout
	if publish == "" {
		publish = "5s"
	}
	fmt.Fprintf(&b, "nats:\n  servers: [%s]\n  jetstream: %t\n  publish_timeout: %s\n%s", strings.Join(servers, ", "), c.JetStream, publish, c.NATS)
	b.WriteString("checkpoint:\n")
	if c.CheckpointDir != "" {
		fmt.Fprintf(&b, "  dir: %q\n", c.CheckpointDir)
	} else {
		b.WriteString("  store: jetstream\n")
	}
	interval := c.CheckpointInterval
	if interval == "" {
		interval = "0s"
	}
	fmt.Fprintf(&b, "  interval: %s\n%s", interval, c.Checkpoint)
	if c.Coordination != "" {
		b.WriteString("coordination:\n" + c.Coordination)
	}
	level := c.LogLevel
	if level == "" {
		level = "debug"
	}
	listen := c.HTTPListen
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	fmt.Fprintf(&b, "log:\n  level: %s\n  format: json\nhttp:\n  listen: %q\ntimers:\n", level, listen)
	for _, kv := range testTimers {
		v := kv[1]
		if o, ok := c.Timers[kv[0]]; ok {
			v = o
		}
		fmt.Fprintf(&b, "  %s: %s\n", kv[0], v)
	}
	var extra []string
	for k := range c.Timers {
		if !slices.ContainsFunc(testTimers, func(kv [2]string) bool { return kv[0] == k }) {
			extra = append(extra, k)
		}
	}
	slices.Sort(extra)
	for _, k := range extra {
		fmt.Fprintf(&b, "  %s: %s\n", k, c.Timers[k])
	}
	return b.String()
}

// Write writes the config to a new file of the test and returns its path.
func (c Config) Write(t testing.TB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "fanoutd.yaml")
	c.WriteFile(t, path)
	return path
}

// WriteFile writes the config to path (a reload's new file).
func (c Config) WriteFile(t testing.TB, path string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(c.YAML()), 0o600); err != nil {
		t.Fatal(err)
	}
}
