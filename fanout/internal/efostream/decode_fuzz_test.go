package efostream

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/schemas"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go/eventstream"
	"github.com/aws/smithy-go/transport/http/protocol/awsjson"
	"github.com/rs/zerolog"

	"github.com/fanoutd/fanoutd/kpl"
	"github.com/fanoutd/fanoutd/record"
)

// decoded is what a reader made of a response body: the events it handed
// over, and how the stream ended.
type decoded struct {
	initErr string
	events  []decodedEvent
	endErr  string
	limit   bool // fanoutd refused a frame over the format's limits
}

type decodedEvent struct {
	cont     string
	hasCont  bool
	millis   int64
	children int
	recs     []record.Record
}

func (d *decoded) add(ev Event, recs []record.Record) {
	e := decodedEvent{millis: ev.MillisBehindLatest, children: len(ev.ChildShards)}
	if ev.Continuation != nil {
		e.cont, e.hasCont = *ev.Continuation, true
	}
	for _, r := range recs {
		r.Data = bytes.Clone(r.Data) // the reader reuses its buffer
		e.recs = append(e.recs, r)
	}
	d.events = append(d.events, e)
}

// sdkDecode reads body as aws-sdk-go-v2 does: the initial response as
// kinesis' deserializeOpEventStreamSubscribeToShard reads it, then events as
// smithyhttp.EventStreamReader and subscribeToShardEventStreamReader do,
// through the SDK's own awsJson 1.1 codec. panicked reports a panic of the
// SDK (it has some, e.g. on a NaN timestamp).
func sdkDecode(body []byte) (d decoded, panicked bool) {
	defer func() {
		if recover() != nil {
			panicked = true
		}
	}()
	codec := awsjson.New11(schemas.Kinesis_20131202)
	r := bytes.NewReader(body)
	if err := codec.DeserializeInitialResponse(schemas.SubscribeToShardOutput, r, &kinesis.SubscribeToShardOutput{}); err != nil {
		d.initErr = err.Error()
		return d, false
	}
	for {
		ev, err := codec.DeserializeEventMessage(schemas.SubscribeToShardEventStream, kinesis.TypeRegistry, r)
		if err == io.EOF {
			return d, false
		}
		if err != nil {
			d.endErr = err.Error()
			return d, false
		}
		if e, ok := ev.(*types.SubscribeToShardEvent); ok {
			d.add(eventOf(e), Records(nil, e.Records))
		}
	}
}

// rawDecode reads body with fanoutd's reader.
func rawDecode(body []byte) decoded {
	var d decoded
	s := &Subscription{body: io.NopCloser(bytes.NewReader(body)), codec: awsjson.New11(schemas.Kinesis_20131202), cancel: func() {}}
	s.r = bufio.NewReaderSize(s.body, 16<<10)
	if err := s.initialResponse(); err != nil {
		d.initErr = err.Error()
		d.limit = errors.Is(err, errFrameLimit)
		return d
	}
	var recs []record.Record
	for {
		ev, out, ok, err := s.Next(recs[:0])
		recs = out
		if err != nil {
			d.endErr = err.Error()
			d.limit = errors.Is(err, errFrameLimit)
			return d
		}
		if !ok {
			return d
		}
		d.add(ev, recs)
	}
}

func compareDecoded(t *testing.T, sdk, raw decoded) {
	t.Helper()
	if raw.limit {
		// The SDK would read such a frame whole; fanoutd stops there. What
		// came before must be the same.
		if len(raw.events) > len(sdk.events) {
			t.Fatalf("fanoutd decoded %d events before a frame over the limits, the SDK %d", len(raw.events), len(sdk.events))
		}
		sdk.events, sdk.endErr, sdk.initErr = sdk.events[:len(raw.events)], raw.endErr, raw.initErr
	}
	if sdk.initErr != raw.initErr {
		t.Fatalf("initial response: SDK error %q, fanoutd %q", sdk.initErr, raw.initErr)
	}
	if len(sdk.events) != len(raw.events) {
		t.Fatalf("SDK decoded %d events, fanoutd %d (SDK end %q, fanoutd end %q)", len(sdk.events), len(raw.events), sdk.endErr, raw.endErr)
	}
	for i := range sdk.events {
		a, b := sdk.events[i], raw.events[i]
		if a.cont != b.cont || a.hasCont != b.hasCont || a.millis != b.millis || a.children != b.children || len(a.recs) != len(b.recs) {
			t.Fatalf("event %d: SDK %+v, fanoutd %+v", i, a, b)
		}
		for j := range a.recs {
			x, y := a.recs[j], b.recs[j]
			if !bytes.Equal(x.Data, y.Data) || x.PartitionKey != y.PartitionKey || x.ExplicitHashKey != y.ExplicitHashKey ||
				x.SequenceNumber != y.SequenceNumber || x.SubSequenceNumber != y.SubSequenceNumber ||
				x.Aggregated != y.Aggregated || !x.ArrivalTime.Equal(y.ArrivalTime) || x.ArrivalTime.Location() != y.ArrivalTime.Location() {
				t.Fatalf("event %d record %d: SDK %+v, fanoutd %+v", i, j, x, y)
			}
		}
	}
	if sdk.endErr != raw.endErr {
		t.Fatalf("end: SDK error %q, fanoutd %q", sdk.endErr, raw.endErr)
	}
}

// Frames for the seed corpus.

func encodeFrame(t testing.TB, headers map[string]string, payload string) []byte {
	var msg eventstream.Message
	for k, v := range headers {
		msg.Headers.Set(k, eventstream.StringValue(v))
	}
	msg.Payload = []byte(payload)
	var buf bytes.Buffer
	if err := eventstream.NewEncoder().Encode(&buf, msg); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func initialFrame(t testing.TB) []byte {
	return encodeFrame(t, map[string]string{":message-type": "event", ":event-type": "initial-response", ":content-type": "application/json"}, "{}")
}

func eventFrame(t testing.TB, payload string) []byte {
	return encodeFrame(t, map[string]string{":message-type": "event", ":event-type": "SubscribeToShardEvent", ":content-type": "application/json"}, payload)
}

func eventJSON(n int, cont string, withData func(i int) []byte) string {
	var b strings.Builder
	b.WriteString(`{"ContinuationSequenceNumber":"` + cont + `","MillisBehindLatest":12,"Records":[`)
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"ApproximateArrivalTimestamp":1.764578%03d123E9,"Data":"%s","EncryptionType":"NONE","PartitionKey":"pk-%d","SequenceNumber":"4959%030d"}`,
			i, base64.StdEncoding.EncodeToString(withData(i)), i%3, i)
	}
	b.WriteString(`],"ChildShards":[]}`)
	return b.String()
}

func seedBodies(t testing.TB) [][]byte {
	join := func(frames ...[]byte) []byte { return bytes.Join(frames, nil) }
	plain := func(i int) []byte { return []byte(fmt.Sprintf("record %d payload", i)) }
	agg := func(i int) []byte {
		return kpl.Aggregate([]record.Record{{PartitionKey: "a", Data: []byte("x")}, {PartitionKey: "b", Data: []byte{byte(i)}}})
	}
	ev1 := eventFrame(t, eventJSON(3, "49590000000000000000000000000000000000000000000000000003", plain))
	full := join(initialFrame(t), ev1, eventFrame(t, eventJSON(2, "4959b", agg)), eventFrame(t, `{"ContinuationSequenceNumber":"c","MillisBehindLatest":0,"Records":[]}`))
	return [][]byte{
		full,
		full[:len(full)-7],                   // cut inside the last frame
		join(initialFrame(t), ev1[:5]),       // cut inside a prelude
		join(initialFrame(t), ev1, ev1[:40]), // cut inside the headers
		join(initialFrame(t)),                // nothing after the initial response
		{},                                   // nothing at all
		join(eventFrame(t, eventJSON(1, "x", plain))), // no initial response
		join(initialFrame(t), eventFrame(t, `{"ContinuationSequenceNumber":"a\"b\u00e9","Records":[{"Data":"YQ==","PartitionKey":"k\\n","SequenceNumber":"1","Extra":{"x":[1,null]}}]}`)),
		join(initialFrame(t), eventFrame(t, `{"MillisBehindLatest":0,"Records":[],"ChildShards":[{"ShardId":"shardId-000000000001","ParentShards":["shardId-000000000000"],"HashKeyRange":{"StartingHashKey":"0","EndingHashKey":"1"}}]}`)),
		join(initialFrame(t), eventFrame(t, `{"ContinuationSequenceNumber":"c","Records":[{"Data":"not base64!","PartitionKey":"k","SequenceNumber":"1"}]}`)),
		// Data moved over the payload (see decode), records of every length
		// from 0 to 3 bytes mod 3, and a bad one after good ones.
		join(initialFrame(t), eventFrame(t, eventJSON(7, "c", func(i int) []byte { return bytes.Repeat([]byte{byte('a' + i)}, []int{0, 1, 2, 3, 4, 1000, 5}[i]) }))),
		join(initialFrame(t), eventFrame(t, `{"ContinuationSequenceNumber":"c","Records":[{"Data":"YWJj","PartitionKey":"k","SequenceNumber":"1"},{"Data":"YQ==YQ==","PartitionKey":"k","SequenceNumber":"2"}]}`)),
		join(initialFrame(t), eventFrame(t, `{"ContinuationSequenceNumber":"c","Records":[{"ApproximateArrivalTimestamp":-1.5,"Data":"","PartitionKey":"ü","SequenceNumber":"1"},{}]}`)),
		join(initialFrame(t), eventFrame(t, `{"ContinuationSequenceNumber":null,"MillisBehindLatest":1.5}`)),
		join(initialFrame(t), eventFrame(t, `{"ContinuationSequenceNumber":"c"} trailing`)),
		join(initialFrame(t), encodeFrame(t, map[string]string{":message-type": "exception", ":exception-type": "ResourceInUseException", ":content-type": "application/json"}, `{"message":"another subscription holds the shard"}`)),
		join(initialFrame(t), encodeFrame(t, map[string]string{":message-type": "exception", ":exception-type": "InternalFailureException"}, `{"message":"oops"}`)),
		join(initialFrame(t), encodeFrame(t, map[string]string{":message-type": "error", ":error-code": "InternalError", ":error-message": "boom"}, "")),
		join(initialFrame(t), encodeFrame(t, map[string]string{":message-type": "event", ":event-type": "FutureEvent"}, `{}`), ev1),
		join(initialFrame(t), encodeFrame(t, map[string]string{":message-type": "surprise"}, `{}`)),
		join(initialFrame(t), encodeFrame(t, map[string]string{":event-type": "SubscribeToShardEvent"}, `{}`)),
	}
}

// FuzzDecoderMatchesSDK checks that fanoutd's reader and decoder turn any
// response body into the same events, records and errors as the SDK's.
// CI runs it briefly: go test ./fanout/internal/efostream/ -run '^$' -fuzz FuzzDecoderMatchesSDK -fuzztime 20s
func FuzzDecoderMatchesSDK(f *testing.F) {
	for _, b := range seedBodies(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		sdk, panicked := sdkDecode(body)
		if panicked {
			t.Skip("the SDK's decoder panics on this input")
		}
		compareDecoded(t, sdk, rawDecode(body))
	})
}

// TestDecoderFastPath checks that well-formed events take the fast path:
// the SDK's codec is not needed for them.
func TestDecoderFastPath(t *testing.T) {
	plain := func(i int) []byte { return bytes.Repeat([]byte{byte(i)}, 100) }
	f, ok := parseFrame(eventFrame(t, eventJSON(100, "c", plain)))
	if !ok {
		t.Fatal("parseFrame refused a well-formed frame")
	}
	var d eventDecoder
	payload := append([]byte(nil), f.payload...)
	ev, recs, ok, err := d.decode(nil, payload)
	if !ok || err != nil {
		t.Fatal("the fast decoder refused a well-formed event")
	}
	if got, want := len(recs), 100; got != want {
		t.Fatalf("records: got %d, want %d", got, want)
	}
	if got, want := *ev.Continuation, "c"; got != want {
		t.Fatalf("continuation: got %q, want %q", got, want)
	}
	allocs := testing.AllocsPerRun(20, func() {
		copy(payload, f.payload) // decoding moves the data over the payload
		_, recs, _, _ = d.decode(recs[:0], payload)
	})
	if allocs > 2 {
		t.Fatalf("decoding one event of 100 records allocates %.0f times; want at most 2 (the strings, the continuation)", allocs)
	}
}

// TestCorruptFrameEndsTheStreamWithAWarning checks a frame whose checksums
// hold but whose headers overrun their block: the SDK ends the stream
// there, fanoutd too (the event after it is not read), and says so.
func TestCorruptFrameEndsTheStreamWithAWarning(t *testing.T) {
	// A header block of 100 bytes: one header whose name takes all of it,
	// so its value's type byte lies past the block.
	headers := append([]byte{99}, bytes.Repeat([]byte{'0'}, 99)...)
	bad := make([]byte, preludeLen, preludeLen+len(headers)+frameCRCLength)
	binary.BigEndian.PutUint32(bad[0:], uint32(cap(bad)))
	binary.BigEndian.PutUint32(bad[4:], uint32(len(headers)))
	binary.BigEndian.PutUint32(bad[8:], crc32.ChecksumIEEE(bad[:8]))
	bad = append(bad, headers...)
	bad = binary.BigEndian.AppendUint32(bad, crc32.ChecksumIEEE(bad))
	body := bytes.Join([][]byte{initialFrame(t), bad, eventFrame(t, eventJSON(1, "c", func(int) []byte { return []byte("x") }))}, nil)

	sdk, _ := sdkDecode(body)
	if len(sdk.events) != 0 || sdk.endErr != "" {
		t.Fatalf("the SDK read %d events and ended with %q after the corrupt frame; the test's premise is that it ends cleanly there", len(sdk.events), sdk.endErr)
	}
	var logs bytes.Buffer
	s := &Subscription{body: io.NopCloser(bytes.NewReader(body)), codec: awsjson.New11(schemas.Kinesis_20131202), cancel: func() {}, log: zerolog.New(&logs)}
	s.r = bufio.NewReaderSize(s.body, 16<<10)
	if err := s.initialResponse(); err != nil {
		t.Fatal(err)
	}
	if _, recs, ok, err := s.Next(nil); ok || err != nil || len(recs) != 0 {
		t.Fatalf("next after a corrupt frame: ok %v, err %v, %d records; want a clean end", ok, err, len(recs))
	}
	if !strings.Contains(logs.String(), `"level":"warn"`) || !strings.Contains(logs.String(), "overrun their block") {
		t.Fatalf("no warning for the corrupt frame; logs: %s", logs.String())
	}
}
