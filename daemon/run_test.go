package daemon

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/fanoutd/fanoutd/emulator"
	"github.com/fanoutd/fanoutd/internal/testutil"
	"github.com/fanoutd/fanoutd/internal/testutil/e2e"
	"github.com/fanoutd/fanoutd/internal/testutil/emutest"
	"github.com/fanoutd/fanoutd/relay"
)

func TestRunRelaysEveryRecordOnceWithHeaders(t *testing.T) {
	e := newE2E(t, emutest.Options(), false)
	if err := e.Emu.CreateStream("orders", 3); err != nil {
		t.Fatal(err)
	}
	keys := append(e2e.Keys(10), "a.b c*>") // a key that a subject token can't hold as is
	e.Put("orders", keys, 0, 10)
	stop := e.run(e.config(false, `  - name: orders
    subject: "kinesis.{stream}.{partition_key}"`))
	e.Put("orders", keys, 10, 10)
	total := len(keys) * 20
	testutil.WaitFor(t, 30*time.Second, "every record", func() bool { return len(e.Msgs.OnSubject("kinesis.")) >= total })
	msgs := e.Msgs.OnSubject("kinesis.")
	e2e.ExactlyOnceInOrder(t, msgs, keys, 20)

	// Subject and headers, checked against what the emulator stored.
	stored := map[string]emulator.Record{}
	shards, _ := e.Emu.Shards("orders")
	for _, sh := range shards {
		recs, _ := e.Emu.Records("orders", sh.ID)
		for _, r := range recs {
			stored[string(r.Data)] = r
		}
	}
	for _, m := range msgs {
		r := stored[string(m.Data)]
		wantSubject := "kinesis.orders." + string(relay.SanitizeToken(nil, r.PartitionKey))
		if m.Subject != wantSubject {
			t.Fatalf("subject %q, want %q", m.Subject, wantSubject)
		}
		h := m.Header
		for k, want := range map[string]string{
			"Kinesis-Stream":          "orders",
			"Kinesis-Shard-Id":        r.ShardID,
			"Kinesis-Sequence-Number": r.SequenceNumber,
			"Kinesis-Arrival-Time":    r.Arrival.UTC().Format("2006-01-02T15:04:05.000Z"),
			"Nats-Msg-Id":             "orders:" + r.ShardID + ":" + r.SequenceNumber + ":0",
		} {
			if got := h.Get(k); got != want {
				t.Fatalf("%s: %s = %q, want %q", m.Data, k, got, want)
			}
		}
		if pk := h.Get("Kinesis-Partition-Key"); pk != relay.EscapeHeaderValue(r.PartitionKey) {
			t.Fatalf("partition key header %q for %q", pk, r.PartitionKey)
		}
		if _, ok := h["Kinesis-Sub-Sequence-Number"]; ok {
			t.Fatal("plain record has a sub-sequence number")
		}
	}
	if err := stop(); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}

type kplFixture struct {
	Cases []struct {
		Name           string `json:"name"`
		KinesisRecords []struct {
			PartitionKey    string  `json:"partitionKey"`
			ExplicitHashKey *string `json:"explicitHashKey"`
			Data            string  `json:"data"`
		} `json:"kinesisRecords"`
		UserRecords []struct {
			PartitionKey    string  `json:"partitionKey"`
			ExplicitHashKey *string `json:"explicitHashKey"`
			Data            string  `json:"data"`
		} `json:"userRecords"`
	} `json:"cases"`
}

// loadKPLFixture reads the KPL records made by awslabs' own library.
func loadKPLFixture(t *testing.T) kplFixture {
	t.Helper()
	raw, err := os.ReadFile("../kpl/testdata/kpl-aggregated.json")
	if err != nil {
		t.Fatal(err)
	}
	var fx kplFixture
	if err := json.Unmarshal(raw, &fx); err != nil {
		t.Fatal(err)
	}
	return fx
}

func TestRunKPLFixtureArrivesAsUserRecords(t *testing.T) {
	fx := loadKPLFixture(t)
	e := newE2E(t, emutest.Options(), false)
	if err := e.Emu.CreateStream("s", 1); err != nil {
		t.Fatal(err)
	}
	type want struct{ pk, ehk, data string }
	var wants []want
	for _, c := range fx.Cases {
		for _, kr := range c.KinesisRecords {
			data, _ := base64.StdEncoding.DecodeString(kr.Data)
			ehk := ""
			if kr.ExplicitHashKey != nil {
				ehk = *kr.ExplicitHashKey
			}
			if _, _, err := e.Emu.PutRecordHashKey("s", kr.PartitionKey, ehk, data); err != nil {
				t.Fatal(err)
			}
		}
		for _, ur := range c.UserRecords {
			d, _ := base64.StdEncoding.DecodeString(ur.Data)
			w := want{pk: ur.PartitionKey, data: string(d)}
			if ur.ExplicitHashKey != nil {
				w.ehk = *ur.ExplicitHashKey
			}
			wants = append(wants, w)
		}
	}
	e.run(e.config(false, "  - name: s"))
	testutil.WaitFor(t, 20*time.Second, "user records", func() bool { return len(e.Msgs.OnSubject("kinesis.")) >= len(wants) })
	msgs := e.Msgs.OnSubject("kinesis.")
	if len(msgs) != len(wants) {
		t.Fatalf("%d messages, want %d", len(msgs), len(wants))
	}
	subSeq := 0
	lastSeq := ""
	ids := map[string]bool{}
	for i, m := range msgs {
		w := wants[i]
		if string(m.Data) != w.data || m.Header.Get("Kinesis-Partition-Key") != w.pk || m.Header.Get("Kinesis-Explicit-Hash-Key") != w.ehk {
			t.Fatalf("message %d: %q pk=%q ehk=%q, want %+v", i, m.Data, m.Header.Get("Kinesis-Partition-Key"), m.Header.Get("Kinesis-Explicit-Hash-Key"), w)
		}
		seq := m.Header.Get("Kinesis-Sequence-Number")
		if seq != lastSeq {
			subSeq, lastSeq = 0, seq
		}
		if got := m.Header.Get("Kinesis-Sub-Sequence-Number"); got != fmt.Sprint(subSeq) {
			t.Fatalf("message %d: sub-sequence %q, want %d", i, got, subSeq)
		}
		id := m.Header.Get("Nats-Msg-Id")
		if id != fmt.Sprintf("s:%s:%s:%d", emulator.ShardID(0), seq, subSeq) || ids[id] {
			t.Fatalf("message %d: Nats-Msg-Id %q (sub-records must not collide)", i, id)
		}
		ids[id] = true
		subSeq++
	}
}

func TestRunJetStreamStoresEachRecordOnce(t *testing.T) {
	e := newE2E(t, emutest.Options(), true)
	nc, err := nats.Connect(e.NS.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := nc.JetStream()
	if _, err := js.AddStream(&nats.StreamConfig{Name: "KINESIS", Subjects: []string{"kinesis.>", "fanoutd.deadletter.>"}, Storage: nats.FileStorage}); err != nil {
		t.Fatal(err)
	}
	if err := e.Emu.CreateStream("s", 2); err != nil {
		t.Fatal(err)
	}
	keys := e2e.Keys(5)
	e.Put("s", keys, 0, 20)
	path := e.config(true, "  - name: s")
	stop := e.run(path)
	testutil.WaitFor(t, 20*time.Second, "stored", func() bool {
		si, err := js.StreamInfo("KINESIS")
		return err == nil && si.State.Msgs >= 100
	})
	stop()
	// Forget the checkpoints: the restart replays everything, and JetStream
	// drops the replay by Nats-Msg-Id.
	if err := os.RemoveAll(filepath.Join(e.Dir, "s")); err != nil {
		t.Fatal(err)
	}
	e.Put("s", keys, 20, 5)
	e.run(path)
	testutil.WaitFor(t, 20*time.Second, "stored after replay", func() bool {
		si, err := js.StreamInfo("KINESIS")
		return err == nil && si.State.Msgs >= 125
	})
	// Settle: let the replay finish, then count.
	testutil.WaitFor(t, 20*time.Second, "replay seen by core subscribers", func() bool { return len(e.Msgs.OnSubject("kinesis.")) >= 225 })
	si, err := js.StreamInfo("KINESIS")
	if err != nil {
		t.Fatal(err)
	}
	if si.State.Msgs != 125 {
		t.Fatalf("stream holds %d messages, want 125 (each record once)", si.State.Msgs)
	}
	var stored []*nats.Msg
	for seq := uint64(1); seq <= si.State.LastSeq; seq++ {
		m, err := js.GetMsg("KINESIS", seq)
		if err != nil {
			t.Fatal(err)
		}
		stored = append(stored, &nats.Msg{Subject: m.Subject, Data: m.Data, Header: m.Header})
	}
	e2e.ExactlyOnceInOrder(t, stored, keys, 25)
}

func TestOpenJetStreamWithoutCapturingStreamIsConfigError(t *testing.T) {
	e := newE2E(t, emutest.Options(), true)
	if err := e.Emu.CreateStream("s", 1); err != nil {
		t.Fatal(err)
	}
	_, err := e.open(e.config(true, "  - name: s"))
	if _, ok := errors.AsType[*ConfigError](err); !ok || !strings.Contains(err.Error(), "no JetStream stream captures kinesis.s") {
		t.Fatalf("open: %v", err)
	}
}

func TestRunCreatesConfiguredJetStreamStream(t *testing.T) {
	e := newE2E(t, emutest.Options(), true)
	if err := e.Emu.CreateStream("s", 1); err != nil {
		t.Fatal(err)
	}
	c := e.Config(true, "  - name: s")
	c.NATS = "  stream:\n    name: KINESIS\n    subjects: [\"kinesis.>\", \"fanoutd.deadletter.>\"]\n    duplicate_window: 30s\n"
	path := c.Write(t)
	e.Put("s", e2e.Keys(3), 0, 4)
	e.run(path)
	nc, err := nats.Connect(e.NS.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := nc.JetStream()
	testutil.WaitFor(t, 20*time.Second, "12 stored", func() bool {
		si, err := js.StreamInfo("KINESIS")
		return err == nil && si.State.Msgs == 12
	})
	si, _ := js.StreamInfo("KINESIS")
	if si.Config.Duplicates != 30*time.Second || si.Config.Storage != nats.FileStorage {
		t.Fatalf("stream config %+v", si.Config)
	}
}

// A deleted stream stops alone, reported in the log, the metrics and
// /status; the others keep running. It is probed, and read again (as the
// new stream it is) when it is created again, without a reload.
func TestRunDeletedStreamStopsAloneAndComesBack(t *testing.T) {
	e := newE2E(t, emutest.Options(), false)
	for _, s := range []string{"a", "b"} {
		if err := e.Emu.CreateStream(s, 1); err != nil {
			t.Fatal(err)
		}
	}
	stop := e.run(e.config(false, "  - name: a\n  - name: b"))
	keys := e2e.Keys(2)
	e.Put("a", keys, 0, 3)
	e.Put("b", keys, 0, 3)
	testutil.WaitFor(t, 20*time.Second, "both streams", func() bool { return len(e.Msgs.OnSubject("kinesis.")) >= 12 })
	if err := e.Emu.DeleteStream("a"); err != nil {
		t.Fatal(err)
	}
	e.Put("b", keys, 3, 3)
	testutil.WaitFor(t, 20*time.Second, "stream b goes on", func() bool { return len(e.Msgs.OnSubject("kinesis.b")) >= 12 })
	e2e.ExactlyOnceInOrder(t, e.Msgs.OnSubject("kinesis.b"), keys, 6)
	testutil.WaitFor(t, 20*time.Second, "stream a reported", func() bool {
		return strings.Contains(e.logs.String(), `"stream":"a"`) && strings.Contains(e.logs.String(), "stream deleted; probing")
	})
	addr := e2e.WaitHTTPAddr(t, e.logs)
	if _, body := e2e.Get(t, "http://"+addr+"/metrics"); e2e.MetricValue(body, `fanoutd_stream_stopped{stream="a"}`) != 1 {
		t.Fatalf("no fanoutd_stream_stopped for stream a")
	}
	if _, body := e2e.Get(t, "http://"+addr+"/status"); !strings.Contains(body, `"stopped_streams"`) || !strings.Contains(body, `"a": "stream a: stream not found`) {
		t.Fatalf("/status does not report stream a: %s", body)
	}

	if err := e.Emu.CreateStream("a", 2); err != nil {
		t.Fatal(err)
	}
	e.Put("a", keys, 3, 3)
	testutil.WaitFor(t, 30*time.Second, "stream a read again", func() bool { return len(e.Msgs.OnSubject("kinesis.a")) >= 12 })
	e2e.ExactlyOnceInOrder(t, e.Msgs.OnSubject("kinesis.a"), keys, 6)
	testutil.WaitFor(t, 10*time.Second, "stream a no longer reported stopped", func() bool {
		_, body := e2e.Get(t, "http://"+addr+"/metrics")
		return e2e.MetricValue(body, `fanoutd_stream_stopped{stream="a"}`) <= 0
	})
	if err := stop(); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}

// With AWS's API limits enforced, the daemon's own calls (describe, register,
// consumer polling, shard listing, subscribing) stay within them. (With the
// 20 ms consumer polling of the other tests, this test fails.)
func TestRunStaysWithinAWSLimits(t *testing.T) {
	opts := emutest.Options()
	opts.EnforceLimits = true
	opts.SubscribeRate, opts.TakeoverGrace = 0, 0 // AWS's values
	opts.ConsumerActivationDelay = time.Second
	e := newE2E(t, opts, false)
	for _, s := range []string{"a", "b", "c"} {
		if err := e.Emu.CreateStream(s, 4); err != nil {
			t.Fatal(err)
		}
	}
	c := e.Config(false, "  - name: a\n  - name: b\n  - name: c")
	// Production-like polling; the other test timers are kept.
	c.Timers = map[string]string{"consumer_poll_initial": "500ms", "consumer_poll_max": "5s"}
	e.run(c.Write(t))
	keys := e2e.Keys(8)
	for _, s := range []string{"a", "b", "c"} {
		e.Put(s, keys, 0, 5)
	}
	testutil.WaitFor(t, 30*time.Second, "every record", func() bool { return len(e.Msgs.OnSubject("kinesis.")) >= 120 })
	for _, op := range []string{"DescribeStreamSummary", "RegisterStreamConsumer", "DescribeStreamConsumer", "ListShards"} {
		if n := e.Emu.LimitHits(op); n != 0 {
			t.Errorf("%s throttled %d times", op, n)
		}
	}
}
