package baseline

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// How the relay publishes in JetStream mode (Config.Publish).
const (
	// PublishAsync is nats.go's recommended way: PublishMsgAsync within a
	// bounded window, every ack of an event awaited before the next event.
	PublishAsync = "async"
	// PublishSync waits for each message's PubAck (js.PublishMsg).
	PublishSync = "sync"
)

const (
	// AsyncWindow bounds the asynchronous PubAcks outstanding on the
	// connection, shared by every shard: the window fanoutd keeps.
	AsyncWindow = 256
	// ackTimeout fails the future of a PubAck that never comes.
	ackTimeout = 5 * time.Second
	// ackAttempts is how often a message whose ack failed is published, in
	// all, before the event fails (and is read again from its shard).
	ackAttempts  = 3
	ackRetryWait = 100 * time.Millisecond
)

// publisher publishes one event's messages and returns once NATS confirmed
// them all: a flush in core mode, every PubAck in JetStream mode.
type publisher struct {
	nc *nats.Conn
	js jetstream.JetStream // nil: core NATS
	// sync waits for each PubAck before the next publish.
	sync bool
	// republished counts the messages published again after a failed ack.
	republished atomic.Int64
}

func newPublisher(nc *nats.Conn, c Config) (*publisher, error) {
	p := &publisher{nc: nc}
	if !c.JetStream {
		return p, nil
	}
	switch c.Publish {
	case "", PublishAsync:
	case PublishSync:
		p.sync = true
	default:
		return nil, fmt.Errorf("publish %q: not %s or %s", c.Publish, PublishAsync, PublishSync)
	}
	var err error
	p.js, err = jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(AsyncWindow), jetstream.WithPublishAsyncTimeout(ackTimeout))
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	return p, nil
}

func (p *publisher) publish(ctx context.Context, msgs []*nats.Msg) error {
	switch {
	case p.js == nil:
		for _, m := range msgs {
			if err := p.nc.PublishMsg(m); err != nil {
				return fmt.Errorf("publish %s: %w", m.Header.Get(nats.MsgIdHdr), err)
			}
		}
		return p.nc.Flush()
	case p.sync:
		for _, m := range msgs {
			if _, err := p.js.PublishMsg(ctx, m); err != nil {
				return fmt.Errorf("publish %s: %w", m.Header.Get(nats.MsgIdHdr), err)
			}
		}
		return nil
	}
	return p.publishAsyncAll(ctx, msgs)
}

// publishAsyncAll publishes msgs within the window and waits for every ack
// (the event's checkpoint waits for them all). The messages whose ack
// failed are published again, with the same Nats-Msg-Id, up to ackAttempts
// in all.
func (p *publisher) publishAsyncAll(ctx context.Context, msgs []*nats.Msg) error {
	futures := make([]jetstream.PubAckFuture, 0, len(msgs))
	for attempt := 1; ; attempt++ {
		futures = futures[:0]
		for _, m := range msgs {
			f, err := p.publishAsync(ctx, m)
			if err != nil {
				return err
			}
			futures = append(futures, f)
		}
		var failed []*nats.Msg
		var lastErr error
		for _, f := range futures {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				failed, lastErr = append(failed, f.Msg()), err
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if len(failed) == 0 {
			return nil
		}
		if attempt >= ackAttempts {
			return fmt.Errorf("%d messages not stored after %d attempts, first %s: %w", len(failed), attempt, failed[0].Header.Get(nats.MsgIdHdr), lastErr)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(ackRetryWait):
		}
		p.republished.Add(int64(len(failed)))
		msgs = failed
	}
}

// publishAsync publishes m once the window has room.
func (p *publisher) publishAsync(ctx context.Context, m *nats.Msg) (jetstream.PubAckFuture, error) {
	for {
		f, err := p.js.PublishMsgAsync(m)
		if !errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
			if err != nil {
				return nil, fmt.Errorf("publish %s: %w", m.Header.Get(nats.MsgIdHdr), err)
			}
			return f, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
}
