package testutil

import (
	"io"
	"net"
	"sync"
	"testing"
)

// Proxy forwards TCP connections to a target until Cut: a network partition
// between a client and a server, on demand.
type Proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	cut    bool
	tap    func() io.Writer
}

// StartProxy listens on 127.0.0.1 and forwards to target (host:port).
func StartProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{ln: ln, target: target}
	t.Cleanup(func() { ln.Close(); p.SetCut(true) })
	go p.serve()
	return p
}

func (p *Proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns = append(p.conns, c, up)
		var dst io.Writer = up
		if p.tap != nil {
			dst = io.MultiWriter(p.tap(), up)
		}
		p.mu.Unlock()
		go func() { io.Copy(dst, c); up.Close() }()
		go func() { io.Copy(c, up); c.Close() }()
	}
}

// Tap makes every connection accepted from now on copy what its client
// sends to a writer of its own, made by newTap, before forwarding it (a
// writer that never fails: the copy stops at the first error).
func (p *Proxy) Tap(newTap func() io.Writer) {
	p.mu.Lock()
	p.tap = newTap
	p.mu.Unlock()
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// SetCut cuts every connection and refuses new ones (true), or forwards
// again (false).
func (p *Proxy) SetCut(cut bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = cut
	if cut {
		for _, c := range p.conns {
			c.Close()
		}
		p.conns = nil
	}
}
