package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/fanoutd/fanoutd/internal/testutil"
)

// kvBucket creates the bucket "checkpoints" with the given replicas on url.
func kvBucket(t *testing.T, url string, replicas int) jetstream.KeyValue {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.CreateKeyValue(t.Context(), jetstream.KeyValueConfig{Bucket: "checkpoints", Replicas: replicas, Storage: jetstream.FileStorage})
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

// Two instances on one bucket: once the second wrote a shard's checkpoint
// (it took the shard over), the first can never overwrite it; it reads the
// checkpoint again to write once more. On a replicated bucket too (the
// server reports the conflict with another error code there).
func TestKVStore_Fencing(t *testing.T) {
	for _, replicas := range []int{1, 3} {
		t.Run(itoa(replicas)+" replicas", func(t *testing.T) {
			url := testutil.StartNATS(t, testutil.NATSOptions{JetStream: true}).ClientURL()
			if replicas == 3 {
				url = testutil.StartCluster(t, 3).URL()
			}
			kv := kvBucket(t, url, replicas)
			ctx := context.Background()
			a, b := NewKVStore(kv, "a"), NewKVStore(kv, "b")
			if err := a.Put(ctx, "s", "c", "shardId-1", Checkpoint{SequenceNumber: "10"}); err != nil {
				t.Fatal(err)
			}
			if err := a.Put(ctx, "s", "c", "shardId-1", Checkpoint{SequenceNumber: "11"}); err != nil {
				t.Fatal(err)
			}
			// b never read the key: its create is refused.
			if err := b.Put(ctx, "s", "c", "shardId-1", Checkpoint{SequenceNumber: "99"}); !errors.Is(err, ErrFenced) {
				t.Fatalf("blind write by b = %v, want ErrFenced", err)
			}
			// b takes the shard over: it reads, then writes.
			if cp, ok, err := b.Get(ctx, "s", "c", "shardId-1"); err != nil || !ok || cp.SequenceNumber != "11" {
				t.Fatalf("b.Get = %+v %v %v", cp, ok, err)
			}
			if err := b.Put(ctx, "s", "c", "shardId-1", Checkpoint{SequenceNumber: "12"}); err != nil {
				t.Fatal(err)
			}
			// a lost the shard: fenced.
			if err := a.Put(ctx, "s", "c", "shardId-1", Checkpoint{SequenceNumber: "13"}); !errors.Is(err, ErrFenced) {
				t.Fatalf("stale write by a = %v, want ErrFenced", err)
			}
			if cp, _, _ := b.Get(ctx, "s", "c", "shardId-1"); cp.SequenceNumber != "12" {
				t.Fatalf("checkpoint %+v, want b's 12", cp)
			}
			// After a reset, the key is written anew.
			if err := b.Reset(ctx, "s", "c"); err != nil {
				t.Fatal(err)
			}
			// A new owner reads the checkpoint before writing it (a replica may
			// answer a read before it applied the reset).
			var seen string // what the last poll saw, for a failure
			defer func() {
				if t.Failed() {
					t.Logf("last poll: %s", seen)
				}
			}()
			testutil.WaitFor(t, testutil.ClusterBound, "the reset seen", func() bool {
				cps, err := a.List(ctx, "s", "c")
				cp, ok, gerr := a.Get(ctx, "s", "c", "shardId-1")
				seen = fmt.Sprintf("List = %v, %v; Get = %+v, %v, %v", cps, err, cp, ok, gerr)
				return err == nil && len(cps) == 0 && gerr == nil && !ok
			})
			if err := a.Put(ctx, "s", "c", "shardId-1", Checkpoint{ShardEnded: true}); err != nil {
				t.Fatal(err)
			}
		})
	}
}
