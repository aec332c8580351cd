// Package checkpoint owns the Store interface and its implementations: where
// the position of each shard is kept between runs, per stream and consumer.
// It does not decide when to checkpoint; the shard loops in fanout do.
package checkpoint

import (
	"context"
	"fmt"
	"time"
)

// Checkpoint is the position of one shard.
type Checkpoint struct {
	// SequenceNumber is where reading resumes: AFTER it
	// (AFTER_SEQUENCE_NUMBER), the continuation of the last event or the
	// last Kinesis record whose user records are all confirmed; or, when
	// InAggregate, the KPL aggregate whose user records are confirmed up to
	// SubSequenceNumber: reading resumes AT it (AT_SEQUENCE_NUMBER) and
	// skips those. Empty when the shard ended.
	SequenceNumber string
	// SubSequenceNumber is the sub-sequence of the last user record
	// confirmed inside the aggregate SequenceNumber, when InAggregate.
	SubSequenceNumber int64
	// InAggregate marks a checkpoint inside a KPL aggregate.
	InAggregate bool
	// ShardEnded means the shard was read to its end: it has nothing left,
	// and its children may start.
	ShardEnded bool
	// UpdatedAt is when the checkpoint was taken; Put sets it if zero.
	UpdatedAt time.Time
	// StreamCreated is the StreamCreationTimestamp of the stream the
	// checkpoint belongs to: a stream deleted and created again under its
	// name keeps its ARN and shard IDs, and only this tells the
	// incarnations apart (as the KCL's multi-stream identifier does). Zero
	// in checkpoints written before fanoutd recorded it.
	StreamCreated time.Time
}

// Store keeps checkpoints keyed by (stream, consumer, shard). Implementations
// are safe for concurrent use: one goroutine per shard calls Put.
type Store interface {
	// Get returns the checkpoint of a shard, and false if it has none.
	Get(ctx context.Context, stream, consumer, shardID string) (Checkpoint, bool, error)
	// Put stores cp as the checkpoint of a shard, replacing any previous one.
	// When Put returns nil the checkpoint survives a crash.
	Put(ctx context.Context, stream, consumer, shardID string, cp Checkpoint) error
	// List returns the checkpoints of every shard of a stream and consumer,
	// by shard ID; an empty map if there are none.
	List(ctx context.Context, stream, consumer string) (map[string]Checkpoint, error)
	// Delete removes the checkpoint of a shard, if any (it belongs to a
	// stream that was deleted and created again: it means nothing now).
	Delete(ctx context.Context, stream, consumer, shardID string) error
	Close() error
}

// ValidateKey checks the parts of a key. They become path components, so
// only Kinesis name characters are allowed ([a-zA-Z0-9_.-]), and not "."
// or "..": nothing can climb out of the store's directory.
func ValidateKey(stream, consumer, shardID string) error {
	if err := validatePart("stream", stream); err != nil {
		return err
	}
	if err := validatePart("consumer", consumer); err != nil {
		return err
	}
	return validatePart("shard ID", shardID)
}

func validatePart(what, s string) error {
	switch {
	case s == "":
		return fmt.Errorf("%w: empty %s", ErrInvalidKey, what)
	case s == "." || s == "..":
		return fmt.Errorf("%w: %s %q", ErrInvalidKey, what, s)
	case len(s) > 128:
		return fmt.Errorf("%w: %s longer than 128 bytes", ErrInvalidKey, what)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == '-') {
			return fmt.Errorf("%w: %s %q: only a-z, A-Z, 0-9, '_', '.' and '-' are allowed", ErrInvalidKey, what, s)
		}
	}
	return nil
}

// CheckPut is the validation common to every Store's Put; it sets
// UpdatedAt when zero.
func CheckPut(ctx context.Context, stream, consumer, shardID string, cp *Checkpoint) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := ValidateKey(stream, consumer, shardID); err != nil {
		return err
	}
	if cp.SequenceNumber == "" && !cp.ShardEnded {
		return ErrEmptyCheckpoint
	}
	if cp.UpdatedAt.IsZero() {
		cp.UpdatedAt = time.Now().UTC()
	}
	return nil
}
