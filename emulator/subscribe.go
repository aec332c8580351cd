package emulator

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream/eventstreamapi"
	"golang.org/x/time/rate"
)

const (
	maxEventRecords = 10000
	maxEventBytes   = 1 << 20
)

type subKey struct {
	consumerARN string
	shardID     string
}

type ctlKind int

const (
	ctlEnd       ctlKind = iota // end the stream cleanly
	ctlException                // send an exception frame, then end
	ctlCut                      // write part of a frame, then reset the stream
	ctlStall                    // stop sending, keep the stream open
	ctlResume                   // undo ctlStall
)

type control struct {
	kind    ctlKind
	excType string
	msg     string
}

type subscription struct {
	id      uint64
	key     subKey
	stream  string
	started time.Time
	ctl     chan control
}

// send delivers a control without blocking; a subscription that is already
// ending drops it.
func (sub *subscription) send(c control) {
	select {
	case sub.ctl <- c:
	default:
	}
}

// endConsumerSubs sends c to every subscription of a consumer. Called with
// s.mu held.
func (s *Server) endConsumerSubs(consumerARN string, c control) {
	for k, sub := range s.subs {
		if k.consumerARN == consumerARN {
			sub.send(c)
		}
	}
}

type startingPosition struct {
	Type           string   `json:"Type"`
	SequenceNumber string   `json:"SequenceNumber"`
	Timestamp      *float64 `json:"Timestamp"`
}

type subscribeEvent struct {
	Records                    []recordJSON     `json:"Records"`
	ContinuationSequenceNumber *string          `json:"ContinuationSequenceNumber"`
	MillisBehindLatest         int64            `json:"MillisBehindLatest"`
	ChildShards                []childShardJSON `json:"ChildShards,omitempty"`
}

// startSubscription validates a SubscribeToShard call and registers the
// subscription, taking over an older one when the rules allow it.
func (s *Server) startSubscription(consumerARN, shardID string, sp startingPosition) (*subscription, *stream, *shard, int, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if consumerARN == "" || shardID == "" {
		return nil, nil, nil, 0, invalidArg("ConsumerARN and ShardId are required.")
	}
	st, c, err := s.lookupConsumer(consumerRef{ConsumerARN: consumerARN})
	if err != nil {
		return nil, nil, nil, 0, err
	}
	now := s.now()
	if status := c.status(now); status != StatusActive {
		return nil, nil, nil, 0, inUse("Consumer %s under account %s is not in ACTIVE state (it is %s).", c.arn, s.opts.AccountID, status)
	}
	sh, err := s.lookupShard(st, shardID)
	if err != nil {
		return nil, nil, nil, 0, err
	}
	key := subKey{consumerARN: c.arn, shardID: sh.id}
	if last, ok := s.lastCall[key]; ok && now.Sub(last) < s.opts.SubscribeRate {
		return nil, nil, nil, 0, errorf(ErrLimitExceeded, "Rate exceeded for consumer %s and shard %s in stream %s under account %s.", c.arn, sh.id, st.name, s.opts.AccountID)
	}
	s.lastCall[key] = now
	s.trimShard(st, sh)
	pos, err := s.resolvePosition(st, sh, sp.Type, sp.SequenceNumber, sp.Timestamp)
	if err != nil {
		return nil, nil, nil, 0, err
	}
	if old := s.subs[key]; old != nil {
		if now.Sub(old.started) < s.opts.TakeoverGrace {
			s.refusedInUse++
			return nil, nil, nil, 0, inUse("Another active subscription exists for consumer %s on shard %s; it started less than %v ago.", c.arn, sh.id, s.opts.TakeoverGrace)
		}
		s.takeovers++
		old.send(control{kind: ctlException, excType: ErrResourceInUse,
			msg: "Another subscription for consumer " + c.arn + " on shard " + sh.id + " took this one over."})
		delete(s.subs, key)
	}
	s.nextSubID++
	sub := &subscription{id: s.nextSubID, key: key, stream: st.name, started: now, ctl: make(chan control, 8)}
	s.subs[key] = sub
	return sub, st, sh, pos, nil
}

func (s *Server) subscribeToShard(w http.ResponseWriter, r *http.Request, body []byte) {
	var req struct {
		ConsumerARN      string           `json:"ConsumerARN"`
		ShardId          string           `json:"ShardId"`
		StartingPosition startingPosition `json:"StartingPosition"`
	}
	if err := decode(body, &req); err != nil {
		writeError(w, err)
		return
	}
	sub, st, sh, pos, aerr := s.startSubscription(req.ConsumerARN, req.ShardId, req.StartingPosition)
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	defer func() {
		s.mu.Lock()
		if s.subs[sub.key] == sub {
			delete(s.subs, sub.key)
		}
		s.mu.Unlock()
	}()
	s.mu.Lock()
	lifetime, heartbeat, throughput := s.opts.SubscriptionLifetime, s.opts.EmptyEventInterval, s.opts.ReadThroughput
	s.mu.Unlock()

	w.Header().Set("Content-Type", contentTypeEventStream)
	w.WriteHeader(http.StatusOK)
	ew := &eventWriter{w: w, rc: http.NewResponseController(w), enc: eventstream.NewEncoder()}
	if err := ew.initialResponse(); err != nil {
		return
	}
	es := &eventSender{s: s, sub: sub, st: st, sh: sh, pos: pos, ew: ew, heartbeat: heartbeat,
		dueEmpty: true} // the first event goes out at once
	if throughput > 0 {
		es.limiter = rate.NewLimiter(rate.Limit(throughput), max(throughput, 11<<20))
	}
	es.run(r.Context(), lifetime)
}

// eventSender sends the events of one subscription until it ends.
type eventSender struct {
	s         *Server
	sub       *subscription
	st        *stream
	sh        *shard
	pos       int // the shard position of the next record to send
	ew        *eventWriter
	limiter   *rate.Limiter // nil: no read throughput limit
	heartbeat time.Duration
	beat      *time.Timer
	stalled   bool
	dueEmpty  bool // an event goes out even without records
}

func (es *eventSender) run(ctx context.Context, lifetime time.Duration) {
	expire := time.NewTimer(lifetime)
	defer expire.Stop()
	es.beat = time.NewTimer(0)
	defer es.beat.Stop()
	for {
		var wake <-chan struct{}
		if !es.stalled {
			ev := es.s.readEvent(es.st, es.sh, es.pos)
			wake = ev.wake
			// A control sent before the records just read were put (a
			// stall, then a record: controlSubs and PutRecord both hold
			// s.mu) takes effect before they go out.
			select {
			case c := <-es.sub.ctl:
				if es.apply(c) {
					return
				}
				continue
			default:
			}
			if ev.gone {
				_ = es.ew.exception(ErrResourceNotFound, "Stream "+es.st.arn+" was deleted.")
				return
			}
			if len(ev.Records) > 0 || ev.atEnd || es.dueEmpty {
				if !es.send(ctx, ev) || ev.atEnd {
					return
				}
				if len(ev.Records) > 0 {
					continue // more may be waiting
				}
			}
		}
		var expireC <-chan time.Time
		if !es.stalled {
			expireC = expire.C
		}
		select {
		case <-ctx.Done():
			return
		case <-wake:
		case <-es.beat.C:
			es.dueEmpty = true
		case <-expireC:
			return
		case c := <-es.sub.ctl:
			if es.apply(c) {
				return
			}
		}
	}
}

// apply applies control c and reports whether the stream ends.
func (es *eventSender) apply(c control) bool {
	switch c.kind {
	case ctlEnd:
		return true
	case ctlException:
		_ = es.ew.exception(c.excType, c.msg)
		return true
	case ctlCut:
		es.ew.cut()
	case ctlStall:
		es.stalled = true
	case ctlResume:
		es.stalled = false
		es.dueEmpty = true
	}
	return false
}

// send writes ev within the read throughput limit and reports whether the
// stream goes on.
func (es *eventSender) send(ctx context.Context, ev shardEvent) bool {
	if es.limiter != nil {
		n := 0
		for _, rec := range ev.Records {
			n += len(rec.Data)
		}
		if d := es.limiter.ReserveN(time.Now(), n).Delay(); d > 0 {
			if !es.s.pause(ctx, es.sub, d) {
				return false
			}
		}
	}
	payload, _ := json.Marshal(ev.subscribeEvent)
	if err := es.ew.event(payload); err != nil {
		return false
	}
	es.pos = ev.next
	es.dueEmpty = false
	es.beat.Reset(es.heartbeat)
	return true
}

// shardEvent is the event a subscription sends next.
type shardEvent struct {
	subscribeEvent
	next  int  // the position after its records
	atEnd bool // the shard is closed and read to its end
	gone  bool // the stream was deleted
	wake  <-chan struct{}
}

// readEvent reads the records from pos on, as many as one event carries.
func (s *Server) readEvent(st *stream, sh *shard, pos int) shardEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ev shardEvent
	ev.gone = !st.deletedAt.IsZero()
	s.trimShard(st, sh)
	pos = max(pos, sh.trimmed)
	next, size := pos, 0
	for next < sh.end() && len(ev.Records) < maxEventRecords {
		rec := sh.recordAt(next)
		if len(ev.Records) > 0 && size+len(rec.data) > maxEventBytes {
			break
		}
		size += len(rec.data)
		ev.Records = append(ev.Records, toRecordJSON(rec))
		next++
	}
	ev.atEnd = !sh.isOpen() && next == sh.end() && len(ev.Records) == 0
	if ev.atEnd {
		ev.ChildShards = st.childShards(sh)
	} else {
		cont := sh.seqBefore(next)
		if len(ev.Records) == 0 && next == sh.end() {
			// Caught up: as on AWS, the continuation still advances
			// with time; any number below the shard's next record
			// resumes at that record.
			if now := makeSeq(s.counter, sh.index); now.Cmp(sh.startSeq) > 0 {
				if last, _, ok := parseSeq(cont); ok && now.Cmp(last) > 0 {
					cont = formatSeq(now)
				}
			}
		}
		ev.ContinuationSequenceNumber = &cont
	}
	ev.MillisBehindLatest = sh.millisBehind(next, s.now())
	ev.next = next
	ev.wake = sh.notify
	if ev.Records == nil {
		ev.Records = []recordJSON{}
	}
	return ev
}

// pause waits d, or less when the subscription must end. It reports whether
// the stream goes on.
func (s *Server) pause(ctx context.Context, sub *subscription, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case c := <-sub.ctl:
		sub.send(c) // handled by the main loop
		return true
	}
}

// eventWriter writes event-stream frames and flushes each at once.
type eventWriter struct {
	w   http.ResponseWriter
	rc  *http.ResponseController
	enc *eventstream.Encoder
	buf bytes.Buffer
}

func (ew *eventWriter) write(msg eventstream.Message) error {
	ew.buf.Reset()
	if err := ew.enc.Encode(&ew.buf, msg); err != nil {
		return err
	}
	if _, err := ew.w.Write(ew.buf.Bytes()); err != nil {
		return err
	}
	return ew.rc.Flush()
}

func (ew *eventWriter) initialResponse() error {
	var msg eventstream.Message
	msg.Headers.Set(eventstreamapi.MessageTypeHeader, eventstream.StringValue(eventstreamapi.EventMessageType))
	msg.Headers.Set(eventstreamapi.EventTypeHeader, eventstream.StringValue("initial-response"))
	msg.Payload = []byte("{}")
	return ew.write(msg)
}

func (ew *eventWriter) event(payload []byte) error {
	var msg eventstream.Message
	msg.Headers.Set(eventstreamapi.MessageTypeHeader, eventstream.StringValue(eventstreamapi.EventMessageType))
	msg.Headers.Set(eventstreamapi.EventTypeHeader, eventstream.StringValue("SubscribeToShardEvent"))
	msg.Headers.Set(eventstreamapi.ContentTypeHeader, eventstream.StringValue("application/json"))
	msg.Payload = payload
	return ew.write(msg)
}

func (ew *eventWriter) exception(typ, message string) error {
	var msg eventstream.Message
	msg.Headers.Set(eventstreamapi.MessageTypeHeader, eventstream.StringValue(eventstreamapi.ExceptionMessageType))
	msg.Headers.Set(eventstreamapi.ExceptionTypeHeader, eventstream.StringValue(typ))
	msg.Headers.Set(eventstreamapi.ContentTypeHeader, eventstream.StringValue("application/json"))
	msg.Payload, _ = json.Marshal(map[string]string{"message": message})
	return ew.write(msg)
}

// cut writes the first half of an event frame and then resets the stream, as
// a connection lost mid-frame looks to the client.
func (ew *eventWriter) cut() {
	var msg eventstream.Message
	msg.Headers.Set(eventstreamapi.MessageTypeHeader, eventstream.StringValue(eventstreamapi.EventMessageType))
	msg.Headers.Set(eventstreamapi.EventTypeHeader, eventstream.StringValue("SubscribeToShardEvent"))
	msg.Headers.Set(eventstreamapi.ContentTypeHeader, eventstream.StringValue("application/json"))
	msg.Payload = []byte(`{"Records":[],"ContinuationSequenceNumber":"0","MillisBehindLatest":0}`)
	ew.buf.Reset()
	_ = ew.enc.Encode(&ew.buf, msg)
	b := ew.buf.Bytes()
	_, _ = ew.w.Write(b[:len(b)/2])
	_ = ew.rc.Flush()
	panic(http.ErrAbortHandler)
}
