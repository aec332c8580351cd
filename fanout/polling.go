package fanout

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/rs/zerolog"

	"github.com/fanoutd/fanoutd/fanout/internal/efostream"
	"github.com/fanoutd/fanoutd/record"
)

// PollingSpec paces the polling reader of a stream.
type PollingSpec struct {
	// Interval is the wait between two GetRecords calls on a shard that is
	// caught up; 0 is DefaultPollingInterval.
	Interval time.Duration
	// MaxRecords is the Limit of each GetRecords call, 1 to
	// MaxPollingRecords; 0 is MaxPollingRecords.
	MaxRecords int
}

const (
	// DefaultPollingInterval is PollingSpec.Interval's default.
	DefaultPollingInterval = time.Second
	// MaxPollingRecords is the most records one GetRecords call returns.
	MaxPollingRecords = 10000
	// MinPollingInterval is the least time between two GetRecords calls on
	// a shard: it keeps this process within Kinesis's 5 calls a second per
	// shard, a budget every polling application of the stream shares. A
	// little over a fifth of a second: the shard counts calls as they
	// arrive, and network jitter must not bring a sixth into one second.
	MinPollingInterval = 220 * time.Millisecond
	// MaxPollingInterval is the longest PollingSpec.Interval: a shard
	// iterator expires 5 minutes after it was issued, and a longer wait
	// would need a new one for every call.
	MaxPollingInterval = 4 * time.Minute
	// shardReadRate is a shard's read throughput, shared by every polling
	// application: after a response of B bytes the next call waits
	// B / shardReadRate, so that it is not refused for the bytes just
	// read. A response of the most a call returns, 10 MiB, waits 5 s:
	// Kinesis refuses the calls of the next 5 seconds after one.
	shardReadRate = 2 << 20
	// iteratorReuse is how old an iterator may be and still be reused by
	// the next reader of the shard: Kinesis expires them after 5 minutes.
	iteratorReuse = 4 * time.Minute
	// latestSkew is how far before its first LATEST iterator a shard's
	// later iterators start, while no record was delivered: AT_TIMESTAMP
	// compares with Kinesis's arrival times, and this host's clock may be
	// ahead of Kinesis's.
	latestSkew = 2 * time.Second
)

func (p PollingSpec) withDefaults() PollingSpec {
	if p.Interval <= 0 {
		p.Interval = DefaultPollingInterval
	}
	if p.MaxRecords <= 0 || p.MaxRecords > MaxPollingRecords {
		p.MaxRecords = MaxPollingRecords
	}
	return p
}

// The results of GetRecords calls, as counted in ShardStatus.Polls.
const (
	PollOK        = "ok"
	PollThrottled = "throttled"
	PollExpired   = "expired"
	PollError     = "error"
)

// polling reads a stream with GetShardIterator and GetRecords, on the
// shards' shared throughput: no consumer is registered.
type polling struct{ c *StreamConsumer }

var (
	_ streamReader = polling{}
	_ shardReader  = (*pollingShard)(nil)
	_ reader       = (*pollReader)(nil)
)

// prepare says when the stream's EFO consumer is still registered: polling
// does not use it, and it is billed while it is.
func (p polling) prepare(ctx context.Context) error {
	c := p.c
	in := &kinesis.DescribeStreamConsumerInput{}
	if c.spec.ConsumerARN != "" {
		in.ConsumerARN = aws.String(c.spec.ConsumerARN)
	} else {
		in.StreamARN, in.ConsumerName = aws.String(c.streamARN), aws.String(c.spec.Consumer)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := c.client.DescribeStreamConsumer(ctx, in)
	if err != nil || out.ConsumerDescription == nil {
		return nil // not registered, or not ours to tell: nothing to say
	}
	d := out.ConsumerDescription
	c.log.Info().Str("consumer", aws.ToString(d.ConsumerName)).Str("consumer_arn", aws.ToString(d.ConsumerARN)).
		Str("hint", "polling does not read through it, and it is billed while registered: "+
			"fanoutd consumers deregister --stream "+c.spec.Name+" --consumer "+aws.ToString(d.ConsumerName)).
		Msg("EFO consumer still registered")
	return nil
}

func (p polling) shard(shardID string, log zerolog.Logger) shardReader {
	return &pollingShard{c: p.c, id: shardID, log: log, spec: p.c.spec.Polling.withDefaults()}
}

// pollingShard opens the polling readers of one shard. It keeps the
// iterators of the last call, so that a reader opened where the last one
// stopped (or one response back, after a failed delivery) goes on with
// them: a new iterator at LATEST or AT_TIMESTAMP would not start where
// reading stopped.
type pollingShard struct {
	c    *StreamConsumer
	id   string
	log  zerolog.Logger
	spec PollingSpec

	mu sync.Mutex
	// due is when the next call on the shard may be made, by whichever
	// reader: the 5 calls a second and the bytes read.
	due time.Time
	// latestFrom is when the shard's first LATEST iterator was issued,
	// less latestSkew. Until a record is delivered, every later iterator
	// is AT_TIMESTAMP latestFrom: a new LATEST would skip the records
	// written meanwhile (a few read before may come again).
	latestFrom time.Time
	// cur is the iterator after the last response, prev the one that
	// response was read with.
	cur, prev iteratorAt
}

// iteratorAt is an iterator and the position it reads from.
type iteratorAt struct {
	key    string
	iter   string
	issued time.Time
}

// positionKey names a position: after a sequence number, or a start.
func positionKey(at position) string {
	if at.after != "" {
		return "after:" + at.after
	}
	if at.at != "" {
		return "at:" + at.at
	}
	return "start:" + string(at.start) + ":" + at.timestamp.String()
}

// positionError marks an error of GetShardIterator: only there does
// InvalidArgument mean a rejected start position.
type positionError struct{ err error }

func (e *positionError) Error() string { return e.err.Error() }
func (e *positionError) Unwrap() error { return e.err }

func (p *pollingShard) open(ctx context.Context, at position) (reader, error) {
	r := &pollReader{p: p, at: at, pos: at.after}
	r.ctx, r.cancel = context.WithCancel(ctx)
	key := positionKey(at)
	p.mu.Lock()
	for _, it := range []iteratorAt{p.cur, p.prev} {
		if it.key == key && it.iter != "" && time.Since(it.issued) < iteratorReuse {
			r.cur = it
			break
		}
	}
	r.due = p.due
	p.mu.Unlock()
	if r.cur.iter == "" {
		if err := r.newIterator(at); err != nil {
			r.cancel()
			return nil, err
		}
	}
	return r, nil
}

// iterator is one GetShardIterator at a position.
func (p *pollingShard) iterator(ctx context.Context, at position) (string, error) {
	in := &kinesis.GetShardIteratorInput{StreamARN: aws.String(p.c.streamARN), ShardId: aws.String(p.id)}
	switch {
	case at.after != "":
		in.ShardIteratorType, in.StartingSequenceNumber = types.ShardIteratorTypeAfterSequenceNumber, aws.String(at.after)
	case at.at != "":
		in.ShardIteratorType, in.StartingSequenceNumber = types.ShardIteratorTypeAtSequenceNumber, aws.String(at.at)
	case at.start == StartAtTimestamp:
		in.ShardIteratorType, in.Timestamp = types.ShardIteratorTypeAtTimestamp, aws.Time(at.timestamp)
	case at.start == StartLatest:
		in.ShardIteratorType = types.ShardIteratorTypeLatest
		p.mu.Lock()
		if p.latestFrom.IsZero() {
			p.latestFrom = time.Now().Add(-latestSkew)
		} else {
			in.ShardIteratorType, in.Timestamp = types.ShardIteratorTypeAtTimestamp, aws.Time(p.latestFrom)
		}
		p.mu.Unlock()
	default:
		in.ShardIteratorType = types.ShardIteratorType(at.start)
	}
	out, err := p.c.client.GetShardIterator(ctx, in)
	if err != nil {
		return "", &positionError{fmt.Errorf("get shard iterator %s: %w", p.id, err)}
	}
	return aws.ToString(out.ShardIterator), nil
}

// fault classifies the errors of GetShardIterator and GetRecords.
func (p *pollingShard) fault(err error) readFault {
	var pe *positionError
	switch code := errorCode(err); {
	case code == codeProvisionedThroughput, code == codeLimitExceeded:
		return faultThrottled
	case code == codeResourceNotFound:
		return faultNotFound
	case code == codeInvalidArgument && errors.As(err, &pe):
		return faultPosition
	case code == codeAccessDenied:
		return faultDenied
	}
	return faultTransient
}

// restore has nothing to restore: a shard is read without a consumer.
func (p *pollingShard) restore(context.Context) error { return nil }

// settle: a GetRecords reader leaves nothing behind on Kinesis's side.
func (p *pollingShard) settle() time.Duration { return 0 }

// count adds one GetRecords call with result to the shard's status.
func (p *pollingShard) count(result string) {
	p.c.mu.Lock()
	defer p.c.mu.Unlock()
	if st := p.c.shards[p.id]; st != nil {
		st.status.Polls[result]++
	}
}

// pollReader reads a shard by GetRecords calls, one per next, paced.
type pollReader struct {
	p      *pollingShard
	ctx    context.Context
	cancel context.CancelFunc
	at     position // where the reader was opened
	// pos is the last position delivered: the sequence number of the last
	// record returned, "" while none was.
	pos string
	cur iteratorAt
	due time.Time // the next call is not made before
	bo  *backoff
	// refused is set while every call since the last response was refused.
	refused bool
}

// newIterator gets an iterator at the position reached: after the last
// record delivered, else where the reader was opened.
func (r *pollReader) newIterator(at position) error {
	if r.pos != "" {
		at = position{after: r.pos}
	}
	it, err := r.p.iterator(r.ctx, at)
	if err != nil {
		return err
	}
	r.cur = iteratorAt{key: positionKey(at), iter: it, issued: time.Now()}
	return nil
}

func (r *pollReader) close() { r.cancel() }

// next makes GetRecords calls until one answers, and returns its records
// (an empty event when the shard has nothing new). A throttled call is
// retried after a backoff with jitter, an expired iterator replaced; a
// heartbeat is returned at least every third of the idle timeout, so that
// the idle watchdog takes only a silent reader for a stalled one.
func (r *pollReader) next(dst []record.Record) (readEvent, []record.Record, bool, error) {
	p, c := r.p, r.p.c
	if r.bo == nil {
		r.bo = newBackoff(c.timers.BackoffInitial, max(c.timers.BackoffMax, time.Second))
	}
	heartbeat := time.Now().Add(c.timers.IdleTimeout / 3)
	for {
		wait := time.Until(r.due)
		if beat := time.Until(heartbeat); wait > beat {
			// A long interval, or a long throttle backoff: say the reader
			// is alive.
			if !sleep(r.ctx, beat) {
				return readEvent{}, dst, false, nil
			}
			pos := r.pos
			return readEvent{continuation: &pos, heartbeat: true, stuck: r.refused}, dst, true, nil
		}
		if !sleep(r.ctx, wait) {
			return readEvent{}, dst, false, nil
		}
		out, err := r.call()
		switch code := errorCode(err); {
		case err == nil:
		case r.ctx.Err() != nil:
			return readEvent{}, dst, false, nil
		case code == codeProvisionedThroughput:
			p.count(PollThrottled)
			r.refused = true
			wait := max(MinPollingInterval, r.bo.Next())
			p.log.Debug().Err(err).Str("retry_in", wait.String()).Msg("get records throttled")
			r.due = time.Now().Add(wait)
			continue
		case code == codeExpiredIterator:
			p.count(PollExpired)
			p.log.Debug().Str("position", r.pos).Msg("shard iterator expired; getting a new one")
			if err := r.newIterator(r.at); err != nil {
				return readEvent{}, dst, false, err
			}
			continue
		default:
			p.count(PollError)
			return readEvent{}, dst, false, fmt.Errorf("get records %s: %w", p.id, err)
		}
		p.count(PollOK)
		r.bo.Reset()
		r.refused = false
		return r.event(out, dst)
	}
}

// call is one GetRecords with the current iterator. The SDK does not
// retry it: the reader backs off and counts throttled calls itself, and an
// SDK retry would spend the shard's shared call budget unseen.
func (r *pollReader) call() (*kinesis.GetRecordsOutput, error) {
	p := r.p
	r.due = time.Now().Add(MinPollingInterval)
	p.mu.Lock()
	p.due = r.due
	p.mu.Unlock()
	return p.c.client.GetRecords(r.ctx, &kinesis.GetRecordsInput{
		ShardIterator: aws.String(r.cur.iter), Limit: aws.Int32(int32(p.spec.MaxRecords)), StreamARN: aws.String(p.c.streamARN)},
		func(o *kinesis.Options) { o.RetryMaxAttempts = 1 })
}

// event turns a GetRecords response into an event, and paces the next call.
func (r *pollReader) event(out *kinesis.GetRecordsOutput, dst []record.Record) (readEvent, []record.Record, bool, error) {
	p := r.p
	n := len(dst)
	dst = efostream.Records(dst, out.Records)
	size := 0
	for i := range dst[n:] {
		size += len(dst[n+i].Data) + len(dst[n+i].PartitionKey)
	}
	ev := readEvent{millisBehindLatest: aws.ToInt64(out.MillisBehindLatest)}
	if out.NextShardIterator == nil {
		ev.childShards = out.ChildShards
		return ev, dst, true, nil
	}
	if n := len(out.Records); n > 0 {
		r.pos = aws.ToString(out.Records[n-1].SequenceNumber)
	}
	now := time.Now()
	if d := time.Duration(size) * time.Second / shardReadRate; now.Add(d).After(r.due) {
		r.due = now.Add(d)
		p.mu.Lock()
		p.due = r.due
		p.mu.Unlock()
	}
	next := iteratorAt{key: positionKey(position{after: r.pos, at: r.at.at, start: r.at.start, timestamp: r.at.timestamp}), iter: *out.NextShardIterator, issued: now}
	p.mu.Lock()
	p.prev, p.cur = r.cur, next
	p.mu.Unlock()
	r.cur = next
	if next := now.Add(p.spec.Interval); ev.millisBehindLatest == 0 && next.After(r.due) {
		r.due = next
	}
	pos := r.pos
	ev.continuation = &pos
	return ev, dst, true, nil
}
