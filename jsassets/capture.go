package jsassets

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Capture is what CheckCapture found out about the streams that capture
// the subjects.
type Capture struct {
	// Window is the duplicate window of the stream that captures the first
	// subject.
	Window time.Duration
	// Batched: the server takes fast batches (2.14 or later) and every
	// stream found allows them (allow_batched).
	Batched bool
	// Unbatched names the streams found that do not allow batches.
	Unbatched []string
}

// CheckCapture verifies that a stream captures each subject, so that a
// misconfiguration is an error at start and not records that can never be
// confirmed. Subjects no stream captures make a *NotCapturedError.
func CheckCapture(ctx context.Context, nc *nats.Conn, subjects []string) (Capture, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return Capture{}, fmt.Errorf("jetstream: %w", err)
	}
	c := Capture{Batched: BatchPublishSupported(nc)}
	var missing []string
	seen := map[string]bool{}
	for i, subj := range subjects {
		name, err := js.StreamNameBySubject(ctx, subj)
		if err != nil {
			if errors.Is(err, jetstream.ErrStreamNotFound) {
				missing = append(missing, subj)
				continue
			}
			if errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, nats.ErrNoResponders) {
				return Capture{}, fmt.Errorf("nats.jetstream is true but the NATS server has no JetStream: %w", err)
			}
			return Capture{}, fmt.Errorf("find the JetStream stream for %s: %w", subj, err)
		}
		if seen[name] {
			continue
		}
		seen[name] = true
		s, err := js.Stream(ctx, name)
		if err != nil {
			c.Batched = false // unknown: message by message
			continue
		}
		cfg := s.CachedInfo().Config
		if i == 0 {
			c.Window = cfg.Duplicates
		}
		if !cfg.AllowBatchPublish {
			c.Batched = false
			c.Unbatched = append(c.Unbatched, name)
		}
	}
	if len(missing) > 0 {
		return Capture{}, &NotCapturedError{Subjects: missing}
	}
	return c, nil
}
