package relay

import (
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// Headers set on every relayed message. Values are escaped with
// EscapeHeaderValue.
const (
	HeaderStream            = "Kinesis-Stream"
	HeaderShardID           = "Kinesis-Shard-Id"
	HeaderPartitionKey      = "Kinesis-Partition-Key"
	HeaderSequenceNumber    = "Kinesis-Sequence-Number"
	HeaderSubSequenceNumber = "Kinesis-Sub-Sequence-Number" // only on records from a KPL aggregate
	HeaderExplicitHashKey   = "Kinesis-Explicit-Hash-Key"   // only when the record has one
	HeaderArrivalTime       = "Kinesis-Arrival-Time"        // see FormatArrivalTime
)

// Headers of a message unpacked from a CloudWatch Logs record: the log
// event's and its record's fields (payload: cloudwatch_logs).
const (
	HeaderLogGroup            = "Cloudwatch-Log-Group"
	HeaderLogStream           = "Cloudwatch-Log-Stream"
	HeaderLogOwner            = "Cloudwatch-Owner" // the AWS account
	HeaderLogEventID          = "Cloudwatch-Event-Id"
	HeaderLogEventTime        = "Cloudwatch-Event-Timestamp" // RFC 3339, see FormatArrivalTime
	HeaderSubscriptionFilters = "Cloudwatch-Subscription-Filters"
)

// MsgID is "<stream>:<shard-id>:<sequence>:<sub-sequence>" (sub-sequence 0 for
// plain records). It names one user record uniquely and stably across
// replays, so JetStream's duplicate window (Nats-Msg-Id) hides a replay after a
// crash. The sub-sequence is what keeps the sub-records of one KPL aggregate,
// which share a sequence number, apart. A message unpacked from a record (a
// CloudWatch Logs event) adds ":<index>", its place among the record's
// messages (see UnpackedMsgID).
func MsgID(stream, shardID, seq string, subSeq int64) string {
	var a [160]byte
	return string(appendMsgID(a[:0], stream, shardID, seq, subSeq))
}

// UnpackedMsgID is the MsgID of the message at index among those unpacked
// from one record.
func UnpackedMsgID(stream, shardID, seq string, subSeq int64, index int) string {
	var a [160]byte
	b := appendMsgID(a[:0], stream, shardID, seq, subSeq)
	b = append(b, ':')
	return string(strconv.AppendInt(b, int64(index), 10))
}

func appendMsgID(b []byte, stream, shardID, seq string, subSeq int64) []byte {
	b = append(b, stream...)
	b = append(b, ':')
	b = append(b, shardID...)
	b = append(b, ':')
	b = append(b, seq...)
	b = append(b, ':')
	return strconv.AppendInt(b, subSeq, 10)
}

// arrivalTimeLayout is RFC 3339 in UTC with exactly three fractional digits.
const arrivalTimeLayout = "2006-01-02T15:04:05.000Z"

// FormatArrivalTime formats t as RFC 3339 in UTC with exactly millisecond
// precision: 2006-01-02T15:04:05.000Z. It rounds to the nearest millisecond,
// Kinesis's own precision, so that the error of the float epoch seconds Kinesis
// sends (1.700000000123E9 is 1700000000.12299990654) does not show as the
// millisecond before.
func FormatArrivalTime(t time.Time) string {
	var a [len(arrivalTimeLayout)]byte
	return string(appendArrivalTime(a[:0], t))
}

func appendArrivalTime(b []byte, t time.Time) []byte {
	return t.UTC().Round(time.Millisecond).AppendFormat(b, arrivalTimeLayout)
}

// timeFormat appends times as appendArrivalTime does, keeping the last
// second it formatted: the records of an event mostly share their second,
// and formatting the date and clock is most of the cost. The zero value is
// ready; it is not safe for concurrent use.
type timeFormat struct {
	sec    int64
	prefix [len("2006-01-02T15:04:05")]byte
	valid  bool
}

func (f *timeFormat) append(b []byte, t time.Time) []byte {
	t = t.Round(time.Millisecond)
	sec := t.Unix()
	if !f.valid || sec != f.sec {
		var a [32]byte
		p := time.Unix(sec, 0).UTC().AppendFormat(a[:0], "2006-01-02T15:04:05")
		if len(p) != len(f.prefix) { // a year before 0 or after 9999
			f.valid = false
			return appendArrivalTime(b, t)
		}
		f.sec, f.valid = sec, true
		copy(f.prefix[:], p)
	}
	ms := t.Nanosecond() / int(time.Millisecond)
	return append(append(b, f.prefix[:]...), '.', byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10), 'Z')
}

// EscapeHeaderValue makes s safe as a NATS header value.
//
// A header value must not hold CR or LF, NATS clients trim leading and trailing
// whitespace from it, and the Java and .NET clients accept only printable
// ASCII (NATS ADR-4). So every byte that is not printable ASCII (0x00–0x1F,
// 0x7F and all bytes 0x80 and above, which includes every non-ASCII UTF-8
// character), a space at the start or end of the value, and '%' itself are
// percent-encoded as %XX (uppercase hex); everything else passes through. The
// mapping is reversible: percent-decode the value (in Go, url.PathUnescape).
// Values that need no escaping, the usual case, are returned without
// allocating.
//
// Examples: "user-42" → "user-42", "a b" → "a b", " a" → "%20a",
// "line1\r\nline2" → "line1%0D%0Aline2", "100%" → "100%25", "é" → "%C3%A9".
func EscapeHeaderValue(s string) string {
	i := 0
	for i < len(s) && !escapeInHeader(s, i) {
		i++
	}
	if i == len(s) {
		return s
	}
	b := make([]byte, 0, len(s)+2*(len(s)-i))
	b = append(b, s[:i]...)
	for ; i < len(s); i++ {
		if escapeInHeader(s, i) {
			b = appendPercent(b, s[i])
		} else {
			b = append(b, s[i])
		}
	}
	return string(b)
}

// UnescapeHeaderValue undoes EscapeHeaderValue; a value that does not
// decode (it was not escaped by fanoutd) is returned as it is.
func UnescapeHeaderValue(v string) string {
	if !strings.Contains(v, "%") {
		return v
	}
	d, err := url.PathUnescape(v)
	if err != nil {
		return v
	}
	return d
}

// Escaped reports whether fanoutd escapes the values of header key (its
// own: Kinesis-*, Fanoutd-*, Cloudwatch-*, Nats-Msg-Id); other headers are
// as sent.
func Escaped(key string) bool {
	return strings.HasPrefix(key, "Kinesis-") || strings.HasPrefix(key, "Fanoutd-") ||
		strings.HasPrefix(key, "Cloudwatch-") || key == nats.MsgIdHdr
}

// escapeInHeader reports whether byte i of s must be percent-encoded in a
// header value.
func escapeInHeader(s string, i int) bool {
	c := s[i]
	switch {
	case c == ' ':
		return i == 0 || i == len(s)-1
	case c < ' ', c >= 0x7f, c == '%':
		return true
	}
	return false
}
