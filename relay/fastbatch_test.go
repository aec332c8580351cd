package relay

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/fanoutd/fanoutd/record"
)

// TestFastBatchManyChunks publishes a batch of several chunks as batches:
// every record stored once, in order, and flow control (the server acks
// every few messages, the publisher waits when too many are unconfirmed)
// gets exercised.
// The batches go on the direct connection, but for their first messages.
func TestFastBatchManyChunks(t *testing.T) {
	t.Parallel()
	s := startServer(t, testServerConfig{JetStream: true})
	st := createStream(t, s, jetstream.StreamConfig{AllowBatchPublish: true})
	direct := s.natsConfig()
	direct.Name = "direct"
	p := newTestPublisher(t, s.connect(t), Options{JetStream: true, Direct: &direct})

	b := testBatch(2*chunkMessages + 500)
	if err := p.Handle(context.Background(), b); err != nil {
		t.Fatalf("Handle: %v", err)
	}
	checkStored(t, st, b)
	if got := p.Stats(); got.Batched != uint64(len(b.Records)) || got.Retries != 0 || got.Duplicates != 0 {
		t.Errorf("Stats() = %+v, want all %d records batched, no retry, no duplicate", got, len(b.Records))
	}
	// All but the first of each of the 3 batches (see msgOut).
	if n := directInMsgs(t, s.srv, "direct"); n != int64(len(b.Records)-3) {
		t.Errorf("the server received %d messages on the direct connection, want %d", n, len(b.Records)-3)
	}
}

// TestFastBatchRefused: a stream without allow_batched refuses a batch at
// its first message (not stored); the chunk then goes message by message,
// an info log says why, once, and batches are not tried again for a while.
func TestFastBatchRefused(t *testing.T) {
	t.Parallel()
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
	if n := strings.Count(logs.String(), "refuses batch publishing"); n != 1 {
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
	t.Parallel()
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
	// The replay after a failure goes message by message (records of the
	// failed attempt may still be on their way in: one by one, each is
	// confirmed), its duplicates counted, until it has delivered the last
	// record the failed attempt sent, even over several batches (a
	// resubscribe's first event may be shorter); then batches again.
	part := func(from, to int) *record.Batch {
		return &record.Batch{Stream: b.Stream, ShardID: b.ShardID, Consumer: b.Consumer, Records: b.Records[from:to]}
	}
	for _, r := range [][2]int{{0, 30}, {30, 60}} {
		if err := p.Handle(context.Background(), part(r[0], r[1])); err != nil {
			t.Fatalf("Handle (replay of %v): %v", r, err)
		}
		if got := p.Stats(); got.Batched != 0 {
			t.Errorf("replay of records %v: %d batched, want none (message by message up to the failed attempt's last record)", r, got.Batched)
		}
	}
	checkStored(t, st, b)
	if got := p.Stats(); got.Duplicates != 25 {
		t.Errorf("Stats() = %+v, want the 25 stored before as duplicates", got)
	}
	next := testBatch(60)
	for i := range next.Records {
		next.Records[i].SequenceNumber += "1" // other records
	}
	if err := p.Handle(context.Background(), next); err != nil {
		t.Fatalf("Handle (next): %v", err)
	}
	if got := p.Stats().Batched; got != 60 {
		t.Errorf("%d records batched after the shard's replay succeeded, want 60", got)
	}
}

// TestFastBatchNoBatchPublish: with NoBatchPublish, never a batch.
func TestFastBatchNoBatchPublish(t *testing.T) {
	t.Parallel()
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
	t.Parallel()
	s := startServer(t, testServerConfig{JetStream: true})
	subscribe(t, s, "kinesis.>")
	var logs logBuffer
	// Half of the timeout for the batch, half left for the rest: room for
	// a busy machine on both sides.
	p := newTestPublisher(t, s.connect(t), Options{JetStream: true, PublishTimeout: 4 * time.Second, Log: zerolog.New(&logs)})
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

// TestFastBatchReplies feeds the server's replies to a batch of 20 messages
// and checks how many count as stored: never a message the server refused
// or reported lost, nor one after it, whatever the acks and the final
// PubAck say (a message refused when it was stored is in the batch's count).
func TestFastBatchReplies(t *testing.T) {
	t.Parallel()
	type reply struct {
		seq  int // the batch message replied to (its reply subject)
		data string
	}
	ack := func(seq, upTo int) reply { return reply{seq, fmt.Sprintf(`{"type":"ack","seq":%d,"msgs":10}`, upTo)} }
	final := func(count int) reply {
		return reply{20, fmt.Sprintf(`{"stream":"KINESIS","seq":99,"batch":"b","count":%d}`, count)}
	}
	refusedAt := func(seq int) reply {
		return reply{seq, `{"stream":"KINESIS","error":{"code":500,"err_code":10077,"description":"insufficient resources"}}`}
	}
	for _, tc := range []struct {
		name               string
		replies            []reply
		stored             uint64
		done, disabled, ok bool
	}{
		{"all stored", []reply{ack(1, 0), ack(10, 10), final(20)}, 20, true, false, true},
		{"only acks", []reply{ack(1, 0), ack(10, 10)}, 10, false, false, true},
		{"a store error counted by the final PubAck", []reply{ack(1, 0), refusedAt(7), ack(10, 10), final(20)}, 6, true, false, true},
		{"an err reply", []reply{ack(1, 0), {7, `{"type":"err","seq":7,"error":{"code":503,"err_code":10077,"description":"x"}}`}, final(6)}, 6, true, false, true},
		{"a gap", []reply{ack(1, 0), {12, `{"type":"gap","last_seq":11,"seq":12}`}, ack(12, 10), final(20)}, 10, true, false, true},
		{"the first refused: allow_batched off", []reply{{1, `{"stream":"KINESIS","error":{"code":400,"err_code":10205,"description":"batch publish is disabled"}}`}}, 0, true, true, true},
		{"the first refused: too many batches", []reply{{1, `{"stream":"KINESIS","error":{"code":429,"err_code":10211,"description":"batch publish too many inflight"}}`}}, 0, true, true, true},
		{"the first refused: stream full", []reply{refusedAt(1)}, 0, true, false, true},
		{"a server without batches", []reply{{1, `{"stream":"KINESIS","seq":5}`}}, 0, true, true, true},
		{"no responders", nil, 0, true, false, false},
		{"a reply that is not JSON", []reply{ack(1, 0), {3, `oops`}}, 0, true, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fastBatcher{inbox: "_INBOX.x", batches: map[string]*fastBatch{}}
			id, prefix := "b1", "_INBOX.x.b1.100.fail."
			b := &fastBatch{signal: make(chan struct{}, 1), flow: fastFlow, limit: math.MaxUint64}
			f.batches[id] = b
			if !tc.ok {
				m := nats.NewMsg(prefix + "1.0.$FI")
				m.Header.Set("Status", "503")
				f.onReply(m)
			}
			for _, r := range tc.replies {
				f.onReply(&nats.Msg{Subject: prefix + strconv.Itoa(r.seq) + ".1.$FI", Data: []byte(r.data)})
			}
			b.mu.Lock()
			defer b.mu.Unlock()
			if got := b.stored(20); got != tc.stored {
				t.Errorf("stored %d, want %d", got, tc.stored)
			}
			if b.done != tc.done || b.disabled != tc.disabled {
				t.Errorf("done %v, disabled %v; want %v, %v", b.done, b.disabled, tc.done, tc.disabled)
			}
		})
	}
}

func TestMessageAfter(t *testing.T) {
	t.Parallel()
	r := func(seq string, sub int64, part ...int) position {
		p := position{seq: seq, subSeq: sub}
		if len(part) > 0 {
			p = positionOf(&record.Record{SequenceNumber: seq, SubSequenceNumber: sub, Unpacked: &record.Unpacked{Index: part[0]}})
		}
		return p
	}
	for _, tc := range []struct {
		a, b  position
		after bool
	}{
		{r("5", 0, 0), r("5", 0), true},
		{r("5", 0, 1999), r("5", 0, 999), true},
		{r("5", 0, 999), r("5", 0, 1999), false},
		{r("5", 1), r("5", 0, 1999), true},
		{r("6", 0), r("5", 0, 3), true},
		{r("10", 0), r("9", 0), true},
		{r("9", 0), r("10", 0), false},
		{r("49590000000000000000000000000000000000000000000000000002", 0), r("49590000000000000000000000000000000000000000000000000001", 5), true},
		{r("5", 2), r("5", 1), true},
		{r("5", 1), r("5", 1), false},
		{r("5", 0), r("5", 1), false},
	} {
		if got := messageAfter(tc.a, tc.b); got != tc.after {
			t.Errorf("messageAfter(%v, %v) = %v, want %v", tc.a, tc.b, got, tc.after)
		}
	}
}
