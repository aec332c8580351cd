// Package natspub is a NATS client connection that only publishes: it
// writes whole HPUB commands that the caller encoded, and confirms them
// with a PING and its PONG, as nats.go's Flush does. It exists for the
// relay's hot path, where nats.go encodes each message's header map again
// (most of the cost of a small message); everything else (subscriptions,
// JetStream, reconnecting) stays with nats.go.
//
// A Conn does not reconnect: once it fails, Err says why and its owner
// dials a new one. Its handshake is nats.go's: the server's INFO, TLS
// when the URL is tls://, a TLS config is given or the server requires
// it, then CONNECT with the same authentication (user and password or a
// token, from the URL's user info or the options; an nkey; a creds file's
// JWT), checked by a PING.
package natspub

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// Options say where and how to connect.
type Options struct {
	// URL is the server: nats://host:port or tls://host:port, with
	// optional user info (user:password, or a token as the user), which
	// then takes the place of User, Password and Token, as in nats.go.
	URL string
	// TLSName is the name the server's certificate must have (default:
	// the URL's host).
	TLSName string
	// TLS is the client's TLS config (CAs, certificate); nil: the system's
	// roots, and TLS only if the URL is tls:// or the server requires it.
	TLS *tls.Config
	// Name is the connection's name in the server.
	Name string
	// Version is the client version the server sees.
	Version string
	// At most one of CredsFile, NKeySeedFile, Token, User: as nats.go's
	// UserCredentials, Nkey, Token and UserInfo options.
	CredsFile, NKeySeedFile string
	Token, User, Password   string
	// WriteTimeout bounds one write to the socket (default 10s).
	WriteTimeout time.Duration
}

// ErrClosed is the error of a Conn closed by Close.
var ErrClosed = errors.New("nats: publish connection closed")

// maxLine bounds a protocol line from the server (an INFO lists the
// cluster's URLs).
const maxLine = 64 << 10

// Conn is a connection that publishes. Write and Flush are safe for
// concurrent use; each Write carries whole commands, so the writes of
// different callers never interleave within a message.
type Conn struct {
	conn         net.Conn
	serverID     string
	writeTimeout time.Duration
	maxPayload   atomic.Int64

	wmu sync.Mutex // serialises writes, and PINGs with their waiters

	mu      sync.Mutex
	pongs   []chan error // one per PING written, in order
	err     error        // why the connection ended
	lastErr error        // the last -ERR of the server
	errs    uint64       // how many -ERRs
	done    chan struct{}

	lameDuck atomic.Bool // the server is going: see ErrLameDuck
}

type serverInfo struct {
	ServerID     string `json:"server_id"`
	MaxPayload   int64  `json:"max_payload"`
	TLSRequired  bool   `json:"tls_required"`
	TLSAvailable bool   `json:"tls_available"`
	Headers      bool   `json:"headers"`
	Nonce        string `json:"nonce"`
	LameDuck     bool   `json:"ldm"`
}

type connectInfo struct {
	Verbose      bool   `json:"verbose"`
	Pedantic     bool   `json:"pedantic"`
	JWT          string `json:"jwt,omitempty"`
	Nkey         string `json:"nkey,omitempty"`
	Sig          string `json:"sig,omitempty"`
	User         string `json:"user,omitempty"`
	Pass         string `json:"pass,omitempty"`
	Token        string `json:"auth_token,omitempty"`
	TLS          bool   `json:"tls_required"`
	Name         string `json:"name"`
	Lang         string `json:"lang"`
	Version      string `json:"version"`
	Protocol     int    `json:"protocol"`
	Echo         bool   `json:"echo"`
	Headers      bool   `json:"headers"`
	NoResponders bool   `json:"no_responders"`
}

// Dial connects to o.URL and returns once the server accepted the
// connection (its PONG to the handshake's PING), or ctx ends.
func Dial(ctx context.Context, o Options) (*Conn, error) {
	u, err := url.Parse(o.URL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("nats: bad server URL %q", redact(o.URL))
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "4222")
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return nil, err
	}
	c, err := handshake(ctx, conn, u, o)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

func handshake(ctx context.Context, conn net.Conn, u *url.URL, o Options) (*Conn, error) {
	if deadline, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(deadline)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()

	br := bufio.NewReaderSize(conn, maxLine)
	line, err := readLine(br)
	if err != nil {
		return nil, fmt.Errorf("nats: read INFO: %w", err)
	}
	var info serverInfo
	if op, arg := splitOp(line); op != "INFO" || json.Unmarshal(arg, &info) != nil {
		return nil, fmt.Errorf("nats: expected INFO, got %q", truncate(line))
	}
	secure := u.Scheme == "tls" || o.TLS != nil
	switch {
	case info.TLSRequired:
		secure = true
	case secure && !info.TLSAvailable:
		return nil, nats.ErrSecureConnWanted
	}
	if secure {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if o.TLS != nil {
			cfg = o.TLS.Clone()
		}
		if cfg.ServerName == "" {
			cfg.ServerName = o.TLSName
			if cfg.ServerName == "" {
				cfg.ServerName = u.Hostname()
			}
		}
		tc := tls.Client(conn, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, err
		}
		conn, br = tc, bufio.NewReaderSize(tc, maxLine)
	}
	if !info.Headers {
		return nil, nats.ErrHeadersNotSupported
	}
	ci, err := connectAuth(u, o, info.Nonce)
	if err != nil {
		return nil, err
	}
	ci.TLS, ci.Name, ci.Lang, ci.Version = secure, o.Name, "go", o.Version
	ci.Protocol, ci.Echo, ci.Headers, ci.NoResponders = 1, true, true, true
	b, err := json.Marshal(ci)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Write(append(append([]byte("CONNECT "), b...), "\r\nPING\r\n"...)); err != nil {
		return nil, fmt.Errorf("nats: write CONNECT: %w", err)
	}
	for {
		line, err := readLine(br)
		if err != nil {
			return nil, fmt.Errorf("nats: read the reply to CONNECT: %w", err)
		}
		op, arg := splitOp(line)
		switch op {
		case "PONG":
			if !stop() { // ctx ended: the deadline is being cut short
				return nil, fmt.Errorf("nats: handshake: %w", ctx.Err())
			}
			_ = conn.SetDeadline(time.Time{})
			return start(conn, br, o, info), nil
		case "-ERR":
			return nil, serverError(arg)
		case "+OK", "PING", "INFO":
			if op == "PING" {
				if _, err := conn.Write([]byte("PONG\r\n")); err != nil {
					return nil, err
				}
			}
		default:
			return nil, fmt.Errorf("nats: unexpected %q in the handshake", truncate(line))
		}
	}
}

// connectAuth fills in the CONNECT's credentials, as nats.go does: the
// URL's user info takes the place of User, Password and Token; a creds
// file's JWT and an nkey sign the server's nonce.
func connectAuth(u *url.URL, o Options, nonce string) (connectInfo, error) {
	var ci connectInfo
	if u.User != nil {
		if pass, ok := u.User.Password(); ok {
			ci.User, ci.Pass = u.User.Username(), pass
		} else {
			ci.Token = u.User.Username()
		}
	} else {
		ci.User, ci.Pass, ci.Token = o.User, o.Password, o.Token
	}
	var kp nkeys.KeyPair
	switch {
	case o.CredsFile != "":
		contents, err := os.ReadFile(o.CredsFile)
		if err != nil {
			return ci, fmt.Errorf("nats: %w", err)
		}
		defer wipe(contents)
		if ci.JWT, err = nkeys.ParseDecoratedJWT(contents); err != nil {
			return ci, fmt.Errorf("nats: creds file %s: %w", o.CredsFile, err)
		}
		if kp, err = nkeys.ParseDecoratedUserNKey(contents); err != nil {
			return ci, fmt.Errorf("nats: creds file %s: %w", o.CredsFile, err)
		}
	case o.NKeySeedFile != "" && u.User == nil:
		contents, err := os.ReadFile(o.NKeySeedFile)
		if err != nil {
			return ci, fmt.Errorf("nats: %w", err)
		}
		defer wipe(contents)
		if kp, err = nkeys.ParseDecoratedNKey(contents); err != nil {
			return ci, fmt.Errorf("nats: nkey seed file %s: %w", o.NKeySeedFile, err)
		}
		if ci.Nkey, err = kp.PublicKey(); err != nil {
			return ci, fmt.Errorf("nats: nkey seed file %s: %w", o.NKeySeedFile, err)
		}
	}
	if kp != nil {
		defer kp.Wipe()
		sig, err := kp.Sign([]byte(nonce))
		if err != nil {
			return ci, fmt.Errorf("nats: sign the server's nonce: %w", err)
		}
		ci.Sig = base64.RawURLEncoding.EncodeToString(sig)
	}
	return ci, nil
}

func wipe(b []byte) {
	for i := range b {
		b[i] = 'x'
	}
}

func start(conn net.Conn, br *bufio.Reader, o Options, info serverInfo) *Conn {
	c := &Conn{conn: conn, serverID: info.ServerID, writeTimeout: o.WriteTimeout, done: make(chan struct{})}
	if c.writeTimeout <= 0 {
		c.writeTimeout = 10 * time.Second
	}
	c.maxPayload.Store(info.MaxPayload)
	go c.readLoop(br)
	return c
}

// ServerID is the server's ID, from its INFO.
func (c *Conn) ServerID() string { return c.serverID }

// MaxPayload is the server's max_payload: the most a message's header and
// data may hold.
func (c *Conn) MaxPayload() int64 { return c.maxPayload.Load() }

// Err is why the connection ended, or ErrLameDuck, nil while it works.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil && c.lameDuck.Load() {
		return ErrLameDuck
	}
	return c.err
}

// Errors returns how many -ERR the server sent, and the last one. A
// refused publish (a permissions violation) leaves the connection open:
// the server says so before the PONG of the Flush that follows it.
func (c *Conn) Errors() (uint64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.errs, c.lastErr
}

// Write writes p, whole commands, to the server.
func (c *Conn) Write(p []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.write(p)
}

func (c *Conn) write(p []byte) error {
	c.mu.Lock()
	err := c.err
	c.mu.Unlock()
	if err != nil {
		return err
	}
	_ = c.conn.SetWriteDeadline(time.Now().Add(c.writeTimeout))
	if _, err := c.conn.Write(p); err != nil {
		return c.fail(fmt.Errorf("nats: write: %w", err))
	}
	return nil
}

// Flush writes p (whole commands, possibly none) and a PING, and returns
// once the server answered the PING: it then has processed every command
// written before it. p must have room for the PING after its length, or
// Flush appends to a copy. A PING still unanswered at ctx's deadline fails
// the connection; ctx cancelled does not.
func (c *Conn) Flush(ctx context.Context, p []byte) error {
	ch := make(chan error, 1)
	c.wmu.Lock()
	c.mu.Lock()
	err := c.err
	if err == nil {
		c.pongs = append(c.pongs, ch)
	}
	c.mu.Unlock()
	if err == nil {
		err = c.write(append(p, "PING\r\n"...))
	}
	c.wmu.Unlock()
	if err != nil {
		return err
	}
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		// No PONG before the deadline: the server or the path to it is
		// gone (TCP may take many minutes to say so). The connection fails
		// with every Flush waiting on it. A caller that gave up (its
		// context cancelled) leaves it to the others: its waiter stays in
		// line for its PONG, to be dropped then.
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			c.fail(fmt.Errorf("nats: no PONG: %w", ctx.Err()))
		}
		return ctx.Err()
	}
}

// Close closes the connection; a Flush waiting then returns ErrClosed.
func (c *Conn) Close() {
	c.fail(ErrClosed)
	<-c.done
}

// fail ends the connection with err (the first error wins), fails every
// waiting Flush and returns the error that won.
func (c *Conn) fail(err error) error {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
		_ = c.conn.Close()
	}
	pongs := c.pongs
	c.pongs = nil
	err = c.err
	c.mu.Unlock()
	for _, ch := range pongs {
		ch <- err
	}
	return err
}

// readLoop reads what the server sends: PINGs (answered), PONGs (to their
// Flush, in order), -ERRs (counted) and INFOs, until the connection ends.
func (c *Conn) readLoop(br *bufio.Reader) {
	defer close(c.done)
	for {
		line, err := readLine(br)
		if err != nil {
			c.fail(fmt.Errorf("nats: connection lost: %w", err))
			return
		}
		op, arg := splitOp(line)
		switch op {
		case "PING":
			c.wmu.Lock()
			err = c.write([]byte("PONG\r\n"))
			c.wmu.Unlock()
		case "PONG":
			c.mu.Lock()
			if len(c.pongs) > 0 {
				c.pongs[0] <- nil
				c.pongs[0] = nil
				c.pongs = c.pongs[1:]
			}
			c.mu.Unlock()
		case "-ERR":
			c.mu.Lock()
			c.errs++
			c.lastErr = serverError(arg)
			c.mu.Unlock()
		case "INFO":
			var info serverInfo
			if json.Unmarshal(arg, &info) == nil {
				if info.MaxPayload > 0 {
					c.maxPayload.Store(info.MaxPayload)
				}
				if info.LameDuck {
					c.lameDuck.Store(true)
				}
			}
		case "+OK":
		default:
			err = fmt.Errorf("nats: unexpected %q", truncate(line))
		}
		if err != nil {
			c.fail(err)
			return
		}
	}
}

// ErrLameDuck is Err of a connection to a server in lame duck mode: it
// still works, but its owner should move to a new connection.
var ErrLameDuck = errors.New("nats: the server is in lame duck mode")

// serverError turns the text of an -ERR into nats.go's error for it,
// for the ones callers test: a permissions violation, and the
// authentication errors.
func serverError(arg []byte) error {
	msg := strings.Trim(string(bytes.TrimSpace(arg)), "'")
	low := strings.ToLower(msg)
	switch {
	case strings.HasPrefix(low, "permissions violation"):
		return fmt.Errorf("%w: %s", nats.ErrPermissionViolation, msg)
	case strings.HasPrefix(low, "authorization violation"):
		return nats.ErrAuthorization
	case strings.HasPrefix(low, "user authentication expired"):
		return nats.ErrAuthExpired
	case strings.HasPrefix(low, "user authentication revoked"):
		return nats.ErrAuthRevoked
	case strings.HasPrefix(low, "account authentication expired"):
		return nats.ErrAccountAuthExpired
	}
	return fmt.Errorf("nats: %s", msg)
}

func readLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		return nil, fmt.Errorf("a protocol line over %d bytes", br.Size())
	}
	if err != nil {
		return nil, err
	}
	return bytes.TrimRight(line, "\r\n"), nil
}

// splitOp splits a protocol line into its operation, upper case, and the
// rest.
func splitOp(line []byte) (string, []byte) {
	op, arg, _ := bytes.Cut(line, []byte(" "))
	return strings.ToUpper(string(op)), arg
}

func truncate(b []byte) string {
	if len(b) > 64 {
		return string(b[:64]) + "..."
	}
	return string(b)
}

// redact hides a URL's user info.
func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "<unparsable>"
	}
	if u.User != nil {
		u.User = url.User("xxxxx")
	}
	return u.String()
}
