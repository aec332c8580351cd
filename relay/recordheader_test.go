package relay

import (
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/fanoutd/fanoutd/record"
)

// recordHeader, reused across records of every shape (and across a dead
// letter, which replaces value slices), holds exactly what RecordHeader
// returns for each.
func TestRecordHeaderReusedMatchesNew(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	rh := newRecordHeader()
	batches := []*record.Batch{{Stream: "orders", ShardID: "shardId-000000000001"}, {Stream: "clicks", ShardID: "shardId-000000000002"},
		{Stream: "é", ShardID: " shard "}}
	for i := range 2000 {
		b := batches[i/10%len(batches)]
		rec := &record.Record{PartitionKey: []string{"k", "a b", " lead", "é", "100%", strings.Repeat("é", 100)}[rng.IntN(6)],
			SequenceNumber: "4959" + string(rune('0'+i%10))}
		if rng.IntN(2) == 0 {
			rec.Aggregated, rec.SubSequenceNumber = true, rng.Int64N(1000)
		}
		if rng.IntN(3) == 0 {
			rec.ExplicitHashKey = "340282366920938463463374607431768211455"
		}
		if rng.IntN(4) != 0 {
			rec.ArrivalTime = time.UnixMilli(1700000000000 + rng.Int64N(1e9))
		}
		rh.set(b, rec)
		if want := headerOf(b, rec); !reflect.DeepEqual(map[string][]string(rh.h), map[string][]string(want)) {
			t.Fatalf("record %d:\n got %v\nwant %v", i, rh.h, want)
		}
		if got, want := rh.encodedLen(), messageSize(&nats.Msg{Header: rh.h}); got != want {
			t.Fatalf("record %d: encodedLen %d, nats.go encodes %d bytes", i, got, want)
		}
		if h, got := RecordHeader(b, rec); got != messageSize(&nats.Msg{Header: h}) {
			t.Fatalf("record %d: recordHeaderSized %d, nats.go encodes %d bytes", i, got, messageSize(&nats.Msg{Header: h}))
		}
		if rng.IntN(10) == 0 { // the dead-letter path, then the next record
			m := &nats.Msg{Subject: "kinesis.orders", Header: rh.h}
			makeDeadLetter(m, "fanoutd.deadletter.orders", "test")
			rh.restore()
		}
	}
}

// headerOf is RecordHeader without the size.
func headerOf(b *record.Batch, rec *record.Record) nats.Header {
	h, _ := RecordHeader(b, rec)
	return h
}
