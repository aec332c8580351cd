package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/fanoutd/fanoutd/emulator"
	"github.com/fanoutd/fanoutd/internal/testutil"
	"github.com/fanoutd/fanoutd/internal/testutil/e2e"
	"github.com/fanoutd/fanoutd/internal/testutil/emutest"
)

// credsServer is a NATS server in operator mode (testutil.StartCredsServer).
type credsServer struct {
	ns    *server.Server
	creds string // the user's creds file
}

func startCredsServer(t *testing.T) credsServer {
	t.Helper()
	ns, creds := testutil.StartCredsServer(t)
	return credsServer{ns: ns, creds: creds}
}

// saveContext writes the nats CLI context name under xdg, as `nats context
// save` does, and returns its path.
func saveContext(t *testing.T, xdg, name string, ctx map[string]string) string {
	t.Helper()
	dir := filepath.Join(xdg, "nats", "context")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	data, err := json.MarshalIndent(ctx, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name+".json")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// A nats context (servers and a creds file) connects `run`, `tail` and
// `status` to a server that requires the credentials: run and tail as
// processes finding the context by name under XDG_CONFIG_HOME, status and
// tail by the path of the file.
func TestNATSContextConnectsRunTailAndStatus(t *testing.T) {
	t.Parallel()
	emu, err := emulator.New(emutest.Options())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emu.Close() })
	if err := emu.CreateStream("orders", 2); err != nil {
		t.Fatal(err)
	}
	cs := startCredsServer(t)
	xdg := t.TempDir()
	ctxFile := saveContext(t, xdg, "fanoutd-test", map[string]string{
		"description": "the test server", "url": cs.ns.ClientURL(), "creds": cs.creds,
	})
	env := append(emu.EnvLines(), "XDG_CONFIG_HOME="+xdg)

	// The config names no server and no credentials: all from the context.
	c := e2e.Config{Streams: "  - name: orders", NATS: "  context: fanoutd-test\n", Checkpoint: "  bucket:\n    name: orders_checkpoints\n",
		Coordination: "  mode: jetstream\n  instance: ctx-a\n  bucket:\n    name: orders_group\n"}
	cfgPath := c.Write(t)
	var out, errOut testutil.SyncBuffer
	if code := runContext(context.Background(), []string{"validate", "--config", cfgPath}, &out, &errOut); code != 2 ||
		!strings.Contains(errOut.String(), "nats.context: no nats context fanoutd-test") {
		t.Fatalf("validate without XDG_CONFIG_HOME: exit %d, want 2 naming nats.context:\n%s%s", code, out.String(), errOut.String())
	}
	validate, vout := fanoutdProcess(t, env, "validate", "--config", cfgPath)
	if code := waitExit(t, validate, 20*time.Second); code != 0 ||
		!strings.Contains(vout.String(), "  nats: context fanoutd-test ("+ctxFile+") gives servers, creds_file\n") {
		t.Fatalf("validate: exit %d\n%s", code, vout.String())
	}

	daemon, dout := fanoutdProcess(t, env, "run", "--config", cfgPath)
	testutil.WaitFor(t, 20*time.Second, "subscriptions", func() bool { return emu.ActiveSubscriptions("orders", "") == 2 })
	tail, tout := fanoutdProcess(t, env, "tail", "--context", "fanoutd-test", "kinesis.orders", "--count", "4")
	testutil.WaitFor(t, 10*time.Second, "tail to subscribe", func() bool { return strings.Contains(tout.String(), "subscribed to kinesis.orders") })
	byPath := startTail(t, "--context", ctxFile, "kinesis.orders", "--count", "4")
	for i, data := range []string{"one", "two", "three", "four"} {
		if _, _, err := emu.PutRecord("orders", "k"+string(rune('a'+i)), []byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	if code := waitExit(t, tail, 20*time.Second); code != 0 {
		t.Fatalf("tail: exit %d\n%s", code, tout.String())
	}
	if code := byPath.wait(t); code != 0 {
		t.Fatalf("tail --context PATH: exit %d", code)
	}
	for _, data := range []string{"one", "two", "three", "four"} {
		want := "data (" + string(rune('0'+len(data))) + " bytes): " + data + "\n"
		if !strings.Contains(tout.String(), want) || !strings.Contains(byPath.out.String(), want) {
			t.Errorf("a tail lacks %q", want)
		}
	}

	// status reads the checkpoints and leases the daemon keeps in NATS.
	var status string
	row := regexp.MustCompile(`(?m)^orders  fanoutd   shardId-00000000000[01]  \d+ +[0-9.ms]+ ago +ctx-a  ctx-a  expires in [0-9.]+s$`)
	testutil.WaitFor(t, 20*time.Second, "status to show both shards' checkpoints and leases", func() bool {
		var out, errOut testutil.SyncBuffer
		code := runContext(context.Background(), []string{"status", "--context", ctxFile, "--bucket", "orders_checkpoints", "--coordination-bucket", "orders_group"}, &out, &errOut)
		status = out.String() + errOut.String()
		return code == 0 && len(row.FindAllString(status, -1)) == 2
	})
	for _, want := range []string{"checkpoints in bucket orders_checkpoints on nats://127.0.0.1:", ": 2 shards\n",
		"group in bucket orders_group: members ctx-a (heartbeat ", "STREAM  CONSUMER  SHARD  "} {
		if !strings.Contains(status, want) {
			t.Errorf("status lacks %q:\n%s", want, status)
		}
	}
	var jout, jerr testutil.SyncBuffer
	if code := runContext(context.Background(), []string{"status", "--context", ctxFile, "--bucket", "orders_checkpoints", "--coordination-bucket", "orders_group", "--json"}, &jout, &jerr); code != 0 {
		t.Fatalf("status --json: exit %d: %s", code, jerr.String())
	}
	for i, line := range strings.Split(strings.TrimSpace(jout.String()), "\n") {
		var sh shardJSON
		if err := json.Unmarshal([]byte(line), &sh); err != nil || sh.Stream != "orders" || sh.Owner != "ctx-a" || sh.SequenceNumber == "" || sh.LeaseExpires.IsZero() || sh.Instance != "ctx-a" {
			t.Errorf("status --json line %d: %q (%v)", i, line, err)
		}
	}

	// A reload reads the context again: without it, the reload is refused
	// by key path and the daemon keeps running.
	if err := os.Rename(ctxFile, ctxFile+".moved"); err != nil {
		t.Fatal(err)
	}
	if err := daemon.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "the reload refused at nats.context", func() bool {
		s := dout.String()
		return strings.Contains(s, `"path":"nats.context","problem":"no nats context fanoutd-test (`+ctxFile+` does not exist)`) &&
			strings.Contains(s, "keeping the running configuration")
	})
	if err := os.Rename(ctxFile+".moved", ctxFile); err != nil {
		t.Fatal(err)
	}
	var out2, errOut2 testutil.SyncBuffer
	if code := runContext(context.Background(), []string{"status", "--context", ctxFile}, &out2, &errOut2); code != 1 ||
		!strings.Contains(errOut2.String(), "no checkpoint bucket fanoutd_checkpoints on nats://") {
		t.Errorf("status without the bucket: exit %d, %s", code, errOut2.String())
	}
}

// A context that is missing, or gives credentials the server refuses, is
// an error of the command that names it.
func TestNATSContextFlagErrors(t *testing.T) {
	t.Parallel()
	cs := startCredsServer(t)
	xdg := t.TempDir()
	noCreds := saveContext(t, xdg, "nocreds", map[string]string{"url": cs.ns.ClientURL()})
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"tail", "--context", filepath.Join(xdg, "missing.json")}, 2, "--context: no nats context " + filepath.Join(xdg, "missing.json")},
		{[]string{"status", "--context", filepath.Join(xdg, "missing.json")}, 2, "--context: no nats context"},
		{[]string{"tail", "--context", noCreds, "--config", "x.yaml"}, 2, "give it alone"},
		{[]string{"status", "--bucket", "x"}, 2, "go with --context"},
		{[]string{"status", "--context", noCreds, "--url", "http://127.0.0.1:1"}, 2, "give --url or --context, not both"},
		{[]string{"tail", "--context", noCreds}, 1, "Authorization Violation"},
		{[]string{"status", "--context", noCreds}, 1, "Authorization Violation"},
	} {
		var out, errOut testutil.SyncBuffer
		code := runContext(context.Background(), tc.args, &out, &errOut)
		if code != tc.code || !strings.Contains(strings.ToLower(errOut.String()), strings.ToLower(tc.want)) {
			t.Errorf("%v: exit %d, want %d with %q:\n%s", tc.args, code, tc.code, tc.want, errOut.String())
		}
	}
}
