package relay

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/rs/zerolog"

	"github.com/fanoutd/fanoutd/internal/testutil"
)

// connectLogged connects with cfg and returns what was logged so far.
func connectLogged(t *testing.T, cfg ConnOptions) (*nats.Conn, *logBuffer, error) {
	t.Helper()
	logs := &logBuffer{}
	nc, err := Connect(context.Background(), cfg, zerolog.New(logs))
	if nc != nil {
		t.Cleanup(nc.Close)
	}
	return nc, logs, err
}

// checkNoSecret fails if secret shows in the error or the logs.
func checkNoSecret(t *testing.T, secret string, err error, logs *logBuffer) {
	t.Helper()
	if err != nil && strings.Contains(err.Error(), secret) {
		t.Errorf("error leaks the secret: %v", err)
	}
	if strings.Contains(logs.String(), secret) {
		t.Errorf("logs leak the secret: %s", logs)
	}
}

func TestConnectAuth(t *testing.T) {
	t.Parallel()
	seed := testSeed

	t.Run("token", func(t *testing.T) {
		s := startServer(t, testServerConfig{Token: "t0ken-s3cret"})
		cfg := s.natsConfig()
		cfg.Token = "t0ken-s3cret"
		if _, logs, err := connectLogged(t, cfg); err != nil {
			t.Fatalf("Connect: %v", err)
		} else {
			checkNoSecret(t, "t0ken-s3cret", nil, logs)
		}
		cfg.Token = "wrong-t0ken"
		_, logs, err := connectLogged(t, cfg)
		checkAuthError(t, err)
		checkNoSecret(t, "wrong-t0ken", err, logs)
	})

	t.Run("user and password", func(t *testing.T) {
		s := startServer(t, testServerConfig{User: "fanoutd", Password: "pa55-s3cret"})
		cfg := s.natsConfig()
		cfg.User, cfg.Password = "fanoutd", "pa55-s3cret"
		if _, _, err := connectLogged(t, cfg); err != nil {
			t.Fatalf("Connect: %v", err)
		}
		cfg.Password = "wrong-pa55"
		start := time.Now()
		_, logs, err := connectLogged(t, cfg)
		checkAuthError(t, err)
		checkNoSecret(t, "wrong-pa55", err, logs)
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("a wrong password took %s to fail; it should not be retried", d)
		}
	})

	t.Run("password in URL", func(t *testing.T) {
		s := startServer(t, testServerConfig{User: "fanoutd", Password: "url-s3cret"})
		cfg := s.natsConfig()
		cfg.Servers = []string{strings.Replace(s.URL(), "nats://", "nats://fanoutd:url-s3cret@", 1)}
		_, logs, err := connectLogged(t, cfg)
		if err != nil {
			t.Fatalf("Connect: %v", err)
		}
		checkNoSecret(t, "url-s3cret", nil, logs)
		cfg.Servers = []string{strings.Replace(s.URL(), "nats://", "nats://fanoutd:bad-url-s3cret@", 1)}
		_, logs, err = connectLogged(t, cfg)
		checkAuthError(t, err)
		checkNoSecret(t, "bad-url-s3cret", err, logs)
	})

	t.Run("nkey", func(t *testing.T) {
		pub, seedFile := seed(t)
		s := startServer(t, testServerConfig{NKey: pub})
		cfg := s.natsConfig()
		cfg.NKeySeedFile = seedFile
		if _, _, err := connectLogged(t, cfg); err != nil {
			t.Fatalf("Connect: %v", err)
		}
		_, otherSeed := seed(t)
		cfg.NKeySeedFile = otherSeed
		_, _, err := connectLogged(t, cfg)
		checkAuthError(t, err)

		cfg.NKeySeedFile = filepath.Join(t.TempDir(), "missing.nk")
		if _, _, err := connectLogged(t, cfg); err == nil || !strings.Contains(err.Error(), "nats.nkey_seed_file") {
			t.Errorf("Connect with a missing seed file = %v, want an error naming nats.nkey_seed_file", err)
		}
	})
}

// testSeed writes a new nkey user's seed file and returns its public key
// and the file.
func testSeed(t *testing.T) (pub, seedFile string) {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, err = kp.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	s, err := kp.Seed()
	if err != nil {
		t.Fatal(err)
	}
	seedFile = filepath.Join(t.TempDir(), "user.nk")
	if err := os.WriteFile(seedFile, s, 0o600); err != nil {
		t.Fatal(err)
	}
	return pub, seedFile
}

func checkAuthError(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		t.Fatal("Connect with wrong credentials succeeded")
	}
	for _, want := range []string{"connect to nats", "authorization violation", "check nats."} {
		if !strings.Contains(strings.ToLower(err.Error()), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

func TestConnectTLS(t *testing.T) {
	t.Parallel()
	pki := newTestPKI(t)

	t.Run("CA", func(t *testing.T) {
		s := startServer(t, testServerConfig{TLS: pki})
		cfg := s.natsConfig() // tls:// URL
		cfg.CAFile = pki.CA
		nc, _, err := connectLogged(t, cfg)
		if err != nil {
			t.Fatalf("Connect: %v", err)
		}
		if _, err := nc.TLSConnectionState(); err != nil {
			t.Errorf("connection is not TLS: %v", err)
		}
		// The relay works over it.
		p := newTestPublisher(t, nc, Options{})
		if err := p.Handle(context.Background(), testBatch(3)); err != nil {
			t.Errorf("Handle over TLS: %v", err)
		}
	})

	t.Run("unknown CA", func(t *testing.T) {
		s := startServer(t, testServerConfig{TLS: pki})
		start := time.Now()
		_, _, err := connectLogged(t, s.natsConfig())
		if err == nil || !strings.Contains(err.Error(), "nats.tls.ca_file") {
			t.Fatalf("Connect without the CA = %v, want a certificate error naming nats.tls.ca_file", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("an unknown CA took %s to fail; it should not be retried", d)
		}
	})

	t.Run("client certificate", func(t *testing.T) {
		s := startServer(t, testServerConfig{TLS: pki, VerifyTLS: true})
		cfg := s.natsConfig()
		cfg.CAFile = pki.CA
		cfg.CertFile, cfg.KeyFile = pki.ClientCert, pki.ClientKey
		if _, _, err := connectLogged(t, cfg); err != nil {
			t.Fatalf("Connect: %v", err)
		}
	})
}

func TestConnectNoServer(t *testing.T) {
	t.Parallel()
	s := startServer(t, testServerConfig{})
	s.Shutdown()
	cfg := s.natsConfig()
	cfg.ConnectTimeout = 300 * time.Millisecond
	start := time.Now()
	_, logs, err := connectLogged(t, cfg)
	if err == nil || !strings.Contains(err.Error(), "no server reachable within 300ms") {
		t.Fatalf("Connect = %v, want no server reachable", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Connect took %s to give up, want about 300ms", d)
	}
	if !strings.Contains(logs.String(), "connect to NATS failed") {
		t.Errorf("failed attempts were not logged: %s", logs)
	}
}

// TestConnectServers: the first reachable server of the list is used, and
// a server that comes back is reconnected to.
func TestConnectServers(t *testing.T) {
	t.Parallel()
	down := startServer(t, testServerConfig{})
	down.Shutdown()
	up := startServer(t, testServerConfig{})
	cfg := up.natsConfig()
	cfg.Servers = []string{down.URL(), up.URL()}
	nc, logs, err := connectLogged(t, cfg)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	if got := nc.ConnectedUrl(); got != up.URL() {
		t.Errorf("connected to %s, want %s", got, up.URL())
	}

	up.Shutdown()
	testutil.WaitFor(t, 5*time.Second, "disconnect", func() bool { return nc.Status() != nats.CONNECTED })
	up.Start()
	waitStatus(t, nc, nats.CONNECTED)
	testutil.WaitFor(t, 5*time.Second, "the reconnect logged", func() bool {
		return strings.Contains(logs.String(), "reconnected to NATS")
	})
	for _, want := range []string{`"level":"info","component":"nats"`, "connected to NATS", "disconnected from NATS"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("logs lack %q: %s", want, logs)
		}
	}
}

func TestReconnectDelay(t *testing.T) {
	t.Parallel()
	for attempt := 1; attempt < 20; attempt++ {
		want := min(reconnectDelayMin<<(attempt-1), reconnectDelayMax)
		for range 20 {
			if d := reconnectDelay(attempt); d < want/2 || d > want {
				t.Fatalf("reconnectDelay(%d) = %s, want in [%s, %s]", attempt, d, want/2, want)
			}
		}
	}
}

func TestRedactURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"nats://127.0.0.1:4222", "nats://127.0.0.1:4222"},
		{"nats://user:secret@host:4222", "nats://user:xxxxx@host:4222"},
		{"tls://s3cr3t-token@host:4222", "tls://xxxxx@host:4222"},
		{"nats://u:p@h\x7f", "<unparsable>"},
	} {
		if got := RedactURL(tc.in); got != tc.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if got, want := RedactURLs([]string{"nats://a:b@h1", "nats://h2"}), "nats://a:xxxxx@h1,nats://h2"; got != want {
		t.Errorf("RedactURLs = %q, want %q", got, want)
	}
}
