package kvstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/fanoutd/fanoutd/checkpoint"
	"github.com/fanoutd/fanoutd/internal/testutil"
)

// kvBucket creates the bucket "checkpoints" with the given replicas on url.
func kvBucket(t *testing.T, url string, replicas int) jetstream.KeyValue {
	t.Helper()
	js := testutil.JetStream(t, url)
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
func TestFencing(t *testing.T) {
	for _, replicas := range []int{1, 3} {
		t.Run(itoa(replicas)+" replicas", func(t *testing.T) {
			url := testutil.StartNATS(t, testutil.NATSOptions{JetStream: true}).ClientURL()
			if replicas == 3 {
				url = testutil.StartCluster(t, 3).URL()
			}
			kv := kvBucket(t, url, replicas)
			ctx := context.Background()
			a, b := New(kv, "a"), New(kv, "b")
			mustPut(t, a, "10")
			mustPut(t, a, "11")
			// b never read the key: its create is refused.
			if err := b.Put(ctx, "s", "c", "shardId-1", checkpoint.Checkpoint{SequenceNumber: "99"}); !errors.Is(err, checkpoint.ErrFenced) {
				t.Fatalf("blind write by b = %v, want checkpoint.ErrFenced", err)
			}
			// b takes the shard over: it reads, then writes.
			if cp, ok, err := b.Get(ctx, "s", "c", "shardId-1"); err != nil || !ok || cp.SequenceNumber != "11" {
				t.Fatalf("b.Get = %+v %v %v", cp, ok, err)
			}
			mustPut(t, b, "12")
			// a lost the shard: fenced. A replica behind b's write may answer
			// a's read-back first: a plain error then, never a write.
			testutil.WaitFor(t, testutil.ClusterBound, "a fenced", func() bool {
				err := a.Put(ctx, "s", "c", "shardId-1", checkpoint.Checkpoint{SequenceNumber: "13"})
				if err == nil {
					t.Fatal("stale write by a succeeded, want checkpoint.ErrFenced")
				}
				return errors.Is(err, checkpoint.ErrFenced)
			})
			if cp, _, _ := b.Get(ctx, "s", "c", "shardId-1"); cp.SequenceNumber != "12" {
				t.Fatalf("checkpoint %+v, want b's 12", cp)
			}
			// After a delete, the key is written anew.
			if err := b.Delete(ctx, "s", "c", "shardId-1"); err != nil {
				t.Fatal(err)
			}
			// A new owner reads the checkpoint before writing it (a replica may
			// answer a read before it applied the delete).
			testutil.WaitFor(t, testutil.ClusterBound, "the delete seen", func() bool {
				cps, err := a.List(ctx, "s", "c")
				_, ok, gerr := a.Get(ctx, "s", "c", "shardId-1")
				return err == nil && len(cps) == 0 && gerr == nil && !ok
			})
			if err := a.Put(ctx, "s", "c", "shardId-1", checkpoint.Checkpoint{ShardEnded: true}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// The Store contract, as the file store keeps it: round trip, List by
// stream and consumer (names with dots too), concurrent Puts of one store
// never fencing each other, validation, Close.
func TestStoreContract(t *testing.T) {
	t.Parallel()
	kv := kvBucket(t, testutil.StartNATS(t, testutil.NATSOptions{JetStream: true}).ClientURL(), 1)
	s := New(kv, "a")
	ctx := context.Background()
	if _, ok, err := s.Get(ctx, "my.stream", "c.1", "shardId-0"); err != nil || ok {
		t.Fatalf("Get(empty) = %v %v", ok, err)
	}
	sub := checkpoint.Checkpoint{SequenceNumber: "77", SubSequenceNumber: 12, InAggregate: true}
	if err := s.Put(ctx, "sub.stream", "c.1", "shardId-sub", sub); err != nil {
		t.Fatal(err)
	}
	if got, ok, err := s.Get(ctx, "sub.stream", "c.1", "shardId-sub"); err != nil || !ok || got.SequenceNumber != "77" || got.SubSequenceNumber != 12 || !got.InAggregate {
		t.Fatalf("Get(inside an aggregate) = %+v, %v, %v", got, ok, err)
	}
	// Without a sequence_number: a binary that does not know sub-sequences
	// refuses it rather than resuming after the whole aggregate.
	if e, err := kv.Get(ctx, kvKey("sub.stream", "c.1", "shardId-sub")); err != nil || strings.Contains(string(e.Value()), `"sequence_number"`) {
		t.Fatalf("stored %v %v, want no sequence_number", e, err)
	}
	testutil.Concurrently(t, 8, func(w int) error {
		for i := range 10 {
			cp := checkpoint.Checkpoint{SequenceNumber: fmt.Sprint(i)}
			if err := s.Put(ctx, "my.stream", "c.1", fmt.Sprintf("shardId-%d", w), cp); err != nil {
				return err
			}
			if err := s.Put(ctx, "my.stream", "c.1", "shardId-shared", cp); err != nil {
				return err
			}
			if _, _, err := s.Get(ctx, "my.stream", "c.1", "shardId-shared"); err != nil {
				return err
			}
		}
		return nil
	})
	if err := s.Put(ctx, "my", "stream.c.1", "shardId-0", checkpoint.Checkpoint{ShardEnded: true}); err != nil {
		t.Fatal(err)
	}
	cps, err := s.List(ctx, "my.stream", "c.1")
	if err != nil || len(cps) != 9 || cps["shardId-3"].SequenceNumber != "9" {
		t.Fatalf("List = %v %v", cps, err)
	}
	if cps, _ := s.List(ctx, "my", "stream.c.1"); len(cps) != 1 || !cps["shardId-0"].ShardEnded {
		t.Fatalf("List of the other consumer = %v", cps)
	}
	if err := s.Put(ctx, "a/b", "c", "s", checkpoint.Checkpoint{SequenceNumber: "1"}); !errors.Is(err, checkpoint.ErrInvalidKey) {
		t.Fatalf("Put(invalid) = %v", err)
	}
	if err := s.Put(ctx, "a", "c", "s", checkpoint.Checkpoint{}); !errors.Is(err, checkpoint.ErrEmptyCheckpoint) {
		t.Fatalf("Put(empty) = %v", err)
	}
	s.Close()
	if _, _, err := s.Get(ctx, "a", "c", "s"); !errors.Is(err, checkpoint.ErrClosed) {
		t.Fatalf("Get after Close = %v", err)
	}
}

// a reads for display or claiming (List, as the claim loop and every GET
// /status do) after b took the shard over: that read changes nothing a
// write is fenced against, and a's stale write is refused. Only a Get (done
// while holding the lease) lets a write again.
func TestListDoesNotMoveTheFence(t *testing.T) {
	t.Parallel()
	kv := kvBucket(t, testutil.StartNATS(t, testutil.NATSOptions{JetStream: true}).ClientURL(), 1)
	ctx := context.Background()
	a, b := New(kv, "a"), New(kv, "b")
	mustPut(t, a, "10")
	// b takes the lease over: it reads, then writes a later checkpoint.
	if _, _, err := b.Get(ctx, "s", "c", "shardId-1"); err != nil {
		t.Fatal(err)
	}
	mustPut(t, b, "20")
	// a lists (claim loop, status) and sees b's checkpoint...
	if cps, err := a.List(ctx, "s", "c"); err != nil || cps["shardId-1"].SequenceNumber != "20" {
		t.Fatalf("a.List = %v %v", cps, err)
	}
	// ...and its stale write is still refused.
	if err := a.Put(ctx, "s", "c", "shardId-1", checkpoint.Checkpoint{SequenceNumber: "11"}); !errors.Is(err, checkpoint.ErrFenced) {
		t.Fatalf("stale write by a after List = %v, want checkpoint.ErrFenced", err)
	}
	// A store that only listed a key never wrote or read it: its blind
	// write is refused too.
	c := New(kv, "c")
	if _, err := c.List(ctx, "s", "c"); err != nil {
		t.Fatal(err)
	}
	if err := c.Put(ctx, "s", "c", "shardId-1", checkpoint.Checkpoint{SequenceNumber: "12"}); !errors.Is(err, checkpoint.ErrFenced) {
		t.Fatalf("write by c after List only = %v, want checkpoint.ErrFenced", err)
	}
	if cp, _, err := b.Get(ctx, "s", "c", "shardId-1"); err != nil || cp.SequenceNumber != "20" {
		t.Fatalf("checkpoint %+v %v, want b's 20", cp, err)
	}
	// b goes on writing against its own revision.
	mustPut(t, b, "21")
}

// lostAnswer is the real bucket, except that one Update is stored and then
// answered with a timeout, as when a leader change loses the answer.
type lostAnswer struct {
	jetstream.KeyValue
	lose    atomic.Bool
	failGet atomic.Bool // the next Get fails, as with no leader
}

func (l *lostAnswer) Get(ctx context.Context, key string) (jetstream.KeyValueEntry, error) {
	if l.failGet.CompareAndSwap(true, false) {
		return nil, jetstream.ErrNoStreamResponse
	}
	return l.KeyValue.Get(ctx, key)
}

func (l *lostAnswer) Update(ctx context.Context, key string, value []byte, last uint64) (uint64, error) {
	rev, err := l.KeyValue.Update(ctx, key, value, last)
	if err == nil && l.lose.CompareAndSwap(true, false) {
		return 0, context.DeadlineExceeded
	}
	return rev, err
}

// mustPut writes seq with s to the key these tests share.
func mustPut(t *testing.T, s *Store, seq string) {
	t.Helper()
	if err := s.Put(t.Context(), "s", "c", "shardId-1", checkpoint.Checkpoint{SequenceNumber: seq}); err != nil {
		t.Fatal(err)
	}
}

// putLosingAnswer writes seq with s, and the answer is lost on its way back.
func putLosingAnswer(t *testing.T, kv *lostAnswer, s *Store, seq string) {
	t.Helper()
	kv.lose.Store(true)
	if err := s.Put(t.Context(), "s", "c", "shardId-1", checkpoint.Checkpoint{SequenceNumber: seq}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Put with its answer lost = %v, want the timeout", err)
	}
}

// A write the server stored but whose answer was lost does not fence the
// store that made it: its next write goes on from it. Another instance's
// write in between still does.
func TestLostAnswerDoesNotFenceItsWriter(t *testing.T) {
	t.Parallel()
	kv := &lostAnswer{KeyValue: kvBucket(t, testutil.StartNATS(t, testutil.NATSOptions{JetStream: true}).ClientURL(), 1)}
	ctx := context.Background()
	a := New(kv, "a")
	mustPut(t, a, "10")
	putLosingAnswer(t, kv, a, "11")
	if err := a.Put(ctx, "s", "c", "shardId-1", checkpoint.Checkpoint{SequenceNumber: "12"}); err != nil {
		t.Fatalf("the next Put = %v, want it to go on from its own stored write", err)
	}
	if cp, _, _ := New(kv, "reader").Get(ctx, "s", "c", "shardId-1"); cp.SequenceNumber != "12" {
		t.Fatalf("checkpoint %+v, want 12", cp)
	}

	// Another instance takes over after a lost answer: a is fenced.
	putLosingAnswer(t, kv, a, "13")
	b := New(kv, "b")
	if _, _, err := b.Get(ctx, "s", "c", "shardId-1"); err != nil {
		t.Fatal(err)
	}
	mustPut(t, b, "14")
	if err := a.Put(ctx, "s", "c", "shardId-1", checkpoint.Checkpoint{SequenceNumber: "15"}); !errors.Is(err, checkpoint.ErrFenced) {
		t.Fatalf("a's write after b's = %v, want checkpoint.ErrFenced", err)
	}
	if cp, _, _ := b.Get(ctx, "s", "c", "shardId-1"); cp.SequenceNumber != "14" {
		t.Fatalf("checkpoint %+v, want b's 14", cp)
	}
}

// A writer that cannot tell what happened to its key (the read back fails,
// or someone else deleted the key) gets a plain error, never ErrFenced: a
// fence stops the stream (exit 2), which only another writer's value
// justifies. A later write goes on once the read works.
func TestUncertainConflictIsNotAFence(t *testing.T) {
	t.Parallel()
	kv := &lostAnswer{KeyValue: kvBucket(t, testutil.StartNATS(t, testutil.NATSOptions{JetStream: true}).ClientURL(), 1)}
	ctx := context.Background()
	a := New(kv, "a")
	mustPut(t, a, "10")
	putLosingAnswer(t, kv, a, "11")
	kv.failGet.Store(true)
	if err := a.Put(ctx, "s", "c", "shardId-1", checkpoint.Checkpoint{SequenceNumber: "12"}); err == nil || errors.Is(err, checkpoint.ErrFenced) {
		t.Fatalf("Put whose read back failed = %v, want a plain error", err)
	}
	if err := a.Put(ctx, "s", "c", "shardId-1", checkpoint.Checkpoint{SequenceNumber: "12"}); err != nil {
		t.Fatalf("the next Put = %v", err)
	}

	// Someone else deletes the key: not a fence, and not written over.
	if err := kv.Delete(ctx, kvKey("s", "c", "shardId-1")); err != nil {
		t.Fatal(err)
	}
	if err := a.Put(ctx, "s", "c", "shardId-1", checkpoint.Checkpoint{SequenceNumber: "13"}); err == nil || errors.Is(err, checkpoint.ErrFenced) {
		t.Fatalf("Put after another's delete = %v, want a plain error", err)
	}
	if _, ok, err := New(kv, "reader").Get(ctx, "s", "c", "shardId-1"); err != nil || ok {
		t.Fatalf("after another's delete the key holds a checkpoint (%v, %v)", ok, err)
	}
}
