package efostream

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"time"
	"unsafe"

	asmbase64 "github.com/segmentio/asm/base64"

	"github.com/fanoutd/fanoutd/internal/reuse"
	"github.com/fanoutd/fanoutd/record"
)

// eventDecoder decodes the JSON payload of a SubscribeToShardEvent frame
// the way Kinesis writes it, without reflection and without an allocation
// per record: record data is base64-decoded into the frame's own buffer,
// over the JSON already read (see decode), and the strings of an event
// (partition keys, sequence numbers, the continuation) share one
// allocation.
//
// It is strict: anything it does not expect (escapes or control
// characters in strings, nulls, unknown members, duplicate members, child
// shards, invalid base64, trailing bytes) makes it give up, and the SDK's
// codec decodes the frame instead. So whatever it accepts, it decodes as the
// SDK does (FuzzDecoderMatchesSDK checks it); whatever it refuses, the SDK
// decodes.
type eventDecoder struct {
	recs    []rawRecord
	arena   []byte
	scratch []byte // one record's decoded data, on its way into the frame

	recsUse, arenaUse, scratchUse reuse.Use
}

// rawRecord is one Kinesis record of the event being decoded: its base64
// data in the payload, its strings in the arena.
type rawRecord struct {
	dataOff, dataEnd int // the Data string's bytes in the payload; dataEnd -1 when absent
	pk, seq          strSpan
	ms               int64
	hasTime          bool
}

// strSpan locates a string in the arena.
type strSpan struct{ off, end int }

type jsonScanner struct {
	b []byte
	i int
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func (s *jsonScanner) ws() {
	for s.i < len(s.b) && isSpace(s.b[s.i]) {
		s.i++
	}
}

// peek returns the next non-space byte (0 at the end).
func (s *jsonScanner) peek() byte {
	s.ws()
	if s.i >= len(s.b) {
		return 0
	}
	return s.b[s.i]
}

func (s *jsonScanner) expect(c byte) bool {
	if s.peek() != c {
		return false
	}
	s.i++
	return true
}

// str scans a string without escapes or control characters and returns
// its bytes, without the quotes. Most of an event is base64 in Data
// strings: the closing quote is found by a vectorised search, then the
// string is checked 16 bytes at a time.
func (s *jsonScanner) str() ([]byte, bool) {
	if s.peek() != '"' {
		return nil, false
	}
	start := s.i + 1
	q := bytes.IndexByte(s.b[start:], '"')
	if q < 0 || !plain(s.b[start:start+q]) {
		return nil, false
	}
	s.i = start + q + 1
	return s.b[start : start+q], true
}

// plain reports whether v holds neither a control character nor a
// backslash, 16 bytes at a time.
func plain(v []byte) bool {
	i := 0
	for ; i+16 <= len(v); i += 16 {
		x := binary.LittleEndian.Uint64(v[i:])
		y := binary.LittleEndian.Uint64(v[i+8:])
		if hasLess(x, 0x20)|hasZero(x^(ones*'\\'))|hasLess(y, 0x20)|hasZero(y^(ones*'\\')) != 0 {
			return false
		}
	}
	for ; i < len(v); i++ {
		if v[i] < 0x20 || v[i] == '\\' {
			return false
		}
	}
	return true
}

// Bit Twiddling Hacks' tests of 8 bytes at once: whether any byte is zero,
// whether any is below n (n <= 128).
const (
	ones = 0x0101010101010101
	high = 0x8080808080808080
)

func hasZero(x uint64) uint64    { return (x - ones) &^ x & high }
func hasLess(x, n uint64) uint64 { return (x - ones*n) &^ x & high }

// number scans a JSON number.
func (s *jsonScanner) number() ([]byte, bool) {
	s.ws()
	i, b := s.i, s.b
	if i < len(b) && b[i] == '-' {
		i++
	}
	d := i
	if i = digits(b, d); i == d || (b[d] == '0' && i-d > 1) {
		return nil, false
	}
	if i < len(b) && b[i] == '.' {
		d = i + 1
		if i = digits(b, d); i == d {
			return nil, false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		d = i
		if i = digits(b, d); i == d {
			return nil, false
		}
	}
	tok := b[s.i:i]
	s.i = i
	return tok, true
}

// digits returns the end of the run of decimal digits in b from i.
func digits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}

// epochMillis converts an epoch-seconds number as the SDK does
// (smithytime.ParseEpochSeconds: the float64 times 1000 rounded to 53 bits,
// truncated to milliseconds). ok is false for values the SDK would turn
// into an overflowed time.
func epochMillis(tok []byte) (int64, bool) {
	var f float64
	if n, ok := parseDecimalInt(tok); ok {
		f = float64(n)
	} else {
		v, err := strconv.ParseFloat(unsafe.String(&tok[0], len(tok)), 64)
		if err != nil {
			return 0, false
		}
		f = v
	}
	p := f * 1e3
	if math.IsNaN(p) || math.Abs(p) >= 9e12 {
		return 0, false
	}
	return int64(p), true
}

// parseDecimalInt is the SDK's integer fast path (digits only, int64).
func parseDecimalInt(b []byte) (int64, bool) {
	neg := false
	if len(b) > 0 && b[0] == '-' {
		neg, b = true, b[1:]
	}
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	return n, true
}

// member scans `"key" :` and returns the key.
func (s *jsonScanner) member() ([]byte, bool) {
	k, ok := s.str()
	if !ok || !s.expect(':') {
		return nil, false
	}
	return k, true
}

// endMember consumes the ',' or '}' after a member: more is true after ','.
func (s *jsonScanner) endMember(close byte) (more, ok bool) {
	switch s.peek() {
	case ',':
		s.i++
		return true, true
	case close:
		s.i++
		return false, true
	}
	return false, false
}

func (d *eventDecoder) addString(b []byte) strSpan {
	off := len(d.arena)
	d.arena = append(d.arena, b...)
	return strSpan{off, len(d.arena)}
}

// decode decodes payload, appending its Kinesis records to dst (KPL
// aggregates as they are: the shard loop splits them as it hands them over). ok is false
// when the SDK must decode it instead; then dst is returned unchanged and
// payload is untouched. err is the SDK's error for a Data string that is
// not base64; payload is then no longer whole.
//
// It reads payload in two passes. The first checks everything but the
// base64 and notes where each Data string is; only then the second decodes
// each Data string and moves the bytes to the start of payload, over JSON
// already read: decoded data is shorter than its base64, and every string
// comes after the data of the records before it, so no byte is overwritten
// before it is read. The records' Data point into payload, valid until the
// next frame is read into the same buffer; no second buffer of the
// event's size is needed.
func (d *eventDecoder) decode(dst []record.Record, payload []byte) (Event, []record.Record, bool, error) {
	var ev Event
	d.recs, d.arena = d.recs[:0], d.arena[:0]
	s := jsonScanner{b: payload}
	var cont strSpan
	var hasCont, hasMillis, hasRecords bool
	if !s.expect('{') {
		return ev, dst, false, nil
	}
	if s.peek() == '}' {
		s.i++
	} else {
		for more := true; more; {
			key, ok := s.member()
			if !ok {
				return ev, dst, false, nil
			}
			switch string(key) {
			case "ContinuationSequenceNumber":
				v, ok := s.str()
				if !ok || hasCont {
					return ev, dst, false, nil
				}
				cont, hasCont = d.addString(v), true
			case "MillisBehindLatest":
				tok, ok := s.number()
				if !ok || hasMillis {
					return ev, dst, false, nil
				}
				n, ok := parseDecimalInt(tok)
				if !ok {
					return ev, dst, false, nil
				}
				ev.MillisBehindLatest, hasMillis = n, true
			case "ChildShards":
				// Only an empty list: a shard's end is rare, the SDK decodes it.
				if !s.expect('[') || !s.expect(']') {
					return ev, dst, false, nil
				}
			case "Records":
				if hasRecords || !s.expect('[') {
					return ev, dst, false, nil
				}
				hasRecords = true
				if s.peek() == ']' {
					s.i++
					break
				}
				for moreRecs := true; moreRecs; {
					if !d.record(&s) {
						return ev, dst, false, nil
					}
					if moreRecs, ok = s.endMember(']'); !ok {
						return ev, dst, false, nil
					}
				}
			default:
				return ev, dst, false, nil
			}
			if more, ok = s.endMember('}'); !ok {
				return ev, dst, false, nil
			}
		}
	}
	if s.ws(); s.i != len(s.b) {
		return ev, dst, false, nil
	}
	return d.records(ev, dst, payload, cont, hasCont)
}

// records is decode's second pass: it decodes each record's data over the
// payload and appends the records to dst.
func (d *eventDecoder) records(ev Event, dst []record.Record, payload []byte, cont strSpan, hasCont bool) (Event, []record.Record, bool, error) {
	strs := string(d.arena)
	if hasCont {
		c := strs[cont.off:cont.end]
		ev.Continuation = &c
	}
	n0, w, scratchNeed := len(dst), 0, 0
	for i := range d.recs {
		r := &d.recs[i]
		var at time.Time
		if r.hasTime {
			at = time.Unix(0, r.ms*1e6).UTC()
		}
		var b []byte
		if r.dataEnd >= 0 {
			src := payload[r.dataOff:r.dataEnd]
			need := base64.StdEncoding.DecodedLen(len(src))
			if cap(d.scratch) < need {
				d.scratch = make([]byte, bufSize(need))
			}
			scratchNeed = max(scratchNeed, need)
			n, err := decodeBase64(d.scratch[:cap(d.scratch)], src)
			if err != nil {
				clear(dst[n0:])
				return Event{}, dst[:n0], false, errBase64(err)
			}
			// w <= r.dataOff: the copy overwrites only bytes already read.
			copy(payload[w:], d.scratch[:n])
			b = payload[w : w+n : w+n]
			w += n
		}
		dst = append(dst, record.Record{Data: b, PartitionKey: strs[r.pk.off:r.pk.end], SequenceNumber: strs[r.seq.off:r.seq.end], ArrivalTime: at})
	}
	d.recs = reuse.Fit(&d.recsUse, d.recs, len(d.recs))
	d.arena = reuse.Fit(&d.arenaUse, d.arena, len(d.arena))
	d.scratch = reuse.Fit(&d.scratchUse, d.scratch, scratchNeed)
	return ev, dst, true, nil
}

// decodeBase64 decodes src as the SDK does (encoding/base64's
// StdEncoding), with segmentio/asm's vectorised decoder: base64 is the
// largest part of decoding an event. Invalid input is decoded again by
// encoding/base64, for the SDK's exact error.
func decodeBase64(dst, src []byte) (int, error) {
	n, err := asmbase64.StdEncoding.Decode(dst, src)
	if err != nil {
		return base64.StdEncoding.Decode(dst, src)
	}
	return n, nil
}

// errBase64 is the SDK's error for a Data string that is not base64 (its
// text is the SDK's, which FuzzDecoderMatchesSDK checks).
func errBase64(err error) error {
	return fmt.Errorf("deserialize event SubscribeToShardEvent: decode base64 blob: %w", err)
}

// record reads one record object; its data is decoded later (see decode).
func (d *eventDecoder) record(s *jsonScanner) bool {
	if !s.expect('{') {
		return false
	}
	r := rawRecord{dataEnd: -1}
	var seen uint8
	const (
		seenTime = 1 << iota
		seenData
		seenEnc
		seenPK
		seenSeq
	)
	once := func(bit uint8) bool {
		if seen&bit != 0 {
			return false
		}
		seen |= bit
		return true
	}
	if s.peek() == '}' {
		s.i++
	} else {
		for more := true; more; {
			key, ok := s.member()
			if !ok {
				return false
			}
			switch string(key) {
			case "ApproximateArrivalTimestamp":
				tok, ok := s.number()
				if !ok || !once(seenTime) {
					return false
				}
				if r.ms, ok = epochMillis(tok); !ok {
					return false
				}
				r.hasTime = true
			case "Data":
				v, ok := s.str()
				if !ok || !once(seenData) {
					return false
				}
				r.dataOff, r.dataEnd = s.i-1-len(v), s.i-1
			case "EncryptionType":
				if _, ok := s.str(); !ok || !once(seenEnc) {
					return false
				}
			case "PartitionKey":
				v, ok := s.str()
				if !ok || !once(seenPK) {
					return false
				}
				r.pk = d.addString(v)
			case "SequenceNumber":
				v, ok := s.str()
				if !ok || !once(seenSeq) {
					return false
				}
				r.seq = d.addString(v)
			default:
				return false
			}
			if more, ok = s.endMember('}'); !ok {
				return false
			}
		}
	}
	d.recs = append(d.recs, r)
	return true
}
