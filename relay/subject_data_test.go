package relay

import (
	"bytes"
	"strings"
	"testing"
)

func TestRenderDataFields(t *testing.T) {
	t.Parallel()
	tmpl, err := ParseSubjectTemplate("orders.{data.type}.{data.customer.id}")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		data, want string
		fellBack   bool
	}{
		{`{"type":"order.created","customer":{"id":"c-1"}}`, "orders.order%2Ecreated.c-1", false},
		{`{"type":"refund","customer":{"id":42}}`, "orders.refund.42", false},
		{`{"type":true,"customer":{"id":1.5e3}}`, "orders.true.1%2E5e3", false},
		{` {"type":"a b*>","customer":{"id":"ключ"}}`, "orders.a%20b%2A%3E.ключ", false},
		{`{"type":"\u002e\n","customer":{"id":"x"}}`, "orders.%2E%0A.x", false},
		{`{"type":"","customer":{"id":"_"}}`, "orders._.%5F", false},
		// Missing, null, object, array: the fallback token.
		{`{"customer":{"id":"c-1"}}`, "orders._.c-1", true},
		{`{"type":null,"customer":{"id":"c-1"}}`, "orders._.c-1", true},
		{`{"type":{"a":1},"customer":{"id":"c-1"}}`, "orders._.c-1", true},
		{`{"type":["a"],"customer":"c-1"}`, "orders._._", true},
		// Data that is not a JSON object.
		{`not json`, "orders._._", true},
		{``, "orders._._", true},
		{`["type"]`, "orders._._", true},
		{`"type"`, "orders._._", true},
		{`{"type":"a","customer":{"id":"c-1"}`, "orders._._", true}, // truncated
		{`{"type":"a"} trailing`, "orders._._", true},
	} {
		got, fellBack := tmpl.RenderCounting(nil, SubjectValues{Data: []byte(tc.data)})
		if string(got) != tc.want || fellBack != tc.fellBack {
			t.Errorf("data %s: subject %q (fallback %t), want %q (%t)", tc.data, got, fellBack, tc.want, tc.fellBack)
		}
		assertPublishSubject(t, string(got), 3)
	}
}

func TestRenderDataPaths(t *testing.T) {
	t.Parallel()
	data := []byte(`{"items":[{"sku":"A-1"},{"sku":"B-2"}],"a.b":"dotted","@x":"at","k#":"hash","0":"zero","n":{"m":{"o":"deep"}}}`)
	for _, tc := range []struct{ template, want string }{
		{"s.{data.items.0.sku}", "s.A-1"},
		{"s.{data.items.1.sku}", "s.B-2"},
		{"s.{data.items.2.sku}", "s._"},
		{"s.{data.items.#}", "s._"}, // '#' is a key here, not gjson's count
		{"s.{data.@x}", "s.at"},
		{"s.{data.k#}", "s.hash"},
		{"s.{data.0}", "s.zero"},
		{"s.{data.n.m.o}", "s.deep"},
		{"s.{data.items.*}", "s._"}, // no wildcard paths
		{"s.{data.n}-{data.n.m.o}", "s._-deep"},
	} {
		tmpl, err := ParseSubjectTemplate(tc.template)
		if err != nil {
			t.Fatalf("%s: %v", tc.template, err)
		}
		if got := string(tmpl.Render(nil, SubjectValues{Data: data})); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.template, got, tc.want)
		}
	}
}

func TestSubjectFallback(t *testing.T) {
	t.Parallel()
	tmpl, err := ParseSubjectTemplate("logs.{log_group}.{data.level}")
	if err != nil {
		t.Fatal(err)
	}
	if !tmpl.UsesData() || !tmpl.UsesLogs() {
		t.Fatal("UsesData and UsesLogs want true")
	}
	tmpl, err = tmpl.WithFallback("none")
	if err != nil {
		t.Fatal(err)
	}
	got := string(tmpl.Render(nil, SubjectValues{Data: []byte(`{"msg":"x"}`)}))
	if got != "logs.none.none" {
		t.Fatalf("got %q, want logs.none.none", got)
	}
	got = string(tmpl.Render(nil, SubjectValues{Data: []byte(`{"level":"warn"}`), LogGroup: "/aws/lambda/f"}))
	if got != "logs./aws/lambda/f.warn" {
		t.Fatalf("got %q", got)
	}
	for _, bad := range []string{"", "a.b", "*", ">", "a b", "\x00", "\xff"} {
		if _, err := tmpl.WithFallback(bad); err == nil {
			t.Errorf("WithFallback(%q) accepted", bad)
		}
	}
	plain, _ := ParseSubjectTemplate("kinesis.{stream}")
	if plain.UsesData() || plain.UsesLogs() {
		t.Fatal("a template without data or log placeholders says it uses them")
	}
}

func TestParseDataPlaceholderErrors(t *testing.T) {
	t.Parallel()
	for template, want := range map[string]string{
		"a.{data}":      "names no field",
		"a.{data.}":     "empty field name",
		"a.{data.x..y}": "empty field name",
		"a.{data.x y}":  "whitespace or control character",
		"a.{data.\xff}": "invalid UTF-8",
		"a.{data." + strings.Repeat("x.", 40) + "x}": "at most 32 fields deep",
		"a.{datum.x}":    "unknown placeholder {datum.x}",
		"a.{log_groups}": "unknown placeholder",
	} {
		if _, err := ParseSubjectTemplate(template); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want it to contain %q", template, err, want)
		}
	}
}

func TestRenderDataDoesNotAllocate(t *testing.T) {
	// Not parallel: AllocsPerRun counts every goroutine's allocations.
	tmpl, err := ParseSubjectTemplate("orders.{data.type}.{data.customer.id}.{partition_key}")
	if err != nil {
		t.Fatal(err)
	}
	v := SubjectValues{PartitionKey: "k", Data: []byte(`{"type":"order.created","customer":{"id":12345},"items":[1,2,3]}`)}
	dst := make([]byte, 0, 256)
	if allocs := testing.AllocsPerRun(1000, func() { dst = tmpl.Render(dst[:0], v) }); allocs != 0 {
		t.Fatalf("Render allocated %v times per run, want 0", allocs)
	}
}

func FuzzSubjectDataRender(f *testing.F) {
	f.Add("o.{data.type}.{data.a.0.b}", `{"type":"x.y","a":[{"b":1}]}`, "_")
	f.Add("o.{data.k}", `{"k":"\ud800"}`, "none")
	f.Add("o.{data.k}", `{"k":"a\u0000b"}`, "-")
	f.Add("o.{data.k\\}", `{"k\\":"v"}`, "x")
	f.Fuzz(func(t *testing.T, template, data, fallback string) {
		tmpl, err := ParseSubjectTemplate(template)
		if err != nil {
			return
		}
		if tmpl, err = tmpl.WithFallback(fallback); err != nil {
			return
		}
		subject := tmpl.Render(nil, SubjectValues{Data: []byte(data)})
		assertPublishSubject(t, string(subject), tmpl.Tokens())
		if !subjectMatches(tmpl.FilterSubject(), string(subject)) {
			t.Fatalf("subject %q is not captured by the template's filter %q", subject, tmpl.FilterSubject())
		}
	})
}

// subjectMatches reports whether the subject matches filter, whose only
// wildcards are whole '*' tokens.
func subjectMatches(filter, subject string) bool {
	f, s := strings.Split(filter, "."), strings.Split(subject, ".")
	if len(f) != len(s) {
		return false
	}
	for i := range f {
		if f[i] != "*" && f[i] != s[i] {
			return false
		}
	}
	return true
}

func TestFilterSubjectWithDataPaths(t *testing.T) {
	t.Parallel()
	for template, want := range map[string]string{
		"orders.{data.type}.{data.customer.id}": "orders.*.*",
		"a.{data.x.y}-z.b":                      "a.*.b",
		"logs.{log_group}.{log_stream}":         "logs.*.*",
		"kinesis.{stream}":                      "kinesis.*",
		"plain.subject":                         "plain.subject",
	} {
		tmpl, err := ParseSubjectTemplate(template)
		if err != nil {
			t.Fatal(err)
		}
		if got := tmpl.FilterSubject(); got != want {
			t.Errorf("%s: FilterSubject %q, want %q", template, got, want)
		}
	}
}

func BenchmarkRenderData(b *testing.B) {
	tmpl, err := ParseSubjectTemplate("orders.{data.type}.{data.customer.id}")
	if err != nil {
		b.Fatal(err)
	}
	data := []byte(`{"type":"order.created","customer":{"id":"c-12345","tier":"gold"},"items":[` +
		strings.Repeat(`{"sku":"SKU-000001","qty":1,"price":12.5},`, 20) + `{"sku":"last"}],"note":"` + strings.Repeat("x", 100) + `"}`)
	v := SubjectValues{Data: data}
	dst := make([]byte, 0, 256)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		dst = tmpl.Render(dst[:0], v)
	}
}

// Data nested without end (10 MiB of '[' after a field name) is not JSON:
// the subject takes the fallback, and nothing recurses on it.
func TestRenderDataHostileNesting(t *testing.T) {
	t.Parallel()
	tmpl, err := ParseSubjectTemplate("o.{data.a}")
	if err != nil {
		t.Fatal(err)
	}
	deep := append([]byte(`{"a":`), bytes.Repeat([]byte("["), 10<<20)...)
	if got := string(tmpl.Render(nil, SubjectValues{Data: deep})); got != "o._" {
		t.Fatalf("subject %q, want o._", got)
	}
}
