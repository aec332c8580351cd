package coordination

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/fanoutd/fanoutd/internal/testutil"
	"github.com/fanoutd/fanoutd/jsassets"
)

const testTTL = 3 * time.Second

// reader plays fanout's part for one instance: it claims the shards it may
// read, and gives a lease up when it ends.
type reader struct {
	t      testing.TB
	g      *Group
	shards []string
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	mu   sync.Mutex
	held map[string]*Lease
	log  *eventLog
	// crashed: the instance died; it gives nothing up.
	crashed atomic.Bool
}

// eventLog records, across instances, when each shard was acquired and
// when it stopped being read, to check that two instances never read one
// shard at once.
type eventLog struct {
	mu      sync.Mutex
	reading map[string]string // shard -> instance reading it
	overlap []string
	// acquired and stopped by instance and shard: times.
	acquired map[string]time.Time
}

func newEventLog() *eventLog {
	return &eventLog{reading: map[string]string{}, acquired: map[string]time.Time{}}
}

func (e *eventLog) start(inst, shard string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if cur, ok := e.reading[shard]; ok && cur != inst {
		e.overlap = append(e.overlap, fmt.Sprintf("%s taken by %s while %s reads it", shard, inst, cur))
	}
	e.reading[shard] = inst
	e.acquired[inst+"/"+shard] = time.Now()
}

func (e *eventLog) stop(inst, shard string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.reading[shard] == inst {
		delete(e.reading, shard)
	}
}

// acquiredAt is when inst last acquired shard (zero: never).
func (e *eventLog) acquiredAt(inst, shard string) time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.acquired[inst+"/"+shard]
}

func (e *eventLog) readerOf(shard string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.reading[shard]
}

func (e *eventLog) overlaps() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.overlap...)
}

func shardNames(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("shardId-%012d", i)
	}
	return out
}

func startReader(t testing.TB, g *Group, shards []string, log *eventLog) *reader {
	ctx, cancel := context.WithCancel(context.Background())
	r := &reader{t: t, g: g, shards: shards, ctx: ctx, cancel: cancel, done: make(chan struct{}), held: map[string]*Lease{}, log: log}
	g.SetShards("s", "c", len(shards))
	go r.run()
	t.Cleanup(r.stop)
	return r
}

func (r *reader) run() {
	defer close(r.done)
	tick := time.NewTicker(testTTL / 6)
	defer tick.Stop()
	for {
		for _, sh := range r.shards {
			r.mu.Lock()
			_, ok := r.held[sh]
			r.mu.Unlock()
			if ok {
				continue
			}
			l, err := r.g.Claim(r.ctx, "s", "c", sh)
			if err != nil || l == nil {
				continue
			}
			r.log.start(r.g.Instance(), sh)
			r.mu.Lock()
			r.held[sh] = l
			r.mu.Unlock()
			go func() {
				select {
				case <-l.Done():
				case <-r.ctx.Done():
				}
				// Stop reading first, then give the lease up.
				r.log.stop(r.g.Instance(), sh)
				r.mu.Lock()
				delete(r.held, sh)
				r.mu.Unlock()
				if !r.crashed.Load() {
					l.Release(context.Background())
				}
			}()
		}
		select {
		case <-r.ctx.Done():
			return
		case <-r.g.Wake():
		case <-tick.C:
		}
	}
}

// stop stops reading every shard and leaves the group gracefully.
func (r *reader) stop() {
	select {
	case <-r.done:
		return
	default:
	}
	r.cancel()
	<-r.done
	testutil.WaitFor(r.t, 10*time.Second, "leases given up", func() bool { return r.owned() == 0 })
	r.g.Close(context.Background())
}

func (r *reader) owned() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.held)
}

func (r *reader) heldShards() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.held))
	for sh := range r.held {
		out = append(out, sh)
	}
	return out
}

// crash stops the instance as SIGKILL would: no release, no goodbye.
func (r *reader) crash() {
	r.crashed.Store(true)
	r.g.abort()
	r.cancel()
	<-r.done
	r.mu.Lock()
	for sh := range r.held {
		r.log.stop(r.g.Instance(), sh) // a dead process reads nothing
	}
	r.mu.Unlock()
}

type env struct {
	t  testing.TB
	c  *testutil.Cluster
	js jetstream.JetStream
	kv jetstream.KeyValue
}

var testBucket = jsassets.KVSpec{Name: "fanoutd_coordination", Replicas: 3}

func newEnv(t testing.TB) *env {
	c := testutil.StartCluster(t, 3)
	nc, err := nats.Connect(c.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	kv, err := jsassets.EnsureKV(t.Context(), js.Conn(), testBucket, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, c: c, js: js, kv: kv}
}

// join starts an instance on its own connection (through url, default the
// cluster).
func (e *env) join(name, url string) *Group {
	e.t.Helper()
	return e.joinObserved(name, url, nil)
}

// joinObserved is join with an Options.ObserveRenew.
func (e *env) joinObserved(name, url string, observe func(time.Duration, error)) *Group {
	e.t.Helper()
	js := e.conn(url)
	kv, err := js.KeyValue(e.t.Context(), "fanoutd_coordination")
	if err != nil {
		e.t.Fatal(err)
	}
	log := zerolog.Nop()
	if testing.Verbose() {
		log = zerolog.New(zerolog.NewTestWriter(e.t)).With().Timestamp().Logger()
	}
	g, err := Join(e.t.Context(), kv, Options{Instance: name, LeaseTTL: testTTL, Log: log, ObserveRenew: observe,
		Conn: js.Conn(), Bucket: testBucket})
	if err != nil {
		e.t.Fatal(err)
	}
	return g
}

// conn connects on a connection of its own (through url, default the
// cluster).
func (e *env) conn(url string) jetstream.JetStream {
	e.t.Helper()
	if url == "" {
		url = e.c.URL()
	}
	return testutil.JetStream(e.t, url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond), nats.IgnoreDiscoveredServers())
}

// bucket opens the coordination bucket on a connection of its own
// (through url, default the cluster).
func (e *env) bucket(url string) jetstream.KeyValue {
	e.t.Helper()
	kv, err := e.conn(url).KeyValue(e.t.Context(), "fanoutd_coordination")
	if err != nil {
		e.t.Fatal(err)
	}
	return kv
}

func waitBalanced(t testing.TB, what string, rs []*reader, shards int, bound time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	most := (shards + len(rs) - 1) / len(rs)
	least := shards / len(rs)
	testutil.WaitFor(t, bound, what, func() bool {
		total := 0
		for _, r := range rs {
			n := r.owned()
			if n < least || n > most {
				return false
			}
			total += n
		}
		return total == shards
	})
	return time.Since(start)
}

func TestGroupSharesShardsEvenlyAndFailsOver(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: a 3-node JetStream cluster and lease TTLs (run without -short)")
	}
	e := newEnv(t)
	log := newEventLog()
	shards := shardNames(8)
	a := startReader(t, e.join("a", ""), shards, log)
	b := startReader(t, e.join("b", ""), shards, log)
	// When c last renewed its leases (a renewal that succeeded: sent at the
	// end of the call minus its latency).
	var renewMu sync.Mutex
	var lastRenewSent time.Time
	c := startReader(t, e.joinObserved("c", "", func(d time.Duration, err error) {
		if err == nil {
			renewMu.Lock()
			lastRenewSent = time.Now().Add(-d)
			renewMu.Unlock()
		}
	}), shards, log)
	d := waitBalanced(t, "8 shards over 3 instances", []*reader{a, b, c}, 8, 6*testTTL)
	t.Logf("balanced in %v", d.Round(time.Millisecond))

	// A crash: its shards move after about one TTL, and each never before
	// 3/4 TTL after c's last write of its lease (c would have gone on reading
	// until then). Measured from that write, not from the crash: the last
	// renewal may be up to TTL/3 (on a busy machine more) before the crash.
	victim := c.heldShards()
	killed := time.Now()
	c.crash()
	waitBalanced(t, "the crashed instance's shards taken over", []*reader{a, b}, 8, 3*testTTL)
	renewMu.Lock()
	lastRenew := lastRenewSent
	renewMu.Unlock()
	for _, sh := range victim {
		// c's last write of this lease: its claim, or the last renewal pass.
		lastWrite := lastRenew
		if at := log.acquiredAt("c", sh); at.After(lastWrite) {
			lastWrite = at
		}
		var takeover time.Time
		for _, inst := range []string{"a", "b"} {
			if at := log.acquiredAt(inst, sh); at.After(killed) {
				takeover = at
			}
		}
		if lastWrite.IsZero() || takeover.IsZero() {
			t.Fatalf("%s: no lease write by c (%v) or no takeover (%v) seen", sh, lastWrite, takeover)
		}
		t.Logf("%s taken over %v after the crash, %v after c's last write of its lease", sh,
			takeover.Sub(killed).Round(time.Millisecond), takeover.Sub(lastWrite).Round(time.Millisecond))
		if gap := takeover.Sub(lastWrite); gap < testTTL*3/4 {
			t.Fatalf("%s taken over %v after c's last write of its lease, before c could have stopped reading it (3/4 TTL)", sh, gap)
		}
	}
	t.Logf("%d shards failed over in %v (TTL %v)", len(victim), time.Since(killed).Round(time.Millisecond), testTTL)

	// A graceful leave: its shards move at once, without waiting for b's
	// leases to expire (as a sees them: its last view of b's renewals + TTL).
	// a takes them as released leases, not as expired ones (but for any
	// lease b lost on its own meanwhile: a renewal slower than 3/4 TTL on a
	// starved machine, counted when b's renewal or its release finds the
	// lease rewritten).
	stale, lost := a.g.Stats().TakenOverStale, b.g.Stats().Lost
	b.stop()
	waitBalanced(t, "the leaving instance's shards taken over", []*reader{a}, 8, 3*testTTL)
	if n, l := a.g.Stats().TakenOverStale-stale, b.g.Stats().Lost-lost; n > l {
		t.Fatalf("%d of the leaving instance's leases were taken over as expired (it lost %d itself): the graceful leave did not release them", n, l)
	}
	// A join: the group rebalances by handing shards over one at a time.
	n := startReader(t, e.join("n", ""), shards, log)
	d = waitBalanced(t, "the new instance gets its share", []*reader{a, n}, 8, 10*testTTL)
	t.Logf("rebalanced after a join in %v", d.Round(time.Millisecond))
	if o := log.overlaps(); len(o) > 0 {
		t.Fatalf("two readers at once: %v", o)
	}
	st := a.g.Stats()
	if st.Handoffs == 0 || st.Acquired == 0 {
		t.Fatalf("stats %+v", st)
	}
}

// An instance cut off from NATS can't renew: it stops reading its shards
// before any other instance may take them, and rejoins when NATS is back.
func TestPartitionedInstanceStopsBeforeOthersTakeOver(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: a 3-node JetStream cluster and lease TTLs (run without -short)")
	}
	e := newEnv(t)
	log := newEventLog()
	shards := shardNames(6)
	px := testutil.StartProxy(t, e.c.URLs()[0][len("nats://"):])
	a := startReader(t, e.join("a", ""), shards, log)
	p := startReader(t, e.join("p", "nats://"+px.Addr()), shards, log)
	waitBalanced(t, "6 shards over 2 instances", []*reader{a, p}, 6, 6*testTTL)
	mine := map[string]bool{}
	p.mu.Lock()
	for sh := range p.held {
		mine[sh] = true
	}
	p.mu.Unlock()

	px.SetCut(true)
	cut := time.Now()
	testutil.WaitFor(t, 2*testTTL, "the partitioned instance stops reading", func() bool { return p.owned() == 0 })
	stopped := time.Since(cut)
	waitBalanced(t, "the other takes every shard", []*reader{a}, 6, 3*testTTL)
	t.Logf("partitioned instance stopped after %v; shards taken over after %v", stopped.Round(time.Millisecond), time.Since(cut).Round(time.Millisecond))
	if o := log.overlaps(); len(o) > 0 {
		t.Fatalf("two readers at once: %v", o)
	}
	for sh := range mine {
		if log.readerOf(sh) != "a" {
			t.Fatalf("shard %s read by %q", sh, log.readerOf(sh))
		}
	}

	px.SetCut(false)
	waitBalanced(t, "the instance rejoins and gets its share", []*reader{a, p}, 6, 10*testTTL)
	if o := log.overlaps(); len(o) > 0 {
		t.Fatalf("two readers at once: %v", o)
	}
}

// BenchmarkGroup reports, for 3 members and 64 shards with the test's lease
// TTL, the failover time (a member crashes: until the others hold all 64)
// and the rebalance time (a member joins: until each holds its share).
// Run with -benchtime 1x: each op takes about a lease TTL.
//
//	go test -run '^$' -bench BenchmarkGroup -benchtime 1x -count 3 ./coordination/
func BenchmarkGroup(b *testing.B) {
	for range b.N {
		b.StopTimer()
		e := newEnv(b)
		log := newEventLog()
		shards := shardNames(64)
		rs := []*reader{
			startReader(b, e.join("a", ""), shards, log),
			startReader(b, e.join("b", ""), shards, log),
			startReader(b, e.join("c", ""), shards, log),
		}
		waitBalanced(b, "64 shards over 3", rs, 64, 20*testTTL)
		b.StartTimer()
		start := time.Now()
		rs[2].crash()
		waitBalanced(b, "failover", rs[:2], 64, 5*testTTL)
		failover := time.Since(start)
		start = time.Now()
		rs[2] = startReader(b, e.join("d", ""), shards, log)
		waitBalanced(b, "rebalance", rs, 64, 20*testTTL)
		rebalance := time.Since(start)
		b.StopTimer()
		b.ReportMetric(failover.Seconds(), "failover-s")
		b.ReportMetric(rebalance.Seconds(), "rebalance-s")
		b.ReportMetric(testTTL.Seconds(), "lease-ttl-s")
		if o := log.overlaps(); len(o) > 0 {
			b.Fatalf("two readers at once: %v", o)
		}
	}
}

// abort stops the group's loops without releasing anything, as a crash
// does (tests).
func (g *Group) abort() {
	g.cancel()
	g.wg.Wait()
}
