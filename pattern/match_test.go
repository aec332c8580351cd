package pattern

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"
)

func mustParse(t testing.TB, src string) *Pattern {
	t.Helper()
	p, err := Parse(src)
	if err != nil {
		t.Fatalf("Parse(%s): %v", src, err)
	}
	return p
}

func jsonInput(data string) *Input {
	return &Input{Data: []byte(data), JSON: gjson.Valid(data), PartitionKey: "vip-1", SequenceNumber: "4959", ArrivalTime: time.UnixMilli(1545084650987)}
}

func TestKeysNeedingEscapes(t *testing.T) {
	p := mustParse(t, `{"data": {"a.b": ["x"], "": ["e"], "@c": ["m"], "d*": ["w"], "#": [1]}}`)
	if !p.Match(jsonInput(`{"a.b": "x", "": "e", "@c": "m", "d*": "w", "#": 1}`)) {
		t.Error("keys with path characters do not match themselves")
	}
	if p.Match(jsonInput(`{"a": {"b": "x"}, "": "e", "@c": "m", "d*": "w", "#": 1}`)) {
		t.Error(`"a.b" matched the path a.b`)
	}
	if p.Match(jsonInput(`{"a.b": "x", "@c": "m", "d*": "w", "#": 1}`)) {
		t.Error(`"" matched a missing key`)
	}
}

func TestEscapedStrings(t *testing.T) {
	p := mustParse(t, `{"data": {"s": ["a\"b\u00e9"], "t": [{"prefix": "line\n"}]}}`)
	if !p.Match(jsonInput(`{"s": "a\"b\u00e9", "t": "line\nnext"}`)) {
		t.Error("escaped data strings do not match their decoded value")
	}
	if !p.Match(jsonInput(`{"s": "a\"bé", "t": "line\u000anext"}`)) {
		t.Error("escaped and literal forms differ")
	}
}

func TestFoldUnicode(t *testing.T) {
	p := mustParse(t, `{"data": {"s": [{"prefix": {"equals-ignore-case": "straße"}}], "t": [{"suffix": {"equals-ignore-case": "ΣΑΣ"}}], "k": [{"equals-ignore-case": "k"}]}}`)
	if !p.Match(jsonInput(`{"s": "STRAßE-1", "t": "x-σας", "k": "\u212a"}`)) {
		t.Error("case folding misses non-ASCII letters")
	}
	if p.Match(jsonInput(`{"s": "STRASSE-1", "t": "x-σας", "k": "k"}`)) {
		t.Error("case folding matched a different string")
	}
}

// zeroAllocPatterns read only scalars (strings without escapes, numbers,
// booleans) and must match without allocating.
var zeroAllocPatterns = []struct {
	name, pattern string
}{
	{"exact", `{"data": {"type": ["order.created"]}}`},
	{"list", `{"data": {"type": ["a", "b", "order.created"], "flag": [true]}}`},
	{"prefix", `{"data": {"type": [{"prefix": "order."}]}}`},
	{"suffix-ignore-case", `{"data": {"type": [{"suffix": {"equals-ignore-case": ".CREATED"}}]}}`},
	{"numeric-range", `{"data": {"amount": [{"numeric": [">", 10, "<=", 500]}]}}`},
	{"number-literal", `{"data": {"amount": [250.0]}}`},
	{"anything-but", `{"data": {"status": [{"anything-but": ["cancelled", "failed"]}]}}`},
	{"nested", `{"data": {"customer": {"address": {"country": ["DE"]}, "tier": [{"prefix": "gold"}]}}}`},
	{"array-of-objects", `{"data": {"items": {"sku": ["sku-3"], "qty": [{"numeric": [">=", 2]}]}}}`},
	{"array-of-scalars", `{"data": {"tags": ["urgent"]}}`},
	{"exists", `{"data": {"customer": {"id": [{"exists": true}]}, "coupon": [{"exists": false}]}}`},
	{"or", `{"data": {"$or": [{"type": ["x"]}, {"amount": [{"numeric": ["<", 1000]}]}]}}`},
	{"metadata", `{"partitionKey": [{"prefix": "vip-"}], "sequenceNumber": [{"exists": true}], "approximateArrivalTimestamp": [{"numeric": [">", 1500000000]}]}`},
	{"metadata-and-data", `{"$or": [{"partitionKey": ["std"]}, {"data": {"type": ["order.created"]}}]}`},
}

// record1KiB is a 1 KiB JSON order record.
var record1KiB = func() string {
	var b strings.Builder
	b.WriteString(`{"type": "order.created", "flag": true, "amount": 250, "status": "paid", "tags": ["new", "urgent"],`)
	b.WriteString(`"customer": {"id": "c-1234", "tier": "gold-plus", "address": {"street": "Main Street 1", "city": "Berlin", "country": "DE"}},`)
	b.WriteString(`"items": [`)
	for i := 1; i <= 6; i++ {
		if i > 1 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"sku": "sku-%d", "qty": %d, "price": %d.99, "name": "an item with a longer name %d"}`, i, i, i*10, i)
	}
	b.WriteString(`], "note": "`)
	for b.Len() < 1022 {
		b.WriteString("x")
	}
	b.WriteString(`"}`)
	return b.String()
}()

func TestMatchDoesNotAllocate(t *testing.T) {
	if len(record1KiB) != 1024 || !gjson.Valid(record1KiB) {
		t.Fatalf("record is %d bytes, valid %v", len(record1KiB), gjson.Valid(record1KiB))
	}
	in := jsonInput(record1KiB)
	for _, tc := range zeroAllocPatterns {
		p := mustParse(t, tc.pattern)
		if !p.Match(in) {
			t.Errorf("%s: does not match the record", tc.name)
			continue
		}
		if allocs := testing.AllocsPerRun(200, func() { p.Match(in) }); allocs != 0 {
			t.Errorf("%s: %v allocations per match, want 0", tc.name, allocs)
		}
	}
	f, errs := ParseFilter([]string{zeroAllocPatterns[1].pattern, zeroAllocPatterns[7].pattern})
	if errs != nil {
		t.Fatal(errs)
	}
	if allocs := testing.AllocsPerRun(200, func() { f.Match(in) }); allocs != 0 {
		t.Errorf("filter: %v allocations per match, want 0", allocs)
	}
}

// BenchmarkFilter1KiB matches a 1 KiB JSON record against a filter of two
// patterns, the first of which does not match.
func BenchmarkFilter1KiB(b *testing.B) {
	f, errs := ParseFilter([]string{
		`{"data": {"type": ["order.cancelled", {"prefix": "refund."}]}}`,
		`{"data": {"customer": {"tier": [{"prefix": "gold"}], "address": {"country": ["DE", "AT"]}}, "amount": [{"numeric": [">", 100]}]}}`,
	})
	if errs != nil {
		b.Fatal(errs)
	}
	in := jsonInput(record1KiB)
	if !f.Match(in) {
		b.Fatal("no match")
	}
	b.SetBytes(int64(len(record1KiB)))
	b.ReportAllocs()
	for b.Loop() {
		if !f.Match(in) {
			b.Fatal("no match")
		}
	}
}
