package baseline

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/fanoutd/fanoutd/emulator"
	"github.com/fanoutd/fanoutd/internal/testutil"
	"github.com/fanoutd/fanoutd/internal/testutil/emutest"
)

// baselineWorld is an emulator stream of records records on 2 shards and a
// JetStream stream capturing kinesis.>, the SDK's environment pointing at
// the emulator.
func baselineWorld(t *testing.T, records int, streamMaxMsgs int64) (*emulator.Server, string, jetstream.JetStream, map[string]bool) {
	t.Helper()
	emu, err := emulator.New(emutest.Options())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emu.Close() })
	for _, line := range emu.EnvLines() {
		k, v, _ := strings.Cut(line, "=")
		t.Setenv(k, v)
	}
	if err := emu.CreateStream("s", 2); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for i := range records {
		shard, seq, err := emu.PutRecord("s", fmt.Sprintf("key-%d", i), []byte(fmt.Sprintf("record %d", i)))
		if err != nil {
			t.Fatal(err)
		}
		want[shard+"/"+seq] = true
	}
	ns := testutil.StartNATS(t, testutil.NATSOptions{JetStream: true})
	js := testutil.JetStream(t, ns.ClientURL())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "RECORDS", Subjects: []string{"kinesis.>"},
		Storage: jetstream.FileStorage, MaxMsgs: streamMaxMsgs, Discard: jetstream.DiscardNew}); err != nil {
		t.Fatal(err)
	}
	return emu, ns.ClientURL(), js, want
}

// startBaseline runs the relay until the test ends.
func startBaseline(t *testing.T, c Config) *publisher {
	t.Helper()
	nc, err := nats.Connect(c.NATSURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	pub, err := newPublisher(nc, c)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, c, pub) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("baseline: %v", err)
		}
	})
	return pub
}

func streamMsgs(t *testing.T, js jetstream.JetStream) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, "RECORDS")
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// checkExactlyOnce reads the whole stream: every record of want once, with
// the Nats-Msg-Id stream:shard:sequence:0, and nothing else.
func checkExactlyOnce(t *testing.T, js jetstream.JetStream, want map[string]bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, "RECORDS", jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	n := streamMsgs(t, js)
	if n != uint64(len(want)) {
		t.Fatalf("stream holds %d messages, want %d", n, len(want))
	}
	got := map[string]bool{}
	for range n {
		m, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatal(err)
		}
		h := m.Headers()
		key := h.Get("Kinesis-Shard-Id") + "/" + h.Get("Kinesis-Sequence-Number")
		if got[key] || !want[key] {
			t.Fatalf("record %s stored twice, or not written", key)
		}
		got[key] = true
		if id, wantID := h.Get(nats.MsgIdHdr), "s:"+h.Get("Kinesis-Shard-Id")+":"+h.Get("Kinesis-Sequence-Number")+":0"; id != wantID {
			t.Errorf("Nats-Msg-Id %q, want %q", id, wantID)
		}
	}
}

// Both JetStream baselines relay every record into the stream exactly once.
func TestBaselineJetStreamExactlyOnce(t *testing.T) {
	for _, publish := range []string{PublishAsync, PublishSync} {
		t.Run(publish, func(t *testing.T) {
			const records = 500
			_, url, js, want := baselineWorld(t, records, -1)
			pub := startBaseline(t, Config{Stream: "s", Consumer: "baseline", NATSURL: url, JetStream: true, Subject: "kinesis.s", Publish: publish})
			testutil.WaitFor(t, 30*time.Second, "every record stored", func() bool { return streamMsgs(t, js) >= records })
			checkExactlyOnce(t, js, want)
			if n := pub.republished.Load(); n != 0 {
				t.Errorf("%d messages published again without a failed ack", n)
			}
		})
	}
}

// A message whose PubAck is an error (the stream is full, discard new) is
// published again with the same Nats-Msg-Id; once the stream takes it,
// every record is stored exactly once.
func TestBaselineAsyncRepublishesFailedAck(t *testing.T) {
	const records, room = 500, 100
	_, url, js, want := baselineWorld(t, records, room)
	pub := startBaseline(t, Config{Stream: "s", Consumer: "baseline", NATSURL: url, JetStream: true, Subject: "kinesis.s"})
	testutil.WaitFor(t, 30*time.Second, "a failed ack published again", func() bool { return pub.republished.Load() > 0 })
	if n := streamMsgs(t, js); n != room {
		t.Fatalf("full stream holds %d messages, want %d", n, room)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.UpdateStream(ctx, jetstream.StreamConfig{Name: "RECORDS", Subjects: []string{"kinesis.>"},
		Storage: jetstream.FileStorage, MaxMsgs: -1, Discard: jetstream.DiscardNew}); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 30*time.Second, "every record stored", func() bool { return streamMsgs(t, js) >= records })
	checkExactlyOnce(t, js, want)
}
