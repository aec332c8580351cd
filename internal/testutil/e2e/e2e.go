// Package e2e sets up what the end-to-end tests of the daemon share, whether
// they run it in their own process (package daemon) or as a child process
// (cmd/fanoutd): the emulator over HTTP/2 and TLS, an in-process NATS server
// with a subscriber keeping every message, the daemon's config file, and
// readers of its HTTP endpoint.
package e2e

import (
	"fmt"
	"math/big"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/fanoutd/fanoutd/emulator"
	"github.com/fanoutd/fanoutd/internal/testutil"
)

// Env is one end-to-end setup. It changes nothing of the process (no
// environment variables), so tests using it can run in parallel.
type Env struct {
	T    testing.TB
	Emu  *emulator.Server
	NS   *server.Server
	Dir  string // checkpoints
	Msgs *Collector
}

// Start starts the emulator with opts and a NATS server (with JetStream when
// jetstream), and subscribes Msgs to every subject.
func Start(t testing.TB, opts emulator.Options, jetstream bool) *Env {
	t.Helper()
	emu, err := emulator.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emu.Close() })
	ns := testutil.StartNATS(t, testutil.NATSOptions{JetStream: jetstream})
	e := &Env{T: t, Emu: emu, NS: ns, Dir: t.TempDir(), Msgs: &Collector{}}
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	sub, err := nc.Subscribe(">", e.Msgs.Add)
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.SetPendingLimits(-1, -1); err != nil { // a burst is never dropped as a slow consumer
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return e
}

// EnvLines is the emulator's environment (endpoint, region, credentials,
// CA) for a child process.
func (e *Env) EnvLines() []string { return e.Emu.EnvLines() }

// Config is the config of a daemon relaying streams (YAML list items) to
// this NATS server, checkpointing in Dir; the endpoint is left to the
// environment.
func (e *Env) Config(jetstream bool, streams string) Config {
	return Config{Streams: streams, Servers: []string{e.NS.ClientURL()}, JetStream: jetstream, CheckpointDir: e.Dir}
}

// Put writes records "key:i" for i in [from, from+n) for every key.
func (e *Env) Put(stream string, keys []string, from, n int) {
	e.T.Helper()
	for i := from; i < from+n; i++ {
		for _, k := range keys {
			if _, _, err := e.Emu.PutRecord(stream, k, []byte(fmt.Sprintf("%s:%d", k, i))); err != nil {
				e.T.Fatal(err)
			}
		}
	}
}

// Keys are n partition keys: user0, user1...
func Keys(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("user%d", i)
	}
	return out
}

// Collector keeps the NATS messages it is given.
type Collector struct {
	mu   sync.Mutex
	msgs []*nats.Msg
	// Skip is a subject not kept (a test counts it itself).
	Skip atomic.Pointer[string]
}

// Add keeps m; it is a nats.MsgHandler.
func (c *Collector) Add(m *nats.Msg) {
	if skip := c.Skip.Load(); skip != nil && m.Subject == *skip {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.msgs = append(c.msgs, m)
}

// OnSubject are the messages kept whose subject starts with prefix, in
// arrival order.
func (c *Collector) OnSubject(prefix string) []*nats.Msg {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*nats.Msg
	for _, m := range c.msgs {
		if strings.HasPrefix(m.Subject, prefix) {
			out = append(out, m)
		}
	}
	return out
}

// Deliveries are NATS messages as the shared checker takes them (the
// partition key header is escaped: not compared).
func Deliveries(msgs []*nats.Msg) []testutil.Delivery {
	out := make([]testutil.Delivery, len(msgs))
	for i, m := range msgs {
		out[i] = testutil.Delivery{Data: m.Data}
	}
	return out
}

// ExactlyOnceInOrder checks every key got records 0..n-1 once each, in order.
func ExactlyOnceInOrder(t testing.TB, msgs []*nats.Msg, keys []string, n int) {
	t.Helper()
	testutil.CheckDelivered(t, Deliveries(msgs), testutil.Want(keys, n), testutil.ExactlyOnce)
}

// SeqAtLeast reports whether decimal sequence number a is at least b.
func SeqAtLeast(a, b string) bool {
	x, ok1 := new(big.Int).SetString(a, 10)
	y, ok2 := new(big.Int).SetString(b, 10)
	return ok1 && ok2 && x.Cmp(y) >= 0
}
