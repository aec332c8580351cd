// Package subscriber is what a subscriber of fanoutd's messages uses: the
// record's Kinesis metadata decoded from the headers, and a rendering for a
// person (fanoutd tail and fanoutd demo) or for jq (JSON).
package subscriber

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/nats-io/nats.go"

	"github.com/fanoutd/fanoutd/relay"
)

// shownFirst are shown first, in this order; any other header follows,
// sorted by name.
var shownFirst = []string{
	relay.HeaderStream,
	relay.HeaderShardID,
	relay.HeaderPartitionKey,
	relay.HeaderSequenceNumber,
	relay.HeaderSubSequenceNumber,
	relay.HeaderExplicitHashKey,
	relay.HeaderArrivalTime,
	relay.HeaderLogGroup,
	relay.HeaderLogStream,
	relay.HeaderLogOwner,
	relay.HeaderLogEventID,
	relay.HeaderLogEventTime,
	relay.HeaderSubscriptionFilters,
	nats.MsgIdHdr,
	relay.HeaderDeadLetterReason,
	relay.HeaderOriginalSubject,
}

// binaryPreview is how many bytes of non-text data the default output shows.
const binaryPreview = 64

// Format is the human form of the nth message received at now: the subject and lag
// (since the record arrived in Kinesis, and for a CloudWatch Logs event since
// it was logged), the headers with their values decoded, then the data.
func Format(m *nats.Msg, n int, now time.Time) string {
	var b strings.Builder
	fmt.Fprintf(&b, "#%d %s", n, m.Subject)
	if at, err := time.Parse(time.RFC3339Nano, m.Header.Get(relay.HeaderArrivalTime)); err == nil {
		fmt.Fprintf(&b, "  lag %v", now.Sub(at).Round(time.Millisecond))
	}
	// CloudWatch Logs delivers to Kinesis in batches: the time since the
	// event was logged is the lag its reader feels.
	if at, err := time.Parse(time.RFC3339Nano, m.Header.Get(relay.HeaderLogEventTime)); err == nil {
		fmt.Fprintf(&b, "  logged %v ago", now.Sub(at).Round(time.Millisecond))
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
			fmt.Fprintf(b, "    ... %d more bytes (the JSON form has them all as base64)\n", len(data)-len(shown))
		}
		if len(data) > len(shown) {
			// A multiple of 3 bytes, so that the prefix has no padding.
			fmt.Fprintf(b, "  base64: %s...\n", base64.StdEncoding.EncodeToString(data[:binaryPreview/3*3]))
		} else {
			fmt.Fprintf(b, "  base64: %s\n", base64.StdEncoding.EncodeToString(data))
		}
	}
}

// orderedHeaderKeys returns fanoutd's headers in shownFirst order, then the
// others sorted.
func orderedHeaderKeys(h nats.Header) []string {
	keys := make([]string, 0, len(h))
	known := map[string]bool{}
	for _, k := range shownFirst {
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

// Message is the JSON form of one message. Headers are as sent
// (percent-encoded, so exact even for partition keys that are not UTF-8);
// the named fields hold them decoded. Data is the payload as a string when
// it is valid UTF-8 (data_encoding "utf-8"), else in standard base64
// (data_encoding "base64"). The log_* fields, owner and event_* are a
// CloudWatch Logs event's (payload: cloudwatch_logs).
type Message struct {
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
	LogGroup          string              `json:"log_group,omitempty"`
	LogStream         string              `json:"log_stream,omitempty"`
	Owner             string              `json:"owner,omitempty"`
	EventID           string              `json:"event_id,omitempty"`
	EventTimestamp    string              `json:"event_timestamp,omitempty"`
	Headers           map[string][]string `json:"headers,omitempty"`
	Size              int                 `json:"size"`
	Data              string              `json:"data"`
	DataEncoding      string              `json:"data_encoding"`
}

// Values of Message.DataEncoding.
const (
	dataUTF8   = "utf-8"
	dataBase64 = "base64"
)

// JSON is the JSON form of m.
func JSON(m *nats.Msg) Message {
	get := func(k string) string { return decodeHeaderValue(k, m.Header.Get(k)) }
	out := Message{
		Subject:          m.Subject,
		Stream:           get(relay.HeaderStream),
		ShardID:          get(relay.HeaderShardID),
		SequenceNumber:   get(relay.HeaderSequenceNumber),
		ExplicitHashKey:  get(relay.HeaderExplicitHashKey),
		ArrivalTime:      get(relay.HeaderArrivalTime),
		MsgID:            get(nats.MsgIdHdr),
		DeadLetterReason: get(relay.HeaderDeadLetterReason),
		LogGroup:         get(relay.HeaderLogGroup),
		LogStream:        get(relay.HeaderLogStream),
		Owner:            get(relay.HeaderLogOwner),
		EventID:          get(relay.HeaderLogEventID),
		EventTimestamp:   get(relay.HeaderLogEventTime),
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
