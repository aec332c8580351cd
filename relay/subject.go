package relay

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
	"unsafe"

	"github.com/tidwall/gjson"

	"github.com/fanoutd/fanoutd/payload"
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
	partData      // {data.PATH}: a field of the record's JSON data
	partLogGroup  // {log_group}: of an unpacked CloudWatch Logs event
	partLogStream // {log_stream}
)

// subjectPlaceholders maps each placeholder name, without braces, to its kind.
var subjectPlaceholders = map[string]subjectPartKind{
	"stream":        partStream,
	"shard":         partShard,
	"partition_key": partPartitionKey,
	"consumer":      partConsumer,
	"log_group":     partLogGroup,
	"log_stream":    partLogStream,
}

const placeholderList = "{stream}, {shard}, {partition_key}, {consumer}, {data.PATH}, {log_group} or {log_stream}"

type subjectPart struct {
	kind    subjectPartKind
	literal string // partLiteral: the text; partData: the gjson path
}

// DefaultSubjectFallback is the token of a {data.PATH} that the record's data
// does not give as a scalar.
const DefaultSubjectFallback = "_"

// maxDataPathSegments bounds the depth of a {data.PATH}.
const maxDataPathSegments = 32

// SubjectTemplate renders NATS subjects from a template with {stream}, {shard},
// {partition_key}, {consumer}, {data.PATH} (a field of the record's JSON
// data, see Render), {log_group} and {log_stream} (of a CloudWatch Logs
// event).
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
	src      string
	parts    []subjectPart
	fallback string
	data     bool // some part is {data.PATH}
	logs     bool // some part is {log_group} or {log_stream}
}

// SubjectValues are the values substituted into a SubjectTemplate.
type SubjectValues struct {
	Stream, Shard, PartitionKey, Consumer string
	// Data is the record's data, for {data.PATH}.
	Data []byte
	// JSON says whether Data was found to be a JSON object already
	// (jsonUnchecked: Render checks).
	JSON jsonSeen
	// LogGroup and LogStream are a CloudWatch Logs event's, "" otherwise.
	LogGroup, LogStream string
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
	t := &SubjectTemplate{src: s, fallback: DefaultSubjectFallback}
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
			part, err := parsePlaceholder(name)
			switch {
			case errors.Is(err, errUnknownPlaceholder):
				return nil, fmt.Errorf("subject template %q: unknown placeholder {%s} at offset %d: use %s", s, name, i, placeholderList)
			case err != nil:
				return nil, fmt.Errorf("subject template %q: placeholder {%s} at offset %d: %w", s, name, i, err)
			}
			flush()
			t.data = t.data || part.kind == partData
			t.logs = t.logs || part.kind == partLogGroup || part.kind == partLogStream
			t.parts = append(t.parts, part)
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

var errUnknownPlaceholder = errors.New("unknown placeholder")

// parsePlaceholder parses the name between a placeholder's braces.
func parsePlaceholder(name string) (subjectPart, error) {
	if kind, ok := subjectPlaceholders[name]; ok {
		return subjectPart{kind: kind}, nil
	}
	path, ok := strings.CutPrefix(name, "data.")
	if !ok {
		if name == "data" {
			return subjectPart{}, errors.New("names no field: use {data.PATH}, e.g. {data.type} or {data.items.0.sku}")
		}
		return subjectPart{}, errUnknownPlaceholder
	}
	segs := strings.Split(path, ".")
	if len(segs) > maxDataPathSegments {
		return subjectPart{}, fmt.Errorf("at most %d fields deep", maxDataPathSegments)
	}
	esc := make([]string, len(segs))
	for i, seg := range segs {
		if seg == "" {
			return subjectPart{}, errors.New("empty field name")
		}
		for j := 0; j < len(seg); j++ {
			if c := seg[j]; c <= ' ' || c == 0x7f {
				return subjectPart{}, fmt.Errorf("whitespace or control character %q in a field name", c)
			}
		}
		if !utf8.ValidString(seg) {
			return subjectPart{}, errors.New("invalid UTF-8 in a field name")
		}
		esc[i] = gjson.Escape(seg)
	}
	return subjectPart{kind: partData, literal: strings.Join(esc, ".")}, nil
}

// WithFallback returns a copy of t whose {data.PATH} placeholders render as
// token when the data gives no scalar there. token is one subject token,
// written as it is: no '.', wildcard, whitespace or control character.
func (t *SubjectTemplate) WithFallback(token string) (*SubjectTemplate, error) {
	if err := checkLiteralToken(token); err != nil {
		return nil, err
	}
	c := *t
	c.fallback = token
	return &c, nil
}

// checkLiteralToken says why s cannot be one subject token as written.
func checkLiteralToken(s string) error {
	if s == "" {
		return fmt.Errorf("empty: a subject token needs at least one character")
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%q: invalid UTF-8", s)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; escapeInToken(c) && c != '%' {
			return fmt.Errorf("%q: one subject token holds no '.', '*', '>', whitespace or control character", s)
		}
	}
	return nil
}

// Fallback returns the token of a {data.PATH} the data does not give.
func (t *SubjectTemplate) Fallback() string { return t.fallback }

// UsesData reports whether t has a {data.PATH} placeholder.
func (t *SubjectTemplate) UsesData() bool { return t.data }

// Fallible reports whether t may render the fallback token: it has a
// {data.PATH}, {log_group} or {log_stream}.
func (t *SubjectTemplate) Fallible() bool { return t.data || t.logs }

// UsesLogs reports whether t has {log_group} or {log_stream}.
func (t *SubjectTemplate) UsesLogs() bool { return t.logs }

// Render appends the subject for v to dst and returns the extended slice.
// Every value goes through SanitizeToken. It does not allocate when dst has
// the capacity for the result, unless a {data.PATH} is a JSON string with
// escapes (which is unescaped first).
//
// {data.PATH} reads v.Data as JSON: a string, number (its JSON text) or
// boolean at PATH is the value; a path that is missing, null, an object or
// an array, or data that is not a JSON object, renders as the fallback
// token (see WithFallback). So does {log_group} or {log_stream} of a
// message that is no CloudWatch Logs event.
func (t *SubjectTemplate) Render(dst []byte, v SubjectValues) []byte {
	dst, _ = t.RenderCounting(dst, v)
	return dst
}

// RenderCounting is Render, and reports whether some placeholder rendered
// as the fallback token.
func (t *SubjectTemplate) RenderCounting(dst []byte, v SubjectValues) ([]byte, bool) {
	var (
		json     string
		jsonOK   bool
		fellBack bool
	)
	if t.data {
		switch v.JSON {
		case jsonUnchecked:
			json, jsonOK = jsonObject(v.Data)
		case jsonObjectSeen:
			json, jsonOK = unsafe.String(unsafe.SliceData(v.Data), len(v.Data)), true
		}
	}
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
		case partData:
			var ok bool
			if jsonOK {
				dst, ok = appendScalar(dst, gjson.Get(json, p.literal))
			}
			if !ok {
				dst, fellBack = append(dst, t.fallback...), true
			}
		case partLogGroup, partLogStream:
			val := v.LogGroup
			if p.kind == partLogStream {
				val = v.LogStream
			}
			if val == "" {
				dst, fellBack = append(dst, t.fallback...), true
			} else {
				dst = SanitizeToken(dst, val)
			}
		}
	}
	return dst, fellBack
}

// jsonObject returns data as a string sharing its memory, and whether it is
// a valid JSON object. The string is only read while data is.
func jsonObject(data []byte) (string, bool) {
	if !isObject(data) || !payload.ValidJSON(data) {
		return "", false
	}
	return unsafe.String(&data[0], len(data)), true
}

// isObject reports whether data, if it is JSON, is an object: its first
// byte past whitespace is '{'.
func isObject(data []byte) bool {
	i := 0
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
		i++
	}
	return i < len(data) && data[i] == '{'
}

// appendScalar appends the token of a JSON string, number or boolean, and
// reports whether r was one.
func appendScalar(dst []byte, r gjson.Result) ([]byte, bool) {
	switch r.Type {
	case gjson.String:
		return SanitizeToken(dst, r.Str), true
	case gjson.Number:
		return SanitizeToken(dst, r.Raw), true
	case gjson.True, gjson.False:
		return append(dst, r.Raw...), true
	}
	return dst, false
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
	v := SubjectValues{Stream: b.Stream, Shard: b.ShardID, PartitionKey: rec.PartitionKey, Consumer: b.Consumer, Data: rec.Data}
	if u := rec.Unpacked; u != nil {
		v.LogGroup, v.LogStream = u.LogGroup, u.LogStream
	}
	return v
}
