package relay

import (
	"encoding/json"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// A PubAck is one of two small JSON objects, {"stream":"S","seq":N} (with
// "duplicate":true for a message JetStream already had, and "domain" in a
// JetStream domain) or {"error":{"code":C,"err_code":E,"description":"D"}}.
// scanPubAck reads those shapes without encoding/json's reflection, most
// of what reading a PubAck costs with it; anything it is not sure to read as
// encoding/json would (escapes, nesting, an upper-case or non-ASCII key,
// a number that is not a plain integer) goes to encoding/json instead.

// pubAck is what a PubAck says of its message.
type pubAck struct {
	stream  bool // a stream name was given: stored (or a duplicate)
	dup     bool
	invalid bool // not a PubAck
	err     *jetstream.APIError
}

// readPubAck returns the answer of JetStream in reply m to one message: nil
// (dup: the stream already had it), jetstream.ErrNoStreamResponse when no
// stream captures the subject, the server's *jetstream.APIError, or
// jetstream.ErrInvalidJSAck, as nats.go's PublishMsgAsync would.
func readPubAck(m *nats.Msg) (dup bool, err error) {
	if len(m.Data) == 0 && m.Header.Get("Status") == "503" {
		return false, jetstream.ErrNoStreamResponse
	}
	return parsePubAck(m.Data).result()
}

func parsePubAck(data []byte) pubAck {
	if a, ok := scanPubAck(data); ok {
		return a
	}
	return decodePubAck(data)
}

func (a pubAck) result() (bool, error) {
	switch {
	case a.invalid:
		return false, jetstream.ErrInvalidJSAck
	case a.err != nil:
		return false, a.err
	case !a.stream:
		return false, jetstream.ErrInvalidJSAck
	}
	return a.dup, nil
}

// pubAckJSON holds the fields nats.go decodes from a PubAck, with their
// types: a field of another type makes the reply invalid there too.
type pubAckJSON struct {
	Type      string              `json:"type"`
	Error     *jetstream.APIError `json:"error,omitempty"`
	Stream    string              `json:"stream"`
	Seq       uint64              `json:"seq"`
	Duplicate bool                `json:"duplicate,omitempty"`
	Domain    string              `json:"domain,omitempty"`
	Value     string              `json:"val,omitempty"`
}

func decodePubAck(data []byte) pubAck {
	var r pubAckJSON
	if err := json.Unmarshal(data, &r); err != nil {
		return pubAck{invalid: true}
	}
	return pubAck{stream: r.Stream != "", dup: r.Duplicate, err: r.Error}
}

// scanPubAck reads data as a PubAck; false if it is not sure to read it as
// encoding/json would.
func scanPubAck(data []byte) (pubAck, bool) {
	var a pubAck
	s := ackScanner{b: data}
	errSeen := false
	ok := s.object(func(key []byte) bool {
		switch string(key) {
		case "stream":
			v, ok := s.str(false)
			a.stream = len(v) > 0
			return ok
		case "type", "domain", "val":
			_, ok := s.str(false)
			return ok
		case "seq":
			_, ok := s.uint(19)
			return ok
		case "duplicate":
			var ok bool
			a.dup, ok = s.bool()
			return ok
		case "error":
			if errSeen { // encoding/json would merge the two
				return false
			}
			errSeen = true
			a.err = &jetstream.APIError{}
			return s.apiError(a.err)
		}
		return s.scalar()
	})
	if !ok || !s.end() {
		return pubAck{}, false
	}
	return a, true
}

// ackScanner reads the JSON of a PubAck; each method returns false where
// the input is not the plain JSON it reads.
type ackScanner struct {
	b []byte
	i int
}

func (s *ackScanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *ackScanner) end() bool {
	s.ws()
	return s.i == len(s.b)
}

// object reads an object, calling field for each key with the scanner on
// its value.
func (s *ackScanner) object(field func(key []byte) bool) bool {
	s.ws()
	if s.i >= len(s.b) || s.b[s.i] != '{' {
		return false
	}
	s.i++
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == '}' {
		s.i++
		return true
	}
	for {
		key, ok := s.str(true)
		if !ok {
			return false
		}
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			return false
		}
		s.i++
		s.ws()
		if !field(key) {
			return false
		}
		s.ws()
		if s.i >= len(s.b) {
			return false
		}
		c := s.b[s.i]
		s.i++
		switch c {
		case '}':
			return true
		case ',':
			s.ws()
		default:
			return false
		}
	}
}

// str reads a string without escapes. A key must be ASCII without upper
// case: encoding/json matches keys case-insensitively, with Unicode folds.
func (s *ackScanner) str(key bool) ([]byte, bool) {
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return nil, false
	}
	start := s.i + 1
	for j := start; j < len(s.b); j++ {
		c := s.b[j]
		switch {
		case c == '"':
			s.i = j + 1
			return s.b[start:j], true
		case c == '\\' || c < 0x20:
			return nil, false
		case key && (c >= 0x80 || 'A' <= c && c <= 'Z'):
			return nil, false
		}
	}
	return nil, false
}

// uint reads a plain non-negative integer of at most digits digits.
func (s *ackScanner) uint(digits int) (uint64, bool) {
	start := s.i
	var n uint64
	for s.i < len(s.b) && '0' <= s.b[s.i] && s.b[s.i] <= '9' {
		n = n*10 + uint64(s.b[s.i]-'0')
		s.i++
	}
	l := s.i - start
	if l == 0 || l > digits || l > 1 && s.b[start] == '0' {
		return 0, false
	}
	return n, true
}

func (s *ackScanner) bool() (bool, bool) {
	rest := s.b[s.i:]
	switch {
	case len(rest) >= 4 && string(rest[:4]) == "true":
		s.i += 4
		return true, true
	case len(rest) >= 5 && string(rest[:5]) == "false":
		s.i += 5
		return false, true
	}
	return false, false
}

// scalar skips the value of a field the PubAck does not use: a string, a
// plain integer, true, false or null.
func (s *ackScanner) scalar() bool {
	if s.i >= len(s.b) {
		return false
	}
	switch c := s.b[s.i]; {
	case c == '"':
		_, ok := s.str(false)
		return ok
	case '0' <= c && c <= '9':
		_, ok := s.uint(19)
		return ok
	case c == 'n':
		if len(s.b)-s.i >= 4 && string(s.b[s.i:s.i+4]) == "null" {
			s.i += 4
			return true
		}
		return false
	}
	_, ok := s.bool()
	return ok
}

// apiError reads the object of a PubAck's "error" into e. A description
// must be ASCII: encoding/json replaces invalid UTF-8.
func (s *ackScanner) apiError(e *jetstream.APIError) bool {
	return s.object(func(key []byte) bool {
		switch string(key) {
		case "code":
			n, ok := s.uint(18)
			e.Code = int(n)
			return ok
		case "err_code":
			n, ok := s.uint(5)
			e.ErrorCode = jetstream.ErrorCode(n)
			return ok && n <= 0xffff
		case "description":
			v, ok := s.str(false)
			for _, c := range v {
				if c >= 0x80 {
					return false
				}
			}
			e.Description = string(v)
			return ok
		}
		return s.scalar()
	})
}
