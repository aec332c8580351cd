package jsassets

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

// DefaultObjectBucket is the Object Store bucket's name when none is
// configured.
const DefaultObjectBucket = "FANOUTD_RECORDS"

// ObjectStoreSpec describes the Object Store bucket fanoutd keeps large
// records in.
type ObjectStoreSpec struct {
	Bucket   string
	Storage  Storage
	Replicas Replicas
	// MaxAge is how long an object is kept; 0 keeps it for ever.
	MaxAge time.Duration
	// Probe bounds the wait for JetStream's answer to the first request
	// (default 10s). A server without JetStream answers "no responders" at
	// once, unless a client subscribed to a wildcard such as ">" receives
	// the request: then nothing answers, and a timeout is taken for no
	// JetStream.
	Probe time.Duration
	// Key is the config key that describes the bucket, for messages.
	Key string
	// OpenOnly opens the bucket when it exists and creates nothing: a
	// missing bucket is an error wrapping ErrBucketMissing.
	OpenOnly bool
}

// EnsureObjectStore creates the Object Store bucket s, or opens the one
// that exists (used as it is, with a warning per difference). An error
// wrapping ErrNoJetStream means the server has no JetStream; one wrapping
// ErrJetStreamPermission says which permission is missing; one wrapping
// ErrBucketMissing, with s.OpenOnly, that there is no bucket to open.
func EnsureObjectStore(ctx context.Context, nc *nats.Conn, s ObjectStoreSpec, log zerolog.Logger) (jetstream.ObjectStore, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	want := jetstream.ObjectStoreConfig{
		Bucket:      s.Bucket,
		Description: "Records of fanoutd too big for one NATS message; a reference message with Fanoutd-Object-* headers stands for each on its subject.",
		TTL:         s.MaxAge,
		Storage:     s.Storage.jetstream(),
		Replicas:    s.Replicas.Count(nc),
	}
	probe := s.Probe
	if probe <= 0 {
		probe = 10 * time.Second
	}
	before := nc.LastError()
	explain := func(what string, err error) error {
		if errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) || errors.Is(err, nats.ErrNoResponders) {
			return fmt.Errorf("%w: %s the Object Store bucket %s: %w", ErrNoJetStream, what, s.Bucket, err)
		}
		if le := permissionDenied(nc, before); le != nil {
			return fmt.Errorf("%w: %s the Object Store bucket %s (%s.bucket): %w. "+
				"Allow fanoutd's NATS user the JetStream API for the stream OBJ_%s and to publish to $O.%s.>, or set nats.large_records to dead_letter",
				ErrJetStreamPermission, what, s.Bucket, s.Key, le, s.Bucket, s.Bucket)
		}
		return fmt.Errorf("%s the Object Store bucket %s: %w", what, s.Bucket, err)
	}
	// Twice: a cluster busy with other instances' creates may leave one
	// request unanswered.
	var obs jetstream.ObjectStore
	err = Retry(ctx, RetryOptions{PerAttempt: probe, Attempts: 2, Conn: nc}, func(ctx context.Context) error {
		var err error
		obs, err = js.ObjectStore(ctx, s.Bucket)
		return err
	})
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		return nil, fmt.Errorf("%w: no JetStream answered within %v, twice: open the Object Store bucket %s: %w", ErrNoJetStream, probe, s.Bucket, err)
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	created := false
	if errors.Is(err, jetstream.ErrBucketNotFound) && s.OpenOnly {
		return nil, fmt.Errorf("%w: Object Store bucket %s", ErrBucketMissing, s.Bucket)
	}
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		if obs, created, err = createObjectStore(cctx, js, want); err != nil {
			return nil, explain("create", err)
		}
	}
	if created {
		ev := createdEvent(log, asset{kind: "object_store", name: s.Bucket, key: s.Key}, want.Replicas, "them").
			Str("storage", s.Storage.String()).Str("max_age", s.MaxAge.String())
		if want.Replicas == 1 {
			ev.Msg("created the Object Store bucket for large records with one replica")
		} else {
			ev.Msg("created the Object Store bucket for large records")
		}
		return obs, nil
	}
	if err != nil {
		return nil, explain("open", err)
	}
	st, err := obs.Status(cctx)
	if err != nil {
		return nil, explain("check", err)
	}
	warnDiffs(log, asset{kind: "object_store", name: s.Bucket, key: s.Key},
		setting{"max_age", st.TTL().String(), want.TTL.String()},
		setting{"replicas", strconv.Itoa(st.Replicas()), strconv.Itoa(want.Replicas)},
		setting{"storage", storageName(st.Storage()), s.Storage.String()})
	return obs, nil
}

// createObjectStore creates the bucket want, or opens it when another
// instance created it at the same moment (created false).
func createObjectStore(ctx context.Context, js jetstream.JetStream, want jetstream.ObjectStoreConfig) (obs jetstream.ObjectStore, created bool, err error) {
	err = Retry(ctx, RetryOptions{Conn: js.Conn()}, func(ctx context.Context) error {
		var err error
		if obs, err = js.CreateObjectStore(ctx, want); err == nil {
			created = true
			return nil
		}
		if errors.Is(err, jetstream.ErrBucketExists) || errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) || errors.Is(err, context.DeadlineExceeded) {
			if o, lerr := js.ObjectStore(ctx, want.Bucket); lerr == nil {
				obs = o
				return nil
			}
		}
		return err
	})
	return obs, created, err
}
