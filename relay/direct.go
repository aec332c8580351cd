package relay

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"net/url"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/fanoutd/fanoutd/relay/internal/natspub"
)

// The records' messages go on a second connection that only publishes
// (natspub): the relay writes each message's HPUB command itself, headers
// included, into one buffer, written as it fills and, in core mode, with
// the chunk's flush PING. Through nats.go, each message's header map is
// encoded again, which costs more than everything else the relay does for
// a small record. The second connection is made with the same servers,
// credentials and TLS as the first, to the server the first is connected
// to; while it cannot be made, messages go through nats.go. The main
// connection keeps the subscriptions (PubAcks), the JetStream API, and the
// messages sent alone (see msgOut).
const (
	// directWriteBytes is how much of a chunk is buffered before it is
	// written.
	directWriteBytes = 64 << 10
	// directRedial and directRedialMax bound the wait before dialing again
	// after a failure: doubling from the one to the other.
	directRedial    = time.Second
	directRedialMax = time.Minute
	// directBufferKeep bounds the buffer a scratch keeps (a message over
	// directWriteBytes makes it larger for a while).
	directBufferKeep = 256 << 10
	// subscribeFlushTimeout bounds the round trip that makes sure the
	// server has a reply subscription of the main connection before
	// messages whose replies it takes go on the direct one.
	subscribeFlushTimeout = 5 * time.Second
)

// directConn makes and keeps the publish-only connection. It follows the
// main connection: to the server it is on (the direct connection is made
// again when the main one moved), and out of a server in lame duck mode.
// Dialing goes on in the background, one attempt at a time; meanwhile the
// messages go through nats.go.
type directConn struct {
	nc      *nats.Conn
	opts    ConnOptions
	timeout time.Duration // the publish timeout: what a retired connection may still finish
	log     zerolog.Logger

	mu       sync.Mutex
	conn     *natspub.Conn
	retired  []retiredConn
	dialing  bool
	failures int
	nextDial time.Time
	avoid    string // a server in lame duck mode: not dialed while the main connection is on it
	off      bool   // the servers' scheme is not for a plain NATS connection (WebSocket)
	closed   bool
	dials    sync.WaitGroup
}

type retiredConn struct {
	c     *natspub.Conn
	until time.Time
}

// get returns the connection, or nil: publish through nats.go. It starts
// a dial when there is none.
func (d *directConn) get() *natspub.Conn {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed || d.off {
		return nil
	}
	d.closeRetired(time.Now())
	if c := d.conn; c != nil {
		err := c.Err()
		if err == nil && c.ServerID() == d.nc.ConnectedServerId() {
			return c
		}
		d.conn = nil
		d.retire(c, err)
	}
	d.startDial()
	return nil
}

// retire stops handing c out. A connection that still works (the main
// one moved to another server, or the server is in lame duck mode) is
// closed once what is in flight on it had its time; a failed one at once.
// Lock held.
func (d *directConn) retire(c *natspub.Conn, err error) {
	switch {
	case err == nil:
	case errors.Is(err, natspub.ErrLameDuck):
		d.avoid = c.ServerID()
	default:
		d.log.Warn().Err(err).Msg("NATS publish connection lost")
		c.Close()
		return
	}
	d.retired = append(d.retired, retiredConn{c, time.Now().Add(d.timeout)})
}

// drop retires c if it is the connection: what was sent on it was not
// answered in time.
func (d *directConn) drop(c *natspub.Conn) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.conn == c && c != nil {
		d.conn = nil
		d.log.Warn().Str("cause", "JetStream did not answer what it carried in time").
			Msg("NATS publish connection dropped")
		c.Close()
	}
}

// closeRetired closes the retired connections whose time is up at now (all
// with a zero now). Lock held.
func (d *directConn) closeRetired(now time.Time) {
	kept := d.retired[:0]
	for _, r := range d.retired {
		if now.IsZero() || now.After(r.until) {
			r.c.Close()
		} else {
			kept = append(kept, r)
		}
	}
	clear(d.retired[len(kept):])
	d.retired = kept
}

// startDial dials in the background, unless a dial is under way, the
// last failure's wait is not over, or the main connection is on the
// server that is going away. Lock held.
func (d *directConn) startDial() {
	if d.dialing || time.Now().Before(d.nextDial) || (d.avoid != "" && d.nc.ConnectedServerId() == d.avoid) {
		return
	}
	o, err := d.dialOptions()
	switch {
	case errors.Is(err, errDirectScheme):
		d.off = true
		d.log.Info().Str("server", RedactURL(o.URL)).Str("then", "messages go on the main connection").
			Msg("no publish-only connection for a WebSocket server")
		return
	case errors.Is(err, ErrNotConnected):
		return
	case err != nil:
		d.failed(o.URL, err)
		return
	}
	d.dialing = true
	d.dials.Add(1)
	go func() {
		defer d.dials.Done()
		ctx, cancel := context.WithTimeout(context.Background(), dialTimeout)
		c, err := natspub.Dial(ctx, o)
		cancel()
		d.mu.Lock()
		defer d.mu.Unlock()
		d.dialing = false
		switch {
		case err != nil:
			d.failed(o.URL, err)
		case d.closed:
			c.Close()
		default:
			d.conn, d.failures, d.avoid = c, 0, ""
		}
	}()
}

// failed notes a failed dial: the next waits twice as long as the last,
// up to directRedialMax. Lock held.
func (d *directConn) failed(u string, err error) {
	d.failures++
	wait := redialWait(d.failures)
	d.nextDial = time.Now().Add(wait)
	d.log.Warn().Err(err).Str("server", RedactURL(u)).Str("retry_in", wait.String()).
		Str("then", "messages go on the main connection meanwhile").
		Msg("NATS publish connection failed")
}

// redialWait is the wait after n failed dials in a row (n >= 1).
func redialWait(n int) time.Duration {
	if n > 7 {
		return directRedialMax
	}
	return min(directRedial<<(n-1), directRedialMax)
}

// close closes the connections; get returns nil from then on.
func (d *directConn) close() {
	d.mu.Lock()
	d.closed = true
	if d.conn != nil {
		d.conn.Close()
		d.conn = nil
	}
	d.closeRetired(time.Time{})
	d.mu.Unlock()
	d.dials.Wait()
}

// errDirectScheme: the servers are not reached over plain NATS.
var errDirectScheme = errors.New("not a nats:// or tls:// server")

// dialOptions are natspub's options for the server nc is connected to.
func (d *directConn) dialOptions() (natspub.Options, error) {
	o := natspub.Options{
		URL:          d.nc.ConnectedUrl(),
		Name:         d.opts.Name,
		Version:      "fanoutd",
		CredsFile:    d.opts.CredsFile,
		NKeySeedFile: d.opts.NKeySeedFile,
		Token:        d.opts.Token,
		User:         d.opts.User,
		Password:     d.opts.Password,
	}
	if o.Name == "" {
		o.Name = DefaultConnectionName
	}
	if o.URL == "" {
		return o, ErrNotConnected
	}
	if u, err := url.Parse(o.URL); err != nil || (u.Scheme != "nats" && u.Scheme != "tls") {
		return o, errDirectScheme
	}
	o.TLSName = tlsName(o.URL, d.opts.Servers)
	var err error
	o.TLS, err = clientTLS(d.opts)
	return o, err
}

// tlsName is the name to verify a server's certificate by: its URL's host,
// or for a server the cluster announced by its IP address, the host name
// of the first configured server that has one. (nats.go takes the name of
// the server that announced it: the same with one configured host name.)
func tlsName(u string, servers []string) string {
	p, err := url.Parse(u)
	if err != nil || net.ParseIP(p.Hostname()) == nil {
		return ""
	}
	for _, s := range servers {
		if q, err := url.Parse(s); err == nil && hostPort(q) == hostPort(p) {
			return "" // configured as it is
		}
	}
	for _, s := range servers {
		if q, err := url.Parse(s); err == nil && net.ParseIP(q.Hostname()) == nil {
			return q.Hostname()
		}
	}
	return ""
}

// hostPort is u's host and port, the port 4222 if u has none.
func hostPort(u *url.URL) string {
	if u.Port() == "" {
		return net.JoinHostPort(u.Hostname(), "4222")
	}
	return u.Host
}

// clientTLS is the TLS config of o's files (nil without any), as nats.go's
// RootCAs and ClientCert options make it.
func clientTLS(o ConnOptions) (*tls.Config, error) {
	if o.CAFile == "" && o.CertFile == "" && o.KeyFile == "" {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read nats.tls.ca_file: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("nats.tls.ca_file %s: no certificate in it", o.CAFile)
		}
	}
	if o.CertFile != "" || o.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("load nats.tls.cert_file and key_file: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// appendMessage appends m's HPUB command (PUB without headers), with its
// reply subject if it has one (a valid subject: the relay makes it). With
// reused, m's header is rh's, as rh.set left it, and rh writes it; else
// the header map is encoded as nats.go does.
func appendMessage(buf []byte, m *nats.Msg, rh *recordHeader, reused bool, maxPayload int64) ([]byte, error) {
	if !validSubject(m.Subject) {
		return buf, nats.ErrBadSubject
	}
	hlen := 0
	switch {
	case reused:
		hlen = rh.encodedLen()
	case len(m.Header) > 0:
		hlen = headerLen(m.Header)
	}
	if maxPayload > 0 && int64(hlen+len(m.Data)) > maxPayload {
		return buf, nats.ErrMaxPayload
	}
	if hlen == 0 {
		buf = append(append(buf, "PUB "...), m.Subject...)
	} else {
		buf = append(append(buf, "HPUB "...), m.Subject...)
	}
	if m.Reply != "" {
		buf = append(append(buf, ' '), m.Reply...)
	}
	if hlen > 0 {
		buf = strconv.AppendInt(append(buf, ' '), int64(hlen), 10)
	}
	buf = strconv.AppendInt(append(buf, ' '), int64(hlen+len(m.Data)), 10)
	buf = append(buf, "\r\n"...)
	switch {
	case reused:
		buf = rh.appendTo(buf)
	case hlen > 0:
		buf = appendHeader(buf, m.Header)
	}
	return append(append(buf, m.Data...), "\r\n"...), nil
}

// validSubject reports whether s can go on a protocol line: not empty,
// without whitespace.
func validSubject(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case ' ', '\t', '\r', '\n':
			return false
		}
	}
	return true
}

// headerLen is how many bytes appendHeader writes of h.
func headerLen(h nats.Header) int {
	n := len("NATS/1.0\r\n") + len("\r\n")
	for k, vs := range h {
		for _, v := range vs {
			n += len(k) + len(": \r\n") + len(textproto.TrimString(v))
		}
	}
	return n
}

// appendHeader encodes h as nats.go does: values trimmed, CR and LF
// replaced by spaces.
func appendHeader(buf []byte, h nats.Header) []byte {
	buf = append(buf, "NATS/1.0\r\n"...)
	for k, vs := range h {
		for _, v := range vs {
			buf = append(append(buf, k...), ": "...)
			for _, c := range []byte(textproto.TrimString(v)) {
				if c == '\r' || c == '\n' {
					c = ' '
				}
				buf = append(buf, c)
			}
			buf = append(buf, "\r\n"...)
		}
	}
	return append(buf, "\r\n"...)
}

// msgOut sends JetStream messages (a fast batch's, or a round of them one
// by one): on the direct connection, encoded into one buffer that is
// written as it fills and before every wait for the server, or through
// nats.go.
//
// A message that goes alone, the first of a batch or a round's probe,
// goes through nats.go: the server answers "no responders" (no stream
// captures the subject) only to a connection that has the reply
// subscription, and the acks' subscriptions are the main connection's.
// The messages after it go only once it is answered, so the order holds.
type msgOut struct {
	c          *natspub.Conn // nil: through nc
	nc         *nats.Conn
	buf        []byte
	maxPayload int64
	err        error // of the first failed write
}

// out returns how a Handle's messages go out now; alone: through nats.go.
func (p *Publisher) out(s *scratch, alone bool) *msgOut {
	o := &msgOut{nc: p.nc}
	if p.direct != nil && !alone {
		if o.c = p.direct.get(); o.c != nil {
			o.buf, o.maxPayload = s.wire[:0], o.c.MaxPayload()
		}
	}
	return o
}

// publish sends m; with rh, m's header is rh's, as rh.set left it. After
// a failed write, every publish and flush fails with its error: what was
// buffered is lost.
func (o *msgOut) publish(m *nats.Msg, rh *recordHeader) error {
	if o.c == nil {
		return o.nc.PublishMsg(m)
	}
	if o.err != nil {
		return o.err
	}
	var err error
	if o.buf, err = appendMessage(o.buf, m, rh, rh != nil, o.maxPayload); err != nil {
		return err
	}
	if len(o.buf) >= directWriteBytes {
		return o.flush()
	}
	return nil
}

// flush writes what is buffered.
func (o *msgOut) flush() error {
	if o.c == nil || o.err != nil || len(o.buf) == 0 {
		return o.err
	}
	o.err = o.c.Write(o.buf)
	o.buf = o.buf[:0]
	return o.err
}

// confirm writes what is buffered with a PING, and returns once the
// server answered it (the direct connection's flush).
func (o *msgOut) confirm(ctx context.Context) error {
	if o.err != nil {
		return o.err
	}
	err := o.c.Flush(ctx, o.buf)
	o.buf = o.buf[:0]
	return err
}

// direct is the direct connection the messages went on, if any.
func (o *msgOut) direct() *natspub.Conn { return o.c }

// done gives the buffer back to s.
func (o *msgOut) done(s *scratch) {
	if o.c != nil && cap(o.buf) <= directBufferKeep {
		s.wire = o.buf[:0]
	}
}
