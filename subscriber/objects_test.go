package subscriber

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"io"
	"strconv"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/fanoutd/fanoutd/internal/testutil"
	"github.com/fanoutd/fanoutd/relay"
)

func objectEnv(t *testing.T) (jetstream.JetStream, jetstream.ObjectStore) {
	t.Helper()
	ns := testutil.StartNATS(t, testutil.NATSOptions{JetStream: true})
	js := testutil.JetStream(t, ns.ClientURL())
	obs, err := js.CreateObjectStore(context.Background(), jetstream.ObjectStoreConfig{Bucket: "B"})
	if err != nil {
		t.Fatal(err)
	}
	return js, obs
}

func reference(name string, data []byte) *nats.Msg {
	sum := sha256.Sum256(data)
	m := nats.NewMsg("kinesis.orders")
	m.Header.Set(relay.HeaderObjectBucket, "B")
	m.Header.Set(relay.HeaderObjectName, relay.EscapeHeaderValue(name))
	m.Header.Set(relay.HeaderObjectSize, strconv.Itoa(len(data)))
	m.Header.Set(relay.HeaderObjectDigest, "SHA-256="+base64.URLEncoding.EncodeToString(sum[:]))
	return m
}

// Fetch returns the record behind a reference, byte for byte; Open streams
// it; a reference whose size or digest the object does not have is refused.
func TestFetch(t *testing.T) {
	js, obs := objectEnv(t)
	ctx := context.Background()
	data := make([]byte, 700<<10) // several 128 KiB chunks
	for i := range data {
		data[i] = byte(i * 31)
	}
	name := relay.ObjectName("orders", "shardId-000000000000", "4959", 0)
	if _, err := obs.PutBytes(ctx, name, data); err != nil {
		t.Fatal(err)
	}
	m := reference(name, data)
	if !IsObjectReference(m) || IsObjectReference(nats.NewMsg("x")) {
		t.Fatal("IsObjectReference")
	}
	got, err := Fetch(ctx, js, m)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Fetch: %d bytes, %v; want the %d bytes put", len(got), err, len(data))
	}
	r, err := Open(ctx, js, m)
	if err != nil {
		t.Fatal(err)
	}
	streamed, err := io.ReadAll(r)
	r.Close()
	if err != nil || !bytes.Equal(streamed, data) {
		t.Fatalf("Open: %d bytes, %v", len(streamed), err)
	}

	other := reference(name, append([]byte("x"), data[1:]...)) // same size, other digest
	if _, err := Fetch(ctx, js, other); !errors.Is(err, ErrObjectMismatch) {
		t.Fatalf("Fetch with another digest: %v, want ErrObjectMismatch", err)
	}
	short := reference(name, data[:10])
	if _, err := Fetch(ctx, js, short); !errors.Is(err, ErrObjectMismatch) {
		t.Fatalf("Fetch with another size: %v, want ErrObjectMismatch", err)
	}
	missing := reference(relay.ObjectName("orders", "shardId-000000000000", "4960", 0), data)
	if _, err := Fetch(ctx, js, missing); !errors.Is(err, jetstream.ErrObjectNotFound) {
		t.Fatalf("Fetch of a missing object: %v, want ErrObjectNotFound", err)
	}
	bad := reference(name, data)
	bad.Header.Set(relay.HeaderObjectSize, "many")
	if _, err := Fetch(ctx, js, bad); err == nil {
		t.Fatal("Fetch with a bad size header: nil error")
	}
}
