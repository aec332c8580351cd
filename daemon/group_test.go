package daemon

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/fanoutd/fanoutd/config"
	"github.com/fanoutd/fanoutd/emulator"
	"github.com/fanoutd/fanoutd/fanout"
	"github.com/fanoutd/fanoutd/internal/testutil"
)

// groupEnv is an emulator, a 3-node JetStream cluster with a stream that
// captures the records, and daemons in this process sharing one stream.
type groupEnv struct {
	t   *testing.T
	emu *emulator.Server
	c   *testutil.Cluster
	js  jetstream.JetStream
	// read is the daemons' read mode (efo when empty).
	read fanout.ReadMode
}

func newGroupEnv(t *testing.T, shards int) *groupEnv {
	t.Helper()
	emu, err := emulator.New(emulator.Options{ConsumerActivationDelay: 200 * time.Millisecond, ConsumerDeletionDelay: -1,
		SubscribeRate: -1, TakeoverGrace: -1, EmptyEventInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emu.Close() })
	if err := emu.CreateStream("s", shards); err != nil {
		t.Fatal(err)
	}
	c := testutil.StartCluster(t, 3)
	nc, err := nats.Connect(c.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "KINESIS", Subjects: []string{"kinesis.>", "fanoutd.deadletter.>"},
		Replicas: 3, Duplicates: 5 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	return &groupEnv{t: t, emu: emu, c: c, js: js}
}

func (e *groupEnv) config(instance string) *config.Config {
	cfg := config.Default()
	st := config.DefaultStream()
	st.Name, st.Subject = "s", "kinesis.{stream}.{partition_key}"
	if e.read != "" {
		st.Read, st.Polling.Interval = e.read, config.Duration(250*time.Millisecond)
	}
	cfg.Streams = []config.StreamConfig{st}
	cfg.AWS.Region, cfg.AWS.Endpoint = e.emu.Region(), e.emu.URL()
	cfg.NATS.Servers = e.c.URLs()
	cfg.NATS.JetStream = true
	cfg.Checkpoint.Store = config.StoreJetStream
	cfg.Checkpoint.Interval = 0
	cfg.Coordination.Mode = config.CoordinationJetStream
	cfg.Coordination.Instance = instance
	cfg.Coordination.LeaseTTL = config.Duration(3 * time.Second)
	cfg.HTTP.Listen = ""
	t := &cfg.Timers
	t.IdleTimeout, t.ShardSyncInterval = config.Duration(2*time.Second), config.Duration(500*time.Millisecond)
	t.MinResubscribeInterval, t.BackoffInitial, t.BackoffMax = config.Duration(50*time.Millisecond), config.Duration(20*time.Millisecond), config.Duration(300*time.Millisecond)
	t.ConsumerPollInitial, t.ConsumerPollMax = config.Duration(20*time.Millisecond), config.Duration(100*time.Millisecond)
	if err := cfg.Validate(); err != nil {
		e.t.Fatal(err)
	}
	return cfg
}

func (e *groupEnv) open(instance string) *Daemon {
	e.t.Helper()
	log := zerolog.Nop()
	if testing.Verbose() {
		log = zerolog.New(zerolog.NewTestWriter(e.t)).With().Str("daemon", instance).Logger()
	}
	d, err := Open(e.t.Context(), e.config(instance), Options{Log: log, Version: "test", CABundle: e.emu.CAPEM(),
		Credentials: credentials.NewStaticCredentialsProvider("k", "s", "")})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { d.Close() })
	return d
}

func reading(d *Daemon) int {
	n := 0
	for _, s := range d.shards() {
		if s.State == fanout.ShardReading {
			n++
		}
	}
	return n
}

// stored checks that the stream holds every record "key:i" of n per key,
// exactly once, in order per key.
func (e *groupEnv) stored(keys []string, n int) {
	e.t.Helper()
	ctx := context.Background()
	s, err := e.js.Stream(ctx, "KINESIS")
	if err != nil {
		e.t.Fatal(err)
	}
	testutil.WaitFor(e.t, 30*time.Second, "every record stored", func() bool {
		info, err := s.Info(ctx)
		return err == nil && int(info.State.Msgs) >= n*len(keys)
	})
	info, _ := s.Info(ctx)
	next := map[string]int{}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			e.t.Fatal(err)
		}
		k, i, _ := strings.Cut(string(m.Data), ":")
		if got, _ := strconv.Atoi(i); got != next[k] {
			e.t.Fatalf("key %s: stored record %d after %d (gap, duplicate or reorder)", k, got, next[k]-1)
		}
		next[k]++
	}
	for _, k := range keys {
		if next[k] != n {
			e.t.Fatalf("key %s: %d records stored, want %d", k, next[k], n)
		}
	}
}

func (e *groupEnv) put(keys []string, from, n int) {
	for i := from; i < from+n; i++ {
		for _, k := range keys {
			if _, _, err := e.emu.PutRecord("s", k, fmt.Appendf(nil, "%s:%d", k, i)); err != nil {
				e.t.Fatal(err)
			}
		}
	}
}

// Two daemons share a stream's shards, each reading its share; one leaves
// gracefully and the other takes its shards at once, replaying nothing; no
// shard ever has two subscriptions.
func TestGroupSharesAStream(t *testing.T) {
	e := newGroupEnv(t, 4)
	keys := make([]string, 16)
	for i := range keys {
		keys[i] = fmt.Sprintf("k%d", i)
	}
	a := e.open("a")
	b := e.open("b")
	testutil.WaitFor(t, 30*time.Second, "2 shards each", func() bool { return reading(a) == 2 && reading(b) == 2 })
	e.put(keys, 0, 20)
	e.stored(keys, 20)

	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	left := time.Now()
	testutil.WaitFor(t, 10*time.Second, "a reads all 4", func() bool { return reading(a) == 4 })
	if d := time.Since(left); d >= 3*time.Second {
		t.Fatalf("the shards of a daemon that left moved after %v, want less than the lease TTL", d)
	}
	e.put(keys, 20, 20)
	e.stored(keys, 40)
	if tk, refused := e.emu.SubscriptionConflicts(); tk != 0 || refused != 0 {
		t.Fatalf("%d takeovers and %d refused subscriptions: two readers of one shard", tk, refused)
	}
}

// polled counts each shard's GetRecords calls by d.
func polled(d *Daemon) map[string]uint64 {
	out := map[string]uint64{}
	for _, s := range d.shards() {
		for _, n := range s.Polls {
			out[s.ShardID] += n
		}
	}
	return out
}

// Three daemons share a polling stream's shards as they share an EFO
// stream's: two shards each, every record stored once and in order, and
// once balanced each shard is polled by one daemon only.
func TestGroupSharesAPollingStream(t *testing.T) {
	t.Parallel()
	e := newGroupEnv(t, 6)
	e.read = fanout.ReadPolling
	keys := make([]string, 24)
	for i := range keys {
		keys[i] = fmt.Sprintf("k%d", i)
	}
	e.put(keys, 0, 10) // read while the group forms
	ds := []*Daemon{e.open("a"), e.open("b"), e.open("c")}
	testutil.WaitFor(t, 30*time.Second, "2 shards each", func() bool {
		return reading(ds[0]) == 2 && reading(ds[1]) == 2 && reading(ds[2]) == 2
	})
	before := make([]map[string]uint64, len(ds))
	for i, d := range ds {
		before[i] = polled(d)
	}
	e.put(keys, 10, 10)
	e.stored(keys, 20)
	pollers := map[string][]int{}
	for i, d := range ds {
		for shard, n := range polled(d) {
			if n > before[i][shard] {
				pollers[shard] = append(pollers[shard], i)
			}
		}
	}
	if len(pollers) != 6 {
		t.Fatalf("shards polled since the group balanced: %v, want all 6", pollers)
	}
	for shard, who := range pollers {
		if len(who) != 1 {
			t.Fatalf("shard %s polled by daemons %v", shard, who)
		}
	}
}
