package relay

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go"

	"github.com/fanoutd/fanoutd/record"
)

// Every record goes to NATS one of three ways, decided by plan before a
// publishing mode (core.go, jetstream.go) sends it: as its own message; as
// a reference to its data put into the Object Store (objects.go); or as
// its dead letter (deadletter.go). Or it stops the stream. The modes only
// publish the message plan built, and count it by its route.

// A route is what a record goes to NATS as.
type route uint8

const (
	asRecord     route = iota // its own message: subject, headers, data
	asObject                  // a reference message, the data in the Object Store
	asDeadLetter              // its dead letter
)

func (r route) String() string {
	switch r {
	case asObject:
		return "object reference"
	case asDeadLetter:
		return "dead letter"
	}
	return "message"
}

// A refusal is why NATS can't carry a record as its own message.
type refusal struct {
	cause  refusalCause
	reason string // the dead letter's reason header
}

type refusalCause uint8

const (
	notRefused     refusalCause = iota
	subjectTooLong              // the protocol line: only a dead letter helps
	tooLarge                    // max_payload or max_msg_size: the Object Store helps
	undecodable                 // its data is not what the stream's payload says: only a dead letter helps
)

// plan builds the message of record i of b into m (see build) and
// decides its route: m is then what to publish in the record's place. An
// error stops the batch: a failed object put, or, with nats.oversize
// fail, a record NATS can't carry (the error wraps record.ErrStop).
func (p *Publisher) plan(ctx context.Context, s *scratch, b *record.Batch, i int, m *nats.Msg, rh *recordHeader) (route, error) {
	rec := &b.Records[i]
	ref := p.build(s, b, i, m, rh)
	if ref.cause == notRefused {
		return asRecord, nil
	}
	if s.countFell {
		s.fell[i] = false // not on its subject: no fallback to count
	}
	return p.reroute(ctx, b, rec, m, ref)
}

// build fills m with the message of record i of b, on the subject s.tmpl
// renders, and returns why NATS can't take it as it is, if so (or why
// the content pass could not decode it, see s.side). With rh the headers
// are rh's, reused: the message is gone once published (core mode, fast
// batches). Without, they are new: JetStream keeps every message until
// its PubAck.
func (p *Publisher) build(s *scratch, b *record.Batch, i int, m *nats.Msg, rh *recordHeader) refusal {
	rec := &b.Records[i]
	var (
		h     nats.Header
		hsize int
	)
	if rh != nil {
		rh.set(b, rec)
		h, hsize = rh.h, rh.encodedLen()
	} else {
		h, hsize = newHeader(b, rec, &s.times)
	}
	v := subjectValues(b, rec)
	refused := ""
	if s.side != nil {
		v.JSON, refused = s.side[i].json, s.side[i].refused
	}
	subject, fellBack := s.render(s.tmpl, v)
	if s.countFell {
		s.fell[i] = fellBack
	}
	*m = nats.Msg{Subject: subject, Data: rec.Data, Header: h}
	if refused != "" {
		return refusal{cause: undecodable, reason: refused}
	}
	return checkLimits(m, hsize, s.maxPayload)
}

// reroute is the one decision for a record NATS refused, by ref, when it
// was built or, in JetStream mode, in the PubAck of its message m. A record
// whose data the content pass could not decode becomes its dead letter. A
// record too large goes to the Object Store where one is configured; otherwise,
// with nats.oversize fail, it stops the stream; otherwise it becomes its
// dead letter. m becomes the message to publish in the record's place.
func (p *Publisher) reroute(ctx context.Context, b *record.Batch, rec *record.Record, m *nats.Msg, ref refusal) (route, error) {
	switch {
	case ref.cause == undecodable:
	case ref.cause == tooLarge && p.objects != nil:
		if err := p.storeObject(ctx, b, rec, m); err != nil {
			return asRecord, err
		}
		return asObject, nil
	case p.failOversize:
		return asRecord, fmt.Errorf("%w: record %s/%d of %s/%s: %s, and nats.oversize is fail: "+
			"raise the limit, or set nats.oversize: dead_letter to replace such records by a dead letter",
			record.ErrStop, rec.SequenceNumber, rec.SubSequenceNumber, b.Stream, b.ShardID, ref.reason)
	}
	p.toDeadLetter(b, rec, m, ref.reason)
	return asDeadLetter, nil
}

// render returns the subject of one record, and whether it holds the
// fallback token. Consecutive records with the same subject (any template
// without {partition_key}) share one string.
func (s *scratch) render(t *SubjectTemplate, v SubjectValues) (string, bool) {
	var fellBack bool
	s.subject, fellBack = t.RenderCounting(s.subject[:0], v)
	if string(s.subject) != s.lastSubject {
		s.lastSubject = string(s.subject)
	}
	return s.lastSubject, fellBack
}

// count adds one record of route r, confirmed, to res.
func (res *batchResult) count(r route, rec *record.Record) {
	switch r {
	case asDeadLetter:
		res.deadLettered++
	case asObject:
		res.published++
		res.objects++
		res.objectBytes += uint64(len(rec.Data))
	default:
		res.published++
		res.bytes += uint64(len(rec.Data))
	}
}
