package jsassets

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Instances of a group start together and race to create the same streams
// and buckets. On a cluster, the meta leader refuses a create while an
// identical one is in flight ("stream name already in use"), and it may
// leave some of the concurrent requests (creates and lookups alike)
// unanswered until they time out. Both are over once the first create is
// done, so the whole lookup-or-create is tried again.

// RetryOptions bound Retry. The zero value is 5 s per attempt, 6 attempts.
type RetryOptions struct {
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

// Retry runs attempt until it returns nil or an error that retrying does
// not cure, ctx ends, or the attempts are used up; it returns attempt's
// last error. attempt gets a context bounded by PerAttempt (and ctx).
func Retry(ctx context.Context, o RetryOptions, attempt func(ctx context.Context) error) error {
	per, n := o.PerAttempt, o.Attempts
	if per <= 0 {
		per = 5 * time.Second
	}
	if n <= 0 {
		n = 6
	}
	again := retriable
	if o.Retriable != nil {
		again = o.Retriable
	}
	var before error
	if o.Conn != nil {
		before = o.Conn.LastError()
	}
	backoff := 50 * time.Millisecond
	for i := 1; ; i++ {
		actx, cancel := context.WithTimeout(ctx, per)
		err := attempt(actx)
		cancel()
		if err == nil || i == n || ctx.Err() != nil || !again(err) {
			return err
		}
		if o.Conn != nil && permissionDenied(o.Conn, before) != nil {
			return err
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
		errors.Is(err, jetstream.ErrBucketExists) || storeNotReady(err)
}

// storeNotReady reports the server's refusal to create a stream whose
// storage it could not set up, which happens right after a stream of the
// same name was deleted, while its files are still being removed: a
// bucket deleted and created again.
func storeNotReady(err error) bool {
	var api *jetstream.APIError
	return errors.As(err, &api) && api.Code == 500 && api.Description == "error creating store for stream"
}

// permissionDenied is the permissions violation of a JetStream API request
// that nc received since its last error was before, or nil. nats.go
// stores every asynchronous error it receives in a new value, so a
// LastError other than before is a new error; a violation for another
// subject (a shard's publish on the same connection) is not this one's.
func permissionDenied(nc *nats.Conn, before error) error {
	le := nc.LastError()
	if le == nil || errors.Is(le, before) || !errors.Is(le, nats.ErrPermissionViolation) ||
		!strings.Contains(le.Error(), "$JS.API.") {
		return nil
	}
	return le
}
