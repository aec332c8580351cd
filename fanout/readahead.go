package fanout

import (
	"sync/atomic"

	"github.com/fanoutd/fanoutd/fanout/internal/efostream"
	"github.com/fanoutd/fanoutd/internal/reuse"
	"github.com/fanoutd/fanoutd/record"
)

// eventSlot is what a shard loop reads one event into: its Kinesis records
// (KPL aggregates whole) and the reader's buffers their data may alias.
type eventSlot struct {
	recs    []record.Record
	recsUse reuse.Use
	bufs    efostream.Buffers
}

// readAheadSlots is how many events the shard loops of the process read
// ahead at once, in all. A shard reads its next event while it hands over
// the one before only with one of these spare slots, so that reading ahead
// costs that many events of memory, not one per shard: on a few cores, a
// few shards reading ahead keep the publishers as busy as all would.
const readAheadSlots = 2

// spareSlots lends them to the shard loops of every stream.
var spareSlots = newSlotPool(readAheadSlots)

// slotPool holds the spare slots not lent.
type slotPool chan *eventSlot

func newSlotPool(n int) slotPool {
	p := make(slotPool, n)
	for range n {
		p <- new(eventSlot)
	}
	return p
}

// readAhead runs a reader's next in a goroutine of its own, at most one
// event ahead of the shard loop: it reads into the shard's slot when the
// loop is done with it, and ahead of the loop only into a spare slot.
type readAhead struct {
	r      reader
	spares slotPool
	events chan readResult // unbuffered: at most one event waits
	free   chan *eventSlot // the shard's slots the loop is done with
	// slots counts the shard's slots: its own, and a spare while it has one.
	slots  atomic.Int32
	done   chan struct{} // the loop stopped reading
	exited chan struct{} // the goroutine returned
}

type readResult struct {
	ev   readEvent
	slot *eventSlot
	ok   bool
	err  error
}

func startReadAhead(r reader, own *eventSlot, spares slotPool) *readAhead {
	a := &readAhead{r: r, spares: spares, events: make(chan readResult), free: make(chan *eventSlot, 2),
		done: make(chan struct{}), exited: make(chan struct{})}
	a.slots.Store(1)
	a.free <- own
	go a.run()
	return a
}

func (a *readAhead) run() {
	defer close(a.exited)
	for {
		sl := a.take()
		if sl == nil {
			return
		}
		ev, recs, ok, err := a.r.next(&sl.bufs, sl.recs[:0])
		sl.recs = recs
		select {
		case a.events <- readResult{ev, sl, ok, err}:
		case <-a.done:
			a.free <- sl
			return
		}
		if !ok || err != nil {
			return
		}
	}
}

// take returns the slot to read the next event into: one the loop is done
// with; else, while the loop hands over an event, a spare if one is free,
// or the loop's slot once it is done with it. nil when the loop stopped.
func (a *readAhead) take() *eventSlot {
	select {
	case sl := <-a.free:
		return sl
	default:
	}
	select {
	case sl := <-a.free:
		return sl
	case sl := <-a.spares:
		a.slots.Add(1)
		return sl
	case <-a.done:
		return nil
	}
}

// release takes back the slot of an event the loop handed over. While the
// shard holds a spare, one of its two slots goes back to the pool at once,
// for another shard to read ahead with.
func (a *readAhead) release(sl *eventSlot) {
	if a.slots.Load() > 1 {
		select {
		case a.spares <- sl:
			a.slots.Add(-1)
			return
		default:
		}
	}
	a.free <- sl
}

// stop closes the reader, waits for the goroutine, and returns the slot
// the shard keeps: held, the one the loop still has (nil if none), or one
// the loop was done with; a spare it had goes back to the pool.
func (a *readAhead) stop(held *eventSlot) *eventSlot {
	close(a.done)
	a.r.close()
	<-a.exited
	own := held
	for len(a.free) > 0 {
		sl := <-a.free
		if own == nil {
			own = sl
			continue
		}
		select {
		case a.spares <- sl:
		default: // the pool is whole (cannot happen): let it go
		}
	}
	return own
}
