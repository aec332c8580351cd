package relay

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
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

// noLibraryRetry keeps nats.go from re-publishing a message by itself after
// "no responders": it would do so on a timer, possibly after Handle returned
// and the caller reused the record's data. Handle retries instead.
var noLibraryRetry = jetstream.WithRetryAttempts(0)

// errNotAttempted marks messages a round did not publish, because an
// earlier one could not be published and publishing later ones first would
// store them out of order.
var errNotAttempted = errors.New("not published: an earlier message of the batch failed")

// jsItem is one message of a JetStream batch.
type jsItem struct {
	rec    int // index into the batch's records
	msg    *nats.Msg
	msgID  string
	dead   bool // msg is the record's dead letter
	dup    bool // the PubAck said Duplicate
	object bool // msg is the reference to the record stored as an object
	future jetstream.PubAckFuture
	err    error // why the last attempt failed
}

// handleJetStream publishes b to JetStream and waits for every PubAck.
//
// The batch is published chunk by chunk (see chunkMessages). Where the
// server and the stream take them, a chunk goes first as one fast batch
// (fastbatch.go), and what that did not store goes on as follows: the rest
// of the chunk, or all of it without batches. All messages
// of a chunk go out asynchronously, in order, within the shared window of
// Options.MaxPending outstanding PubAcks; then Handle waits for all of
// them. The messages whose PubAck failed or timed out are published again,
// with the same Nats-Msg-Id, after a backoff, and again, until all are
// confirmed or the chunk's PublishTimeout (or ctx) ends: then the batch
// fails and the caller replays it whole, the chunks already stored being
// dropped as duplicates. A PubAck with Duplicate set
// means JetStream already had the message (a replay, or a retry of a
// message whose first PubAck was lost): it counts as delivered.
//
// Order: one connection carries the messages in batch order, so JetStream
// stores a shard's records in sequence order, each exactly once within the
// stream's duplicate window, as long as first attempts succeed. A retry
// cannot restore order: if message k failed while k+1 was stored, k is
// stored after k+1 (re-publishing k+1 too would not help, it would be
// deduplicated where it is). So every round (the first one and each retry)
// publishes its first message alone and goes on only once that one is
// stored as new (so a stream that recovers in the middle of a round, after
// being full, stores the rest in order; a Duplicate answer proves nothing
// about room, so the next message is probed alone), and a round stops
// publishing at the
// first message it cannot publish. The only reordering left is of messages
// whose PubAck failed after they were sent while later ones were stored,
// which happens when a stream leader changes (or a full stream takes
// messages again) in the middle of a round, after its first message. A
// consumer that needs strict order can sort by the Kinesis-Sequence-Number
// and Kinesis-Sub-Sequence-Number headers. A replay older than the stream's
// duplicate window (2 minutes by default) is stored again.
func (p *Publisher) handleJetStream(ctx context.Context, s *scratch, tmpl *SubjectTemplate, b *record.Batch) (batchResult, error) {
	var res batchResult
	if st := p.nc.Status(); st != nats.CONNECTED {
		return res, fmt.Errorf("%w (%s)", ErrNotConnected, st)
	}
	for start := 0; start < len(b.Records); {
		end := chunkEnd(b.Records, start)
		if err := p.jetStreamChunk(ctx, s, tmpl, b, start, end, &res); err != nil {
			return res, err
		}
		start = end
	}
	return res, nil
}

// jetStreamChunk publishes the records [start, end) of b and waits, within
// PublishTimeout, until JetStream confirmed every one of them.
func (p *Publisher) jetStreamChunk(ctx context.Context, s *scratch, tmpl *SubjectTemplate, b *record.Batch, start, end int, res *batchResult) error {
	maxPayload := p.nc.MaxPayload()
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()

	// As one fast batch where the server takes batches; what it did not
	// store goes on below, message by message.
	first := start
	if !s.noBatch && p.fast.usable(end-start) {
		stored := p.publishFastBatch(ctx, s, tmpl, b, start, end)
		for i := start; i < start+stored; i++ {
			res.bytes += uint64(len(b.Records[i].Data))
		}
		res.published += uint64(stored)
		res.batched += uint64(stored)
		if first += stored; first == end {
			return nil
		}
	}

	// nats.go keeps each message until its PubAck, and so does Handle for
	// retries: every record of the chunk needs its own message and header.
	clear(s.items)
	items := s.items[:0]
	for i := first; i < end; i++ {
		rec := &b.Records[i]
		h, hsize := RecordHeader(b, rec)
		it := jsItem{
			rec:   i,
			msg:   &nats.Msg{Subject: s.render(tmpl, subjectValues(b, rec)), Data: rec.Data, Header: h},
			msgID: h.Get(nats.MsgIdHdr),
		}
		reason := ""
		if len(it.msg.Subject) > MaxSubjectBytes {
			reason = subjectTooLongReason(len(it.msg.Subject))
		} else if size := len(rec.Data) + hsize; int64(size) > maxPayload-64 {
			// Near the limit: the exact size, as the server counts it.
			if size = messageSize(it.msg); int64(size) > maxPayload {
				reason = maxPayloadReason(len(rec.Data), size, maxPayload)
			}
		}
		if reason != "" && p.useObjectStore(reason) {
			// The put has its own timeout, before the chunk's starts.
			if err := p.storeObject(ctx, b, rec, it.msg); err != nil {
				return err
			}
			it.object, reason = true, ""
		}
		if reason != "" {
			if err := p.oversize(b, rec, reason); err != nil {
				return err
			}
			p.deadLetterItem(b, &it, reason)
		}
		items = append(items, it)
	}
	s.items = items
	pending := s.pending[:0]
	for i := range items {
		pending = append(pending, i)
	}
	defer func() { s.pending = pending[:0] }()

	delay := retryDelayMin
	for attempt := 1; len(pending) > 0; attempt++ {
		probed := true
		for len(pending) > 1 {
			// Every round first publishes its first message alone: while
			// the stream refuses (full, no leader) the round stops there,
			// and no later message can be stored before it when the
			// stream recovers in the middle of the round. The first round
			// too: a stream full since the last batch may take messages
			// again at any moment. A duplicate proves nothing (JetStream
			// answers one before its limits: a full stream still says
			// Duplicate), so the probe goes on, message by message, until
			// one is stored as new. A stress run caught a replay whose
			// first message was a duplicate on a full stream: the rest
			// went out, the stream took messages again mid-round, and a
			// key's records were stored out of order.
			p.publishAsync(ctx, s, b, pending[:1], attempt > 1)
			failed, err := p.awaitAcks(ctx, b, items, pending[:1])
			if err != nil {
				return err
			}
			if probed = len(failed) == 0; !probed {
				break
			}
			dup := items[pending[0]].dup
			pending = pending[1:]
			if !dup {
				break
			}
		}
		if probed {
			p.publishAsync(ctx, s, b, pending, attempt > 1)
			var err error
			if pending, err = p.awaitAcks(ctx, b, items, pending); err != nil {
				return err
			}
		}
		if len(pending) == 0 {
			break
		}
		first := &items[pending[0]]
		if errors.Is(first.err, record.ErrNotValid) {
			return first.err // retrying cannot help until the lease is renewed
		}
		if ctx.Err() == nil {
			p.log.Warn().Str("stream", b.Stream).Str("shard", b.ShardID).Str("consumer", b.Consumer).
				Int("attempt", attempt).Int("unconfirmed", len(pending)).Int("messages", len(items)).
				Str("subject", first.msg.Subject).Err(first.err).
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
				len(pending), len(items), attempt, first.msg.Subject, first.msgID, explainPubAckError(first.err, first.msg.Subject))
		}
	}

	for i := range items {
		it := &items[i]
		if it.dead {
			res.deadLettered++
			continue
		}
		res.published++
		res.bytes += uint64(len(it.msg.Data))
		if it.object {
			res.objects++
			res.objectBytes += uint64(len(b.Records[it.rec].Data))
		}
		if it.dup {
			res.duplicates++
		}
	}
	return nil
}

// publishAsync publishes the messages items[pending...] in order. It stops
// at the first message it cannot publish; that one and the rest are left
// without a future, to be retried in order.
func (p *Publisher) publishAsync(ctx context.Context, s *scratch, b *record.Batch, pending []int, retry bool) {
	items := s.items
	for _, idx := range pending {
		items[idx].future, items[idx].err = nil, errNotAttempted
	}
	if st := p.nc.Status(); st != nats.CONNECTED {
		// Keep retries out of the reconnect buffer; wait for the next round.
		items[pending[0]].err = fmt.Errorf("%w (%s)", ErrNotConnected, st)
		return
	}
	// Wait for room in the window for as long as the batch may take.
	stall := time.Millisecond
	if deadline, ok := ctx.Deadline(); ok {
		stall = max(time.Until(deadline), stall)
	}
	stallOpt := jetstream.WithStallWait(stall)
	for _, idx := range pending {
		it := &items[idx]
		if err := b.CheckValid(); err != nil {
			it.err = err
			return
		}
		s.opts = append(s.opts[:0], jetstream.WithMsgID(it.msgID), stallOpt, noLibraryRetry)
		f, err := p.js.PublishMsgAsync(it.msg, s.opts...)
		if err != nil {
			it.err = err
			return
		}
		it.future, it.err = f, nil
		if retry {
			p.retries.Add(1)
		}
	}
}

// awaitAcks waits for the PubAck of every message of pending and returns
// those that were not confirmed, in order, reusing pending's array. A
// message refused for its size becomes its dead letter, to be published in
// the next round.
// With nats.oversize fail, such a message returns the error that stops
// the stream instead.
func (p *Publisher) awaitAcks(ctx context.Context, b *record.Batch, items []jsItem, pending []int) ([]int, error) {
	failed := pending[:0] // written no faster than pending is read
	for _, idx := range pending {
		it := &items[idx]
		if it.future != nil {
			select {
			case ack := <-it.future.Ok():
				it.dup = ack.Duplicate
				it.future, it.err = nil, nil
				continue
			case err := <-it.future.Err():
				it.err = err
			case <-ctx.Done():
				it.err = ctx.Err()
			}
			it.future = nil
		}
		if !it.dead && !it.object {
			rec := &b.Records[it.rec]
			reason := ""
			if errors.Is(it.err, nats.ErrMaxPayload) {
				// The server changed, and so did max_payload.
				reason = maxPayloadReason(len(rec.Data), messageSize(it.msg), p.nc.MaxPayload())
			} else if isMaxMsgSize(it.err) {
				reason = maxMsgSizeReason(len(rec.Data), it.err)
			}
			if reason != "" && p.useObjectStore(reason) {
				// Published again, as its reference, in the next round.
				if err := p.storeObject(ctx, b, rec, it.msg); err != nil {
					return nil, err
				}
				it.object, reason = true, ""
			}
			if reason != "" {
				if err := p.oversize(b, rec, reason); err != nil {
					return nil, err
				}
				p.deadLetterItem(b, it, reason)
			}
		}
		failed = append(failed, idx)
	}
	return failed, nil
}

// deadLetterItem replaces the message of it by its dead letter.
func (p *Publisher) deadLetterItem(b *record.Batch, it *jsItem, reason string) {
	rec := &b.Records[it.rec]
	makeDeadLetter(it.msg, p.deadLetterSubject(b, rec), reason)
	it.dead = true
	p.logDeadLetter(b, rec, it.msg)
}

// isMaxMsgSize reports whether err is the PubAck error of a stream refusing
// a message over its max_msg_size: permanent, unlike every other.
func isMaxMsgSize(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamMessageExceedsMaximum
}

// explainPubAckError adds what to do to the errors an operator can fix.
func explainPubAckError(err error, subject string) error {
	if errors.Is(err, jetstream.ErrNoStreamResponse) {
		return fmt.Errorf("%w: no JetStream stream answered for subject %s: add the subject to a stream, or turn nats.jetstream off", err, subject)
	}
	return err
}
