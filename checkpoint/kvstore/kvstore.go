// Package kvstore keeps checkpoints in a NATS JetStream key-value bucket,
// shared by every instance of a group, with compare-and-set writes.
package kvstore

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/fanoutd/fanoutd/checkpoint"
)

// Store keeps checkpoints in a NATS JetStream key-value bucket, one key
// per (stream, consumer, shard), shared by every instance of a group. Every
// write is a compare-and-set on the revision this store itself last wrote
// or read with Get (fencing): an instance that lost a shard can never
// overwrite the new owner's checkpoint. A shard's new owner reads the
// checkpoint (Get) while holding its lease, before its first write. List
// reads for display and claiming, and never changes what a write is
// compared with.
type Store struct {
	kv       jetstream.KeyValue
	instance string
	// writer marks this store's writes, unique per process: a write whose
	// answer was lost (a timeout, a leader change) is recognised as this
	// store's own when the next write finds the key moved.
	writer string

	// locks serialize the Gets and Puts of one key, so that this store never
	// fences itself (striped, as in FileStore).
	seed  maphash.Seed
	locks [64]sync.Mutex

	mu     sync.Mutex
	revs   map[string]uint64 // key -> revision last written or read by Get (0: read absent)
	closed atomic.Bool
}

var _ checkpoint.Store = (*Store)(nil)

// New returns a Store on kv; instance names the writer in each
// checkpoint (for operators).
func New(kv jetstream.KeyValue, instance string) *Store {
	return &Store{kv: kv, instance: instance, writer: rand.Text(), seed: maphash.MakeSeed(), revs: map[string]uint64{}}
}

// kvRecord is the JSON value of each key. A checkpoint inside a KPL
// aggregate has no sequence_number but an aggregate_sequence_number, so
// that a binary that does not know sub-sequences refuses it instead of
// resuming after the whole aggregate.
type kvRecord struct {
	SequenceNumber    string    `json:"sequence_number,omitempty"`
	AggregateSequence string    `json:"aggregate_sequence_number,omitempty"`
	SubSequence       int64     `json:"sub_sequence_number,omitempty"`
	ShardEnded        bool      `json:"shard_ended,omitempty"`
	UpdatedAt         time.Time `json:"updated_at"`
	StreamCreated     time.Time `json:"stream_created,omitzero"`
	Instance          string    `json:"instance,omitempty"`
	Writer            string    `json:"writer,omitempty"`
}

// kvPart escapes a key part: Kinesis names may hold '.', the KV token
// separator; '=' is allowed in KV keys and never in Kinesis names.
func kvPart(s string) string { return strings.ReplaceAll(s, ".", "=2E") }

func kvPrefix(stream, consumer string) string {
	return "cp." + kvPart(stream) + "." + kvPart(consumer) + "."
}

func kvKey(stream, consumer, shardID string) string {
	return kvPrefix(stream, consumer) + kvPart(shardID)
}

func decodeKV(e jetstream.KeyValueEntry) (checkpoint.Checkpoint, error) {
	cp, _, err := decodeRecord(e)
	return cp, err
}

// decodeRecord is decodeKV, and also the instance that wrote the entry.
func decodeRecord(e jetstream.KeyValueEntry) (_ checkpoint.Checkpoint, instance string, _ error) {
	var r kvRecord
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		return checkpoint.Checkpoint{}, "", fmt.Errorf("corrupt checkpoint %s in bucket %s (revision %d): %v; fix or delete the key", e.Key(), e.Bucket(), e.Revision(), err)
	}
	inAggregate := r.AggregateSequence != ""
	seq := r.SequenceNumber
	if inAggregate {
		seq = r.AggregateSequence
	}
	if (seq == "" && !r.ShardEnded) || (inAggregate && r.SequenceNumber != "") {
		return checkpoint.Checkpoint{}, "", fmt.Errorf("corrupt checkpoint %s in bucket %s (revision %d): no sequence number, or two", e.Key(), e.Bucket(), e.Revision())
	}
	return checkpoint.Checkpoint{SequenceNumber: seq, SubSequenceNumber: r.SubSequence, InAggregate: inAggregate, ShardEnded: r.ShardEnded,
		UpdatedAt: r.UpdatedAt, StreamCreated: r.StreamCreated}, r.Instance, nil
}

// eachCurrent calls each with every current entry of kv under filter (a
// subject filter of keys), in turn, and returns once all were seen.
func eachCurrent(ctx context.Context, kv jetstream.KeyValue, filter string, each func(jetstream.KeyValueEntry) error) error {
	w, err := kv.Watch(ctx, filter, jetstream.IgnoreDeletes())
	if err != nil {
		return fmt.Errorf("list checkpoints: %w", err)
	}
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("list checkpoints: %w", ctx.Err())
		case e, ok := <-w.Updates():
			if !ok {
				return errors.New("list checkpoints: watcher closed")
			}
			if e == nil { // every current value was delivered
				return nil
			}
			if err := each(e); err != nil {
				return err
			}
		}
	}
}

func (s *Store) check(ctx context.Context) error {
	if s.closed.Load() {
		return checkpoint.ErrClosed
	}
	return ctx.Err()
}

// Get implements Store, and remembers the key's revision for the next Put.
func (s *Store) Get(ctx context.Context, stream, consumer, shardID string) (checkpoint.Checkpoint, bool, error) {
	if err := s.check(ctx); err != nil {
		return checkpoint.Checkpoint{}, false, err
	}
	if err := checkpoint.ValidateKey(stream, consumer, shardID); err != nil {
		return checkpoint.Checkpoint{}, false, err
	}
	key := kvKey(stream, consumer, shardID)
	mu := s.lock(key)
	defer mu.Unlock()
	e, err := s.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		s.setRev(key, 0)
		return checkpoint.Checkpoint{}, false, nil
	}
	if err != nil {
		return checkpoint.Checkpoint{}, false, fmt.Errorf("read checkpoint %s: %w", key, err)
	}
	cp, err := decodeKV(e)
	if err != nil {
		return checkpoint.Checkpoint{}, false, err
	}
	s.setRev(key, e.Revision())
	return cp, true, nil
}

// lock takes the lock of key's stripe: Get and Put of one key are
// serialized, so the revision a Put compares with is the latest this store
// read or wrote.
func (s *Store) lock(key string) *sync.Mutex {
	mu := &s.locks[maphash.String(s.seed, key)%uint64(len(s.locks))]
	mu.Lock()
	return mu
}

// setRev records the revision of key this store wrote or read (Get) last
// (0: read absent).
func (s *Store) setRev(key string, rev uint64) {
	s.mu.Lock()
	s.revs[key] = rev
	s.mu.Unlock()
}

// Put implements Store: a compare-and-set on the revision this store last
// wrote or read with Get (a create when Get found the key absent, or this
// store never wrote or read it). A conflict is ErrFenced.
func (s *Store) Put(ctx context.Context, stream, consumer, shardID string, cp checkpoint.Checkpoint) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	if err := checkpoint.CheckPut(ctx, stream, consumer, shardID, &cp); err != nil {
		return err
	}
	rec := kvRecord{SequenceNumber: cp.SequenceNumber, SubSequence: cp.SubSequenceNumber, ShardEnded: cp.ShardEnded,
		UpdatedAt: cp.UpdatedAt, StreamCreated: cp.StreamCreated, Instance: s.instance, Writer: s.writer}
	if cp.InAggregate {
		rec.SequenceNumber, rec.AggregateSequence = "", cp.SequenceNumber
	}
	data, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode checkpoint: %w", err)
	}
	key := kvKey(stream, consumer, shardID)
	mu := s.lock(key)
	defer mu.Unlock()
	s.mu.Lock()
	last, known := s.revs[key]
	s.mu.Unlock()
	write := func(last uint64) (uint64, error) {
		if last > 0 {
			return s.kv.Update(ctx, key, data, last)
		}
		return s.kv.Create(ctx, key, data)
	}
	if !known {
		last = 0
	}
	rev, err := write(last)
	if conflict(err) {
		// The key moved since this store's last write or read. Only a
		// value another writer wrote fences; the rest can be cured.
		cur, err2 := s.current(ctx, key)
		switch {
		case err2 != nil:
			return fmt.Errorf("write checkpoint %s: the key changed and could not be read back (retried at the next write): %w", key, err2)
		case cur.absent:
			// Deleted or purged by someone else (this store's own Delete
			// forgets the revision): not written over, since whoever did
			// it may own the shard now; not a fence either, which stops
			// the stream. A restart reads the key afresh.
			return fmt.Errorf("write checkpoint %s: the key was deleted since this instance wrote it; not writing it again until the shard is started again (a restart)", key)
		case cur.writer == s.writer && cur.rev > last:
			// This store's own write, stored although its answer was lost
			// (a timeout, a leader change): nobody wrote since.
			rev, err = write(cur.rev)
		case cur.rev <= last:
			// A replica behind the write this store compared with.
			return fmt.Errorf("write checkpoint %s: the key changed and a replica answered with an older revision (%d, want above %d): retried at the next write", key, cur.rev, last)
		default:
			return fmt.Errorf("write checkpoint %s (revision %d by %s): %w", key, cur.rev, cur.instance, checkpoint.ErrFenced)
		}
	}
	if conflict(err) {
		return fmt.Errorf("write checkpoint %s: %w", key, checkpoint.ErrFenced)
	}
	if err != nil {
		return fmt.Errorf("write checkpoint %s: %w", key, err)
	}
	s.setRev(key, rev)
	return nil
}

// conflict reports whether err is a compare-and-set refused because the
// key moved.
func conflict(err error) bool {
	return errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists)
}

// readBackTimeout bounds the read of a key whose write was refused, apart
// from the write's own deadline (which the refused write may have used up).
const readBackTimeout = 2 * time.Second

// keyState is what a read of a key says about its last write.
type keyState struct {
	absent           bool // never written, deleted or purged
	rev              uint64
	writer, instance string
}

// current reads key's latest value.
func (s *Store) current(ctx context.Context, key string) (keyState, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), readBackTimeout)
	defer cancel()
	e, err := s.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return keyState{absent: true}, nil
	}
	if err != nil {
		return keyState{}, err
	}
	var r kvRecord
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		return keyState{rev: e.Revision(), writer: "?", instance: "?"}, nil
	}
	return keyState{rev: e.Revision(), writer: r.Writer, instance: r.Instance}, nil
}

// List implements Store. It is a read for display and claiming: the
// revisions it sees are not remembered, so that a later Put of a key
// another instance wrote since this one last wrote or read it is still
// ErrFenced.
func (s *Store) List(ctx context.Context, stream, consumer string) (map[string]checkpoint.Checkpoint, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	if err := checkpoint.ValidateKey(stream, consumer, "x"); err != nil {
		return nil, err
	}
	prefix := kvPrefix(stream, consumer)
	out := map[string]checkpoint.Checkpoint{}
	err := eachCurrent(ctx, s.kv, prefix+">", func(e jetstream.KeyValueEntry) error {
		cp, err := decodeKV(e)
		if err != nil {
			return err
		}
		out[unpart(strings.TrimPrefix(e.Key(), prefix))] = cp
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Delete implements Store: it purges the shard's key.
func (s *Store) Delete(ctx context.Context, stream, consumer, shardID string) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	if err := checkpoint.ValidateKey(stream, consumer, shardID); err != nil {
		return err
	}
	key := kvKey(stream, consumer, shardID)
	mu := s.lock(key)
	defer mu.Unlock()
	if err := s.kv.Purge(ctx, key); err != nil {
		return fmt.Errorf("delete checkpoint %s: %w", key, err)
	}
	s.setRev(key, 0)
	return nil
}

// Close implements Store; later calls return checkpoint.ErrClosed. The bucket's
// connection belongs to the caller.
func (s *Store) Close() error {
	s.closed.Store(true)
	return nil
}
