package kvstore

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/fanoutd/fanoutd/checkpoint"
)

// Entry is one shard's checkpoint as All reads it.
type Entry struct {
	Stream, Consumer, Shard string
	Checkpoint              checkpoint.Checkpoint
	// Instance is the instance that wrote it.
	Instance string
}

// maxEntries bounds what All reads: far more shards than a group reads.
const maxEntries = 100_000

// All reads every checkpoint in kv, of every stream and consumer, sorted,
// for operators: it needs no Store (and no fencing), only read access.
func All(ctx context.Context, kv jetstream.KeyValue) ([]Entry, error) {
	var out []Entry
	err := eachCurrent(ctx, kv, "cp.>", func(e jetstream.KeyValueEntry) error {
		parts := strings.Split(strings.TrimPrefix(e.Key(), "cp."), ".")
		if len(parts) != 3 {
			return nil // not a checkpoint key
		}
		cp, instance, err := decodeRecord(e)
		if err != nil {
			return err
		}
		out = append(out, Entry{Stream: unpart(parts[0]), Consumer: unpart(parts[1]), Shard: unpart(parts[2]), Checkpoint: cp, Instance: instance})
		if len(out) > maxEntries {
			return fmt.Errorf("list checkpoints: more than %d in bucket %s", maxEntries, kv.Bucket())
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b Entry) int {
		return strings.Compare(a.Stream+"\x00"+a.Consumer+"\x00"+a.Shard, b.Stream+"\x00"+b.Consumer+"\x00"+b.Shard)
	})
	return out, nil
}

func unpart(s string) string { return strings.ReplaceAll(s, "=2E", ".") }
