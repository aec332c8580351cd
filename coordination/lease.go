package coordination

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Lease is this instance's right to read one shard. Its reader stops when
// Done is closed: at once for ErrLeaseLost; for ErrHandoff after finishing
// the batch in flight and writing the final checkpoint. Either way it calls
// Release when it stopped.
type Lease struct {
	g                       *Group
	key, gk                 string
	Stream, Consumer, Shard string

	// op serialises the lease's writes: a renewal in flight and the
	// release, which then deletes the revision that renewal wrote.
	op sync.Mutex

	mu  sync.Mutex
	rev uint64
	// epoch is the group's epoch rev belongs to: an older one means a
	// bucket that is gone (the lease is not written into the new one yet).
	epoch    uint64
	sent     time.Time // when the last successful renewal (or the claim) was sent
	next     time.Time // when the next renewal is due
	renewing bool      // a renewal is scheduled or in flight
	err      error     // why done is closed
	done     chan struct{}
	released bool
}

// Done is closed when the reader must stop; Err says why.
func (l *Lease) Done() <-chan struct{} { return l.done }

// Err is ErrLeaseLost or ErrHandoff once Done is closed, else nil.
func (l *Lease) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// Lost reports whether the lease was lost (not handed over): the reader
// stops at once.
func (l *Lease) Lost() bool { return l.Err() == ErrLeaseLost }

// Valid reports whether the lease is still this instance's: not lost and
// renewed recently enough by both the monotonic and the wall clock (a
// process resumed after a pause or a suspend finds it invalid before any
// renewal or the watcher tells it so). A reader checks it before each
// publish and each checkpoint.
func (l *Lease) Valid() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err != ErrLeaseLost && !l.released && l.g.fresh(l.sent)
}

// end closes done with err; it reports whether it did (the first time, or
// a handoff turning into a loss).
func (l *Lease) end(err error) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.err == nil:
		l.err = err
		close(l.done)
		return true
	case l.err == ErrHandoff && err == ErrLeaseLost:
		l.err = err
		return true
	}
	return false
}

// Release gives the lease up (after the reader's final checkpoint), so that
// another instance takes it at once instead of after the TTL. A lost lease
// is not touched: it is someone else's now.
func (l *Lease) Release(ctx context.Context) {
	l.mu.Lock()
	if l.released {
		l.mu.Unlock()
		return
	}
	l.released = true
	l.mu.Unlock()
	// Wait for a renewal in flight: its revision is the one to delete.
	l.op.Lock()
	defer l.op.Unlock()
	l.mu.Lock()
	lost, handoff := l.err == ErrLeaseLost, l.err == ErrHandoff
	rev, epoch := l.rev, l.epoch
	l.mu.Unlock()
	g := l.g
	g.mu.Lock()
	if g.held[l.key] == l {
		delete(g.held, l.key)
	}
	if handoff {
		delete(g.handoff, l.gk)
	}
	gone := g.epoch != epoch
	g.mu.Unlock()
	l.end(ErrHandoff) // a reader that stopped on its own (shard ended) ends the lease too
	if lost {
		return
	}
	if gone {
		// Written only into a bucket that is gone: nothing of it to
		// delete (a revision of the old bucket may name another's write
		// in the new one).
		g.released(l, handoff)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, g.ttl/3)
	defer cancel()
	if err := g.kv.Delete(ctx, l.key, jetstream.LastRevision(rev)); err != nil {
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
			apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant) {
			if g.bucketChanged(ctx, epoch) {
				// A new bucket the group has not reset to yet: the lease
				// was never written there.
				g.suspectBucket()
				g.released(l, handoff)
				return
			}
			// Another instance wrote the lease since our last renewal: it
			// took it over as expired (a renewal starved beyond the TTL,
			// noticed only now that this one stops). Lost, not released.
			g.mu.Lock()
			g.stats.Lost++
			g.mu.Unlock()
			g.log.Warn().Str("shard", l.Shard).Msg("a lease was taken over before its release: lost")
			return
		}
		g.log.Warn().Err(err).Str("shard", l.Shard).Msg("could not release a lease; it expires after the TTL")
		return
	}
	g.released(l, handoff)
}

// released counts a lease given up, and lets the next handoff go.
func (g *Group) released(l *Lease, handoff bool) {
	g.mu.Lock()
	g.stats.Released++
	g.mu.Unlock()
	g.log.Info().Str("stream", l.Stream).Str("shard", l.Shard).Msg("lease released")
	if handoff {
		select {
		case g.rebal <- struct{}{}:
		default:
		}
	}
}
