package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/fanoutd/fanoutd/config"
	"github.com/fanoutd/fanoutd/relay"
	"github.com/fanoutd/fanoutd/subscriber"
)

// TailCmd subscribes to relayed records and prints them as they arrive.
type TailCmd struct {
	Subject string   `arg:"" optional:"" default:"kinesis.>" help:"NATS subject to subscribe to; wildcards allowed (default: kinesis.>)."`
	Config  string   `short:"c" placeholder:"FILE" help:"Connect as the daemon does, with the nats section of this config file (servers, creds, TLS, token)."`
	Server  []string `short:"s" placeholder:"URL" help:"NATS server URL, repeatable (default: ${nats_server}). Not with --config."`
	Context string   `placeholder:"NAME" help:"Connect with this nats CLI context (its name, or the path of its file), as nats --context does; --server overrides its servers. Not with --config."`
	Count   int      `short:"n" placeholder:"N" help:"Exit after N messages (default: until Ctrl-C)."`
	JSON    bool     `name:"json" help:"Print one JSON object per line (for jq): subject, headers, decoded metadata, data (text if UTF-8, else base64: see data_encoding)."`
	Raw     bool     `help:"Print only each message's data, followed by a newline."`
}

// Run subscribes and prints until ctx ends (Ctrl-C) or --count messages were
// printed. Notices go to std.err, so that stdout holds only the messages.
func (c *TailCmd) Run(ctx context.Context, std stdio) error {
	if c.Config != "" && (len(c.Server) > 0 || c.Context != "") {
		return usageError{errors.New("tail: --config names the servers and credentials already: give it alone, or --server and --context instead")}
	}
	if c.JSON && c.Raw {
		return usageError{errors.New("tail: give --json or --raw, not both")}
	}
	if c.Count < 0 {
		return usageError{errors.New("tail: --count must be >= 0")}
	}
	ncfg := config.NATSConfig{Servers: c.Server}
	if c.Context != "" {
		var err error
		if ncfg, err = config.ContextNATS(c.Context, c.Server); err != nil {
			return usageError{fmt.Errorf("--context: %w", err)}
		}
	}
	if c.Config != "" {
		cfg, err := loadConfig(c.Config)
		if err != nil {
			return err
		}
		ncfg = cfg.NATS
	}
	if len(ncfg.Servers) == 0 {
		ncfg.Servers = []string{config.DefaultNATSServer}
	}
	ncfg.Name = "fanoutd-tail"
	log := zerolog.New(zerolog.ConsoleWriter{Out: std.err, NoColor: true, PartsExclude: []string{zerolog.TimestampFieldName}}).Level(zerolog.WarnLevel)
	nc, err := relay.Connect(ctx, ncfg.ConnOptions(), log)
	if err != nil {
		return err
	}
	defer nc.Close()

	sub, err := nc.SubscribeSync(c.Subject)
	if err != nil {
		if errors.Is(err, nats.ErrBadSubject) {
			return usageError{fmt.Errorf("tail: invalid subject %q", c.Subject)}
		}
		return fmt.Errorf("subscribe %s: %w", c.Subject, err)
	}
	// A terminal is slower than the relay: allow a large backlog before
	// the client drops messages (and reports it below).
	if err := sub.SetPendingLimits(1<<20, 256<<20); err != nil {
		return fmt.Errorf("subscribe %s: %w", c.Subject, err)
	}
	// The server has the subscription once a flush round trip is back.
	flushCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err = nc.FlushWithContext(flushCtx)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("subscribe %s: %w", c.Subject, err)
	}
	fmt.Fprintf(std.err, "fanoutd tail: subscribed to %s on %s\n", c.Subject, relay.RedactURL(nc.ConnectedUrl()))

	// Records too big for a message arrive as references to the Object
	// Store: fetched, so that they print like any other.
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	n := 0
	for c.Count == 0 || n < c.Count {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			if ctx.Err() != nil {
				break // Ctrl-C: a clean end
			}
			return fmt.Errorf("receive on %s: %w", c.Subject, err)
		}
		n++
		if subscriber.IsObjectReference(m) {
			data, err := subscriber.Fetch(ctx, js, m)
			if err != nil {
				if ctx.Err() != nil {
					break
				}
				fmt.Fprintf(std.err, "fanoutd tail: message #%d on %s: cannot fetch its record from the Object Store: %v\n", n, m.Subject, err)
			} else {
				fetched := *m
				fetched.Data = data
				m = &fetched
			}
		}
		if err := c.print(std.out, m, n, time.Now()); err != nil {
			return err
		}
	}
	if dropped, err := sub.Dropped(); err == nil && dropped > 0 {
		fmt.Fprintf(std.err, "fanoutd tail: %d messages dropped: this terminal could not keep up (narrow the subject or use --count)\n", dropped)
	}
	return nil
}

// print writes one message in the selected format.
func (c *TailCmd) print(w io.Writer, m *nats.Msg, n int, now time.Time) error {
	var b []byte
	switch {
	case c.Raw:
		b = append(append(b, m.Data...), '\n')
	case c.JSON:
		j, err := json.Marshal(subscriber.JSON(m))
		if err != nil {
			return fmt.Errorf("encode message: %w", err)
		}
		b = append(j, '\n')
	default:
		b = []byte(subscriber.Format(m, n, now))
	}
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

// Help is the detail `fanoutd help tail` shows under the summary.
func (c *TailCmd) Help() string {
	return `Subscribes to a NATS subject and prints each message: the subject, the lag since
the record arrived in Kinesis, the Kinesis headers percent-decoded, and the data.
A CloudWatch Logs event unpacked from a record (payload: cloudwatch_logs) also
shows how long ago it was logged and its Cloudwatch-Log-Group, -Log-Stream,
-Owner, -Event-Id, -Event-Timestamp and -Subscription-Filters headers (in
--json: log_group, log_stream, owner, event_id, event_timestamp).
A record too big for one NATS message arrives as a reference to the JetStream
Object Store (Fanoutd-Object-* headers): tail fetches it, checks its size and
SHA-256, and prints it like any other (--raw writes its bytes).

Examples:

    fanoutd tail 'kinesis.orders.>' --count 5
    fanoutd tail --server nats://nats-1:4222 --raw
    fanoutd tail --context prod 'kinesis.>'
    fanoutd tail 'logs.>' --json | jq -r '[.log_group, .event_timestamp, .data] | @tsv'
    fanoutd tail --json | jq -r 'select(.data_encoding == "utf-8") | .data'`
}
