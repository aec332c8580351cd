package relay

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// Fast batch publishing (nats-server 2.14+, a stream with allow_batched):
// the messages of a chunk go out as one batch, and the server confirms them
// with a flow-control ack every so many messages and one PubAck at the end,
// instead of a PubAck per message. That is about half the CPU per record in
// the relay. The batch runs in "gap: fail" mode: the server stores a prefix
// of the batch, in order, and stops the batch at the first message it
// cannot store (refused, or missing: a gap). Its final PubAck says how long
// that prefix is; the rest of the chunk is then published message by
// message, as without batches (jetStreamChunk), so every failure keeps the
// handling it has there (retries, dead letters, objects). Nats-Msg-Id
// deduplication holds within a batch as for single messages.
//
// The protocol is nats-server's fast-ingest batch (server/stream.go,
// getFastBatch): each message's reply subject is
// <inbox>.<batch id>.<flow>.fail.<batch sequence>.<operation>.$FI.
// Synadia's orbit.go jetstreamext.FastPublisher speaks it too, but it waits
// for its ack timeout when a batch's first message is refused (a stream
// without allow_batched), subscribes anew for every batch, and does not
// report how many messages a failed batch stored; this is the part of it
// fanoutd needs, on one subscription shared by every shard.

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
	fastOpPing   = "4"
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

	n uint64 // messages in the batch

	mu       sync.Mutex
	replied  bool   // the server answered a message of the batch
	acked    uint64 // the batch sequence stored up to, from flow acks
	flow     uint64 // the server's current ack interval
	done     bool   // the batch is over: its final PubAck, or an error reply
	final    bool   // done by a final PubAck: count is known
	count    uint64 // from the final PubAck: how many messages were stored
	err      error  // the first error the server reported, for the log
	disabled bool   // the stream does not allow batches
}

func newFastBatcher(nc *nats.Conn, on bool) *fastBatcher {
	f := &fastBatcher{nc: nc, inbox: nc.NewInbox(), idBase: nuid.Next(), batches: map[string]*fastBatch{}}
	f.on.Store(on)
	return f
}

// SetBatchPublish turns JetStream batch publishing on or off (JetStream
// mode; see fastbatch.go), e.g. after a reload found that the streams
// capturing the record subjects allow batches (CheckCapture). Batches
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
	return serverAtLeast(f.nc.ConnectedServerVersion(), 2, 14)
}

// serverAtLeast reports whether version (as a server reports it:
// "2.14.0", "2.15.0-RC.1") is at least major.minor.
func serverAtLeast(version string, major, minor int) bool {
	parts := strings.SplitN(version, ".", 3)
	if len(parts) < 2 {
		return false
	}
	maj, err1 := strconv.Atoi(parts[0])
	mnr, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil {
		return false
	}
	return maj > major || maj == major && mnr >= minor
}

// start registers a new batch and returns its id and the prefix of its
// reply subjects.
func (f *fastBatcher) start(n int) (string, string, *fastBatch, error) {
	id := f.idBase + strconv.FormatUint(f.nextID.Add(1), 36)
	b := &fastBatch{signal: make(chan struct{}, 1), flow: fastFlow, n: uint64(n)}
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
	Seq   uint64              `json:"seq"`
	Msgs  uint64              `json:"msgs"`
	Error *jetstream.APIError `json:"error"`
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
		if b.err == nil && r.Error != nil {
			b.err = r.Error
		}
	case r.Type == "gap":
		if b.err == nil {
			b.err = fmt.Errorf("batch messages lost on the way to the server (a gap)")
		}
	case r.Type != "":
	case r.Error != nil:
		// A message refused before it reached the batch (its size, the
		// stream's state; allow_batched off, or the batch unknown: then
		// every message is refused so). Any later message makes a gap:
		// the server then ends the batch and sends its final PubAck.
		// The first or the last message refused ends it here.
		if b.err == nil {
			b.err = r.Error
		}
		if seq <= 1 || seq >= b.n {
			b.done = true
			b.disabled = seq <= 1 && r.Error.ErrorCode == jsErrCodeBatchPublishDisabled
		}
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

// jsErrCodeBatchPublishDisabled is nats-server's JSBatchPublishDisabledErr
// ("batch publish is disabled": the stream has allow_batched off).
const jsErrCodeBatchPublishDisabled = 10205

// publishFastBatch publishes items as one batch and returns how many of
// them, from the first, JetStream stored (the rest the caller publishes
// message by message). It never returns an error: whatever went wrong, the
// messages after the stored prefix are left to the caller.
func (p *Publisher) publishFastBatch(chunkCtx context.Context, items []jsItem) int {
	f := p.fast
	id, prefix, b, err := f.start(len(items))
	if err != nil {
		p.log.Warn().Err(err).Msg("JetStream batch publishing unavailable; publishing message by message")
		return 0
	}
	defer f.end(id)
	// Half the chunk's time at most: the rest is for what the batch did
	// not store.
	ctx, cancel := context.WithTimeout(chunkCtx, p.timeout/2)
	defer cancel()

	sent := 0
	ping := time.NewTimer(p.timeout / 4)
	defer ping.Stop()
	for i := range items {
		msg := items[i].msg
		op := fastOpAppend
		switch {
		case i == len(items)-1:
			op = fastOpCommit
		case i == 0:
			op = fastOpStart
		}
		msg.Reply = prefix + strconv.Itoa(i+1) + "." + op + ".$FI"
		err := p.nc.PublishMsg(msg)
		msg.Reply = ""
		if err != nil {
			break
		}
		sent = i + 1
		// Wait for the server's answer to the first message (a stream
		// that refuses batches refuses it, and then no other goes out
		// twice), then while fastWindows flow intervals are unconfirmed.
		for {
			b.mu.Lock()
			done, stall := b.done, !b.replied || uint64(sent) >= b.acked+b.flow*fastWindows
			b.mu.Unlock()
			if done || !stall || !p.waitFast(ctx, b, ping, items[0].msg.Subject, prefix, sent) {
				break
			}
		}
		if b.isDone() || ctx.Err() != nil {
			break
		}
	}
	if sent == len(items) {
		for !b.isDone() && p.waitFast(ctx, b, ping, items[0].msg.Subject, prefix, sent) {
		}
	}

	b.mu.Lock()
	defer b.mu.Unlock()
	if b.disabled {
		if f.retryAt.Swap(time.Now().Add(fastRetryAfter).UnixNano()) == 0 {
			p.log.Info().Str("subject", items[0].msg.Subject).
				Msg("the JetStream stream refuses batch publishing (allow_batched is off): publishing message by message, at more CPU per record; set allow_batched on the stream to use batches")
		}
		return 0
	}
	if !b.replied && sent > 0 && chunkCtx.Err() == nil {
		// Not a word from the server about the batch in all that time,
		// while the connection stayed up: no batches for a while.
		f.retryAt.Store(time.Now().Add(fastRetryAfter).UnixNano())
		p.log.Warn().Str("subject", items[0].msg.Subject).Dur("waited", p.timeout/2).
			Msg("JetStream did not answer a batch publish; publishing message by message for a minute")
		return 0
	}
	stored := b.acked // a prefix, in "gap: fail" mode
	if b.final {
		stored = b.count
	}
	stored = min(stored, uint64(sent))
	if int(stored) < len(items) && ctx.Err() == nil {
		p.log.Debug().Str("subject", items[0].msg.Subject).Uint64("stored", stored).Int("messages", len(items)).Err(b.err).
			Msg("a JetStream batch stored only part of a chunk; publishing the rest message by message")
	}
	return int(stored)
}

// waitFast waits for news of b, pinging the server (which then repeats its
// last flow ack) when none comes for a while. It returns false once ctx is
// done.
func (p *Publisher) waitFast(ctx context.Context, b *fastBatch, ping *time.Timer, subject, prefix string, sent int) bool {
	select {
	case <-b.signal:
		return true
	case <-ping.C:
		_ = p.nc.PublishRequest(subject, prefix+strconv.Itoa(sent)+"."+fastOpPing+".$FI", nil)
		ping.Reset(p.timeout / 4)
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
