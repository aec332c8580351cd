package emulator

import (
	"bytes"
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// The benchmarks below measure one SubscribeToShard subscription made with
// the official SDK over HTTP/2 and TLS: the path fanoutd reads through. The
// subscribe helper bounds a subscription by a 30s context, so a run with a
// -benchtime long enough to pass it ends with the stream's error.

const benchStream = "bench"

// benchOptions are AWS's limits without the waits that only slow a
// benchmark's setup (consumer activation, takeover and subscribe rate).
func benchOptions() Options {
	return Options{ConsumerActivationDelay: -1, TakeoverGrace: -1, SubscribeRate: -1}
}

// benchSubscription starts an emulator with opts and a one-shard stream,
// registers a consumer through the SDK and subscribes it to the shard.
func benchSubscription(b *testing.B, opts Options, pos types.StartingPosition) (*Server, *sub) {
	b.Helper()
	s := startEmulator(b, opts)
	if err := s.CreateStream(benchStream, 1); err != nil {
		b.Fatalf("create stream: %v", err)
	}
	c := newClient(b, s)
	arn := activeConsumer(b, c, s, benchStream, "bench")
	sb := mustSubscribe(b, c, arn, ShardID(0), pos)
	if s.ProtocolCounts()["HTTP/2.0"] == 0 {
		b.Fatalf("the SDK did not use HTTP/2: %v", s.ProtocolCounts())
	}
	return s, sb
}

// arrival is one event as the subscriber received it.
type arrival struct {
	at      time.Time
	records []types.Record
}

// watchArrivals reads sb's events on a goroutine of its own and stamps each
// with the time it came out of the SDK, so that a put still waiting for its
// response does not delay the stamp.
func watchArrivals(b *testing.B, sb *sub) <-chan arrival {
	ch := make(chan arrival, 64)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(ch)
		for ev := range sb.stream.Events() {
			at := time.Now()
			e, ok := ev.(*types.SubscribeToShardEventStreamMemberSubscribeToShardEvent)
			if !ok {
				continue
			}
			select {
			case ch <- arrival{at: at, records: e.Value.Records}:
			case <-done:
				return
			}
		}
	})
	b.Cleanup(func() {
		close(done)
		sb.stream.Close()
		wg.Wait()
	})
	return ch
}

// BenchmarkPutToSubscriber measures the latency from a producer's PutRecord
// call, made with the SDK on a connection of its own as another program's
// would be, to the arrival of the event carrying that record at a
// subscriber. One op is one record: put, then wait for it.
func BenchmarkPutToSubscriber(b *testing.B) {
	s, sb := benchSubscription(b, benchOptions(), types.StartingPosition{Type: types.ShardIteratorTypeLatest})
	arrivals := watchArrivals(b, sb)
	producer := newClient(b, s)
	ctx := b.Context()
	data := bytes.Repeat([]byte{'p'}, 100)
	in := &kinesis.PutRecordInput{StreamName: aws.String(benchStream), PartitionKey: aws.String("key"), Data: data}
	lat := make([]time.Duration, 0, 4096)

	for b.Loop() {
		start := time.Now()
		out, err := producer.PutRecord(ctx, in)
		if err != nil {
			b.Fatalf("put record: %v", err)
		}
		seq := aws.ToString(out.SequenceNumber)
		for found := false; !found; {
			select {
			case a, ok := <-arrivals:
				if !ok {
					b.Fatalf("subscription ended: %v", sb.stream.Err())
				}
				for _, r := range a.records {
					if aws.ToString(r.SequenceNumber) == seq {
						lat = append(lat, a.at.Sub(start))
						found = true
					}
				}
			case <-time.After(10 * time.Second):
				b.Fatalf("record %s not delivered within 10s", seq)
			}
		}
	}
	reportLatency(b, lat)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// reportLatency reports the median, 99th percentile and mean of lat in µs.
func reportLatency(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	var sum time.Duration
	for _, d := range lat {
		sum += d
	}
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	b.ReportMetric(us(lat[len(lat)/2]), "p50-µs")
	b.ReportMetric(us(lat[min(len(lat)-1, len(lat)*99/100)]), "p99-µs")
	b.ReportMetric(us(sum/time.Duration(len(lat))), "mean-µs")
}

// BenchmarkSubscribeThroughput measures how fast one subscription delivers
// records of 100 bytes when a producer keeps the shard ahead of the
// subscriber. One op is one record received.
//
// unlimited turns the read limit off, so the figure is what the emulator's
// encoder, TLS, HTTP/2 and the SDK's decoder manage together on this
// machine (the producer goroutine shares it). 2MiBps is AWS's limit of
// 2 MiB/s per shard per consumer; the emulator lets a subscription burst
// 11 MiB first, which the setup spends on filler records before the clock
// starts, so the figure is the steady rate.
func BenchmarkSubscribeThroughput(b *testing.B) {
	for _, bm := range []struct {
		name       string
		throughput int
		lead       int // how many records the producer keeps ahead of the subscriber
	}{
		// 20,000 lets the emulator fill two events of 10,000 records.
		{"unlimited", -1, 20000},
		// Events of at most 1,000 records (~48ms of the limit each) keep the
		// step by which records arrive small against the run time.
		{"2MiBps", 0, 1000},
	} {
		b.Run(bm.name, func(b *testing.B) {
			opts := benchOptions()
			opts.ReadThroughput = bm.throughput
			s, sb := benchSubscription(b, opts, types.StartingPosition{Type: types.ShardIteratorTypeTrimHorizon})
			events := sb.stream.Events()
			next := func() []types.Record {
				select {
				case ev, ok := <-events:
					if !ok {
						b.Fatalf("subscription ended: %v", sb.stream.Err())
					}
					e, isEvent := ev.(*types.SubscribeToShardEventStreamMemberSubscribeToShardEvent)
					if !isEvent {
						b.Fatalf("unexpected event type %T", ev)
					}
					return e.Value.Records
				case <-time.After(30 * time.Second):
					b.Fatal("no event within 30s")
					return nil
				}
			}
			if bm.throughput >= 0 {
				drainBurst(b, s, next)
			}

			const recordSize = 100
			var consumed atomic.Int64
			more := make(chan struct{}, 1)
			startProducer(b, s, bytes.Repeat([]byte{'r'}, recordSize), bm.lead, &consumed, more)

			var nEvents, left int
			b.SetBytes(recordSize)
			b.ReportAllocs()
			for b.Loop() {
				for left == 0 {
					left = len(next())
					nEvents++
					consumed.Add(int64(left))
					select {
					case more <- struct{}{}:
					default:
					}
				}
				left--
			}
			sec := b.Elapsed().Seconds()
			b.ReportMetric(float64(b.N)/sec, "records/s")
			b.ReportMetric(float64(nEvents)/sec, "events/s")
		})
	}
}

// drainBurst spends the emulator's 11 MiB read burst on records of almost
// 1 MiB, one per event, until the limiter has held some back: 16 MiB leaves
// the bucket empty as long as the unlimited path runs above 6.4 MiB/s.
func drainBurst(b *testing.B, s *Server, next func() []types.Record) {
	b.Helper()
	const fillers = 16
	filler := bytes.Repeat([]byte{'f'}, 1<<20-64) // with its key, too big to share an event
	for range fillers {
		if _, _, err := s.PutRecord(benchStream, "filler", filler); err != nil {
			b.Fatalf("put filler: %v", err)
		}
	}
	for got := 0; got < fillers; {
		got += len(next())
	}
}

// startProducer puts records of data with the Go API, in batches of 500,
// keeping at most lead records more than the subscriber consumed; the
// subscriber signals more after each event. It stops at the end of the
// benchmark.
func startProducer(b *testing.B, s *Server, data []byte, lead int, consumed *atomic.Int64, more <-chan struct{}) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		var put int64
		for ctx.Err() == nil {
			if put-consumed.Load() >= int64(lead) {
				select {
				case <-more:
				case <-ctx.Done():
				}
				continue
			}
			for range min(500, lead) {
				if _, _, err := s.PutRecord(benchStream, "key", data); err != nil {
					b.Errorf("put record: %v", err)
					return
				}
			}
			put += int64(min(500, lead))
		}
	})
	b.Cleanup(func() {
		cancel()
		wg.Wait()
	})
}
