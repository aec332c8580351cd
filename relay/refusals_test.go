package relay

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/fanoutd/fanoutd/record"
)

// startDenyingServer starts a nats-server where user "fanoutd" may publish
// anywhere but on deny, and user "reader" may do anything.
func startDenyingServer(t *testing.T, deny string) *server.Server {
	t.Helper()
	srv, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true,
		Users: []*server.User{
			{Username: "fanoutd", Password: "pw", Permissions: &server.Permissions{
				Publish: &server.SubjectPermission{Allow: []string{">"}, Deny: []string{deny}}}},
			{Username: "reader", Password: "pw"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(srv.Shutdown)
	return srv
}

func keyedBatch(shard, key string, n int) *record.Batch {
	b := &record.Batch{Stream: testStream, ShardID: shard, Consumer: "fanoutd", ContinuationSequenceNumber: "9"}
	for i := range n {
		b.Records = append(b.Records, record.Record{Data: fmt.Appendf(nil, "%s %d", key, i), PartitionKey: key,
			SequenceNumber: fmt.Sprint(49590000000 + i)})
	}
	return b
}

// A publish the server refuses for permissions comes back as an asynchronous
// -ERR while the flush succeeds: the batch must fail (and so not be
// checkpointed), once logged per subject, while other subjects keep flowing.
func TestHandleCorePermissionDenied(t *testing.T) {
	t.Parallel()
	for _, direct := range []bool{true, false} {
		t.Run(fmt.Sprintf("direct=%t", direct), func(t *testing.T) { corePermissionDenied(t, direct) })
	}
}

func corePermissionDenied(t *testing.T, direct bool) {
	srv := startDenyingServer(t, "kinesis.orders.denied")
	log := &logBuffer{}
	co := ConnOptions{Servers: []string{srv.ClientURL()}, User: "fanoutd", Password: "pw", ConnectTimeout: 5 * time.Second}
	nc, err := Connect(context.Background(), co, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	p := newNATSGoPublisher(t, nc, Options{Log: zerolog.New(log)})
	if direct {
		p = newTestPublisher(t, nc, Options{Log: zerolog.New(log), Direct: &co})
	}

	rc, err := nats.Connect(srv.ClientURL(), nats.UserInfo("reader", "pw"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rc.Close)
	sub, err := rc.SubscribeSync("kinesis.>")
	if err != nil {
		t.Fatal(err)
	}
	sub.SetPendingLimits(-1, -1)
	rc.Flush()

	for round := range 3 {
		err := p.Handle(context.Background(), keyedBatch("shardId-000000000001", "denied", 5))
		if err == nil || !errors.Is(err, nats.ErrPermissionViolation) {
			t.Fatalf("round %d: Handle of a denied batch = %v, want a permissions violation", round, err)
		}
		if err := p.Handle(context.Background(), keyedBatch("shardId-000000000002", "allowed", 5)); err != nil {
			t.Fatalf("round %d: Handle of an allowed batch: %v", round, err)
		}
	}
	if nc.Status() != nats.CONNECTED {
		t.Fatalf("connection %s", nc.Status())
	}
	for i := range 15 {
		m, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("allowed message %d: %v", i, err)
		}
		if m.Subject != "kinesis.orders.allowed" {
			t.Fatalf("message on %s", m.Subject)
		}
	}
	st := p.Stats()
	if st.AsyncErrors != 3 || st.FailedBatches != 3 || st.Published != 15 {
		t.Errorf("Stats() = %+v, want 3 async errors, 3 failed batches, 15 published", st)
	}
	if n := strings.Count(log.String(), "refuses fanoutd's publishes to this subject"); n != 1 {
		t.Errorf("the denial is logged %d times, want once:\n%s", n, log.String())
	}
	if !strings.Contains(log.String(), `"subject":"kinesis.orders.denied"`) {
		t.Errorf("the log does not name the subject:\n%s", log.String())
	}
	if direct {
		checkDirect(t, p)
	}
}

// A rendered subject over the control line never reaches the server (which
// would close the shared connection): the record becomes a bounded dead
// letter, and the other shards on the connection keep flowing.
func TestHandleSubjectTooLong(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("k", 5000)
	for _, js := range []bool{false, true} {
		t.Run(fmt.Sprintf("jetstream=%t", js), func(t *testing.T) {
			s := startServer(t, testServerConfig{JetStream: js})
			nc := s.connect(t)
			p := newTestPublisher(t, nc, Options{JetStream: js})
			var st jetstream.Stream
			var subNC *nats.Conn
			var sub *nats.Subscription
			if js {
				st = createStream(t, s, jetstream.StreamConfig{})
			} else {
				subNC, sub = subscribe(t, s, ">")
			}

			// A KPL aggregate whose second sub-record has a 5 000-byte key.
			agg := keyedBatch("shardId-000000000001", "short", 3)
			for i := range agg.Records {
				agg.Records[i].SequenceNumber = "49590000000"
				agg.Records[i].SubSequenceNumber = int64(i)
				agg.Records[i].Aggregated = true
			}
			agg.Records[1].PartitionKey = long
			agg.Records[1].ExplicitHashKey = strings.Repeat("1", 1000)
			other := keyedBatch("shardId-000000000002", "other", 20)

			errs := make(chan error, 2)
			go func() { errs <- p.Handle(context.Background(), other) }()
			go func() { errs <- p.Handle(context.Background(), agg) }()
			for range 2 {
				if err := <-errs; err != nil {
					t.Fatalf("Handle: %v", err)
				}
			}
			if err := p.Handle(context.Background(), keyedBatch("shardId-000000000003", "after", 5)); err != nil {
				t.Fatalf("Handle after the long subject: %v", err)
			}
			if nc.Status() != nats.CONNECTED {
				t.Fatalf("connection %s, want CONNECTED", nc.Status())
			}

			var got []*nats.Msg
			if js {
				for _, m := range streamMsgs(t, st) {
					got = append(got, &nats.Msg{Subject: m.Subject, Header: m.Header, Data: m.Data})
				}
			} else {
				got = receiveExactly(t, subNC, sub, 28)
			}
			if len(got) != 28 {
				t.Fatalf("%d messages, want 28", len(got))
			}
			var dead []*nats.Msg
			for _, m := range got {
				if strings.HasPrefix(m.Subject, "fanoutd.deadletter.") {
					dead = append(dead, m)
				}
			}
			if len(dead) != 1 {
				t.Fatalf("%d dead letters, want 1", len(dead))
			}
			d := dead[0]
			if r := d.Header.Get(HeaderDeadLetterReason); !strings.HasPrefix(r, ReasonSubjectTooLong+":") {
				t.Errorf("reason %q", r)
			}
			if d.Header.Get(nats.MsgIdHdr) != MsgID(testStream, "shardId-000000000001", "49590000000", 1) {
				t.Errorf("dead letter Nats-Msg-Id %q", d.Header.Get(nats.MsgIdHdr))
			}
			for _, k := range []string{HeaderPartitionKey, HeaderExplicitHashKey, HeaderOriginalSubject} {
				if v := d.Header.Get(k); len(v) > maxDeadLetterValue || !strings.HasSuffix(v, "...") {
					t.Errorf("dead letter header %s has %d bytes, want at most %d ending in ...", k, len(v), maxDeadLetterValue)
				}
			}
			if ps := p.Stats(); ps.DeadLettered != 1 || ps.Published != 27 {
				t.Errorf("Stats() = %+v, want 1 dead-lettered, 27 published", ps)
			}
		})
	}
}

// A batch bigger than a chunk is published and confirmed chunk by chunk,
// each within its own publish timeout, and every record arrives once.
func TestHandleChunks(t *testing.T) {
	t.Parallel()
	const n = 3*chunkMessages + 7
	for _, js := range []bool{false, true} {
		t.Run(fmt.Sprintf("jetstream=%t", js), func(t *testing.T) {
			s := startServer(t, testServerConfig{JetStream: js})
			p := newTestPublisher(t, s.connect(t), Options{JetStream: js})
			flushes := 0
			beforeFlush(p, func() { flushes++ })
			b := keyedBatch("shardId-000000000001", "k", n)
			if js {
				st := createStream(t, s, jetstream.StreamConfig{})
				if err := p.Handle(context.Background(), b); err != nil {
					t.Fatal(err)
				}
				info, err := st.Info(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				if info.State.Msgs != n {
					t.Fatalf("stream holds %d messages, want %d", info.State.Msgs, n)
				}
				return
			}
			subNC, sub := subscribe(t, s, ">")
			if err := p.Handle(context.Background(), b); err != nil {
				t.Fatal(err)
			}
			receiveExactly(t, subNC, sub, n)
			if flushes != 4 {
				t.Errorf("%d flushes for %d records, want 4 (one per chunk of %d)", flushes, n, chunkMessages)
			}
		})
	}
}

func TestChunkEnd(t *testing.T) {
	t.Parallel()
	small := make([]record.Record, 2500)
	if got := chunkEnd(small, 0); got != chunkMessages {
		t.Errorf("chunkEnd(2500 small, 0) = %d", got)
	}
	if got := chunkEnd(small, 2000); got != 2500 {
		t.Errorf("chunkEnd(2500 small, 2000) = %d", got)
	}
	big := []record.Record{{Data: make([]byte, 3<<20)}, {Data: make([]byte, 3<<20)}, {Data: make([]byte, 5<<20)}}
	for start, want := range []int{1, 2, 3} {
		if got := chunkEnd(big, start); got != want {
			t.Errorf("chunkEnd(big, %d) = %d, want %d", start, got, want)
		}
	}
}

func TestTruncateHeaderValue(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ in, want string }{
		{"short", "short"},
		{"abcdefghijk", "abcdefg..."},
		{"abcdef%C3%A9", "abcdef..."},
		{"abcde%C3%A9", "abcde..."},
	} {
		if got := truncateHeaderValue(c.in, 10); got != c.want {
			t.Errorf("truncateHeaderValue(%q, 10) = %q, want %q", c.in, got, c.want)
		}
	}
}
