package relay

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/fanoutd/fanoutd/record"
)

// objectTestMaxPayload is above the Object Store's 128 KiB chunks and
// below the large records of the tests.
const objectTestMaxPayload = 256 << 10

// testObjectBucket is the bucket of the large-record tests.
const testObjectBucket = "FANOUTD_RECORDS"

func objectBucket(t *testing.T, s *testServer) jetstream.ObjectStore {
	t.Helper()
	js, err := jetstream.New(s.connect(t))
	if err != nil {
		t.Fatal(err)
	}
	obs, err := js.CreateObjectStore(context.Background(), jetstream.ObjectStoreConfig{Bucket: testObjectBucket, Replicas: 1, TTL: time.Hour})
	if err != nil {
		t.Fatalf("create the Object Store bucket: %v", err)
	}
	return obs
}

func largeData(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) + seed
	}
	return b
}

func sha256Digest(data []byte) string {
	sum := sha256.Sum256(data)
	return "SHA-256=" + base64.URLEncoding.EncodeToString(sum[:])
}

// A record over max_payload is put into the Object Store and a reference
// message takes its place, in order, with the Kinesis headers and the
// Fanoutd-Object-* headers; the object is the record byte for byte. A replay
// finds the object whole and publishes the same reference (deduplicated in
// JetStream mode).
func TestHandleLargeRecordObjectStore(t *testing.T) {
	t.Parallel()
	for _, mode := range []struct{ js, batched bool }{{false, false}, {true, false}, {true, true}} {
		js := mode.js
		t.Run(fmt.Sprintf("jetstream=%t,batched=%t", js, mode.batched), func(t *testing.T) {
			s := startServer(t, testServerConfig{JetStream: true, MaxPayload: objectTestMaxPayload})
			var st jetstream.Stream
			if js {
				st = createStream(t, s, jetstream.StreamConfig{AllowBatchPublish: mode.batched})
			}
			obs := objectBucket(t, s)
			var puts atomic.Int64
			// As the daemon does: batches only into a stream that allows them.
			p := newTestPublisher(t, s.connect(t), Options{JetStream: js, NoBatchPublish: !mode.batched, Oversize: OversizeObjectStore, Objects: obs, ObjectBucket: testObjectBucket,
				ObserveObject: func(stream string, n int, d time.Duration, err error) {
					if stream == testStream && err == nil {
						puts.Add(1)
					}
				}})
			nc, sub := subscribe(t, s, "kinesis.>")
			b := testBatch(4)
			big := largeData(600<<10, 1)
			b.Records[1].Data = big // a KPL sub-record: its sub-sequence names the object
			if err := p.Handle(context.Background(), b); err != nil {
				t.Fatalf("Handle: %v", err)
			}
			msgs := receiveExactly(t, nc, sub, 4)
			for i, m := range msgs {
				if got, want := m.Header.Get(HeaderSequenceNumber), b.Records[i].SequenceNumber; got != want {
					t.Fatalf("message %d: sequence %s, want %s (order)", i, got, want)
				}
				if i != 1 && (!bytes.Equal(m.Data, b.Records[i].Data) || m.Header.Get(HeaderObjectName) != "") {
					t.Fatalf("message %d: %q with headers %v, want the record itself", i, m.Data, m.Header)
				}
			}
			ref := msgs[1]
			name := ObjectName(testStream, b.ShardID, b.Records[1].SequenceNumber, 0)
			for k, want := range map[string]string{
				HeaderObjectBucket: testObjectBucket, HeaderObjectName: name, HeaderObjectSize: strconv.Itoa(len(big)),
				HeaderObjectDigest: sha256Digest(big), HeaderSubSequenceNumber: "0", nats.MsgIdHdr: MsgID(testStream, b.ShardID, "49590000001", 0),
			} {
				if got := ref.Header.Get(k); got != want {
					t.Fatalf("reference %s = %q, want %q", k, got, want)
				}
			}
			if len(ref.Data) != 0 || ref.Subject != wantSubject(b, &b.Records[1]) {
				t.Fatalf("reference on %s with %d bytes, want %s and no data", ref.Subject, len(ref.Data), wantSubject(b, &b.Records[1]))
			}
			res, err := obs.Get(context.Background(), name)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(res)
			if err != nil || !bytes.Equal(got, big) {
				t.Fatalf("object: %d bytes, %v; want the record's %d bytes", len(got), err, len(big))
			}
			info, _ := res.Info()
			if info.Headers.Get(HeaderSequenceNumber) != "49590000001" {
				t.Fatalf("object headers %v, want the Kinesis headers", info.Headers)
			}

			// The replay: the object is found whole, not put again.
			if err := p.Handle(context.Background(), b); err != nil {
				t.Fatalf("replay: %v", err)
			}
			again := receiveExactly(t, nc, sub, 4)
			if again[1].Header.Get(HeaderObjectDigest) != sha256Digest(big) || again[1].Header.Get(nats.MsgIdHdr) != ref.Header.Get(nats.MsgIdHdr) {
				t.Fatalf("replayed reference headers %v", again[1].Header)
			}
			os := p.ObjectStats()
			if os.Stored != 2 || os.Bytes != 2*uint64(len(big)) || os.Reused != 1 || os.Failures != 0 || puts.Load() != 2 {
				t.Fatalf("ObjectStats() = %+v, observed puts %d; want 2 stored, 1 reused, 2 observed", os, puts.Load())
			}
			if ss := p.StreamStats()[testStream]; ss.Objects != 2 || ss.Published != 8 || ss.DeadLettered != 0 {
				t.Fatalf("StreamStats() = %+v", ss)
			}
			if js {
				if n := len(streamMsgs(t, st)); n != 4 {
					t.Fatalf("stream holds %d messages, want 4 (the replay deduplicated)", n)
				}
				// A batch ends before the record stored as an object: the
				// first record goes by batch (its duplicate, on the replay,
				// dropped without a word), the rest one by one.
				if got := p.Stats(); mode.batched && (got.Batched != 2 || got.Duplicates != 3) || !mode.batched && (got.Batched != 0 || got.Duplicates != 4) {
					t.Fatalf("Stats() = %+v, want 2 batched and 3 duplicates counted, else none batched and 4 duplicates", got)
				}
			}
		})
	}
}

// failingObjects is an Object Store whose puts fail, or stop half-way.
type failingObjects struct {
	ObjectStore
	err error
}

func (f failingObjects) Put(ctx context.Context, meta jetstream.ObjectMeta, r io.Reader) (*jetstream.ObjectInfo, error) {
	return nil, f.err
}

// A failed put fails the batch before its reference is published: no
// reference ever points at a missing object, and the failure is counted.
func TestHandleLargeRecordPutFails(t *testing.T) {
	t.Parallel()
	for _, js := range []bool{false, true} {
		t.Run(fmt.Sprintf("jetstream=%t", js), func(t *testing.T) {
			s := startServer(t, testServerConfig{JetStream: true, MaxPayload: objectTestMaxPayload})
			var st jetstream.Stream
			if js {
				st = createStream(t, s, jetstream.StreamConfig{})
			}
			obs := failingObjects{ObjectStore: objectBucket(t, s), err: errors.New("injected put failure")}
			p := newTestPublisher(t, s.connect(t), Options{JetStream: js, Oversize: OversizeObjectStore, Objects: obs, ObjectBucket: testObjectBucket})
			nc, sub := subscribe(t, s, ">")
			b := &record.Batch{Stream: testStream, ShardID: "shardId-000000000000", Records: []record.Record{
				{Data: []byte("small"), PartitionKey: "k", SequenceNumber: "1"},
				{Data: largeData(300<<10, 2), PartitionKey: "k", SequenceNumber: "2"},
			}}
			err := p.Handle(context.Background(), b)
			if err == nil || !errors.Is(err, obs.err) {
				t.Fatalf("Handle: %v, want the put's error", err)
			}
			if err := nc.Flush(); err != nil {
				t.Fatal(err)
			}
			for {
				m, err := sub.NextMsg(200 * time.Millisecond)
				if err != nil {
					break
				}
				if m.Header.Get(HeaderObjectName) != "" || m.Header.Get(HeaderSequenceNumber) == "2" {
					t.Fatalf("a message for the record whose put failed: %s %v", m.Subject, m.Header)
				}
			}
			if js {
				for _, m := range streamMsgs(t, st) {
					if m.Header.Get(HeaderSequenceNumber) == "2" {
						t.Fatalf("JetStream stored a message for the record whose put failed: %v", m.Header)
					}
				}
			}
			if f := p.ObjectStats().Failures; f != 1 {
				t.Fatalf("Failures = %d, want 1", f)
			}
		})
	}
}
