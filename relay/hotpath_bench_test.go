package relay

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/fanoutd/fanoutd/fanout"
	"github.com/fanoutd/fanoutd/kpl"
	"github.com/fanoutd/fanoutd/record"
)

// The daemon's hot path, from one SubscribeToShardEvent as the SDK hands it
// over to NATS confirming its records: fanout.DecodeEvent, then
// Publisher.Handle, as fanout's shard loop calls them.

const (
	hotPathRecords    = 100 // user records per event
	hotPathRecordSize = 100 // bytes of data per user record
	hotPathKeys       = 10  // distinct partition keys, so 10 subjects
)

// hotPathEvent builds an event of 100 user records of 100 bytes. Plain, it
// holds 100 Kinesis records; aggregated, 10 Kinesis records each holding a
// KPL aggregate of 10 user records.
func hotPathEvent(aggregated bool) *types.SubscribeToShardEvent {
	arrival := time.Date(2026, 1, 2, 3, 4, 5, 6_000_000, time.UTC)
	user := make([]record.Record, hotPathRecords)
	for i := range user {
		user[i] = record.Record{
			Data:         bytes.Repeat([]byte{byte('a' + i%26)}, hotPathRecordSize),
			PartitionKey: fmt.Sprintf("user-%d", i%hotPathKeys),
		}
	}
	ev := &types.SubscribeToShardEvent{
		ContinuationSequenceNumber: aws.String(fmt.Sprintf("4959%052d", len(user))),
		MillisBehindLatest:         aws.Int64(0),
	}
	add := func(data []byte, pk string) {
		ev.Records = append(ev.Records, types.Record{
			Data:                        data,
			PartitionKey:                aws.String(pk),
			SequenceNumber:              aws.String(fmt.Sprintf("4959%052d", len(ev.Records))),
			ApproximateArrivalTimestamp: aws.Time(arrival),
		})
	}
	if !aggregated {
		for _, r := range user {
			add(r.Data, r.PartitionKey)
		}
		return ev
	}
	const perAggregate = 10
	for i := 0; i < len(user); i += perAggregate {
		add(kpl.Aggregate(user[i:i+perAggregate]), user[i].PartitionKey)
	}
	return ev
}

var hotPathEvents = []struct {
	name       string
	aggregated bool
}{
	{"plain", false},
	{"kpl", true},
}

// BenchmarkDecodeEvent measures fanout.DecodeEvent alone: one op turns one
// event into its 100 user records.
func BenchmarkDecodeEvent(b *testing.B) {
	for _, e := range hotPathEvents {
		b.Run(e.name, func(b *testing.B) {
			ev := hotPathEvent(e.aggregated)
			recs := make([]record.Record, 0, hotPathRecords)
			b.ReportAllocs()
			for b.Loop() {
				recs = fanout.DecodeEvent(recs[:0], ev)
			}
			if len(recs) != hotPathRecords {
				b.Fatalf("decoded %d records, want %d", len(recs), hotPathRecords)
			}
			b.ReportMetric(float64(b.N*hotPathRecords)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// BenchmarkHotPath measures one event going from DecodeEvent to a confirmed
// batch on an embedded nats-server: core NATS (confirmed by a flush, with no
// subscriber, so the server discards the messages) or JetStream with file
// storage (every message stored and acknowledged). One op is one event of
// 100 user records. The stream does not take batches: "jetstream" finds out
// with its first batch (see fastbatch.go), "jetstream-nobatch" is told so
// (Options.NoBatchPublish), as after a reload found the stream without
// allow_batched.
func BenchmarkHotPath(b *testing.B) {
	for _, mode := range []string{"core", "jetstream", "jetstream-nobatch"} {
		for _, e := range hotPathEvents {
			b.Run(mode+"/"+e.name, func(b *testing.B) {
				benchmarkHotPath(b, mode != "core", mode == "jetstream-nobatch", e.aggregated)
			})
		}
	}
}

func benchmarkHotPath(b *testing.B, js, noBatch, aggregated bool) {
	s := startServer(b, testServerConfig{JetStream: js})
	if js {
		// Bounded, so that a long run does not fill the disk.
		createStream(b, s, jetstream.StreamConfig{Subjects: []string{"kinesis.>"}, Storage: jetstream.FileStorage,
			MaxBytes: 512 << 20, Discard: jetstream.DiscardOld})
	}
	// As the daemon publishes: on the direct connection.
	direct := s.natsConfig()
	p, err := NewPublisher(s.connect(b), SubjectRoutes(testTemplates(b)), Options{JetStream: js, NoBatchPublish: noBatch, Direct: &direct, Log: zerolog.Nop()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(p.Close)
	waitDirect(b, p)
	ev := hotPathEvent(aggregated)
	batch := &record.Batch{Stream: testStream, ShardID: "shardId-000000000000", Consumer: "fanoutd"}
	// The event is the same every time, and so would its Nats-Msg-Ids be:
	// JetStream would store it once and then only count duplicates. A shard
	// ID per op keeps the ids apart; the strings are made before the clock
	// starts, since the daemon does not make them.
	var shardIDs []string
	if js {
		shardIDs = make([]string, b.N)
		for i := range shardIDs {
			shardIDs[i] = fmt.Sprintf("shardId-%012d", i)
		}
	}
	recs := make([]record.Record, 0, hotPathRecords)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		recs = fanout.DecodeEvent(recs[:0], ev)
		batch.Records = recs
		batch.ContinuationSequenceNumber = aws.ToString(ev.ContinuationSequenceNumber)
		if js {
			batch.ShardID = shardIDs[i]
		}
		if err := p.Handle(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if got, want := p.Stats().Published, uint64(b.N*hotPathRecords); got != want {
		b.Fatalf("published %d records, want %d", got, want)
	}
	if d := p.Stats().Duplicates; d != 0 {
		b.Fatalf("JetStream saw %d duplicates", d)
	}
	b.ReportMetric(float64(b.N*hotPathRecords)/b.Elapsed().Seconds(), "records/s")
}
