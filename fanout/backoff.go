package fanout

import (
	"context"
	"math/rand/v2"
	"time"
)

// backoff is exponential backoff with jitter: each wait is drawn from
// [d/2, d], d doubling from initial up to max. Reset after a success.
type backoff struct {
	initial, max time.Duration
	next         time.Duration
}

func newBackoff(initial, max time.Duration) *backoff {
	if initial <= 0 {
		initial = 100 * time.Millisecond
	}
	if max < initial {
		max = initial
	}
	return &backoff{initial: initial, max: max, next: initial}
}

// Next returns the next wait and doubles the one after.
func (b *backoff) Next() time.Duration {
	d := b.next
	b.next = min(b.next*2, b.max)
	half := d / 2
	return half + time.Duration(rand.Int64N(int64(half)+1))
}

// Reset starts again from initial.
func (b *backoff) Reset() { b.next = b.initial }

// sleep waits d or until ctx ends; it reports whether the wait completed.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
