package jsassets_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/fanoutd/fanoutd/internal/testutil"
	"github.com/fanoutd/fanoutd/jsassets"
)

// The records stream is created as the spec says: discard new when full,
// fast batches allowed on a server that has them.
func TestEnsureStreamCreates(t *testing.T) {
	t.Parallel()
	nc := connect(t, true)
	spec := jsassets.StreamSpec{Name: "KINESIS", Subjects: []string{"kinesis.>"}, Replicas: 1, Storage: jsassets.MemoryStorage,
		DuplicateWindow: time.Minute, MaxBytes: 1 << 20}
	if err := jsassets.EnsureStream(t.Context(), nc, spec, zerolog.Nop()); err != nil {
		t.Fatal(err)
	}
	s, err := newJS(t, nc).Stream(t.Context(), "KINESIS")
	if err != nil {
		t.Fatal(err)
	}
	c := s.CachedInfo().Config
	if !slices.Equal(c.Subjects, spec.Subjects) || c.Replicas != 1 || c.Storage != jetstream.MemoryStorage || c.Duplicates != time.Minute ||
		c.MaxBytes != 1<<20 || c.MaxMsgs != -1 || c.Discard != jetstream.DiscardNew || !c.AllowBatchPublish {
		t.Fatalf("stream config %+v", c)
	}
}

// A stream that exists is used as it is: one warning per setting that
// differs, none for the settings that match.
func TestEnsureStreamExisting(t *testing.T) {
	t.Parallel()
	nc := connect(t, true)
	if _, err := newJS(t, nc).CreateStream(t.Context(), jetstream.StreamConfig{Name: "KINESIS", Subjects: []string{"kinesis.>"},
		Storage: jetstream.FileStorage, Duplicates: time.Minute}); err != nil {
		t.Fatal(err)
	}
	var logs testutil.SyncBuffer
	spec := jsassets.StreamSpec{Name: "KINESIS", Subjects: []string{"kinesis.>", "other.>"}, Replicas: 1, Storage: jsassets.MemoryStorage,
		DuplicateWindow: time.Minute, Key: "nats.stream"}
	if err := jsassets.EnsureStream(t.Context(), nc, spec, zerolog.New(&logs)); err != nil {
		t.Fatal(err)
	}
	got := differences(t, logs.String())
	if want := []string{"subjects kinesis.>->kinesis.>,other.>", "storage file->memory"}; !slices.Equal(got, want) {
		t.Fatalf("differences %q, want %q:\n%s", got, want, logs.String())
	}
	for _, m := range logLines(t, logs.String(), "existing JetStream asset differs from config") {
		if m["asset"] != "stream" || m["name"] != "KINESIS" || m["key"] != "nats.stream" {
			t.Fatalf("warning %v", m)
		}
	}
	// No duplicate window configured: the stream's is as good as any.
	logs = testutil.SyncBuffer{}
	spec.Subjects, spec.Storage, spec.DuplicateWindow = []string{"kinesis.>"}, jsassets.FileStorage, 0
	if err := jsassets.EnsureStream(t.Context(), nc, spec, zerolog.New(&logs)); err != nil {
		t.Fatal(err)
	}
	if got := differences(t, logs.String()); len(got) != 0 {
		t.Fatalf("differences %q, want none", got)
	}
	s, err := newJS(t, nc).Stream(t.Context(), "KINESIS")
	if err != nil {
		t.Fatal(err)
	}
	if c := s.CachedInfo().Config; c.Storage != jetstream.FileStorage || len(c.Subjects) != 1 {
		t.Fatalf("the existing stream was changed: %+v", c)
	}
}

// CheckCapture names the subjects no stream captures, the first stream's
// duplicate window, and the streams that do not allow fast batches.
func TestCheckCapture(t *testing.T) {
	t.Parallel()
	nc := connect(t, true)
	js := newJS(t, nc)
	for _, c := range []jetstream.StreamConfig{
		{Name: "A", Subjects: []string{"a.>"}, Duplicates: 3 * time.Minute, AllowBatchPublish: true},
		{Name: "B", Subjects: []string{"b.>"}},
	} {
		if _, err := js.CreateStream(t.Context(), c); err != nil {
			t.Fatal(err)
		}
	}
	c, err := jsassets.CheckCapture(t.Context(), nc, []string{"a.x", "a.y"})
	if err != nil || c.Window != 3*time.Minute || !c.Batched || len(c.Unbatched) != 0 {
		t.Fatalf("CheckCapture(a.x, a.y) = %+v, %v", c, err)
	}
	c, err = jsassets.CheckCapture(t.Context(), nc, []string{"a.x", "b.x"})
	if err != nil || c.Batched || !slices.Equal(c.Unbatched, []string{"B"}) {
		t.Fatalf("CheckCapture(a.x, b.x) = %+v, %v", c, err)
	}
	_, err = jsassets.CheckCapture(t.Context(), nc, []string{"a.x", "c.x", "d.x"})
	nce, ok := errors.AsType[*jsassets.NotCapturedError](err)
	if !ok || !slices.Equal(nce.Subjects, []string{"c.x", "d.x"}) {
		t.Fatalf("CheckCapture(a.x, c.x, d.x): %v, want a NotCapturedError for c.x, d.x", err)
	}
}

// Without JetStream, CheckCapture says so.
func TestCheckCaptureNoJetStream(t *testing.T) {
	t.Parallel()
	nc := connect(t, false)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	_, err := jsassets.CheckCapture(ctx, nc, []string{"a.x"})
	if err == nil || errors.As(err, new(*jsassets.NotCapturedError)) || !strings.Contains(err.Error(), "the NATS server has no JetStream") {
		t.Fatalf("CheckCapture without JetStream: %v", err)
	}
}
