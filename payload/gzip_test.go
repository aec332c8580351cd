package payload

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"runtime"
	"testing"
)

// gz compresses each part as one gzip member, concatenated.
func gz(t testing.TB, parts ...[]byte) []byte {
	t.Helper()
	var b bytes.Buffer
	for _, p := range parts {
		w := gzip.NewWriter(&b)
		if _, err := w.Write(p); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}

func wantReason(t *testing.T, err error, reason string) {
	t.Helper()
	var pe *Error
	if !errors.As(err, &pe) {
		t.Fatalf("error %v, want an *Error with reason %s", err, reason)
	}
	if pe.Reason != reason {
		t.Fatalf("reason %s (%v), want %s", pe.Reason, err, reason)
	}
}

func TestIsGzip(t *testing.T) {
	for _, tc := range []struct {
		data []byte
		want bool
	}{
		{gz(t, []byte("x")), true},
		{[]byte{0x1f, 0x8b}, true},
		{[]byte{0x1f}, false},
		{[]byte(`{"a":1}`), false},
		{nil, false},
	} {
		if got := IsGzip(tc.data); got != tc.want {
			t.Errorf("IsGzip(%q) = %v, want %v", tc.data, got, tc.want)
		}
	}
}

func TestGunzip(t *testing.T) {
	big := bytes.Repeat([]byte("log line 0123456789\n"), 50000) // 1 MB
	for _, tc := range []struct {
		name  string
		data  []byte
		want  []byte
		limit int64
	}{
		{"one member", gz(t, []byte("hello")), []byte("hello"), 0},
		{"members are concatenated", gz(t, []byte("hello, "), []byte("world")), []byte("hello, world"), 0},
		{"empty member", gz(t, nil), nil, 0},
		{"large", gz(t, big), big, 0},
		{"large, in members", gz(t, big[:1000], big[1000:]), big, 0},
		{"exactly the limit", gz(t, big), big, int64(len(big))},
		{"exactly the limit, in members", gz(t, big[:1000], big[1000:]), big, int64(len(big))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := NewDecoder(tc.limit)
			prefix := []byte("prefix:")
			got, err := d.Gunzip(prefix, tc.data)
			if err != nil {
				t.Fatal(err)
			}
			if want := append([]byte("prefix:"), tc.want...); !bytes.Equal(got, want) {
				t.Fatalf("got %d bytes, want %d", len(got), len(want))
			}
			// The Decoder is reused.
			got, err = d.Gunzip(got[:0], tc.data)
			if err != nil || !bytes.Equal(got, tc.want) {
				t.Fatalf("second decode: %d bytes, %v", len(got), err)
			}
		})
	}
}

// lieSize sets the size in data's trailer.
func lieSize(data []byte, size uint32) []byte {
	data = bytes.Clone(data)
	binary.LittleEndian.PutUint32(data[len(data)-4:], size)
	return data
}

func TestGunzipBad(t *testing.T) {
	body := bytes.Repeat([]byte("some log data "), 100)
	good := gz(t, body)
	corrupt := func(i int) []byte {
		b := bytes.Clone(good)
		b[i] ^= 0xff
		return b
	}
	badCRC := bytes.Clone(good)
	badCRC[len(badCRC)-8] ^= 1
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"not gzip", []byte(`{"messageType":"DATA_MESSAGE"}`)},
		{"magic only", []byte{0x1f, 0x8b}},
		{"header: unknown method", corrupt(2)},
		{"header: bad header CRC", func() []byte { b := bytes.Clone(good); b[3] |= 0x02; return b }()},
		{"body", corrupt(20)},
		{"crc", badCRC},
		{"size", lieSize(good, uint32(len(body)+1))},
		{"truncated in the header", good[:5]},
		{"truncated in the body", good[:len(good)/2]},
		{"truncated in the trailer", good[:len(good)-3]},
		{"truncated second member", append(bytes.Clone(good), good[:len(good)-1]...)},
		{"trailing garbage", append(bytes.Clone(good), "garbage"...)},
		{"trailing zeros", append(bytes.Clone(good), 0, 0, 0, 0)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := NewDecoder(0)
			dst := []byte("kept")
			got, err := d.Gunzip(dst, tc.data)
			wantReason(t, err, ReasonBadGzip)
			if string(got) != "kept" {
				t.Fatalf("dst %q after an error, want it at its original length", got)
			}
		})
	}
}

// zeros returns a gzip bomb: members of 1 MiB of zeros each (about 1 KiB
// compressed), members MiB in all.
func zeros(t testing.TB, members int) []byte {
	one := gz(t, make([]byte, 1<<20))
	return bytes.Repeat(one, members)
}

func TestGunzipBomb(t *testing.T) {
	const limit = 1 << 20
	singleMember := gz(t, make([]byte, 16<<20)) // its trailer says 16 MiB
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"1 GiB in members", zeros(t, 1024)},
		{"16 MiB in one member", singleMember},
		{"trailer claiming little", lieSize(singleMember, 100)},
		{"one byte too many", gz(t, make([]byte, limit+1))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := NewDecoder(limit)
			if _, err := d.Gunzip(nil, gz(t, []byte("warm up"))); err != nil {
				t.Fatal(err)
			}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			got, err := d.Gunzip(nil, tc.data)
			runtime.ReadMemStats(&after)
			wantReason(t, err, ReasonTooLarge)
			if len(got) != 0 {
				t.Fatalf("%d bytes returned with the error", len(got))
			}
			// Growing by doubling up to the limit allocates under twice it.
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 2*limit+64<<10 {
				t.Fatalf("allocated %d bytes for a limit of %d", alloc, limit)
			}
			if c := cap(got); c > limit {
				t.Fatalf("dst grew to %d bytes, past the limit of %d", c, limit)
			}
		})
	}
}

func TestGunzipLimitCountsOnlyItsOutput(t *testing.T) {
	d := NewDecoder(10)
	got, err := d.Gunzip(bytes.Repeat([]byte("x"), 100), gz(t, []byte("0123456789")))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 110 {
		t.Fatalf("got %d bytes, want 110", len(got))
	}
}
