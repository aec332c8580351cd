package relay

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/fanoutd/fanoutd/internal/testutil"
)

// The ackWindow tests play JetStream's part by hand: a plain subscriber on
// the messages' subject answers each on its reply subject, when and how
// the test says.

// responder receives the messages published on "acks.>" of s.
type responder struct {
	nc   *nats.Conn
	msgs chan *nats.Msg
}

func newResponder(t *testing.T, s *testServer) *responder {
	t.Helper()
	r := &responder{nc: s.connect(t), msgs: make(chan *nats.Msg, 1024)}
	sub, err := r.nc.ChanSubscribe("acks.>", r.msgs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := r.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *responder) next(t *testing.T) *nats.Msg {
	t.Helper()
	select {
	case m := <-r.msgs:
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no message for the responder within 10s")
		return nil
	}
}

func (r *responder) answer(t *testing.T, m *nats.Msg, data string) {
	t.Helper()
	if err := r.nc.Publish(m.Reply, []byte(data)); err != nil {
		t.Fatal(err)
	}
	if err := r.nc.Flush(); err != nil {
		t.Fatal(err)
	}
}

// publishRound publishes n messages "<name>-<i>" on acks.<name> as one
// round of a and waits for their answers.
func publishRound(ctx context.Context, a *ackWindow, r *ackRound, name string, n int) error {
	r.start(n)
	if err := a.ready(); err != nil {
		return err
	}
	for i := range n {
		m := &nats.Msg{Subject: "acks." + name, Data: []byte(name + "-" + strconv.Itoa(i))}
		if err := a.publish(ctx, r, i, m, nil, &msgOut{nc: a.nc}); err != nil {
			return fmt.Errorf("publish %s: %w", m.Data, err)
		}
	}
	a.await(ctx, r)
	return nil
}

func ackFor(seq int, dup bool) string {
	if dup {
		return fmt.Sprintf(`{"stream":"ACKS","seq":%d,"duplicate":true}`, seq)
	}
	return fmt.Sprintf(`{"stream":"ACKS", "domain":"hub","seq":%d}`, seq)
}

// TestAckWindowAcksOutOfOrder: two shards share the window; their acks
// come in reverse order, each says something of its own message, and each
// lands with its message.
func TestAckWindowAcksOutOfOrder(t *testing.T) {
	t.Parallel()
	s := startServer(t, testServerConfig{})
	resp := newResponder(t, s)
	a := newAckWindow(s.connect(t), 8, 10*time.Second)
	var (
		wg     sync.WaitGroup
		rounds [2]ackRound
		errs   [2]error
	)
	for k, name := range []string{"a", "b"} {
		wg.Go(func() { errs[k] = publishRound(context.Background(), a, &rounds[k], name, 4) })
	}
	var msgs []*nats.Msg
	for range 8 {
		msgs = append(msgs, resp.next(t))
	}
	// Reversed; message a-i a duplicate where i is odd, b-2 refused.
	for i := len(msgs) - 1; i >= 0; i-- {
		m := msgs[i]
		var name string
		var n int
		if _, err := fmt.Sscanf(string(m.Data), "%1s-%d", &name, &n); err != nil {
			t.Fatalf("message %q: %v", m.Data, err)
		}
		switch {
		case name == "b" && n == 2:
			resp.answer(t, m, `{"error":{"code":503,"err_code":10077,"description":"b-2 refused"}}`)
		default:
			resp.answer(t, m, ackFor(n, name == "a" && n%2 == 1))
		}
	}
	wg.Wait()
	for k, name := range []string{"a", "b"} {
		if errs[k] != nil {
			t.Fatal(errs[k])
		}
		for i, res := range rounds[k].results {
			var apiErr *jetstream.APIError
			switch {
			case name == "b" && i == 2:
				if !errors.As(res.err, &apiErr) || apiErr.ErrorCode != 10077 || apiErr.Description != "b-2 refused" {
					t.Errorf("%s-%d: %+v, want the API error b-2 refused", name, i, res)
				}
			case res.err != nil || res.dup != (name == "a" && i%2 == 1):
				t.Errorf("%s-%d: %+v, want dup %t", name, i, res, name == "a" && i%2 == 1)
			}
		}
	}
	if n := awaitedAcks(a); n != 0 {
		t.Errorf("%d acks still awaited", n)
	}
}

func awaitedAcks(a *ackWindow) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.awaited)
}

// TestAckWindowLateAck: an ack that comes after its round gave up on it
// (the ack timeout) is dropped: it says nothing of the message published
// since, even one whose ack is still awaited.
func TestAckWindowLateAck(t *testing.T) {
	t.Parallel()
	s := startServer(t, testServerConfig{})
	resp := newResponder(t, s)
	a := newAckWindow(s.connect(t), 1, 300*time.Millisecond)
	var first ackRound
	if err := publishRound(context.Background(), a, &first, "a", 1); err != nil {
		t.Fatal(err)
	}
	if err := first.results[0].err; !errors.Is(err, jetstream.ErrAsyncPublishTimeout) {
		t.Fatalf("unanswered message: %v, want a timeout", err)
	}
	late := resp.next(t)

	// The window of one has room again; the next message's ack comes
	// after the late one, which refuses its message.
	a.timeout = 10 * time.Second
	var second ackRound
	done := make(chan error, 1)
	go func() { done <- publishRound(context.Background(), a, &second, "b", 1) }()
	m := resp.next(t)
	resp.answer(t, late, `{"error":{"code":400,"err_code":10054,"description":"message size exceeds maximum allowed"}}`)
	resp.answer(t, m, ackFor(1, true))
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if res := second.results[0]; res.err != nil || !res.dup {
		t.Errorf("second message: %+v, want its own ack (a duplicate)", res)
	}
	if m.Reply == late.Reply {
		t.Errorf("reply subject %s used twice", m.Reply)
	}
}

// TestAckWindowBounded: the window bounds the acks awaited over all
// shards. The responder holds a window's worth of messages unanswered
// until a shard waits for room; then no other message has reached the
// server (both connections flushed).
func TestAckWindowBounded(t *testing.T) {
	t.Parallel()
	const window, shards, perShard = 3, 2, 5
	s := startServer(t, testServerConfig{})
	resp := newResponder(t, s)
	nc := s.connect(t)
	a := newAckWindow(nc, window, 10*time.Second)
	var (
		wg     sync.WaitGroup
		rounds [shards]ackRound
		errs   [shards]error
	)
	for k := range shards {
		wg.Go(func() { errs[k] = publishRound(context.Background(), a, &rounds[k], strconv.Itoa(k), perShard) })
	}
	stalled := func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		return a.room != nil
	}
	var held []*nats.Msg
	for answered := 0; answered < shards*perShard; {
		held = append(held, resp.next(t))
		if len(held) < window && answered+len(held) < shards*perShard {
			continue
		}
		if answered+len(held) < shards*perShard {
			testutil.WaitFor(t, 10*time.Second, "a shard waiting for room", stalled)
			for _, c := range []*nats.Conn{nc, resp.nc} {
				if err := c.Flush(); err != nil {
					t.Fatal(err)
				}
			}
			if n := len(resp.msgs); n > 0 {
				t.Fatalf("%d messages published while %d acks were awaited: the window is %d", n, len(held), window)
			}
		}
		for _, m := range held {
			resp.answer(t, m, ackFor(answered, false))
		}
		answered += len(held)
		held = held[:0]
	}
	wg.Wait()
	for k := range shards {
		if errs[k] != nil {
			t.Fatal(errs[k])
		}
		for i, res := range rounds[k].results {
			if res.err != nil {
				t.Errorf("shard %d message %d: %v", k, i, res.err)
			}
		}
	}
}

// TestAckWindowStall: a publisher waits for room only until its deadline,
// and an ack lost on the way frees its slot after the ack timeout.
func TestAckWindowStall(t *testing.T) {
	t.Parallel()
	s := startServer(t, testServerConfig{})
	resp := newResponder(t, s)
	a := newAckWindow(s.connect(t), 1, time.Hour)
	if err := a.ready(); err != nil {
		t.Fatal(err)
	}
	var lost ackRound
	lost.start(1)
	if err := a.publish(context.Background(), &lost, 0, &nats.Msg{Subject: "acks.lost"}, nil, &msgOut{nc: a.nc}); err != nil {
		t.Fatal(err)
	}
	resp.next(t) // never answered

	var r ackRound
	r.start(1)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := a.publish(ctx, &r, 0, &nats.Msg{Subject: "acks.stalled"}, nil, &msgOut{nc: a.nc}); !errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
		t.Fatalf("publish into a full window = %v, want ErrTooManyStalledMsgs at the deadline", err)
	}

	a.mu.Lock()
	a.timeout = 100 * time.Millisecond // the lost ack is overdue from now on
	for tok, slot := range a.awaited {
		slot.deadline = time.Now()
		a.awaited[tok] = slot
	}
	a.mu.Unlock()
	r.start(1)
	if err := a.publish(context.Background(), &r, 0, &nats.Msg{Subject: "acks.next"}, nil, &msgOut{nc: a.nc}); err != nil {
		t.Fatalf("publish after the lost ack's timeout: %v", err)
	}
	resp.answer(t, resp.next(t), ackFor(1, false))
	a.await(context.Background(), &r)
	a.await(context.Background(), &lost)
	if res := lost.results[0]; !errors.Is(res.err, jetstream.ErrAsyncPublishTimeout) {
		t.Errorf("lost ack: %+v, want a timeout", res)
	}
	if res := r.results[0]; res.err != nil {
		t.Errorf("next message: %+v", res)
	}
}

// TestAckWindowNoResponders: a message nobody subscribes to is answered
// by the server's no-responders status: no stream.
func TestAckWindowNoResponders(t *testing.T) {
	t.Parallel()
	s := startServer(t, testServerConfig{})
	a := newAckWindow(s.connect(t), 4, 10*time.Second)
	var r ackRound
	if err := publishRound(context.Background(), a, &r, "nobody", 2); err != nil {
		t.Fatal(err)
	}
	for i, res := range r.results {
		if !errors.Is(res.err, jetstream.ErrNoStreamResponse) {
			t.Errorf("message %d: %+v, want ErrNoStreamResponse", i, res)
		}
	}
}

// TestAckWindowReconnect: the acks awaited when the connection is lost
// fail at once, and the reply subscription works on the new connection.
func TestAckWindowReconnect(t *testing.T) {
	t.Parallel()
	s := startServer(t, testServerConfig{})
	resp := newResponder(t, s)
	nc := s.connect(t)
	a := newAckWindow(nc, 4, time.Hour)
	var r ackRound
	done := make(chan error, 1)
	go func() { done <- publishRound(context.Background(), a, &r, "a", 2) }()
	resp.next(t)
	resp.next(t)
	if err := nc.ForceReconnect(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for i, res := range r.results {
		if !errors.Is(res.err, nats.ErrDisconnected) {
			t.Errorf("message %d: %+v, want ErrDisconnected", i, res)
		}
	}
	waitStatus(t, nc, nats.CONNECTED)
	go func() { done <- publishRound(context.Background(), a, &r, "b", 1) }()
	resp.answer(t, resp.next(t), ackFor(1, false))
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if res := r.results[0]; res.err != nil {
		t.Errorf("after the reconnect: %+v", res)
	}
	testutil.WaitFor(t, 5*time.Second, "no acks awaited", func() bool { return awaitedAcks(a) == 0 })
}
