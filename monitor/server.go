package monitor

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"
)

// ServerOptions bound what clients of the HTTP endpoint can hold: a slow or
// idle client is cut after its timeout, and at most MaxConns connections
// are served at once (more wait to be accepted), so a scraper gone wrong
// cannot pile up goroutines and file descriptors in the daemon.
type ServerOptions struct {
	// ReadTimeout bounds reading a request, headers and body.
	ReadTimeout time.Duration
	// WriteTimeout bounds writing a response (from the end of the request's
	// headers).
	WriteTimeout time.Duration
	// IdleTimeout closes a keep-alive connection with no request for this long.
	IdleTimeout time.Duration
	// MaxConns is the most connections open at once.
	MaxConns int
}

// DefaultServerOptions are the daemon's: generous for a Prometheus scrape
// (whose own timeout is 10 s by default), small for anything else.
func DefaultServerOptions() ServerOptions {
	return ServerOptions{
		ReadTimeout:  10 * time.Second,
		WriteTimeout: 30 * time.Second,
		IdleTimeout:  60 * time.Second,
		MaxConns:     64,
	}
}

// Server is the HTTP endpoint with ServerOptions' bounds.
type Server struct {
	srv      *http.Server
	maxConns int
}

// NewServer returns a Server for h.
func NewServer(h http.Handler, o ServerOptions) *Server {
	return &Server{
		srv: &http.Server{
			Handler:           h,
			ReadHeaderTimeout: o.ReadTimeout,
			ReadTimeout:       o.ReadTimeout,
			WriteTimeout:      o.WriteTimeout,
			IdleTimeout:       o.IdleTimeout,
		},
		maxConns: max(o.MaxConns, 1),
	}
}

// Serve serves ln until Shutdown; it returns http.ErrServerClosed then.
func (s *Server) Serve(ln net.Listener) error {
	return s.srv.Serve(newLimitListener(ln, s.maxConns))
}

// Shutdown stops accepting, and waits for the requests in flight until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error { return s.srv.Shutdown(ctx) }

// limitListener accepts a connection only while fewer than its limit are
// open: the next Accept waits for a Close. (golang.org/x/net/netutil has
// the same; it is not in the module graph.)
type limitListener struct {
	net.Listener
	sem       chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

func newLimitListener(ln net.Listener, n int) *limitListener {
	return &limitListener{Listener: ln, sem: make(chan struct{}, n), done: make(chan struct{})}
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.sem }}, nil
}

func (l *limitListener) Close() error {
	err := l.Listener.Close()
	l.closeOnce.Do(func() { close(l.done) })
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
