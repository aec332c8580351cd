package relay

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/fanoutd/fanoutd/internal/testutil"
	"github.com/fanoutd/fanoutd/pattern"
	"github.com/fanoutd/fanoutd/payload"
	"github.com/fanoutd/fanoutd/record"
)

// contentPublisher publishes testStream by a route of the given payload and
// filter, on the subject template tmpl.
func contentPublisher(t *testing.T, s *testServer, opts Options, tmpl string, kind payload.Kind, filter ...string) *Publisher {
	t.Helper()
	st, err := ParseSubjectTemplate(tmpl)
	if err != nil {
		t.Fatal(err)
	}
	f, errs := pattern.ParseFilter(filter)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	p, err := NewPublisher(s.connect(t), map[string]*Route{testStream: {Subject: st, Filter: f, Payload: kind}}, opts)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// A record unpacked into more messages than a batch holds goes out in
// several bounded batches, each message with its own Nats-Msg-Id, so a
// replay stores nothing twice; a control message and a corrupt record in
// the same batch do not stop the others.
func TestContentUnpacksBeyondOneBatchExactlyOnce(t *testing.T) {
	t.Parallel()
	forBothPublishModes(t, func(t *testing.T, batched bool) {
		s := startServer(t, testServerConfig{JetStream: true})
		st := createStream(t, s, jetstream.StreamConfig{AllowBatchPublish: batched})
		p := contentPublisher(t, s, Options{JetStream: true, NoBatchPublish: !batched}, "kinesis.{log_stream}", payload.CloudWatchLogs)

		const events = 2*record.MaxBatchRecords + 500
		big := testutil.LogsRecord{Owner: "1", LogGroup: "g", LogStream: "big", MessageType: "DATA_MESSAGE"}
		for i := range events {
			big.LogEvents = append(big.LogEvents, testutil.LogEvent{ID: fmt.Sprint(i), Timestamp: int64(i), Message: fmt.Sprintf("event %d", i)})
		}
		small := testutil.LogsRecord{Owner: "1", LogGroup: "g", LogStream: "small", MessageType: "DATA_MESSAGE",
			LogEvents: []testutil.LogEvent{{ID: "a", Timestamp: 1, Message: "small 0"}, {ID: "b", Timestamp: 2, Message: "small 1"}}}
		b := &record.Batch{Stream: testStream, ShardID: "shardId-000000000000", Records: []record.Record{
			{SequenceNumber: "100", PartitionKey: "k", Data: big.Gzip()},
			{SequenceNumber: "101", PartitionKey: "k", Data: testutil.ControlRecord.Gzip()},
			{SequenceNumber: "102", PartitionKey: "k", Data: []byte{0x1f, 0x8b, 0, 0}},
			{SequenceNumber: "103", PartitionKey: "k", Data: small.Gzip()},
		}}
		for range 2 { // the second time is a replay
			if err := p.Handle(context.Background(), b); err != nil {
				t.Fatal(err)
			}
		}
		msgs := streamMsgs(t, st)
		if len(msgs) != events+1+2 {
			t.Fatalf("stream holds %d messages, want %d events, 1 dead letter and 2 events", len(msgs), events)
		}
		ids := map[string]bool{}
		for i, m := range msgs {
			id := m.Header.Get("Nats-Msg-Id")
			if ids[id] {
				t.Fatalf("Nats-Msg-Id %s twice", id)
			}
			ids[id] = true
			var want string
			switch {
			case i < events:
				want = fmt.Sprintf("event %d", i)
				if wantID := fmt.Sprintf("orders:shardId-000000000000:100:0:%d", i); id != wantID || m.Subject != "kinesis.big" {
					t.Fatalf("message %d: %s id %s, want kinesis.big %s", i, m.Subject, id, wantID)
				}
			case i == events:
				if r := m.Header.Get(HeaderDeadLetterReason); r != payload.ReasonBadGzip || id != "orders:shardId-000000000000:102:0" {
					t.Fatalf("message %d: %s reason %q id %s, want the dead letter of record 102", i, m.Subject, r, id)
				}
				continue
			default:
				want = fmt.Sprintf("small %d", i-events-1)
			}
			if string(m.Data) != want {
				t.Fatalf("message %d: %q, want %q", i, m.Data, want)
			}
		}
		sts := p.StreamStats()[testStream]
		if sts.ControlMessages != 2 || sts.DeadLettered != 2 || sts.Published != 2*(events+2) {
			t.Fatalf("stream stats %+v, want 2 control messages, 2 dead letters, %d published", sts, 2*(events+2))
		}
	})
}

// A batch whose every record the filter drops publishes nothing and
// succeeds, so the checkpoint moves past it.
func TestContentFilterDropsAWholeBatch(t *testing.T) {
	t.Parallel()
	s := startServer(t, testServerConfig{})
	p := contentPublisher(t, s, Options{}, "kinesis.{stream}", payload.Raw, `{"data": {"type": ["wanted"]}}`)
	_, sub := subscribe(t, s, "kinesis.>")
	b := testBatch(50)
	if err := p.Handle(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	b.Records[7].Data = []byte(`{"type":"wanted"}`)
	if err := p.Handle(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	m, err := sub.NextMsg(10 * time.Second)
	if err != nil || string(m.Data) != `{"type":"wanted"}` {
		t.Fatalf("first message %v, %v; want the one record the filter lets through", m, err)
	}
	if got := p.StreamStats()[testStream]; got.Filtered != 99 || got.Published != 1 {
		t.Fatalf("filtered %d, published %d; want 99 and 1", got.Filtered, got.Published)
	}
}

// gzip data is decompressed before its subject is rendered from it; data
// without the gzip magic passes as it is.
func TestContentGzipThenSubjectFromData(t *testing.T) {
	t.Parallel()
	s := startServer(t, testServerConfig{})
	p := contentPublisher(t, s, Options{}, "kinesis.{data.kind}", payload.Gzip)
	_, sub := subscribe(t, s, "kinesis.>")
	b := &record.Batch{Stream: testStream, ShardID: "s", Records: []record.Record{
		{SequenceNumber: "1", Data: testutil.GzipBytes([]byte(`{"kind":"zipped"}`))},
		{SequenceNumber: "2", Data: []byte(`{"kind":"plain"}`)},
		{SequenceNumber: "3", Data: testutil.GzipBytes([]byte(strings.Repeat("x", 10)))},
	}}
	if err := p.Handle(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	for _, want := range [][2]string{{"kinesis.zipped", `{"kind":"zipped"}`}, {"kinesis.plain", `{"kind":"plain"}`}, {"kinesis._", "xxxxxxxxxx"}} {
		m, err := sub.NextMsg(10 * time.Second)
		if err != nil || m.Subject != want[0] || string(m.Data) != want[1] {
			t.Fatalf("got %v, %v; want %s %s", m, err, want[0], want[1])
		}
	}
}

// The Cloudwatch-* headers come from the record's data: whatever a
// producer writes there, each is cut to a bound, so the message still fits.
func TestContentBoundsLogHeaders(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("g", 100_000)
	b := &record.Batch{Stream: testStream, ShardID: "s"}
	rec := &record.Record{SequenceNumber: "1", Unpacked: &record.Unpacked{Index: 3, LogGroup: long, LogStream: long,
		Owner: long, EventID: long, SubscriptionFilters: long + "," + long}}
	h, size := RecordHeader(b, rec)
	for _, k := range []string{HeaderLogGroup, HeaderLogStream, HeaderLogOwner, HeaderLogEventID, HeaderSubscriptionFilters} {
		if v := h.Get(k); len(v) > maxLogHeaderValue || !strings.HasSuffix(v, "...") {
			t.Fatalf("%s: %d bytes, want at most %d ending in ...", k, len(v), maxLogHeaderValue)
		}
	}
	if size > 8<<10 {
		t.Fatalf("headers of %d bytes", size)
	}
	if id := h.Get("Nats-Msg-Id"); id != "orders:s:1:0:3" {
		t.Fatalf("Nats-Msg-Id %q", id)
	}
}

// A hostile CloudWatch Logs record, as many events as a record may hold
// (payload.MaxLogEvents) whose messages need unescaping and fill the
// decompression limit, is published within the bound docs/guarantees.md
// states: 3 × max_decompressed, the events' bookkeeping (about 100 bytes
// each) and a batch. The heap is sampled while it is handled, with the
// collector kept busy so that what is in use is about what is live.
func TestContentMemoryBoundOfHostileLogs(t *testing.T) {
	// Not parallel: it reads the process's heap.
	if testing.Short() {
		t.Skip("a hundred thousand log events")
	}
	const limit = 16 << 20
	rec := testutil.LogsRecord{Owner: "1", LogGroup: "g", LogStream: "s", MessageType: "DATA_MESSAGE"}
	msg := strings.Repeat("\t", (limit-200)/payload.MaxLogEvents/3) // each escaped \t is 2 bytes of JSON: ~2/3 of the limit
	for range payload.MaxLogEvents {
		rec.LogEvents = append(rec.LogEvents, testutil.LogEvent{Message: msg})
	}
	data := rec.Gzip()
	rec = testutil.LogsRecord{}
	s := startServer(t, testServerConfig{})
	st, _ := ParseSubjectTemplate("kinesis.{log_group}")
	p, err := NewPublisher(s.connect(t), map[string]*Route{testStream: {Subject: st, Payload: payload.CloudWatchLogs, MaxDecompressed: limit}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	b := &record.Batch{Stream: testStream, ShardID: "s", Records: []record.Record{{SequenceNumber: "1", Data: data}}}

	defer debug.SetGCPercent(debug.SetGCPercent(5))
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	done := make(chan struct{})
	peak := make(chan uint64)
	go func() {
		var m runtime.MemStats
		var max uint64
		for {
			runtime.ReadMemStats(&m)
			max = maxU(max, m.HeapInuse)
			select {
			case <-done:
				peak <- max
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	err = p.Handle(context.Background(), b)
	close(done)
	grew := <-peak - base.HeapInuse
	if err != nil {
		t.Fatal(err)
	}
	if got := p.StreamStats()[testStream]; got.Published != payload.MaxLogEvents || got.DeadLettered != 0 {
		t.Fatalf("stats %+v, want all %d events published", got, payload.MaxLogEvents)
	}
	bound := uint64(3*limit + payload.MaxLogEvents*100 + record.MaxBatchBytes)
	t.Logf("%d events, %d MiB limit: the heap grew by %.1f MiB at most, bound %.1f MiB", payload.MaxLogEvents, limit>>20, float64(grew)/(1<<20), float64(bound)/(1<<20))
	if grew > bound {
		t.Fatalf("the heap grew by %d bytes, over the bound of %d", grew, bound)
	}
}

func maxU(a, b uint64) uint64 { return max(a, b) }

// Log events too large for a message go to the Object Store each under its
// own name (the record's, and the event's place), so one record's events
// never overwrite each other.
func TestContentLargeLogEventsAreObjectsOfTheirOwn(t *testing.T) {
	t.Parallel()
	s := startServer(t, testServerConfig{JetStream: true, MaxPayload: objectTestMaxPayload})
	obs := objectBucket(t, s)
	st, _ := ParseSubjectTemplate("kinesis.{log_group}")
	p, err := NewPublisher(s.connect(t), map[string]*Route{testStream: {Subject: st, Payload: payload.CloudWatchLogs}},
		Options{Oversize: OversizeObjectStore, Objects: obs, ObjectBucket: testObjectBucket})
	if err != nil {
		t.Fatal(err)
	}
	_, sub := subscribe(t, s, "kinesis.>")
	events := []string{strings.Repeat("a", 300<<10), strings.Repeat("b", 300<<10)}
	rec := testutil.LogsRecord{Owner: "1", LogGroup: "g", LogStream: "s", MessageType: "DATA_MESSAGE"}
	for i, m := range events {
		rec.LogEvents = append(rec.LogEvents, testutil.LogEvent{ID: fmt.Sprint(i), Timestamp: 1, Message: m})
	}
	b := &record.Batch{Stream: testStream, ShardID: "s", Records: []record.Record{{SequenceNumber: "1", Data: rec.Gzip()}}}
	if err := p.Handle(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	for i, want := range events {
		m, err := sub.NextMsg(10 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		name := UnescapeHeaderValue(m.Header.Get(HeaderObjectName))
		if wantName := fmt.Sprintf("orders/s/1/0/%d", i); name != wantName {
			t.Fatalf("event %d: object %q, want %q", i, name, wantName)
		}
		data, err := obs.GetBytes(context.Background(), name)
		if err != nil || string(data) != want {
			t.Fatalf("event %d: object holds %.10q... (%v), want %.10q...", i, data, err, want)
		}
	}
}

// After a failed batch, messages go one by one up to the last message the
// failed attempt sent, even when that is inside a record unpacked across
// several batches: the batches of the record before it go one by one too.
func TestContentReplayOfARecordFailedInItsSecondBatch(t *testing.T) {
	t.Parallel()
	s := startServer(t, testServerConfig{JetStream: true})
	cfg := jetstream.StreamConfig{Name: "KINESIS", Subjects: []string{"kinesis.>", "fanoutd.deadletter.>"}, AllowBatchPublish: true,
		MaxMsgs: record.MaxBatchRecords + 500, Discard: jetstream.DiscardNew}
	stream := createStream(t, s, cfg)
	// Time for a chunk of 1 000 messages one by one on 2 busy cores; the
	// first attempt fails only when it runs out.
	p := contentPublisher(t, s, Options{JetStream: true, PublishTimeout: 5 * time.Second}, "kinesis.{log_stream}", payload.CloudWatchLogs)
	const events = 2*record.MaxBatchRecords + 500 // three batches: 1000, 1000, 500
	rec := testutil.LogsRecord{Owner: "1", LogGroup: "g", LogStream: "big", MessageType: "DATA_MESSAGE"}
	for i := range events {
		rec.LogEvents = append(rec.LogEvents, testutil.LogEvent{ID: fmt.Sprint(i), Timestamp: 1, Message: fmt.Sprintf("event %d", i)})
	}
	b := &record.Batch{Stream: testStream, ShardID: "s", Records: []record.Record{{SequenceNumber: "100", Data: rec.Gzip()}}}
	if err := p.Handle(context.Background(), b); err == nil {
		t.Fatal("Handle succeeded into a stream that fills in the second batch")
	}
	cfg.MaxMsgs = -1
	if _, err := jsFor(t, s).UpdateStream(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	before := p.Stats().Batched
	if err := p.Handle(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	// The failed attempt sent into the second batch: the replay goes one
	// by one through it, and only the third may go as a batch.
	if got := p.Stats().Batched - before; got > events-2*record.MaxBatchRecords {
		t.Fatalf("%d messages batched on the replay, want at most the third batch's %d", got, events-2*record.MaxBatchRecords)
	}
	if msgs := streamMsgs(t, stream); len(msgs) != events {
		t.Fatalf("the stream holds %d messages, want %d", len(msgs), events)
	}
}

// SubjectFallbacks counts each confirmed message on a subject with the
// fallback token once: not a dead letter (its data did not decode), not a
// message built twice (in advance for a fast batch, then again).
func TestContentCountsFallbacksOnce(t *testing.T) {
	t.Parallel()
	for _, js := range []bool{false, true} {
		t.Run(fmt.Sprintf("jetstream=%t", js), func(t *testing.T) {
			s := startServer(t, testServerConfig{JetStream: js})
			if js {
				createStream(t, s, jetstream.StreamConfig{AllowBatchPublish: true})
			}
			p := contentPublisher(t, s, Options{JetStream: js}, "kinesis.{data.kind}", payload.Gzip)
			b := &record.Batch{Stream: testStream, ShardID: "s"}
			want := 0
			for i := range 30 {
				data := []byte(`{"kind":"k"}`)
				switch i % 3 {
				case 1:
					data = []byte(`{"other":1}`) // on the fallback
					want++
				case 2:
					data = []byte{0x1f, 0x8b, 1, 2} // a dead letter
				}
				b.Records = append(b.Records, record.Record{SequenceNumber: fmt.Sprint(100 + i), Data: data})
			}
			if err := p.Handle(context.Background(), b); err != nil {
				t.Fatal(err)
			}
			if got := p.StreamStats()[testStream]; got.SubjectFallbacks != uint64(want) || got.DeadLettered != 10 {
				t.Fatalf("fallbacks %d, dead letters %d; want %d and 10", got.SubjectFallbacks, got.DeadLettered, want)
			}
		})
	}
}

// A record nested without end is not JSON to the filter either: dropped by
// a pattern on data, without exhausting the stack, and the batch goes on.
func TestContentFilterHostileNesting(t *testing.T) {
	t.Parallel()
	s := startServer(t, testServerConfig{})
	p := contentPublisher(t, s, Options{}, "kinesis.{data.kind}", payload.Raw, `{"data": {"kind": [{"exists": true}]}}`)
	_, sub := subscribe(t, s, "kinesis.>")
	deep := append([]byte(`{"kind":"x","a":`), bytes.Repeat([]byte("["), 10<<20)...)
	b := &record.Batch{Stream: testStream, ShardID: "s", Records: []record.Record{
		{SequenceNumber: "1", Data: deep}, {SequenceNumber: "2", Data: []byte(`{"kind":"ok"}`)}}}
	if err := p.Handle(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if m, err := sub.NextMsg(10 * time.Second); err != nil || m.Subject != "kinesis.ok" {
		t.Fatalf("got %v, %v; want the one valid record", m, err)
	}
	if got := p.StreamStats()[testStream].Filtered; got != 1 {
		t.Fatalf("filtered %d, want 1", got)
	}
}

// Under cloudwatch_logs, filters and {data.PATH} read each event's message
// when it is JSON; a message that is not JSON is dropped by a pattern on
// data, as Lambda drops a record whose data is not JSON.
func TestContentFiltersLogEventsByMessage(t *testing.T) {
	t.Parallel()
	s := startServer(t, testServerConfig{})
	p := contentPublisher(t, s, Options{}, "kinesis.{data.level}", payload.CloudWatchLogs, `{"data": {"level": ["ERROR", "WARN"]}}`)
	_, sub := subscribe(t, s, "kinesis.>")
	rec := testutil.LogsRecord{Owner: "1", LogGroup: "g", LogStream: "s", MessageType: "DATA_MESSAGE"}
	for i, m := range []string{`{"level":"INFO","i":0}`, `{"level":"ERROR","i":1}`, `plain ERROR text`, `{"level":"WARN","i":3}`} {
		rec.LogEvents = append(rec.LogEvents, testutil.LogEvent{ID: fmt.Sprint(i), Timestamp: 1, Message: m})
	}
	b := &record.Batch{Stream: testStream, ShardID: "s", Records: []record.Record{{SequenceNumber: "1", Data: rec.Gzip()}}}
	if err := p.Handle(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	for _, want := range [][2]string{{"kinesis.ERROR", `{"level":"ERROR","i":1}`}, {"kinesis.WARN", `{"level":"WARN","i":3}`}} {
		m, err := sub.NextMsg(10 * time.Second)
		if err != nil || m.Subject != want[0] || string(m.Data) != want[1] {
			t.Fatalf("got %v, %v; want %s %s", m, err, want[0], want[1])
		}
		if id := m.Header.Get("Nats-Msg-Id"); !strings.HasSuffix(id, ":"+want[1][len(want[1])-2:len(want[1])-1]) {
			t.Fatalf("Nats-Msg-Id %s: want the event's place in its record", id)
		}
	}
	if got := p.StreamStats()[testStream]; got.Filtered != 2 || got.Published != 2 {
		t.Fatalf("filtered %d, published %d; want 2 and 2", got.Filtered, got.Published)
	}
}
