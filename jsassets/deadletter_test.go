package jsassets_test

import (
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/fanoutd/fanoutd/internal/testutil"
	"github.com/fanoutd/fanoutd/jsassets"
)

// The dead-letter stream is created for the subjects (discard old, kept
// for MaxAge); one replica is warned about. Ensuring it again, as another
// instance starting at the same moment does, succeeds.
func TestEnsureDeadLetterStream(t *testing.T) {
	t.Parallel()
	nc := connect(t, true)
	var logs testutil.SyncBuffer
	spec := jsassets.DeadLetterStreamSpec{Name: jsassets.DefaultDeadLetterStream, MaxAge: time.Hour, Key: "nats.dead_letter_stream"}
	if err := jsassets.EnsureDeadLetterStream(t.Context(), nc, spec, []string{"dl.*"}, zerolog.New(&logs)); err != nil {
		t.Fatal(err)
	}
	s, err := newJS(t, nc).Stream(t.Context(), jsassets.DefaultDeadLetterStream)
	if err != nil {
		t.Fatal(err)
	}
	c := s.CachedInfo().Config
	if c.Storage != jetstream.FileStorage || c.Replicas != 1 || c.MaxAge != time.Hour || c.Discard != jetstream.DiscardOld ||
		len(c.Subjects) != 1 || c.Subjects[0] != "dl.*" {
		t.Fatalf("dead-letter stream config %+v", c)
	}
	lines := logLines(t, logs.String(), "created the dead-letter stream with one replica")
	if len(lines) != 1 || lines[0]["level"] != "warn" || !strings.Contains(lines[0]["hint"].(string), "nats.dead_letter_stream.replicas") {
		t.Fatalf("want one warning about one replica:\n%s", logs.String())
	}
	if err := jsassets.EnsureDeadLetterStream(t.Context(), nc, spec, []string{"dl.*"}, zerolog.Nop()); err != nil {
		t.Fatalf("again: %v", err)
	}
}

// A stream of that name that does not capture the dead letters is an
// error that says what to change.
func TestEnsureDeadLetterStreamConflict(t *testing.T) {
	t.Parallel()
	nc := connect(t, true)
	if _, err := newJS(t, nc).CreateStream(t.Context(), jetstream.StreamConfig{Name: "DL", Subjects: []string{"other.>"}}); err != nil {
		t.Fatal(err)
	}
	spec := jsassets.DeadLetterStreamSpec{Name: "DL", Key: "nats.dead_letter_stream"}
	err := jsassets.EnsureDeadLetterStream(t.Context(), nc, spec, []string{"dl.*"}, zerolog.Nop())
	if err == nil || !strings.Contains(err.Error(), "set nats.dead_letter_stream.name to another name") {
		t.Fatalf("EnsureDeadLetterStream into another stream: %v", err)
	}
}
