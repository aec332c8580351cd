package pattern

import (
	"testing"
	"time"

	"github.com/tidwall/gjson"
)

// FuzzPattern parses an arbitrary pattern and matches it against arbitrary
// data: neither may panic, a pattern that parses prints back its source, and
// a pattern with a data part never matches data that is not JSON.
func FuzzPattern(f *testing.F) {
	for _, row := range conformanceRows {
		f.Add(row.pattern, row.data, row.pk)
	}
	for _, tc := range zeroAllocPatterns {
		f.Add(tc.pattern, record1KiB, "vip-1")
	}
	f.Add(`{"data": {"a": [{"numeric": [">", -1e308, "<", 1e308]}]}}`, `{"a": [[[1e400]]]}`, "")
	f.Add(`{"data": {"a": {"b": [{"exists": false}]}}}`, `[[{"a": []}], 1, "x"]`, "")
	f.Add(`{"data": {"$or": [{"a": [""]}, {"": [null]}]}}`, `{"": null, "a": "\ud800"}`, "")
	f.Fuzz(func(t *testing.T, src, data, pk string) {
		p, err := Parse(src)
		if err != nil {
			if p != nil {
				t.Fatalf("Parse returned a pattern and an error %v", err)
			}
			return
		}
		if p.String() != src {
			t.Fatalf("String() = %q, want %q", p.String(), src)
		}
		in := &Input{Data: []byte(data), JSON: gjson.Valid(data), PartitionKey: pk, SequenceNumber: pk, ArrivalTime: time.Unix(int64(len(data)), 0)}
		got := p.Match(in)
		if got && p.UsesData() && !in.JSON {
			t.Fatalf("pattern %s with a data part matched data that is not JSON: %q", src, data)
		}
		if (Filter{p}).Match(in) != got {
			t.Fatal("Filter.Match disagrees with Pattern.Match")
		}
		// Matching must not depend on the caller's claim alone: data the caller
		// did not validate is read without panicking too.
		in.JSON = true
		p.Match(in)
	})
}
