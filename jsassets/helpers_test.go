package jsassets_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/fanoutd/fanoutd/internal/testutil"
)

// connect starts a NATS server (with JetStream when js) and connects to it.
func connect(t *testing.T, js bool) *nats.Conn {
	t.Helper()
	ns := testutil.StartNATS(t, testutil.NATSOptions{JetStream: js})
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func newJS(t *testing.T, nc *nats.Conn) jetstream.JetStream {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// logLines are the JSON log lines in logs with the message msg.
func logLines(t *testing.T, logs string, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.SplitSeq(strings.TrimSpace(logs), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if m["message"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// differences are the settings the "differs" warnings in logs name, as
// "setting have->want".
func differences(t *testing.T, logs string) []string {
	t.Helper()
	var out []string
	for _, m := range logLines(t, logs, "existing JetStream asset differs from config") {
		if m["level"] != "warn" {
			t.Errorf("level %v, want warn", m["level"])
		}
		out = append(out, m["setting"].(string)+" "+m["have"].(string)+"->"+m["want"].(string))
	}
	return out
}
