package coordination

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/fanoutd/fanoutd/internal/jsretry"
)

// BucketConfig describes a key-value bucket fanoutd creates when missing.
type BucketConfig struct {
	Name     string
	Replicas int
	// Storage is "file" (default) or "memory".
	Storage string
}

// CreateBucket returns the bucket named in c, creating it when missing. An
// existing bucket is used as it is. Instances that start together may all
// create it: see jsretry.
func CreateBucket(ctx context.Context, js jetstream.JetStream, c BucketConfig) (jetstream.KeyValue, error) {
	return createBucket(ctx, js, c, jsretry.Options{Conn: js.Conn()})
}

// createBucket is CreateBucket with its retries bounded by o.
func createBucket(ctx context.Context, js jetstream.JetStream, c BucketConfig, o jsretry.Options) (jetstream.KeyValue, error) {
	storage := jetstream.FileStorage
	if c.Storage == "memory" {
		storage = jetstream.MemoryStorage
	}
	var kv jetstream.KeyValue
	err := jsretry.Do(ctx, o, func(ctx context.Context) error {
		var err error
		kv, err = js.KeyValue(ctx, c.Name)
		if err == nil {
			return nil
		}
		if !errors.Is(err, jetstream.ErrBucketNotFound) {
			return fmt.Errorf("look up key-value bucket %s: %w", c.Name, err)
		}
		kv, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: c.Name, Replicas: max(c.Replicas, 1), Storage: storage, History: 1})
		if err != nil {
			return fmt.Errorf("create key-value bucket %s: %w", c.Name, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return kv, nil
}
