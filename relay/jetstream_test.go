package relay

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/fanoutd/fanoutd/record"
)

// TestJetStreamPlansEachRecordWhenPublished: a record NATS can't take
// stops the batch (nats.oversize fail) where it comes, as in core mode and
// in a fast batch: the records before it are stored, those after it are not.
func TestJetStreamPlansEachRecordWhenPublished(t *testing.T) {
	t.Parallel()
	forBothPublishModes(t, func(t *testing.T, batched bool) {
		s := startServer(t, testServerConfig{JetStream: true, MaxPayload: 2048})
		st := createStream(t, s, jetstream.StreamConfig{AllowBatchPublish: batched})
		p := newTestPublisher(t, s.connect(t), Options{JetStream: true, Oversize: OversizeFail, NoBatchPublish: !batched})
		b := testBatch(8)
		b.Records[5].Data = bytes.Repeat([]byte{'x'}, 3000)
		if err := p.Handle(context.Background(), b); !errors.Is(err, record.ErrStop) {
			t.Fatalf("Handle: %v, want ErrStop", err)
		}
		msgs := streamMsgs(t, st)
		if len(msgs) != 5 {
			t.Fatalf("stream holds %d messages, want the 5 before the record too large", len(msgs))
		}
		for i, m := range msgs {
			if got, want := m.Header.Get(HeaderSequenceNumber), b.Records[i].SequenceNumber; got != want {
				t.Errorf("message %d: sequence number %s, want %s", i, got, want)
			}
		}
	})
}
