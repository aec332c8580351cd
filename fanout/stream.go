package fanout

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sort"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/rs/zerolog"

	"github.com/fanoutd/fanoutd/checkpoint"
)

// Start positions for shards without a checkpoint.
const (
	StartTrimHorizon = "TRIM_HORIZON"
	StartLatest      = "LATEST"
	StartAtTimestamp = "AT_TIMESTAMP"
)

// Policies for a checkpoint that Kinesis no longer accepts.
const (
	OnExpiredFail        = "fail"
	OnExpiredTrimHorizon = "trim_horizon"
)

// StreamSpec is one stream to consume.
type StreamSpec struct {
	// Name or ARN of the stream (ARN wins when both are set).
	Name string
	ARN  string
	// Consumer is the EFO consumer name; ConsumerARN, if set, skips
	// registration.
	Consumer    string
	ConsumerARN string
	// StartPosition is used for shards without a checkpoint.
	StartPosition  string
	StartTimestamp time.Time
	// OnExpiredCheckpoint: OnExpiredFail (default) or OnExpiredTrimHorizon.
	OnExpiredCheckpoint string
}

// Timers are every duration the consumer waits on.
type Timers struct {
	// IdleTimeout: a subscription silent this long is closed and renewed.
	IdleTimeout time.Duration
	// ShardSyncInterval is the ListShards period.
	ShardSyncInterval time.Duration
	// MinResubscribeInterval is the least time between two subscribes of a
	// shard (Kinesis allows one per second).
	MinResubscribeInterval time.Duration
	BackoffInitial         time.Duration
	BackoffMax             time.Duration
	ConsumerPollInitial    time.Duration
	ConsumerPollMax        time.Duration
	ConsumerActiveTimeout  time.Duration
	// ShutdownTimeout bounds the in-flight batches after Run's context ends.
	ShutdownTimeout time.Duration
	// CheckpointInterval is the least time between two checkpoint writes of
	// a shard (0: after every event). The in-memory position always follows
	// every event; this only bounds the replay after a crash.
	CheckpointInterval time.Duration
}

// DefaultTimers are the production values.
func DefaultTimers() Timers {
	return Timers{
		IdleTimeout:            60 * time.Second,
		ShardSyncInterval:      60 * time.Second,
		MinResubscribeInterval: time.Second,
		BackoffInitial:         200 * time.Millisecond,
		BackoffMax:             30 * time.Second,
		ConsumerPollInitial:    500 * time.Millisecond,
		ConsumerPollMax:        5 * time.Second,
		ConsumerActiveTimeout:  2 * time.Minute,
		ShutdownTimeout:        20 * time.Second,
		CheckpointInterval:     time.Second,
	}
}

// Options are what a StreamConsumer needs.
type Options struct {
	Client      *kinesis.Client
	Checkpoints checkpoint.Store
	Handler     Handler
	Timers      Timers
	Log         zerolog.Logger
}

// ShardStatus is a snapshot of one shard's loop.
type ShardStatus struct {
	Stream, ShardID string
	Parents         []string
	State           string // waiting (for parents), reading, ended
	// Subscribed: a subscription is open now.
	Subscribed bool
	// Checkpoint is the last delivered continuation; CheckpointSavedAt is
	// when a checkpoint was last written.
	Checkpoint         string
	CheckpointSavedAt  time.Time
	MillisBehindLatest int64
	LastEvent          time.Time
	// LastActivity is the last time the shard's loop did anything: an event,
	// a subscribe attempt, the end of a subscription. A reading shard whose
	// loop is silent for long is stalled.
	LastActivity  time.Time
	SubscribedAt  time.Time
	Records       uint64
	Bytes         uint64
	Events        uint64
	Subscriptions uint64
	// Ends counts subscriptions ended by reason (expired, error, idle,
	// handler, shard_end, shutdown); Errors counts subscribe and stream
	// errors by AWS error code ("transport" for others).
	Ends   map[string]uint64
	Errors map[string]uint64
}

type shardState struct {
	id      string
	parents []string
	started bool
	ended   bool
	status  ShardStatus
}

// StreamConsumer consumes one stream: registration, shard map, lineage and
// one loop per shard.
type StreamConsumer struct {
	spec    StreamSpec
	client  *kinesis.Client
	store   checkpoint.Store
	handler Handler
	timers  Timers
	log     zerolog.Logger

	streamARN string
	regMu     sync.Mutex // one re-registration at a time

	mu     sync.Mutex
	arn    string
	shards map[string]*shardState
	wake   chan struct{} // a shard ended or children are known: start what can start
}

// NewStreamConsumer returns a consumer for spec.
func NewStreamConsumer(spec StreamSpec, o Options) *StreamConsumer {
	if spec.Consumer == "" {
		spec.Consumer = "fanoutd"
	}
	if spec.StartPosition == "" {
		spec.StartPosition = StartTrimHorizon
	}
	if spec.OnExpiredCheckpoint == "" {
		spec.OnExpiredCheckpoint = OnExpiredFail
	}
	if spec.Name == "" && spec.ARN != "" {
		spec.Name = streamNameFromARN(spec.ARN)
	}
	def := DefaultTimers()
	t := o.Timers
	for _, p := range []struct{ v, d *time.Duration }{
		{&t.IdleTimeout, &def.IdleTimeout}, {&t.ShardSyncInterval, &def.ShardSyncInterval},
		{&t.MinResubscribeInterval, &def.MinResubscribeInterval}, {&t.BackoffInitial, &def.BackoffInitial},
		{&t.BackoffMax, &def.BackoffMax}, {&t.ConsumerPollInitial, &def.ConsumerPollInitial},
		{&t.ConsumerPollMax, &def.ConsumerPollMax}, {&t.ConsumerActiveTimeout, &def.ConsumerActiveTimeout},
		{&t.ShutdownTimeout, &def.ShutdownTimeout},
	} {
		if *p.v <= 0 {
			*p.v = *p.d
		}
	}
	return &StreamConsumer{
		spec:    spec,
		client:  o.Client,
		store:   o.Checkpoints,
		handler: o.Handler,
		timers:  t,
		log:     o.Log.With().Str("stream", spec.Name).Str("consumer", spec.Consumer).Logger(),
		shards:  map[string]*shardState{},
		wake:    make(chan struct{}, 1),
	}
}

func streamNameFromARN(arn string) string {
	for i := len(arn) - 1; i >= 0; i-- {
		if arn[i] == '/' {
			return arn[i+1:]
		}
	}
	return arn
}

// Name is the stream's name.
func (c *StreamConsumer) Name() string { return c.spec.Name }

// Run consumes the stream until ctx ends (then returns nil once every shard
// loop stopped and wrote its checkpoint) or a fatal error: the stream does
// not exist, a checkpoint expired under the fail policy, the consumer can't
// be made ACTIVE.
func (c *StreamConsumer) Run(ctx context.Context) error {
	arn, err := c.resolveStreamARN(ctx)
	if err != nil {
		return c.fatal(ctx, err)
	}
	c.streamARN = arn
	c.log.Info().Str("stream_arn", arn).Msg("stream found")
	consumerARN, err := c.ensureConsumer(ctx)
	if err != nil {
		return c.fatal(ctx, err)
	}
	c.mu.Lock()
	c.arn = consumerARN
	c.mu.Unlock()
	cps, err := c.store.List(ctx, c.spec.Name, c.spec.Consumer)
	if err != nil {
		return c.fatal(ctx, fmt.Errorf("read checkpoints: %w", err))
	}

	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// Handlers finish in-flight batches for up to ShutdownTimeout after ctx ends.
	hctx, hcancel := context.WithCancel(context.WithoutCancel(ctx))
	defer hcancel()
	stopH := context.AfterFunc(runCtx, func() { time.AfterFunc(c.timers.ShutdownTimeout, hcancel) })
	defer stopH()

	var wg sync.WaitGroup
	start := func(st *shardState) {
		cp, ok := cps[st.id]
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.runShard(runCtx, hctx, st, cp, ok); err != nil {
				cancel(err)
			}
		}()
	}
	ticker := time.NewTicker(c.timers.ShardSyncInterval)
	defer ticker.Stop()
	list := true
	for runCtx.Err() == nil {
		if list {
			if err := c.syncShards(runCtx, cps); err != nil {
				if errors.Is(err, ErrStreamNotFound) {
					cancel(err)
					break
				}
				if runCtx.Err() == nil {
					c.log.Warn().Err(err).Msg("list shards failed; keeping the known shard map")
				}
			}
		}
		for _, st := range c.startable() {
			start(st)
		}
		select {
		case <-runCtx.Done():
		case <-ticker.C:
			list = true
		case <-c.wake:
			list = false
		}
	}
	wg.Wait()
	if err := context.Cause(runCtx); err != nil && !errors.Is(err, context.Canceled) {
		return c.fatal(ctx, err)
	}
	return nil
}

func (c *StreamConsumer) fatal(ctx context.Context, err error) error {
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return nil
	}
	return fmt.Errorf("stream %s: %w", c.spec.Name, err)
}

// syncShards lists every shard (with pagination) and adds the new ones to
// the map. Shards with a ShardEnded checkpoint are known to be done.
func (c *StreamConsumer) syncShards(ctx context.Context, cps map[string]checkpoint.Checkpoint) error {
	var shards []types.Shard
	in := &kinesis.ListShardsInput{StreamARN: aws.String(c.streamARN)}
	for {
		out, err := c.client.ListShards(ctx, in)
		if err != nil {
			if errorCode(err) == codeResourceNotFound {
				return fmt.Errorf("%w: %v", ErrStreamNotFound, err)
			}
			return fmt.Errorf("list shards: %w", err)
		}
		shards = append(shards, out.Shards...)
		if out.NextToken == nil {
			break
		}
		in = &kinesis.ListShardsInput{NextToken: out.NextToken}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, sh := range shards {
		id := aws.ToString(sh.ShardId)
		if _, ok := c.shards[id]; ok {
			continue
		}
		var parents []string
		for _, p := range []*string{sh.ParentShardId, sh.AdjacentParentShardId} {
			if p != nil && *p != "" {
				parents = append(parents, *p)
			}
		}
		c.addShardLocked(id, parents, cps[id].ShardEnded)
	}
	return nil
}

func (c *StreamConsumer) addShardLocked(id string, parents []string, ended bool) {
	st := &shardState{id: id, parents: parents, ended: ended}
	st.status = ShardStatus{Stream: c.spec.Name, ShardID: id, Parents: parents, State: "waiting",
		Ends: map[string]uint64{}, Errors: map[string]uint64{}}
	if ended {
		st.status.State = "ended"
	}
	c.shards[id] = st
	c.log.Debug().Str("shard", id).Strs("parents", parents).Bool("ended", ended).Msg("shard discovered")
}

// startable marks and returns the shards that may start now: not started,
// not ended, and every parent either read to its end or gone from the
// listing (aged out of retention). This is what keeps per-partition-key
// order across splits and merges.
func (c *StreamConsumer) startable() []*shardState {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*shardState
	for _, st := range c.shards {
		if st.started || st.ended {
			continue
		}
		ready := true
		for _, p := range st.parents {
			if ps, ok := c.shards[p]; ok && !ps.ended {
				ready = false
				break
			}
		}
		if ready {
			st.started = true
			st.status.State = "reading"
			st.status.LastActivity = time.Now()
			out = append(out, st)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

// shardEnded records that a shard was read to its end and learns its
// children, then wakes the coordinator to start them.
func (c *StreamConsumer) shardEnded(st *shardState, children []types.ChildShard) {
	c.mu.Lock()
	st.ended = true
	st.status.State = "ended"
	for _, ch := range children {
		id := aws.ToString(ch.ShardId)
		if _, ok := c.shards[id]; !ok && id != "" {
			c.addShardLocked(id, ch.ParentShards, false)
		}
	}
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Shards returns a snapshot of every known shard, sorted by ID.
func (c *StreamConsumer) Shards() []ShardStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]ShardStatus, 0, len(c.shards))
	for _, st := range c.shards {
		ss := st.status
		ss.Ends = maps.Clone(ss.Ends)
		ss.Errors = maps.Clone(ss.Errors)
		out = append(out, ss)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ShardID < out[j].ShardID })
	return out
}
