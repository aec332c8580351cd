package coordination

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/fanoutd/fanoutd/internal/testutil"
	"github.com/fanoutd/fanoutd/jsassets"
)

// singleBucket is a coordination bucket on one in-process server.
func singleBucket(t *testing.T) jetstream.KeyValue {
	t.Helper()
	nc, err := nats.Connect(testutil.StartNATS(t, testutil.NATSOptions{JetStream: true}).ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	kv, err := jsassets.EnsureKV(t.Context(), js.Conn(), jsassets.KVSpec{Name: "fanoutd_coordination", Replicas: 1}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

func joinSingle(t *testing.T, kv jetstream.KeyValue, name string, ttl time.Duration) *Group {
	t.Helper()
	return joinSingleWall(t, kv, name, ttl, nil)
}

// joinSingleWall is joinSingle with a wall clock of the test's.
func joinSingleWall(t *testing.T, kv jetstream.KeyValue, name string, ttl time.Duration, wall func() time.Time) *Group {
	t.Helper()
	log := zerolog.Nop()
	if testing.Verbose() {
		log = zerolog.New(zerolog.NewTestWriter(t)).With().Timestamp().Logger()
	}
	g, err := Join(t.Context(), kv, Options{Instance: name, LeaseTTL: ttl, Log: log, wall: wall})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close(context.Background()) })
	return g
}

func claimNow(t *testing.T, g *Group, shard string) *Lease {
	t.Helper()
	l, err := g.Claim(t.Context(), "s", "c", shard)
	if err != nil || l == nil {
		t.Fatalf("claim %s: %v %v", shard, l, err)
	}
	return l
}

func lostWithin(t *testing.T, l *Lease, d time.Duration, what string) {
	t.Helper()
	select {
	case <-l.Done():
	case <-time.After(d):
		t.Fatalf("%s: the lease still runs after %v", what, d)
	}
	if !l.Lost() || l.Valid() {
		t.Fatalf("%s: lease ended with %v (valid %v), want lost", what, l.Err(), l.Valid())
	}
}

// When the watcher sees a lease this instance holds rewritten by another
// owner (or deleted), the lease is lost at once: its Done closes long
// before the next renewal (a TTL of 30 s renews every 10 s). The instance's
// own renewals, which the watcher sees too, end nothing.
func TestWatcherEndsATakenOverLeaseAtOnce(t *testing.T) {
	t.Parallel()
	kv := singleBucket(t)
	const ttl = 30 * time.Second
	a := joinSingle(t, kv, "a", ttl)
	a.SetShards("s", "c", 3)
	taken, deleted, kept := claimNow(t, a, "shardId-1"), claimNow(t, a, "shardId-2"), claimNow(t, a, "shardId-3")

	// Another instance writes the lease as its own, on a's revision (as a
	// takeover of an expired lease does).
	e, err := kv.Get(t.Context(), taken.key)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := json.Marshal(leaseValue{Owner: "b", At: time.Now().UTC()})
	if _, err := kv.Update(t.Context(), taken.key, v, e.Revision()); err != nil {
		t.Fatal(err)
	}
	lostWithin(t, taken, 2*time.Second, "taken over")

	// An operator deletes a held lease: anyone may claim it now.
	if err := kv.Delete(t.Context(), deleted.key); err != nil {
		t.Fatal(err)
	}
	lostWithin(t, deleted, 2*time.Second, "deleted")

	testutil.WaitFor(t, 2*time.Second, "2 leases counted lost, 1 owned", func() bool {
		st := a.Stats()
		return st.Lost == 2 && st.Owned == 1
	})
	// a's own write of the kept lease (a renewal) is seen by the watcher
	// too: it ends nothing.
	a.renew(t.Context(), kept)
	testutil.WaitFor(t, 2*time.Second, "the renewal seen by the watcher", func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		kept.mu.Lock()
		defer kept.mu.Unlock()
		return a.leases[kept.key].rev == kept.rev
	})
	select {
	case <-kept.Done():
		t.Fatalf("a lease ended by its own renewal: %v", kept.Err())
	default:
	}
	if !kept.Valid() {
		t.Fatal("the kept lease is not valid")
	}
}

// A process resumed after the machine was suspended: the monotonic clock
// (CLOCK_MONOTONIC) stood still, the wall clock moved on. The lease is no
// longer valid by the wall-clock time of its last renewal, recorded in the
// lease value, even though the monotonic clock says it was just renewed;
// and the lease ends as lost at once, as one not renewed in time does.
func TestLeaseValidityChecksTheWallClock(t *testing.T) {
	t.Parallel()
	kv := singleBucket(t)
	const ttl = 30 * time.Second
	var skew atomic.Int64
	a := joinSingleWall(t, kv, "a", ttl, func() time.Time { return time.Now().Round(0).Add(time.Duration(skew.Load())) })
	a.SetShards("s", "c", 1)
	l := claimNow(t, a, "shardId-1")
	if !l.Valid() {
		t.Fatal("a fresh lease is not valid")
	}
	// The value records the wall-clock expiry of the claim.
	e, err := kv.Get(t.Context(), l.key)
	if err != nil {
		t.Fatal(err)
	}
	var v leaseValue
	if err := json.Unmarshal(e.Value(), &v); err != nil || v.Owner != "a" || v.Expires.Sub(v.At) != ttl {
		t.Fatalf("lease value %s (%v): want owner a and expires = at + %v", e.Value(), err, ttl)
	}
	l.mu.Lock()
	sent := l.sent
	l.mu.Unlock()
	if d := v.At.Sub(sent.Round(0)); d != 0 {
		t.Fatalf("value's at is %v off the renewal's send time", d)
	}

	skew.Store(int64(ttl*3/4 - time.Second)) // within the owner's bound
	if !l.Valid() {
		t.Fatal("lease invalid within 3/4 of the TTL by the wall clock")
	}
	skew.Store(int64(ttl)) // suspended for a TTL: only the wall clock moved
	if time.Since(sent) > ttl/2 {
		t.Fatal("the monotonic clock moved too far for this test")
	}
	if l.Valid() {
		t.Fatal("lease valid a TTL after its renewal by the wall clock")
	}
	lostWithin(t, l, 2*ttl/20+time.Second, "suspended for a TTL")
}

// A lease value written without the expiry (by an older fanoutd) still
// names its owner: another instance sees the lease held.
func TestLeaseValueWithoutExpiry(t *testing.T) {
	t.Parallel()
	kv := singleBucket(t)
	if _, err := kv.Create(t.Context(), leaseKey("s", "c", "shardId-1"), []byte(`{"owner":"old","at":"2026-01-02T03:04:05Z"}`)); err != nil {
		t.Fatal(err)
	}
	a := joinSingle(t, kv, "a", 30*time.Second)
	a.SetShards("s", "c", 1)
	if ls := a.Leases(); len(ls) != 1 || ls[0].Owner != "old" {
		t.Fatalf("leases %+v, want shardId-1 held by old", ls)
	}
	if l, err := a.Claim(t.Context(), "s", "c", "shardId-1"); l != nil || err != nil {
		t.Fatalf("claimed a held lease: %v %v", l, err)
	}
}
