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
	"github.com/fanoutd/fanoutd/record"
)

// StartPosition is where a shard of a stream's first read starts.
type StartPosition string

// The start positions.
const (
	StartTrimHorizon StartPosition = "TRIM_HORIZON"
	StartLatest      StartPosition = "LATEST"
	StartAtTimestamp StartPosition = "AT_TIMESTAMP"
)

// StartPositions are every StartPosition, for validation.
var StartPositions = []StartPosition{StartTrimHorizon, StartLatest, StartAtTimestamp}

// ExpiredPolicy is what happens to a checkpoint Kinesis no longer accepts.
type ExpiredPolicy string

// The expired-checkpoint policies.
const (
	OnExpiredFail        ExpiredPolicy = "fail"
	OnExpiredTrimHorizon ExpiredPolicy = "trim_horizon"
)

// ExpiredPolicies are every ExpiredPolicy, for validation.
var ExpiredPolicies = []ExpiredPolicy{OnExpiredFail, OnExpiredTrimHorizon}

// DefaultConsumer is the EFO consumer name when none is configured.
const DefaultConsumer = "fanoutd"

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
	StartPosition  StartPosition
	StartTimestamp time.Time
	// OnExpiredCheckpoint: OnExpiredFail (default) or OnExpiredTrimHorizon.
	OnExpiredCheckpoint ExpiredPolicy
	// Read is how the shards are read: ReadEFO (the default), ReadPolling
	// or ReadAuto. Checkpoints are the same in every mode.
	Read ReadMode
	// Polling paces the polling reader.
	Polling PollingSpec
}

// Options are what a StreamConsumer needs.
type Options struct {
	Client      *kinesis.Client
	Checkpoints checkpoint.Store
	Handler     record.Handler
	Timers      Timers
	Log         zerolog.Logger
	// Leases, when set, decides which shards this instance reads (several
	// instances share the stream): a shard is read only while its lease is
	// held. Nil: this instance reads every shard.
	Leases Leases
	// Decoder reads the event streams; "" is DecoderFanoutd.
	Decoder Decoder
	// Resume, when set, cuts short the backoff of shards whose handler
	// failed, when it fires (the NATS connection is back).
	Resume *Resume
}

// Leases decides which shards this instance reads when several instances
// share a stream (package coordination implements it, on NATS).
type Leases interface {
	// Claim tries to take the lease of a shard now; nil when the shard is
	// not this instance's to read now.
	Claim(ctx context.Context, stream, consumer, shard string) (Lease, error)
	// SetShards tells how many shards of the stream are readable now (not
	// ended, parents ended): the base of each instance's share.
	SetShards(stream, consumer string, readable int)
	// Wake is signalled when claims should be tried again (a lease was
	// released or expired, the group changed).
	Wake() <-chan struct{}
}

// Lease is this instance's right to read one shard.
type Lease interface {
	// Done is closed when the reader must stop: at once if Lost, else (a
	// handoff) after the batch in flight and a final checkpoint.
	Done() <-chan struct{}
	Lost() bool
	// Valid reports whether records may still be published and a
	// checkpoint written: the lease is not lost and its last renewal is
	// recent by the monotonic and the wall clock (a process resumed after
	// a pause or a suspend finds it invalid before anything else tells it).
	Valid() bool
	// Release gives the lease up once the reader stopped.
	Release(ctx context.Context)
}

// ShardState is where a shard is in its life, as fanoutd reads it.
type ShardState string

// The shard states.
const (
	// ShardWaiting: not read yet, waiting for its parents to end.
	ShardWaiting ShardState = "waiting"
	// ShardReading: its loop runs (subscribed, or resubscribing).
	ShardReading ShardState = "reading"
	// ShardEnded: read to its end (or gone from the stream).
	ShardEnded ShardState = "ended"
	// ShardNotOwned: readable, but another instance of the group holds its
	// lease (or none does yet): this instance does not read it.
	ShardNotOwned ShardState = "not_owned"
)

// ShardStatus is a snapshot of one shard's loop.
type ShardStatus struct {
	Stream, ShardID string
	Parents         []string
	State           ShardState
	// Subscribed: a subscription is open now.
	Subscribed bool
	// Checkpoint is the last delivered continuation; CheckpointSavedAt is
	// when a checkpoint was last written, CheckpointCurrentAt when it was
	// last found current (nothing delivered since it was written: a polled
	// shard with nothing new).
	Checkpoint          string
	CheckpointSavedAt   time.Time
	CheckpointCurrentAt time.Time
	MillisBehindLatest  int64
	LastEvent           time.Time
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
	// Polls counts the GetRecords calls of a polling reader by result
	// (PollOK, PollThrottled, PollExpired, PollError).
	Polls map[string]uint64
}

type shardState struct {
	id      string
	parents []string
	// start is the position of a shard without a checkpoint: the configured
	// one only for the shards of a stream's first read, TRIM_HORIZON for
	// every shard that appears later (a reshard's children).
	start   StartPosition
	started bool
	ended   bool
	status  ShardStatus
}

// readableLocked reports whether st may be read now: not started, not
// ended, and every parent read to its end or gone from the listing (aged
// out of retention). This is what keeps per-partition-key order across
// splits and merges. Called with c.mu held.
func (c *StreamConsumer) readableLocked(st *shardState) bool {
	if st.started || st.ended {
		return false
	}
	for _, p := range st.parents {
		if ps, ok := c.shards[p]; ok && !ps.ended {
			return false
		}
	}
	return true
}

// StreamConsumer consumes one stream: registration, shard map, lineage and
// one loop per shard.
type StreamConsumer struct {
	spec    StreamSpec
	client  *kinesis.Client
	store   checkpoint.Store
	handler record.Handler
	timers  Timers
	log     zerolog.Logger
	leases  Leases
	resume  *Resume
	reader  streamReader

	streamARN string
	// created is the StreamCreationTimestamp of the incarnation being read.
	created time.Time

	mu     sync.Mutex
	shards map[string]*shardState
	// deleted says why the stream is gone while Run probes for it ("" while
	// it is read).
	deleted string
	// relist: a shard vanished from the listing; list again to learn what
	// replaced it.
	relist bool
	wake   chan struct{} // a shard ended or children are known: start what can start
}

// NewStreamConsumer returns a consumer for spec.
func NewStreamConsumer(spec StreamSpec, o Options) *StreamConsumer {
	if spec.Consumer == "" {
		spec.Consumer = DefaultConsumer
	}
	if spec.StartPosition == "" {
		spec.StartPosition = StartTrimHorizon
	}
	if spec.OnExpiredCheckpoint == "" {
		spec.OnExpiredCheckpoint = OnExpiredFail
	}
	if spec.Read == "" {
		spec.Read = ReadEFO
	}
	if a, err := ParseStreamARN(spec.ARN); spec.Name == "" && err == nil {
		spec.Name = a.Stream
	}
	c := &StreamConsumer{
		spec:    spec,
		client:  o.Client,
		store:   o.Checkpoints,
		handler: o.Handler,
		leases:  o.Leases,
		timers:  o.Timers.withDefaults(),
		resume:  o.Resume,
		log:     o.Log.With().Str("stream", spec.Name).Str("consumer", spec.Consumer).Logger(),
		shards:  map[string]*shardState{},
		wake:    make(chan struct{}, 1),
	}
	c.reader = newReader(c, spec.Read, o.Decoder)
	return c
}

// Run consumes the stream until ctx ends (then returns nil once every shard
// loop stopped and wrote its checkpoint) or a fatal error: the stream does
// not exist at start, a checkpoint expired under the fail policy, the
// consumer can't be made ACTIVE.
//
// A stream deleted while it is read is reported (Deleted), then probed with
// backoff; when a stream of that name exists again, it is read as the new
// stream it is: its old checkpoints are discarded (they belong to the
// deleted incarnation) and its shards start from the start position.
func (c *StreamConsumer) Run(ctx context.Context) error {
	found := false
	for {
		err := c.runIncarnation(ctx, &found)
		if err == nil || !found || !errors.Is(err, ErrStreamNotFound) || ctx.Err() != nil {
			return err
		}
		c.mu.Lock()
		c.deleted = err.Error()
		c.shards = map[string]*shardState{}
		c.mu.Unlock()
		c.log.Error().Err(err).Str("probe_max_interval", c.timers.BackoffMax.String()).
			Msg("stream deleted; probing until a stream of that name exists again")
		if !c.waitForStream(ctx) {
			return nil
		}
		c.mu.Lock()
		c.deleted = ""
		c.mu.Unlock()
		c.log.Warn().Msg("a stream of that name exists again; reading it as a new stream")
	}
}

// Deleted says why the stream is not being read while Run waits for it to
// be created again, and "" while it is read.
func (c *StreamConsumer) Deleted() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.deleted
}

// waitForStream probes for the stream with backoff until it exists (true)
// or ctx ends (false).
func (c *StreamConsumer) waitForStream(ctx context.Context) bool {
	bo := newBackoff(c.timers.BackoffInitial, c.timers.BackoffMax)
	for {
		if !sleep(ctx, bo.Next()) {
			return false
		}
		if _, err := c.describeStream(ctx); err == nil {
			return true
		} else if !errors.Is(err, ErrStreamNotFound) && ctx.Err() == nil {
			c.log.Warn().Err(err).Msg("describe stream failed while waiting for it to be created again")
		}
	}
}

// runIncarnation reads one incarnation of the stream, from resolving it to
// the end of every shard loop. found is set once the stream was found.
func (c *StreamConsumer) runIncarnation(ctx context.Context, found *bool) error {
	sum, err := c.resolveStream(ctx)
	if err != nil {
		return c.fatal(ctx, err)
	}
	*found = true
	c.streamARN = aws.ToString(sum.StreamARN)
	c.created = aws.ToTime(sum.StreamCreationTimestamp)
	c.mu.Lock()
	c.shards = map[string]*shardState{}
	c.relist = false
	c.mu.Unlock()
	c.log.Info().Str("stream_arn", c.streamARN).Time("stream_created", c.created).Msg("stream found")
	cps, err := c.store.List(ctx, c.spec.Name, c.spec.Consumer)
	if err != nil {
		return c.fatal(ctx, fmt.Errorf("read checkpoints: %w", err))
	}
	if err := c.discardStale(ctx, cps); err != nil {
		return c.fatal(ctx, err)
	}
	if err := c.reader.prepare(ctx); err != nil {
		return c.fatal(ctx, err)
	}

	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// Handlers finish in-flight batches for up to ShutdownTimeout after ctx ends.
	hctx, hcancel := context.WithCancel(context.WithoutCancel(ctx))
	defer hcancel()
	stopH := context.AfterFunc(runCtx, func() { time.AfterFunc(c.timers.ShutdownTimeout, hcancel) })
	defer stopH()

	var wg sync.WaitGroup
	start := func(st *shardState, lease Lease) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.startShard(runCtx, hctx, st, lease); err != nil {
				cancel(err)
			}
		}()
	}
	// The start position applies to the shards of a stream's first read
	// (no checkpoint at all); any shard that appears later starts at
	// TRIM_HORIZON, so that nothing a producer wrote to it is skipped.
	if err := c.coordinate(runCtx, cps, len(cps) == 0, start); err != nil {
		cancel(err)
	}
	wg.Wait()
	if err := context.Cause(runCtx); err != nil && !errors.Is(err, context.Canceled) {
		return c.fatal(ctx, err)
	}
	return nil
}

// discardStale deletes the checkpoints of an earlier incarnation of the
// stream from the store and from cps.
func (c *StreamConsumer) discardStale(ctx context.Context, cps map[string]checkpoint.Checkpoint) error {
	var stale []string
	var old time.Time
	for id, cp := range cps {
		if c.stale(cp) {
			stale, old = append(stale, id), cp.StreamCreated
		}
	}
	if len(stale) == 0 {
		return nil
	}
	c.log.Warn().Time("stream_created", c.created).Time("checkpoints_of_stream_created", old).Int("checkpoints", len(stale)).
		Str("start_position", string(c.spec.StartPosition)).
		Str("hint", "the stream was deleted and created again under its name: it is read anew from start_position").
		Msg("checkpoints of a deleted stream; discarding them")
	for _, id := range stale {
		if err := c.store.Delete(ctx, c.spec.Name, c.spec.Consumer, id); err != nil {
			return fmt.Errorf("discard a checkpoint of the deleted stream: %w", err)
		}
		delete(cps, id)
	}
	return nil
}

// startShard reads a shard from its checkpoint until its loop stops, then
// gives its lease back.
func (c *StreamConsumer) startShard(ctx, hctx context.Context, st *shardState, lease Lease) error {
	// Start from the checkpoint as it is now (another instance may have
	// read the shard since), read with Get while holding the lease: a
	// shared store fences every write of the shard against what this read
	// or this loop's own writes returned, never against what List saw.
	cp, ok, err := c.store.Get(ctx, c.spec.Name, c.spec.Consumer, st.id)
	for bo := newBackoff(c.timers.BackoffInitial, c.timers.BackoffMax); err != nil; {
		if lease != nil {
			c.log.Warn().Err(err).Str("shard", st.id).Msg("read the checkpoint of a claimed shard; giving the lease back")
			c.shardStopped(st, lease)
			return nil
		}
		if ctx.Err() != nil {
			return nil
		}
		c.log.Warn().Err(err).Str("shard", st.id).Msg("read the checkpoint of a shard; retrying")
		if !sleep(ctx, bo.Next()) {
			return nil
		}
		cp, ok, err = c.store.Get(ctx, c.spec.Name, c.spec.Consumer, st.id)
	}
	err = c.runShard(ctx, hctx, st, cp, ok, lease)
	if lease != nil {
		c.shardStopped(st, lease)
	}
	return err
}

// coordinate keeps the shard map and starts the shards that may start (or
// whose lease this instance takes) until ctx ends or the stream is gone
// (ErrStreamNotFound). first: this is the stream's first read.
func (c *StreamConsumer) coordinate(ctx context.Context, cps map[string]checkpoint.Checkpoint, first bool, start func(*shardState, Lease)) error {
	var leaseWake <-chan struct{}
	if c.leases != nil {
		leaseWake = c.leases.Wake()
	}
	ticker := time.NewTicker(c.timers.ShardSyncInterval)
	defer ticker.Stop()
	list := true
	for ctx.Err() == nil {
		if list {
			if err := c.syncShards(ctx, cps, first); err != nil {
				if errors.Is(err, ErrStreamNotFound) {
					return err
				}
				if ctx.Err() == nil {
					c.log.Warn().Err(err).Msg("list shards failed; keeping the known shard map")
				}
			} else {
				first = false
			}
		}
		if c.leases == nil {
			for _, st := range c.startable() {
				start(st, nil)
			}
		} else {
			c.claim(ctx, start)
		}
		select {
		case <-ctx.Done():
		case <-ticker.C:
			list = true
		case <-c.wake:
			c.mu.Lock()
			list, c.relist = c.relist, false
			c.mu.Unlock()
		case <-leaseWake:
			list = false
		}
	}
	return nil
}

// stale reports whether cp belongs to an earlier incarnation of the
// stream. A checkpoint that names no incarnation (written by an older
// fanoutd) is stale when it was written before the stream was created.
func (c *StreamConsumer) stale(cp checkpoint.Checkpoint) bool {
	if !cp.StreamCreated.IsZero() {
		return cp.StreamCreated.UnixMilli() != c.created.UnixMilli()
	}
	return !cp.UpdatedAt.IsZero() && cp.UpdatedAt.Before(c.created)
}

func (c *StreamConsumer) fatal(ctx context.Context, err error) error {
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return nil
	}
	return fmt.Errorf("stream %s: %w", c.spec.Name, err)
}

// listShards lists every shard of the stream, with pagination.
func (c *StreamConsumer) listShards(ctx context.Context) ([]types.Shard, error) {
	var shards []types.Shard
	in := &kinesis.ListShardsInput{StreamARN: aws.String(c.streamARN)}
	for {
		out, err := c.client.ListShards(ctx, in)
		if err != nil {
			if errorCode(err) == codeResourceNotFound {
				return nil, fmt.Errorf("%w: %v", ErrStreamNotFound, err)
			}
			return nil, fmt.Errorf("list shards: %w", err)
		}
		shards = append(shards, out.Shards...)
		if out.NextToken == nil {
			return shards, nil
		}
		in = &kinesis.ListShardsInput{NextToken: out.NextToken}
	}
}

// syncShards lists every shard and adds the new ones to the map. Shards with
// a ShardEnded checkpoint are known to be done. On the first listing of a
// stream's first read (first), shards start at the configured position; a
// shard that is already closed then, under LATEST, has nothing newer to
// give and counts as ended. Every shard found later starts at TRIM_HORIZON.
func (c *StreamConsumer) syncShards(ctx context.Context, cps map[string]checkpoint.Checkpoint, first bool) error {
	shards, err := c.listShards(ctx)
	if err != nil {
		return err
	}
	var skipped []string
	c.mu.Lock()
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
		start, ended := StartTrimHorizon, cps[id].ShardEnded
		if first {
			start = c.spec.StartPosition
			closed := sh.SequenceNumberRange != nil && sh.SequenceNumberRange.EndingSequenceNumber != nil
			if start == StartLatest && closed && !ended {
				ended = true
				skipped = append(skipped, id)
			}
		}
		c.addShardLocked(id, parents, start, ended)
	}
	c.mu.Unlock()
	// Record the skipped shards as ended, so that a restart does not read
	// them from TRIM_HORIZON.
	for _, id := range skipped {
		if err := c.putCheckpoint(id, checkpoint.Checkpoint{ShardEnded: true}); err != nil {
			c.log.Warn().Err(err).Str("shard", id).Msg("write end-of-shard checkpoint of a closed shard skipped by LATEST")
		}
	}
	return nil
}

// shardGone reports whether ListShards no longer lists shardID (true:
// the shard is gone).
func (c *StreamConsumer) shardGone(ctx context.Context, shardID string) (gone bool, err error) {
	shards, err := c.listShards(ctx)
	if err != nil {
		return false, err
	}
	for _, sh := range shards {
		if aws.ToString(sh.ShardId) == shardID {
			return false, nil
		}
	}
	return true, nil
}

// putCheckpoint writes a shard's checkpoint, tagged with the stream's
// incarnation, within the checkpoint write timeout.
func (c *StreamConsumer) putCheckpoint(shardID string, cp checkpoint.Checkpoint) error {
	ctx, cancel := context.WithTimeout(context.Background(), c.timers.CheckpointWriteTimeout)
	defer cancel()
	cp.StreamCreated = c.created
	return c.store.Put(ctx, c.spec.Name, c.spec.Consumer, shardID, cp)
}

func (c *StreamConsumer) addShardLocked(id string, parents []string, start StartPosition, ended bool) {
	st := &shardState{id: id, parents: parents, start: start, ended: ended}
	st.status = ShardStatus{Stream: c.spec.Name, ShardID: id, Parents: parents, State: ShardWaiting,
		Ends: map[string]uint64{}, Errors: map[string]uint64{}, Polls: map[string]uint64{}}
	if ended {
		st.status.State = ShardEnded
	}
	c.shards[id] = st
	c.log.Debug().Str("shard", id).Strs("parents", parents).Bool("ended", ended).Msg("shard discovered")
}

// startable marks and returns the shards that may start now (see
// readableLocked).
func (c *StreamConsumer) startable() []*shardState {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*shardState
	for _, st := range c.shards {
		if c.readableLocked(st) {
			c.markReadingLocked(st)
			out = append(out, st)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

func (c *StreamConsumer) markReadingLocked(st *shardState) {
	st.started = true
	st.status.State = ShardReading
	st.status.LastActivity = time.Now()
}

// claim, when several instances share the stream, learns from the shared
// checkpoints which shards other instances read to their end, tells the
// group how many shards are readable, and starts the readable shards whose
// lease it can take.
func (c *StreamConsumer) claim(ctx context.Context, start func(*shardState, Lease)) {
	if cps, err := c.store.List(ctx, c.spec.Name, c.spec.Consumer); err == nil {
		c.mu.Lock()
		for id, cp := range cps {
			if st := c.shards[id]; st != nil && cp.ShardEnded && !st.ended && !st.started {
				st.ended = true
				st.status.State = ShardEnded
			}
		}
		c.mu.Unlock()
	} else if ctx.Err() == nil {
		c.log.Warn().Err(err).Msg("read the shared checkpoints")
	}
	c.mu.Lock()
	var candidates []*shardState
	readable := 0
	for _, st := range c.shards {
		if st.started && !st.ended {
			readable++
		}
		if c.readableLocked(st) {
			readable++
			candidates = append(candidates, st)
		}
	}
	c.mu.Unlock()
	c.leases.SetShards(c.spec.Name, c.spec.Consumer, readable)
	sort.Slice(candidates, func(i, j int) bool { return candidates[i].id < candidates[j].id })
	for _, st := range candidates {
		lease, err := c.leases.Claim(ctx, c.spec.Name, c.spec.Consumer, st.id)
		if err != nil && ctx.Err() == nil {
			c.log.Warn().Err(err).Str("shard", st.id).Msg("claim a shard's lease")
		}
		c.mu.Lock()
		if lease == nil {
			st.status.State = ShardNotOwned
		} else if c.readableLocked(st) {
			c.markReadingLocked(st)
		} else {
			lease.Release(ctx) // ended meanwhile
			lease = nil
		}
		c.mu.Unlock()
		if lease != nil {
			start(st, lease)
		}
	}
}

// shardStopped gives a shard's lease back once its loop stopped, so that
// another instance (or this one, later) reads it on.
func (c *StreamConsumer) shardStopped(st *shardState, lease Lease) {
	lease.Release(context.Background())
	c.mu.Lock()
	if !st.ended {
		st.started = false
		st.status.State = ShardNotOwned
		st.status.Subscribed = false
	}
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// shardEnded records that a shard was read to its end and learns its
// children, then wakes the coordinator to start them.
func (c *StreamConsumer) shardEnded(st *shardState, children []types.ChildShard) {
	c.mu.Lock()
	st.ended = true
	st.status.State = ShardEnded
	for _, ch := range children {
		id := aws.ToString(ch.ShardId)
		if _, ok := c.shards[id]; !ok && id != "" {
			c.addShardLocked(id, ch.ParentShards, StartTrimHorizon, false)
		}
	}
	if len(children) == 0 {
		// Gone without telling its children: learn them from the listing.
		c.relist = true
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
		ss.Polls = maps.Clone(ss.Polls)
		out = append(out, ss)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ShardID < out[j].ShardID })
	return out
}
