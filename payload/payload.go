// Package payload decodes what a stream's records carry before they are
// routed: gzip, and the CloudWatch Logs subscription records that log
// groups' subscription filters write to Kinesis. Every decode is bounded (a
// record never decompresses past a limit), and a record it cannot decode is
// an *Error whose Reason names the dead letter.
package payload

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"math"

	"github.com/fanoutd/fanoutd/internal/reuse"
)

// Kind is what a stream's records carry: the config's `payload` key.
type Kind string

// The kinds of payload.
const (
	// Raw records are relayed as they are.
	Raw Kind = "raw"
	// Gzip records that start with the gzip magic bytes are decompressed;
	// other records pass unchanged.
	Gzip Kind = "gzip"
	// CloudWatchLogs records are CloudWatch Logs subscription records, each
	// unpacked into its log events.
	CloudWatchLogs Kind = "cloudwatch_logs"
)

// Kinds lists every Kind, for config validation.
var Kinds = []Kind{Raw, Gzip, CloudWatchLogs}

// DefaultMaxDecompressed is the decompressed size a record may reach when
// no limit is configured.
const DefaultMaxDecompressed = 64 << 20

// The reasons of an Error: the dead letter's reason.
const (
	ReasonTooLarge          = "decompressed_too_large"
	ReasonBadGzip           = "bad_gzip"
	ReasonNotCloudWatchLogs = "not_cloudwatch_logs"
)

// Error is a record this package cannot decode; Reason is the dead letter's
// reason (ReasonTooLarge, ReasonBadGzip or ReasonNotCloudWatchLogs).
type Error struct {
	Reason string
	Err    error
}

func (e *Error) Error() string {
	if e.Err == nil {
		return e.Reason
	}
	return e.Reason + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// Decoder decodes one record at a time and reuses its buffers from record
// to record. One per goroutine: it is not safe for concurrent use.
//
// It holds at most its limit of decompressed data, plus the decoded log
// events (their ids, and the messages that had escapes, unescaped: never
// more than the record), until Release gives back what an outsized record
// grew.
type Decoder struct {
	max int // bytes a record may decompress to

	zr gzip.Reader // reused through Reset: its inflater's window is allocated once
	br bytes.Reader
	// probe takes what a full output buffer does not, before it grows (a
	// field: passed to the reader, it would escape to the heap each call).
	probe [512]byte

	// CloudWatchLogs's buffers.
	doc     []byte // the decompressed record
	msgs    []byte // log messages that had escapes, unescaped
	ids     []byte // the record's event ids, made one string per record
	keyBuf  []byte // an escaped key, unescaped
	strBuf  []byte // an escaped string member, unescaped
	sc      scanner
	spans   []eventSpan
	events  []LogEvent
	filters []string
	logs    Logs

	// The most each buffer needed since the last Release.
	docPeak, msgsPeak, idsPeak, eventsPeak int

	docUse, msgsUse, idsUse, eventsUse, spansUse, keyUse, strUse reuse.Use
}

// NewDecoder returns a Decoder whose records may decompress to at most
// maxDecompressed bytes; DefaultMaxDecompressed when maxDecompressed <= 0.
func NewDecoder(maxDecompressed int64) *Decoder {
	if maxDecompressed <= 0 {
		maxDecompressed = DefaultMaxDecompressed
	}
	return &Decoder{max: int(min(maxDecompressed, math.MaxInt))}
}

// Release gives back the buffers an outsized record grew, by the rule of
// reuse.Fit: call it after each batch of records. It also drops the last
// Logs' references to record data: its Events must not be used after it.
func (d *Decoder) Release() {
	clear(d.events[:cap(d.events)])
	d.logs.Events = nil
	d.doc = reuse.Fit(&d.docUse, d.doc, d.docPeak)
	d.msgs = reuse.Fit(&d.msgsUse, d.msgs, d.msgsPeak)
	d.ids = reuse.Fit(&d.idsUse, d.ids, d.idsPeak)
	d.events = reuse.Fit(&d.eventsUse, d.events, d.eventsPeak)
	d.spans = reuse.Fit(&d.spansUse, d.spans, d.eventsPeak)
	d.keyBuf = reuse.Fit(&d.keyUse, d.keyBuf, len(d.keyBuf))
	d.strBuf = reuse.Fit(&d.strUse, d.strBuf, len(d.strBuf))
	d.docPeak, d.msgsPeak, d.idsPeak, d.eventsPeak = 0, 0, 0, 0
}

func errorf(reason, format string, args ...any) *Error {
	return &Error{Reason: reason, Err: fmt.Errorf(format, args...)}
}
