package fanout

import (
	"context"
	"sync"
	"time"
)

// Resume wakes the shard loops that back off because their handler could
// not deliver a batch, as soon as it can again: the daemon fires it when
// the NATS connection comes back, so that delivery does not wait for the
// rest of a backoff that may have grown to timers.backoff_max. The zero
// value is not usable: NewResume.
type Resume struct {
	mu sync.Mutex
	ch chan struct{}
	// waiting is how many loops wait on ch.
	waiting int
	// gen counts Fires: a loop that saw it change since its attempt began
	// does not wait at all.
	gen uint64
}

// NewResume returns a Resume with no loop waiting.
func NewResume() *Resume { return &Resume{ch: make(chan struct{})} }

// Fire wakes every loop backing off after a failed delivery, and returns
// how many it woke.
func (r *Resume) Fire() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.waiting
	r.gen++
	close(r.ch)
	r.ch, r.waiting = make(chan struct{}), 0
	return n
}

// generation is the number of Fires so far (0 for a nil Resume).
func (r *Resume) generation() uint64 {
	if r == nil {
		return 0
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.gen
}

// wait registers a waiting loop: ch is closed by the next Fire; leave ends
// the wait. fired is true, and ch nil, when a Fire came after generation
// since.
func (r *Resume) wait(since uint64) (ch <-chan struct{}, fired bool, leave func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.gen != since {
		return nil, true, func() {}
	}
	c := r.ch
	r.waiting++
	return c, false, func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.ch == c { // not fired: still counted
			r.waiting--
		}
	}
}

// backoffSleep is the wait of a shard loop before it subscribes again: d,
// or none after a failed delivery when Resume fired since the attempt
// began (gen, from Resume.generation before it), or less when it fires
// meanwhile. It reports whether ctx is still live, and whether Resume cut
// the wait short: the caller then starts its backoff over, so that a first
// attempt after the reconnect that fails again (JetStream still electing a
// leader) does not wait a backoff grown during the outage.
func (c *StreamConsumer) backoffSleep(ctx context.Context, d time.Duration, reason endReason, gen uint64) (live, resumed bool) {
	if reason != endHandler || c.resume == nil {
		return sleep(ctx, d), false
	}
	ch, fired, leave := c.resume.wait(gen)
	defer leave()
	if fired {
		return ctx.Err() == nil, true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true, false
	case <-ch:
		return true, true
	case <-ctx.Done():
		return false, false
	}
}
