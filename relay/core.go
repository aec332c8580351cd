package relay

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go"

	"github.com/fanoutd/fanoutd/record"
)

// handleCore publishes b on core NATS and confirms it chunk by chunk (see
// chunkMessages), each with one flush.
//
// The flush round trip (PING/PONG) proves that the server has read every
// message written before it on this connection. It proves nothing if the
// connection was replaced in between: bytes written to the old socket may
// never have reached a server, while the PING goes out on the new one. So
// the batch fails unless the connection was up before the first publish and
// was not re-established before the PONG. Nor does it prove that the server
// took the messages: a publish it refuses (a permissions violation) comes
// back as an asynchronous -ERR before the PONG, which nats.go stores as the
// connection's last error. So the batch also fails when that error changed
// between a chunk's first publish and its flush. The error may belong to
// another shard's batch on the same connection: failing this one too only
// replays it. What the server does with the messages afterwards (a slow
// subscriber, no subscriber at all) is core NATS' at-most-once delivery and
// beyond what a publisher can know.
func (p *Publisher) handleCore(ctx context.Context, s *scratch, tmpl *SubjectTemplate, b *record.Batch) (batchResult, error) {
	var res batchResult
	// Read the counter first: a reconnect after this read changes it, and a
	// reconnect before it leaves the status not CONNECTED below.
	reconnects := p.nc.Stats().Reconnects
	if st := p.nc.Status(); st != nats.CONNECTED {
		return res, fmt.Errorf("%w (%s)", ErrNotConnected, st)
	}
	for start := 0; start < len(b.Records); {
		end := chunkEnd(b.Records, start)
		if err := p.coreChunk(ctx, s, tmpl, b, start, end, reconnects, &res); err != nil {
			return res, err
		}
		start = end
	}
	return res, nil
}

// coreChunk publishes the records [start, end) of b and flushes them.
func (p *Publisher) coreChunk(ctx context.Context, s *scratch, tmpl *SubjectTemplate, b *record.Batch, start, end int, reconnects uint64, res *batchResult) error {
	lastErr := p.nc.LastError()
	maxPayload := p.nc.MaxPayload()

	// PublishMsg encodes the message into the connection's buffer before it
	// returns, so one message and one header serve every record.
	rh, m := s.header, &s.msg
	h := rh.h
	for i := start; i < end; i++ {
		if err := b.CheckValid(); err != nil {
			return err
		}
		rec := &b.Records[i]
		rh.set(b, rec)
		*m = nats.Msg{Subject: s.render(tmpl, subjectValues(b, rec)), Data: rec.Data, Header: h}
		reason := ""
		if len(m.Subject) > MaxSubjectBytes {
			reason = subjectTooLongReason(len(m.Subject))
		} else if size := len(rec.Data) + rh.encodedLen(); int64(size) > maxPayload-64 {
			// Near the limit: the exact size, as the server counts it
			// (messageSize iterates over the header; encodedLen does not).
			if size = messageSize(m); int64(size) > maxPayload {
				reason = maxPayloadReason(len(rec.Data), size, maxPayload)
			}
		}
		if reason != "" && p.useObjectStore(reason) {
			err := p.storeObject(ctx, b, rec, m)
			if err == nil {
				err = p.nc.PublishMsg(m)
			}
			clearObjectReference(h)
			rh.sync()
			if err != nil {
				return err
			}
			res.published++
			res.objects++
			res.objectBytes += uint64(len(rec.Data))
			continue
		}
		if reason != "" {
			if err := p.oversize(b, rec, reason); err != nil {
				return err
			}
			makeDeadLetter(m, p.deadLetterSubject(b, rec), reason)
			p.logDeadLetter(b, rec, m)
			err := p.nc.PublishMsg(m)
			clearDeadLetter(h)
			rh.sync()
			if err != nil {
				return fmt.Errorf("publish dead letter for record %s/%d: %w", rec.SequenceNumber, rec.SubSequenceNumber, err)
			}
			res.deadLettered++
			continue
		}
		if err := p.nc.PublishMsg(m); err != nil {
			return fmt.Errorf("publish record %s/%d: %w", rec.SequenceNumber, rec.SubSequenceNumber, err)
		}
		res.published++
		res.bytes += uint64(len(rec.Data))
	}
	if p.beforeFlush != nil {
		p.beforeFlush()
	}
	fctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	if err := p.nc.FlushWithContext(fctx); err != nil {
		return fmt.Errorf("flush: %w", err)
	}
	if p.nc.Stats().Reconnects != reconnects {
		return fmt.Errorf("%w: the connection was re-established during the batch, so some messages may be lost", ErrNotConnected)
	}
	if err := p.nc.LastError(); !sameError(err, lastErr) && err != nil {
		return p.asyncRefusal(b, err)
	}
	return nil
}
