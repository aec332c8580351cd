package payload

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestValidJSON(t *testing.T) {
	t.Parallel()
	for _, in := range []string{
		`{}`, ` {"a": [1, 2.5e3, -0, true, false, null, "s\u00e9\n"]} `, `[]`, `"x"`, `0`, `null`,
		`{"a":{"b":{"c":[[[[{}]]]]}}}`, strings.Repeat("[", 1024) + strings.Repeat("]", 1024),
	} {
		if !ValidJSON([]byte(in)) || !json.Valid([]byte(in)) {
			t.Errorf("%.40q: ValidJSON %t, encoding/json %t; want both true", in, ValidJSON([]byte(in)), json.Valid([]byte(in)))
		}
	}
	for _, in := range []string{
		``, ` `, `{`, `{"a":1,}`, `{"a":1}{}`, `{"a":1} x`, `[1,]`, `{'a':1}`, `{"a":01}`, "{\"a\":\"\x01\"}",
		`{"a":tru}`, `{"a":"\x"}`, `nul`, `{"a" 1}`, `{1:2}`,
		strings.Repeat("[", 1025) + strings.Repeat("]", 1025),
	} {
		if ValidJSON([]byte(in)) {
			t.Errorf("%.40q: ValidJSON true, want false", in)
		}
	}
	// A hostile record nests without end: refused at once, no stack used.
	deep := append([]byte(`{"a":`), bytes.Repeat([]byte("["), 10<<20)...)
	if ValidJSON(deep) {
		t.Fatal("10 MiB of '[' is valid")
	}
}

func FuzzValidJSON(f *testing.F) {
	for _, s := range []string{`{"a":[1,{"b":null}]}`, `[`, `"\ud800"`, `1e5`, `{"a":1,}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got := ValidJSON(data)
		if bytes.Count(data, []byte("["))+bytes.Count(data, []byte("{")) > MaxJSONDepth {
			return // encoding/json has no depth limit this low
		}
		if want := json.Valid(data); got != want {
			t.Fatalf("ValidJSON(%q) = %t, encoding/json says %t", data, got, want)
		}
	})
}

func BenchmarkValidJSON(b *testing.B) {
	data := []byte(`{"type":"order.created","customer":{"id":"c-12345","tier":"gold"},"items":[` +
		strings.Repeat(`{"sku":"SKU-000001","qty":1,"price":12.5},`, 20) + `{"sku":"last"}],"note":"` + strings.Repeat("x", 100) + `"}`)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if !ValidJSON(data) {
			b.Fatal("invalid")
		}
	}
}
