package config

import (
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// shapeChecker walks a YAML tree against the Go types it will be decoded
// into and reports, by key path, what the decoder would reject: unknown or
// duplicate keys, a list where a mapping belongs, a value its field cannot
// hold. yaml.v3's own strict mode (KnownFields) reports these by line and Go
// type name; operators think in key paths.
//
// It also takes each rejected node out of the tree (fix, after the walk): a
// bad key is removed with its value, so its default stays; a bad list
// element becomes null. The tree then decodes, and Validate can report the
// problems of every other value in the same pass.
type shapeChecker struct {
	probs []Problem
	// covered are the paths whose value was taken out: Validate's problems
	// at or under them are consequences, not news.
	covered []string
	// skip are the paths already reported (environment problems): their
	// nodes are taken out (if not strings) without a second report.
	skip []string
	// merged guards against merge-key cycles and repeated work: each
	// (mapping, path) pair reached through "<<" is checked once.
	merged map[mergeVisit]bool
	// drops are the keys to remove from each mapping; nulls the list
	// elements (parent, index) to replace by null.
	drops map[*yaml.Node]map[*yaml.Node]bool
	nulls []nullAt
}

type nullAt struct {
	parent *yaml.Node
	i      int
}

type mergeVisit struct {
	node *yaml.Node
	path string
}

var (
	durationType      = reflect.TypeFor[Duration]()
	filterPatternType = reflect.TypeFor[FilterPattern]()
)

// add reports a problem with the value at path, which is taken out.
func (c *shapeChecker) add(path, format string, args ...any) {
	c.note(path, format, args...)
	c.covered = append(c.covered, path)
}

// note reports a problem that takes nothing out below path.
func (c *shapeChecker) note(path, format string, args ...any) {
	c.probs = append(c.probs, Problem{Path: path, Message: fmt.Sprintf(format, args...)})
}

func (c *shapeChecker) drop(m, key *yaml.Node) {
	if c.drops == nil {
		c.drops = make(map[*yaml.Node]map[*yaml.Node]bool)
	}
	if c.drops[m] == nil {
		c.drops[m] = make(map[*yaml.Node]bool)
	}
	c.drops[m][key] = true
}

// fix takes the rejected nodes out of the tree.
func (c *shapeChecker) fix() {
	for m, keys := range c.drops {
		kept := m.Content[:0]
		for i := 0; i+1 < len(m.Content); i += 2 {
			if !keys[m.Content[i]] {
				kept = append(kept, m.Content[i], m.Content[i+1])
			}
		}
		m.Content = kept
	}
	for _, at := range c.nulls {
		at.parent.Content[at.i] = &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null"}
	}
}

// check reports whether the value n at path can be decoded into t; when it
// can't, the caller takes it out.
func (c *shapeChecker) check(path string, n *yaml.Node, t reflect.Type) bool {
	n = deref(n)
	if n == nil || isNull(n) {
		return true // absent: the default (or zero) stays
	}
	if covers(c.skip, path) {
		// Reported already (an environment variable); a string field can
		// keep the unexpanded text, anything else must go.
		return t.Kind() == reflect.String && t != durationType && n.Kind == yaml.ScalarNode
	}
	switch {
	case t == filterPatternType: // a string or a mapping
		var f FilterPattern
		if err := n.Decode(&f); err != nil {
			c.add(path, "%s", err.Error())
			return false
		}
	case t == durationType || (t.Kind() != reflect.Struct && t.Kind() != reflect.Slice):
		return c.leaf(path, n, t)
	case t.Kind() == reflect.Struct:
		if n.Kind != yaml.MappingNode && path == "" {
			c.add(path, "expected a mapping of sections (%s), got %s", strings.Join(sectionNames(), ", "), kindName(n))
			return false
		}
		if n.Kind != yaml.MappingNode {
			c.add(path, "expected a mapping, got %s", kindName(n))
			return false
		}
		c.mapping(path, n, t, nil)
	case t.Kind() == reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			c.add(path, "expected a list, got %s", kindName(n))
			return false
		}
		for i, e := range n.Content {
			ep := joinIndex(path, i)
			if d := deref(e); t.Elem().Kind() == reflect.Struct && (d == nil || isNull(d)) {
				c.add(ep, "expected a mapping, got null")
				continue
			}
			if !c.check(ep, e, t.Elem()) {
				c.nulls = append(c.nulls, nullAt{n, i})
			}
		}
	}
	return true
}

// covers reports whether path is one of paths or lies under one of them
// ("" covers everything).
func covers(paths []string, path string) bool {
	for _, q := range paths {
		if q == "" || path == q || strings.HasPrefix(path, q+".") || strings.HasPrefix(path, q+"[") {
			return true
		}
	}
	return false
}

// mapping checks the keys of n against the yaml tags of struct type t. Keys
// in override were set explicitly by a mapping that merges n, so they win
// and n's values for them are never decoded.
func (c *shapeChecker) mapping(path string, n *yaml.Node, t reflect.Type, override map[string]bool) {
	fields := yamlFields(t)
	seen := make(map[string]int) // key -> line
	var merges []*yaml.Node      // the "<<" keys
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := deref(n.Content[i]), n.Content[i+1]
		if k == nil {
			c.drop(n, n.Content[i])
			continue
		}
		if isMerge(k) {
			merges = append(merges, n.Content[i])
			continue
		}
		if k.Kind != yaml.ScalarNode {
			c.note(path, "keys must be strings, got %s", kindName(k))
			c.drop(n, n.Content[i])
			continue
		}
		kp := joinKey(path, k.Value)
		ft, ok := fields[k.Value]
		if !ok {
			if k := closestKey(k.Value, slices.Collect(maps.Keys(fields))); k != "" {
				c.add(kp, "unknown key; did you mean %s?", k)
			} else {
				c.add(kp, "unknown key")
			}
			c.drop(n, n.Content[i])
			continue
		}
		if override[k.Value] {
			continue
		}
		if line, dup := seen[k.Value]; dup {
			c.note(kp, "duplicate key (first set on line %d)", line)
			c.drop(n, n.Content[i])
			continue
		}
		seen[k.Value] = k.Line
		if !c.check(kp, v, ft) {
			c.drop(n, n.Content[i])
		}
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
	for _, k := range merges {
		c.merge(path, n, k, t, inner)
	}
}

// merge checks the mappings merged into n by its key k ("<<").
func (c *shapeChecker) merge(path string, n, k *yaml.Node, t reflect.Type, override map[string]bool) {
	var v *yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i] == k {
			v = deref(n.Content[i+1])
		}
	}
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
			c.note(path, `merge key "<<" needs a mapping or a list of mappings`)
			c.drop(n, k)
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
func (c *shapeChecker) leaf(path string, n *yaml.Node, t reflect.Type) bool {
	if n.Kind != yaml.ScalarNode {
		c.add(path, "expected %s, got %s", describeType(t), kindName(n))
		return false
	}
	err := n.Decode(reflect.New(t).Interface())
	if err == nil {
		return true
	}
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		c.add(path, "%s", err.Error()) // from an UnmarshalYAML: already says what is wrong
		return false
	}
	hint := ""
	if n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 {
		hint = " (remove the quotes)"
	}
	c.add(path, "expected %s, got %s%s", describeType(t), kindName(n), hint)
	return false
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

// sectionNames are the top-level keys of the file, from Config's fields.
func sectionNames() []string {
	t := reflect.TypeFor[Config]()
	out := make([]string, 0, t.NumField())
	for i := range t.NumField() {
		if name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); name != "" && name != "-" {
			out = append(out, name)
		}
	}
	return out
}
