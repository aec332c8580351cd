package jsassets

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

// KVSpec describes a key-value bucket fanoutd creates when missing: the
// checkpoints' and the coordination's.
type KVSpec struct {
	Name     string
	Replicas Replicas
	Storage  Storage
	// Key is the config key that describes the bucket, for messages.
	Key string
}

// EnsureKV returns the bucket s, creating it when missing. An existing
// bucket is used as it is, with a warning per difference; a bucket with one
// replica is warned about, since every instance of a group depends on it.
func EnsureKV(ctx context.Context, nc *nats.Conn, s KVSpec, log zerolog.Logger) (jetstream.KeyValue, error) {
	kv, created, err := ensureKV(ctx, nc, s, RetryOptions{Conn: nc})
	if err != nil {
		return nil, err
	}
	a := asset{kind: "kv", name: s.Name, key: s.Key}
	replicas := s.Replicas.Count(nc)
	if !created {
		// A check only: a bucket that works is not held up by it. A bucket
		// another instance has just created may not answer at once.
		sctx, cancel := context.WithTimeout(ctx, statusTimeout)
		st, err := kv.Status(sctx)
		cancel()
		bs, ok := st.(*jetstream.KeyValueBucketStatus)
		if err != nil || !ok {
			return kv, nil
		}
		have := bs.StreamInfo().Config
		diffs := []setting{{"storage", storageName(have.Storage), s.Storage.String()}}
		if have.Replicas != 1 { // one replica has its own warning below
			diffs = append(diffs, setting{"replicas", strconv.Itoa(have.Replicas), strconv.Itoa(replicas)})
		}
		warnDiffs(log, a, diffs...)
		replicas = have.Replicas
	}
	if replicas == 1 {
		a.event(log.Warn()).Str("hint", "losing that NATS server stops every instance of the group; use 3 on a cluster").
			Msg("key-value bucket has one replica")
	}
	return kv, nil
}

// statusTimeout bounds the check of an existing bucket's settings.
const statusTimeout = 5 * time.Second

// RecreateKV creates the bucket s again after it was deleted, each attempt
// bounded by perAttempt, until ctx ends: another instance recreating it at
// the same moment may leave one attempt unanswered, and the next finds it.
func RecreateKV(ctx context.Context, nc *nats.Conn, s KVSpec, perAttempt time.Duration) (jetstream.KeyValue, error) {
	kv, _, err := ensureKV(ctx, nc, s, RetryOptions{Conn: nc, PerAttempt: perAttempt, Attempts: math.MaxInt})
	return kv, err
}

func ensureKV(ctx context.Context, nc *nats.Conn, s KVSpec, o RetryOptions) (kv jetstream.KeyValue, created bool, err error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, false, fmt.Errorf("jetstream: %w", err)
	}
	want := jetstream.KeyValueConfig{Bucket: s.Name, Replicas: s.Replicas.Count(nc), Storage: s.Storage.jetstream(), History: 1}
	err = Retry(ctx, o, func(ctx context.Context) error {
		var err error
		kv, err = js.KeyValue(ctx, s.Name)
		if err == nil {
			return nil
		}
		if !errors.Is(err, jetstream.ErrBucketNotFound) {
			return fmt.Errorf("look up key-value bucket %s: %w", s.Name, err)
		}
		kv, err = js.CreateKeyValue(ctx, want)
		if err != nil {
			return fmt.Errorf("create key-value bucket %s: %w", s.Name, err)
		}
		created = true
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	return kv, created, nil
}
