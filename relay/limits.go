package relay

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strconv"

	"github.com/nats-io/nats.go"

	"github.com/fanoutd/fanoutd/record"
)

// A batch is published in chunks of at most chunkMessages records and about
// chunkBytes of payload, each confirmed (flushed, or all its PubAcks
// received) within its own PublishTimeout before the next one is published.
// The shard loop already hands over batches within these bounds, so a batch
// is one chunk; a handler called with a larger batch (a test, a tool) still
// keeps the memory in flight, and the time one confirmation may take,
// independent of how many records the batch has. The batch succeeds only
// once every chunk is confirmed; a failed batch is replayed whole.
const (
	chunkMessages = record.MaxBatchRecords
	chunkBytes    = record.MaxBatchBytes
)

// chunkEnd returns the end of the chunk of recs that starts at start: at
// least one record, at most chunkMessages, and no more than chunkBytes of
// data and partition keys unless one record alone is bigger.
func chunkEnd(recs []record.Record, start int) int {
	end, size := start, 0
	for end < len(recs) && end-start < chunkMessages {
		size += recs[end].Size()
		if size > chunkBytes && end > start {
			break
		}
		end++
	}
	return end
}

// MaxSubjectBytes is the longest subject fanoutd publishes. nats-server
// closes the connection of a client that sends a protocol line longer than
// its max_control_line (4 KiB by default), and nats.go then gives up on the
// connection: one record with a long subject (a KPL partition key has no
// length limit) would fail every shard on it. The HPUB line also holds the
// reply subject of a JetStream publish and two sizes, so 256 bytes are left
// for those. A record whose subject is longer becomes a dead letter.
const MaxSubjectBytes = 4096 - 256

// ReasonSubjectTooLong starts the dead-letter reason of a record whose
// rendered subject is over MaxSubjectBytes.
const ReasonSubjectTooLong = "subject_too_long"

func subjectTooLongReason(n int) string {
	return ReasonSubjectTooLong + ": the rendered subject has " + strconv.Itoa(n) +
		" bytes, more than the " + strconv.Itoa(MaxSubjectBytes) +
		" a NATS protocol line can carry within the server's max_control_line (4096 by default)"
}

// maxDeadLetterValue bounds the header values of a dead letter that come
// from the record (partition key, explicit hash key, original subject), so
// that a dead letter always fits max_payload and the control line.
const maxDeadLetterValue = 256

// truncateHeaderValue cuts an escaped header value v to at most max bytes,
// marking the cut with "..." and never splitting a %XX escape.
func truncateHeaderValue(v string, max int) string {
	if len(v) <= max {
		return v
	}
	n := max - len("...")
	for i := n - 1; i >= 0 && i >= n-2; i-- {
		if v[i] == '%' {
			n = i
			break
		}
	}
	return v[:n] + "..."
}

// truncateKey cuts a raw partition key for rendering a dead-letter subject.
func truncateKey(k string) string {
	if len(k) <= maxDeadLetterValue {
		return k
	}
	return k[:maxDeadLetterValue]
}

// sameError reports whether a and b are the same error value: nats.go
// stores every asynchronous error it receives in a new value, so a change of
// LastError means a new error.
func sameError(a, b error) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	ta, tb := reflect.TypeOf(a), reflect.TypeOf(b)
	if ta != tb || !ta.Comparable() {
		return false
	}
	return a == b
}

// deniedSubjectRe finds the subject in nats-server's
// "Permissions Violation for Publish to "<subject>"".
var deniedSubjectRe = regexp.MustCompile(`(?i)permissions violation for publish to "?([^"\s]+)"?`)

// asyncRefusal is called when the connection's last error changed while a
// core NATS chunk was published and flushed. The error cannot be pinned on
// one batch (shards share the connection), so the batch fails (over-failing
// only replays) and a permission denial is logged once per subject, with
// what to change.
func (p *Publisher) asyncRefusal(b *record.Batch, err error) error {
	p.asyncErrors.Add(1)
	if errors.Is(err, nats.ErrPermissionViolation) {
		if m := deniedSubjectRe.FindStringSubmatch(err.Error()); m != nil {
			if _, logged := p.denied.LoadOrStore(m[1], struct{}{}); !logged {
				p.log.Error().Str("stream", b.Stream).Str("shard", b.ShardID).Str("subject", m[1]).Err(err).
					Msg("the NATS server refuses fanoutd's publishes to this subject: allow it in the permissions (publish) " +
						"of the user fanoutd connects as, in the server's authorization or account configuration, or change the stream's subject; " +
						"the shard retries the batch from its checkpoint with backoff until then")
			}
		}
	}
	return fmt.Errorf("the NATS server sent an asynchronous error while the batch was published, so some messages may have been refused: %w", err)
}
