package relay

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/fanoutd/fanoutd/record"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

func TestMsgID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		stream, shard, seq string
		subSeq             int64
		want               string
	}{
		{"orders", "shardId-000000000001", "49590338271490256608559692538361571095921575989136588898", 0,
			"orders:shardId-000000000001:49590338271490256608559692538361571095921575989136588898:0"},
		{"orders", "shardId-000000000001", "4959", 17, "orders:shardId-000000000001:4959:17"},
		{"", "", "", 0, ":::0"},
	}
	for _, tt := range tests {
		if got := MsgID(tt.stream, tt.shard, tt.seq, tt.subSeq); got != tt.want {
			t.Errorf("MsgID(%q, %q, %q, %d) = %q, want %q", tt.stream, tt.shard, tt.seq, tt.subSeq, got, tt.want)
		}
	}
}

func TestFormatArrivalTime(t *testing.T) {
	t.Parallel()
	tokyo := time.FixedZone("JST", 9*3600)
	tests := []struct {
		in   time.Time
		want string
	}{
		{time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC), "2024-03-01T12:00:00.000Z"},
		{time.Date(2024, 3, 1, 21, 4, 5, 7e6, tokyo), "2024-03-01T12:04:05.007Z"},
		{time.Date(2024, 3, 1, 12, 0, 0, 123456789, time.UTC), "2024-03-01T12:00:00.123Z"},
		{time.Date(2024, 3, 1, 12, 0, 0, 999600000, time.UTC), "2024-03-01T12:00:01.000Z"},
		// What a JSON float of epoch seconds turns into: just below .123.
		{time.Unix(0, int64(1.700000000123e9*1e9)), "2023-11-14T22:13:20.123Z"},
	}
	for _, tt := range tests {
		if got := FormatArrivalTime(tt.in); got != tt.want {
			t.Errorf("FormatArrivalTime(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestEscapeHeaderValue(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"user-42", "user-42"},
		{"", ""},
		{"a b", "a b"},
		{" a", "%20a"},
		{"a ", "a%20"},
		{" ", "%20"},
		{"  a  b  ", "%20 a  b %20"},
		{"line1\r\nline2", "line1%0D%0Aline2"},
		{"\ttab", "%09tab"},
		{"\x00\x7f", "%00%7F"},
		{"100%", "100%25"},
		{"%0A", "%250A"},
		{"é", "%C3%A9"},
		{"日本", "%E6%97%A5%E6%9C%AC"},
		{"\xff", "%FF"},
		{"a:b;c=d,e\"f'g", "a:b;c=d,e\"f'g"},
	}
	for _, tt := range tests {
		got := EscapeHeaderValue(tt.in)
		if got != tt.want {
			t.Errorf("EscapeHeaderValue(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if back, err := url.PathUnescape(got); err != nil || back != tt.in {
			t.Errorf("url.PathUnescape(%q) = %q, %v; want %q", got, back, err, tt.in)
		}
		if back := UnescapeHeaderValue(got); back != tt.in {
			t.Errorf("UnescapeHeaderValue(%q) = %q, want %q", got, back, tt.in)
		}
		for i := 0; i < len(got); i++ {
			if c := got[i]; c < ' ' || c > '~' {
				t.Errorf("EscapeHeaderValue(%q) = %q holds non-printable %q", tt.in, got, c)
			}
		}
	}
}

func TestEscapeHeaderValueDoesNotAllocateWhenClean(t *testing.T) {
	// Not parallel: AllocsPerRun counts every goroutine's allocations.
	s := strings.Repeat("user-42 ", 8) + "x"
	if allocs := testing.AllocsPerRun(100, func() { _ = EscapeHeaderValue(s) }); allocs != 0 {
		t.Fatalf("EscapeHeaderValue allocated %v times per run, want 0", allocs)
	}
}

func TestRecordHeader(t *testing.T) {
	t.Parallel()
	arrival := time.Date(2024, 3, 1, 12, 0, 0, 123e6, time.UTC)
	b := &record.Batch{Stream: "orders", ShardID: "shardId-000000000001"}
	plain := &record.Record{
		PartitionKey:      "line\r\nbreak",
		SequenceNumber:    "4959",
		SubSequenceNumber: 5, // ignored: not aggregated
		ArrivalTime:       arrival,
	}
	aggregated := &record.Record{
		PartitionKey:      "user-1",
		SequenceNumber:    "4960",
		ExplicitHashKey:   "340282366920938463463374607431768211455",
		SubSequenceNumber: 2,
		Aggregated:        true,
		ArrivalTime:       arrival,
	}
	wantPlain := nats.Header{
		HeaderStream:         {"orders"},
		HeaderShardID:        {"shardId-000000000001"},
		HeaderPartitionKey:   {"line%0D%0Abreak"},
		HeaderSequenceNumber: {"4959"},
		HeaderArrivalTime:    {"2024-03-01T12:00:00.123Z"},
		nats.MsgIdHdr:        {"orders:shardId-000000000001:4959:0"},
	}
	wantAggregated := nats.Header{
		HeaderStream:            {"orders"},
		HeaderShardID:           {"shardId-000000000001"},
		HeaderPartitionKey:      {"user-1"},
		HeaderSequenceNumber:    {"4960"},
		HeaderSubSequenceNumber: {"2"},
		HeaderExplicitHashKey:   {"340282366920938463463374607431768211455"},
		HeaderArrivalTime:       {"2024-03-01T12:00:00.123Z"},
		nats.MsgIdHdr:           {"orders:shardId-000000000001:4960:2"},
	}

	// One header reused across records, as core mode does: headers that do
	// not apply to the next record must go.
	rh := newRecordHeader()
	for _, step := range []struct {
		name string
		rec  *record.Record
		want nats.Header
	}{
		{"plain", plain, wantPlain},
		{"aggregated", aggregated, wantAggregated},
		{"plain after aggregated", plain, wantPlain},
	} {
		assertHeader(t, step.name, headerOf(b, step.rec), step.want)
		rh.set(b, step.rec)
		assertHeader(t, step.name+" (reused)", rh.h, step.want)
	}

	noTime := *plain
	noTime.ArrivalTime = time.Time{}
	rh.set(b, &noTime)
	for _, h := range []nats.Header{headerOf(b, &noTime), rh.h} {
		if _, ok := h[HeaderArrivalTime]; ok {
			t.Errorf("zero arrival time: %s set to %q", HeaderArrivalTime, h.Get(HeaderArrivalTime))
		}
	}
}

func assertHeader(t *testing.T, name string, got, want nats.Header) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: got %d headers %v, want %d %v", name, len(got), got, len(want), want)
	}
	for k, v := range want {
		if g := got.Values(k); len(g) != 1 || g[0] != v[0] {
			t.Errorf("%s: %s = %q, want %q", name, k, g, v)
		}
	}
}

// TestHeadersSurviveNATS publishes through a real, embedded NATS server and
// checks that every escaped value arrives byte for byte and decodes back.
func TestHeadersSurviveNATS(t *testing.T) {
	t.Parallel()
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	t.Cleanup(srv.Shutdown)
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	sub, err := nc.SubscribeSync("kinesis.>")
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := ParseSubjectTemplate("kinesis.{stream}.{partition_key}")
	if err != nil {
		t.Fatal(err)
	}

	keys := []string{"plain", " padded ", "line1\r\nline2", "tab\there", "100%", "ключ 日本", "\x00\x7f\xff", "a: b", "_", "", "a.b*c>d"}
	for _, key := range keys {
		m := nats.NewMsg(string(tmpl.Render(nil, SubjectValues{Stream: "orders", PartitionKey: key})))
		m.Header = headerOf(&record.Batch{Stream: "orders", ShardID: "shardId-000000000000"},
			&record.Record{PartitionKey: key, SequenceNumber: "4959", ArrivalTime: time.Unix(1700000000, 0)})
		m.Data = []byte(key)
		if err := nc.PublishMsg(m); err != nil {
			t.Fatalf("publish %q: %v", key, err)
		}
	}
	for _, key := range keys {
		msg, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("receive %q: %v", key, err)
		}
		if string(msg.Data) != key {
			t.Fatalf("got message for %q, want %q", msg.Data, key)
		}
		got := msg.Header.Get(HeaderPartitionKey)
		if back, err := url.PathUnescape(got); err != nil || back != key {
			t.Errorf("%s %q decodes to %q, %v; want %q", HeaderPartitionKey, got, back, err, key)
		}
		token := strings.TrimPrefix(msg.Subject, "kinesis.orders.")
		if back, err := decodeToken(token); err != nil || back != key {
			t.Errorf("subject %q: token decodes to %q, %v; want %q", msg.Subject, back, err, key)
		}
	}
}

// BenchmarkRecordHeader: the headers of one record, a new header (JetStream
// mode) and one reused header (core mode).
func BenchmarkRecordHeader(b *testing.B) {
	batch := &record.Batch{Stream: "orders", ShardID: "shardId-000000000001"}
	rec := &record.Record{PartitionKey: "3f2b9c4e-6d1a-4c8e-9f7b-2a1d5e8c0b47",
		SequenceNumber: "49590338271490256608559692538361571095921575989136588898", SubSequenceNumber: 3, Aggregated: true,
		ArrivalTime: time.Date(2024, 3, 1, 12, 0, 0, 123e6, time.UTC),
	}
	b.Run("new", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = RecordHeader(batch, rec)
		}
	})
	b.Run("reused", func(b *testing.B) {
		rh := newRecordHeader()
		b.ReportAllocs()
		for b.Loop() {
			rh.set(batch, rec)
		}
	})
}

// FuzzTimeFormat: the cached formatter agrees with appendArrivalTime on
// every time, including a second shared with the time before, rounding
// into the next second, and years outside 0000-9999.
func FuzzTimeFormat(f *testing.F) {
	f.Add(int64(1700000000), int64(999_600_000), int64(1))
	f.Add(int64(1700000000), int64(123_000_000), int64(0))
	f.Add(int64(-62135596801), int64(0), int64(3))
	f.Add(int64(253402300799), int64(999_999_999), int64(1))
	f.Add(int64(-1), int64(500_000), int64(-2))
	f.Add(int64(1<<62), int64(0), int64(1))
	var tf timeFormat
	f.Fuzz(func(t *testing.T, sec, nsec, step int64) {
		for i := range int64(3) {
			tm := time.Unix(sec+i*step, nsec)
			if i == 1 {
				tm = tm.In(time.FixedZone("x", 3600))
			}
			want := string(appendArrivalTime(nil, tm))
			if got := string(tf.append([]byte("x"), tm)); got != "x"+want {
				t.Fatalf("timeFormat.append(%v) = %q, want %q", tm, got[1:], want)
			}
		}
	})
}
