package coordination

import (
	"context"
	"testing"
	"time"
)

// Read sees the group from outside: each lease's owner and expiry, a
// released lease as free, and the members with their last heartbeat.
func TestRead(t *testing.T) {
	kv := singleBucket(t)
	a := joinSingle(t, kv, "host-a", 10*time.Second)
	b := joinSingle(t, kv, "host.b", 10*time.Second)
	a.SetShards("s", "c", 4)
	b.SetShards("s", "c", 4)
	start := time.Now()
	claimNow(t, a, "shardId-1")
	claimNow(t, b, "shardId-2")
	claimNow(t, a, "shardId-3").Release(context.Background())

	leases, members, err := Read(t.Context(), kv)
	if err != nil {
		t.Fatal(err)
	}
	if len(leases) != 3 {
		t.Fatalf("leases = %+v, want 3", leases)
	}
	for i, want := range []struct{ shard, owner string }{{"shardId-1", "host-a"}, {"shardId-2", "host.b"}, {"shardId-3", ""}} {
		l := leases[i]
		if l.Stream != "s" || l.Consumer != "c" || l.Shard != want.shard || l.Owner != want.owner {
			t.Errorf("lease %d = %+v, want %s owned by %q", i, l, want.shard, want.owner)
		}
		if held := !l.Expires.IsZero(); held != (want.owner != "") || held && l.Expires.Before(start.Add(9*time.Second)) {
			t.Errorf("lease %d expires %v (claimed at %v with a 10s TTL)", i, l.Expires, start)
		}
	}
	if len(members) != 2 || members[0].Name != "host-a" || members[1].Name != "host.b" || members[0].At.IsZero() {
		t.Fatalf("members = %+v", members)
	}
}
