package natspub

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/fanoutd/fanoutd/internal/testutil"
)

func startServer(t *testing.T, o server.Options) *server.Server {
	t.Helper()
	return testutil.StartNATSWith(t, o)
}

func dial(t *testing.T, o Options) *Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, o)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

func hpub(subject, header string, data string) []byte {
	h := "NATS/1.0\r\n" + header + "\r\n"
	return fmt.Appendf(nil, "HPUB %s %d %d\r\n%s%s\r\n", subject, len(h), len(h)+len(data), h, data)
}

func subscribe(t *testing.T, srv *server.Server, subject string) *nats.Subscription {
	t.Helper()
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	sub, err := nc.SubscribeSync(subject)
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return sub
}

// Commands written by many goroutines at once, each with its own Flush,
// all arrive whole, and every Flush returns once the server has them.
func TestConcurrentWritesAndFlushes(t *testing.T) {
	t.Parallel()
	srv := startServer(t, server.Options{})
	sub := subscribe(t, srv, "p.>")
	c := dial(t, Options{URL: srv.ClientURL(), Name: "test"})
	if c.MaxPayload() != 1<<20 {
		t.Errorf("MaxPayload = %d, want the server's 1 MiB", c.MaxPayload())
	}
	const writers, rounds = 8, 50
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for r := range rounds {
				buf := hpub(fmt.Sprintf("p.%d", w), fmt.Sprintf("Round: %d\r\n", r), strings.Repeat("x", r*100))
				if err := c.Write(buf); err != nil {
					t.Error(err)
					return
				}
				if err := c.Flush(context.Background(), hpub(fmt.Sprintf("p.%d", w), "Round: flush\r\n", "")); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	next := make([]int, writers)
	for range writers * rounds * 2 {
		m, err := sub.NextMsg(10 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var w int
		fmt.Sscanf(m.Subject, "p.%d", &w)
		if round := m.Header.Get("Round"); round == "flush" {
			continue
		} else if round != fmt.Sprint(next[w]) || len(m.Data) != next[w]*100 {
			t.Fatalf("writer %d: got round %s with %d bytes, want round %d", w, round, len(m.Data), next[w])
		}
		next[w]++
	}
}

// The server's PINGs are answered: connections that do not answer them,
// made after it, one after the other, are closed as stale after
// MaxPingsOut intervals each, and it outlives them and still publishes.
func TestAnswersTheServersPings(t *testing.T) {
	t.Parallel()
	srv := startServer(t, server.Options{PingInterval: 20 * time.Millisecond, MaxPingsOut: 2})
	c := dial(t, Options{URL: srv.ClientURL(), Name: "answers"})
	for range 2 {
		waitStale(t, srv)
	}
	if err := c.Flush(context.Background(), nil); err != nil {
		t.Fatalf("Flush after the pings: %v", err)
	}
	if err := c.Err(); err != nil {
		t.Fatalf("Err = %v", err)
	}
}

// waitStale connects without ever answering a PING and waits until the
// server closes the connection as stale.
func waitStale(t *testing.T, srv *server.Server) {
	t.Helper()
	stale, err := net.Dial("tcp", strings.TrimPrefix(srv.ClientURL(), "nats://"))
	if err != nil {
		t.Fatal(err)
	}
	defer stale.Close()
	if _, err := stale.Write([]byte("CONNECT {\"verbose\":false}\r\n")); err != nil {
		t.Fatal(err)
	}
	_ = stale.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(stale) // reads, never answers
	if err != nil {
		t.Fatalf("the silent connection was not closed: %v", err)
	}
	if !strings.Contains(string(got), "Stale Connection") {
		t.Fatalf("the silent connection ended with %q, want a stale connection", got)
	}
}

// A publish the server refuses is counted, with nats.go's error, and the
// connection goes on.
func TestPermissionViolationKeepsTheConnection(t *testing.T) {
	t.Parallel()
	srv := startServer(t, server.Options{Users: []*server.User{{Username: "u", Password: "pw",
		Permissions: &server.Permissions{Publish: &server.SubjectPermission{Allow: []string{"ok.>"}}}}}})
	c := dial(t, Options{URL: srv.ClientURL(), User: "u", Password: "pw"})
	if err := c.Flush(context.Background(), hpub("denied.x", "", "no")); err != nil {
		t.Fatal(err)
	}
	n, err := c.Errors()
	if n != 1 || !errors.Is(err, nats.ErrPermissionViolation) || !strings.Contains(err.Error(), `"denied.x"`) {
		t.Fatalf("Errors() = %d, %v; want 1 permissions violation naming the subject", n, err)
	}
	if err := c.Flush(context.Background(), hpub("ok.x", "", "yes")); err != nil {
		t.Fatalf("Flush after the violation: %v", err)
	}
	if n, _ := c.Errors(); n != 1 || c.Err() != nil {
		t.Fatalf("after an allowed publish: %d errors, Err %v", n, c.Err())
	}
}

// The handshake's errors are nats.go's: a wrong password, a server without
// TLS for a tls:// URL.
func TestHandshakeErrors(t *testing.T) {
	t.Parallel()
	srv := startServer(t, server.Options{Username: "u", Password: "pw"})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := Dial(ctx, Options{URL: srv.ClientURL(), User: "u", Password: "wrong"}); !errors.Is(err, nats.ErrAuthorization) {
		t.Errorf("Dial with a wrong password = %v, want ErrAuthorization", err)
	}
	if _, err := Dial(ctx, Options{URL: strings.Replace(srv.ClientURL(), "nats://", "tls://", 1), User: "u", Password: "pw"}); !errors.Is(err, nats.ErrSecureConnWanted) {
		t.Errorf("Dial tls:// to a server without TLS = %v, want ErrSecureConnWanted", err)
	}
	if _, err := Dial(ctx, Options{URL: "nats://u:pw@" + strings.TrimPrefix(srv.ClientURL(), "nats://")}); err != nil {
		t.Errorf("Dial with the password in the URL: %v", err)
	}
}

// A connection whose server went away fails: Err says so, Flush returns
// an error at once, and a Flush that was waiting returns one too.
func TestServerGoneFailsTheConnection(t *testing.T) {
	t.Parallel()
	srv := startServer(t, server.Options{})
	c := dial(t, Options{URL: srv.ClientURL()})
	srv.Shutdown()
	srv.WaitForShutdown()
	testutil.WaitFor(t, 10*time.Second, "Err after the server stopped", func() bool { return c.Err() != nil })
	if err := c.Flush(context.Background(), nil); err == nil {
		t.Fatal("Flush = nil on a lost connection")
	}
}

// silentServer accepts one client, answers its handshake, then reads
// and never answers again: a server that hangs, or a path that went dead.
// pings receives every PING it reads after the handshake.
func silentServer(t *testing.T) (url string, pings <-chan struct{}) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	ch := make(chan struct{}, 16)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		fmt.Fprintf(conn, "INFO {\"server_id\":\"silent\",\"headers\":true,\"max_payload\":1048576}\r\n")
		br := bufio.NewReader(conn)
		handshake := true
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			if strings.HasPrefix(line, "PING") {
				if handshake {
					fmt.Fprintf(conn, "PONG\r\n")
					handshake = false
					continue
				}
				ch <- struct{}{}
			}
		}
	}()
	return "nats://" + ln.Addr().String(), ch
}

// A Flush given up by its caller (its context cancelled) leaves the
// connection to the others.
func TestCancelledFlushKeepsTheConnection(t *testing.T) {
	t.Parallel()
	u, pings := silentServer(t)
	c := dial(t, Options{URL: u})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Flush(ctx, nil) }()
	select {
	case <-pings:
	case <-time.After(10 * time.Second):
		t.Fatal("no PING from the Flush")
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Flush = %v, want context.Canceled", err)
	}
	if err := c.Err(); err != nil {
		t.Fatalf("Err = %v after a cancelled Flush", err)
	}
}

// Close ends a Flush that waits for its PONG, with ErrClosed.
func TestCloseEndsAWaitingFlush(t *testing.T) {
	t.Parallel()
	u, pings := silentServer(t)
	c := dial(t, Options{URL: u})
	done := make(chan error, 1)
	go func() { done <- c.Flush(context.Background(), nil) }()
	select {
	case <-pings: // the Flush is waiting: its PING was written after it got in line
	case <-time.After(10 * time.Second):
		t.Fatal("no PING from the Flush")
	}
	c.Close()
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("Flush = %v after Close, want ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Flush still waiting 10 s after Close")
	}
}

// A Flush whose PONG does not come before its deadline fails the
// connection: a server that hangs, or a dead path TCP would take minutes
// to notice.
func TestUnansweredFlushFailsTheConnection(t *testing.T) {
	t.Parallel()
	u, _ := silentServer(t)
	c := dial(t, Options{URL: u})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := c.Flush(ctx, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Flush = %v, want the deadline", err)
	}
	if err := c.Err(); err == nil {
		t.Fatal("Err = nil after a Flush went unanswered")
	}
	if err := c.Write([]byte("PUB a 0\r\n\r\n")); err == nil {
		t.Fatal("Write = nil on the failed connection")
	}
}

// A server entering lame duck mode says so in an INFO: Err is then
// ErrLameDuck, for the owner to move on.
func TestLameDuckModeIsReported(t *testing.T) {
	t.Parallel()
	srv := startServer(t, server.Options{LameDuckDuration: 5 * time.Second, LameDuckGracePeriod: time.Second})
	c := dial(t, Options{URL: srv.ClientURL()})
	go srv.LameDuckShutdown()
	testutil.WaitFor(t, 10*time.Second, "Err to be ErrLameDuck after lame duck mode began", func() bool {
		return errors.Is(c.Err(), ErrLameDuck)
	})
}
