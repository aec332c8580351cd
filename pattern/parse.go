package pattern

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"
)

// node is an object pattern: every field must match, and each $or must have
// a matching alternative.
type node struct {
	fields []field
	ors    [][]*node
}

// metaKey names a top-level key that is not data.
type metaKey uint8

const (
	metaNone metaKey = iota
	metaPartitionKey
	metaSequenceNumber
	metaArrival
)

type field struct {
	name string
	path string  // name escaped for gjson
	meta metaKey // top level only
	sub  *node   // an object pattern, or
	leaf []rule  // a list of values, any of which may match
}

const (
	keyData           = "data"
	keyPartitionKey   = "partitionKey"
	keySequenceNumber = "sequenceNumber"
	keyArrival        = "approximateArrivalTimestamp"
	keyOr             = "$or"
)

var topKeys = map[string]metaKey{
	keyData:           metaNone,
	keyPartitionKey:   metaPartitionKey,
	keySequenceNumber: metaSequenceNumber,
	keyArrival:        metaArrival,
}

const topKeyList = "data, partitionKey, sequenceNumber, approximateArrivalTimestamp, $or"

// Parse parses one pattern. The error names the place in the pattern that
// is wrong, as a dotted path (`data.type: "prefix" takes a string`).
func Parse(src string) (*Pattern, error) {
	if len(src) > MaxPatternBytes {
		return nil, fmt.Errorf("pattern is %d bytes, more than the %d allowed", len(src), MaxPatternBytes)
	}
	dec := json.NewDecoder(strings.NewReader(src))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("pattern is empty: write a JSON object such as {\"data\": {\"type\": [\"created\"]}}")
		}
		return nil, fmt.Errorf("pattern is not valid JSON: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("pattern is not valid JSON: text after the closing brace")
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("pattern must be a JSON object, not %s", kindOf(v))
	}
	ps := &parser{}
	root, err := ps.top(obj, "", 1)
	if err != nil {
		return nil, err
	}
	return &Pattern{src: src, root: root, usesData: ps.usesData}, nil
}

type parser struct {
	usesData bool
	values   int
}

// top parses the top level (or a top-level $or alternative at prefix).
func (ps *parser) top(obj map[string]any, prefix string, depth int) (*node, error) {
	if len(obj) == 0 {
		return nil, fmt.Errorf("%sthe pattern has no fields: name at least one of %s", at(prefix), topKeyList)
	}
	n := &node{}
	for _, k := range sortedKeys(obj) {
		val := obj[k]
		place := join(prefix, k)
		if k == keyOr {
			alts, err := ps.or(val, place, depth, ps.top)
			if err != nil {
				return nil, err
			}
			n.ors = append(n.ors, alts)
			continue
		}
		meta, ok := topKeys[k]
		if !ok {
			return nil, fmt.Errorf("%sunknown key %q: a pattern's top-level keys are %s", at(prefix), k, topKeyList)
		}
		f := field{name: k, meta: meta}
		if k == keyData {
			sub, ok := val.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("%s: must be an object of fields of the record's JSON data, such as {\"type\": [\"created\"]}, not %s", place, kindOf(val))
			}
			ps.usesData = true
			var err error
			if f.sub, err = ps.object(sub, place, depth+1); err != nil {
				return nil, err
			}
		} else {
			list, ok := val.([]any)
			if !ok {
				return nil, fmt.Errorf("%s: must be a list of values, such as [\"a\", {\"prefix\": \"b\"}], not %s", place, kindOf(val))
			}
			var err error
			if f.leaf, err = ps.list(list, place); err != nil {
				return nil, err
			}
			if err := checkMetaRules(meta, f.leaf, place); err != nil {
				return nil, err
			}
		}
		n.fields = append(n.fields, f)
	}
	return n, nil
}

// checkMetaRules refuses values that can never match a metadata key's type,
// so that a typo does not silently drop every record.
func checkMetaRules(meta metaKey, rules []rule, place string) error {
	for _, r := range rules {
		switch meta {
		case metaPartitionKey, metaSequenceNumber:
			switch r.kind {
			case kNumber, kNumeric, kBool, kNull:
				return fmt.Errorf("%s: is a string and never matches a number, boolean, null or \"numeric\": quote the value", place)
			}
		case metaArrival:
			switch r.kind {
			case kString, kPrefix, kPrefixFold, kSuffix, kSuffixFold, kEqualsFold, kBool, kNull:
				return fmt.Errorf("%s: is a number (epoch seconds, such as 1545084650.987) and matches only numbers, \"numeric\", \"anything-but\" and \"exists\"", place)
			}
		}
	}
	return nil
}

// object parses an object pattern inside data.
func (ps *parser) object(obj map[string]any, place string, depth int) (*node, error) {
	if depth > MaxDepth {
		return nil, fmt.Errorf("%s: nested deeper than %d levels", place, MaxDepth)
	}
	if len(obj) == 0 {
		return nil, fmt.Errorf("%s: an empty object matches nothing: name at least one field", place)
	}
	n := &node{}
	for _, k := range sortedKeys(obj) {
		val := obj[k]
		fplace := join(place, k)
		if k == keyOr {
			alts, err := ps.or(val, fplace, depth, ps.object)
			if err != nil {
				return nil, err
			}
			n.ors = append(n.ors, alts)
			continue
		}
		f := field{name: k, path: gjson.Escape(k)}
		switch val := val.(type) {
		case map[string]any:
			sub, err := ps.object(val, fplace, depth+1)
			if err != nil {
				return nil, err
			}
			f.sub = sub
		case []any:
			leaf, err := ps.list(val, fplace)
			if err != nil {
				return nil, err
			}
			f.leaf = leaf
		default:
			return nil, fmt.Errorf("%s: must be a list of values, such as [%s], or an object of fields, not %s", fplace, jsonText(val), kindOf(val))
		}
		n.fields = append(n.fields, f)
	}
	return n, nil
}

// or parses a $or: a list of at least two alternatives, each an object
// parsed by sub at the same level.
func (ps *parser) or(val any, place string, depth int, sub func(map[string]any, string, int) (*node, error)) ([]*node, error) {
	list, ok := val.([]any)
	if !ok || len(list) < 2 {
		return nil, fmt.Errorf("%s: must be a list of at least two objects, such as [{\"a\": [\"x\"]}, {\"b\": [\"y\"]}]", place)
	}
	if depth+1 > MaxDepth {
		return nil, fmt.Errorf("%s: nested deeper than %d levels", place, MaxDepth)
	}
	alts := make([]*node, 0, len(list))
	for i, item := range list {
		obj, ok := item.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s[%d]: must be an object, not %s", place, i, kindOf(item))
		}
		n, err := sub(obj, fmt.Sprintf("%s[%d]", place, i), depth+1)
		if err != nil {
			return nil, err
		}
		alts = append(alts, n)
	}
	return alts, nil
}

// list parses a field's list of values.
func (ps *parser) list(list []any, place string) ([]rule, error) {
	if len(list) == 0 {
		return nil, fmt.Errorf("%s: an empty list matches nothing: list at least one value", place)
	}
	ps.values += len(list)
	if ps.values > MaxValues {
		return nil, fmt.Errorf("%s: the pattern has more than %d values", place, MaxValues)
	}
	rules := make([]rule, 0, len(list))
	for _, item := range list {
		r, err := parseValue(item, place)
		if err != nil {
			return nil, err
		}
		rules = append(rules, r)
	}
	return rules, nil
}

func parseValue(item any, place string) (rule, error) {
	switch v := item.(type) {
	case string:
		return rule{kind: kString, s: v}, nil
	case json.Number:
		return numberRule(kNumber, v), nil
	case bool:
		return rule{kind: kBool, b: v}, nil
	case nil:
		return rule{kind: kNull}, nil
	case map[string]any:
		return parseOperator(v, place)
	default:
		return rule{}, fmt.Errorf("%s: a list of values holds strings, numbers, true, false, null or operator objects, not %s", place, kindOf(item))
	}
}

// numberRule keeps a number literal's text and, when a float64 holds it
// exactly, its value. As in event-ruler, a literal such as an account number
// that a float64 would round is compared by its text only, so that distinct
// numbers never compare equal.
func numberRule(kind ruleKind, n json.Number) rule {
	r := rule{kind: kind, s: n.String()}
	r.num, r.numOK = exactFloat(r.s)
	return r
}

// exactFloat parses s and reports whether the float64 stands for exactly the
// number s writes.
func exactFloat(s string) (float64, bool) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, false
	}
	want, ok := new(big.Rat).SetString(s)
	if !ok {
		return 0, false
	}
	// The shortest decimal that reads back as f, as Java's BigDecimal.valueOf
	// gives event-ruler.
	got, ok := new(big.Rat).SetString(strconv.FormatFloat(f, 'g', -1, 64))
	return f, ok && got.Cmp(want) == 0
}

const operatorList = `"prefix", "suffix", "equals-ignore-case", "anything-but", "numeric", "exists"`

func parseOperator(obj map[string]any, place string) (rule, error) {
	if len(obj) != 1 {
		return rule{}, fmt.Errorf("%s: an operator object has exactly one key (one of %s), not %d", place, operatorList, len(obj))
	}
	var op string
	var arg any
	for op, arg = range obj {
	}
	switch op {
	case "prefix", "suffix":
		s, fold, err := affixOperand(arg)
		if err != nil {
			return rule{}, fmt.Errorf("%s: %q %v", place, op, err)
		}
		kind := kSuffix
		if op == "prefix" {
			kind = kPrefix
		}
		if fold {
			kind++ // the folding variant follows each kind
		}
		return rule{kind: kind, s: s}, nil
	case "equals-ignore-case":
		s, ok := arg.(string)
		if !ok {
			return rule{}, fmt.Errorf("%s: \"equals-ignore-case\" takes a string, not %s", place, kindOf(arg))
		}
		return rule{kind: kEqualsFold, s: s}, nil
	case "exists":
		b, ok := arg.(bool)
		if !ok {
			return rule{}, fmt.Errorf("%s: \"exists\" takes true or false, not %s", place, kindOf(arg))
		}
		return rule{kind: kExists, b: b}, nil
	case "numeric":
		return parseNumeric(arg, place)
	case "anything-but":
		return parseAnythingBut(arg, place)
	case "wildcard", "cidr":
		return rule{}, fmt.Errorf("%s: operator %q is not one Lambda filters support; use one of %s", place, op, operatorList)
	default:
		return rule{}, fmt.Errorf("%s: unknown operator %q: operators are %s", place, op, operatorList)
	}
}

// affixOperand reads the operand of prefix or suffix: a string, or
// {"equals-ignore-case": string}.
func affixOperand(arg any) (s string, fold bool, err error) {
	switch v := arg.(type) {
	case string:
		return v, false, nil
	case map[string]any:
		if s, ok := v["equals-ignore-case"].(string); ok && len(v) == 1 {
			return s, true, nil
		}
	}
	return "", false, fmt.Errorf("takes a string or {\"equals-ignore-case\": string}, not %s", kindOf(arg))
}

func parseNumeric(arg any, place string) (rule, error) {
	list, ok := arg.([]any)
	if !ok || (len(list) != 2 && len(list) != 4) {
		return rule{}, fmt.Errorf("%s: \"numeric\" takes [op, number] or [lower-op, number, upper-op, number], such as [\">\", 0, \"<=\", 5]", place)
	}
	r := rule{kind: kNumeric}
	for i := 0; i < len(list); i += 2 {
		op, ok := list[i].(string)
		if !ok {
			return rule{}, fmt.Errorf("%s: \"numeric\" operator %d must be one of \"=\", \"<\", \"<=\", \">\", \">=\", not %s", place, i/2+1, kindOf(list[i]))
		}
		num, ok := list[i+1].(json.Number)
		if !ok {
			return rule{}, fmt.Errorf("%s: \"numeric\" %q takes a number, not %s", place, op, kindOf(list[i+1]))
		}
		f, ok := exactFloat(num.String())
		if !ok {
			return rule{}, fmt.Errorf("%s: \"numeric\" %q: %s is not exactly a 64-bit float, so it cannot be compared", place, op, num)
		}
		switch {
		case op == "=" && len(list) == 2:
			r.hasLo, r.loIncl, r.lo, r.hasHi, r.hiIncl, r.hi = true, true, f, true, true, f
		case op == "=":
			return rule{}, fmt.Errorf("%s: \"numeric\" \"=\" stands alone: [\"=\", number]", place)
		case (op == ">" || op == ">=") && i == 0:
			r.hasLo, r.loIncl, r.lo = true, op == ">=", f
		case (op == "<" || op == "<=") && (i == 0) == (len(list) == 2):
			r.hasHi, r.hiIncl, r.hi = true, op == "<=", f
		case op == ">" || op == ">=" || op == "<" || op == "<=":
			return rule{}, fmt.Errorf("%s: \"numeric\" range is [lower-op, number, upper-op, number], lower bound first, such as [\">\", 0, \"<=\", 5]", place)
		default:
			return rule{}, fmt.Errorf("%s: unknown \"numeric\" operator %q: use \"=\", \"<\", \"<=\", \">\" or \">=\"", place, op)
		}
	}
	if len(list) == 4 && r.lo >= r.hi {
		return rule{}, fmt.Errorf("%s: \"numeric\" range is empty: its lower bound must be below its upper bound", place)
	}
	return r, nil
}

func parseAnythingBut(arg any, place string) (rule, error) {
	but := &anythingBut{}
	bad := func() (rule, error) {
		return rule{}, fmt.Errorf("%s: \"anything-but\" takes a string, a number, a list of only strings or only numbers, or an object {\"prefix\"|\"suffix\": string} or {\"equals-ignore-case\": string or list of strings}, not %s", place, kindOf(arg))
	}
	switch v := arg.(type) {
	case string:
		but.strs = []string{v}
	case json.Number:
		but.nums = []rule{numberRule(kNumber, v)}
	case []any:
		if len(v) == 0 {
			return rule{}, fmt.Errorf("%s: \"anything-but\" has an empty list: list at least one value", place)
		}
		for _, item := range v {
			switch item := item.(type) {
			case string:
				but.strs = append(but.strs, item)
			case json.Number:
				but.nums = append(but.nums, numberRule(kNumber, item))
			default:
				return bad()
			}
		}
		if len(but.strs) > 0 && len(but.nums) > 0 {
			return rule{}, fmt.Errorf("%s: \"anything-but\" list mixes strings and numbers: list only strings or only numbers", place)
		}
	case map[string]any:
		if len(v) != 1 {
			return bad()
		}
		for op, operand := range v {
			switch op {
			case "prefix", "suffix":
				affixes, ok := stringList(operand)
				if !ok || slices.Contains(affixes, "") {
					return rule{}, fmt.Errorf("%s: \"anything-but\" %q takes a non-empty string or a non-empty list of them", place, op)
				}
				if op == "prefix" {
					but.prefixes = affixes
				} else {
					but.suffixes = affixes
				}
			case "equals-ignore-case":
				folds, ok := stringList(operand)
				if !ok {
					return rule{}, fmt.Errorf("%s: \"anything-but\" \"equals-ignore-case\" takes a string or a non-empty list of strings, not %s", place, kindOf(operand))
				}
				but.folds = folds
			default:
				return rule{}, fmt.Errorf("%s: \"anything-but\" takes \"prefix\", \"suffix\" or \"equals-ignore-case\" in an object, not %q", place, op)
			}
		}
	default:
		return bad()
	}
	return rule{kind: kAnythingBut, but: but}, nil
}

func stringList(v any) ([]string, bool) {
	switch v := v.(type) {
	case string:
		return []string{v}, true
	case []any:
		out := make([]string, 0, len(v))
		for _, item := range v {
			s, ok := item.(string)
			if !ok {
				return nil, false
			}
			out = append(out, s)
		}
		return out, len(out) > 0
	}
	return nil, false
}

func sortedKeys(obj map[string]any) []string {
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func join(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

// at is the place prefix of a top-level message.
func at(prefix string) string {
	if prefix == "" {
		return ""
	}
	return prefix + ": "
}

func kindOf(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case json.Number:
		return "a number"
	case string:
		return "a string"
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

func jsonText(v any) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return "..."
	}
	return strings.TrimSpace(b.String())
}
