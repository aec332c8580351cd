package coordination

import (
	"context"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/fanoutd/fanoutd/internal/testutil"
	"github.com/fanoutd/fanoutd/jsassets"
)

// leaseKeys counts the lease keys the bucket holds now (-1: not known
// now). Each look is short: a request the just recreated bucket leaves
// unanswered would hold the poll for the client's default timeout.
func leaseKeys(t *testing.T, e *env) int {
	ctx, cancel := context.WithTimeout(t.Context(), testTTL/3)
	defer cancel()
	kv, err := e.js.KeyValue(ctx, testBucket.Name)
	if err != nil {
		return -1
	}
	keys, err := kv.ListKeysFiltered(ctx, "lease.>")
	if err != nil {
		return -1
	}
	n := 0
	for range keys.Keys() {
		n++
	}
	return n
}

// The coordination bucket deleted and created again, then deleted alone,
// while two members run: each time the members notice, rebuild their view
// (and the bucket) and write the leases they hold anew: every shard has a
// lease key in the bucket again, no lease is lost, never two readers.
func TestBucketRecreatedWhileRunning(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: a 3-node JetStream cluster and lease TTLs (run without -short)")
	}
	e := newEnv(t)
	log := newEventLog()
	shards := shardNames(8)
	a := startReader(t, e.join("a", ""), shards, log)
	b := startReader(t, e.join("b", ""), shards, log)
	rs := []*reader{a, b}
	waitBalanced(t, "8 shards over 2 instances", rs, 8, 6*testTTL)

	steps := []struct {
		name string
		do   func()
	}{
		{"deleted and created again", func() {
			if err := e.js.DeleteKeyValue(t.Context(), testBucket.Name); err != nil {
				t.Fatal(err)
			}
			if _, err := jsassets.EnsureKV(t.Context(), e.js.Conn(), testBucket, zerolog.Nop()); err != nil {
				t.Fatal(err)
			}
		}},
		{"deleted", func() {
			if err := e.js.DeleteKeyValue(t.Context(), testBucket.Name); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for i, step := range steps {
		start := time.Now()
		step.do()
		testutil.WaitFor(t, 6*testTTL, "every shard's lease in the bucket again", func() bool { return leaseKeys(t, e) == 8 })
		waitBalanced(t, "every shard owned again after the bucket was "+step.name, rs, 8, 6*testTTL)
		t.Logf("bucket %s: every shard owned again %v after; leases lost so far: a %d, b %d", step.name, time.Since(start).Round(time.Millisecond),
			a.g.Stats().Lost, b.g.Stats().Lost)
		// The leases held were written anew, not lost: no reader stopped.
		if la, lb := a.g.Stats().Lost, b.g.Stats().Lost; la != 0 || lb != 0 {
			t.Fatalf("leases lost: a %d, b %d; want every held lease written anew into the new bucket", la, lb)
		}
		if ra, rb := a.g.Stats().BucketResets, b.g.Stats().BucketResets; ra != uint64(i+1) || rb != uint64(i+1) {
			t.Fatalf("bucket resets counted: a %d, b %d, want %d each", ra, rb, i+1)
		}
	}
	if o := log.overlaps(); len(o) > 0 {
		t.Fatalf("two readers at once: %v", o)
	}
}

// A claim another instance wins is counted; claims of one key that keep
// conflicting make the group check its bucket.
func TestClaimConflictsCounted(t *testing.T) {
	skipShort(t)
	e := newEnv(t)
	g, f := e.joinFault("a")
	defer g.Close(context.Background())
	g.SetShards("s", "c", 1)
	key := leaseKey("s", "c", "shardId-000000000000")
	open := f.block(key)
	claimed := make(chan *Lease)
	go func() {
		l, _ := g.Claim(t.Context(), "s", "c", "shardId-000000000000")
		claimed <- l
	}()
	testutil.WaitFor(t, testTTL, "the claim under way", func() bool { return f.writesOf(key) > 0 })
	// Another instance writes the lease first.
	if _, err := e.kv.Create(t.Context(), key, []byte(`{"owner":"x"}`)); err != nil {
		t.Fatal(err)
	}
	open()
	if l := <-claimed; l != nil {
		t.Fatal("the claim succeeded over another instance's lease")
	}
	if st := g.Stats(); st.ClaimConflicts != 1 || st.Owned != 0 {
		t.Fatalf("stats %+v: want one claim conflict", st)
	}
}
