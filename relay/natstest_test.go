package relay

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/fanoutd/fanoutd/internal/testutil"
)

// testServerConfig describes an embedded nats-server.
type testServerConfig struct {
	JetStream  bool
	Token      string
	User       string
	Password   string
	NKey       string // public key of the one nkey user
	TLS        *testPKI
	VerifyTLS  bool // require client certificates
	MaxPayload int32
}

// testServer is an embedded nats-server that can be stopped and started
// again on the same port, with the same JetStream store.
type testServer struct {
	t    testing.TB
	cfg  testServerConfig
	port int
	dir  string
	srv  *server.Server
}

// startServer starts a server on a random port of 127.0.0.1 and stops it at
// the end of the test.
func startServer(t testing.TB, cfg testServerConfig) *testServer {
	t.Helper()
	s := &testServer{t: t, cfg: cfg, port: server.RANDOM_PORT}
	if cfg.JetStream {
		s.dir = t.TempDir()
	}
	s.Start()
	s.port = s.srv.Addr().(*net.TCPAddr).Port
	t.Cleanup(s.Shutdown)
	return s
}

// Start starts the server (again).
func (s *testServer) Start() {
	s.t.Helper()
	opts := &server.Options{
		Host:          "127.0.0.1",
		Port:          s.port,
		NoLog:         true,
		NoSigs:        true,
		JetStream:     s.cfg.JetStream,
		StoreDir:      s.dir,
		Authorization: s.cfg.Token,
		Username:      s.cfg.User,
		Password:      s.cfg.Password,
		MaxPayload:    s.cfg.MaxPayload,
	}
	if s.cfg.NKey != "" {
		opts.Nkeys = []*server.NkeyUser{{Nkey: s.cfg.NKey}}
	}
	if s.cfg.TLS != nil {
		tc, err := server.GenTLSConfig(&server.TLSConfigOpts{
			CertFile: s.cfg.TLS.ServerCert,
			KeyFile:  s.cfg.TLS.ServerKey,
			CaFile:   s.cfg.TLS.CA,
			Verify:   s.cfg.VerifyTLS,
		})
		if err != nil {
			s.t.Fatalf("server TLS config: %v", err)
		}
		opts.TLSConfig, opts.TLS, opts.TLSVerify, opts.TLSTimeout = tc, true, s.cfg.VerifyTLS, 2
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		s.t.Fatalf("new nats-server: %v", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		s.t.Fatalf("nats-server on port %d not ready", s.port)
	}
	s.srv = srv
}

// Shutdown stops the server; Start brings it back.
func (s *testServer) Shutdown() {
	if s.srv != nil {
		s.srv.Shutdown()
		s.srv.WaitForShutdown()
		s.srv = nil
	}
}

// URL is the server's client URL, tls:// when it has TLS.
func (s *testServer) URL() string {
	scheme := "nats"
	if s.cfg.TLS != nil {
		scheme = "tls"
	}
	return fmt.Sprintf("%s://127.0.0.1:%d", scheme, s.port)
}

// natsConfig returns a config for the server with no auth and no TLS.
func (s *testServer) natsConfig() ConnOptions {
	return ConnOptions{
		Servers:        []string{s.URL()},
		Name:           "fanoutd-test",
		ConnectTimeout: 5 * time.Second,
	}
}

// connect connects with Connect and closes the connection at the end of the test.
func (s *testServer) connect(t testing.TB) *nats.Conn {
	t.Helper()
	nc, err := Connect(context.Background(), s.natsConfig(), zerolog.Nop())
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// waitStatus waits until nc has the given status.
func waitStatus(t testing.TB, nc *nats.Conn, want nats.Status) {
	t.Helper()
	testutil.WaitFor(t, 10*time.Second, "connection "+want.String(), func() bool { return nc.Status() == want })
}

// testPKI is a throwaway CA with a server certificate for 127.0.0.1 and
// localhost and a client certificate, as PEM files.
type testPKI struct {
	CA, ServerCert, ServerKey, ClientCert, ClientKey string
}

func newTestPKI(t testing.TB) *testPKI {
	t.Helper()
	dir := t.TempDir()
	caKey := newKey(t)
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "fanoutd test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	p := &testPKI{CA: filepath.Join(dir, "ca.pem")}
	writePEM(t, p.CA, "CERTIFICATE", caDER)

	leaf := func(name string, serial int64, usage x509.ExtKeyUsage) (certFile, keyFile string) {
		key := newKey(t)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: name},
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.Add(time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
			DNSNames:     []string{"localhost"},
			IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
		writePEM(t, certFile, "CERTIFICATE", der)
		writePEM(t, keyFile, "EC PRIVATE KEY", keyDER)
		return certFile, keyFile
	}
	p.ServerCert, p.ServerKey = leaf("server", 2, x509.ExtKeyUsageServerAuth)
	p.ClientCert, p.ClientKey = leaf("client", 3, x509.ExtKeyUsageClientAuth)
	return p
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// logBuffer collects log output written from any goroutine.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
