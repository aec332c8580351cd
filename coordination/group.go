// Package coordination owns leases and membership in a NATS JetStream
// key-value bucket: which instance of a group reads which shard. It does
// not read shards; fanout asks it before starting one and stops when a
// lease ends.
//
// Expiry never compares clocks across machines. An instance renews each of
// its leases (a compare-and-set on the key's revision) every LeaseTTL/3; the
// others watch the bucket and take a lease over only once its revision has
// not changed for a whole LeaseTTL, measured on their own clock from when
// they saw that revision. The owner stops reading a shard once 3/4 LeaseTTL
// have passed since it sent its last renewal that succeeded, which is
// before anyone else can see the lease expire: never two readers.
// It checks both clocks: the monotonic one stands still while the machine
// is suspended (CLOCK_MONOTONIC on Linux), so the wall-clock time of each
// renewal is recorded in the lease too, and a process resumed after a
// pause (SIGSTOP, a VM suspend, a long GC) finds its leases no longer valid
// by either clock.
package coordination

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fanoutd/fanoutd/jsassets"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

// DefaultLeaseTTL is the lease TTL when Options.LeaseTTL is zero.
const DefaultLeaseTTL = 10 * time.Second

// Options configure a Group.
type Options struct {
	// Instance is this instance's name in the group; unique. Join refuses
	// a name another live process holds (ErrInstanceInUse).
	Instance string
	// LeaseTTL: a dead instance's shards move after about this long.
	LeaseTTL time.Duration
	Log      zerolog.Logger
	// ObserveRenew, if set, is called after each lease renewal with its
	// latency and error (metrics).
	ObserveRenew func(d time.Duration, err error)
	// RenewConcurrency bounds the renewals in flight at once (default
	// DefaultRenewConcurrency).
	RenewConcurrency int
	// Conn and Bucket, if Conn is set, recreate the bucket when it is
	// deleted while the group runs.
	Conn   *nats.Conn
	Bucket jsassets.KVSpec

	// wall, if set, replaces the wall clock (tests move it as a suspend
	// would, without the monotonic clock).
	wall func() time.Time
}

// DefaultRenewConcurrency is Options.RenewConcurrency when zero.
const DefaultRenewConcurrency = 32

// Group is this instance's membership in a group sharing the shards of
// some streams.
type Group struct {
	kv       jetstream.KeyValue
	instance string
	ttl      time.Duration
	log      zerolog.Logger
	observe  func(time.Duration, error)
	// wall reads the wall clock alone (no monotonic reading): it keeps
	// going while the machine is suspended.
	wall func() time.Time
	// renewing bounds the renewals in flight (a semaphore).
	renewing chan struct{}
	// token tells this process's member key from another process's with
	// the same name.
	token string
	// js and bucket recreate a deleted bucket (js nil: not).
	nc          *nats.Conn // recreates a deleted bucket; nil: never
	bucket      jsassets.KVSpec
	checkBucket chan struct{}
	rewatch     chan struct{}

	cancel context.CancelFunc
	wg     sync.WaitGroup
	wake   chan struct{}
	// rebal is signalled when a handed-over lease was released: the next
	// handoff need not wait for the renewal tick.
	rebal chan struct{}

	mu       sync.Mutex
	leases   map[string]*observed // lease key -> latest seen
	members  map[string]*observed // member key -> latest seen
	held     map[string]*Lease    // lease key -> this instance's lease
	readable map[string]int       // stream/consumer -> readable shards (SetShards)
	handoff  map[string]bool      // stream/consumer -> a handoff is under way
	// created is when the bucket's stream was created, as last checked;
	// resetAt is when the view of the bucket was last reset (a new bucket).
	created time.Time
	resetAt time.Time
	// epoch counts the resets: a revision read or written in an earlier
	// epoch is one of a bucket that is gone, meaningless in this one. The
	// watcher, each claim and each lease carry the epoch they started in.
	epoch uint64
	// epochEnd is closed when the epoch ends (a reset): writes of its
	// leases still in flight into the old bucket are given up then.
	epochEnd  chan struct{}
	twinAt    time.Time      // another process with this name last seen (checkOwnMember)
	conflicts map[string]int // lease key -> claim conflicts in a row
	stats     Stats
}

// Stats are the Group's counters.
type Stats struct {
	Owned          int    `json:"owned"`
	Members        int    `json:"members"`
	Acquired       uint64 `json:"acquired"`
	RenewFailures  uint64 `json:"renew_failures"`
	Lost           uint64 `json:"lost"`
	Handoffs       uint64 `json:"handoffs"`
	Released       uint64 `json:"released"`
	TakenOverStale uint64 `json:"taken_over_expired"`
	// ClaimConflicts: claims that found the lease written by another
	// instance first.
	ClaimConflicts uint64 `json:"claim_conflicts"`
	// BucketResets: times the bucket was found deleted or created again.
	BucketResets uint64 `json:"bucket_resets"`
}

type observed struct {
	owner   string
	rev     uint64
	seen    time.Time // when this revision was first seen here
	expired bool      // reported as expired once (wake)
}

// leaseValue is the JSON value of a lease or member key. Expires (absent
// in values written before it was recorded) is the wall-clock time of the
// write plus the TTL: for operators, and what the owner's own validity
// check measures against besides the monotonic clock.
type leaseValue struct {
	Owner   string    `json:"owner"`
	At      time.Time `json:"at"`
	Expires time.Time `json:"expires,omitzero"`
}

// value is this instance's lease value for a write sent at sent.
func (g *Group) value(sent time.Time) []byte {
	v, _ := json.Marshal(leaseValue{Owner: g.instance, At: sent.UTC().Round(0), Expires: sent.UTC().Round(0).Add(g.ttl)})
	return v
}

// part escapes a key part ('.' is the KV token separator).
func part(s string) string { return strings.ReplaceAll(s, ".", "=2E") }

func unpart(s string) string { return strings.ReplaceAll(s, "=2E", ".") }

func leaseKey(stream, consumer, shard string) string {
	return "lease." + part(stream) + "." + part(consumer) + "." + part(shard)
}

func groupKey(stream, consumer string) string { return stream + "/" + consumer }

// Join starts this instance's membership: it announces itself, watches the
// bucket and renews its leases until Close.
func Join(ctx context.Context, kv jetstream.KeyValue, o Options) (*Group, error) {
	if o.Instance == "" {
		return nil, errors.New("coordination: no instance name")
	}
	if o.LeaseTTL <= 0 {
		o.LeaseTTL = DefaultLeaseTTL
	}
	if o.wall == nil {
		o.wall = func() time.Time { return time.Now().Round(0) }
	}
	if o.RenewConcurrency <= 0 {
		o.RenewConcurrency = DefaultRenewConcurrency
	}
	g := &Group{
		kv: kv, instance: o.Instance, ttl: o.LeaseTTL, observe: o.ObserveRenew,
		wall:     o.wall,
		renewing: make(chan struct{}, o.RenewConcurrency), token: newToken(),
		nc: o.Conn, bucket: o.Bucket, checkBucket: make(chan struct{}, 1), rewatch: make(chan struct{}, 1),
		conflicts: map[string]int{}, epochEnd: make(chan struct{}),
		log:  o.Log.With().Str("component", "coordination").Str("instance", o.Instance).Logger(),
		wake: make(chan struct{}, 1), rebal: make(chan struct{}, 1),
		leases: map[string]*observed{}, members: map[string]*observed{}, held: map[string]*Lease{},
		readable: map[string]int{}, handoff: map[string]bool{},
	}
	if err := g.checkName(ctx); err != nil {
		return nil, fmt.Errorf("coordination: join as %s: %w", o.Instance, err)
	}
	// Instances that start together announce themselves in a bucket one of
	// them may have just created: until its stream has a leader, a put
	// gets no response.
	err := jsassets.Retry(ctx, jsassets.RetryOptions{PerAttempt: g.ttl, Attempts: 10, Retriable: jsassets.StreamStarting},
		g.heartbeat)
	if err != nil {
		return nil, fmt.Errorf("coordination: announce %s: %w", o.Instance, err)
	}
	if g.created, _, err = g.bucketCreated(ctx); err != nil { // before any goroutine reads it
		g.log.Debug().Err(err).Msg("could not read the coordination bucket's status")
	}
	w, err := kv.WatchFiltered(ctx, []string{"lease.>", "member.>"})
	if err != nil {
		return nil, fmt.Errorf("coordination: watch bucket %s: %w", kv.Bucket(), err)
	}
	// Wait for the current values, so that the first claims know the table.
	if err := g.applyUntilCurrent(ctx, w); err != nil {
		w.Stop()
		return nil, err
	}
	rctx, cancel := context.WithCancel(context.Background())
	g.cancel = cancel
	g.wg.Add(5)
	go func() { defer g.wg.Done(); g.watch(rctx, w, 0) }()
	go func() { defer g.wg.Done(); g.heartbeatLoop(rctx) }()
	go func() { defer g.wg.Done(); g.renewLoop(rctx) }()
	go func() { defer g.wg.Done(); g.checkLoop(rctx) }()
	go func() { defer g.wg.Done(); g.bucketLoop(rctx) }()
	g.log.Info().Str("lease_ttl", g.ttl.String()).Msg("joined the group")
	return g, nil
}

// Instance is this instance's name.
func (g *Group) Instance() string { return g.instance }

// Wake is signalled when a lease may be free to claim (released, expired)
// or the group changed (an instance joined or left): a reader should try
// its claims again.
func (g *Group) Wake() <-chan struct{} { return g.wake }

func (g *Group) signal() {
	select {
	case g.wake <- struct{}{}:
	default:
	}
}

func (g *Group) heartbeat(ctx context.Context) error {
	v, _ := json.Marshal(memberValue{Owner: g.instance, At: time.Now().UTC(), Token: g.token})
	ctx, cancel := context.WithTimeout(ctx, g.ttl/3)
	defer cancel()
	_, err := g.kv.Put(ctx, g.memberKey(), v)
	return err
}

func (g *Group) applyUntilCurrent(ctx context.Context, w jetstream.KeyWatcher) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case e, ok := <-w.Updates():
			if !ok {
				return errors.New("coordination: watcher closed")
			}
			if e == nil {
				return nil
			}
			g.apply(e, 0)
		}
	}
}

// watch applies every change of the bucket to the table, watching again
// if the watcher ends (a reconnect). epoch is the watcher's: what it still
// delivers after a reset is of the old bucket, and dropped.
func (g *Group) watch(ctx context.Context, w jetstream.KeyWatcher, epoch uint64) {
	for {
		select {
		case <-ctx.Done():
			w.Stop()
			return
		case <-g.rewatch:
			// A new bucket: its table from scratch (reset cleared it).
		case e, ok := <-w.Updates():
			if ok {
				if e != nil {
					g.apply(e, epoch)
				}
				continue
			}
		}
		w.Stop()
		if w, epoch = g.watchAgain(ctx); w == nil {
			return
		}
	}
}

// watchAgain starts a new watcher, retrying until it succeeds or ctx ends
// (then nil), and returns the epoch it started in.
func (g *Group) watchAgain(ctx context.Context) (jetstream.KeyWatcher, uint64) {
	for {
		epoch := g.currentEpoch()
		w, err := g.kv.WatchFiltered(ctx, []string{"lease.>", "member.>"})
		if err == nil {
			return w, epoch
		}
		g.log.Warn().Err(err).Msg("watch the coordination bucket again")
		select {
		case <-ctx.Done():
			return nil, 0
		case <-time.After(g.ttl / 10):
		}
	}
}

func (g *Group) currentEpoch() uint64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.epoch
}

// apply records a change a watcher of the given epoch delivered.
func (g *Group) apply(e jetstream.KeyValueEntry, epoch uint64) {
	member := strings.HasPrefix(e.Key(), "member.")
	if !member && !strings.HasPrefix(e.Key(), "lease.") {
		return
	}
	if member {
		g.checkOwnMember(e)
	}
	owner := ""
	if e.Operation() == jetstream.KeyValuePut {
		var v leaseValue
		if json.Unmarshal(e.Value(), &v) == nil {
			owner = v.Owner
		}
	}
	if l := g.record(e, owner, member, epoch); l != nil {
		g.lose(l, "another instance took the lease over")
	}
}

// record puts an observed change into the table of leases or of members,
// unless a watcher of an earlier epoch saw it (a change of a bucket that is
// gone). It returns the lease this instance holds on the key if the change
// is someone else's (a takeover, or a delete): that lease is lost at once,
// not at its next renewal.
func (g *Group) record(e jetstream.KeyValueEntry, owner string, member bool, epoch uint64) *Lease {
	g.mu.Lock()
	defer g.mu.Unlock()
	if epoch != g.epoch {
		return nil
	}
	table := g.leases
	if member {
		table = g.members
	}
	cur := table[e.Key()]
	if cur != nil && cur.rev >= e.Revision() {
		if cur.rev > e.Revision() {
			g.suspectBucket() // revisions went backwards: a new bucket?
		}
		return nil
	}
	table[e.Key()] = &observed{owner: owner, rev: e.Revision(), seen: time.Now()}
	joined := member && cur == nil && owner != ""
	if owner == "" || joined || cur != nil && cur.owner != owner {
		g.signal() // released, or the group changed
	}
	if l := g.held[e.Key()]; l != nil && !member && owner != g.instance {
		// A lease not yet written into this bucket is someone else's here
		// whatever the revision: its write as a creation would fail.
		l.mu.Lock()
		theirs := l.epoch != g.epoch || e.Revision() > l.rev
		l.mu.Unlock()
		if theirs {
			return l
		}
	}
	return nil
}

// live reports whether an observed key was changed within the TTL.
func (g *Group) live(o *observed, now time.Time) bool {
	return o != nil && o.owner != "" && now.Sub(o.seen) <= g.ttl
}

// membersLocked counts the live instances, this one included.
func (g *Group) membersLocked(now time.Time) int {
	n := 1
	for k, o := range g.members {
		if g.live(o, now) && k != "member."+part(g.instance) {
			n++
		}
	}
	return n
}

// SetShards tells the group how many shards of a stream are readable now
// (not ended, parents ended): the base of each instance's share.
func (g *Group) SetShards(stream, consumer string, readable int) {
	g.mu.Lock()
	g.readable[groupKey(stream, consumer)] = readable
	g.mu.Unlock()
}

// shareLocked is the most shards of a stream one instance should hold
// (the ceiling of an even share), and the least (the floor).
func (g *Group) shareLocked(gk string, now time.Time) (most, least int) {
	n, m := g.readable[gk], g.membersLocked(now)
	return int(math.Ceil(float64(n) / float64(m))), n / m
}

func (g *Group) ownedLocked(gk string) int {
	n := 0
	for _, l := range g.held {
		if l.gk == gk {
			n++
		}
	}
	return n
}

// Claim tries to take the lease on a shard: it succeeds when the lease is
// free (never taken, released, or expired: unchanged for a whole TTL) and
// this instance holds less than its share of the stream: less than the
// floor of an even share, or less than the ceiling while no other instance
// is below the floor. It returns nil when the shard is not this instance's
// to read now.
func (g *Group) Claim(ctx context.Context, stream, consumer, shard string) (*Lease, error) {
	key := leaseKey(stream, consumer, shard)
	gk := groupKey(stream, consumer)
	now := time.Now()
	g.mu.Lock()
	if g.held[key] != nil {
		g.mu.Unlock()
		return nil, nil
	}
	o := g.leases[key]
	expired := o != nil && o.owner != "" && o.owner != g.instance && !g.live(o, now)
	// A key not seen since the bucket was recreated may still be read by
	// an instance that has not noticed yet: free only a TTL later.
	unseen := o == nil && now.Sub(g.resetAt) <= g.ttl
	mine := o != nil && o.owner == g.instance && !g.twinLocked(now) // left by a previous start
	free := (o == nil || o.owner == "" || mine || expired) && !unseen
	// Up to the floor of an even share, always; up to the ceiling only while
	// no other instance is below the floor (it gets freed shards first).
	most, least := g.shareLocked(gk, now)
	owned := g.ownedLocked(gk)
	if !free || owned >= most || owned >= least && g.someoneUnderLocked(gk, least, now) {
		g.mu.Unlock()
		return nil, nil
	}
	var rev uint64
	if o != nil {
		rev = o.rev
	}
	epoch := g.epoch
	g.mu.Unlock()

	sent := time.Now()
	v := g.value(sent)
	cctx, cancel := context.WithTimeout(ctx, g.ttl/3)
	defer cancel()
	var err error
	if rev == 0 {
		rev, err = g.kv.Create(cctx, key, v)
	} else {
		rev, err = g.kv.Update(cctx, key, v, rev)
	}
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		g.claimConflict(key) // someone was faster
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("claim %s: %w", key, err)
	}
	l := &Lease{g: g, key: key, gk: gk, Stream: stream, Consumer: consumer, Shard: shard, rev: rev, epoch: epoch, sent: sent,
		next: sent.Add(g.renewEvery()), done: make(chan struct{})}
	g.mu.Lock()
	if g.epoch == epoch {
		g.leases[key] = &observed{owner: g.instance, rev: rev, seen: sent}
	} else {
		// The bucket was reset during the claim: the write is of the old
		// bucket (the reset found no such lease to write anew). Held like
		// the others the reset found, and written into the new one now.
		l.next = sent
	}
	g.held[key] = l
	delete(g.conflicts, key)
	g.stats.Acquired++
	if expired {
		g.stats.TakenOverStale++
	}
	g.mu.Unlock()
	ev := g.log.Info().Str("stream", stream).Str("consumer", consumer).Str("shard", shard)
	if expired {
		ev = ev.Str("previous_owner", o.owner)
	}
	ev.Msg("lease acquired")
	return l, nil
}

// renew renews one lease (a compare-and-set on its revision), or writes it
// into a recreated bucket (reclaim). It holds the lease's op lock across the
// call, so that a Release waits for it and deletes the revision it wrote.
func (g *Group) renew(ctx context.Context, l *Lease) {
	l.op.Lock()
	defer l.op.Unlock()
	l.mu.Lock()
	if l.err == ErrLeaseLost || l.released {
		l.mu.Unlock()
		return
	}
	rev, epoch := l.rev, l.epoch
	l.mu.Unlock()
	g.mu.Lock()
	cur, ended := g.epoch, g.epochEnd
	g.mu.Unlock()
	if cur != epoch {
		g.reclaim(ctx, l, cur)
		return
	}
	sent := time.Now()
	v := g.value(sent)
	// A reset during the call ends it: a write into a bucket that is gone
	// may go unanswered for the whole timeout, while the lease is to be
	// written into the new one at once.
	tctx, cancel := context.WithTimeout(ctx, g.ttl/3)
	cctx, stop := untilClosed(tctx, ended)
	newRev, err := g.kv.Update(cctx, l.key, v, rev)
	stop()
	cancel()
	if g.observe != nil {
		g.observe(time.Since(sent), err)
	}
	switch {
	case err == nil:
		next := sent.Add(g.renewEvery())
		if g.currentEpoch() != epoch {
			next = time.Now() // written into the old bucket: into the new one now
		}
		l.mu.Lock()
		l.rev, l.sent, l.next = newRev, sent, next
		l.mu.Unlock()
	case errors.Is(err, jetstream.ErrKeyRevisionMismatch):
		if g.bucketChanged(ctx, epoch) {
			// A new bucket: the lease is written anew into it (by the next
			// renewal once the reset is done); retried meanwhile.
			g.suspectBucket()
			next := time.Now().Add(g.retryEvery())
			if g.currentEpoch() != epoch {
				next = time.Now()
			}
			l.mu.Lock()
			l.next = next
			l.mu.Unlock()
			return
		}
		g.lose(l, "another instance holds the lease now")
	case g.currentEpoch() != epoch:
		// Cut short by a reset, or failed against the old bucket: into
		// the new one now.
		l.mu.Lock()
		l.next = time.Now()
		l.mu.Unlock()
	default:
		g.suspectBucket()
		l.mu.Lock()
		l.next = time.Now().Add(g.retryEvery())
		l.mu.Unlock()
		if ctx.Err() == nil {
			g.mu.Lock()
			g.stats.RenewFailures++
			g.mu.Unlock()
			g.log.Warn().Err(err).Str("stream", l.Stream).Str("shard", l.Shard).Msg("could not renew a lease; retrying")
		}
	}
}

// untilClosed is ctx, cancelled too when ended is closed.
func untilClosed(ctx context.Context, ended <-chan struct{}) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		select {
		case <-ended:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// checkLoop ends the leases that could not be renewed in time, and wakes
// readers when someone else's lease expires.
func (g *Group) checkLoop(ctx context.Context) { every(ctx, g.ttl/20, nil, g.checkLeases) }

func (g *Group) checkLeases() {
	now := time.Now()
	var late []*Lease
	g.mu.Lock()
	for _, l := range g.held {
		l.mu.Lock()
		if l.err != ErrLeaseLost && !g.fresh(l.sent) {
			late = append(late, l)
		}
		l.mu.Unlock()
	}
	wake := false
	for _, tbl := range []map[string]*observed{g.leases, g.members} {
		for _, o := range tbl {
			if o.owner != "" && !o.expired && !g.live(o, now) {
				o.expired = true
				wake = true
			}
		}
	}
	g.mu.Unlock()
	for _, l := range late {
		g.lose(l, "could not renew the lease in time")
	}
	if wake {
		g.signal()
	}
}

// every calls f every d, and at once when wake fires (nil: never), until
// ctx ends.
func every(ctx context.Context, d time.Duration, wake <-chan struct{}, f func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-wake:
		}
		f()
	}
}

// stopAfter is how long after its last renewal was sent a lease stops
// being read: well before others can see it expire (a whole TTL after
// they saw that renewal).
func (g *Group) stopAfter() time.Duration { return g.ttl * 3 / 4 }

// fresh reports whether a renewal sent at sent still lets the lease be
// used, by the monotonic clock and by the wall clock: after a suspend the
// first has not moved, the second has.
func (g *Group) fresh(sent time.Time) bool {
	return time.Since(sent) <= g.stopAfter() && g.wall().Sub(sent.Round(0)) <= g.stopAfter()
}

func (g *Group) lose(l *Lease, why string) {
	if l.end(ErrLeaseLost) {
		g.mu.Lock()
		g.stats.Lost++
		delete(g.held, l.key)
		delete(g.handoff, l.gk)
		g.mu.Unlock()
		g.log.Warn().Str("stream", l.Stream).Str("shard", l.Shard).Str("reason", why).Msg("lease lost; stopped reading the shard")
	}
}

// rebalance hands one lease over (per stream, one at a time) when this
// instance holds more than the ceiling of an even share, or more than the
// floor while another live instance holds less than the floor and no shard
// is free for it.
func (g *Group) rebalance() {
	now := time.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	byGroup := map[string][]*Lease{}
	for _, l := range g.held {
		byGroup[l.gk] = append(byGroup[l.gk], l)
	}
	for gk, ls := range byGroup {
		if g.handoff[gk] {
			continue
		}
		most, least := g.shareLocked(gk, now)
		owned := len(ls)
		give := owned > most
		if !give && owned > least && g.someoneUnderLocked(gk, least, now) && !g.anyFreeLocked(gk, now) {
			give = true
		}
		if !give {
			continue
		}
		slices.SortFunc(ls, func(a, b *Lease) int { return strings.Compare(b.Shard, a.Shard) })
		if ls[0].end(ErrHandoff) {
			g.handoff[gk] = true
			g.stats.Handoffs++
			g.log.Info().Str("stream", ls[0].Stream).Str("shard", ls[0].Shard).Int("owned", owned).Int("share", most).
				Msg("handing a shard over to rebalance the group")
		}
	}
}

// someoneUnderLocked reports whether a live instance other than this one
// holds fewer than least shards of the stream.
func (g *Group) someoneUnderLocked(gk string, least int, now time.Time) bool {
	count := map[string]int{}
	for k, o := range g.members {
		if g.live(o, now) && k != "member."+part(g.instance) {
			count[o.owner] = 0
		}
	}
	prefix := g.leasePrefix(gk)
	for k, o := range g.leases {
		if strings.HasPrefix(k, prefix) && g.live(o, now) {
			if _, ok := count[o.owner]; ok {
				count[o.owner]++
			}
		}
	}
	for _, n := range count {
		if n < least {
			return true
		}
	}
	return false
}

// anyFreeLocked reports whether a known lease of the stream is free.
func (g *Group) anyFreeLocked(gk string, now time.Time) bool {
	prefix := g.leasePrefix(gk)
	for k, o := range g.leases {
		if strings.HasPrefix(k, prefix) && g.held[k] == nil && !g.live(o, now) {
			return true
		}
	}
	return false
}

func (g *Group) leasePrefix(gk string) string {
	stream, consumer, _ := strings.Cut(gk, "/")
	return "lease." + part(stream) + "." + part(consumer) + "."
}

// LeaseInfo is one lease as this instance sees it.
type LeaseInfo struct {
	Stream, Consumer, Shard string
	// Owner is "" for a free lease.
	Owner string
	// Expires is when others may take it over if it is not renewed.
	Expires time.Time
}

// Leases returns every lease of the group (of every stream), sorted.
func (g *Group) Leases() []LeaseInfo {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]LeaseInfo, 0, len(g.leases))
	for k, o := range g.leases {
		parts := strings.SplitN(strings.TrimPrefix(k, "lease."), ".", 3)
		if len(parts) != 3 {
			continue
		}
		li := LeaseInfo{Stream: unpart(parts[0]), Consumer: unpart(parts[1]), Shard: unpart(parts[2]), Owner: o.owner}
		if o.owner != "" {
			li.Expires = o.seen.Add(g.ttl)
		}
		out = append(out, li)
	}
	slices.SortFunc(out, func(a, b LeaseInfo) int {
		return strings.Compare(a.Stream+"/"+a.Consumer+"/"+a.Shard, b.Stream+"/"+b.Consumer+"/"+b.Shard)
	})
	return out
}

// Members returns the live instances of the group, sorted.
func (g *Group) Members() []string {
	now := time.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	out := []string{g.instance}
	for k, o := range g.members {
		if g.live(o, now) && k != "member."+part(g.instance) {
			out = append(out, o.owner)
		}
	}
	slices.Sort(out)
	return out
}

// Stats returns the counters.
func (g *Group) Stats() Stats {
	now := time.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	s := g.stats
	s.Owned = len(g.held)
	s.Members = g.membersLocked(now)
	return s
}

// Close leaves the group: it releases the leases still held (their readers
// should have released them after their final checkpoints) and deletes the
// member key, so that the others rebalance at once.
func (g *Group) Close(ctx context.Context) error {
	g.cancel()
	g.wg.Wait()
	g.mu.Lock()
	held := make([]*Lease, 0, len(g.held))
	for _, l := range g.held {
		held = append(held, l)
	}
	g.mu.Unlock()
	for _, l := range held {
		l.Release(ctx)
	}
	ctx, cancel := context.WithTimeout(ctx, g.ttl/3)
	defer cancel()
	if err := g.kv.Delete(ctx, "member."+part(g.instance)); err != nil {
		return fmt.Errorf("coordination: leave: %w", err)
	}
	g.log.Info().Msg("left the group")
	return nil
}
