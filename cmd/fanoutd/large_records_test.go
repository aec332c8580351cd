package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"golang.org/x/time/rate"

	"github.com/fanoutd/fanoutd/internal/testutil"
	"github.com/fanoutd/fanoutd/internal/testutil/e2e"
	"github.com/fanoutd/fanoutd/internal/testutil/emutest"
	"github.com/fanoutd/fanoutd/jsassets"
	"github.com/fanoutd/fanoutd/record"
	"github.com/fanoutd/fanoutd/relay"
	"github.com/fanoutd/fanoutd/subscriber"
)

// newLargeEnv is the fault suite's environment with JetStream on the NATS
// server in both modes (the Object Store is JetStream; core mode publishes
// the records and references as core messages), the stream "s" raised to
// 10 MiB records through the SDK's UpdateMaxRecordSize, and the daemon's
// config pointing at natsURL ("" for the server itself).
func newLargeEnv(t *testing.T, js bool, natsURL func(real string) string) *faultEnv {
	t.Helper()
	opts := emutest.Options()
	opts.SubscriptionLifetime = 3 * time.Second
	e := newProcessE2E(t, opts, true)
	f := &faultEnv{t: t, e: e, js: js, Producer: e2e.NewProducer(e.Emu)}
	if js {
		nc := f.conn()
		defer nc.Close()
		jsc, _ := jetstream.New(nc)
		if _, err := jsc.CreateStream(context.Background(), jetstream.StreamConfig{Name: "KINESIS",
			Subjects: []string{"kinesis.>", "fanoutd.deadletter.>"}, Storage: jetstream.FileStorage,
			Duplicates: 5 * time.Minute, Discard: jetstream.DiscardNew}); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.Emu.CreateStream("s", 3); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := emutest.Client(t, e.Emu).UpdateMaxRecordSize(ctx, &kinesis.UpdateMaxRecordSizeInput{
		StreamARN: aws.String(e.Emu.StreamARN("s")), MaxRecordSizeInKiB: aws.Int32(10240)}); err != nil {
		t.Fatal(err)
	}
	c := e.Config(js, "  - name: s\n    subject: \"kinesis.{stream}.{partition_key}\"")
	// A 10 MiB event takes seconds to arrive (the emulator reads 2 MiB/s
	// per shard, as AWS does, after an 11 MiB burst): no idle timeout
	// within it.
	c.Timers = map[string]string{"idle_timeout": "30s"}
	if natsURL != nil {
		c.Servers = []string{natsURL(e.NS.ClientURL())}
	}
	f.path = c.Write(t)
	return f
}

// largeRecord is record i of key "big": "big:i:" then bytes that depend on
// i, n bytes in all.
func largeRecord(i, n int) []byte {
	b := make([]byte, n)
	p := copy(b, fmt.Sprintf("big:%d:", i))
	for j := p; j < n; j++ {
		b[j] = byte(j*31 + i)
	}
	return b
}

// maxRecord is the largest record Kinesis takes for key "big": 10 MiB
// with the partition key.
const maxRecord = 10<<20 - len("big")

// bigSizes are the records of key "big", in order: small ones around a
// 10 MiB and a 3 MiB record (NATS's max_payload is 1 MB).
var bigSizes = []int{20, maxRecord, 20, 3 << 20, 20}

// putBig writes the records of key "big" with sizes, numbered from first,
// and counts them as produced.
func (f *faultEnv) putBig(first int, sizes []int) {
	f.t.Helper()
	for i, n := range sizes {
		if _, _, err := f.e.Emu.PutRecord("s", "big", largeRecord(first+i, n)); err != nil {
			f.t.Fatalf("put a record of %d bytes: %v", n, err)
		}
	}
	f.Add("big", len(sizes))
}

// recordOf returns the data of m, fetched from the Object Store when m is a
// reference, and whether it was one.
func recordOf(t *testing.T, js jetstream.JetStream, m *nats.Msg) ([]byte, bool) {
	t.Helper()
	if !subscriber.IsObjectReference(m) {
		return m.Data, false
	}
	if len(m.Data) != 0 {
		t.Fatalf("reference message with %d bytes of data", len(m.Data))
	}
	data, err := subscriber.Fetch(context.Background(), js, m)
	if err != nil {
		t.Fatalf("fetch the record behind %s %v: %v", m.Subject, m.Header, err)
	}
	return data, true
}

// checkRecords checks msgs (in the order received or stored) against what
// was produced: every record present, in order per key (exactly once when
// exact), the records of key "big" byte-identical (their SHA-256 compared),
// and those over max_payload relayed as references; record big:i has
// sizes[i%len(sizes)] bytes. It returns the
// number of references.
func (f *faultEnv) checkRecords(msgs []*nats.Msg, exact bool, sizes []int) int {
	f.t.Helper()
	nc := f.conn()
	defer nc.Close()
	js, _ := jetstream.New(nc)
	next := map[string]int{}
	refs := 0
	for _, m := range msgs {
		data, ref := recordOf(f.t, js, m)
		if ref {
			refs++
		}
		k, rest, _ := strings.Cut(string(data[:min(len(data), 64)]), ":")
		is, _, _ := strings.Cut(rest, ":")
		i, err := strconv.Atoi(is)
		if err != nil {
			f.t.Fatalf("unexpected record %q on %s", data[:min(len(data), 64)], m.Subject)
		}
		if k == "big" {
			n := sizes[i%len(sizes)]
			if want := sha256.Sum256(largeRecord(i, n)); sha256.Sum256(data) != want || len(data) != n {
				f.t.Fatalf("record big:%d: %d bytes, not the %d bytes produced (digest differs)", i, len(data), n)
			}
			if ref != (n > 1<<20) {
				f.t.Fatalf("record big:%d of %d bytes: reference %t", i, n, ref)
			}
		}
		switch {
		case i == next[k]:
			next[k]++
		case !exact && i < next[k]: // a replay (core NATS)
		default:
			f.t.Fatalf("key %s: record %d after %d (gap, duplicate or reorder)", k, i, next[k]-1)
		}
	}
	for k, n := range f.Want() {
		if next[k] != n {
			f.t.Fatalf("key %s: %d records relayed, %d produced", k, next[k], n)
		}
	}
	return refs
}

// storedMsgs returns every message of the KINESIS stream, in order.
func (f *faultEnv) storedMsgs() []*nats.Msg {
	f.t.Helper()
	nc := f.conn()
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	s, err := js.Stream(ctx, "KINESIS")
	if err != nil {
		f.t.Fatal(err)
	}
	info := s.CachedInfo()
	var out []*nats.Msg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			f.t.Fatal(err)
		}
		out = append(out, &nats.Msg{Subject: m.Subject, Header: m.Header, Data: m.Data})
	}
	return out
}

// deliveredLarge counts the distinct records relayed so far.
func (f *faultEnv) deliveredLarge() int {
	if f.js {
		return f.delivered()
	}
	seen := map[string]bool{}
	for _, m := range f.e.Msgs.OnSubject("kinesis.") {
		seen[m.Header.Get(nats.MsgIdHdr)] = true
	}
	return len(seen)
}

// Records of 10 MiB and 3 MiB amid small ones, over NATS's 1 MB
// max_payload, reach subscribers whole through the Object Store, in core
// and JetStream mode: in order per partition key, byte-identical (digest
// checked), exactly once with JetStream. The daemon's Go heap and RSS are
// sampled from its /metrics and reported; the heap is asserted under
// 160 MiB, the RSS too without the race detector.
func TestLargeRecordsReachSubscribersWhole(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: records of several MiB through the daemon as a child process")
	}
	for _, js := range []bool{false, true} {
		t.Run(fmt.Sprintf("jetstream=%t", js), func(t *testing.T) {
			f := newLargeEnv(t, js, nil)
			f.startDaemon()
			f.Produce()
			testutil.WaitFor(t, recoveryBound, "records relayed", func() bool { return f.deliveredLarge() >= 100 })

			const heap, rss = "go_memstats_heap_inuse_bytes", "process_resident_memory_bytes"
			var mu sync.Mutex
			peakHeap, peakRSS := f.metric(heap), f.metric(rss)
			before := peakHeap
			stop, sampled := make(chan struct{}), make(chan struct{})
			go func() {
				defer close(sampled)
				for {
					select {
					case <-stop:
						return
					case <-time.After(50 * time.Millisecond): // sampling interval, not synchronisation
					}
					h, r := f.metricIf(heap), f.metricIf(rss)
					mu.Lock()
					peakHeap, peakRSS = max(peakHeap, h), max(peakRSS, r)
					mu.Unlock()
				}
			}()
			f.putBig(0, bigSizes)
			f.putBig(len(bigSizes), bigSizes)
			total := f.StopProducing()
			testutil.WaitFor(t, 120*time.Second, fmt.Sprintf("all %d records relayed", total), func() bool { return f.deliveredLarge() >= total })
			close(stop)
			<-sampled

			var msgs []*nats.Msg
			if js {
				msgs = f.storedMsgs()
				if len(msgs) != total {
					t.Fatalf("JetStream holds %d messages, want exactly %d", len(msgs), total)
				}
			} else {
				msgs = f.e.Msgs.OnSubject("kinesis.")
			}
			if refs := f.checkRecords(msgs, js, bigSizes); refs < 4 {
				t.Fatalf("%d references, want at least the 4 records over max_payload", refs)
			}
			if got := f.metric(`fanoutd_records_stored_as_objects_total{stream="s"}`); got < 4 {
				t.Fatalf("fanoutd_records_stored_as_objects_total = %v, want at least 4", got)
			}
			if got := f.metric(`fanoutd_dead_letters_total{stream="s"}`); got != 0 {
				t.Fatalf("fanoutd_dead_letters_total = %v, want 0", got)
			}
			const mib = 1 << 20
			t.Logf("daemon relaying 2 x (10 MiB + 3 MiB) records amid %d small ones (jetstream=%t, race=%t): Go heap in use %.1f MiB before, peak %.1f MiB; peak RSS %.1f MiB",
				total-4, js, raceEnabled, before/mib, peakHeap/mib, peakRSS/mib)
			if peakHeap >= 160*mib {
				t.Fatalf("peak Go heap %.1f MiB, want under 160 MiB", peakHeap/mib)
			}
			if !raceEnabled && peakRSS >= 200*mib {
				t.Fatalf("peak RSS %.1f MiB, want under 200 MiB", peakRSS/mib)
			}
		})
	}
}

// throttledProxy forwards TCP connections to target; while throttled, the
// client-to-server direction goes at bytesPerSecond.
type throttledProxy struct {
	ln        net.Listener
	target    string
	limiter   *rate.Limiter
	throttled atomic.Bool
}

func startThrottledProxy(t *testing.T, target string, bytesPerSecond int) *throttledProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &throttledProxy{ln: ln, target: target, limiter: rate.NewLimiter(rate.Limit(bytesPerSecond), 32<<10)}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	return p
}

func (p *throttledProxy) serve(c net.Conn) {
	defer c.Close()
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer up.Close()
	go func() {
		io.Copy(c, up)
		c.Close()
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if p.throttled.Load() {
				p.limiter.WaitN(context.Background(), n)
			}
			if _, werr := up.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// A SIGKILL while a 10 MiB record is being put into the Object Store (the
// daemon's traffic to NATS slowed to 1 MiB/s, the kill once the first
// chunks are stored): no reference was published for the partial object
// (the object is not even visible), and after a restart every record is in
// JetStream exactly once, the large one byte-identical behind its
// reference.
func TestLargeRecordSIGKILLDuringObjectPut(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: records of several MiB through the daemon as a child process")
	}
	var proxy *throttledProxy
	f := newLargeEnv(t, true, func(real string) string {
		proxy = startThrottledProxy(t, strings.TrimPrefix(real, "nats://"), 1<<20)
		return "nats://" + proxy.ln.Addr().String()
	})
	f.startDaemon()
	f.Produce()
	f.waitProgress(100)

	proxy.throttled.Store(true)
	f.putBig(0, []int{maxRecord})
	nc := f.conn()
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	testutil.WaitFor(t, recoveryBound, "the first chunks of the object stored", func() bool {
		s, err := js.Stream(ctx, "OBJ_"+jsassets.DefaultObjectBucket)
		return err == nil && s.CachedInfo().State.Msgs >= 2
	})
	f.cmd.Process.Signal(syscall.SIGKILL)
	f.cmd.Wait()
	proxy.throttled.Store(false)

	s, err := js.Stream(ctx, "OBJ_"+jsassets.DefaultObjectBucket)
	if err != nil {
		t.Fatal(err)
	}
	chunks := s.CachedInfo().State.Msgs
	const allChunks = (maxRecord + 128<<10 - 1) / (128 << 10)
	if chunks == 0 || chunks >= uint64(allChunks) {
		t.Fatalf("the bucket holds %d messages after the kill, want part of the %d chunks (the kill was not during the put)", chunks, allChunks)
	}
	t.Logf("killed with %d of the object's %d chunks stored", chunks, allChunks)
	obs, err := js.ObjectStore(ctx, jsassets.DefaultObjectBucket)
	if err != nil {
		t.Fatal(err)
	}
	objects, _ := obs.List(ctx)
	if len(objects) != 0 {
		t.Fatalf("objects %+v visible after the kill, want none (the put did not complete)", objects)
	}
	for _, m := range f.storedMsgs() {
		if subscriber.IsObjectReference(m) || m.Header.Get(relay.HeaderPartitionKey) == "big" {
			t.Fatalf("a message for the record whose put was killed: %s %v", m.Subject, m.Header)
		}
	}

	f.startDaemon()
	f.waitProgress(100)
	total := f.StopProducing()
	testutil.WaitFor(t, 60*time.Second, fmt.Sprintf("all %d records stored", total), func() bool { return f.delivered() >= total })
	msgs := f.storedMsgs()
	if len(msgs) != total {
		t.Fatalf("JetStream holds %d messages, want exactly %d", len(msgs), total)
	}
	if refs := f.checkRecords(msgs, true, []int{maxRecord}); refs != 1 {
		t.Fatalf("%d references, want 1", refs)
	}
	if objects, _ := obs.List(ctx); len(objects) != 1 || objects[0].Size != uint64(maxRecord) {
		t.Fatalf("objects after the restart: %+v, want the one record", objects)
	}
}

// fanoutd tail prints a record stored as an object like any other: --raw
// writes its bytes, the default form its size, fetched and checked.
func TestTailFetchesLargeRecords(t *testing.T) {
	ns := testutil.StartNATS(t, testutil.NATSOptions{JetStream: true})
	raw := startTail(t, "--server", ns.ClientURL(), "--raw", "--count", "1", "kinesis.>")
	human := startTail(t, "--server", ns.ClientURL(), "--count", "1", "kinesis.>")
	nc, err := relay.Connect(context.Background(), relay.ConnOptions{Servers: []string{ns.ClientURL()}}, discardLog())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	obs, err := jsassets.EnsureObjectStore(context.Background(), nc, jsassets.ObjectStoreSpec{Bucket: jsassets.DefaultObjectBucket, Replicas: 1}, discardLog())
	if err != nil {
		t.Fatal(err)
	}
	tmpl, _ := relay.ParseSubjectTemplate("kinesis.{stream}")
	p, err := relay.NewPublisher(nc, map[string]*relay.Route{"orders": {Subject: tmpl}}, relay.Options{
		Oversize: relay.OversizeObjectStore, Objects: obs, ObjectBucket: jsassets.DefaultObjectBucket, Log: discardLog()})
	if err != nil {
		t.Fatal(err)
	}
	data := largeRecord(1, 3<<20)
	b := largeBatch(data)
	if err := p.Handle(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if code := raw.wait(t); code != 0 {
		t.Fatalf("tail --raw: exit %d: %s", code, raw.err.String())
	}
	if got := raw.out.String(); got != string(data)+"\n" {
		t.Fatalf("tail --raw wrote %d bytes, want the record's %d and a newline", len(got), len(data))
	}
	if code := human.wait(t); code != 0 {
		t.Fatalf("tail: exit %d: %s", code, human.err.String())
	}
	for _, want := range []string{"data (3145728 bytes, binary)", "Fanoutd-Object-Name: orders/shardId-000000000000/4959/0"} {
		if !bytes.Contains([]byte(human.out.String()), []byte(want)) {
			t.Fatalf("tail output lacks %q:\n%s", want, human.out.String())
		}
	}
}

func discardLog() zerolog.Logger { return zerolog.Nop() }

// largeBatch is one plain record of stream orders with data.
func largeBatch(data []byte) *record.Batch {
	return &record.Batch{Stream: "orders", ShardID: "shardId-000000000000", Records: []record.Record{
		{Data: data, PartitionKey: "big", SequenceNumber: "4959", ArrivalTime: time.Now()},
	}}
}
