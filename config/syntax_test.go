package config

import (
	"fmt"
	"strings"
	"testing"
)

// A YAML syntax error names the line at fault, wherever yaml.v3 puts its
// own line number (the enclosing block's start, counted from 0, or none).
func TestSyntaxErrorNamesTheLine(t *testing.T) {
	t.Parallel()
	var big strings.Builder
	big.WriteString("streams:\n")
	for i := range 2000 {
		fmt.Fprintf(&big, "  - name: orders%d\n", i)
	}
	big.WriteString("   consumer: fanoutd\n") // line 2002
	for _, tc := range []struct{ name, yaml, want string }{
		{"indent in a list", "streams:\n  - name: orders\n   consumer: fanoutd\n", "yaml: line 3: did not find expected '-' indicator"},
		{"indent in a list in a mapping", "streams:\n  - name: x\nnats:\n  servers:\n    - a\n   - b\n", "yaml: line 6: did not find expected key"},
		{"on the first line", "a: b: c\n", "yaml: line 1: mapping values are not allowed in this context"},
		{"an unknown anchor", "k: &a 1\nj: *b\n", "yaml: line 2: unknown anchor 'b' referenced"},
		{"a quote never closed", "a: 1\nb: \"x\nc: 2\n", "yaml: line 2: found unexpected end of stream"},
		{"a tab", "a: 1\n\tb: 2\n", "yaml: line 2: found a tab character that violates indentation"},
		{"no final newline", "streams:\n  - name: orders\n   consumer: fanoutd", "yaml: line 3: did not find expected '-' indicator"},
		{"a long file", big.String(), "yaml: line 2002: did not find expected '-' indicator"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadBytes([]byte(tc.yaml), func(string) (string, bool) { return "", false })
			if err == nil || err.Error() != tc.want {
				t.Fatalf("error %v, want %s", err, tc.want)
			}
		})
	}
}
