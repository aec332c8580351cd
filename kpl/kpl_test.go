package kpl

import (
	"bytes"
	"crypto/md5"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"
	"unsafe"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/fanoutd/fanoutd/record"
)

var testArrival = time.Date(2024, 3, 1, 12, 0, 0, 123e6, time.UTC)

// conformanceFile is where kpl-aggregated.json is looked for, first match wins:
// the copy in testdata keeps the test self-contained; the shared original is
// the fallback for a checkout that lacks the copy.
var conformanceFiles = []string{
	filepath.Join("testdata", "kpl-aggregated.json"),
	filepath.Join("..", "..", "shared", "conformance", "kpl-aggregated.json"),
}

type conformanceRecord struct {
	PartitionKey    string  `json:"partitionKey"`
	ExplicitHashKey *string `json:"explicitHashKey"`
	Data            []byte  `json:"data"` // standard base64 in the file
}

type conformanceSuite struct {
	Generator string `json:"generator"`
	Cases     []struct {
		Name           string              `json:"name"`
		KinesisRecords []conformanceRecord `json:"kinesisRecords"`
		UserRecords    []conformanceRecord `json:"userRecords"`
	} `json:"cases"`
}

func loadConformance(t testing.TB) conformanceSuite {
	t.Helper()
	for _, path := range conformanceFiles {
		b, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		} else if err != nil {
			t.Fatal(err)
		}
		var s conformanceSuite
		if err := json.Unmarshal(b, &s); err != nil {
			t.Fatalf("parse %s: %v", path, err)
		}
		if len(s.Cases) == 0 {
			t.Fatalf("%s: no cases", path)
		}
		return s
	}
	t.Fatalf("kpl-aggregated.json not found in %q", conformanceFiles)
	return conformanceSuite{}
}

func (r conformanceRecord) explicitHashKey() string {
	if r.ExplicitHashKey == nil {
		return ""
	}
	return *r.ExplicitHashKey
}

func TestDeaggregateConformance(t *testing.T) {
	suite := loadConformance(t)
	for _, tc := range suite.Cases {
		t.Run(tc.Name, func(t *testing.T) {
			var got []record.Record
			for i, kr := range tc.KinesisRecords {
				if !IsAggregated(kr.Data) {
					t.Fatalf("kinesis record %d: IsAggregated = false", i)
				}
				seq := fmt.Sprintf("4959%04d", i)
				n := len(got)
				got = Deaggregate(got, kr.Data, kr.PartitionKey, kr.explicitHashKey(), seq, testArrival)
				for j, r := range got[n:] {
					if !r.Aggregated || r.SequenceNumber != seq || r.SubSequenceNumber != int64(j) || !r.ArrivalTime.Equal(testArrival) {
						t.Errorf("kinesis record %d, user record %d: got aggregated=%v seq=%q subseq=%d arrival=%v, want true %q %d %v",
							i, j, r.Aggregated, r.SequenceNumber, r.SubSequenceNumber, r.ArrivalTime, seq, j, testArrival)
					}
				}
			}
			if got, want := len(got), len(tc.UserRecords); got != want {
				t.Fatalf("got %d user records, want %d", got, want)
			}
			for i, want := range tc.UserRecords {
				r := got[i]
				if !bytes.Equal(r.Data, want.Data) || r.PartitionKey != want.PartitionKey || r.ExplicitHashKey != want.explicitHashKey() {
					t.Errorf("user record %d: got (%q, %q, %q), want (%q, %q, %q)",
						i, r.Data, r.PartitionKey, r.ExplicitHashKey, want.Data, want.PartitionKey, want.explicitHashKey())
				}
			}
		})
	}
}

// TestAggregateMatchesReference checks that Aggregate produces the very bytes
// of aws-kinesis-agg for the conformance cases that hold one Kinesis record.
func TestAggregateMatchesReference(t *testing.T) {
	suite := loadConformance(t)
	for _, tc := range suite.Cases {
		if len(tc.KinesisRecords) != 1 {
			continue
		}
		t.Run(tc.Name, func(t *testing.T) {
			in := make([]record.Record, len(tc.UserRecords))
			for i, u := range tc.UserRecords {
				in[i] = record.Record{Data: u.Data, PartitionKey: u.PartitionKey, ExplicitHashKey: u.explicitHashKey()}
			}
			if got, want := Aggregate(in), tc.KinesisRecords[0].Data; !bytes.Equal(got, want) {
				t.Fatalf("Aggregate:\n got %x\nwant %x", got, want)
			}
		})
	}
}

// frame wraps a protobuf body the way the KPL does: magic, body, MD5 of body.
func frame(body []byte) []byte {
	out := append(append([]byte{}, kplMagic...), body...)
	sum := md5.Sum(body)
	return append(out, sum[:]...)
}

// pb builds protobuf bytes for the table tests.
type pb []byte

func (b pb) varint(num protowire.Number, v uint64) pb {
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

func (b pb) bytes(num protowire.Number, v []byte) pb {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

func (b pb) str(num protowire.Number, v string) pb { return b.bytes(num, []byte(v)) }

func (b pb) fixed32(num protowire.Number, v uint32) pb {
	b = protowire.AppendTag(b, num, protowire.Fixed32Type)
	return protowire.AppendFixed32(b, v)
}

func (b pb) fixed64(num protowire.Number, v uint64) pb {
	b = protowire.AppendTag(b, num, protowire.Fixed64Type)
	return protowire.AppendFixed64(b, v)
}

func (b pb) group(num protowire.Number, inner pb) pb {
	b = protowire.AppendTag(b, num, protowire.StartGroupType)
	b = append(b, inner...)
	return protowire.AppendTag(b, num, protowire.EndGroupType)
}

// rec is a well-formed Record message with partition key index pk and data.
func rec(pk uint64, data string) pb { return pb{}.varint(1, pk).str(3, data) }

type wantRecord struct {
	data, pk, ehk string
}

func TestDeaggregate(t *testing.T) {
	twoKeys := pb{}.str(1, "pk0").str(1, "pk1").str(2, "123")
	valid := frame(Aggregate([]record.Record{{Data: []byte("x"), PartitionKey: "k"}}))

	tests := []struct {
		name string
		data []byte
		want []wantRecord // nil: passed through
	}{
		{name: "plain record", data: []byte("hello")},
		{name: "empty record", data: []byte{}},
		{name: "magic only", data: kplMagic},
		{name: "truncated below magic and digest", data: append(append([]byte{}, kplMagic...), make([]byte, md5.Size-1)...)},
		{name: "valid aggregate cut short by one byte", data: valid[:len(valid)-1]},
		{name: "magic but bad md5", data: func() []byte {
			b := frame(twoKeys.bytes(3, rec(0, "a")))
			b[len(b)-1] ^= 1
			return b
		}()},
		{name: "magic but body altered", data: func() []byte {
			b := frame(twoKeys.bytes(3, rec(0, "a")))
			b[len(kplMagic)+2] ^= 1
			return b
		}()},
		{name: "good md5, garbage protobuf", data: frame([]byte{0xff, 0xff, 0xff, 0xff, 0xff})},
		{name: "good md5, truncated length", data: frame(pb{}.str(1, "abc")[:3])},
		{name: "good md5, field number zero", data: frame([]byte{0x02, 0x00})},
		{name: "good md5, stray end group", data: frame(protowire.AppendTag(nil, 5, protowire.EndGroupType))},
		{name: "good md5, garbage inside record", data: frame(twoKeys.bytes(3, pb{0x08}))},
		{name: "empty aggregate", data: frame(nil)},
		{name: "tables but no records", data: frame(twoKeys)},
		{name: "partition key index out of range", data: frame(twoKeys.bytes(3, rec(0, "a")).bytes(3, rec(2, "b")))},
		{name: "huge partition key index", data: frame(twoKeys.bytes(3, rec(1<<63, "a")))},
		{name: "explicit hash key index out of range", data: frame(twoKeys.bytes(3, rec(0, "a").varint(2, 1)))},
		{name: "explicit hash key index without table", data: frame(pb{}.str(1, "k").bytes(3, rec(0, "a").varint(2, 0)))},
		{name: "missing partition key index", data: frame(twoKeys.bytes(3, pb{}.str(3, "a")))},
		{name: "missing data", data: frame(twoKeys.bytes(3, pb{}.varint(1, 0)))},
		{name: "one good one missing data", data: frame(twoKeys.bytes(3, rec(0, "a")).bytes(3, pb{}.varint(1, 1)))},
		{name: "tag without key", data: frame(twoKeys.bytes(3, rec(0, "a").bytes(4, pb{}.str(2, "v"))))},
		{name: "tag with garbage", data: frame(twoKeys.bytes(3, rec(0, "a").bytes(4, pb{0x0a, 0x05})))},
		{
			name: "two records",
			data: frame(twoKeys.bytes(3, rec(1, "a")).bytes(3, rec(0, "b").varint(2, 0))),
			want: []wantRecord{{"a", "pk1", ""}, {"b", "pk0", "123"}},
		},
		{
			name: "records before tables",
			data: frame(pb{}.bytes(3, rec(1, "a")).str(2, "9").str(1, "p").str(1, "q").bytes(3, rec(0, "b").varint(2, 0))),
			want: []wantRecord{{"a", "q", ""}, {"b", "p", "9"}},
		},
		{
			name: "tables interleaved",
			data: frame(pb{}.str(1, "p").str(2, "7").str(1, "q").str(2, "8").bytes(3, rec(1, "a").varint(2, 1)).bytes(3, rec(0, "b").varint(2, 0))),
			want: []wantRecord{{"a", "q", "8"}, {"b", "p", "7"}},
		},
		{
			name: "empty data and empty partition key",
			data: frame(pb{}.str(1, "").bytes(3, rec(0, ""))),
			want: []wantRecord{{"", "", ""}},
		},
		{
			name: "unknown fields skipped",
			data: frame(pb{}.
				varint(15, 42).str(1, "k").fixed32(16, 7).fixed64(17, 8).
				group(18, pb{}.varint(1, 1).str(2, "nested")).str(99999, "far away").
				bytes(3, pb{}.varint(7, 1).str(3, "a").fixed32(8, 1).varint(1, 0).group(9, nil).fixed64(10, 2).str(11, "x")).
				varint(20, 1)),
			want: []wantRecord{{"a", "k", ""}},
		},
		{
			name: "known field with wrong wire type is skipped",
			data: frame(pb{}.varint(1, 5).str(1, "k").fixed32(2, 1).bytes(3, rec(0, "a").str(2, "not a varint").fixed64(3, 1))),
			want: []wantRecord{{"a", "k", ""}},
		},
		{
			name: "repeated scalar field: last one wins",
			data: frame(twoKeys.bytes(3, rec(0, "first").varint(1, 1).str(3, "second"))),
			want: []wantRecord{{"second", "pk1", ""}},
		},
		{
			name: "valid tags ignored",
			data: frame(twoKeys.bytes(3, rec(0, "a").bytes(4, pb{}.str(1, "k").str(2, "v")).bytes(4, pb{}.str(1, "only-key")))),
			want: []wantRecord{{"a", "pk0", ""}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prior := record.Record{PartitionKey: "prior"}
			dst := make([]record.Record, 1, 2)
			dst[0] = prior
			got := Deaggregate(dst, tt.data, "outer-pk", "outer-ehk", "seq-1", testArrival)
			if got[0].PartitionKey != prior.PartitionKey || got[0].Data != nil {
				t.Fatalf("record already in dst changed: %+v", got[0])
			}
			got = got[1:]
			if tt.want == nil {
				if len(got) != 1 {
					t.Fatalf("got %d records, want 1 passed through", len(got))
				}
				assertPassThrough(t, got[0], tt.data)
				return
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d records, want %d: %+v", len(got), len(tt.want), got)
			}
			for i, w := range tt.want {
				r := got[i]
				if string(r.Data) != w.data || r.PartitionKey != w.pk || r.ExplicitHashKey != w.ehk {
					t.Errorf("record %d: got (%q, %q, %q), want (%q, %q, %q)", i, r.Data, r.PartitionKey, r.ExplicitHashKey, w.data, w.pk, w.ehk)
				}
				if !r.Aggregated || r.SubSequenceNumber != int64(i) || r.SequenceNumber != "seq-1" || !r.ArrivalTime.Equal(testArrival) {
					t.Errorf("record %d: got aggregated=%v subseq=%d seq=%q arrival=%v", i, r.Aggregated, r.SubSequenceNumber, r.SequenceNumber, r.ArrivalTime)
				}
				if !within(r.Data, tt.data) || cap(r.Data) != len(r.Data) {
					t.Errorf("record %d: Data is not a capped sub-slice of the input", i)
				}
			}
		})
	}
}

func assertPassThrough(t testing.TB, r record.Record, data []byte) {
	t.Helper()
	want := record.Record{
		Data:            data,
		PartitionKey:    "outer-pk",
		ExplicitHashKey: "outer-ehk",
		SequenceNumber:  "seq-1",
		ArrivalTime:     testArrival,
	}
	if !sameSlice(r.Data, data) {
		t.Errorf("pass-through Data is not the input slice")
	}
	if r.PartitionKey != want.PartitionKey || r.ExplicitHashKey != want.ExplicitHashKey || r.SequenceNumber != want.SequenceNumber ||
		r.SubSequenceNumber != 0 || r.Aggregated || !r.ArrivalTime.Equal(want.ArrivalTime) {
		t.Errorf("pass-through: got %+v, want %+v", r, want)
	}
}

func sameSlice(a, b []byte) bool {
	return len(a) == len(b) && unsafe.SliceData(a) == unsafe.SliceData(b)
}

// within reports whether sub lies inside whole's memory.
func within(sub, whole []byte) bool {
	start := uintptr(unsafe.Pointer(unsafe.SliceData(whole)))
	p := uintptr(unsafe.Pointer(unsafe.SliceData(sub)))
	return p >= start && p+uintptr(len(sub)) <= start+uintptr(len(whole))
}

func TestDeaggregateFailureLeavesNoTrace(t *testing.T) {
	// The bad record comes last, after good ones were already appended.
	data := frame(pb{}.str(1, "k").bytes(3, rec(0, "a")).bytes(3, rec(0, "b")).bytes(3, rec(5, "c")))
	dst := make([]record.Record, 0, 8)
	got := Deaggregate(dst, data, "outer-pk", "outer-ehk", "seq-1", testArrival)
	if len(got) != 1 {
		t.Fatalf("got %d records, want 1", len(got))
	}
	assertPassThrough(t, got[0], data)
	if tail := got[1:3]; tail[0].Data != nil || tail[1].Data != nil {
		t.Errorf("abandoned sub-records still referenced beyond len: %+v", tail)
	}
}

func TestAggregateDedupesKeys(t *testing.T) {
	data := Aggregate([]record.Record{
		{Data: []byte("1"), PartitionKey: "a", ExplicitHashKey: "5"},
		{Data: []byte("2"), PartitionKey: "b"},
		{Data: []byte("3"), PartitionKey: "a", ExplicitHashKey: "5"},
		{Data: []byte("4"), PartitionKey: "b", ExplicitHashKey: "6"},
	})
	counts := map[protowire.Number]int{}
	for b := data[len(kplMagic) : len(data)-md5.Size]; len(b) > 0; {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			t.Fatal("bad tag")
		}
		b = b[n:]
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			t.Fatal("bad field")
		}
		b = b[n:]
		counts[num]++
	}
	if got, want := counts, (map[protowire.Number]int{1: 2, 2: 2, 3: 4}); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("field counts: got %v, want %v", got, want)
	}
}

func randomString(r *rand.Rand, alphabet []string, maxLen int) string {
	var b []byte
	for range r.IntN(maxLen + 1) {
		b = append(b, alphabet[r.IntN(len(alphabet))]...)
	}
	return string(b)
}

// TestAggregateRoundTrip is a property test: any records Aggregate encodes,
// Deaggregate gives back unchanged.
func TestAggregateRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{"a", "b", "Z", "0", ".", " ", "\n", "é", "日本", "\x00", "\xff"}
	for iter := range 2000 {
		n := 1 + r.IntN(40)
		pool := make([]string, 1+r.IntN(5))
		for i := range pool {
			pool[i] = randomString(r, alphabet, 8)
		}
		in := make([]record.Record, n)
		for i := range in {
			in[i].PartitionKey = pool[r.IntN(len(pool))]
			if r.IntN(3) == 0 {
				in[i].ExplicitHashKey = fmt.Sprint(r.Uint64())
			}
			in[i].Data = []byte(randomString(r, alphabet, 300))
		}
		data := Aggregate(in)
		if !IsAggregated(data) {
			t.Fatalf("iteration %d: IsAggregated(Aggregate(...)) = false", iter)
		}
		out := Deaggregate(nil, data, "outer", "", "seq", testArrival)
		if len(out) != n {
			t.Fatalf("iteration %d: got %d records, want %d", iter, len(out), n)
		}
		for i, o := range out {
			w := in[i]
			if !bytes.Equal(o.Data, w.Data) || o.PartitionKey != w.PartitionKey || o.ExplicitHashKey != w.ExplicitHashKey ||
				o.SubSequenceNumber != int64(i) || !o.Aggregated || o.SequenceNumber != "seq" {
				t.Fatalf("iteration %d, record %d: got %+v, want %+v", iter, i, o, w)
			}
		}
	}
}

func TestAggregateEmpty(t *testing.T) {
	data := Aggregate(nil)
	if !IsAggregated(data) {
		t.Fatal("empty aggregate is not framed as an aggregate")
	}
	got := Deaggregate(nil, data, "outer-pk", "outer-ehk", "seq-1", testArrival)
	if len(got) != 1 {
		t.Fatalf("got %d records, want 1", len(got))
	}
	assertPassThrough(t, got[0], data)
}

func FuzzDeaggregate(f *testing.F) {
	suite := loadConformance(f)
	for _, tc := range suite.Cases {
		for _, kr := range tc.KinesisRecords {
			f.Add(kr.Data)
			f.Add(kr.Data[len(kplMagic) : len(kr.Data)-md5.Size])
		}
	}
	f.Add([]byte("plain"))
	f.Add([]byte{})
	f.Add(append([]byte{}, kplMagic...))
	agg := Aggregate([]record.Record{{Data: []byte("a"), PartitionKey: "p", ExplicitHashKey: "1"}, {Data: nil, PartitionKey: "q"}})
	f.Add(agg)
	f.Add(agg[len(kplMagic) : len(agg)-md5.Size])
	f.Add([]byte(pb{}.str(1, "k").bytes(3, rec(0, "a").bytes(4, pb{}.str(1, "t")))))

	f.Fuzz(func(t *testing.T, in []byte) {
		// Random bytes almost never carry a valid MD5, so also feed the input
		// as the protobuf body of a correctly framed aggregate.
		checkDeaggregate(t, in)
		checkDeaggregate(t, frame(in))
	})
}

func checkDeaggregate(t *testing.T, in []byte) {
	got := Deaggregate(nil, in, "outer-pk", "outer-ehk", "seq-1", testArrival)
	if len(got) == 0 {
		t.Fatal("no records")
	}
	if len(got) == 1 && !got[0].Aggregated {
		assertPassThrough(t, got[0], in)
		return
	}
	if !IsAggregated(in) {
		t.Fatal("records came out of input that IsAggregated rejects")
	}
	body := in[len(kplMagic) : len(in)-md5.Size]
	for i, r := range got {
		if !r.Aggregated || r.SubSequenceNumber != int64(i) || r.SequenceNumber != "seq-1" || !r.ArrivalTime.Equal(testArrival) {
			t.Fatalf("record %d: bad metadata %+v", i, r)
		}
		if !within(r.Data, body) || cap(r.Data) != len(r.Data) {
			t.Fatalf("record %d: Data is not a capped sub-slice of the protobuf body", i)
		}
	}
	// Re-encoding what came out must give the same records back.
	again := Deaggregate(nil, Aggregate(got), "x", "", "seq-1", testArrival)
	if len(again) != len(got) {
		t.Fatalf("re-aggregated: got %d records, want %d", len(again), len(got))
	}
	for i := range got {
		a, b := again[i], got[i]
		if !bytes.Equal(a.Data, b.Data) || a.PartitionKey != b.PartitionKey || a.ExplicitHashKey != b.ExplicitHashKey {
			t.Fatalf("re-aggregated record %d: got %+v, want %+v", i, a, b)
		}
	}
}

// benchRecords are 100 records of 100 bytes over keys partition keys.
func benchRecords(keys int) []record.Record {
	in := make([]record.Record, 100)
	for i := range in {
		in[i] = record.Record{
			Data:         bytes.Repeat([]byte{byte('a' + i%26)}, 100),
			PartitionKey: fmt.Sprintf("partition-key-%03d", i%keys),
		}
	}
	return in
}

func BenchmarkDeaggregate(b *testing.B) {
	for _, keys := range []int{1, 100} {
		b.Run(fmt.Sprintf("records=100/size=100/keys=%d", keys), func(b *testing.B) {
			in := benchRecords(keys)
			data := Aggregate(in)
			dst := make([]record.Record, 0, len(in))
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				dst = Deaggregate(dst[:0], data, "pk", "", "49590338271490256608559692538361571095921575989136588898", testArrival)
			}
			if len(dst) != len(in) {
				b.Fatalf("got %d records, want %d", len(dst), len(in))
			}
		})
	}
}

// BenchmarkSplitter is the shard loop's way: one reused Splitter yields the
// user records one at a time.
func BenchmarkSplitter(b *testing.B) {
	for _, keys := range []int{1, 100} {
		b.Run(fmt.Sprintf("records=100/size=100/keys=%d", keys), func(b *testing.B) {
			in := benchRecords(keys)
			data := Aggregate(in)
			var s Splitter
			n := 0
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				s.Reset(data, "pk", "", "49590338271490256608559692538361571095921575989136588898", testArrival)
				for n = 0; ; n++ {
					if _, ok := s.Next(); !ok {
						break
					}
				}
			}
			if n != len(in) {
				b.Fatalf("got %d records, want %d", n, len(in))
			}
		})
	}
}

// A Splitter costs the same whatever the number of user records: nothing
// is allocated per record, and reused it allocates only its key table's
// string.
func TestSplitterAllocatesNothingPerRecord(t *testing.T) {
	for _, n := range []int{10, 100_000} {
		recs := make([]record.Record, n)
		for i := range recs {
			recs[i] = record.Record{PartitionKey: "k"}
		}
		data := Aggregate(recs)
		var s Splitter
		count := 0
		allocs := testing.AllocsPerRun(5, func() {
			s.Reset(data, "pk", "", "seq", testArrival)
			count = 0
			for {
				r, ok := s.Next()
				if !ok {
					break
				}
				if r.SubSequenceNumber != int64(count) {
					t.Fatalf("record %d has sub-sequence %d", count, r.SubSequenceNumber)
				}
				count++
			}
		})
		if count != n || s.Len() != n {
			t.Fatalf("yielded %d records (Len %d), want %d", count, s.Len(), n)
		}
		if allocs > 1 {
			t.Errorf("%d records: %.0f allocations per aggregate, want at most 1", n, allocs)
		}
	}
}

// An aggregate that turns out to be malformed after many good sub-records
// is passed through whole: Reset checks it all before the first is yielded.
func TestSplitterPassesAMalformedAggregateThroughWhole(t *testing.T) {
	body := pb{}.str(1, "k")
	for range 1000 {
		body = body.bytes(3, rec(0, "a"))
	}
	data := frame(body.bytes(3, rec(5, "c")))
	var s Splitter
	s.Reset(data, "outer-pk", "outer-ehk", "seq-1", testArrival)
	r, ok := s.Next()
	if !ok || s.Len() != 1 {
		t.Fatalf("Len %d, first %v", s.Len(), ok)
	}
	assertPassThrough(t, r, data)
	if _, ok := s.Next(); ok {
		t.Fatal("a second record from a pass-through")
	}
}
