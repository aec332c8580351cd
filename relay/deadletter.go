package relay

import (
	"strconv"

	"github.com/nats-io/nats.go"
)

// Headers added to a dead letter, next to every Kinesis-* header and the
// Nats-Msg-Id of the record it stands for.
const (
	// HeaderDeadLetterReason says, for a person, why the record was not
	// relayed.
	HeaderDeadLetterReason = "Fanoutd-Dead-Letter-Reason"
	// HeaderOriginalSubject is the subject the record would have had.
	HeaderOriginalSubject = "Fanoutd-Original-Subject"
)

// DefaultDeadLetterSubject is the dead-letter subject template when
// Options.DeadLetterSubject is empty.
const DefaultDeadLetterSubject = "fanoutd.deadletter.{stream}"

// A dead letter replaces a record that NATS cannot carry: it has no data,
// only the record's headers and the two above, so that the shard is not
// blocked forever by one record and an operator can still find the record in
// Kinesis (stream, shard, sequence and sub-sequence number are all there).

// makeDeadLetter turns m, a record's message with its headers already set,
// into its dead letter in place: subject dlSubject, no data, and the reason
// and original subject headers.
//
// The values that come from the record and have no length limit (the
// original subject, the partition key and the explicit hash key of a KPL
// sub-record) are cut to maxDeadLetterValue bytes, so that a dead letter
// always fits max_payload and the control line.
func makeDeadLetter(m *nats.Msg, dlSubject, reason string) {
	m.Header.Set(HeaderDeadLetterReason, reason)
	orig := m.Subject
	if len(orig) > maxDeadLetterValue {
		orig = truncateHeaderValue(EscapeHeaderValue(orig), maxDeadLetterValue)
	}
	m.Header.Set(HeaderOriginalSubject, orig)
	for _, k := range []string{HeaderPartitionKey, HeaderExplicitHashKey} {
		if v := m.Header.Get(k); len(v) > maxDeadLetterValue {
			m.Header.Set(k, truncateHeaderValue(v, maxDeadLetterValue))
		}
	}
	m.Subject = dlSubject
	m.Data = nil
}

// clearDeadLetter removes what makeDeadLetter added to a header that is
// reused for the next record.
func clearDeadLetter(h nats.Header) {
	h.Del(HeaderDeadLetterReason)
	h.Del(HeaderOriginalSubject)
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
