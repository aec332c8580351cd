package coordination

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// A coordination bucket deleted, or deleted and created again, while the
// group runs starts its revisions again at 1: every revision this instance
// knows is meaningless there, and a compare-and-set against one fails for
// ever. The group notices it by the bucket's stream creation time (checked
// every TTL, and at once when a revision goes backwards, a renewal fails or
// a claim keeps conflicting), recreates a missing bucket with its config,
// reads the table again from scratch, and writes its held leases anew
// (claims of keys that do not exist, so that nobody else can have taken
// them meanwhile). Keys it has not seen since are claimed only a TTL after
// the reset: another member may still be reading them until it notices.

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
	t := time.NewTicker(g.ttl)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-g.checkBucket:
		}
		g.verifyBucket(ctx)
	}
}

// bucketCreated is the creation time of the bucket's stream; missing
// reports a bucket that does not exist.
func (g *Group) bucketCreated(ctx context.Context) (created time.Time, missing bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, g.ttl/3)
	defer cancel()
	st, err := g.kv.Status(ctx)
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
		if g.js == nil {
			g.log.Error().Str("bucket", g.kv.Bucket()).Msg("the coordination bucket is gone and this instance cannot recreate it; create it again")
			return
		}
		g.log.Error().Str("bucket", g.kv.Bucket()).Msg("the coordination bucket is gone: recreating it")
		if _, err := CreateBucket(ctx, g.js, g.bucket); err != nil {
			g.log.Error().Err(err).Str("bucket", g.kv.Bucket()).Msg("could not recreate the coordination bucket; retrying")
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
		g.resetAt = time.Now() // with created: see renew
	}
	g.mu.Unlock()
	if !changed {
		return
	}
	g.log.Error().Str("bucket", g.kv.Bucket()).Time("created", created).Time("known_created", known).
		Msg("the coordination bucket was deleted and created again (its revisions start again at 1): reading it again and writing this instance's leases anew")
	g.reset(ctx)
}

// bucketChanged reports whether the bucket is missing, not the one
// verifyBucket last saw, or was reset since the lease's last renewal was
// sent: a renewal's revision mismatch then means a new bucket, not another
// owner, and the reset writes the lease anew (as a creation: lost if
// someone else wrote it first).
func (g *Group) bucketChanged(ctx context.Context, sent time.Time) bool {
	created, missing, err := g.bucketCreated(ctx)
	// verifyBucket sets created and resetAt together: one of the two tells
	// whichever way the race with it went.
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.resetAt.After(sent) {
		return true
	}
	if err != nil {
		return false
	}
	return missing || !created.IsZero() && !g.created.IsZero() && !created.Equal(g.created)
}

// reset drops the group's view of the bucket, watches it again from
// scratch, and writes the held leases and the member key anew.
func (g *Group) reset(ctx context.Context) {
	g.mu.Lock()
	g.stats.BucketResets++
	g.leases, g.members = map[string]*observed{}, map[string]*observed{}
	clear(g.conflicts)
	held := make([]*Lease, 0, len(g.held))
	for _, l := range g.held {
		held = append(held, l)
	}
	g.mu.Unlock()
	select {
	case g.rewatch <- struct{}{}:
	default:
	}
	if err := g.heartbeat(ctx); err != nil && ctx.Err() == nil {
		g.log.Warn().Err(err).Msg("could not renew the membership")
	}
	for _, l := range held {
		g.reclaim(ctx, l)
	}
}

// reclaim writes a held lease into a recreated bucket: created if nobody
// did meanwhile, else lost.
func (g *Group) reclaim(ctx context.Context, l *Lease) {
	l.op.Lock()
	defer l.op.Unlock()
	l.mu.Lock()
	if l.err == ErrLeaseLost || l.released {
		l.mu.Unlock()
		return
	}
	l.mu.Unlock()
	sent := time.Now()
	v := g.value(sent)
	cctx, cancel := context.WithTimeout(ctx, g.ttl/3)
	rev, err := g.kv.Create(cctx, l.key, v)
	cancel()
	switch {
	case err == nil:
		l.mu.Lock()
		l.rev, l.sent, l.next = rev, sent, sent.Add(g.renewEvery())
		l.mu.Unlock()
		g.log.Info().Str("stream", l.Stream).Str("shard", l.Shard).Msg("lease written anew into the recreated coordination bucket")
	case errors.Is(err, jetstream.ErrKeyExists):
		g.lose(l, "another instance took the lease in the recreated coordination bucket")
	default:
		// The next renewal fails against the old revision: lost, then
		// claimed again.
		g.log.Warn().Err(err).Str("stream", l.Stream).Str("shard", l.Shard).Msg("could not write a lease into the recreated coordination bucket")
	}
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
		g.log.Warn().Str("key", key).Int("conflicts", n).
			Msg("claims of this lease keep conflicting: another instance writes it, or this instance's view of the bucket is stale")
		g.suspectBucket()
	}
}
