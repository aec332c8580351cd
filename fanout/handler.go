package fanout

import (
	"context"
	"errors"
)

// Batch is the records of one SubscribeToShardEvent, de-aggregated, in
// sequence order.
type Batch struct {
	Stream   string
	ShardID  string
	Consumer string
	Records  []UserRecord
	// ContinuationSequenceNumber is where a resubscribe resumes
	// (AFTER_SEQUENCE_NUMBER) once this batch is delivered.
	ContinuationSequenceNumber string
	MillisBehindLatest         int64
}

// Handler delivers batches. Handle returns only when every record of b is
// delivered (nil) or when it is certain that the batch was not (an error):
// the shard's checkpoint moves past b only after a nil return, and the
// batch is handed over again, from the last checkpoint, after an error.
// Handle is called by one goroutine per shard; it must be safe for
// concurrent calls from different shards.
type Handler interface {
	Handle(ctx context.Context, b *Batch) error
}

// ErrStop, wrapped in a Handler's error, means retrying can't help (a
// record the configuration says must not be skipped can't be delivered): the
// stream stops and Run returns the error, instead of the batch being retried.
var ErrStop = errors.New("handler cannot continue")

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, b *Batch) error

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, b *Batch) error { return f(ctx, b) }
