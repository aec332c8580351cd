package payload

import (
	"bytes"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// maxSkipDepth bounds the nesting of a value the decoder skips (an unknown
// field): deeper input is refused rather than followed.
const maxSkipDepth = 1000

// scanner reads the JSON of one record strictly (RFC 8259: no trailing
// commas, no comments, no control characters in strings) without
// recursion, so no input can exhaust the stack, and without allocating:
// strings come back as their bytes in the input.
type scanner struct {
	b     []byte
	i     int
	stack []byte // skip's open containers, kept for reuse
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// peek returns the next byte after whitespace, or 0 at the end.
func (s *scanner) peek() byte {
	s.ws()
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

// eat consumes c if it is the next byte after whitespace.
func (s *scanner) eat(c byte) bool {
	if s.peek() == c {
		s.i++
		return true
	}
	return false
}

// more reports whether a member or element follows in the object or array
// whose opening byte was consumed, consuming the comma before it (first:
// none read yet). At the closing byte it consumes it and reports false.
func (s *scanner) more(close byte, first bool) (more, ok bool) {
	switch s.peek() {
	case close:
		s.i++
		return false, true
	case ',':
		if first {
			return false, false
		}
		s.i++
		return true, true
	}
	return true, first
}

// str reads a string; content is its bytes between the quotes, escaped
// whether it holds escapes (see unescape).
func (s *scanner) str() (content []byte, escaped, ok bool) {
	if s.peek() != '"' {
		return nil, false, false
	}
	b := s.b
	begin := s.i + 1
	for i := begin; i < len(b); {
		c := b[i]
		if !special[c] {
			i++
			continue
		}
		switch {
		case c == '"':
			s.i = i + 1
			return b[begin:i], escaped, true
		case c < 0x20:
			return nil, false, false
		}
		// A backslash.
		escaped = true
		if i+1 >= len(b) {
			return nil, false, false
		}
		switch b[i+1] {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			i += 2
		case 'u':
			if hex4(b[i+2:]) < 0 {
				return nil, false, false
			}
			i += 6
		default:
			return nil, false, false
		}
	}
	return nil, false, false
}

// special marks the bytes that end a run of plain bytes in a string.
var special = func() (t [256]bool) {
	for c := range 0x20 {
		t[c] = true
	}
	t['"'], t['\\'] = true, true
	return t
}()

// key reads an object member's key and the colon after it; a key with
// escapes is unescaped into buf.
func (s *scanner) key(buf *[]byte) ([]byte, bool) {
	k, esc, ok := s.str()
	if !ok || !s.eat(':') {
		return nil, false
	}
	if esc {
		*buf = unescape((*buf)[:0], k)
		k = *buf
	}
	return k, true
}

// number reads a number; isInt when it has no fraction or exponent.
func (s *scanner) number() (raw []byte, isInt, ok bool) {
	s.ws()
	end := numberEnd(s.b, s.i)
	if end < 0 {
		return nil, false, false
	}
	raw, s.i = s.b[s.i:end], end
	return raw, !bytes.ContainsAny(raw, ".eE"), true
}

func digits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}

// literal consumes word (true, false or null) if it comes next.
func (s *scanner) literal(word string) bool {
	s.ws()
	if len(s.b)-s.i >= len(word) && string(s.b[s.i:s.i+len(word)]) == word {
		s.i += len(word)
		return true
	}
	return false
}

// scalar reads a string, number or literal.
func (s *scanner) scalar() bool {
	switch s.peek() {
	case '"':
		_, _, ok := s.str()
		return ok
	case 't':
		return s.literal("true")
	case 'f':
		return s.literal("false")
	case 'n':
		return s.literal("null")
	}
	_, _, ok := s.number()
	return ok
}

// skip reads any value, checking its syntax, nested up to maxSkipDepth.
func (s *scanner) skip() bool {
	s.stack = s.stack[:0]
	for {
		// A value is expected.
		switch c := s.peek(); c {
		case '{', '[':
			if len(s.stack) == maxSkipDepth {
				return false
			}
			s.i++
			close := byte(']')
			if c == '{' {
				close = '}'
			}
			s.stack = append(s.stack, close)
			if s.peek() != close {
				if close == '}' && !s.skipKey() {
					return false
				}
				continue
			}
		default:
			if !s.scalar() {
				return false
			}
		}
		// A value ended, or a container opened with its close next: close
		// containers until one has another member.
		for {
			if len(s.stack) == 0 {
				return true
			}
			top := s.stack[len(s.stack)-1]
			c := s.peek()
			if c == top {
				s.i++
				s.stack = s.stack[:len(s.stack)-1]
				continue
			}
			if c != ',' {
				return false
			}
			s.i++
			if top == '}' && !s.skipKey() {
				return false
			}
			break
		}
	}
}

func (s *scanner) skipKey() bool {
	_, _, ok := s.str()
	return ok && s.eat(':')
}

// hex4 is the value of the 4 hex digits b starts with, or -1.
func hex4(b []byte) rune {
	if len(b) < 4 {
		return -1
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r<<4 | rune(c)
	}
	return r
}

// unescape appends the string whose escaped content str checked to dst,
// decoding escapes as encoding/json does (an unpaired surrogate becomes
// U+FFFD); other bytes are copied as they are.
func unescape(dst, content []byte) []byte {
	for i := 0; i < len(content); {
		c := content[i]
		if c != '\\' {
			j := bytes.IndexByte(content[i:], '\\')
			if j < 0 {
				return append(dst, content[i:]...)
			}
			dst = append(dst, content[i:i+j]...)
			i += j
			continue
		}
		switch e := content[i+1]; e {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r := hex4(content[i+2:])
			i += 6
			if utf16.IsSurrogate(r) {
				if i+6 <= len(content) && content[i] == '\\' && content[i+1] == 'u' {
					if pair := utf16.DecodeRune(r, hex4(content[i+2:])); pair != unicode.ReplacementChar {
						r = pair
						i += 6
						dst = utf8.AppendRune(dst, r)
						continue
					}
				}
				r = unicode.ReplacementChar
			}
			dst = utf8.AppendRune(dst, r)
			continue
		default: // '"', '\\', '/'
			dst = append(dst, e)
		}
		i += 2
	}
	return dst
}
