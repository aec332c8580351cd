package coordination

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/fanoutd/fanoutd/internal/testutil"
)

// Status counts the bucket status reads too (the bucket check), and
// leaves one unanswered when loseNextStatus asked for it.
func (f *faultKV) Status(ctx context.Context) (jetstream.KeyValueStatus, error) {
	f.mu.Lock()
	f.statuses++
	lost := f.lostStatuses > 0
	if lost {
		f.lostStatuses--
	}
	f.mu.Unlock()
	if lost {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return f.KeyValue.Status(ctx)
}

// loseNextStatus makes the next Status call get no answer, as a request
// to a stream without a leader yet.
func (f *faultKV) loseNextStatus() {
	f.mu.Lock()
	f.lostStatuses++
	f.mu.Unlock()
}

func (f *faultKV) lostStatusesPending() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lostStatuses
}

func (f *faultKV) counts() (writes, statuses int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ops, f.statuses
}

// TestGroupScale: 8 members share 1 024 shards in one process, on a 3-node
// cluster, with the default lease TTL (10 s). In steady state no lease is
// lost for 60 s, and the KV operations per lease per second are reported;
// a member killed (no release) has its shards owned again within the lease
// TTL plus one renewal period. About 2 minutes; run it with
//
//	FANOUTD_SCALE=1 go test -run TestGroupScale -v -timeout 10m ./coordination/
func TestGroupScale(t *testing.T) {
	if os.Getenv("FANOUTD_SCALE") == "" {
		t.Skip("slow (about 2 minutes): set FANOUTD_SCALE=1 to run it")
	}
	const (
		members = 8
		nShards = 1024
		ttl     = DefaultLeaseTTL
		steady  = 60 * time.Second
	)
	e := newEnv(t)
	shards := shardNames(nShards)
	log := newEventLog()
	var groups []*Group
	var kvs []*faultKV
	for i := range members {
		js := e.conn("")
		kv, err := js.KeyValue(t.Context(), testBucket.Name)
		if err != nil {
			t.Fatal(err)
		}
		f := newFaultKV(kv)
		g, err := Join(t.Context(), f, Options{Instance: string(rune('a' + i)), LeaseTTL: ttl, Log: zerolog.Nop(), Conn: js.Conn(), Bucket: testBucket})
		if err != nil {
			t.Fatal(err)
		}
		groups, kvs = append(groups, g), append(kvs, f)
	}
	testutil.WaitFor(t, ttl, "every member sees the others", func() bool {
		for _, g := range groups {
			if g.Stats().Members != members {
				return false
			}
		}
		return true
	})
	start := time.Now()
	var rs []*reader
	for _, g := range groups {
		rs = append(rs, startReader(t, g, shards, log))
	}
	waitBalanced(t, "1 024 shards over 8 members", rs, nShards, 10*ttl)
	t.Logf("1 024 shards balanced over 8 members in %v", time.Since(start).Round(time.Millisecond))

	// Steady state: a settling period of one TTL (the last handoffs' new
	// owners on their renewal cadence), then the window.
	testutil.WaitFor(t, 2*ttl, "one TTL of steady state", func() bool { return time.Since(start) > ttl })
	lost := func() (n uint64) {
		for _, g := range groups {
			n += g.Stats().Lost
		}
		return n
	}
	stream, err := e.js.Stream(t.Context(), "KV_"+testBucket.Name)
	if err != nil {
		t.Fatal(err)
	}
	lastSeq := func() uint64 {
		info, err := stream.Info(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return info.State.LastSeq
	}
	ops := func() (writes, statuses int) {
		for _, f := range kvs {
			w, s := f.counts()
			writes, statuses = writes+w, statuses+s
		}
		return
	}
	lost0, seq0 := lost(), lastSeq()
	w0, s0 := ops()
	from := time.Now()
	deadline := from.Add(steady)
	tick := time.NewTicker(time.Second)
	for time.Now().Before(deadline) {
		if n := lost() - lost0; n != 0 {
			t.Fatalf("%d leases lost in steady state after %v", n, time.Since(from).Round(time.Second))
		}
		<-tick.C
	}
	tick.Stop()
	window := time.Since(from).Seconds()
	w1, s1 := ops()
	seq1 := lastSeq()
	if n := lost() - lost0; n != 0 {
		t.Fatalf("%d leases lost in steady state", n)
	}
	writes, statuses, stored := float64(w1-w0), float64(s1-s0), float64(seq1-seq0)
	t.Logf("steady state, %.0f s, %d members, %d leases, lease TTL %v: %.0f KV writes (%.1f/s), %.3f per lease per second; %.0f messages stored in the bucket's stream (%.3f per lease per second); %.0f bucket status reads (%.2f/s)",
		window, members, nShards, ttl, writes, writes/window, writes/window/nShards, stored, stored/window/nShards, statuses, statuses/window)

	// A member dies: its shards are owned again within TTL + one renewal
	// period.
	victim := rs[members-1]
	killed := time.Now()
	victim.crash()
	total := func() int {
		n := 0
		for _, r := range rs[:members-1] {
			n += r.owned()
		}
		return n
	}
	bound := ttl + ttl/3
	var gone, first time.Time // the dead member seen gone by all; its first lease taken
	testutil.WaitFor(t, 2*bound, "the dead member's shards owned again", func() bool {
		if gone.IsZero() {
			n := 0
			for _, g := range groups[:members-1] {
				if g.Stats().Members == members-1 {
					n++
				}
			}
			if n == members-1 {
				gone = time.Now()
			}
		}
		owned := total()
		if first.IsZero() && owned > nShards-nShards/members {
			first = time.Now()
		}
		return owned == nShards
	})
	failover := time.Since(killed)
	t.Logf("a member killed: its %d shards owned again after %v (bound: lease TTL + one renewal period = %v); its first lease taken after %v, the member seen gone by all after %v",
		nShards/members, failover.Round(time.Millisecond), bound, first.Sub(killed).Round(time.Millisecond), gone.Sub(killed).Round(time.Millisecond))
	if failover > bound {
		t.Fatalf("failover took %v, over the lease TTL plus one renewal period (%v)", failover, bound)
	}
	waitBalanced(t, "1 024 shards over 7 members", rs[:members-1], nShards, 4*ttl)
	if o := log.overlaps(); len(o) > 0 {
		t.Fatalf("two readers at once: %v", o[:min(len(o), 10)])
	}
}
