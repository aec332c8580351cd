package relay

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/fanoutd/fanoutd/record"
)

// subjectPartKind says what one pre-parsed piece of a subject template renders.
type subjectPartKind uint8

const (
	partLiteral subjectPartKind = iota
	partStream
	partShard
	partPartitionKey
	partConsumer
)

// subjectPlaceholders maps each placeholder name, without braces, to its kind.
var subjectPlaceholders = map[string]subjectPartKind{
	"stream":        partStream,
	"shard":         partShard,
	"partition_key": partPartitionKey,
	"consumer":      partConsumer,
}

const placeholderList = "{stream}, {shard}, {partition_key} or {consumer}"

type subjectPart struct {
	kind    subjectPartKind
	literal string // for partLiteral only
}

// SubjectTemplate renders NATS subjects from a template with {stream}, {shard},
// {partition_key}, {consumer}.
//
// A parsed template is valid by construction: its literal text holds no
// wildcard, whitespace or control character and no empty token, and every
// placeholder renders as a non-empty piece of one token (see SanitizeToken),
// so every rendered subject is a valid publish subject. A template may put a
// placeholder inside a token ("kinesis.{stream}-raw"), and may put two in one
// token, though two values sharing a token can then collide ("{stream}{shard}").
//
// A SubjectTemplate is immutable and safe for concurrent use.
type SubjectTemplate struct {
	src   string
	parts []subjectPart
}

// SubjectValues are the values substituted into a SubjectTemplate.
type SubjectValues struct {
	Stream, Shard, PartitionKey, Consumer string
}

// ParseSubjectTemplate parses s, e.g. "kinesis.{stream}.{partition_key}".
// It rejects an empty template, an unknown placeholder, an unbalanced brace, and
// literal text that a publish subject cannot hold: whitespace, control
// characters, the wildcards '*' and '>', invalid UTF-8, and empty tokens
// ("a..b", or a leading or trailing '.').
func ParseSubjectTemplate(s string) (*SubjectTemplate, error) {
	if s == "" {
		return nil, fmt.Errorf("subject template is empty: set it, e.g. %q", "kinesis.{stream}.{shard}")
	}
	t := &SubjectTemplate{src: s}
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			t.parts = append(t.parts, subjectPart{kind: partLiteral, literal: lit.String()})
			lit.Reset()
		}
	}
	tokenHasContent := false
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '{':
			end := strings.IndexAny(s[i+1:], "{}")
			if end < 0 || s[i+1+end] == '{' {
				return nil, fmt.Errorf("subject template %q: unclosed '{' at offset %d", s, i)
			}
			name := s[i+1 : i+1+end]
			kind, ok := subjectPlaceholders[name]
			if !ok {
				return nil, fmt.Errorf("subject template %q: unknown placeholder {%s} at offset %d: use %s", s, name, i, placeholderList)
			}
			flush()
			t.parts = append(t.parts, subjectPart{kind: kind})
			tokenHasContent = true
			i += end + 2
			continue
		case c == '}':
			return nil, fmt.Errorf("subject template %q: '}' without '{' at offset %d", s, i)
		case c == '.':
			if !tokenHasContent {
				return nil, fmt.Errorf("subject template %q: empty token at offset %d: a subject cannot start with '.' or hold '..'", s, i)
			}
			tokenHasContent = false
		case c <= ' ' || c == 0x7f:
			return nil, fmt.Errorf("subject template %q: whitespace or control character %q at offset %d", s, c, i)
		case c == '*' || c == '>':
			return nil, fmt.Errorf("subject template %q: wildcard %q at offset %d: a publish subject cannot hold wildcards", s, c, i)
		case c >= utf8.RuneSelf:
			_, size := utf8.DecodeRuneInString(s[i:])
			if size == 1 {
				return nil, fmt.Errorf("subject template %q: invalid UTF-8 at offset %d", s, i)
			}
			lit.WriteString(s[i : i+size])
			tokenHasContent = true
			i += size
			continue
		default:
			tokenHasContent = true
		}
		lit.WriteByte(c)
		i++
	}
	if !tokenHasContent {
		return nil, fmt.Errorf("subject template %q: ends with '.'", s)
	}
	flush()
	return t, nil
}

// Render appends the subject for v to dst and returns the extended slice.
// Every value goes through SanitizeToken. It does not allocate when dst has
// the capacity for the result.
func (t *SubjectTemplate) Render(dst []byte, v SubjectValues) []byte {
	for _, p := range t.parts {
		switch p.kind {
		case partLiteral:
			dst = append(dst, p.literal...)
		case partStream:
			dst = SanitizeToken(dst, v.Stream)
		case partShard:
			dst = SanitizeToken(dst, v.Shard)
		case partPartitionKey:
			dst = SanitizeToken(dst, v.PartitionKey)
		case partConsumer:
			dst = SanitizeToken(dst, v.Consumer)
		}
	}
	return dst
}

// String returns the template as it was parsed.
func (t *SubjectTemplate) String() string { return t.src }

// SanitizeToken appends s to dst as exactly one NATS subject token.
//
// A substituted value becomes exactly one subject token. Bytes that a token
// cannot hold — '.', '*', '>', any ASCII whitespace or control character
// (0x00–0x20 and 0x7F) — and '%' itself are percent-encoded as %XX (uppercase
// hex), so the mapping is reversible and two different values never collide.
// An empty value becomes "_", and a value that is exactly "_" becomes "%5F" so
// that it does not collide with the empty value. Bytes of valid UTF-8 sequences
// (0x80 and above) pass through unchanged; bytes that are not valid UTF-8 are
// percent-encoded, so the subject is always valid UTF-8. Everything else passes
// through unchanged.
//
// To recover the value from a token: "_" is the empty value; otherwise
// percent-decode it (in Go, url.PathUnescape).
//
// Examples: "user-42" → "user-42", "eu.west" → "eu%2Ewest", "a b" → "a%20b",
// "100%" → "100%25", "" → "_", "ключ" → "ключ".
func SanitizeToken(dst []byte, s string) []byte {
	switch s {
	case "":
		return append(dst, '_')
	case "_":
		return append(dst, "%5F"...)
	}
	// Fast path: most values need no escaping at all.
	i := 0
	for i < len(s) && s[i] < utf8.RuneSelf && !escapeInToken(s[i]) {
		i++
	}
	dst = append(dst, s[:i]...)
	for i < len(s) {
		c := s[i]
		if c < utf8.RuneSelf {
			if escapeInToken(c) {
				dst = appendPercent(dst, c)
			} else {
				dst = append(dst, c)
			}
			i++
			continue
		}
		if _, size := utf8.DecodeRuneInString(s[i:]); size > 1 {
			dst = append(dst, s[i:i+size]...)
			i += size
			continue
		}
		dst = appendPercent(dst, c)
		i++
	}
	return dst
}

// escapeInToken reports whether the ASCII byte c must be percent-encoded in
// a subject token.
func escapeInToken(c byte) bool {
	return c <= ' ' || c == 0x7f || c == '.' || c == '*' || c == '>' || c == '%'
}

const upperHex = "0123456789ABCDEF"

func appendPercent(dst []byte, c byte) []byte {
	return append(dst, '%', upperHex[c>>4], upperHex[c&0xf])
}

// subjectValues are the values of rec, a record of b, for a template.
func subjectValues(b *record.Batch, rec *record.Record) SubjectValues {
	return SubjectValues{Stream: b.Stream, Shard: b.ShardID, PartitionKey: rec.PartitionKey, Consumer: b.Consumer}
}
