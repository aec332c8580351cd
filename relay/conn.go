package relay

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"
)

// Reconnect and liveness settings. Reconnecting never stops once connected:
// fanoutd has nothing to do without NATS, and the shards simply wait (their
// batches fail and are retried from the checkpoint) until it is back.
const (
	reconnectDelayMin = 100 * time.Millisecond
	reconnectDelayMax = 5 * time.Second
	// A half-open TCP connection is noticed after about
	// pingInterval x maxPingsOut instead of nats.go's default 4 minutes.
	pingInterval = 20 * time.Second
	maxPingsOut  = 3
	// dialTimeout bounds one TCP+TLS dial of one server.
	dialTimeout = 2 * time.Second
	// defaultConnectBound applies when ConnectTimeout is not set.
	defaultConnectBound = 10 * time.Second
)

// ConnOptions say how to connect to NATS.
type ConnOptions struct {
	Servers []string
	// Name is the connection's name in the server (default
	// DefaultConnectionName).
	Name string
	// At most one way to authenticate: a creds file, an nkey seed file, a
	// token, or a user and password.
	CredsFile, NKeySeedFile string
	Token                   string
	User, Password          string
	// TLS files: a CA to verify the server, a client certificate and key.
	CAFile, CertFile, KeyFile string
	// ConnectTimeout bounds the first connection (default 10s).
	ConnectTimeout time.Duration
	// IgnoreDiscoveredServers: never connect to the cluster's other servers
	// that the servers announce, only to Servers.
	IgnoreDiscoveredServers bool
	// OnDisconnect and OnReconnect, when set, are called (on nats.go's
	// callback goroutine; they must not block) when the connection is lost
	// and when it is back.
	OnDisconnect, OnReconnect func()
}

// String leaves the secrets out.
func (o ConnOptions) String() string {
	return fmt.Sprintf("nats %s as %q", RedactURLs(o.Servers), o.Name)
}

// DefaultConnectionName is the NATS connection name when none is set.
const DefaultConnectionName = "fanoutd"

// Connect connects to the NATS servers of cfg and returns once connected.
//
// At start it fails fast: if no server can be reached within
// ConnectTimeout (or before ctx is done) it returns an error, so that the
// service manager restarts the daemon and the operator sees why. An error no
// retry can cure (authorization, TLS verification, a missing creds, nkey or
// certificate file) is returned at once. Once connected, the connection
// reconnects forever, with exponential backoff and jitter, and logs every
// disconnect, reconnect and asynchronous error on log. No secret (token,
// password, creds or seed contents, URL user info) is ever logged or put in
// an error.
func Connect(ctx context.Context, cfg ConnOptions, log zerolog.Logger) (*nats.Conn, error) {
	if len(cfg.Servers) == 0 {
		return nil, errors.New("connect to NATS: no servers configured: set nats.servers")
	}
	log = log.With().Str("component", "nats").Logger()
	opts, err := connectOptions(cfg, log)
	if err != nil {
		return nil, &PermanentError{err}
	}
	servers := strings.Join(cfg.Servers, ",")
	shown := RedactURLs(cfg.Servers)

	bound := cfg.ConnectTimeout
	if bound <= 0 {
		bound = defaultConnectBound
	}
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()

	for attempt := 1; ; attempt++ {
		nc, err := nats.Connect(servers, opts...)
		if err == nil {
			log.Info().Str("server", RedactURL(nc.ConnectedUrl())).
				Str("server_name", nc.ConnectedServerName()).
				Int64("max_payload_bytes", nc.MaxPayload()).
				Msg("connected to NATS")
			return nc, nil
		}
		if hint, ok := permanentConnectError(err); ok {
			return nil, &PermanentError{fmt.Errorf("connect to NATS (%s): %w: %s", shown, err, hint)}
		}
		delay := reconnectDelay(attempt)
		log.Warn().Err(err).Str("servers", shown).Int("attempt", attempt).
			Str("retry_in", delay.String()).Msg("connect to NATS failed")
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("connect to NATS (%s): no server reachable within %s: %w: check that nats-server runs and nats.servers is right", shown, bound, err)
		case <-t.C:
		}
	}
}

// connectOptions translates cfg into nats.go options.
func connectOptions(cfg ConnOptions, log zerolog.Logger) ([]nats.Option, error) {
	name := cfg.Name
	if name == "" {
		name = DefaultConnectionName
	}
	opts := []nats.Option{
		nats.Name(name),
		nats.Timeout(dialTimeout),
		// The first connect is retried by Connect itself, within a bound;
		// nats.go's own retry would make Connect return before any server
		// was reached.
		nats.RetryOnFailedConnect(false),
		nats.MaxReconnects(-1),
		nats.CustomReconnectDelay(reconnectDelay),
		nats.PingInterval(pingInterval),
		nats.MaxPingsOutstanding(maxPingsOut),
		// No reconnect buffer: a publish while disconnected fails at once
		// instead of waiting in nats.go's buffer. Such messages never count
		// as delivered anyway, and flushed after a reconnect they could
		// reach JetStream ahead of earlier messages lost with the old
		// socket, which the retry would then store after them.
		nats.ReconnectBufSize(-1),
	}
	if cfg.IgnoreDiscoveredServers {
		opts = append(opts, nats.IgnoreDiscoveredServers())
	}

	switch {
	case cfg.CredsFile != "":
		opts = append(opts, nats.UserCredentials(cfg.CredsFile))
	case cfg.NKeySeedFile != "":
		o, err := nats.NkeyOptionFromSeed(cfg.NKeySeedFile)
		if err != nil {
			// The error names the file and the cause, never the seed.
			return nil, fmt.Errorf("read nats.nkey_seed_file: %w", err)
		}
		opts = append(opts, o)
	case cfg.Token != "":
		opts = append(opts, nats.Token(cfg.Token))
	case cfg.User != "":
		opts = append(opts, nats.UserInfo(cfg.User, cfg.Password))
	}

	// nats.go turns TLS on by itself for tls:// URLs and when a CA or a
	// client certificate is given.
	if cfg.CAFile != "" {
		opts = append(opts, nats.RootCAs(cfg.CAFile))
	}
	if cfg.CertFile != "" || cfg.KeyFile != "" {
		opts = append(opts, nats.ClientCert(cfg.CertFile, cfg.KeyFile))
	}

	opts = append(opts, connLogHandlers(log, cfg.OnDisconnect, cfg.OnReconnect)...)
	return opts, nil
}

// connLogHandlers logs the life of the connection, and calls onDown and onUp
// (when set) when it is lost and back. The URLs are redacted.
func connLogHandlers(log zerolog.Logger, onDown, onUp func()) []nats.Option {
	return []nats.Option{
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if onDown != nil && !nc.IsClosed() {
				onDown()
			}
			if err == nil { // a clean close, e.g. at shutdown
				log.Info().Msg("disconnected from NATS")
				return
			}
			log.Warn().Err(err).Msg("disconnected from NATS; reconnecting")
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info().Str("server", RedactURL(nc.ConnectedUrl())).
				Uint64("reconnects", nc.Stats().Reconnects).
				Msg("reconnected to NATS")
			if onUp != nil {
				onUp()
			}
		}),
		nats.ReconnectErrHandler(func(nc *nats.Conn, err error) {
			log.Debug().Err(err).Msg("NATS reconnect attempt failed")
		}),
		nats.ClosedHandler(func(nc *nats.Conn) {
			if err := nc.LastError(); err != nil {
				log.Error().Err(err).Msg("NATS connection closed")
				return
			}
			log.Info().Msg("NATS connection closed")
		}),
		nats.ErrorHandler(func(nc *nats.Conn, sub *nats.Subscription, err error) {
			ev := log.Error().Err(err)
			if sub != nil {
				ev = ev.Str("subject", sub.Subject)
			}
			ev.Msg("NATS asynchronous error")
		}),
		nats.LameDuckModeHandler(func(nc *nats.Conn) {
			log.Warn().Str("server", RedactURL(nc.ConnectedUrl())).
				Msg("NATS server entered lame duck mode; will move to another server")
		}),
		nats.DiscoveredServersHandler(func(nc *nats.Conn) {
			log.Debug().Strs("servers", nc.DiscoveredServers()).Msg("discovered NATS servers")
		}),
	}
}

// reconnectDelay is the wait before reconnect round attempt (1, 2, ...):
// exponential from reconnectDelayMin to reconnectDelayMax, with up to 50%
// of random jitter so that many daemons do not reconnect in step.
func reconnectDelay(attempt int) time.Duration {
	d := reconnectDelayMin
	for i := 1; i < attempt && d < reconnectDelayMax; i++ {
		d *= 2
	}
	d = min(d, reconnectDelayMax)
	return d/2 + rand.N(d/2+1)
}

// permanentConnectError reports whether err is one that retrying the
// connection cannot cure, with a hint for the operator.
func permanentConnectError(err error) (hint string, ok bool) {
	var (
		unknownCA x509.UnknownAuthorityError
		hostname  x509.HostnameError
		invalid   x509.CertificateInvalidError
		verify    *tls.CertificateVerificationError
	)
	switch {
	case errors.Is(err, nats.ErrAuthorization), errors.Is(err, nats.ErrAuthExpired),
		errors.Is(err, nats.ErrAuthRevoked), errors.Is(err, nats.ErrAccountAuthExpired):
		return "check nats.creds_file, nats.nkey_seed_file, nats.token or nats.user and nats.password against the server's authorization", true
	case errors.Is(err, nats.ErrSecureConnRequired):
		return "the server requires TLS: use a tls:// URL or set nats.tls.ca_file", true
	case errors.Is(err, nats.ErrSecureConnWanted):
		return "the server does not offer TLS: use a nats:// URL and no nats.tls settings", true
	case errors.As(err, &unknownCA), errors.As(err, &hostname), errors.As(err, &invalid), errors.As(err, &verify):
		return "the server's certificate did not verify: check nats.tls.ca_file and the server certificate's names", true
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, fs.ErrPermission):
		return "check the file paths in the nats section and their permissions", true
	}
	return "", false
}

// RedactURL returns u with its user info hidden: the password of
// user:password, and a lone user name too, since nats.go takes that for a
// token. A string that does not parse as a URL is returned as "<unparsable>"
// so that no secret can slip through.
func RedactURL(u string) string {
	if u == "" {
		return ""
	}
	p, err := url.Parse(u)
	if err != nil {
		return "<unparsable>"
	}
	if p.User == nil {
		return u
	}
	if _, hasPassword := p.User.Password(); hasPassword {
		p.User = url.UserPassword(p.User.Username(), "xxxxx")
	} else {
		p.User = url.User("xxxxx")
	}
	return p.String()
}

// RedactURLs redacts each URL (see RedactURL) and joins them with commas.
func RedactURLs(us []string) string {
	var b strings.Builder
	for i, u := range us {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(RedactURL(u))
	}
	return b.String()
}
