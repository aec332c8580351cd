package relay

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

	"github.com/fanoutd/fanoutd/internal/jsretry"
)

// ErrJetStreamPermission marks a JetStream API call the NATS server refused
// for the connection's permissions: no retry cures it, the operator must
// grant the permission (or do what fanoutd wanted to do themselves).
var ErrJetStreamPermission = errors.New("no permission for the JetStream API")

// NotCapturedError is CheckCapture's error: no JetStream stream captures
// Subjects.
type NotCapturedError struct{ Subjects []string }

func (e *NotCapturedError) Error() string {
	return fmt.Sprintf("no JetStream stream captures %s: records published there could never be confirmed. "+
		"Add the subjects to a stream, or configure nats.stream so that fanoutd creates one", strings.Join(e.Subjects, ", "))
}

// FilterSubject is the subject filter that captures every subject t
// renders: each token with a placeholder becomes '*' (a placeholder always
// renders within one token).
func (t *SubjectTemplate) FilterSubject() string {
	tokens := strings.Split(t.src, ".")
	for i, tok := range tokens {
		if strings.Contains(tok, "{") {
			tokens[i] = "*"
		}
	}
	return strings.Join(tokens, ".")
}

// DeadLetterStreamSpec describes the stream fanoutd creates for dead
// letters when no stream captures them.
type DeadLetterStreamSpec struct {
	Name string
	// Storage is "file" (default) or "memory".
	Storage string
	// Replicas 0: 3 on a cluster of 3 or more servers, else 1.
	Replicas int
	MaxAge   time.Duration
}

// DefaultDeadLetterStream is the name of the dead-letter stream fanoutd
// creates when no JetStream stream captures the dead-letter subjects.
const DefaultDeadLetterStream = "FANOUTD_DEAD_LETTERS"

// AutoReplicas is n, or for n == 0 the replicas fanoutd picks for what it
// creates: 3 when connected to a cluster of at least three servers, else 1.
func AutoReplicas(nc *nats.Conn, n int) int {
	if n > 0 {
		return n
	}
	if nc.ConnectedClusterName() != "" && len(nc.Servers()) >= 3 {
		return 3
	}
	return 1
}

// EnsureDeadLetterStream creates the dead-letter stream c for the subject
// filters subjects, as Kafka Connect creates its dead-letter topic, when no
// stream captures the dead-letter subjects. Replicas 0 means 3 on a cluster
// of at least three servers, else 1. A stream of that name that already
// exists is used as it is if it captures subjects. An error that wraps
// ErrJetStreamPermission says which permission is missing.
func EnsureDeadLetterStream(ctx context.Context, nc *nats.Conn, c DeadLetterStreamSpec, subjects []string, log zerolog.Logger) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	replicas := AutoReplicas(nc, c.Replicas)
	want := jetstream.StreamConfig{
		Name:        c.Name,
		Description: "Dead letters of fanoutd: records NATS could not carry (metadata only; find the records in Kinesis by their headers).",
		Subjects:    subjects,
		Replicas:    replicas,
		Storage:     jetstream.FileStorage,
		MaxAge:      c.MaxAge,
		Discard:     jetstream.DiscardOld,
	}
	if c.Storage == "memory" {
		want.Storage = jetstream.MemoryStorage
	}
	lastErr := nc.LastError()
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	// Instances that start together may all create it (see jsretry): a
	// stream of that name with these very subjects is one of them.
	var ours bool
	var conflict error
	err = jsretry.Do(cctx, jsretry.Options{Conn: nc}, func(ctx context.Context) error {
		_, err := js.CreateStream(ctx, want)
		if !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return err
		}
		s, lerr := js.Stream(ctx, c.Name)
		if lerr != nil {
			return fmt.Errorf("look up the dead-letter stream %s: %w", c.Name, lerr)
		}
		have := s.CachedInfo().Config.Subjects
		if ours = slices.Equal(have, subjects); !ours {
			conflict = fmt.Errorf("the JetStream stream %s (nats.dead_letter_stream.name) exists with subjects %v, which do not capture %s: "+
				"add %s to it, or set nats.dead_letter_stream.name to another name", c.Name, have,
				strings.Join(subjects, ", "), strings.Join(subjects, ", "))
		}
		return nil
	})
	if err == nil && conflict != nil {
		return conflict
	}
	if err == nil && ours {
		return nil
	}
	if err != nil {
		if le := nc.LastError(); !sameError(le, lastErr) && errors.Is(le, nats.ErrPermissionViolation) {
			err = fmt.Errorf("%w: %w", ErrJetStreamPermission, le)
		}
		if errors.Is(err, ErrJetStreamPermission) || errors.Is(err, nats.ErrPermissionViolation) {
			return fmt.Errorf("no JetStream stream captures the dead-letter subjects %s, and fanoutd may not create one: %w. "+
				"Allow fanoutd's NATS user to publish to $JS.API.STREAM.CREATE.%s, or create a stream that captures %s yourself",
				strings.Join(subjects, ", "), err, c.Name, strings.Join(subjects, ", "))
		}
		return fmt.Errorf("create the dead-letter stream %s for %s: %w", c.Name, strings.Join(subjects, ", "), err)
	}
	ev := log.Info()
	if replicas == 1 {
		ev = log.Warn()
	}
	ev = ev.Str("jetstream_stream", c.Name).Strs("subjects", subjects).Int("replicas", replicas).
		Str("storage", want.Storage.String()).Str("max_age", want.MaxAge.String())
	if replicas == 1 {
		ev.Msg("created the dead-letter stream with one replica: losing that server's storage loses the dead letters; set nats.dead_letter_stream.replicas to 3 on a cluster")
	} else {
		ev.Msg("created the dead-letter stream")
	}
	return nil
}
