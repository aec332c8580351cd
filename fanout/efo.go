package fanout

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/rs/zerolog"

	"github.com/fanoutd/fanoutd/fanout/internal/efostream"
	"github.com/fanoutd/fanoutd/kpl"
	"github.com/fanoutd/fanoutd/record"
)

// Decoder selects how a SubscribeToShard event stream is read.
type Decoder string

const (
	// DecoderFanoutd (the default) reads the HTTP/2 response body itself
	// with the SDK's signer, credentials, endpoint resolution and frame
	// format, and decodes SubscribeToShardEvent JSON into reused buffers.
	DecoderFanoutd Decoder = "fanoutd"
	// DecoderSDK reads the stream through aws-sdk-go-v2's own event-stream
	// reader, on a client of its own per subscription. Kept for one release
	// as a fallback.
	DecoderSDK Decoder = "sdk"
)

// ParseDecoder checks a decoder name ("" is the default).
func ParseDecoder(s string) (Decoder, error) {
	switch Decoder(s) {
	case "", DecoderFanoutd:
		return DecoderFanoutd, nil
	case DecoderSDK:
		return DecoderSDK, nil
	}
	return "", fmt.Errorf("unknown decoder %q (want fanoutd or sdk)", s)
}

// efo reads a stream through enhanced fan-out, on its EFO consumer.
type efo struct {
	c       *StreamConsumer
	decoder Decoder
	regMu   sync.Mutex // one re-registration at a time

	mu  sync.Mutex
	arn string
}

var (
	_ streamReader = (*efo)(nil)
	_ shardReader  = (*efoReader)(nil)
	_ reader       = efoStream{}
)

// prepare registers the consumer (or finds it) and waits until it is ACTIVE.
func (e *efo) prepare(ctx context.Context) error {
	arn, err := e.c.ensureConsumer(ctx)
	if err != nil {
		return err
	}
	e.mu.Lock()
	e.arn = arn
	e.mu.Unlock()
	return nil
}

func (e *efo) shard(shardID string, log zerolog.Logger) shardReader {
	return &efoReader{e: e, shardID: shardID, log: log}
}

// efoReader reads a shard through enhanced fan-out: one SubscribeToShard
// event stream per reader, on the stream's EFO consumer. Kinesis ends each
// after 5 minutes; the shard loop then opens the next.
type efoReader struct {
	e       *efo
	shardID string
	log     zerolog.Logger
	// arn is the consumer ARN the last open used: restore registers the
	// consumer again only if no other shard did since.
	arn string
}

// eventStream is one SubscribeToShard stream, read by either decoder.
type eventStream interface {
	Next(dst []record.Record) (efostream.Event, []record.Record, bool, error)
	Close()
}

func (r *efoReader) open(ctx context.Context, at position) (reader, error) {
	r.arn = r.e.consumerARN()
	in := &kinesis.SubscribeToShardInput{ConsumerARN: aws.String(r.arn), ShardId: aws.String(r.shardID), StartingPosition: startingPosition(at)}
	client := r.e.c.client
	var s eventStream
	var err error
	if r.e.decoder == DecoderSDK {
		s, err = efostream.SubscribeSDK(ctx, client, in)
	} else {
		s, err = efostream.Subscribe(ctx, client.Options(), in, r.log)
	}
	if err != nil {
		return nil, err
	}
	return efoStream{s}, nil
}

func startingPosition(at position) *types.StartingPosition {
	if at.after != "" {
		return &types.StartingPosition{Type: types.ShardIteratorTypeAfterSequenceNumber, SequenceNumber: aws.String(at.after)}
	}
	if at.at != "" {
		return &types.StartingPosition{Type: types.ShardIteratorTypeAtSequenceNumber, SequenceNumber: aws.String(at.at)}
	}
	sp := &types.StartingPosition{Type: types.ShardIteratorType(at.start)}
	if at.start == StartAtTimestamp {
		sp.Timestamp = aws.Time(at.timestamp)
	}
	return sp
}

// fault classifies the errors of SubscribeToShard and its event stream.
func (r *efoReader) fault(err error) readFault {
	switch errorCode(err) {
	case codeResourceInUse:
		// Another subscription holds the shard (a previous instance, or our
		// own old connection not yet gone).
		return faultContended
	case codeLimitExceeded:
		return faultThrottled
	case codeResourceNotFound:
		return faultNotFound
	case codeInvalidArgument:
		return faultPosition
	case codeAccessDenied:
		return faultDenied
	}
	return faultTransient
}

// subscriptionSettle gives Kinesis a moment to see a subscription closed,
// so that the next owner's is not a takeover of it.
const subscriptionSettle = 250 * time.Millisecond

func (r *efoReader) settle() time.Duration { return subscriptionSettle }

// restore registers the consumer again: the shard is still listed, so it
// was the consumer that was not found.
func (r *efoReader) restore(ctx context.Context) error {
	if _, err := r.e.reregister(ctx, r.arn); err != nil {
		return fmt.Errorf("re-register consumer: %w", err)
	}
	return nil
}

// efoStream is one event stream as a reader.
type efoStream struct{ s eventStream }

func (e efoStream) next(dst []record.Record) (readEvent, []record.Record, bool, error) {
	ev, recs, ok, err := e.s.Next(dst)
	return readEvent{continuation: ev.Continuation, millisBehindLatest: ev.MillisBehindLatest, childShards: ev.ChildShards}, recs, ok, err
}

func (e efoStream) close() { e.s.Close() }

// DecodeEvent appends the user records of one SubscribeToShardEvent to dst,
// de-aggregating KPL records, all at once (the shard loop splits
// aggregates batch by batch instead; this is for benchmarks and tools).
// Data slices alias the event's buffers.
func DecodeEvent(dst []record.Record, ev *types.SubscribeToShardEvent) []record.Record {
	for i := range ev.Records {
		r := &ev.Records[i]
		dst = kpl.Deaggregate(dst, r.Data, aws.ToString(r.PartitionKey), "", aws.ToString(r.SequenceNumber), aws.ToTime(r.ApproximateArrivalTimestamp))
	}
	return dst
}
