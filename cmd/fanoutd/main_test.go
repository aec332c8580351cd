package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/fanoutd/fanoutd/internal/testutil"
)

func TestVersion(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := runContext(context.Background(), []string{"version"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if !strings.HasPrefix(out.String(), "fanoutd ") {
		t.Fatalf("output %q", out.String())
	}
}

func TestUsageErrorsExit2(t *testing.T) {
	for _, args := range [][]string{{"bogus"}, {"emulator", "--streams", "x"}, {"emulator", "--streams", "x:0"}} {
		var out, errOut bytes.Buffer
		if code := runContext(context.Background(), args, &out, &errOut); code != 2 {
			t.Errorf("%v: exit %d, want 2 (%s)", args, code, errOut.String())
		}
		if errOut.Len() == 0 {
			t.Errorf("%v: no message", args)
		}
	}
}

// The emulator command prints environment lines that are enough for the SDK.
func TestEmulatorCommand(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out testutil.SyncBuffer
	done := make(chan int, 1)
	go func() {
		done <- runContext(ctx, []string{"emulator", "--listen", "127.0.0.1:0", "--streams", "orders:4,clicks:2"}, &out, &out)
	}()
	testutil.WaitFor(t, 10*time.Second, "the emulator's banner", func() bool { return strings.Contains(out.String(), "Press Ctrl-C") })
	for _, line := range strings.Split(out.String(), "\n") {
		if kv, ok := strings.CutPrefix(line, "export "); ok {
			k, v, _ := strings.Cut(kv, "=")
			t.Setenv(k, v)
		}
	}
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	res, err := kinesis.NewFromConfig(cfg).ListStreams(ctx, &kinesis.ListStreamsInput{})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(res.StreamNames, ","); got != "clicks,orders" {
		t.Fatalf("streams %s", got)
	}
	sum, err := kinesis.NewFromConfig(cfg).DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("orders")})
	if err != nil || aws.ToInt32(sum.StreamDescriptionSummary.OpenShardCount) != 4 {
		t.Fatalf("orders: %v %v", sum, err)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("emulator did not stop")
	}
}

// The example config shipped in deploy/ stays valid.
func TestExampleConfigIsValid(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := runContext(context.Background(), []string{"validate", "--config", "../../deploy/fanoutd.example.yaml"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	// What depends on the server is said, not checked.
	if want := "records too big for one NATS message -> Object Store bucket FANOUTD_RECORDS (needs JetStream on the NATS server"; !strings.Contains(out.String(), want) {
		t.Fatalf("validate output lacks %q:\n%s", want, out.String())
	}
}

// validate reports every problem of a file in one pass, unknown keys
// included, and exits 2.
func TestValidateReportsEveryProblem(t *testing.T) {
	var out, errOut bytes.Buffer
	code := runContext(context.Background(), []string{"validate", "--config", "../../config/testdata/invalid/unknown_key_and_values.yaml"}, &out, &errOut)
	if code != 2 {
		t.Fatalf("exit %d, want 2: %s", code, errOut.String())
	}
	for _, want := range []string{"streams[0].subjct: unknown key", "streams[0].start_position: must be one of", "timers.idle_timeout: must be greater than 0"} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, errOut.String())
		}
	}
}
func TestRunRejectsInvalidConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(path, []byte("streams:\n  - name: s\n    start_position: EARLIEST\n    subjct: x\n"), 0o600)
	for _, cmd := range []string{"run", "validate"} {
		var out, errOut bytes.Buffer
		code := runContext(context.Background(), []string{cmd, "--config", path}, &out, &errOut)
		if code != 2 {
			t.Fatalf("%s: exit %d, want 2", cmd, code)
		}
		if !strings.Contains(errOut.String(), "streams[0].subjct: unknown key") {
			t.Fatalf("%s: message %q", cmd, errOut.String())
		}
	}
	good := filepath.Join(t.TempDir(), "good.yaml")
	os.WriteFile(good, []byte("streams:\n  - name: s\ncheckpoint:\n  dir: /tmp/x\n"), 0o600)
	var out, errOut bytes.Buffer
	if code := runContext(context.Background(), []string{"validate", "--config", good}, &out, &errOut); code != 0 || !strings.Contains(out.String(), "OK") {
		t.Fatalf("validate good: %d %q %q", code, out.String(), errOut.String())
	}
}
