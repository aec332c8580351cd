package relay

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go"

	"github.com/fanoutd/fanoutd/fanout"
)

// handleCore publishes b on core NATS and confirms it with one flush.
//
// The flush round trip (PING/PONG) proves that the server has read every
// message written before it on this connection. It proves nothing if the
// connection was replaced in between: bytes written to the old socket may
// never have reached a server, while the PING goes out on the new one. So
// the batch fails unless the connection was up before the first publish and
// was not re-established before the PONG. What the server does with the
// messages afterwards (a slow subscriber, no subscriber at all) is core
// NATS' at-most-once delivery and beyond what a publisher can know.
func (p *Publisher) handleCore(ctx context.Context, s *scratch, tmpl *SubjectTemplate, b *fanout.Batch) (batchResult, error) {
	var res batchResult
	// Read the counter first: a reconnect after this read changes it, and a
	// reconnect before it leaves the status not CONNECTED below.
	reconnects := p.nc.Stats().Reconnects
	if st := p.nc.Status(); st != nats.CONNECTED {
		return res, fmt.Errorf("%w (%s)", ErrNotConnected, st)
	}
	maxPayload := p.nc.MaxPayload()

	// PublishMsg encodes the message into the connection's buffer before it
	// returns, so one message and one header serve every record.
	h, m := s.header, &s.msg
	for i := range b.Records {
		rec := &b.Records[i]
		SetRecordHeaders(h, recordMeta(b, rec))
		*m = nats.Msg{Subject: s.render(tmpl, subjectValues(b, rec)), Data: rec.Data, Header: h}
		if size := messageSize(m); int64(size) > maxPayload {
			reason := maxPayloadReason(len(rec.Data), size, maxPayload)
			if err := p.oversize(b, rec, reason); err != nil {
				return res, err
			}
			makeDeadLetter(m, p.deadLetterSubject(b, rec), reason)
			p.logDeadLetter(b, rec, m)
			err := p.nc.PublishMsg(m)
			clearDeadLetter(h)
			if err != nil {
				return res, fmt.Errorf("publish dead letter for record %s/%d: %w", rec.SequenceNumber, rec.SubSequenceNumber, err)
			}
			res.deadLettered++
			continue
		}
		if err := p.nc.PublishMsg(m); err != nil {
			return res, fmt.Errorf("publish record %s/%d: %w", rec.SequenceNumber, rec.SubSequenceNumber, err)
		}
		res.published++
		res.bytes += uint64(len(rec.Data))
	}
	if p.beforeFlush != nil {
		p.beforeFlush()
	}
	if err := p.nc.FlushWithContext(ctx); err != nil {
		return res, fmt.Errorf("flush: %w", err)
	}
	if p.nc.Stats().Reconnects != reconnects {
		return res, fmt.Errorf("%w: the connection was re-established during the batch, so some messages may be lost", ErrNotConnected)
	}
	return res, nil
}
