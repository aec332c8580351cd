package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/fanoutd/fanoutd/internal/testutil"
	"github.com/fanoutd/fanoutd/internal/testutil/e2e"
	"github.com/fanoutd/fanoutd/internal/testutil/emutest"
	"github.com/fanoutd/fanoutd/relay"
)

// The fault suite's JetStream scenarios, on a 3-node NATS cluster where the
// stream KINESIS has 3 replicas: its leader steps down several times, then
// the server that is both the stream leader and the daemon's server is shut
// down and restarted, while records keep coming. Afterwards the stream must
// hold every record exactly once, in order per partition key.

const (
	// clusterBound bounds every wait on the cluster itself (forming, electing
	// a leader, a restarted node catching up): generous for a loaded 2-core
	// machine running with -race.
	clusterBound = 30 * time.Second
	// leaderLossCatchUp bounds the time from the last healing to every
	// record being stored and confirmed by the daemon.
	leaderLossCatchUp = 60 * time.Second
	// leaderOutage is how long the killed leader stays down: the fault has
	// to last long enough for the daemon to run into it and for the others
	// to elect a new leader and take writes.
	leaderOutage = 3 * time.Second
)

// The daemon's log lines for a PubAck retry round and a failed batch.
const (
	retryLine  = "JetStream did not confirm every message"
	failedLine = "could not deliver a batch"
)

func (f *clusterFault) count(line string) int { return strings.Count(f.out.String(), line) }

// causes sums up the errors of the daemon's log lines with message msg.
func (f *clusterFault) causes(msg string) string {
	n := map[string]int{}
	var order []string
	for _, line := range strings.Split(f.out.String(), "\n") {
		var l struct{ Message, Error string }
		if json.Unmarshal([]byte(line), &l) != nil || !strings.HasPrefix(l.Message, msg) {
			continue
		}
		if n[l.Error] == 0 {
			order = append(order, l.Error)
		}
		n[l.Error]++
	}
	var out []string
	for _, e := range order {
		out = append(out, fmt.Sprintf("%dx %q", n[e], e))
	}
	return strings.Join(out, ", ")
}

// clusterFault is the state of TestFaultJetStreamLeaderLoss.
type clusterFault struct {
	t   *testing.T
	e   *e2eEnv
	c   *testutil.Cluster
	nc  *nats.Conn // the test's own connection, to every server
	js  jetstream.JetStream
	out *testutil.SyncBuffer // the daemon's log
	*e2e.Producer
}

// info returns the stream's info, or nil while the cluster can't answer.
func (f *clusterFault) info() *jetstream.StreamInfo {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s, err := f.js.Stream(ctx, "KINESIS")
	if err != nil {
		return nil
	}
	return s.CachedInfo()
}

func (f *clusterFault) stored() int {
	if si := f.info(); si != nil {
		return int(si.State.Msgs)
	}
	return -1
}

// leader returns the stream leader's name, "" while there is none.
func (f *clusterFault) leader() string {
	if si := f.info(); si != nil && si.Cluster != nil {
		return si.Cluster.Leader
	}
	return ""
}

// healthy reports whether the stream has a leader and every replica is
// online and current.
func (f *clusterFault) healthy() bool {
	si := f.info()
	if si == nil || si.Cluster == nil || si.Cluster.Leader == "" || len(si.Cluster.Replicas) != len(f.c.Nodes)-1 {
		return false
	}
	for _, p := range si.Cluster.Replicas {
		if !p.Current || p.Offline {
			return false
		}
	}
	return true
}

func (f *clusterFault) waitProgress(n int) {
	f.t.Helper()
	base := -1
	testutil.WaitFor(f.t, clusterBound, "the stream's state", func() bool { base = f.stored(); return base >= 0 })
	testutil.WaitFor(f.t, clusterBound, fmt.Sprintf("%d more records stored", n), func() bool { return f.stored() >= base+n })
}

// stepDown asks the stream leader to step down (to preferred, if set) and
// waits until another server leads the stream.
func (f *clusterFault) stepDown(preferred string) (from, to string) {
	f.t.Helper()
	var req []byte
	if preferred != "" {
		req, _ = json.Marshal(server.JSApiLeaderStepdownRequest{Placement: &server.Placement{Preferred: preferred}})
	}
	// The request can fail while a previous election settles: retry it.
	testutil.WaitFor(f.t, clusterBound, "a successful stream leader stepdown", func() bool {
		from = f.leader()
		if from == "" || from == preferred {
			return from != ""
		}
		m, err := f.nc.Request("$JS.API.STREAM.LEADER.STEPDOWN.KINESIS", req, 2*time.Second)
		if err != nil {
			return false
		}
		var resp server.JSApiStreamLeaderStepDownResponse
		if err := json.Unmarshal(m.Data, &resp); err != nil || !resp.Success {
			f.t.Logf("stepdown refused: %s", m.Data)
			return false
		}
		return true
	})
	if from == preferred {
		return from, from // it leads already
	}
	testutil.WaitFor(f.t, clusterBound, "a new stream leader", func() bool {
		to = f.leader()
		return to != "" && to != from
	})
	return from, to
}

// checkpointed reports whether the daemon's checkpoint of every shard is at
// or past the shard's last record: then it confirmed every record and has no
// batch in flight (a checkpoint moves only after its batch was confirmed;
// empty events move it past the last record, as on AWS).
func (f *clusterFault) checkpointed() bool {
	for shard, seq := range f.LastSeqs() {
		b, err := os.ReadFile(filepath.Join(f.e.Dir, "s", "fanoutd", shard+".json"))
		if err != nil {
			return false
		}
		var cp struct {
			SequenceNumber string `json:"sequence_number"`
		}
		if json.Unmarshal(b, &cp) != nil || !e2e.SeqAtLeast(cp.SequenceNumber, seq) {
			return false
		}
	}
	return true
}

// clusterConfig writes the daemon's config: every server of the cluster,
// JetStream on.
func (f *clusterFault) clusterConfig() string {
	f.t.Helper()
	c := f.e.Config(true, "  - name: s\n    subject: \"kinesis.{stream}.{partition_key}\"")
	c.Servers = f.c.URLs()
	return c.Write(f.t)
}

// storedMsg is one message of the stream.
type storedMsg struct {
	seq   uint64
	data  string
	msgID string
}

// readStream reads the messages of sequence first..last, in sequence order,
// with an ordered consumer.
func (f *clusterFault) readStream(first, last uint64) ([]storedMsg, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cons, err := f.js.OrderedConsumer(ctx, "KINESIS", jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		return nil, fmt.Errorf("ordered consumer: %w", err)
	}
	var out []storedMsg
	want := first
	for want <= last {
		batch, err := cons.Fetch(500, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return nil, fmt.Errorf("fetch after seq %d: %w", want-1, err)
		}
		got := 0
		for m := range batch.Messages() {
			got++
			md, err := m.Metadata()
			if err != nil {
				return nil, err
			}
			if md.Sequence.Stream != want {
				return nil, fmt.Errorf("read stream sequence %d, want %d", md.Sequence.Stream, want)
			}
			want++
			out = append(out, storedMsg{md.Sequence.Stream, string(m.Data()), m.Headers().Get(nats.MsgIdHdr)})
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return nil, fmt.Errorf("fetch after seq %d: %w", want-1, err)
		}
		if got == 0 {
			return nil, fmt.Errorf("no message after stream sequence %d of %d", want-1, last)
		}
	}
	return out, nil
}

// checkStored reads the whole stream in sequence order and requires every
// produced record exactly once, in order per key. It reports every anomaly
// (up to a few dozen), not just the first.
func (f *clusterFault) checkStored(total int) {
	f.t.Helper()
	var si *jetstream.StreamInfo
	var msgs []storedMsg
	// Reading can hit a transient error (e.g. no responders for the consumer
	// create while the restarted server's interest propagates): retry it.
	testutil.WaitFor(f.t, clusterBound, "the whole stream read", func() bool {
		if si = f.info(); si == nil {
			return false
		}
		var err error
		if msgs, err = f.readStream(si.State.FirstSeq, si.State.LastSeq); err != nil {
			f.t.Logf("reading the stream: %v; retrying", err)
			return false
		}
		return true
	})
	next := map[string]int{}
	first := map[string]storedMsg{} // record -> where it was first stored
	var problems []string
	report := func(format string, args ...any) {
		if len(problems) < 40 {
			problems = append(problems, fmt.Sprintf(format, args...))
		}
	}
	dups, reorders := 0, 0
	for _, m := range msgs {
		k, i, _ := strings.Cut(m.data, ":")
		n, _ := strconv.Atoi(i)
		if prev, ok := first[m.data]; ok {
			dups++
			report("record %s stored twice: seq %d (Nats-Msg-Id %s) and seq %d (Nats-Msg-Id %s)", m.data, prev.seq, prev.msgID, m.seq, m.msgID)
			continue
		}
		first[m.data] = m
		if n != next[k] {
			reorders++
			report("key %s: record %d stored at seq %d (Nats-Msg-Id %s) while %d was expected", k, n, m.seq, m.msgID, next[k])
		}
		next[k] = max(next[k], n+1)
	}
	missing := 0
	for k, n := range f.Want() {
		for i := 0; i < n; i++ {
			if _, ok := first[fmt.Sprintf("%s:%d", k, i)]; !ok {
				missing++
				report("record %s:%d never stored", k, i)
			}
		}
	}
	f.t.Logf("stream: %d messages (seq %d..%d) for %d records: %d duplicates, %d out of order, %d missing",
		si.State.Msgs, si.State.FirstSeq, si.State.LastSeq, total, dups, reorders, missing)
	if int(si.State.Msgs) != total || dups+missing > 0 {
		f.t.Fatalf("JetStream does not hold every record exactly once:\n%s", strings.Join(problems, "\n"))
	}
	if reorders > 0 {
		// A leader change in the middle of a batch's first round: a PubAck
		// lost while later messages were stored, which the retry stores
		// after them. The documented limit of JetStream mode (see "Order" in
		// docs/guarantees.md), reported, not failed: nothing is lost or
		// duplicated, and the Kinesis sequence headers give the order.
		f.t.Logf("%d records stored out of order across the leader changes (the documented limit):\n%s", reorders, strings.Join(problems, "\n"))
	}
}

// TestFaultJetStreamLeaderLoss: the stream KINESIS (3 replicas on a 3-node
// cluster) loses its leader, by stepdowns and by the shutdown of the server
// that leads it and holds the daemon's connection, while the daemon relays
// a continuous flow of records.
// TestFaultJetStreamLeaderLoss runs into a stream that allows fast batches
// (as the streams fanoutd creates do), TestFaultJetStreamLeaderLossPerMessage
// into one that does not.
func TestFaultJetStreamLeaderLoss(t *testing.T) { testFaultJetStreamLeaderLoss(t, true) }

func TestFaultJetStreamLeaderLossPerMessage(t *testing.T) { testFaultJetStreamLeaderLoss(t, false) }

func testFaultJetStreamLeaderLoss(t *testing.T, batched bool) {
	if testing.Short() {
		t.Skip("slow: the fault suite on a 3-node JetStream cluster (run without -short)")
	}
	begin := time.Now()
	opts := emutest.Options()
	opts.SubscriptionLifetime = 3 * time.Second
	e := newE2E(t, opts, false) // its single NATS server is not used
	c := testutil.StartCluster(t, 3)
	f := &clusterFault{t: t, e: e, c: c, Producer: e2e.NewProducer(e.Emu)}
	nc, err := nats.Connect(strings.Join(c.URLs(), ","), nats.Name("fanoutd-test"), nats.MaxReconnects(-1),
		nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	f.nc = nc
	f.js, _ = jetstream.New(nc)

	// The cluster has formed and has a meta leader when a stream can be
	// created on it.
	testutil.WaitFor(t, clusterBound, "the KINESIS stream created on the cluster", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := f.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: "KINESIS",
			Subjects: []string{"kinesis.>", "fanoutd.deadletter.>"}, Storage: jetstream.FileStorage,
			Replicas: 3, Duplicates: 5 * time.Minute, AllowBatchPublish: batched})
		return err == nil
	})
	testutil.WaitFor(t, clusterBound, "every replica of KINESIS current", f.healthy)
	t.Logf("cluster up, stream led by %s, after %v", f.leader(), time.Since(begin).Round(time.Millisecond))

	if err := e.Emu.CreateStream("s", 3); err != nil {
		t.Fatal(err)
	}
	e.run(f.clusterConfig())
	f.out = e.logs
	f.Produce()
	f.waitProgress(100)

	// (a) Stepdowns under load.
	for i := 0; i < 2; i++ {
		from, to := f.stepDown("")
		t.Logf("stepdown %d: stream leader %s -> %s", i+1, from, to)
		f.waitProgress(100)
	}

	t.Logf("daemon after the stepdowns: %d PubAck retry rounds, %d failed batches", f.count(retryLine), f.count(failedLine))

	// (b) The stream leader dies. Make it the daemon's server first, so that
	// the daemon loses its connection and the leader at once (the worst
	// case): a stepdown with that server as preferred leader.
	var daemonAt string
	testutil.WaitFor(t, clusterBound, "the daemon's connection", func() bool { daemonAt = c.ClientOf(relay.DefaultConnectionName); return daemonAt != "" })
	if l := f.leader(); l != daemonAt {
		from, to := f.stepDown(daemonAt)
		t.Logf("stepdown 3 (preferred %s): stream leader %s -> %s", daemonAt, from, to)
	}
	victim := c.Node(f.leader())
	if victim == nil {
		t.Fatal("no stream leader")
	}
	t.Logf("shutting down %s: stream leader, daemon connected to %s", victim.Name, c.ClientOf(relay.DefaultConnectionName))
	c.Stop(victim)
	down := time.Now()
	var newLeader string
	testutil.WaitFor(t, clusterBound, "a new stream leader after the shutdown", func() bool {
		newLeader = f.leader()
		return newLeader != "" && newLeader != victim.Name
	})
	t.Logf("%s leads the stream %v after the shutdown", newLeader, time.Since(down).Round(time.Millisecond))
	// The two others have a quorum: records keep being stored while it is down.
	f.waitProgress(100)
	// The daemon saw the fault: a PubAck failed, or a batch failed.
	testutil.WaitFor(t, clusterBound, "the daemon to notice the leader loss", func() bool {
		return f.count(retryLine)+f.count(failedLine) > 0
	})
	if rest := leaderOutage - time.Since(down); rest > 0 {
		time.Sleep(rest) // not synchronisation: the outage lasts at least leaderOutage
	}
	c.Start(victim)
	healed := time.Now()
	testutil.WaitFor(t, clusterBound, fmt.Sprintf("%s back as a current replica", victim.Name), f.healthy)
	t.Logf("%s restarted after %v down; every replica current %v later",
		victim.Name, healed.Sub(down).Round(time.Millisecond), time.Since(healed).Round(time.Millisecond))
	t.Logf("daemon so far: %d PubAck retry rounds, %d failed batches", f.count(retryLine), f.count(failedLine))
	f.waitProgress(100)

	total := f.StopProducing()
	testutil.WaitFor(t, leaderLossCatchUp, fmt.Sprintf("all %d records stored and checkpointed", total), func() bool {
		return f.stored() >= total && f.checkpointed()
	})
	t.Logf("caught up %v after healing (bound %v); %d records; daemon logged %d PubAck retry rounds, %d failed batches, %d NATS disconnects",
		time.Since(healed).Round(time.Millisecond), leaderLossCatchUp, total,
		f.count(retryLine), f.count(failedLine), f.count("disconnected from NATS"))
	if f.count(retryLine) > 0 {
		t.Logf("PubAck retry causes: %s", f.causes(retryLine))
	}
	if f.count(failedLine) > 0 {
		t.Logf("batch failure causes: %s", f.causes(failedLine))
	}
	f.checkStored(total)
	t.Logf("test took %v", time.Since(begin).Round(time.Millisecond))
}
