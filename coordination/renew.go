package coordination

import (
	"context"
	"slices"
	"time"
)

// renewEvery is how long after a renewal (or the claim) was sent the next
// one is due: three chances before the owner stops reading (3/4 TTL).
func (g *Group) renewEvery() time.Duration { return g.ttl / 3 }

// retryEvery is how soon a failed renewal is tried again.
func (g *Group) retryEvery() time.Duration { return g.ttl / 15 }

// renewTick is how often renewLoop looks for leases due: a small part of
// the renewal period, so that each lease is renewed close to its deadline.
func (g *Group) renewTick() time.Duration { return g.ttl / 30 }

// renewLoop renews each held lease when it is due, each in its own
// goroutine, at most cap(g.renewing) at once: one slow renewal delays no
// other lease, and the membership heartbeat has its own loop. It also hands
// one lease over when this instance holds more than its share.
func (g *Group) renewLoop(ctx context.Context) {
	t := time.NewTicker(g.renewTick())
	defer t.Stop()
	lastRebalance := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-g.rebal:
			g.rebalance()
			lastRebalance = time.Now()
			continue
		case <-t.C:
		}
		for _, l := range g.due(time.Now()) {
			select {
			case g.renewing <- struct{}{}:
			case <-ctx.Done():
				return
			}
			g.wg.Add(1)
			go func() {
				defer g.wg.Done()
				defer func() { <-g.renewing }()
				g.renew(ctx, l)
				l.mu.Lock()
				l.renewing = false
				l.mu.Unlock()
			}()
		}
		if now := time.Now(); now.Sub(lastRebalance) >= g.renewEvery() {
			g.rebalance()
			lastRebalance = now
		}
	}
}

// due returns the held leases whose renewal is due and not yet under way,
// marking them under way, earliest deadline first.
func (g *Group) due(now time.Time) []*Lease {
	g.mu.Lock()
	defer g.mu.Unlock()
	type dueLease struct {
		l    *Lease
		next time.Time
	}
	var ds []dueLease
	for _, l := range g.held {
		l.mu.Lock()
		if !l.renewing && !now.Before(l.next) && l.err != ErrLeaseLost && !l.released {
			l.renewing = true
			ds = append(ds, dueLease{l, l.next})
		}
		l.mu.Unlock()
	}
	slices.SortFunc(ds, func(a, b dueLease) int { return a.next.Compare(b.next) })
	out := make([]*Lease, len(ds))
	for i, d := range ds {
		out[i] = d.l
	}
	return out
}

// heartbeatLoop writes the member key every TTL/3, on its own: a slow
// heartbeat delays no renewal. A heartbeat that fails has the bucket
// checked at once: it may be gone, noticed here before any renewal is due.
func (g *Group) heartbeatLoop(ctx context.Context) {
	every(ctx, g.ttl/3, nil, func() {
		if err := g.heartbeat(ctx); err != nil && ctx.Err() == nil {
			g.log.Warn().Err(err).Msg("could not renew the membership")
			g.suspectBucket()
		}
	})
}
