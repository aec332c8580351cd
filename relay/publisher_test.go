package relay

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/fanoutd/fanoutd/internal/testutil"
	"github.com/fanoutd/fanoutd/record"
)

const testStream = "orders"

// testBatch returns n records with distinct data, partition keys that need
// sanitising, and one KPL sub-record pair.
func testBatch(n int) *record.Batch {
	b := &record.Batch{Stream: testStream, ShardID: "shardId-000000000001", Consumer: "fanoutd", ContinuationSequenceNumber: "999"}
	arrival := time.Date(2026, 1, 2, 3, 4, 5, 6_000_000, time.UTC)
	for i := range n {
		rec := record.Record{
			Data:           fmt.Appendf(nil, "record %d \x00\xff\r\n", i),
			PartitionKey:   []string{"user-1", "eu.west", "a b", ""}[i%4],
			SequenceNumber: strconv.Itoa(49590000000 + i),
			ArrivalTime:    arrival,
		}
		if i == 1 || i == 2 { // two sub-records of one aggregate
			rec.SequenceNumber = "49590000001"
			rec.SubSequenceNumber = int64(i - 1)
			rec.Aggregated = true
			rec.ExplicitHashKey = "12345"
		}
		b.Records = append(b.Records, rec)
	}
	return b
}

func testTemplates(t testing.TB) map[string]*SubjectTemplate {
	t.Helper()
	tmpl, err := ParseSubjectTemplate("kinesis.{stream}.{partition_key}")
	if err != nil {
		t.Fatal(err)
	}
	return map[string]*SubjectTemplate{testStream: tmpl}
}

// newTestPublisher returns a Publisher on nc; in core mode it publishes on
// the direct connection, dialed without credentials, unless opts.Direct
// says otherwise.
func newTestPublisher(t testing.TB, nc *nats.Conn, opts Options) *Publisher {
	t.Helper()
	if opts.Direct == nil {
		opts.Direct = &ConnOptions{Servers: []string{nc.ConnectedUrl()}}
	}
	p, err := NewPublisher(nc, SubjectRoutes(testTemplates(t)), opts)
	if err != nil {
		t.Fatalf("NewPublisher: %v", err)
	}
	t.Cleanup(p.Close)
	waitDirect(t, p)
	return p
}

// waitDirect waits until p's first dial of the direct connection is over,
// made or failed.
func waitDirect(t testing.TB, p *Publisher) {
	t.Helper()
	testutil.WaitFor(t, 10*time.Second, "the direct connection's first dial", func() bool {
		p.direct.mu.Lock()
		defer p.direct.mu.Unlock()
		return p.direct.conn != nil || p.direct.failures > 0 || p.direct.off
	})
}

// newNATSGoPublisher returns a Publisher on nc that publishes core
// messages through nc itself (no direct connection).
func newNATSGoPublisher(t testing.TB, nc *nats.Conn, opts Options) *Publisher {
	t.Helper()
	p, err := NewPublisher(nc, SubjectRoutes(testTemplates(t)), opts)
	if err != nil {
		t.Fatalf("NewPublisher: %v", err)
	}
	return p
}

// wantSubject is the subject of rec under testTemplates.
func wantSubject(b *record.Batch, rec *record.Record) string {
	return "kinesis." + b.Stream + "." + string(SanitizeToken(nil, rec.PartitionKey))
}

func wantHeader(b *record.Batch, rec *record.Record) nats.Header {
	return headerOf(b, rec)
}

// checkMsg compares a received message with the record it relays.
func checkMsg(t *testing.T, got *nats.Msg, b *record.Batch, rec *record.Record) {
	t.Helper()
	if want := wantSubject(b, rec); got.Subject != want {
		t.Errorf("record %s/%d: subject %q, want %q", rec.SequenceNumber, rec.SubSequenceNumber, got.Subject, want)
	}
	if !bytes.Equal(got.Data, rec.Data) {
		t.Errorf("record %s/%d: data %q, want %q", rec.SequenceNumber, rec.SubSequenceNumber, got.Data, rec.Data)
	}
	checkHeader(t, got.Header, wantHeader(b, rec))
}

func checkHeader(t *testing.T, got, want nats.Header) {
	t.Helper()
	for k, v := range want {
		if g := got.Values(k); len(g) != 1 || g[0] != v[0] {
			t.Errorf("header %s = %q, want %q", k, g, v[0])
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected header %s: %q", k, got.Values(k))
		}
	}
}

// subscribe subscribes on its own connection and makes sure the server
// has the subscription before it returns.
func subscribe(t *testing.T, s *testServer, subject string) (*nats.Conn, *nats.Subscription) {
	t.Helper()
	return subscribeWith(t, s, subject)
}

// subscribeWith is subscribe, connecting with opts.
func subscribeWith(t *testing.T, s *testServer, subject string, opts ...nats.Option) (*nats.Conn, *nats.Subscription) {
	t.Helper()
	nc, err := nats.Connect(s.URL(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	sub, err := nc.SubscribeSync(subject)
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return nc, sub
}

// receiveExactly reads n messages, then checks that no more arrived: the
// publisher's flush put them all in the subscriber's outbound queue, and the
// subscriber's own flush round trip comes after them.
func receiveExactly(t *testing.T, nc *nats.Conn, sub *nats.Subscription, n int) []*nats.Msg {
	t.Helper()
	msgs := make([]*nats.Msg, 0, n)
	for range n {
		m, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("after %d of %d messages: %v", len(msgs), n, err)
		}
		msgs = append(msgs, m)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if extra, _, _ := sub.Pending(); extra != 0 {
		t.Fatalf("%d messages more than the %d expected", extra, n)
	}
	return msgs
}

func TestHandleCore(t *testing.T) {
	t.Parallel()
	s := startServer(t, testServerConfig{})
	subNC, sub := subscribe(t, s, "kinesis.>")
	p := newTestPublisher(t, s.connect(t), Options{})

	b := testBatch(50)
	if err := p.Handle(context.Background(), b); err != nil {
		t.Fatalf("Handle: %v", err)
	}
	msgs := receiveExactly(t, subNC, sub, len(b.Records))
	var bytes uint64
	for i, m := range msgs { // one connection, one subscriber: batch order
		checkMsg(t, m, b, &b.Records[i])
		bytes += uint64(len(b.Records[i].Data))
	}
	if got, want := p.Stats(), (Stats{Published: 50, Bytes: bytes}); got != want {
		t.Errorf("Stats() = %+v, want %+v", got, want)
	}

	// An empty batch is delivered at once.
	if err := p.Handle(context.Background(), &record.Batch{Stream: testStream}); err != nil {
		t.Errorf("Handle(empty batch): %v", err)
	}
}

func TestHandleUnknownStream(t *testing.T) {
	t.Parallel()
	s := startServer(t, testServerConfig{})
	p := newTestPublisher(t, s.connect(t), Options{})
	b := testBatch(1)
	b.Stream = "other"
	if err := p.Handle(context.Background(), b); err == nil || !strings.Contains(err.Error(), `no subject template for stream "other"`) {
		t.Fatalf("Handle = %v, want the missing template", err)
	}
}

// createStream creates a stream capturing the record and dead-letter
// subjects, on its own connection.
func createStream(t testing.TB, s *testServer, cfg jetstream.StreamConfig) jetstream.Stream {
	t.Helper()
	nc, err := nats.Connect(s.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Name == "" {
		cfg.Name = "KINESIS"
	}
	if cfg.Subjects == nil {
		cfg.Subjects = []string{"kinesis.>", "fanoutd.deadletter.>"}
	}
	st, err := js.CreateStream(context.Background(), cfg)
	if err != nil {
		t.Fatalf("create stream: %v", err)
	}
	return st
}

// streamMsgs returns every message stored in st, in stream order.
func streamMsgs(t *testing.T, st jetstream.Stream) []*jetstream.RawStreamMsg {
	t.Helper()
	ctx := context.Background()
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var msgs []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("get message %d: %v", seq, err)
		}
		msgs = append(msgs, m)
	}
	return msgs
}

func checkStored(t *testing.T, st jetstream.Stream, b *record.Batch) {
	t.Helper()
	msgs := streamMsgs(t, st)
	if len(msgs) != len(b.Records) {
		t.Fatalf("stream holds %d messages, want %d", len(msgs), len(b.Records))
	}
	for i, m := range msgs {
		checkMsg(t, &nats.Msg{Subject: m.Subject, Data: m.Data, Header: m.Header}, b, &b.Records[i])
	}
}

// forBothPublishModes runs f on a stream that takes fast batches and on one
// that does not (then every message has its own PubAck).
func forBothPublishModes(t *testing.T, f func(t *testing.T, batched bool)) {
	for _, batched := range []bool{true, false} {
		name := "per message"
		if batched {
			name = "batched"
		}
		t.Run(name, func(t *testing.T) { f(t, batched) })
	}
}

// wantBatched checks that the records went as a batch where the stream
// takes batches, and never where it does not.
func wantBatched(t *testing.T, p *Publisher, batched bool, atLeast uint64) {
	t.Helper()
	got := p.Stats().Batched
	if batched && got < atLeast {
		t.Errorf("%d records stored by batch publishing, want at least %d", got, atLeast)
	}
	if !batched && got != 0 {
		t.Errorf("%d records stored by batch publishing into a stream without allow_batched", got)
	}
}

func TestHandleJetStream(t *testing.T) {
	t.Parallel()
	forBothPublishModes(t, func(t *testing.T, batched bool) {
		s := startServer(t, testServerConfig{JetStream: true})
		st := createStream(t, s, jetstream.StreamConfig{AllowBatchPublish: batched})
		p := newTestPublisher(t, s.connect(t), Options{JetStream: true, MaxPending: 8}) // a window smaller than the batch

		b := testBatch(40)
		if err := p.Handle(context.Background(), b); err != nil {
			t.Fatalf("Handle: %v", err)
		}
		checkStored(t, st, b)
		wantBatched(t, p, batched, 40)

		// A replay of the same batch is deduplicated by Nats-Msg-Id. In a
		// batch, the server drops duplicates without saying so.
		if err := p.Handle(context.Background(), b); err != nil {
			t.Fatalf("Handle (replay): %v", err)
		}
		checkStored(t, st, b)
		wantDups := uint64(40)
		if batched {
			wantDups = 0
		}
		if got := p.Stats(); got.Published != 80 || got.Duplicates != wantDups || got.FailedBatches != 0 {
			t.Errorf("Stats() = %+v, want 80 published, %d duplicates", got, wantDups)
		}
	})
}

func TestHandleJetStreamNoStream(t *testing.T) {
	t.Parallel()
	s := startServer(t, testServerConfig{JetStream: true})
	// Long enough for a retry or more on a busy machine, and for the last
	// attempt to end on its answer (no stream) rather than on the deadline.
	p := newTestPublisher(t, s.connect(t), Options{JetStream: true, PublishTimeout: 2 * time.Second})
	err := p.Handle(context.Background(), testBatch(3))
	if err == nil || !errors.Is(err, jetstream.ErrNoStreamResponse) || !strings.Contains(err.Error(), "add the subject to a stream") {
		t.Fatalf("Handle = %v, want no stream response with a hint", err)
	}
	if got := p.Stats(); got.FailedBatches != 1 || got.Retries == 0 || got.Published != 0 {
		t.Errorf("Stats() = %+v, want 1 failed batch after retries", got)
	}
}

func TestHandleServerDown(t *testing.T) {
	t.Parallel()
	for _, js := range []bool{false, true} {
		t.Run(fmt.Sprintf("jetstream=%t", js), func(t *testing.T) {
			s := startServer(t, testServerConfig{JetStream: js})
			var st jetstream.Stream
			if js {
				st = createStream(t, s, jetstream.StreamConfig{})
			}
			nc := s.connect(t)
			p := newTestPublisher(t, nc, Options{JetStream: js, PublishTimeout: 2 * time.Second})

			s.Shutdown()
			testutil.WaitFor(t, 10*time.Second, "disconnect", func() bool { return nc.Status() != nats.CONNECTED })
			b := testBatch(10)
			err := p.Handle(context.Background(), b)
			if !errors.Is(err, ErrNotConnected) {
				t.Fatalf("Handle with the server down = %v, want ErrNotConnected", err)
			}

			s.Start()
			waitStatus(t, nc, nats.CONNECTED)
			if js {
				if err := p.Handle(context.Background(), b); err != nil {
					t.Fatalf("Handle after restart: %v", err)
				}
				checkStored(t, st, b)
				return
			}
			subNC, sub := subscribe(t, s, "kinesis.>")
			if err := p.Handle(context.Background(), b); err != nil {
				t.Fatalf("Handle after restart: %v", err)
			}
			for i, m := range receiveExactly(t, subNC, sub, len(b.Records)) {
				checkMsg(t, m, b, &b.Records[i])
			}
			if got := p.Stats(); got.FailedBatches != 1 || got.Published != 10 {
				t.Errorf("Stats() = %+v, want 1 failed batch, 10 published", got)
			}
		})
	}
}

// TestHandleReconnectDuringBatch: a flush that succeeds on a new connection
// does not confirm what was written to the old one, so the batch fails.
func TestHandleReconnectDuringBatch(t *testing.T) {
	t.Parallel()
	s := startServer(t, testServerConfig{})
	nc := s.connect(t)
	p := newNATSGoPublisher(t, nc, Options{})
	beforeFlush(p, func() {
		if err := nc.ForceReconnect(); err != nil {
			t.Error(err)
		}
		waitStatus(t, nc, nats.CONNECTED)
	})
	b := testBatch(5)
	if err := p.Handle(context.Background(), b); !errors.Is(err, ErrNotConnected) || !strings.Contains(err.Error(), "re-established") {
		t.Fatalf("Handle = %v, want ErrNotConnected for a re-established connection", err)
	}
	beforeFlush(p, nil)
	if err := p.Handle(context.Background(), b); err != nil {
		t.Fatalf("Handle after the reconnect: %v", err)
	}
	if got := p.Stats(); got.FailedBatches != 1 || got.Published != 5 {
		t.Errorf("Stats() = %+v, want 1 failed batch, 5 published", got)
	}
}

func TestHandleDeadLetter(t *testing.T) {
	t.Parallel()
	const maxPayload = 2048
	for _, js := range []bool{false, true} {
		t.Run(fmt.Sprintf("jetstream=%t", js), func(t *testing.T) {
			s := startServer(t, testServerConfig{JetStream: js, MaxPayload: maxPayload})
			nc := s.connect(t)
			if got := nc.MaxPayload(); got != maxPayload {
				t.Fatalf("MaxPayload() = %d, want %d", got, maxPayload)
			}
			p := newTestPublisher(t, nc, Options{JetStream: js})

			b := testBatch(5)
			b.Records[1].Data = bytes.Repeat([]byte{'x'}, 3000)                  // payload alone too big
			b.Records[3].Data = bytes.Repeat([]byte{'y'}, maxPayload-100)        // too big with its headers
			hdr3 := messageSize(&nats.Msg{Header: wantHeader(b, &b.Records[3])}) // encoded header bytes
			wantReason := map[int]string{
				1: "payload of 3000 bytes exceeds the NATS server's max_payload of 2048",
				3: fmt.Sprintf("payload of %d bytes plus %d bytes of headers exceeds the NATS server's max_payload of 2048", maxPayload-100, hdr3),
			}

			var got []*nats.Msg
			if js {
				st := createStream(t, s, jetstream.StreamConfig{})
				if err := p.Handle(context.Background(), b); err != nil {
					t.Fatalf("Handle: %v", err)
				}
				for _, m := range streamMsgs(t, st) {
					got = append(got, &nats.Msg{Subject: m.Subject, Data: m.Data, Header: m.Header})
				}
			} else {
				subNC, sub := subscribe(t, s, ">")
				if err := p.Handle(context.Background(), b); err != nil {
					t.Fatalf("Handle: %v", err)
				}
				got = receiveExactly(t, subNC, sub, len(b.Records))
			}
			if len(got) != len(b.Records) {
				t.Fatalf("%d messages, want %d", len(got), len(b.Records))
			}
			for i, m := range got {
				rec := &b.Records[i]
				reason, dead := wantReason[i]
				if !dead {
					checkMsg(t, m, b, rec)
					continue
				}
				if want := "fanoutd.deadletter." + testStream; m.Subject != want {
					t.Errorf("dead letter %d: subject %q, want %q", i, m.Subject, want)
				}
				if len(m.Data) != 0 {
					t.Errorf("dead letter %d: %d bytes of data, want none", i, len(m.Data))
				}
				want := wantHeader(b, rec)
				want.Set(HeaderDeadLetterReason, reason)
				want.Set(HeaderOriginalSubject, wantSubject(b, rec))
				checkHeader(t, m.Header, want)
			}
			st := p.Stats()
			if st.DeadLettered != 2 || st.Published != 3 {
				t.Errorf("Stats() = %+v, want 2 dead-lettered, 3 published", st)
			}
		})
	}
}

// TestHandleJetStreamMaxMsgSize: a record the stream refuses for its size
// (under the server's max_payload) is dead-lettered too.
func TestHandleJetStreamMaxMsgSize(t *testing.T) {
	t.Parallel()
	forBothPublishModes(t, func(t *testing.T, batched bool) {
		testHandleJetStreamMaxMsgSize(t, batched)
	})
}

func testHandleJetStreamMaxMsgSize(t *testing.T, batched bool) {
	s := startServer(t, testServerConfig{JetStream: true})
	st := createStream(t, s, jetstream.StreamConfig{Name: "RECORDS", Subjects: []string{"kinesis.>"}, MaxMsgSize: 1024, AllowBatchPublish: batched})
	dl := createStream(t, s, jetstream.StreamConfig{Name: "DEAD", Subjects: []string{"fanoutd.deadletter.>"}})
	p := newTestPublisher(t, s.connect(t), Options{JetStream: true})

	// Big enough for a batch; the record refused for its size in the
	// middle ends the batch, the rest go message by message, in order.
	b := testBatch(8)
	b.Records[1].Data = bytes.Repeat([]byte{'z'}, 1500)
	if err := p.Handle(context.Background(), b); err != nil {
		t.Fatalf("Handle: %v", err)
	}
	msgs := streamMsgs(t, st)
	if len(msgs) != 7 {
		t.Fatalf("records stream holds %d messages, want 7", len(msgs))
	}
	for i, m := range msgs {
		j := i
		if i > 0 {
			j = i + 1 // record 1 is the dead letter
		}
		checkMsg(t, &nats.Msg{Subject: m.Subject, Data: m.Data, Header: m.Header}, b, &b.Records[j])
	}
	dead := streamMsgs(t, dl)
	if len(dead) != 1 {
		t.Fatalf("dead-letter stream holds %d messages, want 1", len(dead))
	}
	reason := dead[0].Header.Get(HeaderDeadLetterReason)
	if !strings.HasPrefix(reason, "payload of 1500 bytes exceeds the JetStream stream's max_msg_size") {
		t.Errorf("reason %q", reason)
	}
	got := p.Stats()
	if got.DeadLettered != 1 || got.Published != 7 {
		t.Errorf("Stats() = %+v, want 1 dead-lettered, 7 published", got)
	}
	if !batched {
		// Only the refused record is published again, as its dead letter.
		if got.Retries != 1 || got.Duplicates != 0 || got.Batched != 0 {
			t.Errorf("Stats() = %+v, want 1 retry, no duplicate, none batched", got)
		}
		return
	}
	// The batch stops at the refused record. Record 0 counts as stored by
	// the batch if the batch's final PubAck came (a later record already
	// sent when the refusal arrived makes a gap, and the server ends the
	// batch with one); otherwise it goes again, message by message, and is
	// found a duplicate. Either way once, and the dead letter is a retry.
	if got.Batched+got.Duplicates != 1 || got.Retries < 1 {
		t.Errorf("Stats() = %+v, want record 0 either batched or a duplicate, and a retry", got)
	}
}

func TestHandleConcurrentShards(t *testing.T) {
	t.Parallel()
	forBothPublishModes(t, testHandleConcurrentShards)
}

func testHandleConcurrentShards(t *testing.T, batched bool) {
	s := startServer(t, testServerConfig{JetStream: true})
	st := createStream(t, s, jetstream.StreamConfig{AllowBatchPublish: batched})
	p := newTestPublisher(t, s.connect(t), Options{JetStream: true, MaxPending: 16})
	const shards = 8
	errs := make(chan error, shards)
	for i := range shards {
		go func() {
			b := testBatch(50)
			b.ShardID = fmt.Sprintf("shardId-%012d", i)
			errs <- p.Handle(context.Background(), b)
		}()
	}
	for range shards {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	info, err := st.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != shards*50 {
		t.Errorf("stream holds %d messages, want %d", info.State.Msgs, shards*50)
	}
	// Batches where the stream takes them (a batch may store part of
	// its chunk, leaving the rest to the message-by-message path).
	wantBatched(t, p, batched, 1)
	// Each shard's records in order, once.
	next := map[string]int{}
	for _, m := range streamMsgs(t, st) {
		shard := m.Header.Get(HeaderShardID)
		want := testBatch(50).Records[next[shard]]
		if got := m.Header.Get(HeaderSequenceNumber); got != want.SequenceNumber {
			t.Fatalf("shard %s: message %d has sequence number %s, want %s", shard, next[shard], got, want.SequenceNumber)
		}
		next[shard]++
	}
}

func TestNewPublisherErrors(t *testing.T) {
	t.Parallel()
	s := startServer(t, testServerConfig{})
	nc := s.connect(t)
	for name, tc := range map[string]struct {
		nc       *nats.Conn
		subjects map[string]*SubjectTemplate
		opts     Options
		want     string
	}{
		"no conn":      {nil, testTemplates(t), Options{}, "no NATS connection"},
		"no subjects":  {nc, nil, Options{}, "no routes"},
		"nil template": {nc, map[string]*SubjectTemplate{"a": nil}, Options{}, `stream "a": no subject template`},
		"dead letter":  {nc, testTemplates(t), Options{DeadLetterSubject: "dl.*"}, "dead-letter subject"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := NewPublisher(tc.nc, SubjectRoutes(tc.subjects), tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewPublisher = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// benchBatch is 100 records of 100 bytes; each iteration gets fresh
// Nats-Msg-Ids through the sub-sequence number, without allocating.
func benchBatch() *record.Batch {
	b := &record.Batch{Stream: testStream, ShardID: "shardId-000000000000", Consumer: "fanoutd"}
	data := bytes.Repeat([]byte{'d'}, 100)
	for i := range 100 {
		b.Records = append(b.Records, record.Record{
			Data: data, PartitionKey: "user-" + strconv.Itoa(i%10), SequenceNumber: "49590000000000000000000000000000000000000000000000000000",
			Aggregated: true, ArrivalTime: time.Now(),
		})
	}
	return b
}

func benchmarkHandle(b *testing.B, js bool) {
	s := startServer(b, testServerConfig{JetStream: js})
	if js {
		createStream(b, s, jetstream.StreamConfig{Subjects: []string{"kinesis.>"}})
	}
	nc := s.connect(b)
	p, err := NewPublisher(nc, SubjectRoutes(testTemplates(b)), Options{JetStream: js, Log: zerolog.Nop()})
	if err != nil {
		b.Fatal(err)
	}
	batch := benchBatch()
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for n := 0; b.Loop(); n++ {
		for i := range batch.Records {
			batch.Records[i].SubSequenceNumber = int64(n*len(batch.Records) + i)
		}
		if err := p.Handle(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(batch.Records))/b.Elapsed().Seconds(), "records/s")
}

func BenchmarkHandleCore(b *testing.B)      { benchmarkHandle(b, false) }
func BenchmarkHandleJetStream(b *testing.B) { benchmarkHandle(b, true) }

// With nats.oversize fail, a record NATS can't take stops the stream
// (record.ErrStop) instead of becoming a dead letter.
func TestHandleOversizeFail(t *testing.T) {
	t.Parallel()
	const maxPayload = 2048
	for _, js := range []bool{false, true} {
		t.Run(fmt.Sprintf("jetstream=%t", js), func(t *testing.T) {
			s := startServer(t, testServerConfig{JetStream: js, MaxPayload: maxPayload})
			p := newTestPublisher(t, s.connect(t), Options{JetStream: js, Oversize: OversizeFail})
			if js {
				createStream(t, s, jetstream.StreamConfig{})
			}
			b := testBatch(3)
			b.Records[1].Data = bytes.Repeat([]byte{'x'}, 3000)
			err := p.Handle(context.Background(), b)
			if !errors.Is(err, record.ErrStop) || !strings.Contains(err.Error(), "payload of 3000 bytes exceeds the NATS server's max_payload of 2048") {
				t.Fatalf("Handle: %v, want an ErrStop naming the limit", err)
			}
			if st := p.Stats(); st.DeadLettered != 0 || st.FailedBatches != 1 {
				t.Fatalf("Stats() = %+v, want no dead letter and 1 failed batch", st)
			}
		})
	}
	// A JetStream stream's max_msg_size stops it too.
	s := startServer(t, testServerConfig{JetStream: true})
	createStream(t, s, jetstream.StreamConfig{Name: "RECORDS", Subjects: []string{"kinesis.>", "fanoutd.deadletter.>"}, MaxMsgSize: 1024})
	p := newTestPublisher(t, s.connect(t), Options{JetStream: true, Oversize: OversizeFail})
	b := testBatch(3)
	b.Records[1].Data = bytes.Repeat([]byte{'z'}, 1500)
	if err := p.Handle(context.Background(), b); !errors.Is(err, record.ErrStop) {
		t.Fatalf("Handle: %v, want ErrStop", err)
	}
	if st := p.Stats(); st.DeadLettered != 0 {
		t.Fatalf("Stats() = %+v, want no dead letter", st)
	}
}

// A replayed JetStream batch counts as duplicates only the records it
// published, not its dead letters.
func TestReplayCountsPublishedDuplicatesOnly(t *testing.T) {
	t.Parallel()
	const maxPayload = 2048
	s := startServer(t, testServerConfig{JetStream: true, MaxPayload: maxPayload})
	createStream(t, s, jetstream.StreamConfig{})
	p := newTestPublisher(t, s.connect(t), Options{JetStream: true, Oversize: OversizeDeadLetter})
	b := testBatch(3)
	b.Records[1].Data = bytes.Repeat([]byte{'x'}, 3000)
	for range 2 {
		if err := p.Handle(context.Background(), b); err != nil {
			t.Fatalf("Handle: %v", err)
		}
	}
	if st := p.Stats(); st.DeadLettered != 2 || st.Duplicates != 2 {
		t.Fatalf("Stats() = %+v, want 2 dead letters and the replay's 2 published records as duplicates", st)
	}
}
