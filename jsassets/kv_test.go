package jsassets_test

import (
	"slices"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/fanoutd/fanoutd/internal/testutil"
	"github.com/fanoutd/fanoutd/jsassets"
)

// A missing bucket is created (one value per key); a bucket with one
// replica is warned about, every time it is ensured.
func TestEnsureKVCreates(t *testing.T) {
	t.Parallel()
	nc := connect(t, true)
	js := newJS(t, nc)
	var logs testutil.SyncBuffer
	spec := jsassets.KVSpec{Name: "fanoutd_checkpoints", Storage: jsassets.MemoryStorage, Key: "checkpoint.bucket"}
	for range 2 {
		if _, err := jsassets.EnsureKV(t.Context(), nc, spec, zerolog.New(&logs)); err != nil {
			t.Fatal(err)
		}
	}
	kv, err := js.KeyValue(t.Context(), "fanoutd_checkpoints")
	if err != nil {
		t.Fatal(err)
	}
	st, err := kv.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if c := st.(*jetstream.KeyValueBucketStatus).StreamInfo().Config; c.Storage != jetstream.MemoryStorage || c.Replicas != 1 || c.MaxMsgsPerSubject != 1 {
		t.Fatalf("bucket config %+v", c)
	}
	lines := logLines(t, logs.String(), "key-value bucket has one replica")
	if len(lines) != 2 || lines[0]["level"] != "warn" || lines[0]["key"] != "checkpoint.bucket" {
		t.Fatalf("want two warnings about one replica:\n%s", logs.String())
	}
	if d := differences(t, logs.String()); len(d) != 0 {
		t.Fatalf("differences %q", d)
	}
}

// A bucket that exists is used as it is: one warning per difference.
func TestEnsureKVExisting(t *testing.T) {
	t.Parallel()
	nc := connect(t, true)
	js := newJS(t, nc)
	if _, err := js.CreateKeyValue(t.Context(), jetstream.KeyValueConfig{Bucket: "b", Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	var logs testutil.SyncBuffer
	kv, err := jsassets.EnsureKV(t.Context(), nc, jsassets.KVSpec{Name: "b", Storage: jsassets.MemoryStorage}, zerolog.New(&logs))
	if err != nil {
		t.Fatal(err)
	}
	if kv.Bucket() != "b" {
		t.Fatalf("bucket %s", kv.Bucket())
	}
	if got, want := differences(t, logs.String()), []string{"storage file->memory"}; !slices.Equal(got, want) {
		t.Fatalf("differences %q, want %q:\n%s", got, want, logs.String())
	}
}

// A deleted bucket is created again.
func TestRecreateKV(t *testing.T) {
	t.Parallel()
	nc := connect(t, true)
	js := newJS(t, nc)
	spec := jsassets.KVSpec{Name: "b"}
	if _, err := jsassets.EnsureKV(t.Context(), nc, spec, zerolog.Nop()); err != nil {
		t.Fatal(err)
	}
	if err := js.DeleteKeyValue(t.Context(), "b"); err != nil {
		t.Fatal(err)
	}
	kv, err := jsassets.RecreateKV(t.Context(), nc, spec, testutil.ClusterBound)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(t.Context(), "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
}
