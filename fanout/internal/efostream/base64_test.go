package efostream

import (
	"bytes"
	"encoding/base64"
	"testing"
)

// FuzzBase64MatchesStd: decodeBase64 decodes what encoding/base64 decodes,
// to the same bytes, and refuses what it refuses with the same error.
func FuzzBase64MatchesStd(f *testing.F) {
	for _, s := range []string{"", "aGVsbG8=", "aGVsbG8", "aGVsbG9=", "aGVs\nbG8=", "aGVs\r\nbG8=", "====", "QQ==QQ==",
		string(bytes.Repeat([]byte("QUJD"), 100)), string(bytes.Repeat([]byte("QUJD"), 100)) + "!"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		want := make([]byte, base64.StdEncoding.DecodedLen(len(src)))
		got := make([]byte, len(want))
		nw, ew := base64.StdEncoding.Decode(want, src)
		ng, eg := decodeBase64(got, src)
		if (ew == nil) != (eg == nil) || (ew != nil && ew.Error() != eg.Error()) {
			t.Fatalf("%q: error %v, want %v", src, eg, ew)
		}
		if ew == nil && !bytes.Equal(got[:ng], want[:nw]) {
			t.Fatalf("%q: decoded %x, want %x", src, got[:ng], want[:nw])
		}
	})
}
