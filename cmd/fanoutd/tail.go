package main

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/fanoutd/fanoutd/config"
	"github.com/fanoutd/fanoutd/relay"
)

// TailCmd subscribes to relayed records and prints them as they arrive.
type TailCmd struct {
	Subject string   `arg:"" optional:"" default:"kinesis.>" help:"NATS subject to subscribe to; wildcards allowed (default: kinesis.>)."`
	Config  string   `short:"c" placeholder:"FILE" help:"Connect as the daemon does, with the nats section of this config file (servers, creds, TLS, token)."`
	Server  []string `short:"s" placeholder:"URL" help:"NATS server URL, repeatable (default: nats://127.0.0.1:4222). Not with --config."`
	Count   int      `short:"n" placeholder:"N" help:"Exit after N messages (default: until Ctrl-C)."`
	JSON    bool     `name:"json" help:"Print one JSON object per line (for jq): subject, headers, decoded metadata, data (text if UTF-8, else base64: see data_encoding)."`
	Raw     bool     `help:"Print only each message's data, followed by a newline."`
}

// defaultTailServer is where tail connects without --config or --server.
const defaultTailServer = "nats://127.0.0.1:4222"

// tailHeaders are shown first, in this order; any other header follows,
// sorted by name.
var tailHeaders = []string{
	relay.HeaderStream,
	relay.HeaderShardID,
	relay.HeaderPartitionKey,
	relay.HeaderSequenceNumber,
	relay.HeaderSubSequenceNumber,
	relay.HeaderExplicitHashKey,
	relay.HeaderArrivalTime,
	nats.MsgIdHdr,
	relay.HeaderDeadLetterReason,
	relay.HeaderOriginalSubject,
}

// binaryPreview is how many bytes of non-text data the default output shows.
const binaryPreview = 64

// Run subscribes and prints until ctx ends (Ctrl-C) or --count messages were
// printed. Notices go to std.err, so that stdout holds only the messages.
func (c *TailCmd) Run(ctx context.Context, std stdio) error {
	if c.Config != "" && len(c.Server) > 0 {
		return usageError{errors.New("tail: give --config or --server, not both")}
	}
	if c.JSON && c.Raw {
		return usageError{errors.New("tail: give --json or --raw, not both")}
	}
	if c.Count < 0 {
		return usageError{errors.New("tail: --count must be >= 0")}
	}
	ncfg := config.NATSConfig{Servers: c.Server}
	if c.Config != "" {
		cfg, err := loadConfig(c.Config)
		if err != nil {
			return err
		}
		ncfg = cfg.NATS
	}
	if len(ncfg.Servers) == 0 {
		ncfg.Servers = []string{defaultTailServer}
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
		j, err := json.Marshal(tailJSON(m))
		if err != nil {
			return fmt.Errorf("encode message: %w", err)
		}
		b = append(j, '\n')
	default:
		b = []byte(formatTailMessage(m, n, now))
	}
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

// formatTailMessage is the default, human output: the subject and lag, the
// headers with their values decoded, then the data.
func formatTailMessage(m *nats.Msg, n int, now time.Time) string {
	var b strings.Builder
	fmt.Fprintf(&b, "#%d %s", n, m.Subject)
	if at, err := time.Parse(time.RFC3339Nano, m.Header.Get(relay.HeaderArrivalTime)); err == nil {
		fmt.Fprintf(&b, "  lag %v", now.Sub(at).Round(time.Millisecond))
	}
	b.WriteByte('\n')
	for _, k := range orderedHeaderKeys(m.Header) {
		for _, v := range m.Header.Values(k) {
			fmt.Fprintf(&b, "  %s: %s\n", k, displayValue(decodeHeaderValue(k, v)))
		}
	}
	writeData(&b, m.Data)
	return b.String()
}

// writeData shows data as text when it is printable UTF-8, otherwise as a hex
// dump of its first bytes.
func writeData(b *strings.Builder, data []byte) {
	switch {
	case len(data) == 0:
		b.WriteString("  data: (empty)\n")
	case printableText(data) && !strings.ContainsAny(string(data), "\n\r"):
		fmt.Fprintf(b, "  data (%d bytes): %s\n", len(data), displayValue(string(data)))
	case printableText(data):
		fmt.Fprintf(b, "  data (%d bytes, %d lines):\n", len(data), strings.Count(strings.TrimRight(string(data), "\n"), "\n")+1)
		for _, line := range strings.Split(strings.TrimRight(string(data), "\n"), "\n") {
			b.WriteString("    ")
			b.WriteString(strings.TrimRight(line, "\r"))
			b.WriteByte('\n')
		}
	default:
		shown := data[:min(len(data), binaryPreview)]
		fmt.Fprintf(b, "  data (%d bytes, binary):\n", len(data))
		for _, line := range strings.SplitAfter(strings.TrimRight(hex.Dump(shown), "\n"), "\n") {
			b.WriteString("    ")
			b.WriteString(line)
		}
		b.WriteByte('\n')
		if len(data) > len(shown) {
			fmt.Fprintf(b, "    ... %d more bytes (--json has them all as base64, --raw as is)\n", len(data)-len(shown))
		}
		if len(data) > len(shown) {
			// A multiple of 3 bytes, so that the prefix has no padding.
			fmt.Fprintf(b, "  base64: %s...\n", base64.StdEncoding.EncodeToString(data[:binaryPreview/3*3]))
		} else {
			fmt.Fprintf(b, "  base64: %s\n", base64.StdEncoding.EncodeToString(data))
		}
	}
}

// orderedHeaderKeys returns fanoutd's headers in tailHeaders order, then the
// others sorted.
func orderedHeaderKeys(h nats.Header) []string {
	keys := make([]string, 0, len(h))
	known := map[string]bool{}
	for _, k := range tailHeaders {
		known[k] = true
		if _, ok := h[k]; ok {
			keys = append(keys, k)
		}
	}
	var rest []string
	for k := range h {
		if !known[k] {
			rest = append(rest, k)
		}
	}
	sort.Strings(rest)
	return append(keys, rest...)
}

// decodeHeaderValue undoes relay.EscapeHeaderValue on fanoutd's own
// headers; other headers are shown as sent.
func decodeHeaderValue(key, v string) string {
	if !relay.Escaped(key) {
		return v
	}
	return relay.UnescapeHeaderValue(v)
}

// displayValue returns s as is when it prints unambiguously on one line, and
// Go-quoted otherwise (control characters, invalid UTF-8, spaces at either
// end, or the empty string).
func displayValue(s string) string {
	if s == "" || strings.TrimSpace(s) != s || !printableText([]byte(s)) || strings.ContainsAny(s, "\n\r\t") {
		return strconv.Quote(s)
	}
	return s
}

// printableText reports whether data is valid UTF-8 made of printable
// characters, newlines and tabs: data a person can read as text.
func printableText(data []byte) bool {
	if !utf8.Valid(data) {
		return false
	}
	for _, r := range string(data) {
		if !unicode.IsPrint(r) && r != '\n' && r != '\r' && r != '\t' {
			return false
		}
	}
	return true
}

// tailMessage is the --json form of one message. Headers are as sent
// (percent-encoded, so exact even for partition keys that are not UTF-8);
// the named fields hold them decoded. Data is the payload as a string when
// it is valid UTF-8 (data_encoding "utf-8"), else in standard base64
// (data_encoding "base64").
type tailMessage struct {
	Subject           string              `json:"subject"`
	Stream            string              `json:"stream,omitempty"`
	ShardID           string              `json:"shard_id,omitempty"`
	PartitionKey      *string             `json:"partition_key,omitempty"`
	SequenceNumber    string              `json:"sequence_number,omitempty"`
	SubSequenceNumber *int64              `json:"sub_sequence_number,omitempty"`
	ExplicitHashKey   string              `json:"explicit_hash_key,omitempty"`
	ArrivalTime       string              `json:"arrival_time,omitempty"`
	MsgID             string              `json:"msg_id,omitempty"`
	DeadLetterReason  string              `json:"dead_letter_reason,omitempty"`
	Headers           map[string][]string `json:"headers,omitempty"`
	Size              int                 `json:"size"`
	Data              string              `json:"data"`
	DataEncoding      string              `json:"data_encoding"`
}

// Values of tailMessage.DataEncoding.
const (
	dataUTF8   = "utf-8"
	dataBase64 = "base64"
)

func tailJSON(m *nats.Msg) tailMessage {
	get := func(k string) string { return decodeHeaderValue(k, m.Header.Get(k)) }
	out := tailMessage{
		Subject:          m.Subject,
		Stream:           get(relay.HeaderStream),
		ShardID:          get(relay.HeaderShardID),
		SequenceNumber:   get(relay.HeaderSequenceNumber),
		ExplicitHashKey:  get(relay.HeaderExplicitHashKey),
		ArrivalTime:      get(relay.HeaderArrivalTime),
		MsgID:            get(nats.MsgIdHdr),
		DeadLetterReason: get(relay.HeaderDeadLetterReason),
		Headers:          m.Header,
		Size:             len(m.Data),
		Data:             string(m.Data),
		DataEncoding:     dataUTF8,
	}
	if !utf8.Valid(m.Data) {
		out.Data, out.DataEncoding = base64.StdEncoding.EncodeToString(m.Data), dataBase64
	}
	if _, ok := m.Header[relay.HeaderPartitionKey]; ok {
		pk := get(relay.HeaderPartitionKey)
		out.PartitionKey = &pk
	}
	if s, err := strconv.ParseInt(m.Header.Get(relay.HeaderSubSequenceNumber), 10, 64); err == nil {
		out.SubSequenceNumber = &s
	}
	return out
}

// Help is the detail `fanoutd help tail` shows under the summary.
func (c *TailCmd) Help() string {
	return `Subscribes to a NATS subject and prints each message: the subject, the lag since
the record arrived in Kinesis, the Kinesis headers percent-decoded, and the data.

Examples:

    fanoutd tail 'kinesis.orders.>' --count 5
    fanoutd tail --server nats://nats-1:4222 --raw
    fanoutd tail --json | jq -r 'select(.data_encoding == "utf-8") | .data'`
}
