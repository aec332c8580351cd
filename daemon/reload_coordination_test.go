package daemon

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fanoutd/fanoutd/config"
	"github.com/fanoutd/fanoutd/internal/testutil"
)

// A reload that changes the coordination section is rejected, saying so,
// and the running configuration stays; one that leaves it alone applies.
func TestReloadRefusesCoordinationChange(t *testing.T) {
	e := newGroupEnv(t, 2)
	a := e.open("a")
	testutil.WaitFor(t, 30*time.Second, "a reads both shards", func() bool { return reading(a) == 2 })

	path := filepath.Join(t.TempDir(), "fanoutd.yaml")
	write := func(leaseTTL, level string) {
		t.Helper()
		y := fmt.Sprintf(`streams:
  - name: s
    subject: "kinesis.{stream}.{partition_key}"
  - name: other
    subject: "kinesis.{stream}"
aws:
  region: %s
  endpoint: %s
nats:
  servers: [%s]
  jetstream: true
checkpoint:
  store: jetstream
coordination:
  mode: jetstream
  instance: a
  lease_ttl: %s
log:
  level: %s
`, e.emu.Region(), e.emu.URL(), strings.Join(e.c.URLs(), ", "), leaseTTL, level)
		if err := os.WriteFile(path, []byte(y), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	write("10s", "info")
	err := a.Reload(t.Context(), path)
	var ve *config.ValidationError
	if !errors.As(err, &ve) || len(ve.Problems) != 1 || ve.Problems[0].Path != "coordination" ||
		!strings.Contains(ve.Problems[0].Message, "restart fanoutd") {
		t.Fatalf("reload changing coordination.lease_ttl: %v, want a rejection of coordination saying to restart", err)
	}
	running := a.config()
	streams, ttl := len(running.Streams), running.Coordination.LeaseTTL
	if streams != 1 || ttl != config.Duration(3*time.Second) {
		t.Fatalf("after a rejected reload: %d streams, lease TTL %v; want the running 1 stream and 3s", streams, ttl)
	}

	write("3s", "debug")
	if err := a.Reload(t.Context(), path); err != nil {
		t.Fatalf("reload leaving coordination alone: %v", err)
	}
	if streams = len(a.config().Streams); streams != 2 {
		t.Fatalf("after the reload: %d streams, want 2", streams)
	}
	// The reload stored a new configuration: the one in effect before it,
	// which other goroutines may still read, is unchanged.
	if streams, level := len(running.Streams), running.Log.Level; streams != 1 || level != "info" {
		t.Fatalf("the reload edited the configuration it replaced: %d streams, log level %s; want 1 and info", streams, level)
	}
}
