package efostream

import (
	"bytes"
	"encoding/base64"
	"testing"
)

// TestStrScansEveryKindOfString: str takes a string without escapes or
// control characters, printable ASCII or not, and refuses the others,
// wherever the offending byte is.
func TestStrScansEveryKindOfString(t *testing.T) {
	long := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte("kinesis"), 100))
	tests := []struct {
		in   string
		want string
		ok   bool
	}{
		{`""`, "", true},
		{`"a"`, "a", true},
		{`"` + long + `",`, long, true},
		{`"schlüssel-ü"`, "schlüssel-ü", true},
		{`"` + long + `ü"`, long + "ü", true},
		{`"a\"b"`, "", false},
		{`"` + long + `\n"`, "", false},
		{`"` + long + "\n" + `"`, "", false},
		{`"` + long[:100] + "\x00" + long[100:] + `"`, "", false},
		{`"` + long[:100] + "\x1f" + long[100:] + `"`, "", false},
		{`"` + long[:100] + "\x7f" + long[100:] + `"`, long[:100] + "\x7f" + long[100:], true},
		{`"` + long, "", false},
		{`"`, "", false},
		{`x`, "", false},
	}
	for _, tt := range tests {
		s := jsonScanner{b: []byte(tt.in)}
		got, ok := s.str()
		if ok != tt.ok || string(got) != tt.want {
			t.Errorf("str(%.40q...) = %.40q, %v; want %.40q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
		if ok && s.i != len(tt.want)+2 {
			t.Errorf("str(%.40q...) stopped at %d, want %d", tt.in, s.i, len(tt.want)+2)
		}
	}
}

// BenchmarkStr: the scan of a record's Data string of 512 bytes.
func BenchmarkStr(b *testing.B) {
	in := []byte(`"` + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte("kinesis!"), 64)) + `"`)
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		s := jsonScanner{b: in}
		if _, ok := s.str(); !ok {
			b.Fatal("not a string")
		}
	}
}
