package jsassets

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

// DefaultDeadLetterStream is the name of the dead-letter stream fanoutd
// creates when no JetStream stream captures the dead-letter subjects.
const DefaultDeadLetterStream = "FANOUTD_DEAD_LETTERS"

// DeadLetterStreamSpec describes the stream fanoutd creates for dead
// letters when no stream captures them.
type DeadLetterStreamSpec struct {
	Name     string
	Storage  Storage
	Replicas Replicas
	// MaxAge 0 keeps dead letters for ever.
	MaxAge time.Duration
	// Key is the config key that describes the stream, for messages.
	Key string
}

// EnsureDeadLetterStream creates the dead-letter stream s for the subject
// filters subjects, as Kafka Connect creates its dead-letter topic. A
// stream of that name that already exists is used as it is if it captures
// subjects. An error that wraps ErrJetStreamPermission says which
// permission is missing.
func EnsureDeadLetterStream(ctx context.Context, nc *nats.Conn, s DeadLetterStreamSpec, subjects []string, log zerolog.Logger) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	want := jetstream.StreamConfig{
		Name:        s.Name,
		Description: "Dead letters of fanoutd: records NATS could not carry (metadata only; find the records in Kinesis by their headers).",
		Subjects:    subjects,
		Replicas:    s.Replicas.Count(nc),
		Storage:     s.Storage.jetstream(),
		MaxAge:      s.MaxAge,
		Discard:     jetstream.DiscardOld,
	}
	subjs := strings.Join(subjects, ", ")
	before := nc.LastError()
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	// A stream of that name with these very subjects is another instance's,
	// created at the same moment.
	var ours bool
	var conflict error
	err = Retry(cctx, RetryOptions{Conn: nc}, func(ctx context.Context) error {
		_, err := js.CreateStream(ctx, want)
		if !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return err
		}
		st, lerr := js.Stream(ctx, s.Name)
		if lerr != nil {
			return fmt.Errorf("look up the dead-letter stream %s: %w", s.Name, lerr)
		}
		have := st.CachedInfo().Config.Subjects
		if ours = slices.Equal(have, subjects); !ours {
			conflict = fmt.Errorf("the JetStream stream %s (%s.name) exists with subjects %v, which do not capture %s: "+
				"add %s to it, or set %s.name to another name", s.Name, s.Key, have, subjs, subjs, s.Key)
		}
		return nil
	})
	switch {
	case err == nil && conflict != nil:
		return conflict
	case err == nil && ours:
		return nil
	case err != nil:
		if le := permissionDenied(nc, before); le != nil {
			err = fmt.Errorf("%w: %w", ErrJetStreamPermission, le)
		}
		if errors.Is(err, ErrJetStreamPermission) || errors.Is(err, nats.ErrPermissionViolation) {
			return fmt.Errorf("no JetStream stream captures the dead-letter subjects %s, and fanoutd may not create one: %w. "+
				"Allow fanoutd's NATS user to publish to $JS.API.STREAM.CREATE.%s, or create a stream that captures %s yourself",
				subjs, err, s.Name, subjs)
		}
		return fmt.Errorf("create the dead-letter stream %s for %s: %w", s.Name, subjs, err)
	}
	ev := createdEvent(log, asset{kind: "stream", name: s.Name, key: s.Key}, want.Replicas, "the dead letters").
		Strs("subjects", subjects).Str("storage", s.Storage.String()).Str("max_age", want.MaxAge.String())
	if want.Replicas == 1 {
		ev.Msg("created the dead-letter stream with one replica")
	} else {
		ev.Msg("created the dead-letter stream")
	}
	return nil
}
