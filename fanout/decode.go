package fanout

import (
	"encoding/base64"
	"math"
	"strconv"
	"time"
	"unsafe"

	"github.com/fanoutd/fanoutd/kpl"
	"github.com/fanoutd/fanoutd/record"
)

// eventDecoder decodes the JSON payload of a SubscribeToShardEvent frame
// the way Kinesis writes it, without reflection and without an allocation
// per record: record data is base64-decoded into one buffer per
// subscription, reused by the next event, and the strings of an event
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
	recs  []rawRecord
	arena []byte
}

// rawRecord is one Kinesis record of the event being decoded: its data in
// the data buffer, its strings in the arena.
type rawRecord struct {
	dataOff, dataEnd int
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
// its bytes, without the quotes.
func (s *jsonScanner) str() ([]byte, bool) {
	if s.peek() != '"' {
		return nil, false
	}
	start := s.i + 1
	for i := start; i < len(s.b); i++ {
		switch c := s.b[i]; {
		case c == '"':
			s.i = i + 1
			return s.b[start:i], true
		case c == '\\' || c < 0x20:
			return nil, false
		}
	}
	return nil, false
}

// number scans a JSON number.
func (s *jsonScanner) number() ([]byte, bool) {
	s.ws()
	i, b := s.i, s.b
	if i < len(b) && b[i] == '-' {
		i++
	}
	d := i
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	if i == d || (b[d] == '0' && i-d > 1) {
		return nil, false
	}
	if i < len(b) && b[i] == '.' {
		i++
		d = i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == d {
			return nil, false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		d = i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == d {
			return nil, false
		}
	}
	tok := b[s.i:i]
	s.i = i
	return tok, true
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

// decode decodes payload, appending its user records to dst. ok is false
// when the SDK must decode it instead; then dst is returned unchanged.
func (d *eventDecoder) decode(dst []record.Record, payload []byte, dataBuf *[]byte) (eventMeta, []record.Record, bool) {
	var ev eventMeta
	if need := len(payload)/4*3 + 3; cap(*dataBuf) < need {
		*dataBuf = make([]byte, 0, bufSize(need))
	}
	data := (*dataBuf)[:0]
	d.recs, d.arena = d.recs[:0], d.arena[:0]
	s := jsonScanner{b: payload}
	var cont strSpan
	var hasCont, hasMillis, hasRecords bool
	if !s.expect('{') {
		return ev, dst, false
	}
	if s.peek() == '}' {
		s.i++
	} else {
		for more := true; more; {
			key, ok := s.member()
			if !ok {
				return ev, dst, false
			}
			switch string(key) {
			case "ContinuationSequenceNumber":
				v, ok := s.str()
				if !ok || hasCont {
					return ev, dst, false
				}
				cont, hasCont = d.addString(v), true
			case "MillisBehindLatest":
				tok, ok := s.number()
				if !ok || hasMillis {
					return ev, dst, false
				}
				n, ok := parseDecimalInt(tok)
				if !ok {
					return ev, dst, false
				}
				ev.millisBehindLatest, hasMillis = n, true
			case "ChildShards":
				// Only an empty list: a shard's end is rare, the SDK decodes it.
				if !s.expect('[') || !s.expect(']') {
					return ev, dst, false
				}
			case "Records":
				if hasRecords || !s.expect('[') {
					return ev, dst, false
				}
				hasRecords = true
				if s.peek() == ']' {
					s.i++
					break
				}
				for moreRecs := true; moreRecs; {
					var ok bool
					if data, ok = d.record(&s, data); !ok {
						return ev, dst, false
					}
					if moreRecs, ok = s.endMember(']'); !ok {
						return ev, dst, false
					}
				}
			default:
				return ev, dst, false
			}
			if more, ok = s.endMember('}'); !ok {
				return ev, dst, false
			}
		}
	}
	if s.ws(); s.i != len(s.b) {
		return ev, dst, false
	}
	*dataBuf = data[:0]
	strs := string(d.arena)
	if hasCont {
		c := strs[cont.off:cont.end]
		ev.continuation = &c
	}
	for i := range d.recs {
		r := &d.recs[i]
		var at time.Time
		if r.hasTime {
			at = time.Unix(0, r.ms*1e6).UTC()
		}
		var b []byte
		if r.dataEnd >= 0 {
			b = data[r.dataOff:r.dataEnd:r.dataEnd]
		}
		dst = kpl.Deaggregate(dst, b, strs[r.pk.off:r.pk.end], "", strs[r.seq.off:r.seq.end], at)
	}
	return ev, dst, true
}

// record decodes one record object, its data appended to data.
func (d *eventDecoder) record(s *jsonScanner, data []byte) ([]byte, bool) {
	if !s.expect('{') {
		return data, false
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
				return data, false
			}
			switch string(key) {
			case "ApproximateArrivalTimestamp":
				tok, ok := s.number()
				if !ok || !once(seenTime) {
					return data, false
				}
				if r.ms, ok = epochMillis(tok); !ok {
					return data, false
				}
				r.hasTime = true
			case "Data":
				v, ok := s.str()
				if !ok || !once(seenData) {
					return data, false
				}
				off := len(data)
				n, err := base64.StdEncoding.Decode(data[off:cap(data)], v)
				if err != nil {
					return data, false
				}
				data = data[:off+n]
				r.dataOff, r.dataEnd = off, off+n
			case "EncryptionType":
				if _, ok := s.str(); !ok || !once(seenEnc) {
					return data, false
				}
			case "PartitionKey":
				v, ok := s.str()
				if !ok || !once(seenPK) {
					return data, false
				}
				r.pk = d.addString(v)
			case "SequenceNumber":
				v, ok := s.str()
				if !ok || !once(seenSeq) {
					return data, false
				}
				r.seq = d.addString(v)
			default:
				return data, false
			}
			if more, ok = s.endMember('}'); !ok {
				return data, false
			}
		}
	}
	d.recs = append(d.recs, r)
	return data, true
}
