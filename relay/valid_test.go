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
	// Through nats.go, each message goes out as it is published: the 30
	// before Valid said no. On the direct connection, a chunk goes out at
	// its flush (or every 64 KiB): none.
	for _, tc := range []struct {
		name   string
		direct bool
		want   int
	}{{"core", true, 0}, {"core via nats.go", false, valid}} {
		t.Run(tc.name, func(t *testing.T) { coreStopsWhenNotValid(t, tc.direct, valid, tc.want) })
	}
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

func coreStopsWhenNotValid(t *testing.T, direct bool, valid int64, want int) {
	s := startServer(t, testServerConfig{})
	_, sub := subscribe(t, s, "kinesis.>")
	opts := Options{PublishTimeout: 30 * time.Second}
	p := newNATSGoPublisher(t, s.connect(t), opts)
	if direct {
		p = newTestPublisher(t, s.connect(t), opts)
	}
	b := testBatch(200)
	b.Valid = validFor(valid)
	if err := p.Handle(context.Background(), b); !errors.Is(err, record.ErrNotValid) {
		t.Fatalf("Handle = %v, want ErrNotValid", err)
	}
	// Once the direct connection's flush returned, the server has every
	// message written on it; then a marker on nats.go's connection: once
	// it arrived, so did everything published before it.
	if direct {
		if err := p.direct.get().Flush(context.Background(), nil); err != nil {
			t.Fatal(err)
		}
	}
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
	if n != want {
		t.Fatalf("%d messages published, want %d", n, want)
	}
}
