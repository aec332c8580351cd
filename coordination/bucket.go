package coordination

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// BucketConfig describes a key-value bucket fanoutd creates when missing.
type BucketConfig struct {
	Name     string
	Replicas int
	// Storage is "file" (default) or "memory".
	Storage string
}

// CreateBucket returns the bucket named in c, creating it when missing. An
// existing bucket is used as it is.
func CreateBucket(ctx context.Context, js jetstream.JetStream, c BucketConfig) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, c.Name)
	if err == nil {
		return kv, nil
	}
	if err != jetstream.ErrBucketNotFound {
		return nil, fmt.Errorf("look up key-value bucket %s: %w", c.Name, err)
	}
	storage := jetstream.FileStorage
	if c.Storage == "memory" {
		storage = jetstream.MemoryStorage
	}
	kv, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: c.Name, Replicas: max(c.Replicas, 1), Storage: storage, History: 1})
	if err != nil {
		return nil, fmt.Errorf("create key-value bucket %s: %w", c.Name, err)
	}
	return kv, nil
}
