// Package kpl de-aggregates (and, for tests and tools, aggregates) records
// made by the Kinesis Producer Library: the 0xF3899AC2 magic, a protobuf
// AggregatedRecord, and its MD5.
package kpl

import (
	"bytes"
	"crypto/md5"
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
//
// A KPL aggregate yields one record per sub-record, all with the parent's
// sequence number, sub-sequence numbers 0, 1, 2, ... and Aggregated set; a
// sub-record without explicit_hash_key_index has ExplicitHashKey "".
//
// Anything else is passed through unchanged as one plain record carrying the
// given partition key, explicit hash key and data: a record without the KPL
// magic, with a bad MD5, whose protobuf fails to parse, that lacks a required
// field (partition_key_index, data, a tag's key), or whose partition_key_index
// or explicit_hash_key_index is out of range. An aggregate with no sub-records
// is passed through too: the KPL never emits one, so such a record is more
// likely user data that happens to look like an aggregate than an aggregate
// that means "nothing".
//
// Unknown fields are skipped, as is a known field with an unexpected wire
// type, which is what protobuf decoders (and so the KCL) do with it.
//
// Data of every returned record aliases data: nothing is copied, so the caller
// must not modify data while the records are in use. Sub-record Data slices have
// their capacity capped at their length, so appending to one never overwrites its
// neighbours. Partition and explicit hash keys are fresh strings, sharing one
// allocation per aggregate.
//
// On pass-through the records already in dst are left as they were.
func Deaggregate(dst []record.Record, data []byte, partitionKey, explicitHashKey, sequenceNumber string, arrival time.Time) []record.Record {
	if IsAggregated(data) {
		body := data[len(kplMagic) : len(data)-md5.Size]
		if out, ok := appendSubRecords(dst, body, sequenceNumber, arrival); ok {
			return out
		}
	}
	return append(dst, record.Record{
		Data:            data,
		PartitionKey:    partitionKey,
		ExplicitHashKey: explicitHashKey,
		SequenceNumber:  sequenceNumber,
		ArrivalTime:     arrival,
	})
}

// aggregateShape is what a first, allocation-free pass learns about an
// AggregatedRecord body.
type aggregateShape struct {
	partitionKeys    int // entries in partition_key_table
	explicitHashKeys int // entries in explicit_hash_key_table
	records          int
	tableBytes       int // bytes of all table entries together
}

// span locates one key-table entry inside the string holding all of them.
type span struct{ off, end int }

// lookup returns entry i of a key table whose entries are spans of all. The
// string and the spans are kept apart, not in one struct, so that escape
// analysis sees that only the string reaches the result and the spans can
// live on the stack.
func lookup(all string, spans []span, i uint64) (string, bool) {
	if i >= uint64(len(spans)) {
		return "", false
	}
	s := spans[i]
	return all[s.off:s.end], true
}

// smallTable is how many table entries are tracked without a heap allocation.
const smallTable = 32

// appendSubRecords decodes body, the AggregatedRecord protobuf, onto dst.
// It reports false, with dst unchanged, when body is not a usable aggregate.
//
// Fields may come in any order on the wire (records before the tables is
// legal), so it takes three passes: validate and measure, build the key
// tables, decode the records. The first two only hop from field to field.
func appendSubRecords(dst []record.Record, body []byte, seq string, arrival time.Time) ([]record.Record, bool) {
	shape, ok := measureAggregate(body)
	if !ok || shape.records == 0 {
		return dst, false
	}

	// One string holds every table entry; entries are substrings of it, so a
	// whole aggregate costs one allocation for its keys however many it has.
	var pkArr, ehkArr [smallTable]span
	pkSpans, ehkSpans := pkArr[:0], ehkArr[:0]
	if shape.partitionKeys > smallTable {
		pkSpans = make([]span, 0, shape.partitionKeys)
	}
	if shape.explicitHashKeys > smallTable {
		ehkSpans = make([]span, 0, shape.explicitHashKeys)
	}
	var sb strings.Builder
	sb.Grow(shape.tableBytes)
	for b := body; len(b) > 0; {
		num, typ, n := protowire.ConsumeTag(b) // measureAggregate validated every field
		b = b[n:]
		if typ != protowire.BytesType || (num != aggPartitionKeyTable && num != aggExplicitHashKeyTable) {
			b = b[protowire.ConsumeFieldValue(num, typ, b):]
			continue
		}
		v, n := protowire.ConsumeBytes(b)
		b = b[n:]
		s := span{off: sb.Len(), end: sb.Len() + len(v)}
		sb.Write(v)
		if num == aggPartitionKeyTable {
			pkSpans = append(pkSpans, s)
		} else {
			ehkSpans = append(ehkSpans, s)
		}
	}
	keys := sb.String()

	start := len(dst)
	if cap(dst)-start < shape.records {
		grown := make([]record.Record, start, start+shape.records)
		copy(grown, dst)
		dst = grown
	}
	var sub int64
	for b := body; len(b) > 0; {
		num, typ, n := protowire.ConsumeTag(b)
		b = b[n:]
		if num != aggRecords || typ != protowire.BytesType {
			b = b[protowire.ConsumeFieldValue(num, typ, b):]
			continue
		}
		v, n := protowire.ConsumeBytes(b)
		b = b[n:]
		r, ok := parseRecord(v, keys, pkSpans, ehkSpans)
		if !ok {
			clear(dst[start:])
			return dst[:start], false
		}
		r.SequenceNumber = seq
		r.SubSequenceNumber = sub
		r.Aggregated = true
		r.ArrivalTime = arrival
		dst = append(dst, r)
		sub++
	}
	return dst, true
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

// parseRecord decodes one Record message. Its Data is a sub-slice of b; its
// keys are looked up in the tables whose entries are spans of keys.
func parseRecord(b []byte, keys string, pks, ehks []span) (record.Record, bool) {
	var (
		r                      record.Record
		pkIndex, ehkIndex      uint64
		hasPK, hasEHK, hasData bool
	)
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return r, false
		}
		b = b[n:]
		switch {
		case num == recPartitionKeyIndex && typ == protowire.VarintType:
			pkIndex, n = protowire.ConsumeVarint(b)
			hasPK = true
		case num == recExplicitHashKeyIndex && typ == protowire.VarintType:
			ehkIndex, n = protowire.ConsumeVarint(b)
			hasEHK = true
		case num == recData && typ == protowire.BytesType:
			var v []byte
			v, n = protowire.ConsumeBytes(b)
			r.Data = v[:len(v):len(v)]
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
	if !hasPK || !hasData {
		return r, false
	}
	var ok bool
	if r.PartitionKey, ok = lookup(keys, pks, pkIndex); !ok {
		return r, false
	}
	if hasEHK {
		if r.ExplicitHashKey, ok = lookup(keys, ehks, ehkIndex); !ok {
			return r, false
		}
	}
	return r, true
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
