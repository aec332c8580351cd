package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/fanoutd/fanoutd/internal/testutil"
	"github.com/fanoutd/fanoutd/internal/testutil/e2e"
	"github.com/fanoutd/fanoutd/internal/testutil/emutest"
	"github.com/fanoutd/fanoutd/kpl"
	"github.com/fanoutd/fanoutd/record"
	"github.com/fanoutd/fanoutd/relay"
)

// createRecordStream creates a JetStream stream capturing only the record
// subjects, as the README tells users to: the dead letters are left to
// fanoutd.
func createRecordStream(t *testing.T, url string, subjects ...string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: "KINESIS", Subjects: subjects, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	return js
}

func streamMsgCount(js jetstream.JetStream, name string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, name)
	if err != nil {
		return -1
	}
	return int(s.CachedInfo().State.Msgs)
}

// deploy/fanoutd.example.yaml starts as shipped against a fresh JetStream
// server with a stream for its record subjects: fanoutd creates the
// dead-letter stream itself and becomes ready.
func TestExampleConfigStartsAgainstFreshJetStream(t *testing.T) {
	opts := emutest.Options()
	opts.AccountID = "123456789012" // the account of the example's ARN
	e := newE2E(t, opts, true)
	for _, s := range []string{"orders", "clicks"} {
		if err := e.Emu.CreateStream(s, 2); err != nil {
			t.Fatal(err)
		}
	}
	js := createRecordStream(t, e.NS.ClientURL(), "kinesis.>", "clicks.>")

	raw, err := os.ReadFile("../deploy/fanoutd.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	port := testutil.FreePort(t)
	cfg := string(raw)
	// Point the shipped file at the test servers; nothing else changes.
	for _, r := range []struct{ re, with string }{
		{`(?m)^  servers: .*$`, fmt.Sprintf("  servers: [%q]", e.NS.ClientURL())},
		{`(?m)^  dir: /var/lib/fanoutd$`, fmt.Sprintf("  dir: %q", e.Dir)},
	} {
		re := regexp.MustCompile(r.re)
		if !re.MatchString(cfg) {
			t.Fatalf("the example config no longer matches %s", r.re)
		}
		cfg = re.ReplaceAllString(cfg, r.with)
	}
	cfg += fmt.Sprintf("http:\n  listen: \"127.0.0.1:%d\"\n", port)
	path := filepath.Join(t.TempDir(), "fanoutd.yaml")
	os.WriteFile(path, []byte(cfg), 0o600)

	e.run(path)
	testutil.WaitFor(t, 30*time.Second, "ready", func() bool {
		res, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", port))
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK
	})
	e.Put("orders", e2e.Keys(3), 0, 2)
	testutil.WaitFor(t, 30*time.Second, "orders stored", func() bool { return len(e.Msgs.OnSubject("kinesis.orders.")) >= 6 })
	// clicks starts at LATEST: write until a record arrives.
	testutil.WaitFor(t, 30*time.Second, "clicks stored", func() bool {
		if _, _, err := e.Emu.PutRecord("clicks", "k", []byte("click")); err != nil {
			t.Fatal(err)
		}
		return len(e.Msgs.OnSubject("clicks.")) >= 1
	})
	e2e.ExactlyOnceInOrder(t, e.Msgs.OnSubject("kinesis.orders."), e2e.Keys(3), 2)
	if n := streamMsgCount(js, "KINESIS"); n < 7 {
		t.Fatalf("KINESIS holds %d messages, want at least 7", n)
	}
	if n := streamMsgCount(js, "FANOUTD_DEAD_LETTERS"); n != 0 {
		t.Fatalf("dead-letter stream: %d messages", n)
	}
}

// With no stream for the dead letters, fanoutd creates one (defaults: file
// storage, one replica on a single server with a warning, 7 days), and a
// KPL sub-record whose 5 000-character partition key makes its subject too
// long lands there while the other records keep flowing.
func TestRunCreatesDeadLetterStreamAndDeadLettersLongSubjects(t *testing.T) {
	for _, jsMode := range []bool{false, true} {
		t.Run(fmt.Sprintf("jetstream=%t", jsMode), func(t *testing.T) {
			e := newE2E(t, emutest.Options(), jsMode)
			if err := e.Emu.CreateStream("s", 2); err != nil {
				t.Fatal(err)
			}
			var js jetstream.JetStream
			if jsMode {
				js = createRecordStream(t, e.NS.ClientURL(), "kinesis.>")
			}
			keys := e2e.Keys(4)
			e.Put("s", keys, 0, 3)
			e.run(e.config(jsMode, "  - name: s\n    subject: \"kinesis.{stream}.{partition_key}\""))
			long := strings.Repeat("p", 5000)
			agg := kpl.Aggregate([]record.Record{
				{PartitionKey: "agg", Data: []byte("agg:0")},
				{PartitionKey: long, Data: []byte("long")},
				{PartitionKey: "agg", Data: []byte("agg:1")},
			})
			if _, _, err := e.Emu.PutRecord("s", "agg", agg); err != nil {
				t.Fatal(err)
			}
			e.Put("s", keys, 3, 3)
			testutil.WaitFor(t, 30*time.Second, "records and the dead letter", func() bool {
				return len(e.Msgs.OnSubject("kinesis.s.")) >= 4*6+2 && len(e.Msgs.OnSubject("fanoutd.deadletter.s")) >= 1
			})
			var recs []*nats.Msg
			for _, m := range e.Msgs.OnSubject("kinesis.s.") {
				if !strings.HasPrefix(string(m.Data), "agg:") {
					recs = append(recs, m)
				}
			}
			e2e.ExactlyOnceInOrder(t, recs, keys, 6)
			dl := e.Msgs.OnSubject("fanoutd.deadletter.s")[0]
			if r := dl.Header.Get(relay.HeaderDeadLetterReason); !strings.HasPrefix(r, "subject_too_long") {
				t.Fatalf("dead-letter reason %q", r)
			}
			if got := dl.Header.Get(relay.HeaderSubSequenceNumber); got != "1" {
				t.Fatalf("dead letter of sub-record %q, want 1", got)
			}
			if strings.Contains(e.logs.String(), "NATS connection closed") || strings.Contains(e.logs.String(), "disconnected from NATS") {
				t.Fatalf("the NATS connection dropped:\n%s", e.logs.String())
			}
			if !jsMode {
				return
			}
			testutil.WaitFor(t, 10*time.Second, "dead letter stored", func() bool { return streamMsgCount(js, relayDeadLetterStream) == 1 })
			ctx := context.Background()
			s, err := js.Stream(ctx, relayDeadLetterStream)
			if err != nil {
				t.Fatal(err)
			}
			c := s.CachedInfo().Config
			if c.Storage != jetstream.FileStorage || c.Replicas != 1 || c.MaxAge != 7*24*time.Hour ||
				len(c.Subjects) != 1 || c.Subjects[0] != "fanoutd.deadletter.*" {
				t.Fatalf("dead-letter stream config %+v", c)
			}
			if !strings.Contains(e.logs.String(), "created the dead-letter stream with one replica") {
				t.Fatalf("no warning about one replica:\n%s", e.logs.String())
			}
		})
	}
}

const relayDeadLetterStream = "FANOUTD_DEAD_LETTERS"

// Without permission to create the dead-letter stream the daemon does not
// start, with a ConfigError naming the permission.
func TestOpenDeadLetterStreamWithoutPermissionIsConfigError(t *testing.T) {
	e := newE2E(t, emutest.Options(), false)
	if err := e.Emu.CreateStream("s", 1); err != nil {
		t.Fatal(err)
	}
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true,
		JetStream: true, StoreDir: t.TempDir(),
		Users: []*server.User{
			{Username: "fanoutd", Password: "pw", Permissions: &server.Permissions{
				Publish: &server.SubjectPermission{Allow: []string{">"}, Deny: []string{"$JS.API.STREAM.CREATE.>"}}}},
			{Username: "admin", Password: "pw"},
		}})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(srv.Shutdown)
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("not ready")
	}
	nc, err := nats.Connect(srv.ClientURL(), nats.UserInfo("admin", "pw"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: "KINESIS", Subjects: []string{"kinesis.>"}}); err != nil {
		t.Fatal(err)
	}
	c := e.Config(true, "  - name: s")
	c.Servers, c.NATS = []string{srv.ClientURL()}, "  user: fanoutd\n  password: pw\n"
	_, err = e.open(c.Write(t))
	if _, ok := errors.AsType[*ConfigError](err); !ok || !strings.Contains(err.Error(), "$JS.API.STREAM.CREATE.FANOUTD_DEAD_LETTERS") ||
		!strings.Contains(err.Error(), "fanoutd.deadletter.*") {
		t.Fatalf("open: %v", err)
	}
}

// Core NATS mode, a NATS user without publish permission on one stream's
// subjects: that stream's batches fail and are not checkpointed (the
// denial logged once, with what to change, and counted), the other stream
// keeps flowing on the same connection; once the permission is granted the
// records arrive, replayed from the checkpoint.
func TestRunCorePublishPermissionDenied(t *testing.T) {
	e := newE2E(t, emutest.Options(), false)
	for _, s := range []string{"a", "b"} {
		if err := e.Emu.CreateStream(s, 1); err != nil {
			t.Fatal(err)
		}
	}
	users := func(deny ...string) []*server.User {
		perms := &server.Permissions{Publish: &server.SubjectPermission{Allow: []string{">"}, Deny: deny}}
		return []*server.User{{Username: "fanoutd", Password: "pw", Permissions: perms}, {Username: "reader", Password: "pw"}}
	}
	opts := &server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true, Users: users("kinesis.b")}
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(srv.Shutdown)
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("not ready")
	}
	msgs := &e2e.Collector{}
	rc, err := nats.Connect(srv.ClientURL(), nats.UserInfo("reader", "pw"))
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	rc.Subscribe(">", msgs.Add)
	rc.Flush()

	c := e.Config(false, "  - name: a\n  - name: b")
	c.Servers, c.NATS = []string{srv.ClientURL()}, "  user: fanoutd\n  password: pw\n"
	path := c.Write(t)
	keys := e2e.Keys(3)
	e.Put("a", keys, 0, 2)
	_, firstB, err := e.Emu.PutRecord("b", "denied", []byte("denied:0"))
	if err != nil {
		t.Fatal(err)
	}
	e.run(path)
	testutil.WaitFor(t, 20*time.Second, "stream a and retries of b", func() bool {
		return len(msgs.OnSubject("kinesis.a")) >= 6 && strings.Count(e.logs.String(), "could not deliver a batch") >= 3
	})
	e.Put("a", keys, 2, 2)
	// A refusal can't be pinned on one batch (the streams share the
	// connection): a batch of a in flight with one of b's fails too and is
	// replayed, so a's records arrive at least once.
	testutil.WaitFor(t, 20*time.Second, "stream a keeps flowing", func() bool {
		seen := map[string]bool{}
		for _, m := range msgs.OnSubject("kinesis.a") {
			seen[string(m.Data)] = true
		}
		return len(seen) >= 12
	})
	testutil.CheckDelivered(t, e2e.Deliveries(msgs.OnSubject("kinesis.a")), testutil.Want(keys, 4), testutil.AtLeastOnce)
	if n := len(msgs.OnSubject("kinesis.b")); n != 0 {
		t.Fatalf("%d messages on the denied subject", n)
	}
	files, _ := filepath.Glob(filepath.Join(e.Dir, "b", "fanoutd", "*.json"))
	for _, f := range files {
		raw, _ := os.ReadFile(f)
		var cp struct {
			SequenceNumber string `json:"sequence_number"`
		}
		json.Unmarshal(raw, &cp)
		if e2e.SeqAtLeast(cp.SequenceNumber, firstB) {
			t.Fatalf("stream b checkpointed at %s, past the refused record %s", cp.SequenceNumber, firstB)
		}
	}
	logs := e.logs.String()
	if n := strings.Count(logs, "refuses fanoutd's publishes to this subject"); n != 1 {
		t.Fatalf("the denial is logged %d times, want once:\n%s", n, logs)
	}

	// Grant the permission: the refused record arrives, replayed.
	opts.Users = users()
	if err := srv.ReloadOptions(opts); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 20*time.Second, "stream b after the grant", func() bool { return len(msgs.OnSubject("kinesis.b")) >= 1 })
	if got := string(msgs.OnSubject("kinesis.b")[0].Data); got != "denied:0" {
		t.Fatalf("stream b: %q", got)
	}
}

// A reload runs the capture checks first: a new stream whose subject no
// JetStream stream captures is rejected and the running config stays.
func TestReloadRejectsUncapturedSubject(t *testing.T) {
	e := newE2E(t, emutest.Options(), true)
	for _, s := range []string{"a", "b"} {
		if err := e.Emu.CreateStream(s, 1); err != nil {
			t.Fatal(err)
		}
	}
	// The stream captures the dead letters too: the reload check, not the
	// start, is what this test is about.
	js := createRecordStream(t, e.NS.ClientURL(), "kinesis.>", "fanoutd.deadletter.>")
	c := e.Config(true, "  - name: a")
	stop := e.run(c.Write(t))
	keys := e2e.Keys(3)
	e.Put("a", keys, 0, 2)
	testutil.WaitFor(t, 20*time.Second, "stream a", func() bool { return streamMsgCount(js, "KINESIS") == 6 })

	c.Streams += "\n  - name: b\n    subject: \"other.{stream}\""
	if err := e.d.Reload(t.Context(), c.Write(t)); err == nil || !strings.Contains(err.Error(), "no JetStream stream captures other.b") {
		t.Fatalf("reload: %v", err)
	}
	if logs := e.logs.String(); !strings.Contains(logs, "config reload rejected") || strings.Contains(logs, "configuration reloaded") {
		t.Fatalf("the reload is not logged as rejected:\n%s", logs)
	}
	e.Put("a", keys, 2, 2)
	testutil.WaitFor(t, 20*time.Second, "a still relayed", func() bool { return streamMsgCount(js, "KINESIS") == 12 })
	if err := stop(); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}
