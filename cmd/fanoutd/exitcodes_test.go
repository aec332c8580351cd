package main

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/fanoutd/fanoutd/internal/testutil/e2e"
	"github.com/fanoutd/fanoutd/internal/testutil/emutest"
)

// A setup problem that no restart can fix exits 2 (systemd's
// RestartPreventExitStatus=2) with a message saying what to do; each case
// runs the daemon as a process.
func TestSetupProblemsExit2(t *testing.T) {
	for _, tc := range []struct {
		name      string
		jetstream bool
		streams   string
		// edit changes the config.
		edit func(t *testing.T, e *e2e.Env, c *e2e.Config)
		want []string
	}{
		{name: "no JetStream stream captures the record subjects", jetstream: true, streams: "  - name: s",
			want: []string{"no JetStream stream captures kinesis.s", "Add the subjects to a stream"}},
		{name: "nats.jetstream for an account without JetStream", streams: "  - name: s",
			edit: func(t *testing.T, e *e2e.Env, c *e2e.Config) {
				noJS := server.NewAccount("NOJS")
				srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true,
					JetStream: true, StoreDir: t.TempDir(), Accounts: []*server.Account{noJS},
					Users: []*server.User{{Username: "fanoutd", Password: "pw", Account: noJS}}})
				if err != nil {
					t.Fatal(err)
				}
				srv.Start()
				t.Cleanup(srv.Shutdown)
				if !srv.ReadyForConnections(10 * time.Second) {
					t.Fatal("NATS not ready")
				}
				c.JetStream = true
				c.Servers, c.NATS = []string{srv.ClientURL()}, "  user: fanoutd\n  password: pw\n"
			},
			want: []string{"JetStream not enabled for account", "set nats.jetstream: false"}},
		{name: "the HTTP port is taken", streams: "  - name: s",
			edit: func(t *testing.T, e *e2e.Env, c *e2e.Config) {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { ln.Close() })
				c.HTTPListen = ln.Addr().String()
			},
			want: []string{"http.listen 127.0.0.1:", "address already in use", "set another http.listen"}},
		{name: "NATS refuses the credentials", streams: "  - name: s",
			edit: func(t *testing.T, e *e2e.Env, c *e2e.Config) {
				srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true,
					Users: []*server.User{{Username: "fanoutd", Password: "right"}}})
				if err != nil {
					t.Fatal(err)
				}
				srv.Start()
				t.Cleanup(srv.Shutdown)
				if !srv.ReadyForConnections(10 * time.Second) {
					t.Fatal("NATS not ready")
				}
				c.Servers, c.NATS = []string{srv.ClientURL()}, "  user: fanoutd\n  password: wrong\n"
			},
			want: []string{"Authorization Violation", "check nats.creds_file"}},
		{name: "AWS refuses a permission", streams: "  - name: s",
			edit: func(t *testing.T, e *e2e.Env, c *e2e.Config) {
				denied := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Type", "application/x-amz-json-1.1")
					w.WriteHeader(http.StatusBadRequest)
					fmt.Fprint(w, `{"__type":"AccessDeniedException","message":"User: arn:aws:iam::123456789012:user/fanoutd is not authorized to perform: kinesis:DescribeStreamSummary"}`)
				}))
				t.Cleanup(denied.Close)
				c.Endpoint = denied.URL
			},
			want: []string{"AccessDeniedException", "kinesis:DescribeStreamSummary", "EnvConfigCredentials", "docs/operations.md#iam"}},
		{name: "aws.profile names no profile", streams: "  - name: s",
			edit: func(t *testing.T, e *e2e.Env, c *e2e.Config) {
				c.AWS = "  profile: nope\n"
			},
			want: []string{"load AWS config", "nope"}},
		{name: "checkpoint.dir is a file", streams: "  - name: s",
			edit: func(t *testing.T, e *e2e.Env, c *e2e.Config) {
				file := filepath.Join(t.TempDir(), "file")
				if err := os.WriteFile(file, nil, 0o600); err != nil {
					t.Fatal(err)
				}
				c.CheckpointDir = file
			},
			want: []string{"checkpoint.dir:", "give fanoutd a writable directory"}},
		{name: "the Kinesis stream does not exist", streams: "  - name: nope",
			want: []string{"stream nope: stream not found"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newProcessE2E(t, emutest.Options(), tc.jetstream)
			if err := e.Emu.CreateStream("s", 1); err != nil {
				t.Fatal(err)
			}
			c := e.Config(tc.jetstream, tc.streams)
			if tc.edit != nil {
				tc.edit(t, e, &c)
			}
			path := c.Write(t)
			cmd, out := fanoutdProcess(t, e.EnvLines(), "run", "--config", path)
			if code := waitExit(t, cmd, 30*time.Second); code != 2 {
				t.Fatalf("exit %d, want 2\n%s", code, out.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Fatalf("output lacks %q:\n%s", w, out.String())
				}
			}
		})
	}
}
