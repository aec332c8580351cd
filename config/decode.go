package config

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// shapeChecker walks a YAML tree against the Go types it will be decoded
// into and reports, by key path, what the decoder would reject: unknown or
// duplicate keys, a list where a mapping belongs, a value its field cannot
// hold. yaml.v3's own strict mode (KnownFields) reports these by line and Go
// type name; operators think in key paths.
type shapeChecker struct {
	probs []Problem
	// merged guards against merge-key cycles and repeated work: each
	// (mapping, path) pair reached through "<<" is checked once.
	merged map[mergeVisit]bool
}

type mergeVisit struct {
	node *yaml.Node
	path string
}

var durationType = reflect.TypeFor[Duration]()

func (c *shapeChecker) add(path, format string, args ...any) {
	c.probs = append(c.probs, Problem{Path: path, Message: fmt.Sprintf(format, args...)})
}

func (c *shapeChecker) check(path string, n *yaml.Node, t reflect.Type) {
	n = deref(n)
	if n == nil || isNull(n) {
		return // absent: the default (or zero) stays
	}
	switch {
	case t == durationType || (t.Kind() != reflect.Struct && t.Kind() != reflect.Slice):
		c.leaf(path, n, t)
	case t.Kind() == reflect.Struct:
		if n.Kind != yaml.MappingNode && path == "" {
			c.add(path, "expected a mapping of sections (aws, streams, nats, checkpoint, log, timers), got %s", kindName(n))
			return
		}
		if n.Kind != yaml.MappingNode {
			c.add(path, "expected a mapping, got %s", kindName(n))
			return
		}
		c.mapping(path, n, t, nil)
	case t.Kind() == reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			c.add(path, "expected a list, got %s", kindName(n))
			return
		}
		for i, e := range n.Content {
			ep := joinIndex(path, i)
			if d := deref(e); t.Elem().Kind() == reflect.Struct && (d == nil || isNull(d)) {
				c.add(ep, "expected a mapping, got null")
				continue
			}
			c.check(ep, e, t.Elem())
		}
	}
}

// mapping checks the keys of n against the yaml tags of struct type t. Keys
// in override were set explicitly by a mapping that merges n, so they win
// and n's values for them are never decoded.
func (c *shapeChecker) mapping(path string, n *yaml.Node, t reflect.Type, override map[string]bool) {
	fields := yamlFields(t)
	seen := make(map[string]int) // key -> line
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := deref(n.Content[i]), n.Content[i+1]
		if k == nil {
			continue
		}
		if isMerge(k) {
			merges = append(merges, v)
			continue
		}
		if k.Kind != yaml.ScalarNode {
			c.add(path, "keys must be strings, got %s", kindName(k))
			continue
		}
		kp := joinKey(path, k.Value)
		ft, ok := fields[k.Value]
		if !ok {
			c.add(kp, "unknown key")
			continue
		}
		if override[k.Value] {
			continue
		}
		if line, dup := seen[k.Value]; dup {
			c.add(kp, "duplicate key (first set on line %d)", line)
			continue
		}
		seen[k.Value] = k.Line
		c.check(kp, v, ft)
	}
	if len(merges) == 0 {
		return
	}
	inner := make(map[string]bool, len(override)+len(seen))
	for k := range override {
		inner[k] = true
	}
	for k := range seen {
		inner[k] = true
	}
	for _, m := range merges {
		c.merge(path, m, t, inner)
	}
}

func (c *shapeChecker) merge(path string, v *yaml.Node, t reflect.Type, override map[string]bool) {
	v = deref(v)
	var maps []*yaml.Node
	switch {
	case v != nil && v.Kind == yaml.MappingNode:
		maps = []*yaml.Node{v}
	case v != nil && v.Kind == yaml.SequenceNode:
		for _, e := range v.Content {
			maps = append(maps, deref(e))
		}
	default:
		maps = []*yaml.Node{nil}
	}
	for _, m := range maps {
		if m == nil || m.Kind != yaml.MappingNode {
			c.add(path, `merge key "<<" needs a mapping or a list of mappings`)
			return
		}
		visit := mergeVisit{m, path}
		if c.merged[visit] {
			continue
		}
		if c.merged == nil {
			c.merged = make(map[mergeVisit]bool)
		}
		c.merged[visit] = true
		c.mapping(path, m, t, override)
	}
}

// leaf test-decodes a scalar into a fresh value of type t.
func (c *shapeChecker) leaf(path string, n *yaml.Node, t reflect.Type) {
	if n.Kind != yaml.ScalarNode {
		c.add(path, "expected %s, got %s", describeType(t), kindName(n))
		return
	}
	err := n.Decode(reflect.New(t).Interface())
	if err == nil {
		return
	}
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		c.add(path, "%s", err.Error()) // from an UnmarshalYAML: already says what is wrong
		return
	}
	hint := ""
	if n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 {
		hint = " (remove the quotes)"
	}
	c.add(path, "expected %s, got %s%s", describeType(t), kindName(n), hint)
}

func describeType(t reflect.Type) string {
	switch {
	case t == durationType:
		return `a duration such as "10s"`
	case t.Kind() == reflect.Bool:
		return "true or false"
	case t.Kind() == reflect.String:
		return "a string"
	case t.Kind() == reflect.Slice:
		return "a list"
	case t.Kind() == reflect.Struct:
		return "a mapping"
	}
	return t.String()
}

// yamlFields maps the yaml key of each field of struct type t to its type.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	m := make(map[string]reflect.Type, t.NumField())
	for f := range t.Fields() {
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		switch name {
		case "-":
			continue
		case "":
			name = strings.ToLower(f.Name)
		}
		m[name] = f.Type
	}
	return m
}

// deref follows aliases to the node they name.
func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode; i++ {
		if i > 100 {
			return nil
		}
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// isMerge matches yaml.v3's test for a merge key.
func isMerge(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Value == "<<" && n.ShortTag() == "!!merge"
}

// kindName describes a node for an error message: the kind of a collection,
// or the (shortened) text of a scalar.
func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if isNull(n) {
			return "null"
		}
		return quoteShort(n.Value)
	case yaml.AliasNode:
		return "an alias"
	}
	return "a document"
}

func quoteShort(s string) string {
	const max = 64
	if len(s) > max {
		r := []rune(s)
		if len(r) > max {
			return strconv.Quote(string(r[:max])) + "..."
		}
	}
	return strconv.Quote(s)
}

func keyName(k *yaml.Node) string {
	if k = deref(k); k != nil && k.Kind == yaml.ScalarNode {
		return k.Value
	}
	return "?"
}

func joinKey(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func joinIndex(path string, i int) string {
	return path + "[" + strconv.Itoa(i) + "]"
}
