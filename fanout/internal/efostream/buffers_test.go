package efostream

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/kinesis/schemas"
	"github.com/aws/smithy-go/transport/http/protocol/awsjson"

	"github.com/fanoutd/fanoutd/internal/reuse"
)

// A subscription that read a 10 MiB event gives its buffers back once
// its events are small again.
func TestSubscriptionBuffersShrinkAfterAnOutsizedEvent(t *testing.T) {
	var body bytes.Buffer
	body.Write(initialFrame(t))
	huge := func(int) []byte { return bytes.Repeat([]byte{'x'}, 10<<20) }
	tiny := func(int) []byte { return []byte("x") }
	body.Write(eventFrame(t, eventJSON(1, "c0", huge)))
	for range reuse.ShrinkAfter {
		body.Write(eventFrame(t, eventJSON(1, "c", tiny)))
	}
	s := &Subscription{body: io.NopCloser(&body), codec: awsjson.New11(schemas.Kinesis_20131202), cancel: func() {}}
	s.r = bufio.NewReaderSize(s.body, 16<<10)
	if err := s.initialResponse(); err != nil {
		t.Fatal(err)
	}
	var b Buffers
	_, recs, ok, err := s.Next(&b, nil)
	if !ok || err != nil || len(recs) != 1 || len(recs[0].Data) != 10<<20 {
		t.Fatalf("huge event: ok %t, err %v, %d records", ok, err, len(recs))
	}
	held := func() int { return cap(b.frame) + cap(b.dec.scratch) + cap(b.dec.arena) }
	if held() < 20<<20 {
		t.Fatalf("after a 10 MiB event the buffers hold %d bytes; the test expects the frame and the scratch to have grown", held())
	}
	for range reuse.ShrinkAfter {
		if _, recs, ok, err = s.Next(&b, recs[:0]); !ok || err != nil {
			t.Fatalf("small event: ok %t, err %v", ok, err)
		}
	}
	if got := held(); got > 2*reuse.KeepBytes {
		t.Fatalf("after %d small events the buffers still hold %d bytes", reuse.ShrinkAfter, got)
	}
}

// The records of one event stay as they were while the next event is read
// and decoded into other buffers: the shard loop reads one event ahead.
func TestSubscriptionKeepsAnEventWhileTheNextIsRead(t *testing.T) {
	var body bytes.Buffer
	body.Write(initialFrame(t))
	fill := func(c byte) func(int) []byte { return func(int) []byte { return bytes.Repeat([]byte{c}, 1000) } }
	for i, c := range []byte("abc") {
		body.Write(eventFrame(t, eventJSON(3, fmt.Sprintf("c%d", i), fill(c))))
	}
	s := &Subscription{body: io.NopCloser(&body), codec: awsjson.New11(schemas.Kinesis_20131202), cancel: func() {}}
	s.r = bufio.NewReaderSize(s.body, 16<<10)
	if err := s.initialResponse(); err != nil {
		t.Fatal(err)
	}
	var b1, b2 Buffers
	_, first, ok, err := s.Next(&b1, nil)
	if !ok || err != nil {
		t.Fatalf("first event: ok %t, err %v", ok, err)
	}
	if _, second, ok, err := s.Next(&b2, nil); !ok || err != nil || string(second[0].Data[:1]) != "b" {
		t.Fatalf("second event: ok %t, err %v", ok, err)
	}
	for _, r := range first {
		if !bytes.Equal(r.Data, bytes.Repeat([]byte{'a'}, 1000)) || r.PartitionKey == "" {
			t.Fatalf("the first event's record changed while the second was read: %.20q key %q", r.Data, r.PartitionKey)
		}
	}
}
