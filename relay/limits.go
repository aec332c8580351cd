package relay

import (
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

// checkLimits returns why NATS can't take m, whose header encodes to hsize
// bytes, as it is: a subject over MaxSubjectBytes, or a message over
// maxPayload. Small enough to inline: the slow path is limitRefusal.
func checkLimits(m *nats.Msg, hsize int, maxPayload int64) refusal {
	if len(m.Subject) <= MaxSubjectBytes && int64(len(m.Data)+hsize) <= maxPayload-64 {
		return refusal{}
	}
	return limitRefusal(m, maxPayload)
}

// limitRefusal is checkLimits for a long subject or a message near the
// limit: then the exact size counts, as the server counts it (messageSize
// iterates over the header).
func limitRefusal(m *nats.Msg, maxPayload int64) refusal {
	if len(m.Subject) > MaxSubjectBytes {
		return refusal{subjectTooLong, subjectTooLongReason(len(m.Subject))}
	}
	if size := messageSize(m); int64(size) > maxPayload {
		return refusal{tooLarge, maxPayloadReason(len(m.Data), size, maxPayload)}
	}
	return refusal{}
}

// maxPayloadReason explains a record too big for the server's max_payload.
// size counts the payload and the encoded headers, as the server does.
func maxPayloadReason(payload, size int, maxPayload int64) string {
	b := make([]byte, 0, 128)
	b = append(b, "payload of "...)
	b = strconv.AppendInt(b, int64(payload), 10)
	b = append(b, " bytes"...)
	if int64(payload) <= maxPayload {
		b = append(b, " plus "...)
		b = strconv.AppendInt(b, int64(size-payload), 10)
		b = append(b, " bytes of headers"...)
	}
	b = append(b, " exceeds the NATS server's max_payload of "...)
	b = strconv.AppendInt(b, maxPayload, 10)
	return string(b)
}

// maxMsgSizeReason explains a record the JetStream stream refused as too big.
func maxMsgSizeReason(payload int, err error) string {
	return "payload of " + strconv.Itoa(payload) +
		" bytes exceeds the JetStream stream's max_msg_size (" + err.Error() + ")"
}

// messageSize is what the server compares with its max_payload: the encoded
// headers plus the payload.
func messageSize(m *nats.Msg) int {
	return m.Size() - len(m.Subject) - len(m.Reply)
}
