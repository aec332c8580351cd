// Package pattern owns the filter patterns of a stream: the JSON pattern
// syntax of Lambda's event source mapping FilterCriteria (the EventBridge
// pattern subset Lambda documents), parsed once and matched against each
// record without allocating when the fields it reads are plain scalars.
//
// A pattern's top-level keys are the names Lambda's Kinesis event gives a
// record: data (the record's data as JSON, the only key Lambda filters a
// Kinesis record on) and, beyond Lambda, partitionKey, sequenceNumber and
// approximateArrivalTimestamp (epoch seconds with a millisecond fraction).
//
// Semantics follow the EventBridge reference implementation (aws/event-ruler)
// where the documentation is silent: a field matches if any listed value
// matches; an array in the data matches if any element does, and the fields
// of one object pattern must all match within the same array element; a
// number literal matches a data number of equal value (300 matches 300.0 and
// 3e2), or of the same text when a float64 cannot hold the literal exactly;
// exists matches leaves only (an object is not a leaf).
package pattern

import (
	"fmt"
	"time"
	"unsafe"

	"github.com/tidwall/gjson"
)

// Bounds on one pattern, so that a configuration cannot make parsing or
// matching arbitrarily expensive. Lambda itself caps a pattern at 4096
// characters; these leave room for the metadata keys and formatting.
const (
	// MaxPatternBytes is the longest pattern source accepted.
	MaxPatternBytes = 16 << 10
	// MaxDepth is the deepest nesting of objects ($or alternatives count
	// as a level) a pattern may have.
	MaxDepth = 32
	// MaxValues is the most leaf values (literals and operators) a pattern
	// may hold in all.
	MaxValues = 1024
)

// Input is what a pattern sees of one record.
type Input struct {
	Data           []byte // the record's data (after payload decoding)
	JSON           bool   // the caller checked Data is valid JSON (payload.ValidJSON: nested at most 1024 deep, so that matching never recurses deeper); false: Data is not JSON
	PartitionKey   string
	SequenceNumber string
	ArrivalTime    time.Time // approximateArrivalTimestamp; zero when unknown
}

// Pattern is one parsed filter pattern.
type Pattern struct {
	src      string
	root     *node
	usesData bool
}

// String returns the pattern's source.
func (p *Pattern) String() string { return p.src }

// UsesData reports whether the pattern looks at the record's data.
func (p *Pattern) UsesData() bool { return p.usesData }

// Match reports whether the record matches the pattern.
//
// A pattern with a data part never matches data that is not JSON, as Lambda
// drops such a record; a pattern only on metadata matches on the metadata.
func (p *Pattern) Match(in *Input) bool {
	var doc gjson.Result
	if p.usesData {
		if !in.JSON {
			return false
		}
		doc = gjson.Parse(bytesString(in.Data))
	}
	return matchTop(p.root, in, doc)
}

// Filter is a stream's list of patterns: a record passes if any matches.
type Filter []*Pattern

// ParseError is the error of one invalid pattern of a list.
type ParseError struct {
	Index int   // the pattern's index in the list
	Err   error // what is wrong, naming the place in the pattern
}

func (e *ParseError) Error() string { return fmt.Sprintf("filter[%d]: %v", e.Index, e.Err) }

func (e *ParseError) Unwrap() error { return e.Err }

// ParseFilter parses every pattern of a list. It returns one *ParseError per
// invalid pattern, in order; the Filter is nil when any pattern is invalid.
func ParseFilter(srcs []string) (Filter, []error) {
	var errs []error
	f := make(Filter, 0, len(srcs))
	for i, src := range srcs {
		p, err := Parse(src)
		if err != nil {
			errs = append(errs, &ParseError{Index: i, Err: err})
			continue
		}
		f = append(f, p)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return f, nil
}

// Match reports whether the record passes: f is empty or a pattern matches.
func (f Filter) Match(in *Input) bool {
	if len(f) == 0 {
		return true
	}
	for _, p := range f {
		if p.Match(in) {
			return true
		}
	}
	return false
}

// UsesData reports whether some pattern looks at the record's data, so the
// caller knows to validate the data as JSON first.
func (f Filter) UsesData() bool {
	for _, p := range f {
		if p.usesData {
			return true
		}
	}
	return false
}

// bytesString views b as a string without copying; the matcher only reads
// it while Match runs.
func bytesString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(unsafe.SliceData(b), len(b))
}
