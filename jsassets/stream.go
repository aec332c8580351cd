package jsassets

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

// StreamSpec describes the JetStream stream fanoutd creates for records.
type StreamSpec struct {
	Name     string
	Subjects []string
	Replicas Replicas
	Storage  Storage
	// DuplicateWindow 0 is the server's default.
	DuplicateWindow time.Duration
	// MaxBytes and MaxMsgs bound the stream; 0 is unlimited.
	MaxBytes, MaxMsgs int64
	// Key is the config key that describes the stream, for messages.
	Key string
}

// EnsureStream creates the JetStream stream s, or checks the one that
// exists: a stream with other settings is used as it is, with a warning
// per difference.
func EnsureStream(ctx context.Context, nc *nats.Conn, s StreamSpec, log zerolog.Logger) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	want := jetstream.StreamConfig{
		Name:       s.Name,
		Subjects:   s.Subjects,
		Replicas:   s.Replicas.Count(nc),
		Storage:    s.Storage.jetstream(),
		Duplicates: s.DuplicateWindow,
		MaxBytes:   orUnlimited(s.MaxBytes),
		MaxMsgs:    orUnlimited(s.MaxMsgs),
		Discard:    jetstream.DiscardNew,
		// Fast batches, where the server has them.
		AllowBatchPublish: BatchPublishSupported(nc),
	}
	var st jetstream.Stream
	created := false
	err = Retry(ctx, RetryOptions{Conn: nc}, func(ctx context.Context) error {
		var err error
		st, err = js.Stream(ctx, s.Name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			if _, err := js.CreateStream(ctx, want); err != nil {
				return fmt.Errorf("create JetStream stream %s: %w", s.Name, err)
			}
			created = true
			return nil
		}
		if err != nil {
			return fmt.Errorf("look up JetStream stream %s: %w", s.Name, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	a := asset{kind: "stream", name: s.Name, key: s.Key}
	if created {
		a.event(log.Info()).Strs("subjects", s.Subjects).Msg("created JetStream stream")
		return nil
	}
	have := st.CachedInfo().Config
	if want.Duplicates == 0 { // the server's default, whatever it is
		want.Duplicates = have.Duplicates
	}
	warnDiffs(log, a,
		setting{"subjects", strings.Join(have.Subjects, ","), strings.Join(want.Subjects, ",")},
		setting{"replicas", strconv.Itoa(have.Replicas), strconv.Itoa(want.Replicas)},
		setting{"storage", storageName(have.Storage), s.Storage.String()},
		setting{"duplicate_window", have.Duplicates.String(), want.Duplicates.String()})
	return nil
}

func orUnlimited(n int64) int64 {
	if n <= 0 {
		return -1
	}
	return n
}

// BatchPublishSupported reports whether nc's server takes fast batches
// (nats-server 2.14 or later).
func BatchPublishSupported(nc *nats.Conn) bool {
	return serverAtLeast(nc.ConnectedServerVersion(), 2, 14)
}

// serverAtLeast reports whether version (as a server reports it:
// "2.14.0", "2.15.0-RC.1") is at least major.minor.
func serverAtLeast(version string, major, minor int) bool {
	parts := strings.SplitN(version, ".", 3)
	if len(parts) < 2 {
		return false
	}
	maj, err1 := strconv.Atoi(parts[0])
	mnr, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil {
		return false
	}
	return maj > major || maj == major && mnr >= minor
}
