package pattern

import (
	"math"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/tidwall/gjson"
)

type ruleKind uint8

const (
	kString ruleKind = iota
	kNumber
	kBool
	kNull
	kPrefix
	kPrefixFold // follows kPrefix
	kSuffix
	kSuffixFold // follows kSuffix
	kEqualsFold
	kAnythingBut
	kNumeric
	kExists
)

// rule is one value of a field's list, all its operands precomputed.
type rule struct {
	kind  ruleKind
	s     string  // string operand, or a number literal's text
	num   float64 // a number literal's value, when numOK
	numOK bool
	b     bool // kBool's value, kExists's operand

	lo, hi         float64 // kNumeric
	hasLo, hasHi   bool
	loIncl, hiIncl bool

	but *anythingBut
}

type anythingBut struct {
	strs     []string
	nums     []rule // kNumber rules
	folds    []string
	prefixes []string
	suffixes []string
}

// matchTop matches the top level: metadata keys against the record's
// metadata, data against the parsed document.
func matchTop(n *node, in *Input, doc gjson.Result) bool {
	for i := range n.fields {
		f := &n.fields[i]
		var v gjson.Result
		switch f.meta {
		case metaNone:
			if !matchObject(f.sub, doc) {
				return false
			}
			continue
		case metaPartitionKey:
			v = gjson.Result{Type: gjson.String, Str: in.PartitionKey}
		case metaSequenceNumber:
			v = gjson.Result{Type: gjson.String, Str: in.SequenceNumber}
		case metaArrival:
			if !in.ArrivalTime.IsZero() {
				v = gjson.Result{Type: gjson.Number, Num: float64(in.ArrivalTime.UnixMilli()) / 1000}
			}
		}
		if !matchLeaf(f.leaf, v) {
			return false
		}
	}
	for _, alts := range n.ors {
		ok := false
		for _, alt := range alts {
			if matchTop(alt, in, doc) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// matchObject matches an object pattern against a value: an array matches if
// one of its elements does, so that the fields of one object pattern all
// match within one element.
func matchObject(n *node, v gjson.Result) bool {
	if !v.IsArray() {
		return matchFields(n, v)
	}
	matched, elements := false, 0
	v.ForEach(func(_, e gjson.Result) bool {
		elements++
		matched = matchObject(n, e)
		return !matched
	})
	if elements == 0 {
		return matchFields(n, gjson.Result{})
	}
	return matched
}

// matchFields matches an object pattern against one value that is not an
// array; a value that is not an object has none of the fields.
func matchFields(n *node, v gjson.Result) bool {
	isObject := v.IsObject()
	for i := range n.fields {
		f := &n.fields[i]
		var fv gjson.Result
		if isObject {
			fv = lookup(v, f)
		}
		if f.sub != nil {
			if !matchObject(f.sub, fv) {
				return false
			}
		} else if !matchLeaf(f.leaf, fv) {
			return false
		}
	}
	for _, alts := range n.ors {
		ok := false
		for _, alt := range alts {
			if matchFields(alt, v) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

func lookup(obj gjson.Result, f *field) gjson.Result {
	if f.path != "" {
		return obj.Get(f.path)
	}
	// The empty key has no gjson path.
	var out gjson.Result
	obj.ForEach(func(k, v gjson.Result) bool {
		if k.Str == "" {
			out = v
			return false
		}
		return true
	})
	return out
}

// matchLeaf matches a field's list of values. A missing field and an object
// (not a leaf) match only {"exists": false}; an array matches if one of its
// scalars (at any nesting of arrays) does.
func matchLeaf(rules []rule, v gjson.Result) bool {
	switch {
	case !v.Exists(), v.IsObject():
		return matchAbsent(rules)
	case v.IsArray():
		scalars, ok := matchArray(rules, v)
		if scalars == 0 {
			return matchAbsent(rules)
		}
		return ok
	default:
		return matchScalar(rules, v)
	}
}

func matchArray(rules []rule, v gjson.Result) (scalars int, ok bool) {
	v.ForEach(func(_, e gjson.Result) bool {
		switch {
		case e.IsArray():
			n, m := matchArray(rules, e)
			scalars += n
			ok = m
		case e.IsObject():
		default:
			scalars++
			ok = matchScalar(rules, e)
		}
		return !ok
	})
	return scalars, ok
}

func matchAbsent(rules []rule) bool {
	for i := range rules {
		if rules[i].kind == kExists && !rules[i].b {
			return true
		}
	}
	return false
}

func matchScalar(rules []rule, v gjson.Result) bool {
	for i := range rules {
		if rules[i].matches(v) {
			return true
		}
	}
	return false
}

// matches reports whether the rule matches one scalar value.
func (r *rule) matches(v gjson.Result) bool {
	switch r.kind {
	case kString:
		return v.Type == gjson.String && v.Str == r.s
	case kNumber:
		return r.equalNumber(v)
	case kBool:
		return (r.b && v.Type == gjson.True) || (!r.b && v.Type == gjson.False)
	case kNull:
		return v.Type == gjson.Null
	case kPrefix:
		return v.Type == gjson.String && strings.HasPrefix(v.Str, r.s)
	case kPrefixFold:
		return v.Type == gjson.String && hasPrefixFold(v.Str, r.s)
	case kSuffix:
		return v.Type == gjson.String && strings.HasSuffix(v.Str, r.s)
	case kSuffixFold:
		return v.Type == gjson.String && hasSuffixFold(v.Str, r.s)
	case kEqualsFold:
		return v.Type == gjson.String && strings.EqualFold(v.Str, r.s)
	case kAnythingBut:
		return !r.but.excludes(v)
	case kNumeric:
		return v.Type == gjson.Number && r.inRange(v.Num)
	case kExists:
		return r.b
	}
	return false
}

// equalNumber compares a number literal with a value: by text always, and by
// value when the literal is exactly a float64.
func (r *rule) equalNumber(v gjson.Result) bool {
	if v.Type != gjson.Number {
		return false
	}
	if v.Raw != "" && v.Raw == r.s {
		return true
	}
	return r.numOK && v.Num == r.num
}

func (r *rule) inRange(x float64) bool {
	if math.IsNaN(x) {
		return false
	}
	if r.hasLo && (x < r.lo || (x == r.lo && !r.loIncl)) {
		return false
	}
	if r.hasHi && (x > r.hi || (x == r.hi && !r.hiIncl)) {
		return false
	}
	return true
}

// excludes reports whether a present scalar is one anything-but names.
func (a *anythingBut) excludes(v gjson.Result) bool {
	if v.Type == gjson.Number {
		for i := range a.nums {
			if a.nums[i].equalNumber(v) {
				return true
			}
		}
		return false
	}
	if v.Type != gjson.String {
		return false
	}
	s := v.Str
	for _, x := range a.strs {
		if s == x {
			return true
		}
	}
	for _, x := range a.folds {
		if strings.EqualFold(s, x) {
			return true
		}
	}
	for _, x := range a.prefixes {
		if strings.HasPrefix(s, x) {
			return true
		}
	}
	for _, x := range a.suffixes {
		if strings.HasSuffix(s, x) {
			return true
		}
	}
	return false
}

// hasPrefixFold is strings.HasPrefix under Unicode simple case folding.
func hasPrefixFold(s, prefix string) bool {
	for prefix != "" {
		if s == "" {
			return false
		}
		a, na := utf8.DecodeRuneInString(s)
		b, nb := utf8.DecodeRuneInString(prefix)
		if !equalRuneFold(a, b) {
			return false
		}
		s, prefix = s[na:], prefix[nb:]
	}
	return true
}

// hasSuffixFold is strings.HasSuffix under Unicode simple case folding.
func hasSuffixFold(s, suffix string) bool {
	for suffix != "" {
		if s == "" {
			return false
		}
		a, na := utf8.DecodeLastRuneInString(s)
		b, nb := utf8.DecodeLastRuneInString(suffix)
		if !equalRuneFold(a, b) {
			return false
		}
		s, suffix = s[:len(s)-na], suffix[:len(suffix)-nb]
	}
	return true
}

func equalRuneFold(a, b rune) bool {
	if a == b {
		return true
	}
	for f := unicode.SimpleFold(a); f != a; f = unicode.SimpleFold(f) {
		if f == b {
			return true
		}
	}
	return false
}
