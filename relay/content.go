package relay

import (
	"context"
	"errors"
	"strings"

	"github.com/fanoutd/fanoutd/internal/reuse"
	"github.com/fanoutd/fanoutd/pattern"
	"github.com/fanoutd/fanoutd/payload"
	"github.com/fanoutd/fanoutd/record"
)

// Route is how the records of one stream become messages: the subject
// template, and what the relay reads of their data before it publishes
// them. A Route is immutable once handed to a Publisher.
type Route struct {
	Subject *SubjectTemplate
	// Filter: a record is published only if it matches (no patterns:
	// every record).
	Filter pattern.Filter
	// Payload is how the data is decoded: raw (as it is, the default),
	// gzip, or cloudwatch_logs (each log event its own message).
	Payload payload.Kind
	// MaxDecompressed bounds a record's decompressed data; a record over
	// it becomes a dead letter. Default payload.DefaultMaxDecompressed.
	MaxDecompressed int64
}

// SubjectRoutes returns routes that only render subjects.
func SubjectRoutes(subjects map[string]*SubjectTemplate) map[string]*Route {
	out := make(map[string]*Route, len(subjects))
	for stream, t := range subjects {
		out[stream] = &Route{Subject: t}
	}
	return out
}

// readsContent reports whether the route decodes or filters records: if
// not, they go to the publishing modes as the reader handed them over.
func (r *Route) readsContent() bool {
	return len(r.Filter) > 0 || (r.Payload != "" && r.Payload != payload.Raw)
}

// The content pass: a batch of a stream whose route decodes or filters
// goes through an unpacker, which hands the publishing mode batches of
// derived records: a record's decoded data, each event of a CloudWatch Logs
// record, none for a record no pattern matched. A record that can't be
// decoded goes on, undecoded, to become a dead letter with the reason.
// Derived batches keep the bounds of record.Batch: the unpacker publishes
// and confirms one as soon as it is full, so that one record unpacked into
// many messages holds at most MaxDecompressed bytes of data besides.
// Handle returns nil only once every derived batch is confirmed, and the
// caller's checkpoint then moves past the whole batch, filtered records
// included.

// unpacker is the reusable state of one content pass.
type unpacker struct {
	dec      *payload.Decoder
	maxBytes int64
	out      record.Batch
	recs     []record.Record
	side     []derived // one per record of recs
	parts    []record.Unpacked
	arena    []byte
	peak     int // the most of arena one Handle used
	size     int // of out's records, against MaxBatchBytes
	arenaUse reuse.Use
}

// derived is what the content pass found out about one derived record,
// for build.
type derived struct {
	refused string   // why its data did not decode: it goes as a dead letter
	json    jsonSeen // whether its data is a JSON object, if checked
}

// jsonSeen is whether a record's data was found to be a JSON object.
type jsonSeen uint8

const (
	jsonUnchecked jsonSeen = iota
	jsonObjectSeen
	jsonNotObject
)

// contentResult is what a content pass adds to a stream's counters besides
// the published records.
type contentResult struct {
	filtered, control uint64
}

// handleContent publishes the records of b derived by route, batch by
// batch, with publish.
func (p *Publisher) handleContent(ctx context.Context, s *scratch, b *record.Batch, route *Route) (batchResult, contentResult, error) {
	u := p.unpacker(route)
	defer p.putUnpacker(u)
	var (
		res  batchResult
		cres contentResult
	)
	u.start(b)
	flush := func() error {
		if len(u.recs) == 0 {
			return nil
		}
		u.out.Records = u.recs
		s.side = u.side
		r, err := p.publish(ctx, s, &u.out)
		s.side = nil
		res.add(r)
		u.reset()
		return err
	}
	for i := range b.Records {
		rec := &b.Records[i]
		if err := u.add(rec, route, &cres, flush); err != nil {
			return res, cres, err
		}
	}
	return res, cres, flush()
}

// unpacker returns a pooled unpacker for route.
func (p *Publisher) unpacker(route *Route) *unpacker {
	u := p.unpackers.Get().(*unpacker)
	max := route.MaxDecompressed
	if max <= 0 {
		max = payload.DefaultMaxDecompressed
	}
	if u.dec == nil || u.maxBytes != max {
		u.dec, u.maxBytes = payload.NewDecoder(max), max
	}
	return u
}

func (p *Publisher) putUnpacker(u *unpacker) {
	u.reset()
	u.out = record.Batch{}
	u.dec.Release()
	u.arena = reuse.Fit(&u.arenaUse, u.arena, u.peak)
	u.peak = 0
	p.unpackers.Put(u)
}

func (u *unpacker) start(b *record.Batch) {
	u.out = *b
	u.out.Records = nil
	u.reset()
}

// reset forgets the derived records once they are confirmed.
func (u *unpacker) reset() {
	clear(u.recs)
	u.recs = u.recs[:0]
	u.side = u.side[:0]
	clear(u.parts)
	u.parts = u.parts[:0]
	u.peak = max(u.peak, len(u.arena))
	u.arena = u.arena[:0]
	u.size = 0
}

// add derives the messages of rec, flushing whenever the derived batch is
// full.
func (u *unpacker) add(rec *record.Record, route *Route, cres *contentResult, flush func() error) error {
	switch route.Payload {
	case payload.Gzip:
		if !payload.IsGzip(rec.Data) {
			return u.emit(*rec, route, cres, flush)
		}
		start := len(u.arena)
		out, err := u.dec.Gunzip(u.arena, rec.Data)
		if err != nil {
			return u.refuse(rec, err, flush)
		}
		u.arena = out
		d := *rec
		d.Data = out[start:len(out):len(out)]
		return u.emit(d, route, cres, flush)
	case payload.CloudWatchLogs:
		logs, err := u.dec.CloudWatchLogs(rec.Data)
		if err != nil {
			return u.refuse(rec, err, flush)
		}
		if logs.MessageType != payload.DataMessage {
			cres.control++
			return nil
		}
		return u.emitEvents(rec, logs, route, cres, flush)
	}
	return u.emit(*rec, route, cres, flush)
}

// emitEvents derives one message per log event of logs, the CloudWatch
// Logs record rec. An event's message is copied: the decoder reuses its
// buffers for the next record.
func (u *unpacker) emitEvents(rec *record.Record, logs *payload.Logs, route *Route, cres *contentResult, flush func() error) error {
	filters := strings.Join(logs.SubscriptionFilters, ",")
	for i := range logs.Events {
		ev := &logs.Events[i]
		start := len(u.arena)
		u.arena = append(u.arena, ev.Message...)
		d := *rec
		d.Data = u.arena[start:len(u.arena):len(u.arena)]
		u.parts = append(u.parts, record.Unpacked{Index: i, LogGroup: logs.LogGroup, LogStream: logs.LogStream,
			Owner: logs.Owner, EventID: ev.ID, Timestamp: ev.Timestamp, SubscriptionFilters: filters})
		d.Unpacked = &u.parts[len(u.parts)-1]
		if err := u.emit(d, route, cres, flush); err != nil {
			return err
		}
	}
	return nil
}

// emit adds d to the derived batch if the route's filter lets it through.
// Whether its data is a JSON object is checked once, for the filter and the
// subject both.
func (u *unpacker) emit(d record.Record, route *Route, cres *contentResult, flush func() error) error {
	var (
		side  derived
		valid bool
	)
	if route.Subject.UsesData() || route.Filter.UsesData() {
		side.json = jsonNotObject
		if valid = payload.ValidJSON(d.Data); valid && isObject(d.Data) {
			side.json = jsonObjectSeen
		}
	}
	if len(route.Filter) > 0 {
		in := pattern.Input{Data: d.Data, JSON: valid, PartitionKey: d.PartitionKey,
			SequenceNumber: d.SequenceNumber, ArrivalTime: d.ArrivalTime}
		if !route.Filter.Match(&in) {
			cres.filtered++
			return nil
		}
	}
	return u.push(d, side, flush)
}

// refuse adds rec, undecoded, to become a dead letter with the reason of
// err (the decoders return *payload.Error; anything else is "undecodable"
// all the same: no retry would decode the record).
func (u *unpacker) refuse(rec *record.Record, err error, flush func() error) error {
	reason := "undecodable"
	var perr *payload.Error
	if errors.As(err, &perr) {
		reason = perr.Reason
	}
	return u.push(*rec, derived{refused: reason}, flush)
}

// push appends d to the derived batch, and flushes once it is full.
func (u *unpacker) push(d record.Record, side derived, flush func() error) error {
	u.recs = append(u.recs, d)
	u.side = append(u.side, side)
	u.size += d.Size()
	if len(u.recs) >= record.MaxBatchRecords || u.size >= record.MaxBatchBytes {
		return flush()
	}
	return nil
}
