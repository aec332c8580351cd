package jsassets_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/fanoutd/fanoutd/jsassets"
)

// Retry tries again what another instance's create at the same moment
// causes (a timeout, "already in use"), up to the attempts, and nothing
// else.
func TestRetry(t *testing.T) {
	t.Parallel()
	fast := jsassets.RetryOptions{PerAttempt: time.Second, Attempts: 3}
	for _, tc := range []struct {
		name     string
		o        jsassets.RetryOptions
		errs     []error // per attempt; nil after the last
		attempts int
		want     error
	}{
		{"success", fast, nil, 1, nil},
		{"in use, then found", fast, []error{jetstream.ErrStreamNameAlreadyInUse}, 2, nil},
		{"timeouts up to the attempts", fast, []error{context.DeadlineExceeded, context.DeadlineExceeded, context.DeadlineExceeded, nil}, 3, context.DeadlineExceeded},
		{"not retriable", fast, []error{jetstream.ErrStreamNotFound}, 1, jetstream.ErrStreamNotFound},
		// What nats-server answers a create right after the delete of a stream
		// of that name, while its files are still going.
		{"store not ready, then created", fast, []error{&jetstream.APIError{Code: 500, ErrorCode: 10049, Description: "error creating store for stream"}}, 2, nil},
		{"another 500", fast, []error{&jetstream.APIError{Code: 500, ErrorCode: 10049, Description: "insufficient resources"}}, 1, &jetstream.APIError{ErrorCode: 10049}},
		{"retriable of the caller", jsassets.RetryOptions{Attempts: 3, Retriable: jsassets.StreamStarting}, []error{jetstream.ErrNoStreamResponse}, 2, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := 0
			err := jsassets.Retry(t.Context(), tc.o, func(ctx context.Context) error {
				if _, ok := ctx.Deadline(); !ok {
					t.Error("an attempt without a deadline")
				}
				n++
				if n <= len(tc.errs) {
					return tc.errs[n-1]
				}
				return nil
			})
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) || n != tc.attempts {
				t.Fatalf("Retry: %v after %d attempts, want %v after %d", err, n, tc.want, tc.attempts)
			}
		})
	}
}
