package relay

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/fanoutd/fanoutd/record"
)

// Backoff between rounds of re-publishing unconfirmed JetStream messages.
const (
	retryDelayMin = 50 * time.Millisecond
	retryDelayMax = time.Second
)

// jsItem is one message of a JetStream batch.
type jsItem struct {
	rec int // index into the batch's records
	// msg is what goes in the record's place when not its own message
	// (route): a dead letter or an object reference. A record's own
	// message is built again for each attempt (see message).
	msg     *nats.Msg
	route   route
	planned bool  // its route is decided (see message)
	dup     bool  // the PubAck said Duplicate
	err     error // why the last attempt failed
}

// handleJetStream publishes b to JetStream and waits for every PubAck.
//
// The batch is published chunk by chunk (see chunkMessages). Where the
// server and the stream take them, a chunk goes first as one fast batch
// (fastbatch.go); what that did not store goes message by message: out
// asynchronously, in order, within the shared window of Options.MaxPending
// outstanding PubAcks (asyncpub.go), then Handle waits for all of them.
// Messages whose PubAck failed or timed out are published again with the same
// Nats-Msg-Id, after a backoff, until all are confirmed or the chunk's
// PublishTimeout (or ctx) ends: then the batch fails and the caller
// replays it whole, JetStream dropping the chunks already stored as
// duplicates. A PubAck with Duplicate set (a replay, or a retry whose
// first PubAck was lost) counts as delivered.
//
// Order: a shard's messages go out in batch order: on the direct
// connection when there is one, but for a message that goes alone (a
// batch's first, a round's probe: see msgOut), which goes on the main one
// and is answered before anything follows it. So JetStream stores a
// shard's records in sequence order, each once within the stream's
// duplicate window, as long as first attempts succeed. (When a batch's
// time ran out while some of it was still on its way, a probe may race
// with its own copy in the batch: JetStream stores whichever comes first
// and drops the other by its Nats-Msg-Id.) A retry
// cannot restore order (if k failed while k+1 was stored, k is stored
// after k+1), so every round starts with a probe (see publishRound) and
// stops at the first message it cannot publish. What is left is the
// reordering of messages whose PubAck failed after later ones were stored:
// a stream leader change, or a full stream taking messages again, in the
// middle of a round. A consumer that needs strict order can sort by the
// Kinesis-Sequence-Number and Kinesis-Sub-Sequence-Number headers. A
// replay older than the duplicate window (2 minutes by default) is stored
// again.
func (p *Publisher) handleJetStream(ctx context.Context, s *scratch, b *record.Batch) (batchResult, error) {
	var res batchResult
	if st := p.nc.Status(); st != nats.CONNECTED {
		return res, fmt.Errorf("%w (%s)", ErrNotConnected, st)
	}
	// After a failed batch, the shard's replay goes message by message
	// until it has delivered every record the failed attempt may have
	// sent: those may still be on their way into the stream, and a batch
	// drops such a message as a duplicate without an error, which a stream
	// leader change could then lose. One by one, each is confirmed.
	key := unsureKey{b.Stream, b.ShardID}
	last := b.Records[len(b.Records)-1]
	upTo, unsure := p.unsure.Load(key)
	s.noBatch = unsure
	var err error
	for start := 0; start < len(b.Records) && err == nil; {
		end := chunkEnd(b.Records, start)
		err = p.jetStreamChunk(ctx, s, b, start, end, &res)
		start = end
	}
	switch {
	case err != nil && (!unsure || messageAfter(positionOf(&last), upTo.(position))):
		p.unsure.Store(key, positionOf(&last))
	case err == nil && unsure && !messageAfter(upTo.(position), positionOf(&last)):
		p.unsure.Delete(key)
	}
	return res, err
}

type unsureKey struct{ stream, shard string }

// A position is where one message is in its shard: its record's sequence
// and sub-sequence numbers, and for a message unpacked from the record its
// place among the record's (1, 2, ...; 0 for the record itself). A record
// unpacked into many messages may span several batches.
type position struct {
	seq    string
	subSeq int64
	part   int
}

func positionOf(rec *record.Record) position {
	p := position{seq: rec.SequenceNumber, subSeq: rec.SubSequenceNumber}
	if rec.Unpacked != nil {
		p.part = rec.Unpacked.Index + 1
	}
	return p
}

// messageAfter reports whether a comes after b in their shard: by sequence
// number (decimal strings of up to 128 digits), then sub-sequence number,
// then place among the record's messages.
func messageAfter(a, b position) bool {
	if len(a.seq) != len(b.seq) {
		return len(a.seq) > len(b.seq)
	}
	if a.seq != b.seq {
		return a.seq > b.seq
	}
	if a.subSeq != b.subSeq {
		return a.subSeq > b.subSeq
	}
	return a.part > b.part
}

// jetStreamChunk publishes the records [start, end) of b and waits, within
// PublishTimeout, until JetStream confirmed every one of them.
func (p *Publisher) jetStreamChunk(ctx context.Context, s *scratch, b *record.Batch, start, end int, res *batchResult) error {
	s.maxPayload = p.nc.MaxPayload()
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()

	// As one fast batch where the server takes batches; what it did not
	// store goes on below, message by message.
	first := start
	if !s.noBatch && p.fast.usable(end-start) {
		stored := p.publishFastBatch(ctx, s, b, start, end)
		for i := start; i < start+stored; i++ {
			res.count(asRecord, &b.Records[i])
		}
		res.batched += uint64(stored)
		if first += stored; first == end {
			return nil
		}
	}
	p.newItems(s, first, end)
	pending := s.pending[:0]
	for i := range s.items {
		pending = append(pending, i)
	}
	defer func() { s.pending = pending[:0] }()
	if err := p.confirm(ctx, s, b, pending); err != nil {
		return err
	}
	for i := range s.items {
		it := &s.items[i]
		res.count(it.route, &b.Records[it.rec])
		if it.dup && it.route != asDeadLetter { // Duplicates counts published records
			res.duplicates++
		}
	}
	return nil
}

// newItems makes s.items the records [first, end), each planned when it is
// first published (see message).
func (p *Publisher) newItems(s *scratch, first, end int) {
	clear(s.items)
	items := s.items[:0]
	for i := first; i < end; i++ {
		items = append(items, jsItem{rec: i})
	}
	s.items = items
}

// message returns the message to publish for it. A record NATS takes as
// its own message keeps nothing: its message is built again over s.msg and
// the scratch's one header whenever it is published (PublishMsg copies it,
// as in core mode), valid until the next call; that costs less than a
// message and a header kept per record until its PubAck. A record that
// can't go as its own message is planned (plan) when it is first published,
// as in core mode, and keeps the message plan made; an error of plan (an
// object put, nats.oversize fail) stops the batch.
func (p *Publisher) message(ctx context.Context, s *scratch, b *record.Batch, it *jsItem, out *msgOut) (*nats.Msg, error) {
	if it.msg != nil {
		return it.msg, nil
	}
	if ref := p.build(s, b, it.rec, &s.msg, s.header); it.planned || ref.cause == notRefused {
		it.planned = true
		return &s.msg, nil
	}
	// Planning may take a while (an Object Store put): what is buffered
	// goes out first, its acks awaited meanwhile. A failed write shows at
	// the next publish.
	_ = out.flush()
	m := new(nats.Msg)
	r, err := p.plan(ctx, s, b, it.rec, m, nil)
	if err != nil {
		return nil, err
	}
	it.msg, it.route, it.planned = m, r, true
	return m, nil
}

// describe returns the subject and Nats-Msg-Id of it's message, for the
// log and errors.
func (p *Publisher) describe(s *scratch, b *record.Batch, it *jsItem) (subject, msgID string) {
	m := it.msg
	if m == nil {
		p.build(s, b, it.rec, &s.msg, s.header)
		m = &s.msg
	}
	subject, msgID = m.Subject, strings.Clone(m.Header.Get(nats.MsgIdHdr))
	s.msg = nats.Msg{}
	return subject, msgID
}

// confirm publishes the items of pending, in rounds, until every one is
// confirmed or the chunk's time is up. It reuses pending's array.
func (p *Publisher) confirm(ctx context.Context, s *scratch, b *record.Batch, pending []int) error {
	items := s.items
	delay := retryDelayMin
	for attempt := 1; len(pending) > 0; attempt++ {
		var err error
		if pending, err = p.publishRound(ctx, s, b, pending, attempt > 1); err != nil {
			return err
		}
		if len(pending) == 0 {
			break
		}
		first := &items[pending[0]]
		if errors.Is(first.err, record.ErrNotValid) {
			return first.err // retrying cannot help until the lease is renewed
		}
		subject, msgID := p.describe(s, b, first)
		if ctx.Err() == nil {
			p.log.Warn().Str("stream", b.Stream).Str("shard", b.ShardID).Str("consumer", b.Consumer).
				Int("attempt", attempt).Int("unconfirmed", len(pending)).Int("messages", len(items)).
				Str("subject", subject).Err(first.err).
				Msg("JetStream did not confirm every message; publishing them again")
			t := time.NewTimer(delay/2 + rand.N(delay/2+1))
			select {
			case <-ctx.Done():
				t.Stop()
			case <-t.C:
			}
			delay = min(2*delay, retryDelayMax)
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%d of %d messages of a chunk not confirmed after %d attempts; first: subject %s, Nats-Msg-Id %s: %w",
				len(pending), len(items), attempt, subject, msgID, explainPubAckError(first.err, subject))
		}
	}
	return nil
}

// publishRound publishes the items of pending once, in order, and returns
// those not confirmed. Its first message goes alone: while the stream
// refuses (full, no leader) the round stops there, and no later message
// can be stored before it when the stream recovers in the middle of the
// round (a stream full since the last batch may take messages again at
// any moment). A duplicate proves nothing: JetStream answers one before
// its limits, so a full stream still says Duplicate, and the probe goes
// on, message by message, until one is stored as new.
func (p *Publisher) publishRound(ctx context.Context, s *scratch, b *record.Batch, pending []int, retry bool) ([]int, error) {
	items := s.items
	for len(pending) > 1 {
		stop := p.publishAsync(ctx, s, b, pending[:1], retry)
		failed, err := p.awaitAcks(ctx, s, b, pending[:1])
		if err = cmp.Or(stop, err); err != nil || len(failed) > 0 {
			return pending, err
		}
		dup := items[pending[0]].dup
		pending = pending[1:]
		if !dup {
			break
		}
	}
	stop := p.publishAsync(ctx, s, b, pending, retry)
	failed, err := p.awaitAcks(ctx, s, b, pending)
	if stop != nil {
		return nil, stop
	}
	return failed, err
}

// publishAsync publishes the messages items[pending...] in order, as one
// round of s.round (see ackWindow). It stops at the first message it cannot
// publish; that one and the rest are left unpublished, to be retried in
// order. An error of plan stops the batch: it returns it, and the round
// must still be awaited.
func (p *Publisher) publishAsync(ctx context.Context, s *scratch, b *record.Batch, pending []int, retry bool) error {
	items := s.items
	s.round.start(len(pending))
	for _, idx := range pending {
		items[idx].err = errNotAttempted
	}
	if st := p.nc.Status(); st != nats.CONNECTED {
		// Keep retries out of the reconnect buffer; wait for the next round.
		items[pending[0]].err = fmt.Errorf("%w (%s)", ErrNotConnected, st)
		return nil
	}
	if err := p.acks.ready(); err != nil {
		items[pending[0]].err = err
		return nil
	}
	defer func() { s.msg = nats.Msg{} }()
	out := p.out(s, len(pending) == 1)
	s.sentOn = out.direct()
	defer out.done(s)
	// What is buffered goes out before the round's acks are awaited; if it
	// can't, its messages fail at once, to be published again.
	defer func() {
		if err := out.flush(); err != nil {
			p.acks.abandon(&s.round, err)
		}
	}()
	// The window may hold the message back for as long as the chunk may take.
	for k, idx := range pending {
		it := &items[idx]
		if err := b.CheckValid(); err != nil {
			it.err = err
			return nil
		}
		m, err := p.message(ctx, s, b, it, out)
		if err != nil {
			return err
		}
		var rh *recordHeader
		if m == &s.msg {
			rh = s.header
		}
		if err := p.acks.publish(ctx, &s.round, k, m, rh, out); err != nil {
			it.err = err
			return nil
		}
		it.err = nil
		if retry {
			p.retries.Add(1)
		}
	}
	return nil
}

// awaitAcks waits for the PubAck of every message of pending, the round
// publishAsync published, and returns those that were not confirmed, in
// order, reusing pending's array. A message refused for its size is
// rerouted (see reroute), to be published as its dead letter or object
// reference in the next round, or stops the batch.
func (p *Publisher) awaitAcks(ctx context.Context, s *scratch, b *record.Batch, pending []int) ([]int, error) {
	items := s.items
	r := &s.round
	p.acks.await(ctx, r) // before any return: the round is then over
	if s.sentOn != nil && r.timedOut() {
		// The direct connection may be dead without knowing it yet.
		p.direct.drop(s.sentOn)
	}
	failed := pending[:0] // written no faster than pending is read
	for k, idx := range pending {
		it := &items[idx]
		if r.sent(k) {
			res := r.results[k]
			if res.err == nil {
				it.dup, it.err = res.dup, nil
				continue
			}
			it.err = res.err
		}
		if it.route == asRecord && refusedForSize(it.err) {
			m := new(nats.Msg) // kept: the record's place is taken
			p.build(s, b, it.rec, m, nil)
			rt, err := p.reroute(ctx, b, &b.Records[it.rec], m, p.pubAckRefusal(it.err, m))
			if err != nil {
				return nil, err
			}
			it.msg, it.route = m, rt
			if s.countFell {
				s.fell[it.rec] = false
			}
		}
		failed = append(failed, idx)
	}
	return failed, nil
}

// refusedForSize reports whether err refused a record's own message for
// its size: over the server's max_payload (the server changed since the
// message was planned) or the stream's max_msg_size. Both are permanent,
// unlike every other publish error.
func refusedForSize(err error) bool {
	var apiErr *jetstream.APIError
	return errors.Is(err, nats.ErrMaxPayload) ||
		errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamMessageExceedsMaximum
}

// pubAckRefusal returns why JetStream refused m, a record's own message,
// for its size, if it did (see refusedForSize).
func (p *Publisher) pubAckRefusal(err error, m *nats.Msg) refusal {
	switch {
	case !refusedForSize(err):
		return refusal{}
	case errors.Is(err, nats.ErrMaxPayload):
		return refusal{tooLarge, maxPayloadReason(len(m.Data), messageSize(m), p.nc.MaxPayload())}
	}
	return refusal{tooLarge, maxMsgSizeReason(len(m.Data), err)}
}

// explainPubAckError adds what to do to the errors an operator can fix.
func explainPubAckError(err error, subject string) error {
	if errors.Is(err, jetstream.ErrNoStreamResponse) {
		return fmt.Errorf("%w: no JetStream stream answered for subject %s: add the subject to a stream, or turn nats.jetstream off", err, subject)
	}
	return err
}
