package kpl

import (
	"crypto/md5"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/fanoutd/fanoutd/record"
)

// Aggregate encodes records as one KPL aggregated Kinesis record, byte for byte
// as awslabs' aws-kinesis-agg library would: the magic, the AggregatedRecord
// protobuf (partition key table, explicit hash key table, records) and its MD5.
// Each key table holds every distinct key once, in order of first use. Only
// Data, PartitionKey and ExplicitHashKey of each record are used; an empty
// ExplicitHashKey leaves explicit_hash_key_index unset.
//
// It exists for tests and the demo producer. It does not enforce the Kinesis
// record size limit, and an empty records encodes an empty aggregate, which
// Deaggregate passes through as a plain record. The Kinesis record carrying the
// result is usually put with the first user record's partition key.
func Aggregate(records []record.Record) []byte {
	var (
		pkIndex  = make(map[string]uint64)
		ehkIndex = make(map[string]uint64)
		pkTable  []byte
		ehkTable []byte
		recs     []byte
		rec      []byte
	)
	index := func(m map[string]uint64, table *[]byte, num protowire.Number, key string) uint64 {
		i, ok := m[key]
		if !ok {
			i = uint64(len(m))
			m[key] = i
			*table = protowire.AppendTag(*table, num, protowire.BytesType)
			*table = protowire.AppendString(*table, key)
		}
		return i
	}
	for _, r := range records {
		rec = rec[:0]
		rec = protowire.AppendTag(rec, recPartitionKeyIndex, protowire.VarintType)
		rec = protowire.AppendVarint(rec, index(pkIndex, &pkTable, aggPartitionKeyTable, r.PartitionKey))
		if r.ExplicitHashKey != "" {
			rec = protowire.AppendTag(rec, recExplicitHashKeyIndex, protowire.VarintType)
			rec = protowire.AppendVarint(rec, index(ehkIndex, &ehkTable, aggExplicitHashKeyTable, r.ExplicitHashKey))
		}
		rec = protowire.AppendTag(rec, recData, protowire.BytesType)
		rec = protowire.AppendBytes(rec, r.Data)
		recs = protowire.AppendTag(recs, aggRecords, protowire.BytesType)
		recs = protowire.AppendBytes(recs, rec)
	}

	out := make([]byte, 0, len(kplMagic)+len(pkTable)+len(ehkTable)+len(recs)+md5.Size)
	out = append(out, kplMagic...)
	out = append(out, pkTable...)
	out = append(out, ehkTable...)
	out = append(out, recs...)
	sum := md5.Sum(out[len(kplMagic):])
	return append(out, sum[:]...)
}
