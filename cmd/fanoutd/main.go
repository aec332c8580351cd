// Command fanoutd relays Kinesis data streams to NATS through enhanced
// fan-out. It only parses flags, wires packages together, handles signals
// and sets exit codes; every behaviour lives in a package a test can import.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/alecthomas/kong"

	"github.com/fanoutd/fanoutd/config"
	"github.com/fanoutd/fanoutd/daemon"
)

// Exit codes (docs/operations.md lists every cause): 0 success, 1 a
// failure a restart may cure (systemd restarts us), 2 bad usage or a
// problem only an operator can fix (daemon.ConfigError: invalid
// configuration, a refused credential or permission, a missing stream, a
// taken port...): a restart would meet it again.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// stdio is where a command writes: out for its output, err for logs.
type stdio struct{ out, err io.Writer }

// CLI is the command line.
type CLI struct {
	VersionFlag kong.VersionFlag `name:"version" help:"Print the version and exit."`

	Demo     DemoCmd     `cmd:"" help:"Run emulator, NATS, producer and relay in-process."`
	Run      RunCmd      `cmd:"" help:"Run the relay daemon (foreground, for systemd)."`
	Validate ValidateCmd `cmd:"" help:"Check a config file (exit 2 on problems)."`
	Version  VersionCmd  `cmd:"" help:"Print the version."`
	Emulator EmulatorCmd `cmd:"" help:"Run a local Kinesis endpoint with enhanced fan-out."`

	Status    StatusCmd    `cmd:"" help:"Show the running daemon's streams and shards."`
	Tail      TailCmd      `cmd:"" help:"Print relayed records from a NATS subject."`
	Consumers ConsumersCmd `cmd:"" help:"List or deregister a stream's EFO consumers."`
	Bench     BenchCmd     `cmd:"" help:"Measure the daemon beside a plain SDK relay."`
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run runs the command line until it ends or a signal stops it, and returns
// the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signalContext()
	defer stop()
	return runContext(ctx, args, stdout, stderr)
}

// runContext parses args and runs the command until ctx ends.
func runContext(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var cli CLI
	exitCode := -1
	parser, err := kong.New(&cli,
		kong.Name("fanoutd"),
		kong.Description(description),
		kong.Vars{"version": versionLine(), "nats_server": config.DefaultNATSServer, "http_listen": config.DefaultHTTPListen},
		kong.ConfigureHelp(kong.HelpOptions{Compact: true, NoExpandSubcommands: true}),
		kong.UsageOnError(),
		kong.Writers(stdout, stderr),
		kong.Exit(func(code int) { exitCode = code }),
		kong.BindTo(stdout, (*io.Writer)(nil)),
	)
	if err != nil {
		fmt.Fprintln(stderr, "fanoutd:", err)
		return exitFailure
	}
	args = helpArgs(args)
	if len(args) == 0 { // plain `fanoutd`: the usage, as `fanoutd help`
		args = []string{"--help"}
	}
	kctx, err := parser.Parse(args)
	if exitCode >= 0 { // --help
		return exitCode
	}
	if err != nil {
		fmt.Fprintln(stderr, "fanoutd:", err)
		return exitUsage
	}
	kctx.BindTo(ctx, (*context.Context)(nil))
	kctx.Bind(stdio{out: stdout, err: stderr})
	if err := kctx.Run(); err != nil {
		fmt.Fprintln(stderr, "fanoutd:", err)
		var ue usageError
		var ce *daemon.ConfigError
		if errors.As(err, &ue) || errors.As(err, &ce) {
			return exitUsage
		}
		return exitFailure
	}
	return exitOK
}

// description heads `fanoutd help`.
const description = `Relay AWS Kinesis data streams to NATS subjects through enhanced fan-out.

Examples:
  fanoutd demo --duration 10s                 # the whole path in-process, nothing to install
  fanoutd emulator --streams orders:2         # a local Kinesis endpoint, for the AWS CLI and SDKs
  fanoutd validate --config fanoutd.yaml      # check a config file
  fanoutd run --config fanoutd.yaml           # the daemon (foreground, for systemd)
  fanoutd tail 'kinesis.orders.>' --json | jq .data

"fanoutd help COMMAND" (or "fanoutd COMMAND --help") shows a command's flags.`

// helpArgs turns "help [COMMAND...]" into "[COMMAND...] --help".
func helpArgs(args []string) []string {
	if len(args) == 0 || args[0] != "help" {
		return args
	}
	return append(append([]string(nil), args[1:]...), "--help")
}

// signalContext is cancelled by the first SIGINT or SIGTERM; a second one
// exits at once.
func signalContext() (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 2)
	stopped := make(chan struct{})
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		select {
		case <-ch:
			cancel()
		case <-stopped:
			return
		}
		// Shutting down: until it is over, a second signal ends it now.
		select {
		case sig := <-ch:
			fmt.Fprintf(os.Stderr, "fanoutd: second %v, exiting now\n", sig)
			os.Exit(exitFailure)
		case <-stopped:
		}
	}()
	var once sync.Once
	return ctx, func() {
		once.Do(func() {
			signal.Stop(ch)
			close(stopped)
			cancel()
		})
	}
}
