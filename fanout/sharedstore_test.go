package fanout

import (
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/fanoutd/fanoutd/checkpoint"
	"github.com/fanoutd/fanoutd/checkpoint/kvstore"
	"github.com/fanoutd/fanoutd/internal/testutil"
	"github.com/fanoutd/fanoutd/internal/testutil/emutest"
)

// checkpointBucket is a JetStream key-value bucket for checkpoints, on a
// server of its own.
func checkpointBucket(t *testing.T) jetstream.KeyValue {
	t.Helper()
	nc, err := nats.Connect(testutil.StartNATS(t, testutil.NATSOptions{JetStream: true}).ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	kv, err := js.CreateKeyValue(t.Context(), jetstream.KeyValueConfig{Bucket: "checkpoints"})
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

// One instance on the shared checkpoint store without coordination,
// restarted as a new process would be (a new store): each shard loop reads
// its checkpoint before writing, so its writes are not fenced, and reading
// resumes where it stopped.
func TestSharedStoreWithoutLeasesResumes(t *testing.T) {
	t.Parallel()
	h := newHarness(t, emutest.Options())
	kv := checkpointBucket(t)
	if err := h.emu.CreateStream("s", 2); err != nil {
		t.Fatal(err)
	}
	ks := keys(6)
	h.put("s", ks, 0, 5)
	h.store = kvstore.New(kv, "first")
	stop := h.start(h.consumer(StreamSpec{Name: "s"}, fastTimers()))
	testutil.WaitFor(t, 20*time.Second, "30 records", func() bool { return h.rec.count() >= 30 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	saved := map[string]*big.Int{}
	for i := range 2 {
		id := "shardId-00000000000" + strconv.Itoa(i)
		cp, ok, err := h.store.Get(t.Context(), "s", "fanoutd", id)
		if err != nil || !ok {
			t.Fatalf("checkpoint of %s after the first run: %v %v", id, ok, err)
		}
		saved[id], _ = new(big.Int).SetString(cp.SequenceNumber, 10)
	}

	h.put("s", ks, 5, 5)
	h.rec = newRecorder()
	h.store = kvstore.New(kv, "second")
	stop = h.start(h.consumer(StreamSpec{Name: "s"}, fastTimers()))
	testutil.WaitFor(t, 20*time.Second, "30 more records", func() bool { return h.rec.count() >= 30 })
	// Every shard's checkpoint moves on (the second run's writes are not
	// fenced) and nothing of the first run is read again.
	check := kvstore.New(kv, "check")
	testutil.WaitFor(t, 20*time.Second, "the second run's checkpoints", func() bool {
		for i := range 2 {
			id := "shardId-00000000000" + strconv.Itoa(i)
			cp, ok, err := check.Get(t.Context(), "s", "fanoutd", id)
			if err != nil || !ok {
				return false
			}
			if n, ok := new(big.Int).SetString(cp.SequenceNumber, 10); !ok || n.Cmp(saved[id]) <= 0 {
				return false
			}
		}
		return true
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	recs := h.rec.handled()
	for i := range recs {
		var n int
		if _, err := fmt.Sscanf(string(recs[i].Data), recs[i].PartitionKey+":%d", &n); err != nil {
			t.Fatal(err)
		}
		if n < 5 {
			t.Fatalf("record %q of the first run read again", recs[i].Data)
		}
	}
}

// Two instances on one checkpoint bucket without coordination: once the
// second wrote a shard's checkpoint, the first one's next write (a record's,
// or the shard's end) is fenced,
// and its stream fails with ErrCheckpointTaken (an operator's problem),
// instead of the shard stopping silently.
func TestSharedStoreWithoutCoordinationFails(t *testing.T) {
	for _, endShard := range []bool{false, true} {
		t.Run(fmt.Sprintf("at the shard's end %t", endShard), func(t *testing.T) {
			t.Parallel()
			testSharedStoreWithoutCoordinationFails(t, endShard)
		})
	}
}

func testSharedStoreWithoutCoordinationFails(t *testing.T, endShard bool) {
	h := newHarness(t, emutest.Options())
	kv := checkpointBucket(t)
	if err := h.emu.CreateStream("s", 1); err != nil {
		t.Fatal(err)
	}
	ks := keys(2)
	h.put("s", ks, 0, 5)
	h.store = kvstore.New(kv, "first")
	first := h.consumer(StreamSpec{Name: "s"}, fastTimers())
	done := make(chan error, 1)
	go func() { done <- first.Run(t.Context()) }()
	testutil.WaitFor(t, 20*time.Second, "10 records", func() bool { return h.rec.count() >= 10 })

	// A second instance writes the shard's checkpoint (it read it first, as
	// a shard loop does).
	other := kvstore.New(kv, "second")
	var cp checkpoint.Checkpoint
	testutil.WaitFor(t, 20*time.Second, "the first instance's checkpoint", func() bool {
		c, ok, err := other.Get(t.Context(), "s", "fanoutd", "shardId-000000000000")
		cp = c
		return err == nil && ok
	})
	if err := other.Put(t.Context(), "s", "fanoutd", "shardId-000000000000", cp); err != nil {
		t.Fatal(err)
	}
	if endShard {
		// The shard ends: the first instance's end-of-shard write is fenced.
		if _, err := h.emu.SplitShard("s", "shardId-000000000000"); err != nil {
			t.Fatal(err)
		}
	} else {
		h.put("s", ks, 5, 5) // the first instance's next checkpoint write is fenced
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrCheckpointTaken) {
			t.Fatalf("Run = %v, want ErrCheckpointTaken", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the stream went on after its checkpoint was taken")
	}
}
