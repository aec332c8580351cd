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
	"syscall"

	"github.com/alecthomas/kong"
)

// Exit codes: 0 success, 1 failure at run time (systemd restarts us), 2 bad
// usage or invalid configuration (a restart would not help).
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// stdio is where a command writes: out for its output, err for logs.
type stdio struct{ out, err io.Writer }

// usageError marks errors that exit with code 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// CLI is the command line.
type CLI struct {
	Demo     DemoCmd     `cmd:"" help:"Run the whole path in-process (Kinesis emulator, NATS, producer, relay, subscriber) and print what a subscriber sees."`
	Run      RunCmd      `cmd:"" help:"Run the relay daemon (foreground, for systemd)."`
	Validate ValidateCmd `cmd:"" help:"Check a config file and exit (2 on problems)."`
	Version  VersionCmd  `cmd:"" help:"Print the version."`
	Emulator EmulatorCmd `cmd:"" help:"Run a local Kinesis endpoint with enhanced fan-out (for development and tests)."`

	Status    StatusCmd    `cmd:"" help:"Show the running daemon's streams and shards (from its /status)."`
	Tail      TailCmd      `cmd:"" help:"Subscribe to a NATS subject and print relayed records with their Kinesis headers, decoded."`
	Consumers ConsumersCmd `cmd:"" help:"List or deregister a stream's enhanced fan-out consumers (billed per consumer-shard hour)."`
	Bench     BenchCmd     `cmd:"" help:"Measure the daemon (catch-up, steady-state latency, idle shards) against in-process Kinesis and NATS, optionally beside a plain SDK relay."`
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
		kong.Description("Relay AWS Kinesis data streams to NATS subjects through enhanced fan-out."),
		kong.UsageOnError(),
		kong.Writers(stdout, stderr),
		kong.Exit(func(code int) { exitCode = code }),
		kong.BindTo(stdout, (*io.Writer)(nil)),
	)
	if err != nil {
		fmt.Fprintln(stderr, "fanoutd:", err)
		return exitFailure
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
		if errors.As(err, &ue) {
			return exitUsage
		}
		return exitFailure
	}
	return exitOK
}

// signalContext is cancelled by the first SIGINT or SIGTERM; a second one
// exits at once.
func signalContext() (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		select {
		case <-ch:
			cancel()
		case <-ctx.Done():
			return
		}
		select {
		case sig := <-ch:
			fmt.Fprintf(os.Stderr, "fanoutd: second %v, exiting now\n", sig)
			os.Exit(exitFailure)
		case <-ctx.Done():
		}
	}()
	return ctx, func() { signal.Stop(ch); cancel() }
}
