package relay

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/fanoutd/fanoutd/record"
	"github.com/fanoutd/fanoutd/relay/internal/natspub"
)

// Defaults for zero Options fields.
const (
	DefaultPublishTimeout = 10 * time.Second
	DefaultMaxPending     = 256
)

// Options configures a Publisher.
type Options struct {
	// JetStream selects JetStream publishing (every message confirmed by a
	// PubAck, deduplicated by Nats-Msg-Id) instead of core NATS (the batch
	// confirmed by one flush round trip).
	JetStream bool
	// PublishTimeout bounds the confirmation of one chunk of a batch (see
	// chunkMessages): its flush in core mode, all its PubAcks with their
	// retries in JetStream mode. Default 10s.
	PublishTimeout time.Duration
	// MaxPending is the JetStream asynchronous publish window, shared by all
	// shards: a publish waits while this many PubAcks are outstanding.
	// Default 256.
	MaxPending int
	// NoBatchPublish turns JetStream batch publishing off (until
	// SetBatchPublish): every message then has its own PubAck, as on
	// servers before 2.14 or streams without allow_batched (see
	// fastbatch.go).
	NoBatchPublish bool
	// DeadLetterSubject is a subject template (see ParseSubjectTemplate) for
	// dead letters. Default DefaultDeadLetterSubject. In JetStream mode a
	// stream must capture it, like the record subjects.
	DeadLetterSubject string
	// Oversize is what happens to a record NATS can't take (over the
	// server's max_payload, or a JetStream stream's max_msg_size):
	// OversizeDeadLetter (default), OversizeFail, or OversizeObjectStore
	// (into Objects, see storeObject).
	Oversize OversizePolicy
	// Objects is the Object Store bucket named ObjectBucket, required with
	// OversizeObjectStore (see jsassets.EnsureObjectStore). It works in core mode
	// too: the Object Store is JetStream, the reference a core message.
	Objects      ObjectStore
	ObjectBucket string
	// ObserveObject, if set, is called after every object put with the
	// record's stream, its size, how long the put took, and the error.
	ObserveObject func(stream string, bytes int, d time.Duration, err error)
	// Log receives warnings about retries and dead letters.
	Log zerolog.Logger
	// Direct, if set, is how nc was connected (see Connect): the records'
	// messages then go on a second connection made the same way, which only
	// publishes (see direct.go). Nil: through nc.
	Direct *ConnOptions
	// Observe, if set, is called after every Handle with the batch's stream,
	// its record count, how long publishing and confirming took, and the
	// error (metrics).
	Observe func(stream string, records int, d time.Duration, err error)
}

// OversizePolicy is what happens to a record NATS can't carry.
type OversizePolicy string

// The oversize policies (see plan.go).
const (
	OversizeDeadLetter OversizePolicy = "dead_letter"
	OversizeFail       OversizePolicy = "fail"
	// OversizeObjectStore puts a record too large for NATS into the Object
	// Store and publishes a reference message in its place (Options.Objects).
	OversizeObjectStore OversizePolicy = "object_store"
)

// OversizePolicies are the values of nats.oversize, for validation.
var OversizePolicies = []OversizePolicy{OversizeDeadLetter, OversizeFail}

// LargeRecordPolicies are the values of nats.large_records, for validation.
var LargeRecordPolicies = []OversizePolicy{OversizeObjectStore, OversizeDeadLetter, OversizeFail}

// Stats are the Publisher's counters since NewPublisher. Records are
// counted when Handle returns nil for their batch, so a replayed batch is
// counted again.
type Stats struct {
	// Published counts records confirmed by NATS (dead letters excluded).
	Published uint64 `json:"published"`
	// Bytes counts the payload bytes of Published.
	Bytes uint64 `json:"bytes"`
	// Duplicates counts the Published records whose PubAck said JetStream
	// already had them (a replay deduplicated by Nats-Msg-Id). In a fast
	// batch, JetStream drops duplicates without saying so: not counted.
	Duplicates uint64 `json:"duplicates"`
	// DeadLettered counts records replaced by a dead letter.
	DeadLettered uint64 `json:"dead_lettered"`
	// Retries counts JetStream re-publishes of messages whose PubAck failed.
	Retries uint64 `json:"retries"`
	// Batched counts the Published records JetStream stored as part of a
	// fast batch (see fastbatch.go), not confirmed one PubAck each.
	Batched uint64 `json:"batched"`
	// FailedBatches counts Handle calls that returned an error.
	FailedBatches uint64 `json:"failed_batches"`
	// AsyncErrors counts core NATS batches failed because the server sent an
	// asynchronous error (-ERR) while they were published: a publish it
	// refused, e.g. a permissions violation. The batch is replayed.
	AsyncErrors uint64 `json:"async_errors"`
}

// Publisher relays batches to NATS. It implements record.Handler and is
// safe for concurrent use by the shards of every stream it has a subject
// template for. Once Handle returns, nothing reads or publishes b or its
// records' data any more: the caller may reuse them.
type Publisher struct {
	nc         *nats.Conn
	acks       *ackWindow   // nil in core mode
	fast       *fastBatcher // nil in core mode
	routes     atomic.Pointer[map[string]*Route]
	deadLetter *SubjectTemplate
	timeout    time.Duration
	log        zerolog.Logger
	// failOversize: a record NATS can't take stops the stream (ErrStop)
	// instead of becoming a dead letter.
	failOversize bool
	observe      func(stream string, records int, d time.Duration, err error)

	objects       ObjectStore // nil unless nats.large_records is object_store
	objectBucket  string
	observeObject func(stream string, bytes int, d time.Duration, err error)

	objectsStored, objectBytes, objectsReused, objectFailures atomic.Uint64

	scratch   sync.Pool // *scratch
	unpackers sync.Pool // *unpacker

	published, bytes, duplicates, deadLettered, retries, batched, failedBatches, asyncErrors atomic.Uint64

	denied sync.Map // subject -> struct{}: permission denials already logged

	perStream sync.Map // stream name -> *streamCounters

	// unsure holds the shards whose JetStream batch failed: unsureKey ->
	// the furthest message (its position) a failed attempt may have sent.
	// No fast batch for the shard until a batch reaching that message
	// succeeds.
	unsure sync.Map

	direct *directConn // nil: every message goes through nc
	// beforeFlush, set by tests, runs between a core chunk's publishes and
	// its flush.
	beforeFlush func()
}

var _ record.Handler = (*Publisher)(nil)

// NewPublisher returns a Publisher on nc that publishes each batch by
// routes[batch.Stream] (see SubjectRoutes for routes that only render
// subjects).
func NewPublisher(nc *nats.Conn, routes map[string]*Route, opts Options) (*Publisher, error) {
	if nc == nil {
		return nil, errors.New("new publisher: no NATS connection")
	}
	if len(routes) == 0 {
		return nil, errors.New("new publisher: no routes")
	}
	p := &Publisher{
		nc:      nc,
		timeout: opts.PublishTimeout,
		// Per-batch warnings repeat during an outage: 10 a minute at most.
		log: opts.Log.Sample(&zerolog.LevelSampler{
			WarnSampler: &zerolog.BurstSampler{Burst: 10, Period: time.Minute},
		}),
		failOversize: opts.Oversize == OversizeFail,
		observe:      opts.Observe,
	}
	switch opts.Oversize {
	case "", OversizeDeadLetter, OversizeFail:
	case OversizeObjectStore:
		if opts.Objects == nil || opts.ObjectBucket == "" {
			return nil, errors.New("new publisher: oversize object_store needs Objects and ObjectBucket")
		}
		p.objects, p.objectBucket, p.observeObject = opts.Objects, opts.ObjectBucket, opts.ObserveObject
	default:
		return nil, fmt.Errorf("new publisher: oversize must be %s, %s or %s (got %q)", OversizeObjectStore, OversizeDeadLetter, OversizeFail, opts.Oversize)
	}
	if err := p.SetRoutes(routes); err != nil {
		return nil, fmt.Errorf("new publisher: %w", err)
	}
	if p.timeout <= 0 {
		p.timeout = DefaultPublishTimeout
	}
	dl := opts.DeadLetterSubject
	if dl == "" {
		dl = DefaultDeadLetterSubject
	}
	var err error
	if p.deadLetter, err = ParseSubjectTemplate(dl); err != nil {
		return nil, fmt.Errorf("new publisher: dead-letter subject: %w", err)
	}
	if p.deadLetter.Fallible() {
		return nil, fmt.Errorf("new publisher: dead-letter subject %q: %w", dl, ErrDeadLetterFromData)
	}
	if opts.JetStream {
		maxPending := opts.MaxPending
		if maxPending <= 0 {
			maxPending = DefaultMaxPending
		}
		// The ack timeout frees the window slot of a PubAck that never
		// comes, and leaves the batch time for at least one retry.
		p.acks = newAckWindow(nc, maxPending, p.timeout/2)
		p.fast = newFastBatcher(nc, !opts.NoBatchPublish)
	}
	if opts.Direct != nil {
		p.direct = &directConn{nc: nc, opts: *opts.Direct, timeout: p.timeout, log: p.log}
		p.direct.get() // dials in the background
	}
	p.scratch.New = func() any { return &scratch{header: newRecordHeader()} }
	p.unpackers.New = func() any { return &unpacker{} }
	return p, nil
}

// Close closes the direct connection, if any (Options.Direct). The
// Publisher goes on through nc.
func (p *Publisher) Close() {
	if p.direct != nil {
		p.direct.close()
	}
}

// Handle publishes every record of b, in order, and returns nil only once
// NATS confirmed all of them: in core mode by a flush round trip on the same
// connection, in JetStream mode by a PubAck for each. Otherwise it returns
// an error and the caller replays the whole batch, which core NATS
// subscribers then see twice and JetStream deduplicates (Nats-Msg-Id).
//
// Each record becomes one message: the subject rendered from the stream's
// template, the record's data as the payload, and the headers of
// RecordHeader. A record NATS can't carry (over the server's max_payload,
// a JetStream stream's max_msg_size, or with a subject too long) goes as
// an Object Store reference or a dead letter, confirmed like any other
// message, or stops the stream, by Options.Oversize (see plan.go).
func (p *Publisher) Handle(ctx context.Context, b *record.Batch) error {
	if p.observe == nil || len(b.Records) == 0 {
		return p.handle(ctx, b)
	}
	start := time.Now()
	err := p.handle(ctx, b)
	p.observe(b.Stream, len(b.Records), time.Since(start), err)
	return err
}

func (p *Publisher) handle(ctx context.Context, b *record.Batch) error {
	route := (*p.routes.Load())[b.Stream]
	if route == nil {
		p.failedBatches.Add(1)
		return fmt.Errorf("publish %s/%s: no subject template for stream %q", b.Stream, b.ShardID, b.Stream)
	}
	if len(b.Records) == 0 {
		return nil
	}
	s := p.scratch.Get().(*scratch)
	defer p.putScratch(s)
	s.tmpl = route.Subject

	var (
		res  batchResult
		cres contentResult
		err  error
	)
	if route.readsContent() {
		res, cres, err = p.handleContent(ctx, s, b, route)
	} else {
		res, err = p.publish(ctx, s, b)
	}
	if err != nil {
		p.failedBatches.Add(1)
		return fmt.Errorf("publish %d records of %s/%s: %w", len(b.Records), b.Stream, b.ShardID, err)
	}
	p.published.Add(res.published)
	p.bytes.Add(res.bytes)
	p.duplicates.Add(res.duplicates)
	p.batched.Add(res.batched)
	p.deadLettered.Add(res.deadLettered)
	p.objectsStored.Add(res.objects)
	p.objectBytes.Add(res.objectBytes)
	sc, ok := p.perStream.Load(b.Stream)
	if !ok {
		sc, _ = p.perStream.LoadOrStore(b.Stream, &streamCounters{})
	}
	c := sc.(*streamCounters)
	c.published.Add(res.published)
	c.bytes.Add(res.bytes)
	c.deadLettered.Add(res.deadLettered)
	c.objects.Add(res.objects)
	c.objectBytes.Add(res.objectBytes)
	c.fallbacks.Add(res.fallbacks)
	c.filtered.Add(cres.filtered)
	c.control.Add(cres.control)
	return nil
}

// publish publishes b in the Publisher's mode, and counts the messages
// confirmed on a subject with the fallback token.
func (p *Publisher) publish(ctx context.Context, s *scratch, b *record.Batch) (res batchResult, err error) {
	if s.countFell = s.tmpl.Fallible(); s.countFell {
		s.fell = slices.Grow(s.fell[:0], len(b.Records))[:len(b.Records)]
		clear(s.fell)
		defer func() {
			for _, f := range s.fell {
				if f {
					res.fallbacks++
				}
			}
		}()
	}
	if p.acks != nil {
		return p.handleJetStream(ctx, s, b)
	}
	return p.handleCore(ctx, s, b)
}

// streamCounters are one stream's share of the counters.
type streamCounters struct {
	published, bytes, deadLettered, objects, objectBytes, fallbacks, filtered, control atomic.Uint64
}

// StreamStats are the counters of one stream: records and payload bytes
// confirmed by NATS, dead letters, and the records stored as objects (also
// counted in Published; their data in ObjectBytes, not Bytes). Messages
// unpacked from a record count one each.
type StreamStats struct {
	Published, Bytes, DeadLettered, Objects, ObjectBytes uint64
	// SubjectFallbacks counts the messages whose subject has the fallback
	// token for a {data.PATH}, {log_group} or {log_stream} (per attempt: a
	// replay counts again).
	SubjectFallbacks uint64
	// Filtered counts the records (or unpacked messages) no filter pattern
	// matched: not published.
	Filtered uint64
	// ControlMessages counts the CloudWatch Logs control messages skipped.
	ControlMessages uint64
}

// StreamStats returns the counters of every stream that published a batch.
func (p *Publisher) StreamStats() map[string]StreamStats {
	out := map[string]StreamStats{}
	p.perStream.Range(func(k, v any) bool {
		c := v.(*streamCounters)
		out[k.(string)] = StreamStats{Published: c.published.Load(), Bytes: c.bytes.Load(), DeadLettered: c.deadLettered.Load(),
			Objects: c.objects.Load(), ObjectBytes: c.objectBytes.Load(), SubjectFallbacks: c.fallbacks.Load(),
			Filtered: c.filtered.Load(), ControlMessages: c.control.Load()}
		return true
	})
	return out
}

// SetRoutes replaces the routes (a config reload); batches already being
// published keep the routes they started with.
func (p *Publisher) SetRoutes(routes map[string]*Route) error {
	m := make(map[string]*Route, len(routes))
	for stream, r := range routes {
		if r == nil || r.Subject == nil {
			return fmt.Errorf("stream %q: no subject template", stream)
		}
		m[stream] = r
	}
	p.routes.Store(&m)
	return nil
}

// Stats returns the counters.
func (p *Publisher) Stats() Stats {
	return Stats{
		Published:     p.published.Load(),
		Bytes:         p.bytes.Load(),
		Duplicates:    p.duplicates.Load(),
		DeadLettered:  p.deadLettered.Load(),
		Retries:       p.retries.Load(),
		Batched:       p.batched.Load(),
		FailedBatches: p.failedBatches.Load(),
		AsyncErrors:   p.asyncErrors.Load(),
	}
}

// batchResult is what one confirmed batch adds to Stats.
type batchResult struct {
	published, bytes, duplicates, deadLettered, objects, objectBytes, batched uint64
	fallbacks                                                                 uint64
}

func (r *batchResult) add(o batchResult) {
	r.published += o.published
	r.bytes += o.bytes
	r.duplicates += o.duplicates
	r.deadLettered += o.deadLettered
	r.objects += o.objects
	r.objectBytes += o.objectBytes
	r.batched += o.batched
	r.fallbacks += o.fallbacks
}

// scratch is the reusable state of one Handle call.
type scratch struct {
	tmpl        *SubjectTemplate // the batch's stream's
	maxPayload  int64            // the server's, read once per chunk
	subject     []byte
	lastSubject string
	header      *recordHeader // core mode: one header reused for every message
	msg         nats.Msg      // core mode: one message reused
	reply       []byte        // JetStream batches: the reply subject, reused
	next        *recordHeader // JetStream batches: the next record's header
	nextMsg     nats.Msg      // JetStream batches: the next record's message
	noBatch     bool          // JetStream: this Handle publishes message by message
	items       []jsItem      // JetStream mode
	pending     []int         // JetStream mode: indexes into items
	round       ackRound      // JetStream mode: the messages awaiting their PubAcks
	fell        []bool        // per record: its subject holds the fallback token
	countFell   bool          // fell is kept: the template is Fallible
	side        []derived     // content pass: what it found of each record
	times       timeFormat
	wire        []byte        // the direct connection: commands not yet written
	sentOn      *natspub.Conn // JetStream: the direct connection the round went on
}

func (p *Publisher) putScratch(s *scratch) {
	clear(s.items) // drop references to messages and data
	s.items = s.items[:0]
	s.msg, s.nextMsg = nats.Msg{}, nats.Msg{}
	s.tmpl, s.side, s.sentOn = nil, nil, nil
	p.scratch.Put(s)
}
