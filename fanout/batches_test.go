package fanout

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/rs/zerolog"

	"github.com/fanoutd/fanoutd/internal/testutil"
	"github.com/fanoutd/fanoutd/internal/testutil/emutest"
	"github.com/fanoutd/fanoutd/kpl"
	"github.com/fanoutd/fanoutd/record"
)

// batchSizes wraps a recorder and notes the size of every batch handed over.
type batchSizes struct {
	*recorder
	mu         sync.Mutex
	maxRecords int
	maxBytes   int // of a batch of more than one record
	batches    int
}

func (b *batchSizes) Handle(ctx context.Context, batch *record.Batch) error {
	size := 0
	for i := range batch.Records {
		size += batch.Records[i].Size()
	}
	b.mu.Lock()
	b.batches++
	b.maxRecords = max(b.maxRecords, len(batch.Records))
	if len(batch.Records) > 1 {
		b.maxBytes = max(b.maxBytes, size)
	}
	b.mu.Unlock()
	return b.recorder.Handle(ctx, batch)
}

// KPL aggregates are split as they are handed over: a batch holds at most
// record.MaxBatchRecords records and record.MaxBatchBytes bytes (a record
// larger than that alone), whatever the aggregates hold, and every user
// record arrives once, in order, with its sub-sequence number.
func TestAggregatesHandedOverInBoundedBatches(t *testing.T) {
	t.Parallel()
	for _, spec := range []StreamSpec{{Name: "s"}, pollingSpec("s")} {
		t.Run(string(cmp.Or(spec.Read, ReadEFO)), func(t *testing.T) {
			t.Parallel()
			aggregatesInBoundedBatches(t, spec)
		})
	}
}

func aggregatesInBoundedBatches(t *testing.T, spec StreamSpec) {
	h := newHarness(t, emutest.Options())
	if err := h.emu.CreateStream("s", 1); err != nil {
		t.Fatal(err)
	}
	if _, err := h.kc.UpdateMaxRecordSize(t.Context(), &kinesis.UpdateMaxRecordSizeInput{
		StreamARN: aws.String(h.emu.StreamARN("s")), MaxRecordSizeInKiB: aws.Int32(10240)}); err != nil {
		t.Fatal(err)
	}
	// 200 000 empty user records, then five of 1.5 MiB, then a plain one.
	const empties, bigs, big = 200_000, 5, 3 << 19
	small := make([]record.Record, empties)
	for i := range small {
		small[i] = record.Record{PartitionKey: "k"}
	}
	large := make([]record.Record, bigs)
	for i := range large {
		large[i] = record.Record{PartitionKey: "k", Data: bytes.Repeat([]byte{byte('a' + i)}, big)}
	}
	for _, data := range [][]byte{kpl.Aggregate(small), kpl.Aggregate(large), []byte("plain")} {
		if _, _, err := h.emu.PutRecord("s", "k", data); err != nil {
			t.Fatal(err)
		}
	}
	sizes := &batchSizes{recorder: h.rec}
	c := NewStreamConsumer(spec, Options{Client: h.kc, Checkpoints: h.store, Handler: sizes, Timers: fastTimers(), Log: zerolog.Nop()})
	h.start(c)
	const total = empties + bigs + 1
	testutil.WaitFor(t, 60*time.Second, fmt.Sprintf("%d records", total), func() bool { return h.rec.count() >= total })
	recs := h.rec.all()
	if len(recs) != total {
		t.Fatalf("%d records, want %d", len(recs), total)
	}
	for i, r := range recs[:empties] {
		if r.SubSequenceNumber != int64(i) || len(r.Data) != 0 || !r.Aggregated {
			t.Fatalf("record %d: sub-sequence %d, %d bytes, aggregated %t", i, r.SubSequenceNumber, len(r.Data), r.Aggregated)
		}
	}
	for i, r := range recs[empties : empties+bigs] {
		if r.SubSequenceNumber != int64(i) || !bytes.Equal(r.Data, large[i].Data) {
			t.Fatalf("large record %d: sub-sequence %d, %d bytes", i, r.SubSequenceNumber, len(r.Data))
		}
	}
	if r := recs[total-1]; string(r.Data) != "plain" || r.Aggregated {
		t.Fatalf("last record %+v", r)
	}
	sizes.mu.Lock()
	defer sizes.mu.Unlock()
	t.Logf("%d batches, largest %d records, %d bytes (of several records)", sizes.batches, sizes.maxRecords, sizes.maxBytes)
	if sizes.maxRecords > record.MaxBatchRecords {
		t.Errorf("a batch of %d records, want at most %d", sizes.maxRecords, record.MaxBatchRecords)
	}
	if sizes.maxBytes > record.MaxBatchBytes {
		t.Errorf("a batch of several records with %d bytes, want at most %d", sizes.maxBytes, record.MaxBatchBytes)
	}
}

// testLeases hands out one lease per shard whose validity the test sets.
type testLeases struct{ lease *testLease }

func (l *testLeases) Claim(context.Context, string, string, string) (Lease, error) {
	return l.lease, nil
}
func (l *testLeases) SetShards(string, string, int) {}
func (l *testLeases) Wake() <-chan struct{}         { return nil }

type testLease struct {
	valid atomic.Bool
	done  chan struct{}
}

func (l *testLease) Done() <-chan struct{}     { return l.done }
func (l *testLease) Lost() bool                { return false }
func (l *testLease) Valid() bool               { return l.valid.Load() }
func (l *testLease) Release(_ context.Context) {}

// A shard whose lease is not valid (its process was paused past it, or
// renewals failed) publishes nothing until the lease is valid again.
func TestNothingPublishedWithoutAValidLease(t *testing.T) {
	t.Parallel()
	h := newHarness(t, emutest.Options())
	if err := h.emu.CreateStream("s", 1); err != nil {
		t.Fatal(err)
	}
	ks := keys(2)
	h.put("s", ks, 0, 5)
	lease := &testLease{done: make(chan struct{})}
	c := NewStreamConsumer(StreamSpec{Name: "s"}, Options{Client: h.kc, Checkpoints: h.store, Handler: h.rec, Timers: fastTimers(), Log: zerolog.Nop(),
		Leases: &testLeases{lease: lease}})
	h.start(c)
	// The shard loop read the event and refused to hand it over.
	testutil.WaitFor(t, 10*time.Second, "a subscription ended by the handler", func() bool {
		for _, s := range c.Shards() {
			if s.Ends[endHandler.String()] > 0 {
				return true
			}
		}
		return false
	})
	if n := h.rec.count(); n != 0 {
		t.Fatalf("%d records published under a lease that is not valid", n)
	}
	lease.valid.Store(true)
	testutil.WaitFor(t, 10*time.Second, "10 records", func() bool { return h.rec.count() >= 10 })
	checkExactlyInOrder(t, h.rec.all(), ks, 5)
}
