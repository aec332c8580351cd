package relay

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"
	"unsafe"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ackWindow publishes JetStream messages one by one without waiting for
// each PubAck, for the message-by-message path (jetstream.go). It is what
// nats.go's PublishMsgAsync does, without its cost per message (a future
// with two channels and a timer, a random token, a PubAck decoded by
// reflection: a third of the daemon's CPU in a catch-up into a stream
// without batches):
//   - one reply subscription, <inbox>.*, made with the first message; nats.go
//     renews it on every reconnect;
//   - a token per message, a 64-bit counter: never reused, so a late answer to
//     an abandoned message (its round timed out) finds no one and is dropped;
//   - a table of the acks awaited, at most max of them over all the shards
//     (the window): a publisher waits for room until its chunk's deadline;
//   - each round of a shard's messages (ackRound) waits on one channel,
//     signalled when its last ack is in, and reads its results after.
//
// An ack not in after timeout fails its message (jetstream.ErrAsyncPublishTimeout),
// and every ack awaited fails when the connection is lost (nats.ErrDisconnected):
// an ack of a message sent before that may never come. Handle retries them.
type ackWindow struct {
	nc      *nats.Conn
	max     int
	timeout time.Duration

	mu      sync.Mutex
	sub     *nats.Subscription
	prefix  string // the reply subjects': the inbox and a dot
	next    uint64 // the last token handed out
	awaited map[uint64]ackSlot
	room    chan struct{} // closed when a slot frees; made by a publisher waiting for one
	watched bool          // the connection's status is watched (watchConn)
}

// ackSlot is one message awaiting its ack: the i-th of round.
type ackSlot struct {
	round    *ackRound
	i        int
	deadline time.Time
}

// ackRound is one round of a shard's messages (jetstream.go publishRound):
// published in order, then awaited together. Reused by the shard's next
// rounds (it lives in the Handle's scratch).
type ackRound struct {
	done    chan struct{} // cap 1: the last ack awaited is in
	open    int           // acks awaited; ackWindow.mu held
	tokens  []uint64      // per message; 0: not published
	results []ackResult   // per message; read once open is 0
	last    time.Time     // the latest deadline of its messages
	timer   *time.Timer
	reply   []byte // the reply subject being published
}

// ackResult is JetStream's answer to one message.
type ackResult struct {
	dup bool
	err error
}

func newAckWindow(nc *nats.Conn, maxPending int, timeout time.Duration) *ackWindow {
	return &ackWindow{nc: nc, max: maxPending, timeout: timeout, awaited: make(map[uint64]ackSlot, maxPending)}
}

// start readies r for a round of n messages.
func (r *ackRound) start(n int) {
	if r.done == nil {
		r.done = make(chan struct{}, 1)
	}
	select {
	case <-r.done: // left by the last round
	default:
	}
	r.open = 0
	r.tokens = append(r.tokens[:0], make([]uint64, n)...)
	clear(r.results)
	r.results = append(r.results[:0], make([]ackResult, n)...)
}

// timedOut reports whether an ack of the round did not come in time.
func (r *ackRound) timedOut() bool {
	for i, res := range r.results {
		if r.tokens[i] != 0 && errors.Is(res.err, jetstream.ErrAsyncPublishTimeout) {
			return true
		}
	}
	return false
}

// sent reports whether message i of the round was published; its answer
// is then in r.results[i] once await returned.
func (r *ackRound) sent(i int) bool { return r.tokens[i] != 0 }

// wait waits for ch, ctx, or d; false for the timer.
func (r *ackRound) wait(ctx context.Context, ch <-chan struct{}, d time.Duration) (timedOut bool) {
	if r.timer == nil {
		r.timer = time.NewTimer(d)
	} else {
		r.timer.Reset(d)
	}
	defer r.timer.Stop()
	select {
	case <-ch:
	case <-ctx.Done():
	case <-r.timer.C:
		return true
	}
	return false
}

// ready makes the reply subscription if there is none: before each round.
func (a *ackWindow) ready() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.subscribe()
}

// publish publishes m (with rh, its header is rh's) as message i of round
// r through out, with a reply subject that files its ack there, once the
// window has room. It waits for room until
// ctx is done (jetstream.ErrTooManyStalledMsgs). The round's ready came
// first.
func (a *ackWindow) publish(ctx context.Context, r *ackRound, i int, m *nats.Msg, rh *recordHeader, out *msgOut) error {
	a.mu.Lock()
	for len(a.awaited) >= a.max {
		if a.room == nil {
			a.room = make(chan struct{})
		}
		room := a.room
		a.mu.Unlock()
		// What is buffered must go out for its acks to come.
		if err := out.flush(); err != nil {
			return err
		}
		// Acks lost on the way would hold their slots forever: after
		// timeout, whoever waits for room fails them.
		if r.wait(ctx, room, a.timeout) {
			a.expire(time.Now())
		}
		if ctx.Err() != nil {
			return jetstream.ErrTooManyStalledMsgs
		}
		a.mu.Lock()
	}
	a.next++
	token, deadline := a.next, time.Now().Add(a.timeout)
	a.awaited[token] = ackSlot{round: r, i: i, deadline: deadline}
	r.tokens[i], r.last = token, deadline
	r.open++
	a.mu.Unlock()

	r.reply = strconv.AppendUint(append(r.reply[:0], a.prefix...), token, 36)
	m.Reply = unsafe.String(&r.reply[0], len(r.reply)) // publishing copies it
	err := out.publish(m, rh)
	m.Reply = ""
	if err != nil {
		a.mu.Lock()
		if _, ok := a.awaited[token]; ok {
			delete(a.awaited, token)
			r.open--
			a.freed()
		}
		r.tokens[i] = 0
		a.mu.Unlock()
		return err
	}
	return nil
}

// await waits until every message r published has its answer in
// r.results: its ack, or the failure of a message whose ack did not come
// within the window's timeout (jetstream.ErrAsyncPublishTimeout) or before
// ctx was done (ctx.Err()). Nothing of r is awaited any more after it.
func (a *ackWindow) await(ctx context.Context, r *ackRound) {
	for {
		a.mu.Lock()
		open, last := r.open, r.last
		a.mu.Unlock()
		if open == 0 {
			return
		}
		if r.wait(ctx, r.done, time.Until(last)) {
			a.abandon(r, jetstream.ErrAsyncPublishTimeout)
			return
		}
		if err := ctx.Err(); err != nil {
			a.abandon(r, err)
			return
		}
	}
}

// abandon fails every message of r still awaited with err: an ack that
// comes later finds its token gone.
func (a *ackWindow) abandon(r *ackRound, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for i, token := range r.tokens {
		if token == 0 {
			continue
		}
		if _, ok := a.awaited[token]; ok {
			delete(a.awaited, token)
			r.results[i].err = err
			r.open--
		}
	}
	a.freed()
}

// expire fails the messages whose ack is overdue at now, in every round.
func (a *ackWindow) expire(now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for token, s := range a.awaited {
		if s.deadline.After(now) {
			continue
		}
		delete(a.awaited, token)
		a.answered(s, ackResult{err: jetstream.ErrAsyncPublishTimeout})
	}
	a.freed()
}

// failAll fails every message awaited with err. Lock not held.
func (a *ackWindow) failAll(err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for token, s := range a.awaited {
		delete(a.awaited, token)
		a.answered(s, ackResult{err: err})
	}
	a.freed()
}

// answered files the answer of slot s, already out of the table, with its
// round. Lock held.
func (a *ackWindow) answered(s ackSlot, res ackResult) {
	r := s.round
	r.results[s.i] = res
	if r.open--; r.open == 0 {
		select {
		case r.done <- struct{}{}:
		default:
		}
	}
}

// freed wakes the publishers waiting for room, if there is room. Lock held.
func (a *ackWindow) freed() {
	if a.room != nil && len(a.awaited) < a.max {
		close(a.room)
		a.room = nil
	}
}

// onReply files JetStream's answer to a message with its round.
func (a *ackWindow) onReply(m *nats.Msg) {
	if len(m.Subject) <= len(a.prefix) {
		return
	}
	token, err := strconv.ParseUint(m.Subject[len(a.prefix):], 36, 64)
	if err != nil {
		return
	}
	var res ackResult
	res.dup, res.err = readPubAck(m)
	a.mu.Lock()
	defer a.mu.Unlock()
	s, ok := a.awaited[token]
	if !ok {
		return // abandoned: its round timed out or the connection was lost
	}
	delete(a.awaited, token)
	a.answered(s, res)
	a.freed()
}

// subscribe makes the reply subscription if there is none (the first
// message, or the connection was closed since). Lock held.
func (a *ackWindow) subscribe() error {
	if a.sub != nil && a.sub.IsValid() {
		return nil
	}
	prefix := a.nc.NewInbox() + "."
	sub, err := a.nc.Subscribe(prefix+"*", a.onReply)
	if err != nil {
		return fmt.Errorf("subscribe to PubAcks: %w", err)
	}
	// A slow handler must not drop acks: the round would wait for its
	// timeout. At most max acks are awaited.
	_ = sub.SetPendingLimits(-1, -1)
	// The messages may go on the direct connection: the server must have
	// the subscription before the first of them, or its ack is lost.
	if err := a.nc.FlushTimeout(subscribeFlushTimeout); err != nil {
		_ = sub.Unsubscribe()
		return fmt.Errorf("subscribe to PubAcks: %w", err)
	}
	a.sub, a.prefix = sub, prefix
	if !a.watched {
		a.watched = true
		a.watchConn()
	}
	return nil
}

// watchConn fails every ack awaited when the connection is lost: what was
// sent before may never be answered, and waiting for the timeout would
// only delay the retry. The goroutine lives as long as the connection.
func (a *ackWindow) watchConn() {
	ch := a.nc.StatusChanged(nats.RECONNECTING, nats.CLOSED)
	go func() {
		defer a.nc.RemoveStatusListener(ch)
		for st := range ch {
			a.failAll(nats.ErrDisconnected)
			if st == nats.CLOSED {
				return
			}
		}
	}()
}
