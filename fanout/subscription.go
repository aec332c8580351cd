package fanout

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/rs/zerolog"

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

// eventMeta is what the shard loop needs of one event besides its records.
type eventMeta struct {
	// continuation is nil when the shard ended.
	continuation       *string
	millisBehindLatest int64
	childShards        []types.ChildShard
}

// subscription is one open SubscribeToShard stream. next blocks until the
// next SubscribeToShardEvent, appends its Kinesis records to dst (KPL
// aggregates as they are: the shard loop splits them) and returns them;
// their Data may alias buffers of the subscription that the next call
// reuses. ok is false when the stream ended: cleanly
// when err is nil. Unknown events are skipped. close ends the stream and
// unblocks next; it may be called from another goroutine, more than once.
type subscription interface {
	next(dst []record.Record) (ev eventMeta, recs []record.Record, ok bool, err error)
	close()
}

// subscribe opens a subscription with the consumer's decoder.
func (c *StreamConsumer) subscribe(ctx context.Context, in *kinesis.SubscribeToShardInput, log zerolog.Logger) (subscription, error) {
	if c.decoder == DecoderSDK {
		out, err := streamClient(c.client).SubscribeToShard(ctx, in)
		if err != nil {
			return nil, err
		}
		return &sdkSubscription{ctx: ctx, stream: out.GetStream()}, nil
	}
	return openRawSubscription(ctx, c.client.Options(), in, log)
}

// sdkSubscription is the SDK's event-stream reader behind subscription.
type sdkSubscription struct {
	ctx    context.Context
	stream *kinesis.SubscribeToShardEventStream
}

func (s *sdkSubscription) next(dst []record.Record) (eventMeta, []record.Record, bool, error) {
	for {
		select {
		case <-s.ctx.Done():
			return eventMeta{}, dst, false, s.ctx.Err()
		case ev, ok := <-s.stream.Events():
			if !ok {
				return eventMeta{}, dst, false, s.stream.Err()
			}
			e, isEvent := ev.(*types.SubscribeToShardEventStreamMemberSubscribeToShardEvent)
			if !isEvent {
				continue
			}
			return sdkEventMeta(&e.Value), kinesisRecords(dst, &e.Value), true, nil
		}
	}
}

func (s *sdkSubscription) close() { _ = s.stream.Close() }

func sdkEventMeta(ev *types.SubscribeToShardEvent) eventMeta {
	return eventMeta{
		continuation:       ev.ContinuationSequenceNumber,
		millisBehindLatest: aws.ToInt64(ev.MillisBehindLatest),
		childShards:        ev.ChildShards,
	}
}

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
