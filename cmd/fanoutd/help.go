package main

// The detail `fanoutd help COMMAND` shows under a command's summary (kong
// calls Help); demo, emulator and tail keep theirs beside their flags.

// Help is the detail of `fanoutd help run`.
func (r *RunCmd) Help() string {
	return `Runs the relay in the foreground until a signal stops it: under systemd
(deploy/systemd/fanoutd.service), or in a terminal. Logs go to stderr: JSON,
or console lines on a terminal (log.format).

Signals:

    SIGTERM, SIGINT   stop gracefully: stop reading, finish the batches in
                      flight, write the final checkpoints, drain NATS, exit 0.
                      A second one exits 1 at once (the next start replays
                      from the last checkpoint).
    SIGHUP            reload the config file (systemctl reload fanoutd); an
                      invalid file is refused and the running config kept.
    SIGQUIT           Go's default: a goroutine dump on stderr, exit 2.

Exit codes (docs/operations.md lists every cause):

    0   stopped by SIGTERM or SIGINT, cleanly.
    1   a failure a restart may cure (NATS or AWS unreachable at start, a
        stream failing on a transient error): systemd restarts it.
    2   a problem only an operator can fix (bad command line, invalid
        config, refused credentials or permissions, a missing stream, a
        taken port): the last line says what to do; systemd does not
        restart it (RestartPreventExitStatus=2).

Examples:

    fanoutd validate --config /etc/fanoutd/fanoutd.yaml && fanoutd run --config /etc/fanoutd/fanoutd.yaml
    sudo systemctl reload fanoutd       # SIGHUP: re-read the config
    journalctl -u fanoutd -o cat | tail -1   # why it stopped`
}

// Help is the detail of `fanoutd help validate`.
func (v *ValidateCmd) Help() string {
	return `Loads the file as fanoutd run does (defaults, environment) and checks it
without connecting to anything: exit 0 with a summary of the streams, or
exit 2 with one line per problem, named by key path.

Examples:

    fanoutd validate --config /etc/fanoutd/fanoutd.yaml
    fanoutd validate -c fanoutd.yaml && sudo systemctl reload fanoutd`
}

// Help is the detail of `fanoutd help version`.
func (v *VersionCmd) Help() string {
	return `Prints the version fanoutd was built as, its Go toolchain and platform.

Examples:

    fanoutd version
    fanoutd --version`
}

// Help is the detail of `fanoutd help status`.
func (s *StatusCmd) Help() string {
	return `Prints the running daemon's streams and shards (its /status document): the
state, the lag, the last event and the last checkpoint of each shard, and
with coordination the group's leases. It exits 1 when the daemon can't be
reached or is not ready, so that scripts can use it as a check. With
--context (a nats CLI context, as ` + "`nats --context`" + `) it reads what the daemons
keep in NATS instead: every shard's checkpoint and the instance that wrote
it, and with coordination each lease and the members' heartbeats.

Examples:

    fanoutd status
    fanoutd status --url http://10.0.0.5:9090 --json | jq '.streams[].shards | length'
    fanoutd status --context prod`
}

// Help is the detail of `fanoutd help consumers`.
func (c *ConsumersCmd) Help() string {
	return `Lists or deregisters the enhanced fan-out consumers of a stream. A consumer
is billed by the hour while registered; fanoutd registers its own at start
and never deregisters it.

Examples:

    fanoutd consumers list --stream orders
    fanoutd consumers list --config /etc/fanoutd/fanoutd.yaml
    fanoutd consumers deregister --stream orders --consumer old-app --wait`
}

// Help is the detail of `fanoutd help consumers list`.
func (c *ConsumersListCmd) Help() string {
	return `Examples:

    fanoutd consumers list --stream orders --region eu-west-1
    fanoutd consumers list --config /etc/fanoutd/fanoutd.yaml   # every configured stream`
}

// Help is the detail of `fanoutd help consumers deregister`.
func (c *ConsumersDeregisterCmd) Help() string {
	return `Asks for confirmation on a terminal; --yes skips it (required in scripts).

Examples:

    fanoutd consumers deregister --stream orders --consumer old-app
    fanoutd consumers deregister -s arn:aws:kinesis:eu-west-1:123456789012:stream/orders --consumer old-app --yes --wait`
}

// Help is the detail of `fanoutd help bench`.
func (b *BenchCmd) Help() string {
	return `Runs the real daemon as a child process against an in-process Kinesis
emulator and NATS server, and measures catch-up throughput, steady-state
latency and the idle cost of many shards; with --baseline, the same loads
through a plain aws-sdk-go-v2 + nats.go relay, and the ratios. Results go
to stdout, the progress to stderr. docs/benchmarks.md explains every figure.

Examples:

    fanoutd bench --baseline
    fanoutd bench --baseline --baseline-sync --mode jetstream,jetstream-nobatch --phases catchup
    fanoutd bench --baseline --read polling
    fanoutd bench --mode jetstream --phases catchup --records 20000 --json > bench.json`
}
