package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fanoutd/fanoutd/emulator"
	"github.com/fanoutd/fanoutd/internal/testutil"
	"github.com/fanoutd/fanoutd/internal/testutil/emutest"
)

// consumersEmu starts an emulator that the SDK chain finds through the
// environment (set for this test: `fanoutd consumers` runs in this
// process), with stream "orders" and consumers app-a (ACTIVE) and app-b.
func consumersEmu(t *testing.T) *emulator.Server {
	t.Helper()
	opts := emutest.Options()
	opts.ConsumerActivationDelay = -1
	opts.ConsumerDeletionDelay = 1500 * time.Millisecond
	emu, err := emulator.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emu.Close() })
	for _, line := range emu.EnvLines() {
		k, v, _ := strings.Cut(line, "=")
		t.Setenv(k, v)
	}
	if err := emu.CreateStream("orders", 2); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"app-a", "app-b"} {
		if _, err := emu.RegisterConsumer("orders", name); err != nil {
			t.Fatal(err)
		}
	}
	return emu
}

// fanoutd runs a command in-process and returns its exit code and outputs.
func fanoutd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut testutil.SyncBuffer
	code = runContext(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// withConfirmInput makes deregister read its confirmation from input, as if
// stdin were (or were not) a terminal.
func withConfirmInput(t *testing.T, input string, terminal bool) {
	t.Helper()
	old := confirmInput
	confirmInput = func() (io.Reader, bool) { return strings.NewReader(input), terminal }
	t.Cleanup(func() { confirmInput = old })
}

// consumerRow returns the list row of consumer name, or "".
func consumerRow(out, name string) string {
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == name {
			return l
		}
	}
	return ""
}

func TestConsumersListShowsRegisteredConsumers(t *testing.T) {
	emu := consumersEmu(t)
	code, out, errOut := fanoutd(t, "consumers", "list", "--stream", "orders")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || strings.Join(strings.Fields(lines[0]), " ") != "NAME STATUS CREATED ARN" {
		t.Fatalf("want a header and two rows:\n%s", out)
	}
	for _, name := range []string{"app-a", "app-b"} {
		f := strings.Fields(consumerRow(out, name))
		if len(f) != 4 {
			t.Fatalf("row of %s: %q", name, f)
		}
		if f[1] != "ACTIVE" {
			t.Errorf("%s status %s", name, f[1])
		}
		if created, err := time.Parse(time.RFC3339, f[2]); err != nil || time.Since(created) > time.Minute {
			t.Errorf("%s created %q", name, f[2])
		}
		if want := emu.StreamARN("orders") + "/consumer/" + name + ":"; !strings.HasPrefix(f[3], want) {
			t.Errorf("%s ARN %q, want prefix %q", name, f[3], want)
		}
	}

	// By ARN, and a stream without consumers.
	if code, out, _ := fanoutd(t, "consumers", "list", "--stream", emu.StreamARN("orders")); code != 0 || consumerRow(out, "app-a") == "" {
		t.Fatalf("by ARN: exit %d\n%s", code, out)
	}
	if err := emu.CreateStream("clicks", 1); err != nil {
		t.Fatal(err)
	}
	if code, out, _ := fanoutd(t, "consumers", "list", "--stream", "clicks"); code != 0 || out != "no consumers registered on clicks\n" {
		t.Fatalf("no consumers: exit %d %q", code, out)
	}
}

// With --config and no --stream, every configured stream is listed, with
// the AWS settings of the aws section.
func TestConsumersListEveryConfiguredStream(t *testing.T) {
	emu := consumersEmu(t)
	if err := emu.CreateStream("clicks", 1); err != nil {
		t.Fatal(err)
	}
	if _, err := emu.RegisterConsumer("clicks", "fanoutd"); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_REGION", "eu-west-1") // the config's aws.region wins
	path := filepath.Join(t.TempDir(), "fanoutd.yaml")
	body := fmt.Sprintf("aws:\n  region: us-east-1\nstreams:\n  - name: orders\n  - arn: %s\ncheckpoint:\n  dir: %q\n", emu.StreamARN("clicks"), t.TempDir())
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := fanoutd(t, "consumers", "list", "--config", path)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, row := range []string{"orders app-a ACTIVE", "orders app-b ACTIVE", "clicks fanoutd ACTIVE"} {
		if !strings.Contains(strings.Join(strings.Fields(out), " "), row) {
			t.Errorf("output lacks row %q:\n%s", row, out)
		}
	}
}

func TestConsumersDeregisterRemovesConsumer(t *testing.T) {
	consumersEmu(t)
	code, out, errOut := fanoutd(t, "consumers", "deregister", "--stream", "orders", "--consumer", "app-a", "--yes")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "consumer app-a on stream orders: DELETING") {
		t.Fatalf("output %q", out)
	}
	_, list, _ := fanoutd(t, "consumers", "list", "--stream", "orders")
	if f := strings.Fields(consumerRow(list, "app-a")); len(f) < 2 || f[1] != "DELETING" {
		t.Fatalf("right after deregister, want app-a DELETING:\n%s", list)
	}
	testutil.WaitFor(t, 10*time.Second, "app-a gone", func() bool {
		_, list, _ = fanoutd(t, "consumers", "list", "--stream", "orders")
		return consumerRow(list, "app-a") == ""
	})
	if consumerRow(list, "app-b") == "" {
		t.Fatalf("app-b is gone too:\n%s", list)
	}

	// --wait returns once it is gone.
	code, out, errOut = fanoutd(t, "consumers", "deregister", "--stream", "orders", "--consumer", "app-b", "--yes", "--wait")
	if code != 0 || !strings.Contains(out, "consumer app-b on stream orders: deregistered") {
		t.Fatalf("--wait: exit %d %q %s", code, out, errOut)
	}
	if _, list, _ = fanoutd(t, "consumers", "list", "--stream", "orders"); list != "no consumers registered on orders\n" {
		t.Fatalf("after --wait: %q", list)
	}
}

func TestConsumersDeregisterConfirmation(t *testing.T) {
	consumersEmu(t)
	still := func(name string) bool {
		_, list, _ := fanoutd(t, "consumers", "list", "--stream", "orders")
		f := strings.Fields(consumerRow(list, name))
		return len(f) > 1 && f[1] == "ACTIVE"
	}
	args := []string{"consumers", "deregister", "--stream", "orders", "--consumer", "app-a"}

	// Not a terminal, no --yes: refuse, and say what to do.
	withConfirmInput(t, "yes\n", false)
	code, _, errOut := fanoutd(t, args...)
	if code != 2 || !strings.Contains(errOut, "pass --yes") {
		t.Fatalf("non-terminal: exit %d, %q", code, errOut)
	}
	if !still("app-a") {
		t.Fatal("deregistered without confirmation")
	}

	// A terminal, answered no.
	withConfirmInput(t, "n\n", true)
	code, _, errOut = fanoutd(t, args...)
	if code != 1 || !strings.Contains(errOut, "Deregister consumer app-a") || !strings.Contains(errOut, "not deregistered") {
		t.Fatalf("answered no: exit %d, %q", code, errOut)
	}
	if !still("app-a") {
		t.Fatal("deregistered although the answer was no")
	}

	// A terminal, answered yes.
	withConfirmInput(t, "yes\n", true)
	if code, out, errOut := fanoutd(t, args...); code != 0 || !strings.Contains(out, "DELETING") {
		t.Fatalf("answered yes: exit %d, %q %q", code, out, errOut)
	}
	if still("app-a") {
		t.Fatal("app-a is still ACTIVE")
	}
}

func TestConsumersUnknownStreamOrConsumer(t *testing.T) {
	consumersEmu(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"list", "--stream", "nope"}, "stream nope not found in region us-east-1"},
		{[]string{"deregister", "--stream", "nope", "--consumer", "app-a", "--yes"}, "stream nope not found"},
		{[]string{"deregister", "--stream", "orders", "--consumer", "nope", "--yes"}, "consumer nope is not registered on stream orders"},
	} {
		code, out, errOut := fanoutd(t, append([]string{"consumers"}, tc.args...)...)
		if code != 1 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, stderr %q, want exit 1 and %q (stdout %q)", tc.args, code, errOut, tc.want, out)
		}
	}
	for _, args := range [][]string{
		{"list"}, // neither --stream nor --config
		{"deregister", "--stream", "orders"},
		{"list", "--stream", "orders", "--config", "x.yaml", "--region", "us-east-1"},
	} {
		if code, _, errOut := fanoutd(t, append([]string{"consumers"}, args...)...); code != 2 {
			t.Errorf("%v: exit %d, want 2 (%s)", args, code, errOut)
		}
	}
}
