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

	"github.com/fanoutd/fanoutd/internal/testutil"
	"github.com/fanoutd/fanoutd/record"
)

// checkDirect fails unless p's core messages went on its direct
// connection.
func checkDirect(t *testing.T, p *Publisher) {
	t.Helper()
	p.direct.mu.Lock()
	defer p.direct.mu.Unlock()
	if p.direct.conn == nil || p.direct.conn.Err() != nil {
		t.Fatal("no direct connection: core messages went through nats.go")
	}
}

// directInMsgs is how many messages the server received from the
// connections named name.
func directInMsgs(t *testing.T, srv *server.Server, name string) int64 {
	t.Helper()
	cz, err := srv.Connz(&server.ConnzOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, c := range cz.Conns {
		if c.Name == name {
			n += c.InMsgs
		}
	}
	return n
}

// The direct connection is made with every way fanoutd authenticates and
// with TLS, as the main connection is; each record arrives once, with its
// headers, and the server counts it on the direct connection.
func TestDirectConnectsAsTheMainConnection(t *testing.T) {
	t.Parallel()
	pki := newTestPKI(t)
	seedPub, seedFile := testSeed(t)
	type setup struct {
		srv *server.Server
		co  ConnOptions
	}
	plain := func(t *testing.T, cfg testServerConfig, f func(co *ConnOptions)) setup {
		s := startServer(t, cfg)
		co := s.natsConfig()
		f(&co)
		return setup{s.srv, co}
	}
	cases := []struct {
		name  string
		setup func(t *testing.T) setup
	}{
		{"no auth", func(t *testing.T) setup { return plain(t, testServerConfig{}, func(*ConnOptions) {}) }},
		{"token", func(t *testing.T) setup {
			return plain(t, testServerConfig{Token: "tok"}, func(co *ConnOptions) { co.Token = "tok" })
		}},
		{"token in URL", func(t *testing.T) setup {
			return plain(t, testServerConfig{Token: "tok"}, func(co *ConnOptions) {
				co.Servers = []string{strings.Replace(co.Servers[0], "nats://", "nats://tok@", 1)}
			})
		}},
		{"user and password", func(t *testing.T) setup {
			return plain(t, testServerConfig{User: "u", Password: "pw"}, func(co *ConnOptions) { co.User, co.Password = "u", "pw" })
		}},
		{"password in URL", func(t *testing.T) setup {
			return plain(t, testServerConfig{User: "u", Password: "pw"}, func(co *ConnOptions) {
				co.Servers = []string{strings.Replace(co.Servers[0], "nats://", "nats://u:pw@", 1)}
			})
		}},
		{"nkey", func(t *testing.T) setup {
			return plain(t, testServerConfig{NKey: seedPub}, func(co *ConnOptions) { co.NKeySeedFile = seedFile })
		}},
		{"creds", func(t *testing.T) setup {
			srv, creds := testutil.StartCredsServer(t)
			return setup{srv, ConnOptions{Servers: []string{srv.ClientURL()}, CredsFile: creds}}
		}},
		{"TLS", func(t *testing.T) setup {
			return plain(t, testServerConfig{TLS: pki}, func(co *ConnOptions) { co.CAFile = pki.CA })
		}},
		{"TLS with a client certificate", func(t *testing.T) setup {
			return plain(t, testServerConfig{TLS: pki, VerifyTLS: true}, func(co *ConnOptions) {
				co.CAFile, co.CertFile, co.KeyFile = pki.CA, pki.ClientCert, pki.ClientKey
			})
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			st := tc.setup(t)
			st.co.ConnectTimeout = 10 * time.Second
			nc, err := Connect(context.Background(), st.co, zerolog.Nop())
			if err != nil {
				t.Fatalf("Connect: %v", err)
			}
			t.Cleanup(nc.Close)
			direct := st.co
			direct.Name = "direct"
			p := newTestPublisher(t, nc, Options{Direct: &direct})
			sub, err := nc.SubscribeSync("kinesis.>")
			if err != nil {
				t.Fatal(err)
			}
			if err := nc.Flush(); err != nil {
				t.Fatal(err)
			}
			b := testBatch(5)
			if err := p.Handle(context.Background(), b); err != nil {
				t.Fatalf("Handle: %v", err)
			}
			checkDirect(t, p)
			for i := range b.Records {
				m, err := sub.NextMsg(10 * time.Second)
				if err != nil {
					t.Fatal(err)
				}
				checkMsg(t, m, b, &b.Records[i])
			}
			if n := directInMsgs(t, st.srv, "direct"); n != int64(len(b.Records)) {
				t.Errorf("the server received %d messages on the direct connection, want %d", n, len(b.Records))
			}
		})
	}
}

// A direct connection that cannot be made (here, a wrong token) is
// logged, without the secret, and core messages go through nats.go.
func TestDirectFallsBackToNATSGo(t *testing.T) {
	t.Parallel()
	s := startServer(t, testServerConfig{Token: "right-s3cret"})
	co := s.natsConfig()
	co.Token = "right-s3cret"
	nc, err := Connect(context.Background(), co, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	subNC, sub := subscribeWith(t, s, "kinesis.>", nats.Token("right-s3cret"))
	logs := &logBuffer{}
	wrong := co
	wrong.Token = "wrong-s3cret"
	p := newTestPublisher(t, nc, Options{Direct: &wrong, Log: zerolog.New(logs)})
	b := testBatch(5)
	if err := p.Handle(context.Background(), b); err != nil {
		t.Fatalf("Handle: %v", err)
	}
	for i, m := range receiveExactly(t, subNC, sub, len(b.Records)) {
		checkMsg(t, m, b, &b.Records[i])
	}
	if !strings.Contains(logs.String(), "NATS publish connection failed") || !strings.Contains(strings.ToLower(logs.String()), "authorization violation") {
		t.Errorf("logs do not say why the direct connection failed:\n%s", logs)
	}
	checkNoSecret(t, "wrong-s3cret", nil, logs)
}

// A direct connection lost between a chunk's writes and its flush fails
// the batch (what was written may be lost); the replay delivers every
// record.
func TestDirectConnectionLostDuringBatch(t *testing.T) {
	t.Parallel()
	s := startServer(t, testServerConfig{})
	nc := s.connect(t)
	direct := s.natsConfig()
	direct.Name = "direct"
	p := newTestPublisher(t, nc, Options{Direct: &direct})
	subNC, sub := subscribe(t, s, "kinesis.>")
	kicked := false
	beforeFlush(p, func() {
		cz, err := s.srv.Connz(&server.ConnzOptions{})
		if err != nil {
			t.Error(err)
			return
		}
		for _, c := range cz.Conns {
			if c.Name == "direct" {
				kicked = s.srv.DisconnectClientByID(c.Cid) == nil
			}
		}
	})
	b := testBatch(5)
	err := p.Handle(context.Background(), b)
	if !kicked {
		t.Fatal("the direct connection was not found to disconnect")
	}
	if err == nil {
		t.Fatal("Handle = nil after the direct connection was lost before the flush")
	}
	beforeFlush(p, nil)
	if err := p.Handle(context.Background(), b); err != nil {
		t.Fatalf("Handle after the loss: %v", err)
	}
	// The first attempt may have delivered some of them: the last five
	// received are the replay's, in order. The subscriber's flush comes
	// back after every message the server queued for it before.
	if err := subNC.Flush(); err != nil {
		t.Fatal(err)
	}
	pending, _, err := sub.Pending()
	if err != nil {
		t.Fatal(err)
	}
	var got []*nats.Msg
	for range pending {
		m, err := sub.NextMsg(time.Second)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, m)
	}
	if len(got) < len(b.Records) {
		t.Fatalf("received %d messages, want at least %d", len(got), len(b.Records))
	}
	for i, m := range got[len(got)-len(b.Records):] {
		checkMsg(t, m, b, &b.Records[i])
	}
}

// appendTo writes exactly what encodedLen says, and the server and
// nats.go read the same headers back, for every kind of record.
func TestRecordHeaderAppendTo(t *testing.T) {
	t.Parallel()
	b := testBatch(1)
	base := b.Records[0]
	agg := base
	agg.Aggregated, agg.SubSequenceNumber, agg.ExplicitHashKey = true, 7, "340282366920938463463374607431768211455"
	noTime := base
	noTime.ArrivalTime = time.Time{}
	logEvent := base
	logEvent.Unpacked = &record.Unpacked{Index: 3, LogGroup: "/aws/lambda/f", LogStream: "s", Owner: "123", EventID: "e1", Timestamp: 1700000000123}
	rh := newRecordHeader()
	for i, rec := range []record.Record{base, agg, noTime, logEvent, base} {
		rh.set(b, &rec)
		enc := rh.appendTo([]byte("x"))[1:]
		if len(enc) != rh.encodedLen() {
			t.Errorf("record %d: appendTo wrote %d bytes, encodedLen says %d", i, len(enc), rh.encodedLen())
		}
		got := parseHeader(t, enc)
		want := rh.h
		if len(got) != len(want) {
			t.Errorf("record %d: %d headers, want %d: %v", i, len(got), len(want), got)
		}
		for k, v := range want {
			if got.Get(k) != v[0] {
				t.Errorf("record %d: %s = %q, want %q", i, k, got.Get(k), v[0])
			}
		}
	}
}

// parseHeader reads a NATS header block as a client does.
func parseHeader(t *testing.T, enc []byte) nats.Header {
	t.Helper()
	s := string(enc)
	if !strings.HasPrefix(s, "NATS/1.0\r\n") || !strings.HasSuffix(s, "\r\n\r\n") {
		t.Fatalf("not a header block: %q", s)
	}
	h := nats.Header{}
	for _, line := range strings.Split(strings.TrimSuffix(strings.TrimPrefix(s, "NATS/1.0\r\n"), "\r\n\r\n"), "\r\n") {
		k, v, ok := strings.Cut(line, ": ")
		if !ok {
			t.Fatalf("header line %q", line)
		}
		h.Add(k, v)
	}
	return h
}

// Message by message, a round's messages go on the direct connection, but
// for its probe, which goes alone on the main one; every record is
// stored once, in order.
func TestJetStreamMessageByMessageOnTheDirectConnection(t *testing.T) {
	t.Parallel()
	s := startServer(t, testServerConfig{JetStream: true})
	st := createStream(t, s, jetstream.StreamConfig{})
	direct := s.natsConfig()
	direct.Name = "direct"
	p := newTestPublisher(t, s.connect(t), Options{JetStream: true, NoBatchPublish: true, Direct: &direct})
	b := testBatch(500)
	if err := p.Handle(context.Background(), b); err != nil {
		t.Fatalf("Handle: %v", err)
	}
	checkStored(t, st, b)
	if n := directInMsgs(t, s.srv, "direct"); n != int64(len(b.Records)-1) {
		t.Errorf("the server received %d messages on the direct connection, want %d", n, len(b.Records)-1)
	}
}

// The direct connection follows the main one to the server it moved to.
func TestDirectFollowsTheMainConnection(t *testing.T) {
	t.Parallel()
	c := testutil.StartCluster(t, 2)
	co := ConnOptions{Servers: c.URLs(), ConnectTimeout: 10 * time.Second}
	nc, err := Connect(context.Background(), co, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	direct := co
	direct.Name = "direct"
	p := newTestPublisher(t, nc, Options{Direct: &direct})
	checkDirect(t, p)
	first := nc.ConnectedServerId()
	testutil.WaitFor(t, testutil.ClusterBound, "the main connection on the other server", func() bool {
		if nc.ConnectedServerId() != first && nc.Status() == nats.CONNECTED {
			return true
		}
		_ = nc.ForceReconnect()
		return false
	})
	// The next batch finds the direct connection on the old server: it
	// goes on the main one while the direct one is made again.
	if err := p.Handle(context.Background(), testBatch(5)); err != nil {
		t.Fatalf("Handle after the move: %v", err)
	}
	testutil.WaitFor(t, 10*time.Second, "the direct connection on the main one's server", func() bool {
		if err := p.Handle(context.Background(), testBatch(1)); err != nil {
			t.Fatalf("Handle: %v", err)
		}
		p.direct.mu.Lock()
		defer p.direct.mu.Unlock()
		return p.direct.conn != nil && p.direct.conn.ServerID() == nc.ConnectedServerId()
	})
	checkDirect(t, p)
}

// With WebSocket servers there is no direct connection: messages go
// through nats.go, and one line says so.
func TestDirectOffForWebSocket(t *testing.T) {
	t.Parallel()
	port := testutil.FreePort(t)
	testutil.StartNATSWith(t, server.Options{Websocket: server.WebsocketOpts{Host: "127.0.0.1", Port: port, NoTLS: true}})
	co := ConnOptions{Servers: []string{fmt.Sprintf("ws://127.0.0.1:%d", port)}, ConnectTimeout: 10 * time.Second}
	nc, err := Connect(context.Background(), co, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	logs := &logBuffer{}
	p := newTestPublisher(t, nc, Options{Direct: &co, Log: zerolog.New(logs)})
	sub, err := nc.SubscribeSync("kinesis.>")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	b := testBatch(3)
	for range 2 {
		if err := p.Handle(context.Background(), b); err != nil {
			t.Fatalf("Handle: %v", err)
		}
	}
	for i := range 2 * len(b.Records) {
		m, err := sub.NextMsg(10 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		checkMsg(t, m, b, &b.Records[i%len(b.Records)])
	}
	if n := strings.Count(logs.String(), "no publish-only connection for a WebSocket server"); n != 1 {
		t.Errorf("the log says %d times that there is no direct connection, want once:\n%s", n, logs)
	}
	if strings.Contains(logs.String(), "NATS publish connection failed") {
		t.Errorf("a dial was tried:\n%s", logs)
	}
}

// A failing dial waits longer each time, 1 s doubling to a minute; failed
// counts the failures and sets the next dial by that wait.
func TestDirectRedialBacksOff(t *testing.T) {
	t.Parallel()
	for i, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second,
		16 * time.Second, 32 * time.Second, time.Minute, time.Minute, time.Minute, time.Minute} {
		if got := redialWait(i + 1); got != want {
			t.Errorf("failure %d: next dial in %s, want %s", i+1, got, want)
		}
	}
	d := &directConn{log: zerolog.Nop()}
	var before time.Time
	for range 3 {
		before = time.Now()
		d.failed("nats://127.0.0.1:4222", errors.New("refused"))
	}
	if d.failures != 3 || d.nextDial.Before(before.Add(redialWait(3))) {
		t.Errorf("after 3 failures: %d counted, next dial at %s, want %s after the third", d.failures, d.nextDial, redialWait(3))
	}
}
