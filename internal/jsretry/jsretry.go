// Package jsretry retries the JetStream API calls with which fanoutd creates
// or opens its streams and buckets at start.
//
// Instances of a group start together and race to create the same streams
// and buckets. On a cluster, the meta leader refuses a create while an
// identical one is in flight ("stream name already in use"), and it may
// leave some of the concurrent requests (creates and lookups alike)
// unanswered until they time out. Both are over once the first create is
// done, so the whole lookup-or-create is tried again.
package jsretry

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Options bound the retries. The zero value is 5 s per attempt, 6 attempts.
type Options struct {
	PerAttempt time.Duration
	Attempts   int
	// Retriable, when set, decides which errors are tried again instead of
	// the default (an attempt's own deadline, "already in use").
	Retriable func(error) bool
	// Conn, when set, stops the retries once the server refused a request
	// of the connection for its permissions (an asynchronous -ERR, while the
	// request itself times out): no retry cures that.
	Conn *nats.Conn
}

// Do runs attempt until it returns nil or an error that retrying does not
// cure, ctx ends, or the attempts are used up; it returns attempt's last
// error. attempt gets a context bounded by PerAttempt (and ctx). Retried:
// an attempt whose own deadline passed, and a create refused because the
// stream or bucket already exists (the next attempt finds it).
func Do(ctx context.Context, o Options, attempt func(ctx context.Context) error) error {
	per, n := o.PerAttempt, o.Attempts
	if per <= 0 {
		per = 5 * time.Second
	}
	if n <= 0 {
		n = 6
	}
	var lastErr error
	if o.Conn != nil {
		lastErr = o.Conn.LastError()
	}
	backoff := 50 * time.Millisecond
	for i := 1; ; i++ {
		actx, cancel := context.WithTimeout(ctx, per)
		err := attempt(actx)
		cancel()
		again := retriable
		if o.Retriable != nil {
			again = o.Retriable
		}
		if err == nil || i == n || ctx.Err() != nil || !again(err) {
			return err
		}
		if o.Conn != nil {
			if le := o.Conn.LastError(); le != nil && le != lastErr && errors.Is(le, nats.ErrPermissionViolation) {
				return err
			}
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		backoff = min(2*backoff, time.Second)
	}
}

// StreamStarting reports the errors of a request to a stream that was just
// created and has no leader yet (or lost it), besides an attempt's own
// deadline: tried again, they pass once the stream is up.
func StreamStarting(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, jetstream.ErrNoStreamResponse) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoHeartbeat)
}

func retriable(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) ||
		errors.Is(err, jetstream.ErrBucketExists)
}
