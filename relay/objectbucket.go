package relay

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/fanoutd/fanoutd/internal/jsretry"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

// ObjectBucketSpec describes the Object Store bucket fanoutd keeps large
// records in.
type ObjectBucketSpec struct {
	Bucket string
	// Storage is "file" (default) or "memory".
	Storage string
	// Replicas 0: 3 on a cluster of 3 or more servers, else 1.
	Replicas int
	// MaxAge is how long an object is kept; 0 keeps it for ever.
	MaxAge time.Duration
	// Probe bounds the wait for JetStream's answer to the first request
	// (default 10s). A server without JetStream answers "no responders" at
	// once, unless a client subscribed to a wildcard such as ">" receives
	// the request: then nothing answers, and a timeout is taken for no
	// JetStream.
	Probe time.Duration
}

// DefaultObjectBucket is the bucket's name when none is configured.
const DefaultObjectBucket = "FANOUTD_RECORDS"

// ErrNoJetStream marks a NATS server (or account) without JetStream: it
// has no Object Store either.
var ErrNoJetStream = errors.New("the NATS server has no JetStream")

// EnsureObjectBucket creates the Object Store bucket c, or opens the one
// that exists (used as it is, with a warning per difference from c). An
// error wrapping ErrNoJetStream means the server has no JetStream; one
// wrapping ErrJetStreamPermission says which permission is missing.
func EnsureObjectBucket(ctx context.Context, nc *nats.Conn, c ObjectBucketSpec, log zerolog.Logger) (jetstream.ObjectStore, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	replicas := c.Replicas
	if replicas == 0 {
		replicas = 1
		if nc.ConnectedClusterName() != "" && len(nc.Servers()) >= 3 {
			replicas = 3
		}
	}
	want := jetstream.ObjectStoreConfig{
		Bucket:      c.Bucket,
		Description: "Records of fanoutd too big for one NATS message; a reference message with Fanoutd-Object-* headers stands for each on its subject.",
		TTL:         c.MaxAge,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	}
	if c.Storage == "memory" {
		want.Storage = jetstream.MemoryStorage
	}
	probe := c.Probe
	if probe <= 0 {
		probe = 10 * time.Second
	}
	lastErr := nc.LastError()
	explain := func(what string, err error) error {
		if errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) || errors.Is(err, nats.ErrNoResponders) {
			return fmt.Errorf("%w: %s the Object Store bucket %s: %w", ErrNoJetStream, what, c.Bucket, err)
		}
		if le := nc.LastError(); !sameError(le, lastErr) && errors.Is(le, nats.ErrPermissionViolation) {
			return fmt.Errorf("%w: %s the Object Store bucket %s (nats.object_store.bucket): %w. "+
				"Allow fanoutd's NATS user the JetStream API for the stream OBJ_%s and to publish to $O.%s.>, or set nats.large_records to dead_letter",
				ErrJetStreamPermission, what, c.Bucket, le, c.Bucket, c.Bucket)
		}
		return fmt.Errorf("%s the Object Store bucket %s: %w", what, c.Bucket, err)
	}
	// Twice: a cluster busy with other instances' creates may leave one
	// request unanswered (see jsretry).
	var obs jetstream.ObjectStore
	err = jsretry.Do(ctx, jsretry.Options{PerAttempt: probe, Attempts: 2, Conn: nc}, func(ctx context.Context) error {
		var err error
		obs, err = js.ObjectStore(ctx, c.Bucket)
		return err
	})
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		return nil, fmt.Errorf("%w: no JetStream answered within %v, twice: open the Object Store bucket %s: %w", ErrNoJetStream, probe, c.Bucket, err)
	}
	cctx, cancel2 := context.WithTimeout(ctx, 30*time.Second)
	defer cancel2()
	created := false
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		// Instances that start together may all create it (see jsretry).
		err = jsretry.Do(cctx, jsretry.Options{Conn: nc}, func(ctx context.Context) error {
			var err error
			if obs, err = js.CreateObjectStore(ctx, want); err == nil {
				created = true
				return nil
			}
			if errors.Is(err, jetstream.ErrBucketExists) || errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) || errors.Is(err, context.DeadlineExceeded) {
				if o, lerr := js.ObjectStore(ctx, c.Bucket); lerr == nil {
					obs = o
					return nil
				}
			}
			return err
		})
		if err != nil {
			return nil, explain("create", err)
		}
	}
	if created {
		ev := log.Info()
		if replicas == 1 {
			ev = log.Warn()
		}
		ev = ev.Str("bucket", c.Bucket).Int("replicas", replicas).Str("storage", want.Storage.String()).Str("max_age", c.MaxAge.String())
		if replicas == 1 {
			ev.Msg("created the Object Store bucket for large records with one replica: losing that server's storage loses them; set nats.object_store.replicas to 3 on a cluster")
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
	warn := func(what string, have, want any) {
		log.Warn().Str("bucket", c.Bucket).Str("setting", what).Any("has", have).Any("configured", want).
			Msg("the existing Object Store bucket differs from nats.object_store; using it as it is")
	}
	if st.TTL() != c.MaxAge {
		warn("max_age", st.TTL().String(), c.MaxAge.String())
	}
	if st.Replicas() != replicas {
		warn("replicas", st.Replicas(), replicas)
	}
	if st.Storage() != want.Storage {
		warn("storage", st.Storage().String(), want.Storage.String())
	}
	return obs, nil
}
