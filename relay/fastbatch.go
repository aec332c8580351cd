package relay

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/fanoutd/fanoutd/jsassets"
	"github.com/fanoutd/fanoutd/record"
)

// Fast batch publishing (nats-server 2.14+, a stream with allow_batched):
// the messages of a chunk go out as one batch, and the server confirms them
// with a flow-control ack every so many messages and one PubAck at the end,
// instead of a PubAck per message. As in core mode, one reused message and
// header serve every record (nothing is kept per record until its ack). In
// the bench that is a fifth of a plain relay's CPU per record, against 0.38
// message by message. The batch runs in "gap: fail" mode: the server
// stores the batch in order and stops it at the first message it refuses in
// its checks or that went missing (a gap). A message that fails later, when
// it is written (a store error: the disk, an account limit checked again),
// does not stop the batch: the ones after it are stored, and it is stored
// after them, by the path below. What counts as stored is the prefix the
// acks and the final PubAck confirm, cut before the first message the
// server said it refused or lost (the acks may count a message whose store
// failed). The rest of the chunk is published message by message, as
// without batches (jetStreamChunk), so every failure keeps the handling it
// has there (retries, dead letters, objects); the batch itself stops before
// the first record that can't go as its own message.
//
// Duplicates: a batch drops a message JetStream already has without a
// word, also one whose first copy is still being stored (proposed in a
// cluster, not yet applied), which a leader change can still lose. Such a
// copy exists only shortly after an attempt that failed; so after a failed
// Handle, a shard publishes message by message (each duplicate then gets
// its own answer, an error while in process) until a Handle that reaches
// the failed attempt's last record succeeds (Publisher.unsure). A copy
// from another process (before a restart, or the shard's previous owner in
// a group) is not known here: that narrow case is left.
//
// The protocol is nats-server's fast-ingest batch (server/stream.go,
// getFastBatch, processJetStreamFastBatchMsg): each message's reply
// subject is <inbox>.<batch id>.<flow>.fail.<batch sequence>.<operation>.$FI,
// and the last message carries the commit. There is no ping: a ping, like
// a commit without a message, goes to the subject and so reaches its
// plain subscribers. Synadia's orbit.go jetstreamext.FastPublisher speaks
// the protocol too, but it waits for its ack timeout when a batch's first
// message is refused (a stream without allow_batched), subscribes anew for
// every batch, does not say how many messages a failed batch stored, and
// pings; this is the part of it fanoutd needs, on one subscription shared
// by every shard.

const (
	// fastFlow is the flow-control interval asked of the server: an ack
	// every fastFlow messages (the server may lower it when many batches
	// share a stream).
	fastFlow = 100
	// fastWindows is how many flow intervals may be unconfirmed before the
	// publisher waits: fastWindows*fastFlow messages in flight per shard.
	fastWindows = 2
	// fastMinMessages: smaller chunks are published message by message,
	// where a batch would save nothing.
	fastMinMessages = 4
	// fastRetryAfter is how long publishing stays message by message after
	// a stream refused a batch (allow_batched off), before a batch is tried
	// again.
	fastRetryAfter = time.Minute
)

// The fast-batch operations of the reply subject.
const (
	fastOpStart  = "0"
	fastOpAppend = "1"
	fastOpCommit = "2"
)

// fastBatcher is a Publisher's fast-batch state, shared by its shards.
type fastBatcher struct {
	nc      *nats.Conn
	inbox   string // every reply subject starts with inbox + "."
	idBase  string // batch ids are idBase + a counter: unique per stream
	nextID  atomic.Uint64
	retryAt atomic.Int64 // unix nanoseconds; no batch before it (refused)
	on      atomic.Bool  // SetBatchPublish

	mu      sync.Mutex
	sub     *nats.Subscription // on inbox.>, made with the first batch
	batches map[string]*fastBatch
}

// fastBatch is one batch in flight.
type fastBatch struct {
	signal chan struct{} // cap 1: something below changed

	mu      sync.Mutex
	replied bool   // the server answered a message of the batch
	acked   uint64 // the batch sequence stored up to, from flow acks
	flow    uint64 // the server's current ack interval
	done    bool   // the batch is over: its final PubAck, or an error reply
	final   bool   // done by a final PubAck: count is known
	count   uint64 // from the final PubAck: how many messages were stored
	// limit bounds what counts as stored: the messages before the first
	// one the server refused or reported lost. A message can be refused
	// after the batch counted it (a store error): the acks and the count
	// may then include it, so nothing from it on counts as stored.
	limit    uint64
	err      error // the first error the server reported, for the log
	disabled bool  // no batches for a while: refused, or not understood
}

func newFastBatcher(nc *nats.Conn, on bool) *fastBatcher {
	f := &fastBatcher{nc: nc, inbox: nc.NewInbox(), idBase: nuid.Next(), batches: map[string]*fastBatch{}}
	f.on.Store(on)
	return f
}

// SetBatchPublish turns JetStream batch publishing on or off (JetStream
// mode; see fastbatch.go), e.g. after a reload found that the streams
// capturing the record subjects allow batches (jsassets.CheckCapture). Batches
// already in flight finish as they started.
func (p *Publisher) SetBatchPublish(on bool) {
	if p.fast != nil {
		p.fast.on.Store(on)
		if on {
			p.fast.retryAt.Store(0)
		}
	}
}

// usable reports whether a chunk of n messages may go as a batch now: the
// server is 2.14 or later and no stream refused a batch recently.
func (f *fastBatcher) usable(n int) bool {
	if n < fastMinMessages || !f.on.Load() || time.Now().UnixNano() < f.retryAt.Load() {
		return false
	}
	return jsassets.BatchPublishSupported(f.nc)
}

// start registers a new batch and returns its id and the prefix of its
// reply subjects.
func (f *fastBatcher) start() (string, string, *fastBatch, error) {
	id := f.idBase + strconv.FormatUint(f.nextID.Add(1), 36)
	b := &fastBatch{signal: make(chan struct{}, 1), flow: fastFlow, limit: math.MaxUint64}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.sub == nil || !f.sub.IsValid() {
		sub, err := f.nc.Subscribe(f.inbox+".>", f.onReply)
		if err != nil {
			return "", "", nil, fmt.Errorf("subscribe to batch acks: %w", err)
		}
		// A slow handler must not drop acks: the wait below would only
		// end at the chunk's timeout. Replies are small and few.
		_ = sub.SetPendingLimits(-1, -1)
		// The batch may go on the direct connection: the server must have
		// the subscription before its first message, or the acks are lost.
		if err := f.nc.FlushTimeout(subscribeFlushTimeout); err != nil {
			_ = sub.Unsubscribe()
			return "", "", nil, fmt.Errorf("subscribe to batch acks: %w", err)
		}
		f.sub = sub
	}
	f.batches[id] = b
	return id, f.inbox + "." + id + "." + strconv.Itoa(fastFlow) + ".fail.", b, nil
}

func (f *fastBatcher) end(id string) {
	f.mu.Lock()
	delete(f.batches, id)
	f.mu.Unlock()
}

// The server's replies to batch messages.
type fastReply struct {
	Type string `json:"type"`
	// flow ack: stored up to Seq; acks now every Msgs messages.
	// err: the message Seq was refused.
	// gap: the messages from LastSeq up to Seq went missing.
	Seq     uint64              `json:"seq"`
	LastSeq uint64              `json:"last_seq"`
	Msgs    uint64              `json:"msgs"`
	Error   *jetstream.APIError `json:"error"`
	// The final PubAck.
	Stream string `json:"stream"`
	Batch  string `json:"batch"`
	Count  uint64 `json:"count"`
}

// onReply files a server reply with its batch.
func (f *fastBatcher) onReply(m *nats.Msg) {
	// <batch id>.<flow>.fail.<batch sequence>.<operation>.$FI
	tokens := strings.Split(strings.TrimPrefix(m.Subject, f.inbox+"."), ".")
	if len(tokens) != 6 {
		return
	}
	id := tokens[0]
	seq, _ := strconv.ParseUint(tokens[3], 10, 64)
	f.mu.Lock()
	b := f.batches[id]
	f.mu.Unlock()
	if b == nil {
		return // a reply to a batch already over (e.g. to messages after its end)
	}
	var r fastReply
	var err error
	switch {
	case len(m.Data) == 0 && m.Header.Get("Status") == "503":
		err = jetstream.ErrNoStreamResponse
	case json.Unmarshal(m.Data, &r) != nil:
		err = fmt.Errorf("unexpected batch reply %q", bytes.TrimSpace(m.Data[:min(len(m.Data), 200)]))
	}
	b.mu.Lock()
	b.replied = true
	switch {
	case b.done:
	case err != nil:
		b.done, b.err = true, err
	case r.Type == "ack":
		b.acked = max(b.acked, r.Seq)
		if r.Msgs > 0 {
			b.flow = r.Msgs
		}
	case r.Type == "err":
		// Message r.Seq refused (the server ends the batch there).
		b.refused(r.Seq, r.Error)
	case r.Type == "gap":
		// Messages from r.LastSeq on did not reach the batch.
		b.refused(r.LastSeq, fmt.Errorf("batch messages %d to %d lost on the way to the server (a gap)", r.LastSeq, r.Seq))
	case r.Type != "":
	case r.Error != nil:
		// Message seq refused: before it reached the batch (its size,
		// the stream's state; allow_batched off, or the batch unknown,
		// and then every message is refused so), or when it was stored.
		// Nothing from it on counts as stored, and the publisher stops
		// the batch there. The first message refused ends the batch.
		b.refused(seq, r.Error)
		if seq <= 1 {
			b.done = true
			b.disabled = r.Error.ErrorCode == jsErrCodeBatchPublishDisabled || r.Error.ErrorCode == jsErrCodeBatchPublishTooManyInflight
		}
	case r.Batch == "":
		// A plain PubAck: a server (a stream leader) that does not know
		// batches stored the first message as a single one.
		b.done, b.disabled = true, true
	default:
		// The final PubAck, also after a refused message or a gap: count
		// stops before it.
		b.done, b.final, b.count = true, true, r.Count
	}
	b.mu.Unlock()
	select {
	case b.signal <- struct{}{}:
	default:
	}
}

// stored is how many messages, from the first, count as stored once sent
// went out. Lock held.
func (b *fastBatch) stored(sent int) uint64 {
	n := b.acked // a prefix, in "gap: fail" mode
	if b.final {
		n = b.count
	}
	return min(n, uint64(sent), b.limit)
}

// refused notes that the batch's message seq (1-based) was not stored.
// Lock held.
func (b *fastBatch) refused(seq uint64, err error) {
	if seq > 0 {
		b.limit = min(b.limit, seq-1)
	} else {
		b.limit = 0 // which one is unknown: none counts
	}
	if b.err == nil && err != nil {
		b.err = err
	}
}

// nats-server's error codes for a batch refused as a whole, at its first
// message: JSBatchPublishDisabledErr ("batch publish is disabled": the
// stream has allow_batched off) and JSBatchPublishTooManyInflight (the
// stream or the server holds its maximum of open batches).
const (
	jsErrCodeBatchPublishDisabled        = 10205
	jsErrCodeBatchPublishTooManyInflight = 10211
)

// publishFastBatch publishes the records [start, end) of b as one batch
// and returns how many of them, from the first, JetStream stored; the
// caller publishes the rest message by message. The batch stops before the
// first record that can't go as its own message (see plan): that one and
// the rest go message by message too. As in core mode, the batch goes on
// the direct connection when there is one (see msgOut), and one message
// and one header serve every record (they are copied as they are
// published): nothing is held per record until its ack. It never fails:
// whatever went wrong, what was not stored is left to the caller.
func (p *Publisher) publishFastBatch(chunkCtx context.Context, s *scratch, b *record.Batch, start, end int) int {
	f := p.fast
	id, prefix, fb, err := f.start()
	if err != nil {
		p.log.Warn().Err(err).Str("then", "message by message").Msg("JetStream batch publishing unavailable")
		return 0
	}
	defer f.end(id)
	// Half the chunk's time at most: the rest is for what the batch did
	// not store.
	ctx, cancel := context.WithTimeout(chunkCtx, p.timeout/2)
	defer cancel()

	if s.next == nil {
		s.next = newRecordHeader()
	}
	// build fills m with record i's message, with header rh; false if the
	// record can't go as it is (its route is for the message-by-message
	// path to plan).
	build := func(i int, rh *recordHeader, m *nats.Msg) bool {
		return p.build(s, b, i, m, rh).cause == notRefused
	}
	// Two messages: the next one is built before the current one goes
	// out, so that the batch's last message carries its commit (an
	// extra message to end it would reach the subject's subscribers).
	cur, next := &s.msg, &s.nextMsg
	curH, nextH := s.header, s.next
	defer func() { *cur, *next = nats.Msg{}, nats.Msg{} }()
	// The first message goes alone through nats.go (see msgOut), and the
	// others after its answer.
	first, out := p.out(s, true), p.out(s, false)
	defer out.done(s)
	var subject string // the first message's
	sent, committed := 0, false
	ok := build(start, curH, cur)
	for i := start; ok; i++ {
		ok = i+1 < end && build(i+1, nextH, next)
		op := fastOpAppend
		switch {
		case !ok:
			op = fastOpCommit
		case sent == 0:
			op = fastOpStart
		}
		if sent == 0 {
			subject = cur.Subject
		}
		cur.Reply = s.fastReply(prefix, sent+1, op)
		if b.CheckValid() != nil {
			break // the rest goes message by message, which fails at once
		}
		o := out
		if sent == 0 {
			o = first
		}
		if err := o.publish(cur, curH); err != nil {
			break
		}
		sent, committed = sent+1, op == fastOpCommit
		// Wait for the server's answer to the first message (a stream
		// that refuses batches refuses it, and then no other goes out
		// twice), then while fastWindows flow intervals are unconfirmed.
		lost := false
		for {
			fb.mu.Lock()
			done, stall := fb.done, !fb.replied || uint64(sent) >= fb.acked+fb.flow*fastWindows
			fb.mu.Unlock()
			if done || !stall {
				break
			}
			if lost = out.flush() != nil; lost || !waitFast(ctx, fb) {
				break
			}
		}
		if lost || fb.over() || ctx.Err() != nil {
			ok = false // done, or a message refused: the rest goes one by one
			break
		}
		cur, next = next, cur
		curH, nextH = nextH, curH
	}
	if out.flush() != nil {
		committed = false // what was not written is left to the caller
	}
	if sent == 0 {
		return 0
	}
	if committed && !fb.over() {
		// The commit went out: wait for the final PubAck.
		for !fb.isDone() && waitFast(ctx, fb) {
		}
	}
	return p.fastStored(ctx, chunkCtx, fb, subject, sent, end-start)
}

// fastStored is how many of the sent messages of the batch fb, on subject,
// JetStream stored, once it is over or its time (ctx) is up: none when the
// server refused batches or did not answer, which turns batches off for
// fastRetryAfter.
func (p *Publisher) fastStored(ctx, chunkCtx context.Context, fb *fastBatch, subject string, sent, messages int) int {
	f := p.fast
	fb.mu.Lock()
	defer fb.mu.Unlock()
	if fb.disabled {
		if f.retryAt.Swap(time.Now().Add(fastRetryAfter).UnixNano()) == 0 {
			p.log.Info().Str("subject", subject).Err(fb.err).
				Str("cause", "a stream with allow_batched off, too many open batches, or a server before 2.14").
				Str("then", "message by message, at more CPU per record; batches retried every minute").
				Msg("JetStream refuses batch publishing")
		}
		return 0
	}
	if !fb.replied && chunkCtx.Err() == nil {
		// Not a word from the server about the batch in all that time:
		// no batches for a while.
		f.retryAt.Store(time.Now().Add(fastRetryAfter).UnixNano())
		p.log.Warn().Str("subject", subject).Dur("waited", p.timeout/2).
			Str("then", "message by message for a minute").
			Msg("JetStream did not answer a batch publish")
		return 0
	}
	stored := fb.stored(sent)
	if int(stored) < messages && ctx.Err() == nil {
		p.log.Debug().Str("subject", subject).Uint64("stored", stored).Int("messages", messages).Err(fb.err).
			Str("then", "the rest message by message").
			Msg("JetStream batch stored part of a chunk")
	}
	return int(stored)
}

// fastReply returns the reply subject of a batch message, over s.reply:
// valid until the next call (publishing copies it).
func (s *scratch) fastReply(prefix string, seq int, op string) string {
	r := append(s.reply[:0], prefix...)
	r = strconv.AppendInt(r, int64(seq), 10)
	r = append(r, '.')
	r = append(r, op...)
	r = append(r, ".$FI"...)
	s.reply = r
	return unsafe.String(&r[0], len(r))
}

// waitFast waits for news of b. It returns false once ctx is done. A flow
// ack lost on the way (there is no ping: a ping goes to the subject, and so
// to its subscribers) leaves the wait to ctx, and the rest of the chunk to
// the message-by-message path.
func waitFast(ctx context.Context, b *fastBatch) bool {
	select {
	case <-b.signal:
		return true
	case <-ctx.Done():
		return false
	}
}

func (b *fastBatch) isDone() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.done
}

// over reports that sending more is useless: the batch is done, or a
// message of it was refused.
func (b *fastBatch) over() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.done || b.limit != math.MaxUint64
}
