package relay

import (
	"github.com/nats-io/nats.go"

	"github.com/fanoutd/fanoutd/record"
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

// toDeadLetter turns m, the message of rec, into its dead letter, and logs
// it.
func (p *Publisher) toDeadLetter(b *record.Batch, rec *record.Record, m *nats.Msg, reason string) {
	makeDeadLetter(m, p.deadLetterSubject(b, rec), reason)
	p.logDeadLetter(b, rec, m)
}

// deadLetterSubject renders the dead-letter subject of a record.
// The partition key is cut (see truncateKey) and a subject still over
// MaxSubjectBytes falls back to DefaultDeadLetterSubject, so that a dead
// letter always reaches the server.
func (p *Publisher) deadLetterSubject(b *record.Batch, rec *record.Record) string {
	var buf [128]byte
	v := subjectValues(b, rec)
	v.PartitionKey = truncateKey(v.PartitionKey)
	subj := p.deadLetter.Render(buf[:0], v)
	if len(subj) > MaxSubjectBytes {
		subj = defaultDeadLetter.Render(subj[:0], v)
	}
	return string(subj)
}

var defaultDeadLetter = func() *SubjectTemplate {
	t, err := ParseSubjectTemplate(DefaultDeadLetterSubject)
	if err != nil {
		panic(err)
	}
	return t
}()

// logDeadLetter warns about one record replaced by a dead letter.
func (p *Publisher) logDeadLetter(b *record.Batch, rec *record.Record, m *nats.Msg) {
	p.log.Warn().Str("stream", b.Stream).Str("shard", b.ShardID).Str("consumer", b.Consumer).
		Str("sequence_number", rec.SequenceNumber).Int64("sub_sequence_number", rec.SubSequenceNumber).
		Int("bytes", len(rec.Data)).Str("subject", m.Header.Get(HeaderOriginalSubject)).
		Str("dead_letter_subject", m.Subject).Str("reason", m.Header.Get(HeaderDeadLetterReason)).
		Msg("record replaced by a dead letter")
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
