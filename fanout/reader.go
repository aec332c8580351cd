package fanout

import (
	"context"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/rs/zerolog"

	"github.com/fanoutd/fanoutd/record"
)

// reader reads one shard from the position it was opened at. next blocks
// until the next event, appends its Kinesis records to dst (KPL aggregates
// whole: the shard loop splits them) and returns them; their Data may alias
// buffers of the reader that the next call reuses. ok is false when the
// reader ended: cleanly when err is nil (the shard loop opens another at
// the position reached). close unblocks next; it may be called from another
// goroutine, more than once.
//
// next returns an event, with records or without, well inside the idle
// timeout: the shard loop takes a silent reader for a stalled one. A
// reader may retry inside next what it can cure itself (a throttled call),
// as long as close still unblocks it.
type reader interface {
	next(dst []record.Record) (ev readEvent, recs []record.Record, ok bool, err error)
	close()
}

// readEvent is what one event says besides its records.
type readEvent struct {
	// continuation is the position after the event's records; nil when the
	// shard ended. It never moves back and is never empty while the shard
	// goes on: a reader with nothing new repeats the position reached (the
	// shard loop checkpoints it and opens the next reader there).
	continuation       *string
	millisBehindLatest int64
	// childShards are the shard's children, at its end.
	childShards []types.ChildShard
	// heartbeat marks an event that only says the reader is alive (it waits
	// out a long interval or backoff): it resets the idle watchdog, and
	// nothing else moves; the shard loop reads nothing else of it.
	heartbeat bool
	// stuck marks a heartbeat of a reader whose calls are all refused since
	// its last event: it makes no progress, so the shard shows no activity
	// and turns stalled after timers.stall_timeout.
	stuck bool
}

// position is where a reader starts: after the sequence number after (a
// checkpoint), at the sequence number at (a checkpoint inside a KPL
// aggregate: the shard loop skips the user records already delivered), or
// at start when both are "".
type position struct {
	after     string
	at        string
	start     StartPosition
	timestamp time.Time // of StartAtTimestamp
}

// shardReader opens the readers of one shard and says what their errors
// mean; the shard loop decides what to do about them.
type shardReader interface {
	open(ctx context.Context, at position) (reader, error)
	// fault classifies an error of open or of a reader's next.
	fault(err error) readFault
	// restore is called after a faultNotFound on a shard Kinesis still
	// lists: it restores what the shard is read through. ErrStreamNotFound
	// from it is fatal for the stream.
	restore(ctx context.Context) error
	// settle is how long a shard handed over to another instance waits,
	// after closing its reader, before the lease is released, so that the
	// next owner's open is not taken for a second reader of the shard.
	settle() time.Duration
}

// readFault is what an error of a reader means to the shard loop (what it
// does about each: shardLoop.readFailed).
type readFault int

const (
	faultTransient readFault = iota // anything else: a warning
	faultContended                  // another reader holds the shard
	faultThrottled                  // over a Kinesis rate limit
	faultNotFound                   // the shard, or what it is read through, is gone
	faultPosition                   // the start position was rejected: an expired checkpoint
	faultDenied                     // the credentials may not read the stream: fatal
)

// streamReader is how the shards of a stream are read.
type streamReader interface {
	// prepare readies reading once the stream's incarnation is known.
	prepare(ctx context.Context) error
	// shard returns the reader of one shard.
	shard(shardID string, log zerolog.Logger) shardReader
}
