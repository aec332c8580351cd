package relay

import (
	"strconv"
	"time"
	"unsafe"

	"github.com/nats-io/nats.go"

	"github.com/fanoutd/fanoutd/record"
)

// recordHeader is one nats.Header reused for the messages of a Handle
// (whatever goes out as it is published: core chunks, fast batches,
// JetStream message by message), holding what RecordHeader returns, but
// without a map operation per header per record: the map holds one value
// slice per header, and set writes the record's values into those slices.
// Only an optional header that appears or disappears from one record to
// the next costs a map insert or delete. On the direct connection, appendTo
// encodes it without the map at all.
//
// Code that changes h otherwise (a dead letter, an object reference) must
// call restore before the next set.
//
// The values set formats (the sub-sequence number, the arrival time, the
// message ID) are strings over buf, which the next set overwrites: they are
// valid while the record's message is published (publishing copies them),
// not after. Nothing may keep them.
type recordHeader struct {
	h nats.Header
	// One value slice of length 1 per header, shared with h.
	stream, shard, pk, seq, subSeq, ehk, arrival, msgID []string
	// The Cloudwatch-* headers of an unpacked log event, in logKeys order.
	logs [len(logKeys)][]string
	// Which optional headers h holds.
	hasSubSeq, hasEHK, hasArrival bool
	hasLog                        [len(logKeys)]bool
	anyLog                        bool // some of hasLog
	buf                           []byte
	// The batch's stream and shard ID, escaped once per batch.
	lastStream, lastShard, escStream, escShard string
	size                                       int // what nats.go encodes of h, see encodedLen
	times                                      timeFormat
}

func newRecordHeader() *recordHeader {
	one := func() []string { return make([]string, 1) }
	// Room for 8: one group of Go's map, which nats.go ranges over twice
	// per message faster than a table (log events' headers grow it).
	r := &recordHeader{h: make(nats.Header, 8), stream: one(), shard: one(), pk: one(), seq: one(),
		subSeq: one(), ehk: one(), arrival: one(), msgID: one()}
	for i := range r.logs {
		r.logs[i] = one()
	}
	r.sync()
	return r
}

// sync puts every required header's slice, and the present optional ones,
// back into h.
func (r *recordHeader) sync() {
	r.h[HeaderStream], r.h[HeaderShardID], r.h[HeaderPartitionKey] = r.stream, r.shard, r.pk
	r.h[HeaderSequenceNumber], r.h[nats.MsgIdHdr] = r.seq, r.msgID
	r.setOptional(HeaderSubSequenceNumber, r.subSeq, &r.hasSubSeq, r.hasSubSeq, true)
	r.setOptional(HeaderExplicitHashKey, r.ehk, &r.hasEHK, r.hasEHK, true)
	r.setOptional(HeaderArrivalTime, r.arrival, &r.hasArrival, r.hasArrival, true)
	for i, k := range logKeys {
		r.setOptional(k, r.logs[i], &r.hasLog[i], r.hasLog[i], true)
	}
}

// logKeys are the Cloudwatch-* headers, in the order of logValues.
var logKeys = [...]string{HeaderLogGroup, HeaderLogStream, HeaderLogOwner, HeaderLogEventID, HeaderLogEventTime, HeaderSubscriptionFilters}

// logValues are the Cloudwatch-* header values of u, escaped and bounded,
// in logKeys order ("" for none), with eventTime, the formatted timestamp.
func logValues(u *record.Unpacked, eventTime string) [len(logKeys)]string {
	vals := [...]string{u.LogGroup, u.LogStream, u.Owner, u.EventID, eventTime, u.SubscriptionFilters}
	for i, v := range vals {
		if v != "" && i != 4 {
			vals[i] = truncateHeaderValue(EscapeHeaderValue(v), maxLogHeaderValue)
		}
	}
	return vals
}

// restore undoes what a dead letter or an object reference changed in h
// (makeDeadLetter, storeObject), before the next set.
func (r *recordHeader) restore() {
	for _, k := range [...]string{HeaderDeadLetterReason, HeaderOriginalSubject,
		HeaderObjectBucket, HeaderObjectName, HeaderObjectSize, HeaderObjectDigest} {
		delete(r.h, k)
	}
	r.sync()
}

// setOptional makes h hold key (with vs) exactly when want is true.
func (r *recordHeader) setOptional(key string, vs []string, has *bool, want, force bool) {
	if want == *has && !force {
		return
	}
	if want {
		r.h[key] = vs
	} else {
		delete(r.h, key)
	}
	*has = want
}

// set fills h for one record of b: h then holds what RecordHeader(b, rec)
// returns.
func (r *recordHeader) set(b *record.Batch, rec *record.Record) {
	if b.Stream != r.lastStream || r.escStream == "" {
		r.lastStream, r.escStream = b.Stream, EscapeHeaderValue(b.Stream)
	}
	if b.ShardID != r.lastShard || r.escShard == "" {
		r.lastShard, r.escShard = b.ShardID, EscapeHeaderValue(b.ShardID)
	}
	seq := EscapeHeaderValue(rec.SequenceNumber)
	r.stream[0], r.shard[0], r.seq[0] = r.escStream, r.escShard, seq
	r.pk[0] = EscapeHeaderValue(rec.PartitionKey)
	// Every formatted value goes into buf first, then the strings are cut
	// from it: appending after a cut could move buf.
	buf := r.buf[:0]
	subSeq := int64(0)
	if rec.Aggregated {
		subSeq = rec.SubSequenceNumber
	}
	buf = strconv.AppendInt(buf, subSeq, 10)
	nSub := len(buf)
	hasTime := !rec.ArrivalTime.IsZero()
	if hasTime {
		buf = r.times.append(buf, rec.ArrivalTime)
	}
	nTime := len(buf)
	buf = appendMsgID(buf, b.Stream, b.ShardID, rec.SequenceNumber, subSeq)
	u := rec.Unpacked
	if u != nil {
		buf = strconv.AppendInt(append(buf, ':'), int64(u.Index), 10)
	}
	nID := len(buf)
	hasEventTime := u != nil
	if hasEventTime {
		buf = r.times.append(buf, time.UnixMilli(u.Timestamp))
	}
	r.buf = buf
	if rec.Aggregated {
		r.subSeq[0] = unsafe.String(&buf[0], nSub)
	}
	r.setOptional(HeaderSubSequenceNumber, r.subSeq, &r.hasSubSeq, rec.Aggregated, false)
	if rec.ExplicitHashKey != "" {
		r.ehk[0] = EscapeHeaderValue(rec.ExplicitHashKey)
	}
	r.setOptional(HeaderExplicitHashKey, r.ehk, &r.hasEHK, rec.ExplicitHashKey != "", false)
	if hasTime {
		r.arrival[0] = unsafe.String(&buf[nSub], nTime-nSub)
	}
	r.setOptional(HeaderArrivalTime, r.arrival, &r.hasArrival, hasTime, false)
	id := unsafe.String(&buf[nTime], nID-nTime)
	if r.escStream != b.Stream || r.escShard != b.ShardID || seq != rec.SequenceNumber {
		// The ID joins them with ':' and digits, which need no escaping:
		// only an escaped part makes it need escaping.
		id = EscapeHeaderValue(id)
	}
	r.msgID[0] = id
	r.size = 0
	for _, v := range [...]string{r.stream[0], r.shard[0], r.pk[0], r.seq[0], r.msgID[0]} {
		r.size += len(v)
	}
	r.size += requiredKeysLen
	if r.hasSubSeq {
		r.size += len(HeaderSubSequenceNumber) + 4 + len(r.subSeq[0])
	}
	if r.hasEHK {
		r.size += len(HeaderExplicitHashKey) + 4 + len(r.ehk[0])
	}
	if r.hasArrival {
		r.size += len(HeaderArrivalTime) + 4 + len(r.arrival[0])
	}
	if u != nil || r.anyLog {
		r.setLogs(u, buf[nID:])
	}
}

// setLogs makes h hold the Cloudwatch-* headers of u (nil: none), with
// eventTime, the formatted timestamp.
func (r *recordHeader) setLogs(u *record.Unpacked, eventTime []byte) {
	var logs [len(logKeys)]string
	if u != nil {
		logs = logValues(u, unsafe.String(unsafe.SliceData(eventTime), len(eventTime)))
	}
	for i, k := range logKeys {
		if logs[i] != "" {
			r.logs[i][0] = logs[i]
			r.size += len(k) + 4 + len(logs[i])
		}
		r.setOptional(k, r.logs[i], &r.hasLog[i], logs[i] != "", false)
	}
	r.anyLog = u != nil
}

// appendTo appends h as set left it, encoded as a NATS header:
// encodedLen bytes.
func (r *recordHeader) appendTo(buf []byte) []byte {
	buf = append(buf, "NATS/1.0\r\n"...)
	kv := func(k, v string) {
		buf = append(append(append(append(buf, k...), ": "...), v...), "\r\n"...)
	}
	kv(HeaderStream, r.stream[0])
	kv(HeaderShardID, r.shard[0])
	kv(HeaderPartitionKey, r.pk[0])
	kv(HeaderSequenceNumber, r.seq[0])
	kv(nats.MsgIdHdr, r.msgID[0])
	if r.hasSubSeq {
		kv(HeaderSubSequenceNumber, r.subSeq[0])
	}
	if r.hasEHK {
		kv(HeaderExplicitHashKey, r.ehk[0])
	}
	if r.hasArrival {
		kv(HeaderArrivalTime, r.arrival[0])
	}
	for i, k := range logKeys {
		if r.hasLog[i] {
			kv(k, r.logs[i][0])
		}
	}
	return append(buf, "\r\n"...)
}

// requiredKeysLen is what the header line, the final CRLF and the five
// headers every record has take besides their values: each header is
// "key: value\r\n".
const requiredKeysLen = len("NATS/1.0\r\n") + len("\r\n") +
	len(HeaderStream) + len(HeaderShardID) + len(HeaderPartitionKey) + len(HeaderSequenceNumber) + len(nats.MsgIdHdr) + 5*4

// encodedLen is how many bytes nats.go encodes of h after set (its values
// are escaped: nothing to trim). Only as long as nothing else changed h.
func (r *recordHeader) encodedLen() int { return r.size }

// RecordHeader returns the headers of the message that relays rec, a user
// record of b: Kinesis-Stream, Kinesis-Shard-Id, Kinesis-Partition-Key,
// Kinesis-Sequence-Number, Nats-Msg-Id (MsgID), Kinesis-Sub-Sequence-Number
// for a record from a KPL aggregate only, Kinesis-Explicit-Hash-Key only when
// the record has one, Kinesis-Arrival-Time only when its time is not zero,
// and for a CloudWatch Logs event (rec.Unpacked) the Cloudwatch-* headers
// of its fields that are set. Every value is escaped with EscapeHeaderValue.
//
// The value slices are cut from one array: one allocation for the values
// instead of one per header (JetStream mode keeps every message until its
// PubAck, so its headers cannot be reused; core mode reuses one, see
// recordHeader).
//
// size is how many bytes nats.go encodes of it (the values are escaped:
// nothing to trim).
func RecordHeader(b *record.Batch, rec *record.Record) (h nats.Header, size int) {
	var tf timeFormat
	return newHeader(b, rec, &tf)
}

// newHeader is RecordHeader, formatting times with tf.
func newHeader(b *record.Batch, rec *record.Record, tf *timeFormat) (h nats.Header, size int) {
	// At most 8 headers: one group of Go's map, no table (a dead letter or
	// an object reference adds a few, rarely).
	h = make(nats.Header, 8)
	arr, n := make([]string, 8), 0
	size = len("NATS/1.0\r\n") + len("\r\n")
	set := func(k, v string) {
		arr[n] = v
		h[k] = arr[n : n+1 : n+1]
		n++
		size += len(k) + len(": \r\n") + len(v)
	}
	set(HeaderStream, EscapeHeaderValue(b.Stream))
	set(HeaderShardID, EscapeHeaderValue(b.ShardID))
	set(HeaderPartitionKey, EscapeHeaderValue(rec.PartitionKey))
	set(HeaderSequenceNumber, EscapeHeaderValue(rec.SequenceNumber))
	subSeq := int64(0)
	if rec.Aggregated {
		subSeq = rec.SubSequenceNumber
		set(HeaderSubSequenceNumber, strconv.FormatInt(subSeq, 10))
	}
	if rec.ExplicitHashKey != "" {
		set(HeaderExplicitHashKey, EscapeHeaderValue(rec.ExplicitHashKey))
	}
	var tbuf [2 * len(arrivalTimeLayout)]byte
	times := tbuf[:0]
	if !rec.ArrivalTime.IsZero() {
		times = tf.append(times, rec.ArrivalTime)
	}
	nArrival := len(times)
	if u := rec.Unpacked; u != nil {
		times = tf.append(times, time.UnixMilli(u.Timestamp))
	}
	// One string for both times, cut in two: one allocation.
	all := string(times)
	if !rec.ArrivalTime.IsZero() {
		set(HeaderArrivalTime, all[:nArrival])
	}
	all = all[nArrival:]
	u := rec.Unpacked
	if u == nil {
		set(nats.MsgIdHdr, EscapeHeaderValue(MsgID(b.Stream, b.ShardID, rec.SequenceNumber, subSeq)))
		return h, size
	}
	set(nats.MsgIdHdr, EscapeHeaderValue(UnpackedMsgID(b.Stream, b.ShardID, rec.SequenceNumber, subSeq, u.Index)))
	eventTime := all
	arr, n = make([]string, len(logKeys)), 0
	for i, v := range logValues(u, eventTime) {
		if v != "" {
			set(logKeys[i], v)
		}
	}
	return h, size
}

// maxLogHeaderValue bounds a Cloudwatch-* header: CloudWatch Logs names
// are at most 512 characters, but the values come from the record's data,
// which any producer writes. A longer value is cut, ending in "...".
const maxLogHeaderValue = 1024
