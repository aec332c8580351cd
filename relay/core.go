package relay

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"regexp"

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
func (p *Publisher) handleCore(ctx context.Context, s *scratch, b *record.Batch) (batchResult, error) {
	var res batchResult
	// Read the counter first: a reconnect after this read changes it, and a
	// reconnect before it leaves the status not CONNECTED below.
	reconnects := p.nc.Stats().Reconnects
	if st := p.nc.Status(); st != nats.CONNECTED {
		return res, fmt.Errorf("%w (%s)", ErrNotConnected, st)
	}
	for start := 0; start < len(b.Records); {
		end := chunkEnd(b.Records, start)
		if err := p.coreChunk(ctx, s, b, start, end, reconnects, &res); err != nil {
			return res, err
		}
		start = end
	}
	return res, nil
}

// coreChunk publishes the records [start, end) of b and flushes them: on
// the direct connection when there is one (see direct.go), through nats.go
// otherwise. Either way the messages are copied as they are published, so
// one message and one header serve every record.
func (p *Publisher) coreChunk(ctx context.Context, s *scratch, b *record.Batch, start, end int, reconnects uint64, res *batchResult) error {
	out := p.out(s, false)
	defer out.done(s)
	c := out.direct()
	lastErr, errs := p.nc.LastError(), uint64(0)
	s.maxPayload = p.nc.MaxPayload()
	if c != nil {
		errs, _ = c.Errors()
		s.maxPayload = c.MaxPayload()
	}
	for i := start; i < end; i++ {
		if err := b.CheckValid(); err != nil {
			return err
		}
		rec := &b.Records[i]
		r, err := p.plan(ctx, s, b, i, &s.msg, s.header)
		if err != nil {
			return err
		}
		rh := s.header
		if r != asRecord {
			rh = nil // a dead letter's or an object reference's header
		}
		err = out.publish(&s.msg, rh)
		if r != asRecord {
			s.header.restore()
		}
		if err != nil {
			return fmt.Errorf("publish %s of record %s/%d: %w", r, rec.SequenceNumber, rec.SubSequenceNumber, err)
		}
		res.count(r, rec)
	}
	fctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	if p.beforeFlush != nil {
		p.beforeFlush()
	}
	if c != nil {
		if err := out.confirm(fctx); err != nil {
			return fmt.Errorf("flush: %w", err)
		}
		if n, err := c.Errors(); n != errs && err != nil {
			return p.asyncRefusal(b, err)
		}
		return nil
	}
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
					Str("hint", "allow the subject in the publish permissions of the user fanoutd connects as "+
						"(the server's authorization or account configuration), or change the stream's subject").
					Str("then", "the shard retries the batch from its checkpoint, with backoff").
					Msg("the NATS server refuses fanoutd's publishes to this subject")
			}
		}
	}
	return fmt.Errorf("the NATS server sent an asynchronous error while the batch was published, so some messages may have been refused: %w", err)
}
