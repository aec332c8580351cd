package config

import "testing"

func TestValidateSubjectTemplate(t *testing.T) {
	for _, tc := range []struct {
		tmpl string
		want string // "" for valid
	}{
		{"kinesis.{stream}", ""},
		{"kinesis.{stream}.{shard}.{partition_key}", ""},
		{"{consumer}", ""},
		{"a.b-c_d.{stream}x{shard}", ""},
		{"$KV.orders.{partition_key}", ""},
		{"kinesis.événements", ""},
		{"", "must not be empty"},
		{"kinesis.{strem}", "unknown placeholder {strem}; known: {stream}, {shard}, {partition_key}, {consumer}"},
		{"kinesis.{}", "unknown placeholder {}; known: {stream}, {shard}, {partition_key}, {consumer}"},
		{"kinesis.{STREAM}", "unknown placeholder {STREAM}; known: {stream}, {shard}, {partition_key}, {consumer}"},
		{"kinesis.{stream", "unbalanced '{' at offset 8"},
		{"kinesis.{{stream}}", "unbalanced '{' at offset 8"},
		{"kinesis.stream}", "unbalanced '}' at offset 14"},
		{"kinesis.{stream}}", "unbalanced '}' at offset 16"},
		{"kinesis..x", `empty token at offset 8 ("..")`},
		{".kinesis", "must not start with '.'"},
		{"kinesis.", "must not end with '.'"},
		{".", "must not start with '.'"},
		{"kinesis.*", "wildcard '*' at offset 8 is not allowed in a published subject"},
		{"kinesis.>", "wildcard '>' at offset 8 is not allowed in a published subject"},
		{"kine*sis", "wildcard '*' at offset 4 is not allowed in a published subject"},
		{"kinesis {stream}", "whitespace at offset 7 is not allowed"},
		{"kinesis\t", "whitespace at offset 7 is not allowed"},
		{"kinesis.\u00a0", "whitespace at offset 8 is not allowed"},
		{"kinesis\x00", "control character at offset 7 is not allowed"},
		{"kinesis\x7f", "control character at offset 7 is not allowed"},
		{"kinesis\xff", "must be valid UTF-8"},
	} {
		err := ValidateSubjectTemplate(tc.tmpl)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tc.want {
			t.Errorf("ValidateSubjectTemplate(%q) = %q, want %q", tc.tmpl, got, tc.want)
		}
	}
}

func TestSubjectPlaceholders(t *testing.T) {
	ps := SubjectPlaceholders()
	if got, want := len(ps), 4; got != want {
		t.Fatalf("len = %d, want %d", got, want)
	}
	for _, p := range ps {
		if err := ValidateSubjectTemplate("x." + p); err != nil {
			t.Errorf("placeholder %s: %v", p, err)
		}
	}
	ps[0] = "changed"
	if SubjectPlaceholders()[0] != PlaceholderStream {
		t.Fatal("SubjectPlaceholders shares its slice")
	}
}
