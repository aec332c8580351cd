package config

import (
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

// expandEnv replaces ${VAR} in every scalar value of the tree (never in
// keys), so that a variable cannot change the structure of the file and an
// unset one can be reported by key path. "$${" is a literal "${"; any other
// "$" is literal, so passwords with a "$" need no escaping.
//
// An expanded value is typed from its text (jetstream: ${JS} with JS=true
// is a bool). In flow style ({...}, [...]) quote the reference: "${VAR}".
// Alias nodes are skipped: their anchor is expanded where it stands.
func expandEnv(n *yaml.Node, path string, lookup func(string) (string, bool), probs *[]Problem) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			expandEnv(c, path, lookup, probs)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			expandEnv(n.Content[i+1], joinKey(path, keyName(n.Content[i])), lookup, probs)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			expandEnv(c, joinIndex(path, i), lookup, probs)
		}
	case yaml.ScalarNode:
		if !strings.Contains(n.Value, "${") {
			return
		}
		out, errs := expandString(n.Value, lookup)
		for _, msg := range errs {
			*probs = append(*probs, Problem{Path: path, Message: msg})
		}
		if len(errs) > 0 || out == n.Value {
			return
		}
		n.Value = out
		if n.Style&yaml.TaggedStyle != 0 {
			return // an explicit tag (!!str ${X}) wins
		}
		// Type the value from its new text, quoted or not, so that
		// jetstream: "${JS}" works in flow style, where a bare ${ cannot
		// stand. String fields keep the text whatever its type; only an
		// empty value must not become null, which would keep the default.
		n.Style &^= yaml.DoubleQuotedStyle | yaml.SingleQuotedStyle | yaml.LiteralStyle | yaml.FoldedStyle
		n.Tag = ""
		if n.ShortTag() == "!!null" {
			n.Tag = "!!str"
		}
	}
}

// expandString expands s, returning one message per variable it could not
// expand. Values of variables never appear in messages: they may be secrets.
func expandString(s string, lookup func(string) (string, bool)) (string, []string) {
	var b strings.Builder
	var errs []string
	for i := 0; i < len(s); {
		switch {
		case strings.HasPrefix(s[i:], "$${"):
			b.WriteString("${")
			i += 3
		case strings.HasPrefix(s[i:], "${"):
			end := strings.IndexByte(s[i+2:], '}')
			if end < 0 {
				errs = append(errs, `unterminated "${" (write "$${" for a literal "${")`)
				b.WriteString(s[i:])
				i = len(s)
				break
			}
			name := s[i+2 : i+2+end]
			i += 2 + end + 1
			if !validEnvName(name) {
				errs = append(errs, fmt.Sprintf("invalid environment variable name %q", name))
				continue
			}
			v, ok := lookup(name)
			if !ok {
				errs = append(errs, fmt.Sprintf("environment variable %s is not set", name))
				continue
			}
			b.WriteString(v)
		default:
			b.WriteByte(s[i])
			i++
		}
	}
	return b.String(), errs
}

func validEnvName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == '_', 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z':
		case '0' <= c && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}
