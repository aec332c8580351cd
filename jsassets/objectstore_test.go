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

// Without JetStream on the server, EnsureObjectStore says so with
// ErrNoJetStream (the daemon then applies the dead-letter policy).
func TestEnsureObjectStoreNoJetStream(t *testing.T) {
	t.Parallel()
	nc := connect(t, false)
	_, err := jsassets.EnsureObjectStore(context.Background(), nc, jsassets.ObjectStoreSpec{Bucket: jsassets.DefaultObjectBucket}, zerolog.Nop())
	if !errors.Is(err, jsassets.ErrNoJetStream) {
		t.Fatalf("EnsureObjectStore: %v, want ErrNoJetStream", err)
	}
	// A subscriber on ">" takes the API request, so nothing answers: the
	// probe's timeout means no JetStream too.
	if _, err := nc.SubscribeSync(">"); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	_, err = jsassets.EnsureObjectStore(context.Background(), nc, jsassets.ObjectStoreSpec{Bucket: jsassets.DefaultObjectBucket, Probe: 300 * time.Millisecond}, zerolog.Nop())
	if !errors.Is(err, jsassets.ErrNoJetStream) || !strings.Contains(err.Error(), "no JetStream answered within 300ms") {
		t.Fatalf("EnsureObjectStore with a \">\" subscriber: %v, want ErrNoJetStream after the probe", err)
	}
}

// The bucket is created as the spec says; one replica is warned about.
func TestEnsureObjectStoreCreates(t *testing.T) {
	t.Parallel()
	nc := connect(t, true)
	var logs testutil.SyncBuffer
	spec := jsassets.ObjectStoreSpec{Bucket: "B", Storage: jsassets.MemoryStorage, MaxAge: time.Hour, Key: "nats.object_store"}
	obs, err := jsassets.EnsureObjectStore(t.Context(), nc, spec, zerolog.New(&logs))
	if err != nil {
		t.Fatal(err)
	}
	st, err := obs.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if st.Storage() != jetstream.MemoryStorage || st.Replicas() != 1 || st.TTL() != time.Hour {
		t.Fatalf("bucket: storage %v, replicas %d, ttl %v", st.Storage(), st.Replicas(), st.TTL())
	}
	lines := logLines(t, logs.String(), "created the Object Store bucket for large records with one replica")
	if len(lines) != 1 || lines[0]["level"] != "warn" || !strings.Contains(lines[0]["hint"].(string), "nats.object_store.replicas") {
		t.Fatalf("no warning about one replica:\n%s", logs.String())
	}
}

// An existing bucket is used as it is; each difference is one warning.
func TestEnsureObjectStoreExisting(t *testing.T) {
	t.Parallel()
	nc := connect(t, true)
	var logs testutil.SyncBuffer
	spec := jsassets.ObjectStoreSpec{Bucket: "B", Replicas: 1, MaxAge: time.Hour}
	if _, err := jsassets.EnsureObjectStore(context.Background(), nc, spec, zerolog.New(&logs)); err != nil {
		t.Fatal(err)
	}
	spec.MaxAge = 2 * time.Hour
	spec.Storage = jsassets.MemoryStorage
	if _, err := jsassets.EnsureObjectStore(context.Background(), nc, spec, zerolog.New(&logs)); err != nil {
		t.Fatal(err)
	}
	got := differences(t, logs.String())
	slices.Sort(got)
	if want := []string{"max_age 1h0m0s->2h0m0s", "storage file->memory"}; !slices.Equal(got, want) {
		t.Fatalf("differences %q, want %q:\n%s", got, want, logs.String())
	}
}

// OpenOnly creates nothing: a missing bucket is ErrBucketMissing and
// leaves no stream behind; an existing one opens.
func TestEnsureObjectStoreOpenOnly(t *testing.T) {
	t.Parallel()
	nc := connect(t, true)
	spec := jsassets.ObjectStoreSpec{Bucket: "B", Replicas: 1, OpenOnly: true}
	if _, err := jsassets.EnsureObjectStore(t.Context(), nc, spec, zerolog.Nop()); !errors.Is(err, jsassets.ErrBucketMissing) {
		t.Fatalf("EnsureObjectStore(OpenOnly) of a missing bucket: %v, want ErrBucketMissing", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Stream(t.Context(), "OBJ_B"); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("stream OBJ_B after OpenOnly: %v, want none", err)
	}
	spec.OpenOnly = false
	if _, err := jsassets.EnsureObjectStore(t.Context(), nc, spec, zerolog.Nop()); err != nil {
		t.Fatal(err)
	}
	spec.OpenOnly = true
	if _, err := jsassets.EnsureObjectStore(t.Context(), nc, spec, zerolog.Nop()); err != nil {
		t.Fatalf("EnsureObjectStore(OpenOnly) of an existing bucket: %v", err)
	}
}
