package payload

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"testing"
	"unicode/utf8"
)

const fuzzLimit = 1 << 16

// fuzzDecoder is shared by a fuzz target's inputs, so that nothing of one
// input may leak into the next unnoticed.
var fuzzDecoder = NewDecoder(fuzzLimit)

// refGunzip decompresses data as compress/gzip does, reading up to
// limit+1 bytes; reason is the Error's reason Gunzip must return, if any.
func refGunzip(data []byte, limit int) (out []byte, reason string) {
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, ReasonBadGzip
	}
	out, err = io.ReadAll(io.LimitReader(zr, int64(limit)+1))
	if len(out) > limit {
		return nil, ReasonTooLarge
	}
	if err != nil {
		return nil, ReasonBadGzip
	}
	return out, ""
}

func FuzzGunzip(f *testing.F) {
	for _, s := range [][]byte{
		gz(f, []byte("hello")),
		gz(f, []byte("hello, "), []byte("world")),
		gz(f, nil),
		gz(f, make([]byte, fuzzLimit+1)),
		gz(f, bytes.Repeat([]byte("ab"), fuzzLimit/2)),
		append(gz(f, []byte("x")), "trailing"...),
		[]byte("not gzip"),
		{0x1f, 0x8b},
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		prefix := []byte("prefix")
		got, err := fuzzDecoder.Gunzip(prefix, data)
		if c := cap(got); c > max(cap(prefix), len(prefix)+fuzzLimit) {
			t.Fatalf("dst grew to %d bytes, past the limit", c)
		}
		want, reason := refGunzip(data, fuzzLimit)
		if reason != "" {
			wantReason(t, err, reason)
			if string(got) != "prefix" {
				t.Fatalf("dst %q after an error", got)
			}
			return
		}
		if err != nil {
			t.Fatalf("%v; compress/gzip decompresses it", err)
		}
		if !bytes.Equal(got[len(prefix):], want) || string(got[:len(prefix)]) != "prefix" {
			t.Fatalf("got %q, want %q", got, want)
		}
	})
}

// refLogs decodes a record with encoding/json by the rules CloudWatchLogs
// documents; ok is false when the record must be refused.
func refLogs(doc []byte) (l Logs, ok bool) {
	if !json.Valid(doc) {
		return l, false
	}
	dec := json.NewDecoder(bytes.NewReader(doc))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return l, false
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, _ := dec.Token()
		var raw json.RawMessage
		if dec.Decode(&raw) != nil {
			return l, false
		}
		k := tok.(string)
		if string(raw) == "null" {
			delete(seen, k)
			switch k {
			case "messageType":
				l.MessageType = ""
			case "owner":
				l.Owner = ""
			case "logGroup":
				l.LogGroup = ""
			case "logStream":
				l.LogStream = ""
			case "subscriptionFilters":
				l.SubscriptionFilters = nil
			case "logEvents":
				l.Events = nil
			}
			continue
		}
		seen[k] = true
		switch k {
		case "messageType":
			if !refString(raw, &l.MessageType) || (l.MessageType != DataMessage && l.MessageType != ControlMessage) {
				return l, false
			}
			ok = true
		case "owner":
			ok = refString(raw, &l.Owner)
		case "logGroup":
			ok = refString(raw, &l.LogGroup)
		case "logStream":
			ok = refString(raw, &l.LogStream)
		case "subscriptionFilters":
			var raws []json.RawMessage
			if raw[0] != '[' || json.Unmarshal(raw, &raws) != nil {
				return l, false
			}
			l.SubscriptionFilters = make([]string, len(raws))
			for i, r := range raws {
				if !refString(r, &l.SubscriptionFilters[i]) {
					return l, false
				}
			}
			ok = true
		case "logEvents":
			l.Events, ok = refEvents(raw)
		default:
			ok = true
		}
		if !ok {
			return l, false
		}
	}
	if !seen["messageType"] {
		return l, false
	}
	if l.MessageType == DataMessage && (!seen["logGroup"] || !seen["logStream"] || !seen["logEvents"]) {
		return l, false
	}
	return l, true
}

func refString(raw json.RawMessage, s *string) bool {
	return raw[0] == '"' && json.Unmarshal(raw, s) == nil
}

func refEvents(raw json.RawMessage) ([]LogEvent, bool) {
	var raws []json.RawMessage
	if raw[0] != '[' || json.Unmarshal(raw, &raws) != nil {
		return nil, false
	}
	var events []LogEvent
	for _, r := range raws {
		dec := json.NewDecoder(bytes.NewReader(r))
		if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
			return nil, false
		}
		var e LogEvent
		var msg string
		seen := map[string]bool{}
		for dec.More() {
			tok, _ := dec.Token()
			var v json.RawMessage
			if dec.Decode(&v) != nil {
				return nil, false
			}
			k := tok.(string)
			ok := true
			switch k {
			case "id":
				ok = refString(v, &e.ID)
			case "message":
				ok = refString(v, &msg)
				e.Message = []byte(msg)
			case "timestamp":
				var err error
				e.Timestamp, err = strconv.ParseInt(string(v), 10, 64)
				ok = err == nil
			}
			if !ok {
				return nil, false
			}
			seen[k] = true
		}
		if !seen["id"] || !seen["message"] || !seen["timestamp"] {
			return nil, false
		}
		events = append(events, e)
	}
	return events, true
}

// depth is how deeply doc nests, outside strings.
func depth(doc []byte) int {
	var d, most int
	inString := false
	for i := 0; i < len(doc); i++ {
		switch c := doc[i]; {
		case inString && c == '\\':
			i++
		case c == '"':
			inString = !inString
		case !inString && (c == '{' || c == '['):
			d++
			most = max(most, d)
		case !inString && (c == '}' || c == ']'):
			d--
		}
	}
	return most
}

func FuzzCloudWatchLogs(f *testing.F) {
	for _, s := range []string{
		awsExample,
		awsControl,
		`{"messageType":"CONTROL_MESSAGE"}`,
		`{"logEvents":[{"message":"m","timestamp":-5,"id":"1"}],"owner":null,"logStream":"s","logGroup":"g","\u006dessageType":"DATA_MESSAGE"}`,
		`{"messageType":"DATA_MESSAGE","logGroup":"g","logStream":"s","logEvents":[],"x":[{"a":[1e3,-0.5,true,false,null,"\ud83d"]}]}`,
		`{"messageType":"DATA_MESSAGE","logGroup":"g","logStream":"s","logEvents":[{"id":"1","timestamp":1,"message":"\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00"}]}`,
		`{"type":"order.created"}`,
		`[1,2]`,
		`not json`,
	} {
		f.Add([]byte(s))
		f.Add(gz(f, []byte(s)))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if fuzzDecoder.max != fuzzLimit {
			t.Fatal("the fuzz decoder's limit changed")
		}
		got, err := fuzzDecoder.CloudWatchLogs(data)
		if len(data)%7 == 0 {
			fuzzDecoder.Release()
			got = nil // Release invalidates it
		}
		var pe *Error
		if err != nil && (!errors.As(err, &pe) || got != nil) {
			t.Fatalf("error %v with %v", err, got)
		}
		doc := data
		if IsGzip(data) {
			var reason string
			if doc, reason = refGunzip(data, fuzzLimit); reason != "" {
				wantReason(t, err, reason)
				return
			}
		}
		if !utf8.Valid(doc) || depth(doc) > maxSkipDepth {
			return // encoding/json replaces invalid UTF-8; the decoder keeps bytes as they are
		}
		want, ok := refLogs(doc)
		if !ok {
			wantReason(t, err, ReasonNotCloudWatchLogs)
			return
		}
		if err != nil {
			t.Fatalf("%v; encoding/json reads it as %+v", err, want)
		}
		if got != nil {
			checkLogs(t, got, want)
		}
		if !IsGzip(data) {
			// The same record gzipped decodes the same.
			got, err := fuzzDecoder.CloudWatchLogs(gz(t, data))
			if len(data) > fuzzLimit {
				wantReason(t, err, ReasonTooLarge)
				return
			}
			if err != nil {
				t.Fatalf("gzipped: %v", err)
			}
			checkLogs(t, got, want)
		}
	})
}

func TestDepth(t *testing.T) {
	if got := depth([]byte(`{"a":"[[[\"[","b":[[1]]}`)); got != 3 {
		t.Fatalf("depth %d, want 3", got)
	}
}
