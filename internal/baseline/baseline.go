// Package baseline is the plain Kinesis-to-NATS relay that `fanoutd bench`
// measures fanoutd against: what a user writes from the AWS and nats.go
// documentation, with aws-sdk-go-v2's SubscribeToShard and its default
// event decoding (or, polling, a GetRecords loop per shard: polling.go),
// and nats.go's publishing as its documentation recommends (publish.go): in
// core mode a PublishMsg per record and a Flush per event; in JetStream mode
// PublishMsgAsync within a bounded window, every ack of an event awaited
// before the next (a failed one published again with the same
// Nats-Msg-Id), or, as a second baseline, a synchronous PubAck per message.
// It keeps its position in memory only and is not meant for production; it
// exists to be measured.
package baseline

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/nats-io/nats.go"
)

// Config is what the relay reads and where it publishes. The AWS endpoint,
// region, credentials and CA bundle come from the SDK's environment chain.
type Config struct {
	Stream    string `json:"stream"`
	Consumer  string `json:"consumer"`
	NATSURL   string `json:"nats_url"`
	JetStream bool   `json:"jetstream"`
	// Subject is the subject every record of the stream is published on.
	Subject string `json:"subject"`
	// Polling reads by GetRecords instead of enhanced fan-out.
	Polling bool `json:"polling"`
	// Publish is how JetStream mode publishes: PublishAsync (the default)
	// or PublishSync.
	Publish string `json:"publish"`
}

// Run relays every shard of the stream until ctx ends. It returns an error
// only when it cannot start (NATS, AWS configuration, the consumer).
func Run(ctx context.Context, c Config) error {
	nc, err := nats.Connect(c.NATSURL, nats.Name("fanoutd-bench-baseline"))
	if err != nil {
		return fmt.Errorf("connect NATS: %w", err)
	}
	defer nc.Close()
	pub, err := newPublisher(nc, c)
	if err != nil {
		return err
	}
	return run(ctx, c, pub)
}

func run(ctx context.Context, c Config, pub *publisher) error {
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return fmt.Errorf("load AWS config: %w", err)
	}
	kc := kinesis.NewFromConfig(awsCfg)
	var consumerARN *string
	if !c.Polling {
		desc, err := kc.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(c.Stream)})
		if err != nil {
			return fmt.Errorf("describe stream %s: %w", c.Stream, err)
		}
		if consumerARN, err = registerConsumer(ctx, kc, desc.StreamDescriptionSummary.StreamARN, c.Consumer); err != nil {
			return err
		}
	}
	shards, err := listShards(ctx, kc, c.Stream)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	for _, id := range shards {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := shardRelay{cfg: c, aws: awsCfg, pub: pub, consumerARN: consumerARN, shardID: id}
			if c.Polling {
				r.poll(ctx, kc) // GetRecords: polling.go
			} else {
				r.run(ctx)
			}
		}()
	}
	wg.Wait()
	return nil
}

// registerConsumer registers the consumer (or finds it registered) and waits
// until it is ACTIVE.
func registerConsumer(ctx context.Context, kc *kinesis.Client, streamARN *string, name string) (*string, error) {
	_, err := kc.RegisterStreamConsumer(ctx, &kinesis.RegisterStreamConsumerInput{StreamARN: streamARN, ConsumerName: aws.String(name)})
	var inUse *types.ResourceInUseException
	if err != nil && !errors.As(err, &inUse) {
		return nil, fmt.Errorf("register consumer %s: %w", name, err)
	}
	for {
		out, err := kc.DescribeStreamConsumer(ctx, &kinesis.DescribeStreamConsumerInput{StreamARN: streamARN, ConsumerName: aws.String(name)})
		if err != nil {
			return nil, fmt.Errorf("describe consumer %s: %w", name, err)
		}
		if out.ConsumerDescription.ConsumerStatus == types.ConsumerStatusActive {
			return out.ConsumerDescription.ConsumerARN, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func listShards(ctx context.Context, kc *kinesis.Client, stream string) ([]string, error) {
	var ids []string
	in := &kinesis.ListShardsInput{StreamName: aws.String(stream)}
	for {
		out, err := kc.ListShards(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("list shards: %w", err)
		}
		for _, s := range out.Shards {
			ids = append(ids, aws.ToString(s.ShardId))
		}
		if out.NextToken == nil {
			return ids, nil
		}
		in = &kinesis.ListShardsInput{NextToken: out.NextToken}
	}
}

type shardRelay struct {
	cfg         Config
	aws         aws.Config
	pub         *publisher
	consumerARN *string
	shardID     string
	// continuation is the last event's ContinuationSequenceNumber.
	continuation *string
}

// run subscribes again and again (a subscription lasts 5 minutes) until ctx
// ends or the shard is closed and read to its end.
func (r *shardRelay) run(ctx context.Context) {
	for ctx.Err() == nil {
		done, err := r.subscribe(ctx)
		if done {
			return
		}
		if err != nil && ctx.Err() == nil {
			pause(ctx, time.Second)
		}
	}
}

func (r *shardRelay) subscribe(ctx context.Context) (done bool, err error) {
	pos := &types.StartingPosition{Type: types.ShardIteratorTypeTrimHorizon}
	if r.continuation != nil {
		pos = &types.StartingPosition{Type: types.ShardIteratorTypeAfterSequenceNumber, SequenceNumber: r.continuation}
	}
	// One client per subscription: event streams of one client share a
	// decoder buffer (see the README).
	kc := kinesis.NewFromConfig(r.aws)
	out, err := kc.SubscribeToShard(ctx, &kinesis.SubscribeToShardInput{
		ConsumerARN: r.consumerARN, ShardId: aws.String(r.shardID), StartingPosition: pos,
	})
	if err != nil {
		return false, err
	}
	es := out.GetStream()
	defer es.Close()
	for ev := range es.Events() {
		e, ok := ev.(*types.SubscribeToShardEventStreamMemberSubscribeToShardEvent)
		if !ok {
			continue
		}
		if err := r.publish(ctx, e.Value.Records); err != nil {
			return false, err
		}
		if e.Value.ContinuationSequenceNumber == nil {
			return true, nil // the shard is closed and read to its end
		}
		r.continuation = e.Value.ContinuationSequenceNumber
	}
	return false, es.Err()
}

// publish relays the records of one event, each with the Kinesis headers
// and a Nats-Msg-Id of stream:shard:sequence:sub-sequence (0: the baseline
// does not de-aggregate KPL records).
func (r *shardRelay) publish(ctx context.Context, recs []types.Record) error {
	msgs := make([]*nats.Msg, len(recs))
	for i, rec := range recs {
		m := nats.NewMsg(r.cfg.Subject)
		m.Data = rec.Data
		seq := aws.ToString(rec.SequenceNumber)
		m.Header.Set("Kinesis-Stream", r.cfg.Stream)
		m.Header.Set("Kinesis-Shard-Id", r.shardID)
		m.Header.Set("Kinesis-Partition-Key", aws.ToString(rec.PartitionKey))
		m.Header.Set("Kinesis-Sequence-Number", seq)
		if rec.ApproximateArrivalTimestamp != nil {
			m.Header.Set("Kinesis-Arrival-Time", rec.ApproximateArrivalTimestamp.UTC().Format(time.RFC3339Nano))
		}
		m.Header.Set(nats.MsgIdHdr, r.cfg.Stream+":"+r.shardID+":"+seq+":0")
		msgs[i] = m
	}
	if err := r.pub.publish(ctx, msgs); err != nil {
		return fmt.Errorf("shard %s: %w", r.shardID, err)
	}
	return nil
}
