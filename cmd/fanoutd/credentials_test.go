package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fanoutd/fanoutd/internal/testutil"
	"github.com/fanoutd/fanoutd/internal/testutil/e2e"
	"github.com/fanoutd/fanoutd/internal/testutil/emutest"
)

// Without AWS credentials the daemon says why it is not ready (/readyz, the
// systemd STATUS line) while it retries, then exits 2 at aws.startup_timeout
// naming the credential chain it tried and how to fix it. The instance
// metadata endpoint answers 404 (not an EC2 instance, IMDSv2 refused), so
// the SDK warns that it falls back to IMDSv1: every line, the SDK's too, is
// JSON with unique keys.
func TestNoAWSCredentialsExits2NamingTheChain(t *testing.T) {
	e := newProcessE2E(t, emutest.Options(), false)
	if err := e.Emu.CreateStream("s", 1); err != nil {
		t.Fatal(err)
	}
	env := noCredentialsEnv(t, e)
	c := e.Config(false, "  - name: s")
	c.AWS = "  startup_timeout: 6s\n"
	// No 4 s probe for an Object Store on a server without JetStream.
	c.NATS = "  large_records: dead_letter\n"
	path := c.Write(t)

	sock := newNotifySocket(t)
	start := time.Now()
	cmd, out := fanoutdProcess(t, append(env, "NOTIFY_SOCKET="+sock.path), "run", "--config", path)
	addr := e2e.WaitHTTPAddr(t, out)
	testutil.WaitFor(t, 10*time.Second, "/readyz saying why", func() bool {
		code, body := e2e.Get(t, "http://"+addr+"/readyz")
		return code == 503 && strings.Contains(body, "no AWS credentials yet")
	})
	testutil.WaitFor(t, 10*time.Second, "a STATUS line saying why", func() bool {
		return strings.HasPrefix(lastStatus(sock), "STATUS=not ready: no AWS credentials yet")
	})
	if code := waitExit(t, cmd, 20*time.Second); code != 2 {
		t.Fatalf("exit %d, want 2\n%s", code, out.String())
	}
	if d := time.Since(start); d < 6*time.Second {
		t.Fatalf("exited after %v, before aws.startup_timeout", d)
	}
	s := out.String()
	for _, want := range []string{
		"no AWS credentials found within aws.startup_timeout (6s)",
		"1. the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY: unset)",
		"2. the shared credentials and config files", `profile "default"`,
		"3. web identity", "4. the ECS container endpoint", "5. EC2 instance metadata (IMDS)",
		"attach an IAM role", "/etc/fanoutd/fanoutd.env",
	} {
		if !strings.Contains(s, want) {
			t.Fatalf("output lacks %q:\n%s", want, s)
		}
	}
	if !strings.Contains(s, `"component":"aws-sdk"`) || !strings.Contains(s, "falling back to IMDSv1") {
		t.Fatalf("the SDK's IMDSv1 warning is not a log line of the daemon:\n%s", s)
	}
	checkJSONLog(t, s)
}

// noCredentialsEnv is the emulator's environment without credentials: no
// AWS variable, an empty HOME, and an instance metadata endpoint that
// answers 404 to everything (IMDSv2 refused, no role).
func noCredentialsEnv(t *testing.T, e *e2e.Env) []string {
	t.Helper()
	imds := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(imds.Close)

	env := []string{"HOME=" + t.TempDir(), "AWS_EC2_METADATA_SERVICE_ENDPOINT=" + imds.URL, "AWS_EC2_METADATA_DISABLED="}
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
		"AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN",
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI"} {
		env = append(env, k+"=")
	}
	for _, l := range e.EnvLines() {
		if !strings.HasPrefix(l, "AWS_ACCESS_KEY_ID=") && !strings.HasPrefix(l, "AWS_SECRET_ACCESS_KEY=") {
			env = append(env, l)
		}
	}
	return env
}

// A SIGTERM while the start waits for credentials stops the daemon with
// exit 0.
func TestSIGTERMWhileWaitingForCredentialsExits0(t *testing.T) {
	e := newProcessE2E(t, emutest.Options(), false)
	if err := e.Emu.CreateStream("s", 1); err != nil {
		t.Fatal(err)
	}
	c := e.Config(false, "  - name: s")
	c.NATS = "  large_records: dead_letter\n"
	path := c.Write(t)
	// IMDS off, as on a machine outside EC2 configured so.
	cmd, out := fanoutdProcess(t, append(noCredentialsEnv(t, e), "AWS_EC2_METADATA_DISABLED=true"), "run", "--config", path)
	addr := e2e.WaitHTTPAddr(t, out)
	testutil.WaitFor(t, 10*time.Second, "/readyz saying why", func() bool {
		_, body := e2e.Get(t, "http://"+addr+"/readyz")
		return strings.Contains(body, "no AWS credentials yet")
	})
	cmd.Process.Signal(syscall.SIGTERM)
	if code := waitExit(t, cmd, 20*time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM, want 0", code)
	}
}
