package coordination

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/fanoutd/fanoutd/internal/testutil"
)

// skipShort skips a test on a 3-node cluster under -short, as the other
// coordination tests.
func skipShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("a 3-node JetStream cluster (run without -short)")
	}
}

// faultKV is the real bucket with faults injected by the test: writes of a
// key (or of the member keys) block until the test opens their gate, and
// every write is counted.
type faultKV struct {
	jetstream.KeyValue

	mu       sync.Mutex
	gates    map[string]chan struct{} // key prefix -> gate; a write waits until it is closed
	updates  map[string]int           // key -> Update calls entered
	ops      int                      // writes (Put, Create, Update, Delete) sent
	statuses int                      // Status calls
	entered  map[string]int           // key -> writes sent
	// replies: key prefix -> gate; a write is sent, its reply waits until
	// the gate is closed. landed counts those writes.
	replies map[string]chan struct{}
	landed  map[string]int
	// timeouts: key -> the next Create of it times out (waits for its
	// context to end), sent first when the value is true (the reply lost).
	timeouts map[string]bool
	// holds: key -> the next entry of it a watcher delivers blocks in
	// Value (the group's watcher is busy applying it) until released.
	holds map[string]*heldGate
	// current counts the watchers that delivered the bucket's current
	// values (their nil entry).
	current int
	// lostStatuses: the next Status calls that get no answer (wait for
	// their context to end).
	lostStatuses int
	// lostUpdates: key -> its next Update gets no answer.
	lostUpdates map[string]bool
}

func newFaultKV(kv jetstream.KeyValue) *faultKV {
	return &faultKV{KeyValue: kv, gates: map[string]chan struct{}{}, updates: map[string]int{}, entered: map[string]int{},
		replies: map[string]chan struct{}{}, landed: map[string]int{}, timeouts: map[string]bool{}, holds: map[string]*heldGate{},
		lostUpdates: map[string]bool{}}
}

// block makes every write of a key starting with prefix wait, whatever
// its context, until the returned func is called.
func (f *faultKV) block(prefix string) (open func()) { return f.gate(f.gates, prefix) }

// gate shuts a gate for prefix in gates, and returns what opens it.
func (f *faultKV) gate(gates map[string]chan struct{}, prefix string) (open func()) {
	gate := make(chan struct{})
	f.mu.Lock()
	gates[prefix] = gate
	f.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			f.mu.Lock()
			delete(gates, prefix)
			f.mu.Unlock()
			close(gate)
		})
	}
}

func (f *faultKV) wait(key string) {
	f.mu.Lock()
	f.ops++
	f.entered[key]++
	var gate chan struct{}
	for p, g := range f.gates {
		if strings.HasPrefix(key, p) {
			gate = g
		}
	}
	f.mu.Unlock()
	if gate != nil {
		<-gate
	}
}

func (f *faultKV) updated(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.updates[key]
}

// writesOf counts the writes of key sent (or waiting at a gate).
func (f *faultKV) writesOf(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.entered[key]
}

func (f *faultKV) Put(ctx context.Context, key string, value []byte) (uint64, error) {
	f.wait(key)
	rev, err := f.KeyValue.Put(ctx, key, value)
	f.reply(key)
	return rev, err
}

func (f *faultKV) Create(ctx context.Context, key string, value []byte, opts ...jetstream.KVCreateOpt) (uint64, error) {
	f.wait(key)
	f.mu.Lock()
	landed, timeout := f.timeouts[key]
	delete(f.timeouts, key)
	f.mu.Unlock()
	if timeout {
		if landed {
			_, _ = f.KeyValue.Create(ctx, key, value, opts...)
		}
		<-ctx.Done()
		return 0, ctx.Err()
	}
	rev, err := f.KeyValue.Create(ctx, key, value, opts...)
	f.reply(key)
	return rev, err
}

func (f *faultKV) Update(ctx context.Context, key string, value []byte, revision uint64) (uint64, error) {
	f.mu.Lock()
	f.updates[key]++
	lost := f.lostUpdates[key]
	delete(f.lostUpdates, key)
	f.mu.Unlock()
	f.wait(key)
	if lost {
		<-ctx.Done()
		return 0, ctx.Err()
	}
	rev, err := f.KeyValue.Update(ctx, key, value, revision)
	f.reply(key)
	return rev, err
}

func (f *faultKV) Delete(ctx context.Context, key string, opts ...jetstream.KVDeleteOpt) error {
	f.wait(key)
	err := f.KeyValue.Delete(ctx, key, opts...)
	f.reply(key)
	return err
}

// joinFault joins an instance through a faultKV over its own connection.
func (e *env) joinFault(name string) (*Group, *faultKV) {
	e.t.Helper()
	return e.joinFaultTTL(name, testTTL)
}

// joinFaultTTL is joinFault with a lease TTL of the test's.
func (e *env) joinFaultTTL(name string, ttl time.Duration) (*Group, *faultKV) {
	e.t.Helper()
	fkv := newFaultKV(e.bucket(""))
	log := zerolog.Nop()
	if testing.Verbose() {
		log = zerolog.New(zerolog.NewTestWriter(e.t)).With().Timestamp().Logger()
	}
	g, err := Join(e.t.Context(), fkv, Options{Instance: name, LeaseTTL: ttl, Log: log})
	if err != nil {
		e.t.Fatal(err)
	}
	return g, fkv
}

func claimAll(t *testing.T, g *Group, shards []string) []*Lease {
	t.Helper()
	g.SetShards("s", "c", len(shards))
	var out []*Lease
	for _, sh := range shards {
		l, err := g.Claim(t.Context(), "s", "c", sh)
		if err != nil || l == nil {
			t.Fatalf("claim %s: %v %v", sh, l, err)
		}
		out = append(out, l)
	}
	return out
}

// waitRenewed waits until each lease was renewed n more times than at the
// call, within bound.
func waitRenewed(t *testing.T, f *faultKV, ls []*Lease, n int, bound time.Duration) {
	t.Helper()
	base := map[string]int{}
	for _, l := range ls {
		base[l.key] = f.updated(l.key)
	}
	testutil.WaitFor(t, bound, "every lease renewed", func() bool {
		for _, l := range ls {
			if f.updated(l.key)-base[l.key] < n {
				return false
			}
		}
		return true
	})
}

// A membership heartbeat that hangs delays no lease renewal: the leases
// are renewed on their own deadlines and none is lost.
func TestSlowHeartbeatDelaysNoRenewal(t *testing.T) {
	skipShort(t)
	e := newEnv(t)
	g, f := e.joinFault("a")
	ls := claimAll(t, g, shardNames(4))
	open := f.block("member.")
	defer func() { open(); g.Close(context.Background()) }()
	// 3 renewals each: a whole TTL and more with the heartbeat stuck.
	waitRenewed(t, f, ls, 3, 2*testTTL)
	for _, l := range ls {
		if !l.Valid() {
			t.Fatalf("lease %s not valid with the heartbeat stuck", l.Shard)
		}
	}
	if st := g.Stats(); st.Lost != 0 || st.Owned != 4 {
		t.Fatalf("stats %+v: leases lost while the heartbeat hangs", st)
	}
}

// A renewal that hangs delays no other lease's renewal.
func TestSlowRenewalDelaysNoOther(t *testing.T) {
	skipShort(t)
	e := newEnv(t)
	g, f := e.joinFault("a")
	ls := claimAll(t, g, shardNames(4))
	open := f.block(ls[0].key)
	defer func() { open(); g.Close(context.Background()) }()
	waitRenewed(t, f, ls[1:], 3, 2*testTTL)
	for _, l := range ls[1:] {
		if !l.Valid() {
			t.Fatalf("lease %s not valid while another one's renewal hangs", l.Shard)
		}
	}
	// The stuck one stops in time: it is not renewed.
	testutil.WaitFor(t, testTTL, "the stuck lease lost", ls[0].Lost)
	if st := g.Stats(); st.Lost != 1 {
		t.Fatalf("stats %+v: want only the stuck lease lost", st)
	}
}

// A release while the lease's renewal is in flight waits for it and
// deletes the revision it wrote: released, not lost. The TTL is long, so
// that the renewal held at its gate does not outlast the lease; the
// renewal is made due at once.
func TestReleaseDuringRenewalIsNotLost(t *testing.T) {
	skipShort(t)
	const ttl = 30 * time.Second
	e := newEnv(t)
	g, f := e.joinFaultTTL("a", ttl)
	defer g.Close(context.Background())
	l := claimAll(t, g, shardNames(1))[0]
	open := f.block(l.key)
	defer open()
	n := f.updated(l.key)
	l.mu.Lock()
	l.next = time.Now()
	l.mu.Unlock()
	testutil.WaitFor(t, ttl/3, "a renewal in flight", func() bool { return f.updated(l.key) > n })
	released := make(chan struct{})
	go func() { l.Release(context.Background()); close(released) }()
	testutil.WaitFor(t, testTTL, "the release under way", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.released
	})
	open()
	select {
	case <-released:
	case <-time.After(ttl / 3):
		t.Fatal("release did not return")
	}
	if st := g.Stats(); st.Lost != 0 || st.Released != 1 {
		t.Fatalf("stats %+v: want the lease released, not lost", st)
	}
	if _, err := e.kv.Get(t.Context(), l.key); err != jetstream.ErrKeyNotFound {
		t.Fatalf("lease key after release: %v, want deleted", err)
	}
}

// A name held by a live process is refused; one left by a crashed process
// (its member key no longer renewed) or by one that left is taken.
func TestJoinRefusesNameOfLiveInstance(t *testing.T) {
	skipShort(t)
	e := newEnv(t)
	a := e.join("a", "")
	_, err := Join(t.Context(), e.bucket(""), Options{Instance: "a", LeaseTTL: testTTL, Log: zerolog.Nop()})
	if !errors.Is(err, ErrInstanceInUse) {
		t.Fatalf("second join as a: %v, want ErrInstanceInUse", err)
	}
	t.Logf("refused: %v", err)
	if st := a.Stats(); st.Members != 1 {
		t.Fatalf("stats of a %+v", st)
	}

	a.abort() // a crash: the member key stays, no longer renewed
	a2, err := Join(t.Context(), e.bucket(""), Options{Instance: "a", LeaseTTL: testTTL, Log: zerolog.Nop()})
	if err != nil {
		t.Fatalf("join after a crash: %v", err)
	}
	if err := a2.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	a3, err := Join(t.Context(), e.bucket(""), Options{Instance: "a", LeaseTTL: testTTL, Log: zerolog.Nop()})
	if err != nil {
		t.Fatalf("join after a graceful leave: %v", err)
	}
	a3.Close(context.Background())
}

// Two processes that join with one name at the same moment (each before
// the other's first heartbeat) both get in, but neither takes the other's
// leases as its own leftovers.
func TestTwinsDoNotTakeEachOthersLeases(t *testing.T) {
	skipShort(t)
	e := newEnv(t)
	f1 := newFaultKV(e.bucket(""))
	open := f1.block("member.")
	defer open()
	var a1 *Group
	joined := make(chan error, 1)
	go func() {
		var err error
		a1, err = Join(t.Context(), f1, Options{Instance: "a", LeaseTTL: testTTL, Log: zerolog.Nop()})
		joined <- err
	}()
	// The first one's announce is under way: it found the name free.
	testutil.WaitFor(t, testTTL, "the first join announcing itself", func() bool { return f1.writesOf("member.a") > 0 })
	a2, err := Join(t.Context(), e.bucket(""), Options{Instance: "a", LeaseTTL: testTTL, Log: zerolog.Nop()})
	if err != nil {
		t.Fatalf("second join: %v", err)
	}
	defer a2.Close(context.Background())
	open()
	if err := <-joined; err != nil {
		t.Fatalf("first join: %v", err)
	}
	defer a1.Close(context.Background())

	a2.SetShards("s", "c", 2)
	a1.SetShards("s", "c", 2)
	l2, err := a2.Claim(t.Context(), "s", "c", "shardId-000000000000")
	if err != nil || l2 == nil {
		t.Fatalf("claim: %v %v", l2, err)
	}
	key := leaseKey("s", "c", "shardId-000000000000")
	testutil.WaitFor(t, 2*testTTL, "the first one sees its twin and the twin's lease", func() bool {
		a1.mu.Lock()
		defer a1.mu.Unlock()
		return a1.twinLocked(time.Now()) && a1.leases[key] != nil && a1.leases[key].owner == "a"
	})
	if l, err := a1.Claim(t.Context(), "s", "c", "shardId-000000000000"); l != nil || err != nil {
		t.Fatalf("the twin's lease was taken as this process's own: %v %v", l, err)
	}
	if !l2.Valid() || a2.Stats().Lost != 0 {
		t.Fatalf("the twin's lease was lost: stats %+v", a2.Stats())
	}
}
