package relay

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func TestReadPubAck(t *testing.T) {
	t.Parallel()
	sizeErr := &jetstream.APIError{Code: 400, ErrorCode: jetstream.JSErrCodeStreamMessageExceedsMaximum, Description: "message size exceeds maximum allowed"}
	for _, tc := range []struct {
		name    string
		data    string
		scanned bool // read without encoding/json
		dup     bool
		err     error
	}{
		{"stored", `{"stream":"KINESIS","seq":42}`, true, false, nil},
		{"duplicate", `{"stream":"KINESIS","seq":42,"duplicate":true}`, true, true, nil},
		{"domain", `{"stream":"KINESIS","domain":"hub","seq":1}`, true, false, nil},
		{"spaces and order", " {\n\t\"duplicate\" : true ,\r\n \"seq\":7, \"stream\" :\"S\"} ", true, true, nil},
		{"unknown fields", `{"stream":"S","seq":1,"batch":"b","count":3,"x":null,"y":false}`, true, false, nil},
		{"max_msg_size", `{"error":{"code":400,"err_code":10054,"description":"message size exceeds maximum allowed"}}`, true, false, sizeErr},
		{"error with a stream", `{"stream":"KINESIS","error":{"err_code":10054,"code":400,"description":"message size exceeds maximum allowed"},"seq":0}`, true, false, sizeErr},
		{"no stream", `{"seq":1}`, true, false, jetstream.ErrInvalidJSAck},
		{"empty stream", `{"stream":"","seq":1}`, true, false, jetstream.ErrInvalidJSAck},
		{"not JSON", `+OK`, false, false, jetstream.ErrInvalidJSAck},
		{"escaped stream", `{"stream":"K\u0049NESIS","seq":1}`, false, false, nil},
		{"upper-case key", `{"Stream":"KINESIS","seq":1}`, false, false, nil},
		{"a nested unknown field", `{"stream":"S","seq":1,"x":{"y":[1,2]}}`, false, false, nil},
		{"seq not an integer", `{"stream":"S","seq":1.5}`, false, false, jetstream.ErrInvalidJSAck},
		{"err_code too large", `{"error":{"code":400,"err_code":70000}}`, false, false, jetstream.ErrInvalidJSAck},
		{"escaped description", `{"error":{"code":500,"err_code":10077,"description":"a \"quoted\" word"}}`, false, false,
			&jetstream.APIError{Code: 500, ErrorCode: 10077, Description: `a "quoted" word`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, ok := scanPubAck([]byte(tc.data)); ok != tc.scanned {
				t.Errorf("scanned %t, want %t", ok, tc.scanned)
			}
			dup, err := readPubAck(&nats.Msg{Data: []byte(tc.data)})
			if dup != tc.dup || !sameAckError(err, tc.err) {
				t.Errorf("readPubAck = %t, %v; want %t, %v", dup, err, tc.dup, tc.err)
			}
		})
	}
	t.Run("no responders", func(t *testing.T) {
		m := nats.NewMsg("_INBOX.x.1")
		m.Header.Set("Status", "503")
		if _, err := readPubAck(m); !errors.Is(err, jetstream.ErrNoStreamResponse) {
			t.Errorf("readPubAck = %v, want ErrNoStreamResponse", err)
		}
	})
	t.Run("max_msg_size is a refusal", func(t *testing.T) {
		_, err := readPubAck(&nats.Msg{Data: []byte(`{"error":{"code":400,"err_code":10054,"description":"message size exceeds maximum allowed"}}`)})
		p := &Publisher{}
		if ref := p.pubAckRefusal(err, &nats.Msg{Data: make([]byte, 2000)}); ref.cause != tooLarge {
			t.Errorf("pubAckRefusal(%v) = %+v, want too large", err, ref)
		}
	})
}

// sameAckError: the same sentinel, or API errors with the same fields.
func sameAckError(got, want error) bool {
	var g, w *jetstream.APIError
	if errors.As(want, &w) {
		return errors.As(got, &g) && *g == *w
	}
	return got == want
}

// checkScanner fails t if scanPubAck reads data other than encoding/json.
func checkScanner(t *testing.T, data []byte) {
	a, ok := scanPubAck(data)
	if !ok {
		return
	}
	dup, err := a.result()
	wantDup, wantErr := decodePubAck(data).result()
	if dup != wantDup || !sameAckError(err, wantErr) {
		t.Fatalf("%q: scanned %t, %v; encoding/json %t, %v", data, dup, err, wantDup, wantErr)
	}
}

// randomPubAck writes a PubAck of random shape: fields in any order,
// spaces, unknown fields, sometimes an error.
func randomPubAck(r *rand.Rand) []byte {
	ws := func() string { return []string{"", "", " ", "\n\t", "\r "}[r.IntN(5)] }
	var fields []string
	field := func(k, v string) {
		fields = append(fields, fmt.Sprintf(`%s"%s"%s:%s%s%s`, ws(), k, ws(), ws(), v, ws()))
	}
	if r.IntN(4) == 0 {
		var ef []string
		for _, f := range []string{
			fmt.Sprintf(`"code":%d`, r.IntN(600)),
			fmt.Sprintf(`"err_code":%d`, 10000+r.IntN(300)),
			fmt.Sprintf(`"description":"%s"`, []string{"stream not found", "message size exceeds maximum allowed", "ü", ""}[r.IntN(4)]),
		} {
			if r.IntN(5) > 0 {
				ef = append(ef, f)
			}
		}
		r.Shuffle(len(ef), func(i, j int) { ef[i], ef[j] = ef[j], ef[i] })
		field("error", "{"+ws()+strings.Join(ef, ","+ws())+"}")
	}
	if r.IntN(5) > 0 {
		field("stream", `"`+[]string{"KINESIS", "S", "", "ströme"}[r.IntN(4)]+`"`)
	}
	if r.IntN(5) > 0 {
		field("seq", fmt.Sprint(r.Uint64()>>r.IntN(64)))
	}
	if r.IntN(2) == 0 {
		field("duplicate", []string{"true", "false"}[r.IntN(2)])
	}
	if r.IntN(3) == 0 {
		field("domain", `"hub"`)
	}
	if r.IntN(4) == 0 {
		field([]string{"batch", "count", "val", "type", "x_y"}[r.IntN(5)], []string{`"b"`, "3", "null", "true", `""`}[r.IntN(5)])
	}
	r.Shuffle(len(fields), func(i, j int) { fields[i], fields[j] = fields[j], fields[i] })
	return []byte(ws() + "{" + strings.Join(fields, ",") + "}" + ws())
}

// mutate changes a few bytes of b: flips, deletions, insertions of JSON's
// own characters.
func mutate(r *rand.Rand, b []byte) []byte {
	const alphabet = `{}[]":,\ 0123456789-.eEtruefalsn` + "\x00\x1f\x7f\xc3\xbcSK\u212a"
	b = append([]byte(nil), b...)
	for range 1 + r.IntN(3) {
		if len(b) == 0 {
			break
		}
		i := r.IntN(len(b))
		switch r.IntN(3) {
		case 0:
			b[i] = alphabet[r.IntN(len(alphabet))]
		case 1:
			b = append(b[:i], b[i+1:]...)
		default:
			b = append(b[:i], append([]byte{alphabet[r.IntN(len(alphabet))]}, b[i:]...)...)
		}
	}
	return b
}

// TestPubAckScannerMatchesJSON compares the scanner with encoding/json on
// random PubAcks and on mutations of them.
func TestPubAckScannerMatchesJSON(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	scanned := 0
	for range 20000 {
		b := randomPubAck(r)
		if _, ok := scanPubAck(b); ok {
			scanned++
		}
		checkScanner(t, b)
		for range 5 {
			checkScanner(t, mutate(r, b))
		}
	}
	if scanned < 10000 {
		t.Errorf("only %d of 20000 well-formed PubAcks scanned: the rest went to encoding/json", scanned)
	}
}

func FuzzPubAck(f *testing.F) {
	for _, s := range []string{
		`{"stream":"KINESIS","seq":42}`,
		`{"stream":"KINESIS","seq":42,"duplicate":true}`,
		`{"stream":"KINESIS","domain":"hub","seq":1}`,
		`{"error":{"code":400,"err_code":10054,"description":"message size exceeds maximum allowed"}}`,
		`{"stream":"S","error":{"code":503,"err_code":10077,"description":"x"},"seq":0,"type":"t","val":"v"}`,
		` { "seq" : 0 , "stream" : "s" , "batch" : "b" , "count" : 2 } `,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkScanner(t, data)
	})
}
