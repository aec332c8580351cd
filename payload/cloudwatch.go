package payload

import (
	"errors"
	"fmt"
)

// Logs is one CloudWatch Logs subscription record.
type Logs struct {
	MessageType         string // DataMessage or ControlMessage
	Owner               string // the account that owns the log group
	LogGroup, LogStream string
	SubscriptionFilters []string
	Events              []LogEvent
}

// LogEvent is one log event of a Logs record.
type LogEvent struct {
	ID        string
	Timestamp int64  // milliseconds since the epoch
	Message   []byte // the event's message, unescaped
}

// The message types of a Logs record.
const (
	// DataMessage records carry log events.
	DataMessage = "DATA_MESSAGE"
	// ControlMessage records are CloudWatch Logs checking that the
	// destination is reachable; they carry no log data.
	ControlMessage = "CONTROL_MESSAGE"
)

// eventSpan locates one log event while its record is being read: its id
// in Decoder.ids, its message in the document or, when it had escapes, in
// Decoder.msgs.
// MaxLogEvents bounds the log events of one record, and so the memory
// their bookkeeping takes (about 100 bytes each): ten times the most
// events one PutLogEvents call takes (10 000). A record with more is not
// what CloudWatch Logs writes.
const MaxLogEvents = 100_000

type eventSpan struct {
	idOff, idEnd   int
	msgOff, msgEnd int
	escaped        bool
	timestamp      int64
}

// The members a record or a log event must have.
const (
	hasType = 1 << iota
	hasGroup
	hasStream
	hasEvents
	hasID
	hasTimestamp
	hasMessage
)

var errSyntax = errors.New("not valid JSON")

// CloudWatchLogs decodes one CloudWatch Logs subscription record: gzip
// JSON as CloudWatch Logs writes it to Kinesis. The Logs returned is the
// Decoder's, valid until its next call or Release; messages point into
// the decompressed record (or into data, see below), so data must not
// change meanwhile either.
//
// The record must have the documented shape: an object with messageType
// (DATA_MESSAGE or CONTROL_MESSAGE) and, for a DATA_MESSAGE, logGroup,
// logStream and logEvents, each event an object with id (string),
// timestamp (integer milliseconds) and message (string). owner and
// subscriptionFilters are read when present. Members it does not know
// (account-level subscription filters add policyLevel, for example) are
// checked to be JSON and ignored; a member whose value is null is taken
// as absent.
//
// Data that does not start with the gzip magic bytes is read as the JSON
// itself: a test producer, or a Lambda transforming the stream, may write
// the record uncompressed.
//
// Errors are *Error: bad_gzip, decompressed_too_large (see Gunzip), or
// not_cloudwatch_logs when the JSON is invalid or not of that shape.
func (d *Decoder) CloudWatchLogs(data []byte) (*Logs, error) {
	d.logs.Events = nil
	doc := data
	if IsGzip(data) {
		var err error
		d.doc, err = d.Gunzip(d.doc[:0], data)
		d.docPeak = max(d.docPeak, len(d.doc))
		if err != nil {
			return nil, err
		}
		doc = d.doc
	}
	if err := d.readLogs(doc); err != nil {
		return nil, &Error{Reason: ReasonNotCloudWatchLogs, Err: err}
	}
	return &d.logs, nil
}

// readLogs reads the record doc into d.logs.
func (d *Decoder) readLogs(doc []byte) error {
	s := &d.sc
	s.b, s.i = doc, 0
	defer func() { s.b = nil }()
	prev := d.logs
	d.logs = Logs{}
	d.spans = d.spans[:0]
	l := &d.logs
	if !s.eat('{') {
		return errors.New("not a JSON object")
	}
	var seen int
	for first := true; ; first = false {
		more, ok := s.more('}', first)
		if !ok {
			return errSyntax
		}
		if !more {
			break
		}
		k, ok := s.key(&d.keyBuf)
		if !ok {
			return errSyntax
		}
		if s.literal("null") {
			seen &^= d.forget(k)
			continue
		}
		var err error
		switch string(k) {
		case "messageType":
			l.MessageType, err = d.messageType()
			seen |= hasType
		case "owner":
			l.Owner, err = d.text(prev.Owner)
		case "logGroup":
			l.LogGroup, err = d.text(prev.LogGroup)
			seen |= hasGroup
		case "logStream":
			l.LogStream, err = d.text(prev.LogStream)
			seen |= hasStream
		case "subscriptionFilters":
			err = d.readFilters()
		case "logEvents":
			if err := d.readEvents(); err != nil {
				return err // it names the event
			}
			seen |= hasEvents
		default:
			if !s.skip() {
				err = errSyntax
			}
		}
		if err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
	}
	if s.ws(); s.i != len(doc) {
		return errors.New("data after the JSON object")
	}
	if seen&hasType == 0 {
		return errors.New("no messageType")
	}
	if l.MessageType == DataMessage {
		for _, m := range [...]struct {
			bit  int
			name string
		}{{hasGroup, "logGroup"}, {hasStream, "logStream"}, {hasEvents, "logEvents"}} {
			if seen&m.bit == 0 {
				return fmt.Errorf("no %s in a DATA_MESSAGE", m.name)
			}
		}
	}
	d.makeEvents(doc)
	return nil
}

// forget clears the member k, null in the record (as if absent, even when
// it came before), and returns its bit in readLogs's seen.
func (d *Decoder) forget(k []byte) int {
	l := &d.logs
	switch string(k) {
	case "messageType":
		l.MessageType = ""
		return hasType
	case "owner":
		l.Owner = ""
	case "logGroup":
		l.LogGroup = ""
		return hasGroup
	case "logStream":
		l.LogStream = ""
		return hasStream
	case "subscriptionFilters":
		l.SubscriptionFilters = nil
	case "logEvents":
		d.spans = d.spans[:0]
		return hasEvents
	}
	return 0
}

func (d *Decoder) messageType() (string, error) {
	v, _, ok := d.sc.str()
	switch {
	case !ok:
		return "", errors.New("not a string")
	case string(v) == DataMessage:
		return DataMessage, nil
	case string(v) == ControlMessage:
		return ControlMessage, nil
	}
	return "", fmt.Errorf("unknown message type %q", v)
}

// text reads a string member; it returns prev, without allocating, when
// the value is the same (records of one log stream follow each other).
func (d *Decoder) text(prev string) (string, error) {
	v, esc, ok := d.sc.str()
	if !ok {
		return "", errors.New("not a string")
	}
	if esc {
		d.strBuf = unescape(d.strBuf[:0], v)
		v = d.strBuf
	}
	if string(v) == prev {
		return prev, nil
	}
	return string(v), nil
}

func (d *Decoder) readFilters() error {
	s := &d.sc
	if !s.eat('[') {
		return errors.New("not an array")
	}
	old := d.filters[:cap(d.filters)]
	d.filters = d.filters[:0]
	for first := true; ; first = false {
		more, ok := s.more(']', first)
		if !ok {
			return errSyntax
		}
		if !more {
			break
		}
		var prev string
		if i := len(d.filters); i < len(old) {
			prev = old[i]
		}
		f, err := d.text(prev)
		if err != nil {
			return err
		}
		d.filters = append(d.filters, f)
	}
	d.logs.SubscriptionFilters = d.filters
	return nil
}

func (d *Decoder) readEvents() error {
	s := &d.sc
	if !s.eat('[') {
		return errors.New("logEvents: not an array")
	}
	d.spans, d.ids, d.msgs = d.spans[:0], d.ids[:0], d.msgs[:0]
	for first := true; ; first = false {
		more, ok := s.more(']', first)
		if !ok {
			return fmt.Errorf("logEvents: %w", errSyntax)
		}
		if !more {
			return nil
		}
		if len(d.spans) == MaxLogEvents {
			return fmt.Errorf("logEvents: more than %d", MaxLogEvents)
		}
		sp, err := d.readEvent()
		if err != nil {
			return fmt.Errorf("logEvents[%d]: %w", len(d.spans), err)
		}
		d.spans = append(d.spans, sp)
	}
}

func (d *Decoder) readEvent() (eventSpan, error) {
	s := &d.sc
	var sp eventSpan
	if !s.eat('{') {
		return sp, errors.New("not an object")
	}
	var seen int
	for first := true; ; first = false {
		more, ok := s.more('}', first)
		if !ok {
			return sp, errSyntax
		}
		if !more {
			break
		}
		k, ok := s.key(&d.keyBuf)
		if !ok {
			return sp, errSyntax
		}
		switch string(k) {
		case "id":
			v, esc, ok := s.str()
			if !ok {
				return sp, errors.New("id: not a string")
			}
			sp.idOff = len(d.ids)
			d.ids = appendString(d.ids, v, esc)
			sp.idEnd = len(d.ids)
			seen |= hasID
		case "timestamp":
			raw, isInt, ok := s.number()
			if ok && isInt {
				sp.timestamp, ok = parseInt64(raw)
			}
			if !ok || !isInt {
				return sp, errors.New("timestamp: not an integer")
			}
			seen |= hasTimestamp
		case "message":
			v, esc, ok := s.str()
			if !ok {
				return sp, errors.New("message: not a string")
			}
			if sp.escaped = esc; esc {
				sp.msgOff = len(d.msgs)
				d.msgs = unescape(d.msgs, v)
				sp.msgEnd = len(d.msgs)
			} else {
				sp.msgEnd = s.i - 1 // before the closing quote
				sp.msgOff = sp.msgEnd - len(v)
			}
			seen |= hasMessage
		default:
			if !s.skip() {
				return sp, errSyntax
			}
		}
	}
	if seen != hasID|hasTimestamp|hasMessage {
		return sp, errors.New("an event needs id, timestamp and message")
	}
	return sp, nil
}

// makeEvents turns the spans read into d.logs.Events. The ids become one
// string, so a record costs one allocation for all of them.
func (d *Decoder) makeEvents(doc []byte) {
	if len(d.spans) == 0 {
		return
	}
	ids := string(d.ids)
	d.events = d.events[:0]
	for _, sp := range d.spans {
		msg := doc[sp.msgOff:sp.msgEnd:sp.msgEnd]
		if sp.escaped {
			msg = d.msgs[sp.msgOff:sp.msgEnd:sp.msgEnd]
		}
		d.events = append(d.events, LogEvent{ID: ids[sp.idOff:sp.idEnd], Timestamp: sp.timestamp, Message: msg})
	}
	d.logs.Events = d.events
	d.idsPeak = max(d.idsPeak, len(d.ids))
	d.msgsPeak = max(d.msgsPeak, len(d.msgs))
	d.eventsPeak = max(d.eventsPeak, len(d.events))
}

func appendString(dst, content []byte, escaped bool) []byte {
	if escaped {
		return unescape(dst, content)
	}
	return append(dst, content...)
}

// parseInt64 parses a JSON integer (scanner.number checked its syntax).
func parseInt64(raw []byte) (int64, bool) {
	neg := raw[0] == '-'
	if neg {
		raw = raw[1:]
	}
	limit := uint64(1<<63 - 1)
	if neg {
		limit = 1 << 63
	}
	var n uint64
	for _, c := range raw {
		d := uint64(c - '0')
		if n > (limit-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	if neg {
		return int64(-n), true
	}
	return int64(n), true
}
