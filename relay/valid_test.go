package relay

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/fanoutd/fanoutd/record"
)

// validFor is a Batch.Valid that says yes n times, then no.
func validFor(n int64) func() bool {
	var calls atomic.Int64
	return func() bool { return calls.Add(1) <= n }
}

// Once a batch's Valid says no (the shard's lease lapsed mid-batch: the
// process was paused), nothing more of it is published, and Handle fails
// at once with ErrNotValid instead of retrying until the publish timeout.
func TestHandleStopsWhenTheLeaseIsNotValid(t *testing.T) {
	t.Parallel()
	const valid = 30
	t.Run("core", func(t *testing.T) {
		s := startServer(t, testServerConfig{})
		_, sub := subscribe(t, s, "kinesis.>")
		p := newTestPublisher(t, s.connect(t), Options{PublishTimeout: 30 * time.Second})
		b := testBatch(200)
		b.Valid = validFor(valid)
		if err := p.Handle(context.Background(), b); !errors.Is(err, record.ErrNotValid) {
			t.Fatalf("Handle = %v, want ErrNotValid", err)
		}
		// A marker on the publisher's connection: once it arrived, so did
		// everything published before it.
		if err := p.nc.Publish("kinesis.marker", nil); err != nil {
			t.Fatal(err)
		}
		n := 0
		for {
			m, err := sub.NextMsg(10 * time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if m.Subject == "kinesis.marker" {
				break
			}
			n++
		}
		if n != valid {
			t.Fatalf("%d messages published, want the %d before Valid said no", n, valid)
		}
	})
	forBothPublishModes(t, func(t *testing.T, batched bool) {
		s := startServer(t, testServerConfig{JetStream: true})
		st := createStream(t, s, jetstream.StreamConfig{AllowBatchPublish: batched})
		p := newTestPublisher(t, s.connect(t), Options{JetStream: true, PublishTimeout: 30 * time.Second})
		b := testBatch(200)
		b.Valid = validFor(valid)
		start := time.Now()
		if err := p.Handle(context.Background(), b); !errors.Is(err, record.ErrNotValid) {
			t.Fatalf("Handle = %v, want ErrNotValid", err)
		}
		if d := time.Since(start); d > 15*time.Second {
			t.Fatalf("Handle took %v: it retried instead of stopping", d)
		}
		if n := len(streamMsgs(t, st)); n > valid {
			t.Fatalf("%d messages stored, want at most the %d published before Valid said no", n, valid)
		}
	})
}
