package efostream

import (
	"bufio"
	"bytes"
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
	_, recs, ok, err := s.Next(nil)
	if !ok || err != nil || len(recs) != 1 || len(recs[0].Data) != 10<<20 {
		t.Fatalf("huge event: ok %t, err %v, %d records", ok, err, len(recs))
	}
	held := func() int { return cap(s.frame) + cap(s.dec.scratch) + cap(s.dec.arena) }
	if held() < 20<<20 {
		t.Fatalf("after a 10 MiB event the buffers hold %d bytes; the test expects the frame and the scratch to have grown", held())
	}
	for range reuse.ShrinkAfter {
		if _, recs, ok, err = s.Next(recs[:0]); !ok || err != nil {
			t.Fatalf("small event: ok %t, err %v", ok, err)
		}
	}
	if got := held(); got > 2*reuse.KeepBytes {
		t.Fatalf("after %d small events the buffers still hold %d bytes", reuse.ShrinkAfter, got)
	}
}
