package config

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The placeholders a subject template may use. The relay package renders
// them; config only checks a template's syntax.
const (
	PlaceholderStream       = "{stream}"
	PlaceholderShard        = "{shard}"
	PlaceholderPartitionKey = "{partition_key}"
	PlaceholderConsumer     = "{consumer}"
)

// SubjectPlaceholders returns the known placeholders, braces included.
func SubjectPlaceholders() []string {
	return []string{PlaceholderStream, PlaceholderShard, PlaceholderPartitionKey, PlaceholderConsumer}
}

func isPlaceholder(p string) bool {
	switch p {
	case PlaceholderStream, PlaceholderShard, PlaceholderPartitionKey, PlaceholderConsumer:
		return true
	}
	return false
}

// ValidateSubjectTemplate checks that tmpl is literal NATS subject text and
// known {placeholders}: dot-separated tokens, none empty, no whitespace or
// control characters, and no wildcards ('*', '>'), which a published
// subject cannot contain. A placeholder counts as a token's content; what it
// renders to is the relay's concern. Offsets in errors are byte offsets.
func ValidateSubjectTemplate(tmpl string) error {
	if tmpl == "" {
		return fmt.Errorf("must not be empty")
	}
	if !utf8.ValidString(tmpl) {
		return fmt.Errorf("must be valid UTF-8")
	}
	inToken := false // the current token has content
	for i := 0; i < len(tmpl); {
		r, size := utf8.DecodeRuneInString(tmpl[i:])
		switch {
		case r == '{':
			j := strings.IndexAny(tmpl[i+1:], "{}")
			if j < 0 || tmpl[i+1+j] == '{' {
				return fmt.Errorf("unbalanced '{' at offset %d", i)
			}
			p := tmpl[i : i+1+j+1]
			if !isPlaceholder(p) {
				return fmt.Errorf("unknown placeholder %s; known: %s", p, strings.Join(SubjectPlaceholders(), ", "))
			}
			inToken = true
			i += len(p)
			continue
		case r == '}':
			return fmt.Errorf("unbalanced '}' at offset %d", i)
		case r == '.':
			if !inToken {
				if i == 0 {
					return fmt.Errorf("must not start with '.'")
				}
				return fmt.Errorf("empty token at offset %d (\"..\")", i)
			}
			inToken = false
		case r == '*' || r == '>':
			return fmt.Errorf("wildcard '%c' at offset %d is not allowed in a published subject", r, i)
		case unicode.IsSpace(r):
			return fmt.Errorf("whitespace at offset %d is not allowed", i)
		case unicode.IsControl(r):
			return fmt.Errorf("control character at offset %d is not allowed", i)
		default:
			inToken = true
		}
		i += size
	}
	if !inToken {
		return fmt.Errorf("must not end with '.'")
	}
	return nil
}
