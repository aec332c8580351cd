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
}

// NewResume returns a Resume with no loop waiting.
func NewResume() *Resume { return &Resume{ch: make(chan struct{})} }

// Fire wakes every loop backing off after a failed delivery, and returns
// how many it woke.
func (r *Resume) Fire() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.waiting
	close(r.ch)
	r.ch, r.waiting = make(chan struct{}), 0
	return n
}

// wait registers a waiting loop: ch is closed by the next Fire; leave ends
// the wait.
func (r *Resume) wait() (ch <-chan struct{}, leave func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.ch
	r.waiting++
	return c, func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.ch == c { // not fired: still counted
			r.waiting--
		}
	}
}

// backoffSleep is the wait of a shard loop before it subscribes again: d,
// or less after a failed delivery when Resume fires meanwhile. It reports
// whether ctx is still live. A Fire between the failure and the start of
// this wait is not seen: the loop then waits d.
func (c *StreamConsumer) backoffSleep(ctx context.Context, d time.Duration, reason endReason) bool {
	if reason != endHandler || c.resume == nil {
		return sleep(ctx, d)
	}
	ch, leave := c.resume.wait()
	defer leave()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ch:
	case <-ctx.Done():
		return false
	}
	return true
}
