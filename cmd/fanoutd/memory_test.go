package main

import (
	"context"
	"crypto/md5"
	"fmt"
	"math/big"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/fanoutd/fanoutd/internal/testutil/emutest"

	"github.com/fanoutd/fanoutd/internal/testutil"
	"github.com/fanoutd/fanoutd/kpl"
	"github.com/fanoutd/fanoutd/record"
)

// Three 1 MiB KPL aggregates of 80 000 tiny user records each, one per
// shard at the same time, amid normal traffic: every user record is
// delivered (exactly once with JetStream, at least once in core mode) and
// the daemon's memory stays bounded, because a batch is published and
// confirmed in chunks. The daemon's Go heap and RSS are sampled from its
// own /metrics and reported; the heap is asserted under 128 MiB, the RSS
// too when the race detector (which inflates it) is off.
func TestMemoryBoundedWithHugeAggregates(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: 240 000 user records through the daemon as a process (run without -short)")
	}
	for _, js := range []bool{false, true} {
		t.Run(fmt.Sprintf("jetstream=%t", js), func(t *testing.T) {
			f := newFaultEnv(t, js)
			f.startDaemon()
			f.Produce()
			f.waitProgress(100)

			mem := sampleMemory(f)
			const aggs, perAgg = 3, 80_000
			third := new(big.Int).Div(new(big.Int).Lsh(big.NewInt(1), 128), big.NewInt(3))
			for a := range aggs {
				recs := make([]record.Record, perAgg)
				key := fmt.Sprintf("agg%d", a)
				for i := range recs {
					recs[i] = record.Record{PartitionKey: key, Data: fmt.Appendf(nil, "%c%d", 'a'+a, i)}
				}
				data := kpl.Aggregate(recs)
				if len(data) > 1<<20 {
					t.Fatalf("aggregate of %d bytes", len(data))
				}
				hashKey := new(big.Int).Add(new(big.Int).Mul(third, big.NewInt(int64(a))), big.NewInt(1)).String()
				if _, _, err := f.e.Emu.PutRecordHashKey("s", key, hashKey, data); err != nil {
					t.Fatal(err)
				}
			}
			f.Add("", aggs*perAgg)
			// Normal traffic goes on for a while, then everything must arrive.
			f.waitProgress(200)
			total := f.StopProducing()
			testutil.WaitFor(t, 120*time.Second, fmt.Sprintf("all %d records delivered", total), func() bool { return f.delivered() >= total })
			before, peakHeap, peakRSS := mem()
			if js {
				if got := f.delivered(); got != total {
					t.Fatalf("JetStream holds %d messages, want exactly %d", got, total)
				}
			}
			t.Logf("daemon relaying %d aggregates of %d user records amid %d other records (jetstream=%t, race=%t): Go heap in use %.1f MiB before, peak %.1f MiB; peak RSS %.1f MiB",
				aggs, perAgg, total-aggs*perAgg, js, raceEnabled, before/mib, peakHeap/mib, peakRSS/mib)
			if peakHeap >= 128*mib {
				t.Fatalf("peak Go heap %.1f MiB, want under 128 MiB", peakHeap/mib)
			}
			if !raceEnabled && peakRSS >= 128*mib {
				t.Fatalf("peak RSS %.1f MiB, want under 128 MiB", peakRSS/mib)
			}
		})
	}
}

const mib = 1 << 20

// sampleMemory samples the daemon's Go heap and RSS from its /metrics until
// the returned function is called, which returns the heap before, and the
// peaks of both.
func sampleMemory(f *faultEnv) func() (before, peakHeap, peakRSS float64) {
	const heap, rss = "go_memstats_heap_inuse_bytes", "process_resident_memory_bytes"
	var mu sync.Mutex
	peakHeap, peakRSS := f.metric(heap), f.metric(rss)
	before := peakHeap
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond): // sampling interval, not synchronisation
			}
			h, r := f.metric(heap), f.metric(rss)
			mu.Lock()
			peakHeap, peakRSS = max(peakHeap, h), max(peakRSS, r)
			mu.Unlock()
		}
	}()
	return func() (float64, float64, float64) {
		close(stop)
		<-sampled
		mu.Lock()
		defer mu.Unlock()
		return before, peakHeap, peakRSS
	}
}

// emptyAggregate is a KPL aggregate of n empty user records, all with
// partition key pk: 6 bytes each, about 1.75 million in 10 MiB.
func emptyAggregate(pk string, n int) []byte {
	var body []byte
	body = protowire.AppendTag(body, 1, protowire.BytesType)
	body = protowire.AppendString(body, pk)
	rec := protowire.AppendTag(nil, 1, protowire.VarintType)
	rec = protowire.AppendVarint(rec, 0)
	rec = protowire.AppendTag(rec, 3, protowire.BytesType)
	rec = protowire.AppendBytes(rec, nil)
	one := protowire.AppendTag(nil, 3, protowire.BytesType)
	one = protowire.AppendBytes(one, rec)
	body = slices.Grow(body, n*len(one))
	for range n {
		body = append(body, one...)
	}
	sum := md5.Sum(body)
	out := append([]byte{0xF3, 0x89, 0x9A, 0xC2}, body...)
	return append(out, sum[:]...)
}

// One 10 MiB KPL aggregate of about 1.75 million empty user records, amid
// normal traffic on other keys: every user record is delivered (exactly
// once with JetStream, at least once in core mode, each sub-sequence number
// seen), and the daemon's memory depends on the event's size, not on its
// record count, because the shard loop splits aggregates as it hands
// batches over. Peak RSS is asserted at most 160 MiB without the race
// detector; with it (which inflates memory and slows the server in this
// process) the aggregate is 1 MiB and only the heap is asserted.
func TestMemoryBoundedWithAnAggregateOfEmptyRecords(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: up to 1.75 million user records through the daemon as a process (run without -short)")
	}
	size := 10 << 20
	if raceEnabled {
		size = 1 << 20
	}
	for _, js := range []bool{false, true} {
		t.Run(fmt.Sprintf("jetstream=%t", js), func(t *testing.T) {
			f := newFaultEnv(t, js)
			if _, err := emutest.Client(t, f.e.Emu).UpdateMaxRecordSize(t.Context(), &kinesis.UpdateMaxRecordSizeInput{
				StreamARN: aws.String(f.e.Emu.StreamARN("s")), MaxRecordSizeInKiB: aws.Int32(10240)}); err != nil {
				t.Fatal(err)
			}
			const pk, subject = "empty", "kinesis.s.empty"
			n := (size - 64) / 6
			agg := emptyAggregate(pk, n)
			if len(agg)+len(pk) > size {
				t.Fatalf("aggregate of %d bytes", len(agg))
			}
			// The aggregate's messages are counted here, by sub-sequence
			// number, not kept by the collector.
			skip := subject
			f.e.Msgs.Skip.Store(&skip)
			seen := make([]bool, n)
			var mu sync.Mutex
			distinct, bad := 0, ""
			nc := f.conn()
			defer nc.Close()
			sub, err := nc.Subscribe(subject, func(m *nats.Msg) {
				i, err := strconv.Atoi(m.Header.Get("Kinesis-Sub-Sequence-Number"))
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err != nil || i < 0 || i >= n || len(m.Data) != 0:
					bad = fmt.Sprintf("message with sub-sequence %q and %d bytes", m.Header.Get("Kinesis-Sub-Sequence-Number"), len(m.Data))
				case !seen[i]:
					seen[i] = true
					distinct++
				}
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := sub.SetPendingLimits(-1, -1); err != nil {
				t.Fatal(err)
			}
			if err := nc.Flush(); err != nil {
				t.Fatal(err)
			}

			f.startDaemon()
			f.Produce()
			f.waitProgress(100)
			mem := sampleMemory(f)
			if _, _, err := f.e.Emu.PutRecord("s", pk, agg); err != nil {
				t.Fatal(err)
			}
			agg = nil
			// Normal traffic goes on for a while, then everything must arrive.
			f.waitProgress(200)
			total := f.StopProducing()
			testutil.WaitFor(t, 300*time.Second, fmt.Sprintf("all %d user records of the aggregate", n), func() bool {
				mu.Lock()
				defer mu.Unlock()
				return distinct == n || bad != ""
			})
			testutil.WaitFor(t, recoveryBound, fmt.Sprintf("all %d other records", total), func() bool { return f.deliveredOther(subject) >= total })
			before, peakHeap, peakRSS := mem()
			mu.Lock()
			if bad != "" {
				t.Fatal(bad)
			}
			mu.Unlock()
			if js {
				f.checkJetStreamExcept(subject, n, total)
			} else {
				f.checkCore(total)
			}
			t.Logf("daemon relaying one %.1f MiB aggregate of %d empty user records amid %d other records (jetstream=%t, race=%t): Go heap in use %.1f MiB before, peak %.1f MiB; peak RSS %.1f MiB",
				float64(size)/mib, n, total, js, raceEnabled, before/mib, peakHeap/mib, peakRSS/mib)
			if peakHeap >= 128*mib {
				t.Fatalf("peak Go heap %.1f MiB, want under 128 MiB", peakHeap/mib)
			}
			if !raceEnabled && peakRSS > 160*mib {
				t.Fatalf("peak RSS %.1f MiB, want at most 160 MiB", peakRSS/mib)
			}
		})
	}
}

// deliveredOther counts the distinct records that reached NATS on subjects
// other than skip.
func (f *faultEnv) deliveredOther(skip string) int {
	if !f.js {
		return f.delivered()
	}
	nc := f.conn()
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, "KINESIS")
	if err != nil {
		return 0
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(skip))
	if err != nil {
		return 0
	}
	return int(info.State.Msgs) - int(info.State.Subjects[skip])
}

// checkJetStreamExcept checks that JetStream holds exactly n messages on
// skip and, on the other subjects, every record exactly once, in order.
func (f *faultEnv) checkJetStreamExcept(skip string, n, total int) {
	f.t.Helper()
	nc := f.conn()
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := js.Stream(ctx, "KINESIS")
	if err != nil {
		f.t.Fatal(err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(skip))
	if err != nil {
		f.t.Fatal(err)
	}
	if got := int(info.State.Subjects[skip]); got != n {
		f.t.Fatalf("JetStream holds %d messages on %s, want exactly %d", got, skip, n)
	}
	if got := int(info.State.Msgs) - n; got != total {
		f.t.Fatalf("JetStream holds %d other messages, want exactly %d", got, total)
	}
	var filters []string
	for k := range f.Want() {
		filters = append(filters, "kinesis.s."+k)
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: filters})
	if err != nil {
		f.t.Fatal(err)
	}
	var stored []testutil.Delivery
	for len(stored) < total {
		batch, err := c.Fetch(min(total-len(stored), 1000), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			f.t.Fatal(err)
		}
		got := 0
		for m := range batch.Messages() {
			stored = append(stored, testutil.Delivery{Data: m.Data()})
			got++
		}
		if got == 0 {
			f.t.Fatalf("fetched %d of %d stored records: %v", len(stored), total, batch.Error())
		}
	}
	testutil.CheckDelivered(f.t, stored, f.Want(), testutil.ExactlyOnce)
}

// The daemon collects garbage once its heap grew by 35 % of what is live,
// unless GOGC in its environment says otherwise.
func TestMemoryGCTarget(t *testing.T) {
	for _, tc := range []struct {
		env  []string
		want float64
	}{{nil, 35}, {[]string{"GOGC=80"}, 80}} {
		t.Run(fmt.Sprint(tc.want), func(t *testing.T) {
			if _, set := os.LookupEnv("GOGC"); set && tc.env == nil {
				t.Skip("GOGC is set in the test's environment")
			}
			f := newFaultEnv(t, false)
			f.cmd, f.out = fanoutdProcess(t, append(f.e.EnvLines(), tc.env...), "run", "--config", f.path)
			got := -1.0
			testutil.WaitFor(t, 20*time.Second, "the daemon's metrics", func() bool {
				got = f.metricIf("go_gc_gogc_percent")
				return got >= 0
			})
			if got != tc.want {
				t.Fatalf("go_gc_gogc_percent %v, want %v", got, tc.want)
			}
		})
	}
}
