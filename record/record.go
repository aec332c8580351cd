// Package record is the seam between reading Kinesis (fanout) and
// publishing to NATS (relay): the user record, the batch of one
// SubscribeToShard event, and the Handler that delivers it. It depends on
// nothing, so that relay links nothing of the AWS SDK and fanout nothing of
// NATS.
package record

import (
	"context"
	"fmt"
	"time"
)

// Record is one user record as a subscriber sees it, after KPL
// de-aggregation.
type Record struct {
	Data              []byte
	PartitionKey      string
	ExplicitHashKey   string // "" when not set
	SequenceNumber    string
	SubSequenceNumber int64 // 0 for plain records
	Aggregated        bool  // true when it came out of a KPL aggregate
	ArrivalTime       time.Time
	// Unpacked is set on the messages the relay unpacks from one record's
	// data (a CloudWatch Logs record's log events), nil on records as a
	// reader hands them over.
	Unpacked *Unpacked
}

// Unpacked describes one message unpacked from a record's data: its place
// among the record's messages, and the CloudWatch Logs event it is.
type Unpacked struct {
	// Index is the message's place among its record's, from 0: with the
	// record's sequence and sub-sequence numbers it names the message.
	Index int
	// The log event's, and its log group's, log stream's and owner's.
	LogGroup, LogStream, Owner, EventID string
	Timestamp                           int64 // milliseconds since the epoch
	// SubscriptionFilters are the filters' names, joined by ",".
	SubscriptionFilters string
}

// Batch is a chunk of the records of one Kinesis event, de-aggregated, in
// sequence order: at most MaxBatchRecords records and, unless one record
// alone is larger, at most MaxBatchBytes of data and keys (see Size). An
// event whose records exceed these bounds (a KPL aggregate can hold a
// million user records) is handed over as several batches in order; the
// shard's position moves after each one delivered (inside an aggregate: to
// its last sub-sequence), and past the event after the last.
type Batch struct {
	Stream   string
	ShardID  string
	Consumer string
	Records  []Record
	// ContinuationSequenceNumber is where a resubscribe resumes
	// (AFTER_SEQUENCE_NUMBER) once the event's last batch is delivered.
	ContinuationSequenceNumber string
	MillisBehindLatest         int64
	// Valid, when set, says whether this instance may still publish the
	// shard's records (its lease is valid, by both clocks). A handler
	// checks it before each message it puts on the wire and, once it is
	// false, stops and returns an error wrapping ErrNotValid: a process
	// paused mid-batch (SIGSTOP, a suspended VM) publishes nothing for a
	// shard another instance may read by now.
	Valid func() bool
}

// The bounds of one Batch, which also bound what a handler holds in
// flight for one shard.
const (
	MaxBatchRecords = 1000
	MaxBatchBytes   = 4 << 20
)

// Size is what a record counts for against MaxBatchBytes: its data and its
// keys.
func (r *Record) Size() int { return len(r.Data) + len(r.PartitionKey) + len(r.ExplicitHashKey) }

// Handler delivers batches. Handle returns only when every record of b is
// delivered (nil) or when it is certain that the batch was not (an error):
// the shard's checkpoint moves past b only after a nil return, and the
// batch is handed over again, from the last checkpoint, after an error.
// Handle is called by one goroutine per shard; it must be safe for
// concurrent calls from different shards. Once Handle returns, it must not
// keep b or its records' data: the caller reuses them.
type Handler interface {
	Handle(ctx context.Context, b *Batch) error
}

// CheckValid returns an error wrapping ErrNotValid when b.Valid says no.
func (b *Batch) CheckValid() error {
	if b.Valid != nil && !b.Valid() {
		return fmt.Errorf("stop publishing shard %s: %w", b.ShardID, ErrNotValid)
	}
	return nil
}
