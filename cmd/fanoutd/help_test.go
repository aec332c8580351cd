package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/fanoutd/fanoutd/internal/testutil"
)

// TestHelpPrintsUsage: `fanoutd`, `fanoutd help` and `fanoutd --help` print
// the subcommands, one line each, and examples; `fanoutd help tail` the
// command's flags and examples. All exit 0 on stdout.
func TestHelpPrintsUsage(t *testing.T) {
	for _, args := range [][]string{nil, {"help"}, {"--help"}} {
		var out, errOut bytes.Buffer
		if code := runContext(context.Background(), args, &out, &errOut); code != 0 {
			t.Fatalf("%q: exit %d: %s", args, code, errOut.String())
		}
		s := out.String()
		for _, want := range []string{
			"Usage: fanoutd <command>", "Examples:", "fanoutd demo --duration 10s", "--version",
			"\n  demo ", "\n  run ", "\n  validate ", "\n  version ", "\n  emulator ", "\n  status ", "\n  tail ", "\n  consumers ",
		} {
			if !strings.Contains(s, want) {
				t.Errorf("%q: usage lacks %q:\n%s", args, want, s)
			}
		}
		// One line per subcommand: the line after a command is the next one.
		cmds := s[strings.Index(s, "Commands:"):]
		for _, line := range strings.Split(strings.TrimSpace(cmds), "\n")[1:] {
			if strings.HasPrefix(line, "     ") {
				t.Errorf("%q: a command's summary wraps: %q", args, line)
			}
		}
	}
	var demoOut, demoErr bytes.Buffer
	if code := runContext(context.Background(), []string{"help", "demo"}, &demoOut, &demoErr); code != 0 {
		t.Fatalf("help demo: exit %d: %s", code, demoErr.String())
	}
	for _, want := range []string{"--payload=\"text\"", "--payload json", "kinesis.demo.{data.entity}.{data.event}.{data.customer.id}", "Examples:"} {
		if !strings.Contains(demoOut.String(), want) {
			t.Errorf("help demo lacks %q:\n%s", want, demoOut.String())
		}
	}
	var out, errOut bytes.Buffer
	if code := runContext(context.Background(), []string{"help", "tail"}, &out, &errOut); code != 0 {
		t.Fatalf("help tail: exit %d: %s", code, errOut.String())
	}
	for _, want := range []string{"Usage: fanoutd tail [<subject>]", "--json", "--raw", "--count=N", "Examples:", "jq", "Cloudwatch-Log-Group", "event_timestamp"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("help tail lacks %q:\n%s", want, out.String())
		}
	}
}

func TestVersionFlagAndCommandAgree(t *testing.T) {
	var flagOut, cmdOut, errOut bytes.Buffer
	if code := runContext(context.Background(), []string{"--version"}, &flagOut, &errOut); code != 0 {
		t.Fatalf("--version: exit %d: %s", code, errOut.String())
	}
	if code := runContext(context.Background(), []string{"version"}, &cmdOut, &errOut); code != 0 {
		t.Fatalf("version: exit %d: %s", code, errOut.String())
	}
	if !strings.HasPrefix(flagOut.String(), "fanoutd ") || flagOut.String() != cmdOut.String() {
		t.Fatalf("--version printed %q, version %q", flagOut.String(), cmdOut.String())
	}
}

func TestValidateMissingConfigSaysSo(t *testing.T) {
	var out, errOut bytes.Buffer
	path := t.TempDir() + "/absent.yaml"
	if code := runContext(context.Background(), []string{"validate", "--config", path}, &out, &errOut); code != 2 {
		t.Fatalf("exit %d, want 2", code)
	}
	if got, want := strings.TrimSpace(errOut.String()), "fanoutd: config file "+path+" does not exist"; got != want {
		t.Fatalf("stderr %q, want %q", got, want)
	}
}

// TestTailJSONParsesWithJq feeds `tail --json` to the real jq, as the README
// shows.
func TestTailJSONParsesWithJq(t *testing.T) {
	jq, err := exec.LookPath("jq")
	if err != nil {
		t.Skip("jq not installed (apt-get install jq; .ci/run installs it)")
	}
	ns := testutil.StartNATS(t, testutil.NATSOptions{JetStream: false})
	r := startTail(t, "--server", ns.ClientURL(), "--count", "2", "--json")
	publish(t, ns.ClientURL(),
		recordMsg("kinesis.orders.a", "caf\u00e9 1", "49001", 0, []byte(`{"event":"signup"}`)),
		recordMsg("kinesis.orders.b", "user2", "49002", 3, binaryData),
	)
	if code := r.wait(t); code != 0 {
		t.Fatalf("exit %d: %s", code, r.err.String())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, jq, "-r", `[.subject, .partition_key, (.sub_sequence_number // "-" | tostring), .data_encoding,
		(if .data_encoding == "utf-8" then (.data | fromjson | .event) else (.data | @base64d | length | tostring) end)] | @tsv`)
	cmd.Stdin = strings.NewReader(r.out.String())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("jq: %v: %s\ninput:\n%s", err, out, r.out.String())
	}
	want := "kinesis.orders.a\tcaf\u00e9 1\t-\tutf-8\tsignup\n" +
		"kinesis.orders.b\tuser2\t3\tbase64\t105\n"
	if string(out) != want {
		t.Fatalf("jq printed\n%s\nwant\n%s", out, want)
	}
}

// Every command's help has examples; `fanoutd help run` says which signals
// the daemon handles and what its exit codes mean.
func TestHelpOfEveryCommandHasExamples(t *testing.T) {
	for _, cmd := range [][]string{{"demo"}, {"run"}, {"validate"}, {"version"}, {"emulator"}, {"status"}, {"tail"},
		{"consumers"}, {"consumers", "list"}, {"consumers", "deregister"}, {"bench"}} {
		var out, errOut bytes.Buffer
		if code := runContext(context.Background(), append([]string{"help"}, cmd...), &out, &errOut); code != 0 {
			t.Fatalf("help %s: exit %d: %s", cmd, code, errOut.String())
		}
		if !strings.Contains(out.String(), "Examples:\n\n    fanoutd ") {
			t.Errorf("help %s has no examples:\n%s", cmd, out.String())
		}
	}
	var out, errOut bytes.Buffer
	if code := runContext(context.Background(), []string{"help", "run"}, &out, &errOut); code != 0 {
		t.Fatalf("help run: exit %d: %s", code, errOut.String())
	}
	for _, want := range []string{
		"SIGTERM, SIGINT   stop gracefully", "A second one exits 1 at once", "SIGHUP            reload the config file",
		"Exit codes", "\n    0   stopped by SIGTERM or SIGINT", "\n    1   a failure a restart may cure",
		"\n    2   a problem only an operator can fix", "RestartPreventExitStatus=2",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("help run lacks %q:\n%s", want, out.String())
		}
	}
}

// The README's copy of `fanoutd help` lists every command, as fanoutd does.
func TestReadmeListsEveryCommand(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if code := runContext(context.Background(), []string{"help"}, &out, &errOut); code != 0 {
		t.Fatalf("help: exit %d: %s", code, errOut.String())
	}
	s := out.String()
	cmds := s[strings.Index(s, "Commands:\n"):]
	cmds = cmds[:strings.Index(cmds, "\n\n")+1]
	if !strings.Contains(string(readme), cmds) {
		t.Errorf("README.md lacks the command list of fanoutd help:\n%s", cmds)
	}
}
