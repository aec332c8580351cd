// Package testutil holds what the packages' tests share: polling with a
// deadline (never sleeps as synchronisation), workers run at once, a buffer
// safe for a writer and a reader, and an in-process NATS server with
// connections to it. Product code does not import it.
package testutil

import (
	"bytes"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// WaitFor polls cond every 10 ms until it holds, and fails the test when it
// still does not after d.
func WaitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Concurrently runs work(0) to work(n-1) at once, and fails the test with
// any error they return.
func Concurrently(t testing.TB, n int, work func(w int) error) {
	t.Helper()
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for w := range n {
		wg.Go(func() { errs <- work(w) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

// SyncBuffer is a bytes.Buffer safe for concurrent writers and readers.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// NATSOptions select an in-process NATS server.
type NATSOptions struct {
	// JetStream turns JetStream on, storing in StoreDir (default: a
	// temporary directory of the test).
	JetStream bool
	StoreDir  string
	// Port is the client port; 0 picks a free one.
	Port int
}

// StartNATS starts a NATS server on 127.0.0.1, waits until it takes
// connections, and shuts it down when the test ends.
func StartNATS(t testing.TB, o NATSOptions) *server.Server {
	t.Helper()
	port := o.Port
	if port == 0 {
		port = server.RANDOM_PORT
	}
	opts := server.Options{Port: port, JetStream: o.JetStream}
	if o.JetStream {
		opts.StoreDir = o.StoreDir
		if opts.StoreDir == "" {
			opts.StoreDir = t.TempDir()
		}
	}
	return StartNATSWith(t, opts)
}

// StartNATSWith starts a NATS server with o on 127.0.0.1 (a random port
// unless o.Port is set), quiet and without signal handlers, waits until it
// takes connections, and shuts it down when the test ends.
func StartNATSWith(t testing.TB, o server.Options) *server.Server {
	t.Helper()
	o.Host, o.NoLog, o.NoSigs = "127.0.0.1", true, true
	if o.Port == 0 {
		o.Port = server.RANDOM_PORT
	}
	ns, err := server.NewServer(&o)
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS server not ready")
	}
	t.Cleanup(ns.Shutdown)
	return ns
}

// JetStream connects to url with opts and returns the connection's
// JetStream; the connection closes when the test ends.
func JetStream(t testing.TB, url string, opts ...nats.Option) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}
