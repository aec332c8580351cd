package relay

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/fanoutd/fanoutd/record"
)

func TestServerAtLeast(t *testing.T) {
	for v, want := range map[string]bool{
		"2.14.0": true, "2.15.2": true, "3.0.0": true, "2.14.0-RC.1": true,
		"2.13.9": false, "2.9.25": false, "1.20.0": false, "": false, "2": false, "x.y": false,
	} {
		if got := serverAtLeast(v, 2, 14); got != want {
			t.Errorf("serverAtLeast(%q, 2, 14) = %v, want %v", v, got, want)
		}
	}
}

// TestFastBatchManyChunks publishes a batch of several chunks as batches:
// every record stored once, in order, and flow control (the server acks
// every few messages, the publisher waits when too many are unconfirmed)
// gets exercised.
func TestFastBatchManyChunks(t *testing.T) {
	s := startServer(t, testServerConfig{JetStream: true})
	st := createStream(t, s, jetstream.StreamConfig{AllowBatchPublish: true})
	p := newTestPublisher(t, s.connect(t), Options{JetStream: true})

	b := testBatch(2*chunkMessages + 500)
	if err := p.Handle(context.Background(), b); err != nil {
		t.Fatalf("Handle: %v", err)
	}
	checkStored(t, st, b)
	if got := p.Stats(); got.Batched != uint64(len(b.Records)) || got.Retries != 0 || got.Duplicates != 0 {
		t.Errorf("Stats() = %+v, want all %d records batched, no retry, no duplicate", got, len(b.Records))
	}
}

// TestFastBatchRefused: a stream without allow_batched refuses a batch at
// its first message (not stored); the chunk then goes message by message,
// an info log says why, once, and batches are not tried again for a while.
func TestFastBatchRefused(t *testing.T) {
	s := startServer(t, testServerConfig{JetStream: true})
	st := createStream(t, s, jetstream.StreamConfig{})
	var logs logBuffer
	p := newTestPublisher(t, s.connect(t), Options{JetStream: true, Log: zerolog.New(&logs)})

	b := testBatch(40)
	for range 2 {
		if err := p.Handle(context.Background(), b); err != nil {
			t.Fatalf("Handle: %v", err)
		}
	}
	checkStored(t, st, b)
	if got := p.Stats(); got.Batched != 0 || got.Duplicates != 40 {
		t.Errorf("Stats() = %+v, want none batched, the replay's 40 duplicates", got)
	}
	if n := strings.Count(logs.String(), "allow_batched is off"); n != 1 {
		t.Errorf("%d logs about allow_batched, want 1; logs:\n%s", n, logs.String())
	}
	if p.fast.usable(100) {
		t.Error("batches are tried again right after a refusal")
	}
}

// TestFastBatchStreamFull: a stream that fills up in the middle of a batch
// stores a prefix of it, in order; the rest is retried message by message
// until the chunk's timeout, and the batch fails. Once the stream has room,
// the replay stores the rest: every record once, in order.
func TestFastBatchStreamFull(t *testing.T) {
	s := startServer(t, testServerConfig{JetStream: true})
	cfg := jetstream.StreamConfig{Name: "KINESIS", Subjects: []string{"kinesis.>"}, AllowBatchPublish: true, MaxMsgs: 25, Discard: jetstream.DiscardNew}
	st := createStream(t, s, cfg)
	p := newTestPublisher(t, s.connect(t), Options{JetStream: true, PublishTimeout: time.Second})

	b := testBatch(60)
	if err := p.Handle(context.Background(), b); err == nil {
		t.Fatal("Handle succeeded into a full stream")
	}
	msgs := streamMsgs(t, st)
	if len(msgs) != 25 {
		t.Fatalf("the full stream holds %d messages, want 25", len(msgs))
	}
	checkStored(t, st, &record.Batch{Stream: b.Stream, ShardID: b.ShardID, Consumer: b.Consumer, Records: b.Records[:25]})
	if got := p.Stats().Batched; got != 0 {
		t.Errorf("%d records counted as batched by a failed batch", got)
	}

	cfg.MaxMsgs = -1
	if _, err := jsFor(t, s).UpdateStream(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if err := p.Handle(context.Background(), b); err != nil {
		t.Fatalf("Handle (replay): %v", err)
	}
	checkStored(t, st, b)
	if got := p.Stats().Batched; got != 60 {
		t.Errorf("%d records batched, want the replay's 60 (the 25 stored before are dropped as duplicates)", got)
	}
}

// TestFastBatchNoBatchPublish: with NoBatchPublish, never a batch.
func TestFastBatchNoBatchPublish(t *testing.T) {
	s := startServer(t, testServerConfig{JetStream: true})
	st := createStream(t, s, jetstream.StreamConfig{AllowBatchPublish: true})
	p := newTestPublisher(t, s.connect(t), Options{JetStream: true, NoBatchPublish: true})
	b := testBatch(40)
	if err := p.Handle(context.Background(), b); err != nil {
		t.Fatalf("Handle: %v", err)
	}
	checkStored(t, st, b)
	wantBatched(t, p, false, 0)
}

func jsFor(t *testing.T, s *testServer) jetstream.JetStream {
	t.Helper()
	js, err := jetstream.New(s.connect(t))
	if err != nil {
		t.Fatal(fmt.Errorf("jetstream: %w", err))
	}
	return js
}

// TestFastBatchNoAnswer: a batch nobody answers (here a plain subscriber
// takes the subject, no stream does); after half the chunk's time the
// publisher stops trying batches for a while and says so.
func TestFastBatchNoAnswer(t *testing.T) {
	s := startServer(t, testServerConfig{JetStream: true})
	subscribe(t, s, "kinesis.>")
	var logs logBuffer
	p := newTestPublisher(t, s.connect(t), Options{JetStream: true, PublishTimeout: time.Second, Log: zerolog.New(&logs)})
	if err := p.Handle(context.Background(), testBatch(10)); err == nil {
		t.Fatalf("Handle succeeded without a single PubAck: %+v; logs:\n%s", p.Stats(), logs.String())
	}
	if !strings.Contains(logs.String(), "did not answer a batch publish") {
		t.Errorf("no log about the unanswered batch; logs:\n%s", logs.String())
	}
	if p.fast.usable(100) {
		t.Error("batches are tried again right after one went unanswered")
	}
}
