package monitor

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// startServer serves a small handler with o on a free port and returns its
// address.
func startServer(t *testing.T, o ServerOptions) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\n"))
	}), o)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve = %v, want http.ErrServerClosed", err)
		}
	})
	return ln.Addr().String()
}

// request opens a keep-alive connection and reads one response on it.
func request(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	br := bufio.NewReader(c)
	send(t, c)
	readResponse(t, c, br, 10*time.Second)
	return c, br
}

func send(t *testing.T, c net.Conn) {
	t.Helper()
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
}

func readResponse(t *testing.T, c net.Conn, br *bufio.Reader, within time.Duration) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(within))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no response within %v: %v", within, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
}

// waitClosed reads c until the server closes it, failing after d.
func waitClosed(t *testing.T, c net.Conn, br *bufio.Reader, d time.Duration) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(d))
	_, err := br.ReadByte()
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("connection still open after %v", d)
	}
	if !errors.Is(err, io.EOF) && !strings.Contains(fmt.Sprint(err), "reset") {
		t.Fatalf("read = %v, want the server to close the connection", err)
	}
}

// TestServerCutsIdleConnections: a keep-alive connection left idle after a
// request is closed after IdleTimeout, and a connection that never sends a
// request after ReadTimeout.
func TestServerCutsIdleConnections(t *testing.T) {
	o := DefaultServerOptions()
	o.ReadTimeout, o.IdleTimeout = 300*time.Millisecond, 300*time.Millisecond
	addr := startServer(t, o)

	c, br := request(t, addr)
	waitClosed(t, c, br, 10*time.Second)

	silent, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	waitClosed(t, silent, bufio.NewReader(silent), 10*time.Second)
}

// TestServerLimitsConnections: with MaxConns connections held open, the next
// one waits; it is served once one of them closes.
func TestServerLimitsConnections(t *testing.T) {
	o := DefaultServerOptions()
	o.MaxConns = 2
	addr := startServer(t, o)
	first, _ := request(t, addr)
	request(t, addr)

	third, err := net.Dial("tcp", addr) // the kernel's backlog takes it
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	br := bufio.NewReader(third)
	send(t, third)
	third.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if _, err := br.ReadByte(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("third connection served while two are held (read = %v)", err)
	}
	first.Close()
	readResponse(t, third, br, 10*time.Second)
}
