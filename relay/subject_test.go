package relay

import (
	"bytes"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParseSubjectTemplateErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		template string
		wantErr  string
	}{
		{"", "subject template is empty"},
		{"{", "unclosed '{' at offset 0"},
		{"a.{stream", "unclosed '{' at offset 2"},
		{"a.{{stream}}", "unclosed '{' at offset 2"},
		{"a.{str{eam}", "unclosed '{' at offset 2"},
		{"}", "'}' without '{' at offset 0"},
		{"a.stream}", "'}' without '{' at offset 8"},
		{"a.{stream}}", "'}' without '{' at offset 10"},
		{"a.{}", "unknown placeholder {} at offset 2"},
		{"a.{foo}", "unknown placeholder {foo} at offset 2: use {stream}, {shard}, {partition_key}, {consumer}, {data.PATH}, {log_group} or {log_stream}"},
		{"a.{Stream}", "unknown placeholder {Stream}"},
		{"a.{ stream }", "unknown placeholder { stream }"},
		{"a.{partition-key}", "unknown placeholder {partition-key}"},
		{"a..b", "empty token at offset 2"},
		{".a", "empty token at offset 0"},
		{".", "empty token at offset 0"},
		{"{stream}..x", "empty token at offset 9"},
		{"a.", "ends with '.'"},
		{"a.{stream}.", "ends with '.'"},
		{"a b", `whitespace or control character ' ' at offset 1`},
		{"a.\tb", `whitespace or control character '\t' at offset 2`},
		{"a\nb", `whitespace or control character '\n' at offset 1`},
		{"a\x00", `whitespace or control character '\x00' at offset 1`},
		{"a\x7f", `whitespace or control character '\x7f' at offset 1`},
		{"a.*", "wildcard '*' at offset 2"},
		{"a.>", "wildcard '>' at offset 2"},
		{"a*b.c", "wildcard '*' at offset 1"},
		{"a.\xff", "invalid UTF-8 at offset 2"},
		{"a.\xc3", "invalid UTF-8 at offset 2"},
	}
	for _, tt := range tests {
		t.Run(tt.template, func(t *testing.T) {
			tmpl, err := ParseSubjectTemplate(tt.template)
			if err == nil {
				t.Fatalf("got template %q, want error containing %q", tmpl, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got error %q, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestParseSubjectTemplateValid(t *testing.T) {
	t.Parallel()
	values := SubjectValues{Stream: "orders", Shard: "shardId-000000000001", PartitionKey: "user-42", Consumer: "fanoutd"}
	tests := []struct{ template, want string }{
		{"kinesis", "kinesis"},
		{"kinesis.{stream}", "kinesis.orders"},
		{"kinesis.{stream}.{shard}", "kinesis.orders.shardId-000000000001"},
		{"{stream}.{partition_key}", "orders.user-42"},
		{"{consumer}", "fanoutd"},
		{"k.{stream}-raw.x", "k.orders-raw.x"},
		{"k.{stream}{shard}", "k.ordersshardId-000000000001"},
		{"$KINESIS.{stream}", "$KINESIS.orders"},
		{"ключ.{stream}.日本", "ключ.orders.日本"},
		{"a%b.{partition_key}", "a%b.user-42"},
		{"{stream}.{stream}", "orders.orders"},
	}
	for _, tt := range tests {
		t.Run(tt.template, func(t *testing.T) {
			tmpl, err := ParseSubjectTemplate(tt.template)
			if err != nil {
				t.Fatal(err)
			}
			if got := tmpl.String(); got != tt.template {
				t.Errorf("String() = %q, want %q", got, tt.template)
			}
			if got := string(tmpl.Render(nil, values)); got != tt.want {
				t.Errorf("Render = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRenderSanitizesValues(t *testing.T) {
	t.Parallel()
	tmpl, err := ParseSubjectTemplate("kinesis.{stream}.{partition_key}")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ key, want string }{
		{"user-42", "kinesis.orders.user-42"},
		{"user.42", "kinesis.orders.user%2E42"},
		{"a b", "kinesis.orders.a%20b"},
		{"*", "kinesis.orders.%2A"},
		{">", "kinesis.orders.%3E"},
		{"a*b>c", "kinesis.orders.a%2Ab%3Ec"},
		{"100%", "kinesis.orders.100%25"},
		{"%2E", "kinesis.orders.%252E"},
		{"", "kinesis.orders._"},
		{"_", "kinesis.orders.%5F"},
		{"__", "kinesis.orders.__"},
		{"a_b", "kinesis.orders.a_b"},
		{"...", "kinesis.orders.%2E%2E%2E"},
		{"line\r\nbreak\t", "kinesis.orders.line%0D%0Abreak%09"},
		{"\x00\x1f\x7f", "kinesis.orders.%00%1F%7F"},
		{"日本語", "kinesis.orders.日本語"},
		{"é", "kinesis.orders.é"},
		{"\u00a0nbsp", "kinesis.orders.\u00a0nbsp"},
		{"\xff", "kinesis.orders.%FF"},
		{"a\xc3", "kinesis.orders.a%C3"},             // truncated sequence
		{"\xed\xa0\x80", "kinesis.orders.%ED%A0%80"}, // UTF-16 surrogate
		{"\uFFFD", "kinesis.orders.\uFFFD"},          // a real U+FFFD is valid
		{"$JS.API", "kinesis.orders.$JS%2EAPI"},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			got := string(tmpl.Render(nil, SubjectValues{Stream: "orders", PartitionKey: tt.key}))
			if got != tt.want {
				t.Fatalf("Render(%q) = %q, want %q", tt.key, got, tt.want)
			}
			assertPublishSubject(t, got, 3)
			token := got[strings.LastIndexByte(got, '.')+1:]
			if back, err := decodeToken(token); err != nil || back != tt.key {
				t.Fatalf("decode %q = %q, %v; want %q", token, back, err, tt.key)
			}
		})
	}
}

func TestRenderSanitizesEveryPlaceholder(t *testing.T) {
	t.Parallel()
	tmpl, err := ParseSubjectTemplate("{stream}.{shard}.{partition_key}.{consumer}")
	if err != nil {
		t.Fatal(err)
	}
	got := string(tmpl.Render(nil, SubjectValues{Stream: "my.stream", Shard: "", PartitionKey: "k", Consumer: "c>d"}))
	if want := "my%2Estream._.k.c%3Ed"; got != want {
		t.Fatalf("Render = %q, want %q", got, want)
	}
}

func TestRenderAppends(t *testing.T) {
	t.Parallel()
	tmpl, err := ParseSubjectTemplate("a.{stream}")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(tmpl.Render([]byte("prefix:"), SubjectValues{Stream: "s"})), "prefix:a.s"; got != want {
		t.Fatalf("Render = %q, want %q", got, want)
	}
}

func TestRenderDoesNotAllocate(t *testing.T) {
	// Not parallel: AllocsPerRun counts every goroutine's allocations.
	tmpl, err := ParseSubjectTemplate("kinesis.{stream}.{shard}.{partition_key}.{consumer}")
	if err != nil {
		t.Fatal(err)
	}
	v := SubjectValues{Stream: "orders", Shard: "shardId-000000000001", PartitionKey: "user.42 ключ\xff", Consumer: "fanoutd"}
	dst := make([]byte, 0, 256)
	allocs := testing.AllocsPerRun(1000, func() {
		dst = tmpl.Render(dst[:0], v)
	})
	if allocs != 0 {
		t.Fatalf("Render allocated %v times per run, want 0", allocs)
	}
}

// decodeToken inverts SanitizeToken, as its documentation tells a reader to.
func decodeToken(token string) (string, error) {
	if token == "_" {
		return "", nil
	}
	return url.PathUnescape(token)
}

// assertPublishSubject fails unless subject is a valid NATS publish subject
// with exactly tokens tokens.
func assertPublishSubject(t testing.TB, subject string, tokens int) {
	t.Helper()
	if !utf8.ValidString(subject) {
		t.Fatalf("subject %q is not valid UTF-8", subject)
	}
	parts := strings.Split(subject, ".")
	if len(parts) != tokens {
		t.Fatalf("subject %q has %d tokens, want %d", subject, len(parts), tokens)
	}
	for _, p := range parts {
		if p == "" {
			t.Fatalf("subject %q has an empty token", subject)
		}
	}
	for i := 0; i < len(subject); i++ {
		if c := subject[i]; c <= ' ' || c == 0x7f || c == '*' || c == '>' {
			t.Fatalf("subject %q holds %q at offset %d", subject, c, i)
		}
	}
}

func FuzzSubjectRender(f *testing.F) {
	f.Add("kinesis.{stream}.{partition_key}", "orders", "user.42", "user 42")
	f.Add("{stream}.{shard}.{partition_key}.{consumer}", "", "_", "")
	f.Add("a.{partition_key}{consumer}", "s", "%", "%25")
	f.Add("ключ.{partition_key}", "x", "\xff", "\xc3\xbf")
	f.Add("{stream}-{shard}", ">", "*", "\r\n")
	f.Add("a..b", "a", "b", "c")
	f.Fuzz(func(t *testing.T, template, a, b, c string) {
		tmpl, err := ParseSubjectTemplate(template)
		if err != nil {
			tmpl, err = ParseSubjectTemplate("kinesis.{stream}.{shard}.{partition_key}.{consumer}")
			if err != nil {
				t.Fatal(err)
			}
		}
		// Each placeholder renders inside one token, so the token count is the
		// template's own.
		tokens := strings.Count(tmpl.String(), ".") + 1
		subject := tmpl.Render(nil, SubjectValues{Stream: a, Shard: b, PartitionKey: c, Consumer: a + b})
		assertPublishSubject(t, string(subject), tokens)
		if again := tmpl.Render(subject[:0:0], SubjectValues{Stream: a, Shard: b, PartitionKey: c, Consumer: a + b}); !bytes.Equal(again, subject) {
			t.Fatalf("Render is not deterministic: %q then %q", subject, again)
		}

		// SanitizeToken is injective: decoding gives the value back, so two
		// different values never render the same token.
		ta, tb := string(SanitizeToken(nil, a)), string(SanitizeToken(nil, b))
		for _, pair := range [][2]string{{a, ta}, {b, tb}} {
			back, err := decodeToken(pair[1])
			if err != nil || back != pair[0] {
				t.Fatalf("decode(SanitizeToken(%q)) = %q, %v", pair[0], back, err)
			}
			assertPublishSubject(t, pair[1], 1)
		}
		if (a == b) != (ta == tb) {
			t.Fatalf("SanitizeToken(%q) = %q, SanitizeToken(%q) = %q", a, ta, b, tb)
		}
	})
}

func BenchmarkRender(b *testing.B) {
	tmpl, err := ParseSubjectTemplate("kinesis.{stream}.{shard}.{partition_key}")
	if err != nil {
		b.Fatal(err)
	}
	for _, bm := range []struct{ name, key string }{
		{"plain", "3f2b9c4e-6d1a-4c8e-9f7b-2a1d5e8c0b47"},
		{"escaped", "user.42 with spaces*and>more%"},
		{"unicode", "ключ-日本語-é"},
	} {
		b.Run(bm.name, func(b *testing.B) {
			v := SubjectValues{Stream: "orders", Shard: "shardId-000000000001", PartitionKey: bm.key}
			dst := make([]byte, 0, 256)
			b.ReportAllocs()
			for b.Loop() {
				dst = tmpl.Render(dst[:0], v)
			}
		})
	}
}
