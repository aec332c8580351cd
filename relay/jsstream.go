package relay

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/fanoutd/fanoutd/internal/jsretry"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

// StreamSpec describes the JetStream stream fanoutd creates for records.
type StreamSpec struct {
	Name     string
	Subjects []string
	Replicas int
	// Storage is "file" (default) or "memory".
	Storage         string
	DuplicateWindow time.Duration
	// MaxBytes and MaxMsgs bound the stream; 0 is unlimited.
	MaxBytes, MaxMsgs int64
}

// EnsureStream creates the JetStream stream described by c, or checks the
// one that exists: a stream with other settings is used as it is, with a
// warning per difference (fanoutd does not change a stream it did not make).
func EnsureStream(ctx context.Context, nc *nats.Conn, c StreamSpec, log zerolog.Logger) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	want := jetstream.StreamConfig{
		Name:       c.Name,
		Subjects:   c.Subjects,
		Replicas:   c.Replicas,
		Storage:    jetstream.FileStorage,
		Duplicates: c.DuplicateWindow,
		MaxBytes:   orUnlimited(c.MaxBytes),
		MaxMsgs:    orUnlimited(c.MaxMsgs),
		Discard:    jetstream.DiscardNew,
	}
	if c.Storage == "memory" {
		want.Storage = jetstream.MemoryStorage
	}
	// Batch publishing (see fastbatch.go), where the server has it.
	want.AllowBatchPublish = serverAtLeast(nc.ConnectedServerVersion(), 2, 14)
	// Instances that start together may all create it: see jsretry.
	var s jetstream.Stream
	created := false
	err = jsretry.Do(ctx, jsretry.Options{Conn: nc}, func(ctx context.Context) error {
		var err error
		s, err = js.Stream(ctx, c.Name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			if _, err := js.CreateStream(ctx, want); err != nil {
				return fmt.Errorf("create JetStream stream %s: %w", c.Name, err)
			}
			created = true
			return nil
		}
		if err != nil {
			return fmt.Errorf("look up JetStream stream %s: %w", c.Name, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if created {
		log.Info().Str("jetstream_stream", c.Name).Strs("subjects", c.Subjects).Msg("created JetStream stream")
		return nil
	}
	have := s.CachedInfo().Config
	warn := func(what string, have, want any) {
		log.Warn().Str("jetstream_stream", c.Name).Str("setting", what).Any("has", have).Any("configured", want).
			Msg("the existing JetStream stream differs from nats.stream; using it as it is")
	}
	if !slices.Equal(have.Subjects, want.Subjects) {
		warn("subjects", have.Subjects, want.Subjects)
	}
	if have.Replicas != want.Replicas {
		warn("replicas", have.Replicas, want.Replicas)
	}
	if have.Storage != want.Storage {
		warn("storage", have.Storage.String(), want.Storage.String())
	}
	if have.Duplicates != want.Duplicates {
		warn("duplicate_window", have.Duplicates.String(), want.Duplicates.String())
	}
	return nil
}

func orUnlimited(n int64) int64 {
	if n <= 0 {
		return -1
	}
	return n
}

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

// CheckCapture verifies, for JetStream mode, that a stream captures each
// subject, so that a misconfiguration is an error at start and not records
// that can never be confirmed. Subjects no stream captures make a
// *NotCapturedError.
func CheckCapture(ctx context.Context, nc *nats.Conn, subjects []string) (Capture, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return Capture{}, fmt.Errorf("jetstream: %w", err)
	}
	c := Capture{Batched: serverAtLeast(nc.ConnectedServerVersion(), 2, 14)}
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

// SampleSubjects renders each template with sample values: the subjects that
// CheckCapture tests at start.
func SampleSubjects(templates map[string]*SubjectTemplate, consumer func(stream string) string) []string {
	var out []string
	for stream, t := range templates {
		out = append(out, string(t.Render(nil, SubjectValues{Stream: stream, Shard: "shardId-000000000000", PartitionKey: "key", Consumer: consumer(stream)})))
	}
	slices.Sort(out)
	return out
}
