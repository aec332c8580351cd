// Package kpl de-aggregates (and, for tests and tools, aggregates) records
// made by the Kinesis Producer Library: the 0xF3899AC2 magic, a protobuf
// AggregatedRecord, and its MD5.
package kpl

import (
	"bytes"
	"crypto/md5"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/fanoutd/fanoutd/record"
)

// kplMagic starts every record that the Kinesis Producer Library aggregated.
var kplMagic = []byte{0xF3, 0x89, 0x9A, 0xC2}

// Field numbers of the KPL messages (aws-kinesis-agg messages.proto):
//
//	message AggregatedRecord { repeated string partition_key_table = 1;
//	                           repeated string explicit_hash_key_table = 2;
//	                           repeated Record records = 3; }
//	message Record { required uint64 partition_key_index = 1;
//	                 optional uint64 explicit_hash_key_index = 2;
//	                 required bytes data = 3; repeated Tag tags = 4; }
//	message Tag { required string key = 1; optional string value = 2; }
const (
	aggPartitionKeyTable    protowire.Number = 1
	aggExplicitHashKeyTable protowire.Number = 2
	aggRecords              protowire.Number = 3

	recPartitionKeyIndex    protowire.Number = 1
	recExplicitHashKeyIndex protowire.Number = 2
	recData                 protowire.Number = 3
	recTags                 protowire.Number = 4

	tagKey protowire.Number = 1 // value = 2 needs no more than skipping
)

// IsAggregated reports whether data is framed as a KPL aggregate: it starts with
// the KPL magic, is long enough to hold the trailing MD5 digest, and that digest
// matches the protobuf bytes between them. It does not parse the protobuf.
func IsAggregated(data []byte) bool {
	if len(data) < len(kplMagic)+md5.Size || !bytes.HasPrefix(data, kplMagic) {
		return false
	}
	body := data[len(kplMagic) : len(data)-md5.Size]
	sum := md5.Sum(body)
	return bytes.Equal(sum[:], data[len(data)-md5.Size:])
}

// Deaggregate appends the user records held in one Kinesis record to dst.
// It is Splitter's whole output at once: see Splitter for what a record
// yields. On pass-through the records already in dst are left as they were.
func Deaggregate(dst []record.Record, data []byte, partitionKey, explicitHashKey, sequenceNumber string, arrival time.Time) []record.Record {
	var s Splitter
	s.Reset(data, partitionKey, explicitHashKey, sequenceNumber, arrival)
	if n := s.Len(); cap(dst)-len(dst) < n {
		dst = slices.Grow(dst, n)
	}
	for {
		r, ok := s.Next()
		if !ok {
			return dst
		}
		dst = append(dst, r)
	}
}

// Splitter yields the user records held in one Kinesis record, one at a
// time, so that an aggregate of a million records costs no more memory
// than one of ten: nothing is kept per user record.
//
// A KPL aggregate yields one record per sub-record, all with the parent's
// sequence number, sub-sequence numbers 0, 1, 2, ... and Aggregated set; a
// sub-record without explicit_hash_key_index has ExplicitHashKey "".
//
// Anything else is passed through unchanged as one plain record carrying the
// given partition key, explicit hash key and data: a record without the KPL
// magic, with a bad MD5, whose protobuf fails to parse, that lacks a required
// field (partition_key_index, data, a tag's key), or whose partition_key_index
// or explicit_hash_key_index is out of range. Reset checks the whole
// aggregate before the first record is yielded, so an aggregate is either
// split whole or passed through whole. An aggregate with no sub-records is
// passed through too: the KPL never emits one, so such a record is more
// likely user data that happens to look like an aggregate than an aggregate
// that means "nothing".
//
// Unknown fields are skipped, as is a known field with an unexpected wire
// type, which is what protobuf decoders (and so the KCL) do with it.
//
// Data of every record yielded aliases data: nothing is copied, so the
// caller must not modify data while the records are in use. Sub-record Data
// slices have their capacity capped at their length, so appending to one
// never overwrites its neighbours. Partition and explicit hash keys are
// fresh strings, sharing one allocation per aggregate.
//
// The zero Splitter yields nothing. A Splitter is reused with Reset; the
// key-table offsets it keeps are bounded by the record's size and are
// released after an outsized aggregate.
type Splitter struct {
	plain   record.Record // yielded once when body is nil
	pending bool          // plain not yet yielded
	body    []byte        // the rest of the AggregatedRecord's fields to read
	n       int           // user records in total
	seq     string
	arrival time.Time
	sub     int64
	keys    string   // every table entry, partition keys first
	pkOff   []uint32 // partition key i is keys[pkOff[i]:pkOff[i+1]]
	ehkOff  []uint32 // explicit hash key i is keys[ehkOff[i]:ehkOff[i+1]]
}

// maxKeptOffsets is the most key-table offsets a Splitter keeps between
// records: an aggregate with a larger table allocates its own.
const maxKeptOffsets = 4096

// Reset makes s yield the user records of one Kinesis record.
func (s *Splitter) Reset(data []byte, partitionKey, explicitHashKey, sequenceNumber string, arrival time.Time) {
	s.body, s.keys, s.sub = nil, "", 0
	s.seq, s.arrival = sequenceNumber, arrival
	if cap(s.pkOff) > maxKeptOffsets {
		s.pkOff = nil
	}
	if cap(s.ehkOff) > maxKeptOffsets {
		s.ehkOff = nil
	}
	if IsAggregated(data) {
		body := data[len(kplMagic) : len(data)-md5.Size]
		if shape, ok := measureAggregate(body); ok && shape.records > 0 && validRecords(body, shape) {
			s.buildTables(body, shape)
			s.body, s.n, s.pending = body, shape.records, false
			s.plain = record.Record{}
			return
		}
	}
	s.plain = record.Record{
		Data:            data,
		PartitionKey:    partitionKey,
		ExplicitHashKey: explicitHashKey,
		SequenceNumber:  sequenceNumber,
		ArrivalTime:     arrival,
	}
	s.n, s.pending = 1, true
}

// Len is how many user records the record yields in all.
func (s *Splitter) Len() int { return s.n }

// Next returns the next user record, or false when there are no more.
func (s *Splitter) Next() (record.Record, bool) {
	if s.pending {
		s.pending = false
		r := s.plain
		s.plain = record.Record{}
		return r, true
	}
	// Reset validated every field.
	if v, rest, ok := nextBytesField(s.body, aggRecords); ok {
		s.body = rest
		f, _ := parseRecord(v)
		r := record.Record{
			Data:              f.data,
			PartitionKey:      s.keys[s.pkOff[f.pk]:s.pkOff[f.pk+1]],
			SequenceNumber:    s.seq,
			SubSequenceNumber: s.sub,
			Aggregated:        true,
			ArrivalTime:       s.arrival,
		}
		if f.hasEHK {
			r.ExplicitHashKey = s.keys[s.ehkOff[f.ehk]:s.ehkOff[f.ehk+1]]
		}
		s.sub++
		return r, true
	}
	s.body = nil
	return record.Record{}, false
}

// nextBytesField returns the next field want of body that is a byte string,
// and what follows it; ok is false when there is none. Every field of body
// was validated.
func nextBytesField(body []byte, want protowire.Number) (v, rest []byte, ok bool) {
	for b := body; len(b) > 0; {
		num, typ, n := protowire.ConsumeTag(b)
		b = b[n:]
		if num != want || typ != protowire.BytesType {
			b = b[protowire.ConsumeFieldValue(num, typ, b):]
			continue
		}
		v, n := protowire.ConsumeBytes(b)
		return v, b[n:], true
	}
	return nil, nil, false
}

// buildTables copies every key-table entry of body into one string,
// partition keys first, and notes where each starts.
func (s *Splitter) buildTables(body []byte, shape aggregateShape) {
	var sb strings.Builder
	sb.Grow(shape.tableBytes)
	s.pkOff = slices.Grow(s.pkOff[:0], shape.partitionKeys+1)
	s.ehkOff = slices.Grow(s.ehkOff[:0], shape.explicitHashKeys+1)
	for _, table := range []protowire.Number{aggPartitionKeyTable, aggExplicitHashKeyTable} {
		offs := &s.pkOff
		if table == aggExplicitHashKeyTable {
			offs = &s.ehkOff
		}
		// measureAggregate validated every field.
		for v, b, ok := nextBytesField(body, table); ok; v, b, ok = nextBytesField(b, table) {
			*offs = append(*offs, uint32(sb.Len()))
			sb.Write(v)
		}
		*offs = append(*offs, uint32(sb.Len()))
	}
	s.keys = sb.String()
}

// validRecords checks every Record message of body, and that its key
// indexes are within the tables shape counted.
func validRecords(body []byte, shape aggregateShape) bool {
	for v, b, ok := nextBytesField(body, aggRecords); ok; v, b, ok = nextBytesField(b, aggRecords) {
		f, valid := parseRecord(v)
		if !valid || f.pk >= uint64(shape.partitionKeys) || (f.hasEHK && f.ehk >= uint64(shape.explicitHashKeys)) {
			return false
		}
	}
	return true
}

// aggregateShape is what a first, allocation-free pass learns about an
// AggregatedRecord body.
type aggregateShape struct {
	partitionKeys    int // entries in partition_key_table
	explicitHashKeys int // entries in explicit_hash_key_table
	records          int
	tableBytes       int // bytes of all table entries together
}

// measureAggregate checks that every top-level field of an AggregatedRecord is
// well formed and counts what the later passes need.
func measureAggregate(body []byte) (aggregateShape, bool) {
	var shape aggregateShape
	for b := body; len(b) > 0; {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return shape, false
		}
		b = b[n:]
		if typ != protowire.BytesType {
			n = protowire.ConsumeFieldValue(num, typ, b)
		} else {
			var v []byte
			v, n = protowire.ConsumeBytes(b)
			switch num {
			case aggPartitionKeyTable:
				shape.partitionKeys++
				shape.tableBytes += len(v)
			case aggExplicitHashKeyTable:
				shape.explicitHashKeys++
				shape.tableBytes += len(v)
			case aggRecords:
				shape.records++
			}
		}
		if n < 0 {
			return shape, false
		}
		b = b[n:]
	}
	return shape, true
}

// subRecord is one Record message, its keys still table indexes.
type subRecord struct {
	data    []byte
	pk, ehk uint64
	hasEHK  bool
}

// parseRecord decodes one Record message. Its data is a sub-slice of b,
// its capacity capped at its length.
func parseRecord(b []byte) (subRecord, bool) {
	var (
		r              subRecord
		hasPK, hasData bool
	)
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return r, false
		}
		b = b[n:]
		switch {
		case num == recPartitionKeyIndex && typ == protowire.VarintType:
			r.pk, n = protowire.ConsumeVarint(b)
			hasPK = true
		case num == recExplicitHashKeyIndex && typ == protowire.VarintType:
			r.ehk, n = protowire.ConsumeVarint(b)
			r.hasEHK = true
		case num == recData && typ == protowire.BytesType:
			var v []byte
			v, n = protowire.ConsumeBytes(b)
			r.data = v[:len(v):len(v)]
			hasData = true
		case num == recTags && typ == protowire.BytesType:
			var v []byte
			v, n = protowire.ConsumeBytes(b)
			if n >= 0 && !validTag(v) {
				return r, false
			}
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return r, false
		}
		b = b[n:]
	}
	return r, hasPK && hasData
}

// validTag reports whether b is a well-formed Tag message with its required
// key. Tags are not surfaced, but a malformed one makes the whole aggregate
// unparsable, as it does for a protobuf decoder.
func validTag(b []byte) bool {
	hasKey := false
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return false
		}
		b = b[n:]
		if num == tagKey && typ == protowire.BytesType {
			hasKey = true
		}
		if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
			return false
		}
		b = b[n:]
	}
	return hasKey
}
