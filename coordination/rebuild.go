package coordination

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/fanoutd/fanoutd/jsassets"
)

// A coordination bucket deleted, or deleted and created again, while the
// group runs starts its revisions again at 1: every revision this instance
// knows is meaningless there, and a compare-and-set against one fails for
// ever. The group notices it by the bucket's stream creation time (checked
// every TTL, and at once when a revision goes backwards, a renewal or a
// heartbeat fails or a claim keeps conflicting), recreates a missing bucket
// with its config, reads the table again from scratch, and writes its held
// leases anew (claims of keys that do not exist, so that nobody else can
// have taken them meanwhile). Each reset starts a new epoch: a revision of
// an earlier one is never compared with one of the new bucket. Keys it has
// not seen since are claimed only a TTL after the reset: another member may
// still be reading them until it notices.

// persistentConflicts is how many claim conflicts in a row on one key are
// logged (and make the group check its bucket).
const persistentConflicts = 3

// suspectBucket asks bucketLoop to check the bucket now.
func (g *Group) suspectBucket() {
	select {
	case g.checkBucket <- struct{}{}:
	default:
	}
}

// bucketLoop checks the bucket every TTL, and when asked.
func (g *Group) bucketLoop(ctx context.Context) {
	every(ctx, g.ttl, g.checkBucket, func() { g.verifyBucket(ctx) })
}

// bucketCreated is the creation time of the bucket's stream; missing
// reports a bucket that does not exist. The status is asked again while
// unanswered, for up to TTL/3: a bucket another instance has just recreated
// has no leader for a moment, and a request sent then gets no answer at
// all; waiting on that one would spend most of what remains of the held
// leases' validity before the group resets to the new bucket.
func (g *Group) bucketCreated(ctx context.Context) (created time.Time, missing bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, g.ttl/3)
	defer cancel()
	var st jetstream.KeyValueStatus
	err = jsassets.Retry(ctx, jsassets.RetryOptions{PerAttempt: g.ttl / 10, Attempts: math.MaxInt, Retriable: jsassets.StreamStarting},
		func(ctx context.Context) error {
			var err error
			st, err = g.kv.Status(ctx)
			return err
		})
	if errors.Is(err, jetstream.ErrBucketNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
		return time.Time{}, true, nil
	}
	if err != nil {
		return time.Time{}, false, err
	}
	bs, ok := st.(*jetstream.KeyValueBucketStatus)
	if !ok {
		return time.Time{}, false, nil
	}
	return bs.StreamInfo().Created, false, nil
}

// verifyBucket recreates a missing bucket, and resets the group's view when
// the bucket is not the one it knew.
func (g *Group) verifyBucket(ctx context.Context) {
	created, missing, err := g.bucketCreated(ctx)
	if err != nil {
		if ctx.Err() == nil {
			g.log.Debug().Err(err).Msg("could not read the coordination bucket's status")
		}
		return
	}
	if missing {
		if g.nc == nil {
			g.log.Error().Str("bucket", g.kv.Bucket()).Str("fix", "create the bucket again").
				Msg("coordination bucket gone; this instance cannot recreate it")
			return
		}
		g.log.Error().Str("bucket", g.kv.Bucket()).Msg("coordination bucket gone; recreating it")
		// Within the held leases' validity, each attempt short: another
		// instance recreating it at the same moment may leave this one's
		// request unanswered; the next attempt finds its bucket.
		cctx, cancel := context.WithTimeout(ctx, g.stopAfter())
		_, err := jsassets.RecreateKV(cctx, g.nc, g.bucket, g.ttl/5)
		cancel()
		if err != nil {
			g.log.Error().Err(err).Str("bucket", g.kv.Bucket()).Msg("recreate the coordination bucket failed; retrying")
			return
		}
		if created, missing, err = g.bucketCreated(ctx); err != nil || missing {
			return
		}
	}
	g.mu.Lock()
	known := g.created
	if !created.IsZero() {
		g.created = created
	}
	changed := !created.IsZero() && !known.IsZero() && !created.Equal(known)
	if changed {
		g.resetLocked()
	}
	g.mu.Unlock()
	if !changed {
		return
	}
	g.log.Error().Str("bucket", g.kv.Bucket()).Time("created", created).Time("known_created", known).
		Str("then", "reading it again, writing the leases anew").Msg("coordination bucket recreated")
	select {
	case g.rewatch <- struct{}{}:
	default:
	}
	if err := g.heartbeat(ctx); err != nil && ctx.Err() == nil {
		g.log.Warn().Err(err).Msg("could not renew the membership")
	}
}

// resetLocked starts a new epoch: it drops the group's view of the bucket
// (the watcher reads it again from scratch), gives up the renewals in
// flight into the old bucket, and makes every held lease due at once, so
// that renewLoop writes each anew into the new bucket. It sets
// created's companion resetAt in the same critical section (see
// bucketChanged).
func (g *Group) resetLocked() {
	g.epoch++
	close(g.epochEnd)
	g.epochEnd = make(chan struct{})
	g.resetAt = time.Now()
	g.stats.BucketResets++
	g.leases, g.members = map[string]*observed{}, map[string]*observed{}
	clear(g.conflicts)
	for _, l := range g.held {
		l.mu.Lock()
		l.next = g.resetAt
		l.mu.Unlock()
	}
}

// bucketChanged reports whether the bucket was reset since epoch, or is
// missing or not the one verifyBucket last saw: a write's revision
// mismatch then means a new bucket, not another owner.
func (g *Group) bucketChanged(ctx context.Context, epoch uint64) bool {
	created, missing, err := g.bucketCreated(ctx)
	// verifyBucket sets created and the epoch together: one of the two tells
	// whichever way the race with it went.
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.epoch != epoch {
		return true
	}
	if err != nil {
		return false
	}
	return missing || !created.IsZero() && !g.created.IsZero() && !created.Equal(g.created)
}

// reclaim writes a held lease into the bucket of epoch (recreated since the
// lease was last written): created, as nobody else may have taken it
// meanwhile, else lost. The caller holds l.op. A new bucket may have no
// leader yet: the write is tried again until the lease is no longer valid
// (then checkLoop ends it), and a write that timed out but landed is found
// by its owner.
func (g *Group) reclaim(ctx context.Context, l *Lease, epoch uint64) {
	l.mu.Lock()
	valid := l.sent.Add(g.stopAfter())
	l.mu.Unlock()
	vctx, cancel := context.WithDeadline(ctx, valid)
	defer cancel()
	var (
		rev  uint64
		sent time.Time
	)
	err := jsassets.Retry(vctx, jsassets.RetryOptions{PerAttempt: g.ttl / 10, Attempts: math.MaxInt, Retriable: jsassets.StreamStarting},
		func(ctx context.Context) error {
			sent = time.Now()
			var err error
			rev, err = g.writeAnew(ctx, l.key, g.value(sent))
			return err
		})
	switch {
	case err == nil:
		l.mu.Lock()
		l.rev, l.epoch, l.sent, l.next = rev, epoch, sent, sent.Add(g.renewEvery())
		l.mu.Unlock()
		g.log.Info().Str("stream", l.Stream).Str("shard", l.Shard).Msg("lease written into the recreated bucket")
	case errors.Is(err, errTakenInNewBucket):
		g.lose(l, errTakenInNewBucket.Error())
	default:
		// Tried again soon, while the lease is valid.
		l.mu.Lock()
		l.next = time.Now().Add(g.retryEvery())
		l.mu.Unlock()
		if ctx.Err() == nil {
			g.log.Warn().Err(err).Str("stream", l.Stream).Str("shard", l.Shard).Msg("write a lease into the recreated bucket failed; retrying")
		}
	}
}

// writeAnew creates key with value. A key that exists already is this
// instance's own when it names this instance as owner (a create that timed
// out but landed, or a claim that reached the new bucket before the reset):
// then it is updated on its revision. Any other owner:
// errTakenInNewBucket.
func (g *Group) writeAnew(ctx context.Context, key string, value []byte) (uint64, error) {
	rev, err := g.kv.Create(ctx, key, value)
	if !errors.Is(err, jetstream.ErrKeyExists) {
		return rev, err
	}
	e, err := g.kv.Get(ctx, key)
	if err != nil {
		return 0, fmt.Errorf("read %s after a conflict: %w", key, err)
	}
	var v leaseValue
	_ = json.Unmarshal(e.Value(), &v)
	g.mu.Lock()
	twin := g.twinLocked(time.Now())
	g.mu.Unlock()
	if v.Owner != g.instance || twin {
		return 0, errTakenInNewBucket
	}
	rev, err = g.kv.Update(ctx, key, value, e.Revision())
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return 0, errTakenInNewBucket
	}
	return rev, err
}

// claimConflict counts a claim that lost a race for key; a key that keeps
// conflicting is logged and makes the group check its bucket.
func (g *Group) claimConflict(key string) {
	g.mu.Lock()
	g.stats.ClaimConflicts++
	g.conflicts[key]++
	n := g.conflicts[key]
	g.mu.Unlock()
	if n%persistentConflicts == 0 {
		// Another instance writes it, or this instance's view of the bucket
		// is stale.
		g.log.Warn().Str("key", key).Int("conflicts", n).Msg("claims of this lease keep conflicting")
		g.suspectBucket()
	}
}
