package coordination

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/fanoutd/fanoutd/internal/testutil"
	"github.com/fanoutd/fanoutd/jsassets"
)

// The tests of this file drive a reset of the group's view (the bucket
// deleted and created again) on one in-process server, with a TTL long
// enough that no renewal or expiry falls inside a step by chance: each step
// is driven by an event the faultKV holds or releases.
const resetTTL = 30 * time.Second

// reply makes a write that was sent wait at its key's reply gate, if any.
func (f *faultKV) reply(key string) {
	f.mu.Lock()
	var gate chan struct{}
	for p, g := range f.replies {
		if strings.HasPrefix(key, p) {
			gate = g
			f.landed[key]++
		}
	}
	f.mu.Unlock()
	if gate != nil {
		<-gate
	}
}

// holdReplies makes the writes of keys starting with prefix land, and their
// replies wait until the returned func is called.
func (f *faultKV) holdReplies(prefix string) (open func()) { return f.gate(f.replies, prefix) }

func (f *faultKV) landedOf(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.landed[key]
}

// timeOutNextCreate makes the next Create of key time out; landed: it is
// written all the same (only its reply is lost).
func (f *faultKV) timeOutNextCreate(key string, landed bool) {
	f.mu.Lock()
	f.timeouts[key] = landed
	f.mu.Unlock()
}

func (f *faultKV) timeoutsPending() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.timeouts)
}

// heldGate holds one watched entry in Value until released.
type heldGate struct {
	entered, release chan struct{}
	once             sync.Once
}

// holdEntry makes the next entry of key that a watcher delivers block when
// the group's watch loop, having received it, starts applying it (reads its
// key), until the returned release is called; entered is closed once it
// blocks.
func (f *faultKV) holdEntry(key string) (entered <-chan struct{}, release func()) {
	h := &heldGate{entered: make(chan struct{}), release: make(chan struct{})}
	f.mu.Lock()
	f.holds[key] = h
	f.mu.Unlock()
	var once sync.Once
	return h.entered, func() { once.Do(func() { close(h.release) }) }
}

type heldEntry struct {
	jetstream.KeyValueEntry
	h *heldGate
}

func (e *heldEntry) Key() string {
	e.h.once.Do(func() { close(e.h.entered) })
	<-e.h.release
	return e.KeyValueEntry.Key()
}

// gatedWatcher relays a watcher's entries, holding those holdEntry asked for.
type gatedWatcher struct {
	jetstream.KeyWatcher
	out  chan jetstream.KeyValueEntry
	stop chan struct{}
	once sync.Once
}

func (w *gatedWatcher) Updates() <-chan jetstream.KeyValueEntry { return w.out }

func (w *gatedWatcher) Stop() error {
	w.once.Do(func() { close(w.stop) })
	return w.KeyWatcher.Stop()
}

func (f *faultKV) WatchFiltered(ctx context.Context, keys []string, opts ...jetstream.WatchOpt) (jetstream.KeyWatcher, error) {
	inner, err := f.KeyValue.WatchFiltered(ctx, keys, opts...)
	if err != nil {
		return nil, err
	}
	w := &gatedWatcher{KeyWatcher: inner, out: make(chan jetstream.KeyValueEntry), stop: make(chan struct{})}
	go func() {
		defer close(w.out)
		for {
			var e jetstream.KeyValueEntry
			select {
			case <-w.stop:
				return
			case got, ok := <-inner.Updates():
				if !ok {
					return
				}
				e = got
			}
			f.mu.Lock()
			if e == nil {
				f.current++
			} else if h := f.holds[e.Key()]; h != nil {
				delete(f.holds, e.Key())
				e = &heldEntry{KeyValueEntry: e, h: h}
			}
			f.mu.Unlock()
			select {
			case <-w.stop:
				return
			case w.out <- e:
			}
		}
	}()
	return w, nil
}

func (f *faultKV) watchersCurrent() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.current
}

// resetEnv is one in-process server with a coordination bucket, and an
// instance a joined through a faultKV.
type resetEnv struct {
	t  *testing.T
	js jetstream.JetStream
	kv jetstream.KeyValue // the test's own handle
	g  *Group
	f  *faultKV
}

func newResetEnv(t *testing.T, ttl time.Duration) *resetEnv {
	t.Helper()
	return newResetEnvRecreating(t, ttl, false)
}

// newResetEnvRecreating is newResetEnv; recreates: the group may recreate
// a deleted bucket (Options.JetStream, over a connection of its own).
func newResetEnvRecreating(t *testing.T, ttl time.Duration, recreates bool) *resetEnv {
	t.Helper()
	srv := testutil.StartNATS(t, testutil.NATSOptions{JetStream: true})
	conn := func() jetstream.JetStream { return testutil.JetStream(t, srv.ClientURL()) }
	js := conn()
	cfg := jsassets.KVSpec{Name: "fanoutd_coordination", Replicas: 1}
	kv, err := jsassets.EnsureKV(t.Context(), js.Conn(), cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	// The old bucket's revisions run well ahead of the new one's: no
	// revision of one names a write of the other by chance.
	for range 50 {
		if _, err := kv.Put(t.Context(), "filler", []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	gkv, err := conn().KeyValue(t.Context(), cfg.Name)
	if err != nil {
		t.Fatal(err)
	}
	f := newFaultKV(gkv)
	log := zerolog.Nop()
	if testing.Verbose() {
		log = zerolog.New(zerolog.NewTestWriter(t)).With().Timestamp().Logger()
	}
	o := Options{Instance: "a", LeaseTTL: ttl, Log: log}
	if recreates {
		o.Conn, o.Bucket = conn().Conn(), cfg
	}
	g, err := Join(t.Context(), f, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close(context.Background()) })
	g.SetShards("s", "c", 1)
	return &resetEnv{t: t, js: js, kv: kv, g: g, f: f}
}

// recreate deletes the bucket and creates it again, and makes the group
// check it now (as a failed renewal or a revision going backwards does),
// then waits for the group's reset.
func (e *resetEnv) recreate() {
	e.t.Helper()
	e.recreateWithin(resetTTL / 2)
}

// recreateWithin is recreate with the reset awaited for at most bound.
func (e *resetEnv) recreateWithin(bound time.Duration) {
	e.t.Helper()
	if err := e.js.DeleteKeyValue(e.t.Context(), "fanoutd_coordination"); err != nil {
		e.t.Fatal(err)
	}
	if _, err := jsassets.EnsureKV(e.t.Context(), e.js.Conn(), jsassets.KVSpec{Name: "fanoutd_coordination", Replicas: 1}, zerolog.Nop()); err != nil {
		e.t.Fatal(err)
	}
	resets := e.g.Stats().BucketResets
	e.g.suspectBucket()
	testutil.WaitFor(e.t, bound, "the group's reset", func() bool { return e.g.Stats().BucketResets == resets+1 })
}

// writtenAnew reports whether the bucket holds l's key written by a at the
// revision l renews from: the lease lives on in the new bucket.
func (e *resetEnv) writtenAnew(l *Lease) bool {
	got, err := e.kv.Get(e.t.Context(), l.key)
	if err != nil {
		return false
	}
	var v leaseValue
	_ = json.Unmarshal(got.Value(), &v)
	l.mu.Lock()
	defer l.mu.Unlock()
	return v.Owner == "a" && got.Revision() == l.rev
}

func (e *resetEnv) noLeaseLost(l *Lease) {
	e.t.Helper()
	if st := e.g.Stats(); st.Lost != 0 || st.Owned != 1 || !l.Valid() {
		e.t.Fatalf("stats %+v, lease valid %v: want the lease kept", st, l.Valid())
	}
}

// A lease whose first write into the recreated bucket times out (the new
// stream has no leader yet; or the write landed and only its reply was
// lost) is written again, while it is valid: kept, not lost.
func TestReclaimRetriedAfterATimeout(t *testing.T) {
	for _, landed := range []bool{false, true} {
		t.Run(fmt.Sprintf("landed=%v", landed), func(t *testing.T) {
			e := newResetEnv(t, resetTTL)
			l := claimNow(t, e.g, "shardId-1")
			e.f.timeOutNextCreate(l.key, landed)
			e.recreate()
			testutil.WaitFor(t, resetTTL/2, "the lease written into the new bucket", func() bool { return e.writtenAnew(l) })
			if n := e.f.timeoutsPending(); n != 0 {
				t.Fatal("the write into the new bucket did not time out once")
			}
			e.noLeaseLost(l)
		})
	}
}

// A claim written into the old bucket whose reply comes after the reset
// (which found no such lease to write anew) is written into the new bucket
// all the same: the shard stays owned.
func TestClaimDuringResetIsWrittenAnew(t *testing.T) {
	e := newResetEnv(t, resetTTL)
	key := leaseKey("s", "c", "shardId-1")
	open := e.f.holdReplies(key)
	defer open()
	claimed := make(chan *Lease, 1)
	go func() {
		l, err := e.g.Claim(t.Context(), "s", "c", "shardId-1")
		if err != nil {
			t.Error(err)
		}
		claimed <- l
	}()
	testutil.WaitFor(t, resetTTL/2, "the claim written into the old bucket", func() bool { return e.f.landedOf(key) > 0 })
	e.recreate()
	open()
	l := <-claimed
	if l == nil {
		t.Fatal("claim refused")
	}
	testutil.WaitFor(t, resetTTL/2, "the claimed lease written into the new bucket", func() bool { return e.writtenAnew(l) })
	e.noLeaseLost(l)
}

// A change the old watcher delivered but the group applies only after the
// reset (its revision, of the old bucket, above the new bucket's) is
// dropped: the new bucket's changes of that key are seen, and a takeover
// there ends the lease at once.
func TestOldWatcherEntryAfterResetIsDropped(t *testing.T) {
	e := newResetEnv(t, resetTTL)
	key := leaseKey("s", "c", "shardId-1")
	entered, release := e.f.holdEntry(key)
	defer release()
	l := claimNow(t, e.g, "shardId-1")
	select {
	case <-entered: // the watch loop is applying the claim, seen in the old bucket
	case <-time.After(resetTTL / 2):
		t.Fatal("the watcher did not deliver the claim")
	}
	e.recreate()
	testutil.WaitFor(t, resetTTL/2, "the lease written into the new bucket", func() bool { return e.writtenAnew(l) })
	release()
	testutil.WaitFor(t, resetTTL/2, "a new watcher current", func() bool { return e.f.watchersCurrent() >= 2 })

	// Another instance takes the lease over in the new bucket.
	got, err := e.kv.Get(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := json.Marshal(leaseValue{Owner: "b", At: time.Now().UTC()})
	if _, err := e.kv.Update(t.Context(), key, v, got.Revision()); err != nil {
		t.Fatal(err)
	}
	// Well before the next renewal (a third of the TTL after the lease was
	// written anew) would find out.
	lostWithin(t, l, 3*time.Second, "taken over in the new bucket")
}

// A lease released after the reset, before it was written into the new
// bucket, is released (there is nothing of it to delete there), not
// counted lost.
func TestReleaseBeforeTheLeaseIsWrittenAnew(t *testing.T) {
	e := newResetEnv(t, resetTTL)
	l := claimNow(t, e.g, "shardId-1")
	// The membership write after the reset hangs: the reset goes no
	// further by itself.
	open := e.f.block("member.")
	defer open()
	e.recreate()
	l.Release(t.Context())
	if st := e.g.Stats(); st.Lost != 0 || st.Released != 1 || st.Owned != 0 {
		t.Fatalf("stats %+v: want the lease released, not lost", st)
	}
	if _, err := e.kv.Get(t.Context(), l.key); err != jetstream.ErrKeyNotFound {
		t.Fatalf("lease key in the new bucket after the release: %v, want none", err)
	}
}

// A bucket status read that gets no answer (the bucket another instance
// has just recreated has no leader yet) is asked again after a short
// attempt (TTL/10), not after TTL/3: the group resets to the new bucket
// and writes its lease anew with most of the lease's validity left.
func TestUnansweredBucketStatusIsAskedAgain(t *testing.T) {
	e := newResetEnv(t, resetTTL)
	l := claimNow(t, e.g, "shardId-1")
	e.f.loseNextStatus()
	// Two attempts and the backoff between them, well before TTL/3.
	e.recreateWithin(resetTTL / 5)
	if n := e.f.lostStatusesPending(); n != 0 {
		t.Fatal("the group's status read was not left unanswered once")
	}
	testutil.WaitFor(t, resetTTL/5, "the lease written into the new bucket", func() bool { return e.writtenAnew(l) })
	e.noLeaseLost(l)
}

// loseNextUpdate makes the next Update of key get no answer, as a write
// into a bucket being deleted: it waits for its context to end.
func (f *faultKV) loseNextUpdate(key string) {
	f.mu.Lock()
	f.lostUpdates[key] = true
	f.mu.Unlock()
}

// A renewal in flight when the group resets (sent into the bucket being
// deleted, never answered) is given up at the reset, and the lease is
// written into the new bucket at once, not after the renewal's timeout
// (TTL/3) and a retry: that was most of what remained of its validity.
func TestRenewalInFlightAtResetGivenUp(t *testing.T) {
	e := newResetEnv(t, resetTTL)
	l := claimNow(t, e.g, "shardId-1")
	e.f.loseNextUpdate(l.key)
	n := e.f.updated(l.key)
	l.mu.Lock()
	l.next = time.Now()
	l.mu.Unlock()
	testutil.WaitFor(t, resetTTL/3, "a renewal in flight", func() bool { return e.f.updated(l.key) > n })
	e.recreate()
	testutil.WaitFor(t, resetTTL/10, "the lease written into the new bucket", func() bool { return e.writtenAnew(l) })
	e.noLeaseLost(l)
}

// A failed heartbeat has the bucket checked at once: an instance with no
// lease to renew (nor a claim to make) notices a deleted bucket at its
// next heartbeat (TTL/3), not at the periodic check (TTL), and recreates it.
func TestFailedHeartbeatChecksTheBucket(t *testing.T) {
	e := newResetEnvRecreating(t, resetTTL, true)
	if err := e.js.DeleteKeyValue(t.Context(), "fanoutd_coordination"); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, resetTTL/2, "the bucket recreated and the group reset to it", func() bool {
		_, err := e.js.KeyValue(t.Context(), "fanoutd_coordination")
		return err == nil && e.g.Stats().BucketResets == 1
	})
}
