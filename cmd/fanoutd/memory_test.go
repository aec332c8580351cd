package main

import (
	"fmt"
	"math/big"
	"sync"
	"testing"
	"time"

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
			f.produce()
			f.waitProgress(100)

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
				if _, _, err := f.e.emu.PutRecordHashKey("s", key, hashKey, data); err != nil {
					t.Fatal(err)
				}
			}
			f.mu.Lock()
			f.total += aggs * perAgg
			f.mu.Unlock()
			// Normal traffic goes on for a while, then everything must arrive.
			f.waitProgress(200)
			total := f.stopProducing()
			testutil.WaitFor(t, 120*time.Second, fmt.Sprintf("all %d records delivered", total), func() bool { return f.delivered() >= total })
			close(stop)
			<-sampled
			if js {
				if got := f.delivered(); got != total {
					t.Fatalf("JetStream holds %d messages, want exactly %d", got, total)
				}
			}
			const mib = 1 << 20
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
