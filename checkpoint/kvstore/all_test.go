package kvstore

import (
	"context"
	"reflect"
	"testing"

	"github.com/fanoutd/fanoutd/checkpoint"
	"github.com/fanoutd/fanoutd/internal/testutil"
)

// All reads every stream's and consumer's checkpoints, with their writer,
// and skips keys that are not checkpoints.
func TestAll(t *testing.T) {
	kv := kvBucket(t, testutil.StartNATS(t, testutil.NATSOptions{JetStream: true}).ClientURL(), 1)
	ctx := context.Background()
	if got, err := All(ctx, kv); err != nil || len(got) != 0 {
		t.Fatalf("All on an empty bucket = %v, %v", got, err)
	}
	a, b := New(kv, "host-a"), New(kv, "host-b")
	for _, p := range []struct {
		s                       *Store
		stream, consumer, shard string
		cp                      checkpoint.Checkpoint
	}{
		{b, "orders", "app", "shardId-2", checkpoint.Checkpoint{SequenceNumber: "20"}},
		{a, "orders", "app", "shardId-1", checkpoint.Checkpoint{ShardEnded: true}},
		{a, "a.b", "app", "shardId-1", checkpoint.Checkpoint{SequenceNumber: "7", SubSequenceNumber: 3, InAggregate: true}},
	} {
		if err := p.s.Put(ctx, p.stream, p.consumer, p.shard, p.cp); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := kv.PutString(ctx, "other.key", "x"); err != nil {
		t.Fatal(err)
	}
	got, err := All(ctx, kv)
	if err != nil {
		t.Fatal(err)
	}
	var rows [][5]any
	for _, e := range got {
		if e.Checkpoint.UpdatedAt.IsZero() {
			t.Errorf("%s/%s: no UpdatedAt", e.Stream, e.Shard)
		}
		rows = append(rows, [5]any{e.Stream, e.Consumer, e.Shard, e.Checkpoint.SequenceNumber, e.Instance})
	}
	want := [][5]any{
		{"a.b", "app", "shardId-1", "7", "host-a"},
		{"orders", "app", "shardId-1", "", "host-a"},
		{"orders", "app", "shardId-2", "20", "host-b"},
	}
	if !reflect.DeepEqual(rows, want) {
		t.Fatalf("All = %v, want %v", rows, want)
	}
	if !got[0].Checkpoint.InAggregate || got[0].Checkpoint.SubSequenceNumber != 3 || !got[1].Checkpoint.ShardEnded {
		t.Fatalf("All = %+v", got)
	}
}
