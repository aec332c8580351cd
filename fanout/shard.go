package fanout

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/rs/zerolog"

	"github.com/fanoutd/fanoutd/checkpoint"
	"github.com/fanoutd/fanoutd/internal/reuse"
	"github.com/fanoutd/fanoutd/kpl"
	"github.com/fanoutd/fanoutd/record"
)

// Why a reader ended (the names are the reason label of
// fanoutd_subscriptions_ended_total).
type endReason int

var endReasonNames = [...]string{"expired", "error", "idle", "handler", "shard_end", "shutdown", "shard_gone", "lease"}

func (r endReason) String() string { return endReasonNames[r] }

const (
	endClean    endReason = iota // the reader ended cleanly (EFO: the 5-minute end, a cut connection)
	endError                     // the reader failed (EFO: an exception frame, a transport error)
	endIdle                      // the idle watchdog fired
	endHandler                   // the handler could not deliver a batch
	endShard                     // the shard was read to its end
	endShutdown                  // Run's context ended
	endGone                      // the shard is no longer listed (aged out of retention)
	endLease                     // the shard's lease ended (lost, handed over, or a fenced checkpoint)
)

// shardLoop is the state of one shard's loop.
type shardLoop struct {
	c     *StreamConsumer
	st    *shardState
	log   zerolog.Logger
	src   shardReader
	pos   cursor        // last delivered position; seq "" = use the start position
	start StartPosition // start position when pos.seq is ""
	saved cursor        // last persisted pos
	// skip is the aggregate the reader was opened at (inAgg), whose user
	// records up to skip.sub were delivered already.
	skip  cursor
	saveT time.Time
	// currentT is when the checkpoint was last found current.
	currentT time.Time
	// events holds the Kinesis records of the event being handled (KPL
	// aggregates whole), split into batch by split as they are handed over.
	events    []record.Record
	eventsUse reuse.Use
	split     kpl.Splitter
	batch     record.Batch
	// lease is the shard's lease when several instances share the stream;
	// fenced is set when a checkpoint write found that another instance
	// wrote the shard's checkpoint meanwhile (it reads the shard now).
	lease  Lease
	fenced bool
	// unsavedRecords: records were delivered since the last checkpoint
	// write. When only empty events moved the position, it is written at
	// most every emptyCheckpointInterval.
	unsavedRecords bool
	// contendedLogged: the shard being held by another reader was said
	// since the last open that succeeded.
	contendedLogged bool
	// stuckLogged: a reader whose every read is refused was said once.
	stuckLogged bool
}

// cursor is a position in a shard: after the sequence number seq (an
// event's continuation or a Kinesis record), or, when inAgg, inside the KPL
// aggregate seq after its user record sub.
type cursor struct {
	seq   string
	sub   int64
	inAgg bool
}

// position is where a reader opens to go on from c.
func (c cursor) position(start StartPosition, ts time.Time) position {
	if c.inAgg {
		return position{at: c.seq, start: start, timestamp: ts}
	}
	return position{after: c.seq, start: start, timestamp: ts}
}

// emptyCheckpointInterval is the least time between two checkpoint writes
// of a shard whose position moved only by empty events: a crash replays no
// record, and an idle shard's checkpoint stays far younger than the
// retention period, while 1 000 idle shards do not write 200 files a second.
const emptyCheckpointInterval = time.Minute

// runShard reads one shard for ever: open a reader at the last delivered
// position, hand each event to the handler, remember the continuation,
// open another whenever the reader ends, until the shard ends or ctx does.
func (c *StreamConsumer) runShard(ctx, hctx context.Context, st *shardState, cp checkpoint.Checkpoint, hasCP bool, lease Lease) error {
	// Repeated warnings (an outage makes every retry fail the same way) are
	// rate-limited per shard: 5 a minute, the rest dropped.
	log := c.log.With().Str("shard", st.id).Logger().Sample(&zerolog.LevelSampler{
		WarnSampler: &zerolog.BurstSampler{Burst: 5, Period: time.Minute},
	})
	l := &shardLoop{c: c, st: st, log: log, src: c.reader.shard(st.id, log), start: st.start, lease: lease}
	if hasCP {
		l.pos = cursor{seq: cp.SequenceNumber, sub: cp.SubSequenceNumber, inAgg: cp.InAggregate && cp.SequenceNumber != ""}
		l.saved = l.pos
	}
	l.batch = record.Batch{Stream: c.spec.Name, ShardID: st.id, Consumer: c.spec.Consumer}
	defer l.persist(true)
	if lease != nil {
		l.batch.Valid = lease.Valid
		var stop func()
		ctx, hctx, stop = watchLease(ctx, hctx, lease)
		defer stop()
	}
	return l.run(ctx, hctx)
}

// watchLease returns ctx and hctx ended with the lease: the reader at once;
// the batch in flight too if the lease was lost (another instance may read
// the shard soon), not for a handoff. stop releases the watcher.
func watchLease(ctx, hctx context.Context, lease Lease) (context.Context, context.Context, func()) {
	ctx, lcancel := context.WithCancel(ctx)
	hctx, hcancel := context.WithCancel(hctx)
	go func() {
		select {
		case <-lease.Done():
			if lease.Lost() {
				hcancel()
			}
			lcancel()
		case <-ctx.Done():
		}
	}()
	return ctx, hctx, func() { hcancel(); lcancel() }
}

// run opens readers one after the other until the shard ends, ctx ends or
// a fatal error.
func (l *shardLoop) run(ctx, hctx context.Context) error {
	c := l.c
	bo := newBackoff(c.timers.BackoffInitial, c.timers.BackoffMax)
	var lastOpen time.Time
	for {
		if !sleep(ctx, c.timers.MinResubscribeInterval-time.Since(lastOpen)) {
			return nil
		}
		lastOpen = time.Now()
		gen := c.resume.generation()
		l.touch(nil)
		readCtx, cancel := context.WithCancel(ctx)
		r, err := l.src.open(readCtx, l.pos.position(l.start, c.spec.StartTimestamp))
		if err != nil {
			cancel()
			if ctx.Err() != nil {
				return nil
			}
			l.countError(err)
			if fatal := l.readFailed(ctx, err); fatal != nil {
				return l.gone(fatal)
			}
			if !sleep(ctx, bo.Next()) {
				return nil
			}
			continue
		}
		l.contendedLogged = false
		l.touch(func(s *ShardStatus) {
			s.SubscribedAt = time.Now()
			s.Subscriptions++
			s.Subscribed = true
		})
		l.skip = cursor{}
		if l.pos.inAgg {
			l.skip = l.pos
		}
		l.log.Debug().Str("position", l.pos.seq).Int64("sub_sequence", l.pos.sub).Bool("in_aggregate", l.pos.inAgg).Msg("reader opened")
		reason, err := l.read(readCtx, hctx, r)
		cancel()
		if stop, err := l.ended(ctx, reason, err); stop {
			return err
		}
		if reason == endClean {
			bo.Reset()
			continue
		}
		live, resumed := c.backoffSleep(ctx, bo.Next(), reason, gen)
		if !live {
			return nil
		}
		if resumed {
			bo.Reset()
		}
	}
}

// ended accounts for a reader that ended and says whether the loop stops
// (with err, nil for a clean stop).
func (l *shardLoop) ended(ctx context.Context, reason endReason, err error) (stop bool, _ error) {
	if l.leaseEnded() && reason != endShard {
		reason = endLease // however the read ended, the lease ended it
	}
	l.touch(func(s *ShardStatus) {
		s.Subscribed = false
		s.Ends[reason.String()]++
	})
	if reason == endError {
		l.countError(err)
	}
	switch reason {
	case endShard:
		return true, nil
	case endShutdown:
		if l.lease != nil {
			// The lease is released next, and another instance opens its
			// reader at once: the same handoff as leaseStopped's.
			sleep(context.Background(), l.src.settle())
		}
		return true, nil
	case endLease:
		return true, l.leaseStopped()
	case endClean:
		l.log.Debug().Msg("reader ended; reopening")
	case endIdle:
		l.log.Warn().Str("idle_timeout", l.c.timers.IdleTimeout.String()).Msg("no event within the idle timeout; reopening")
	case endHandler:
		if errors.Is(err, record.ErrStop) {
			return true, fmt.Errorf("shard %s: %w", l.st.id, err)
		}
		l.log.Warn().Err(err).Str("retry_from", "the last delivered position").Msg("could not deliver a batch")
	case endError:
		if fatal := l.readFailed(ctx, err); fatal != nil {
			return true, l.gone(fatal)
		}
	}
	return false, nil
}

// leaseStopped is the end of a loop stopped by its lease.
func (l *shardLoop) leaseStopped() error {
	if l.lease == nil {
		// Fenced with no lease: another process writes the shard's
		// checkpoints. Stopping the shard alone would leave it unread here
		// for good, silently.
		return fmt.Errorf("shard %s: %w", l.st.id, ErrCheckpointTaken)
	}
	lost := l.fenced || l.lease.Lost()
	l.log.Info().Bool("lost", lost).Msg("the shard's lease ended; stopped reading it")
	if !lost {
		// A handoff: the next owner opens its reader as soon as the lease
		// is released.
		sleep(context.Background(), l.src.settle())
	}
	return nil
}

// readFailed logs an error of a reader, opening or reading, once at the
// right level, and returns an error only when it is fatal for the stream.
func (l *shardLoop) readFailed(ctx context.Context, err error) error {
	switch l.src.fault(err) {
	case faultContended:
		// Contention, not an error storm: said once per run of failures.
		if !l.contendedLogged {
			l.log.Info().Err(err).Msg("shard is held by another subscription; retrying with backoff")
			l.contendedLogged = true
		} else {
			l.log.Debug().Err(err).Msg("shard still held by another subscription")
		}
	case faultThrottled:
		l.log.Debug().Err(err).Msg("read rate limited; backing off")
	case faultNotFound:
		// The shard, or what it is read through, or the whole stream is
		// gone. A shard that aged out of retention is no longer listed: it
		// counts as ended.
		if gone, lerr := l.c.shardGone(ctx, l.st.id); lerr != nil {
			if errors.Is(lerr, ErrStreamNotFound) {
				return lerr
			}
			l.log.Warn().Err(lerr).Str("hint", "cannot tell a gone shard from a gone reader (EFO: its consumer)").Msg("list shards failed")
		} else if gone {
			return errShardGone
		}
		if rerr := l.src.restore(ctx); rerr != nil {
			if errors.Is(rerr, ErrStreamNotFound) {
				return rerr
			}
			l.log.Warn().Err(rerr).Msg("could not restore the reader")
		}
	case faultPosition:
		return l.positionRejected(err)
	case faultDenied:
		// A restart meets the same answer: only the IAM policy can change it.
		return fmt.Errorf("read shard %s: %w (the IAM policy must allow reading the stream in its read mode: docs/operations.md, IAM)", l.st.id, err)
	default:
		l.log.Warn().Err(err).Msg("read failed; retrying with backoff")
	}
	return nil
}

// positionRejected applies on_expired_checkpoint to a rejected position.
func (l *shardLoop) positionRejected(err error) error {
	if l.pos.seq == "" {
		return fmt.Errorf("read %s from %s: %w", l.st.id, l.start, err)
	}
	if l.c.spec.OnExpiredCheckpoint == OnExpiredTrimHorizon {
		l.log.Error().Err(err).Str("checkpoint", l.pos.seq).Str("on_expired_checkpoint", string(OnExpiredTrimHorizon)).
			Str("hint", "the checkpoint is probably older than the stream's retention; the records between it and the trim horizon are lost").
			Msg("checkpoint rejected; restarting the shard from TRIM_HORIZON")
		l.pos, l.start = cursor{}, StartTrimHorizon
		return nil
	}
	return fmt.Errorf("%w: shard %s: checkpoint %s was rejected by Kinesis (%v): it is probably older than the stream's retention period. "+
		"To restart the shard from the oldest record still kept, set on_expired_checkpoint: trim_horizon for this stream, or remove the shard's checkpoint file and restart",
		ErrExpiredCheckpoint, l.st.id, l.pos.seq, err)
}

// gone turns errShardGone into the end of the shard (nil: the loop stops
// without failing the stream) and passes other errors through.
func (l *shardLoop) gone(err error) error {
	if !errors.Is(err, errShardGone) {
		return err
	}
	l.log.Warn().Str("position", l.pos.seq).
		Str("hint", "no longer listed by Kinesis: its records aged out of the stream's retention; its children start").
		Msg("shard gone; counting it as ended")
	l.touch(func(s *ShardStatus) { s.Ends[endGone.String()]++ })
	if err := l.persistEnded(); err != nil {
		if l.fenced {
			// Another instance wrote the shard's checkpoint: it is the
			// owner, and marks the shard ended itself.
			if l.lease == nil {
				return fmt.Errorf("shard %s: %w", l.st.id, ErrCheckpointTaken)
			}
			l.log.Info().Err(err).Msg("checkpoint taken by another instance; it marks the shard ended")
			return nil
		}
		l.log.Warn().Err(err).Msg("could not checkpoint the end of a gone shard")
	}
	l.c.shardEnded(l.st, nil)
	return nil
}

// touch records loop activity, and applies f to the status under the lock.
func (l *shardLoop) touch(f func(*ShardStatus)) {
	l.c.mu.Lock()
	defer l.c.mu.Unlock()
	l.st.status.LastActivity = time.Now()
	if f != nil {
		f(&l.st.status)
	}
}

func (l *shardLoop) countError(err error) {
	code := errorLabel(err)
	l.touch(func(s *ShardStatus) { s.Errors[code]++ })
}

// read consumes one reader until it ends and says why. The idle watchdog
// closes the reader, which unblocks next.
func (l *shardLoop) read(ctx, hctx context.Context, r reader) (endReason, error) {
	defer r.close()
	var idled atomic.Bool
	idle := time.AfterFunc(l.c.timers.IdleTimeout, func() { idled.Store(true); r.close() })
	defer idle.Stop()
	for {
		ev, recs, ok, err := r.next(l.events[:0])
		l.events = recs
		switch {
		case ctx.Err() != nil:
			return endShutdown, nil
		case idled.Load():
			return endIdle, nil
		case err != nil:
			return endError, err
		case !ok:
			return endClean, nil
		}
		if reason, err := l.handle(hctx, &ev); reason != endClean || err != nil {
			return reason, err
		}
		idle.Reset(l.c.timers.IdleTimeout)
	}
}

// handle delivers one event's records and moves the position past them.
// KPL aggregates are split as the records are handed over, in batches of
// at most record.MaxBatchRecords records and record.MaxBatchBytes bytes,
// so that what an event costs in memory depends on its size, not on how
// many user records its aggregates hold.
func (l *shardLoop) handle(hctx context.Context, ev *readEvent) (endReason, error) {
	if ev.heartbeat {
		if !ev.stuck {
			l.touch(nil)
		} else if !l.stuckLogged {
			// Every read since the last answer was refused: the shard turns
			// stalled; said once per run of refusals.
			l.log.Warn().Str("hint", "too many applications read the shard, or its throughput is spent").Msg("every read refused; backing off")
			l.stuckLogged = true
		}
		return endClean, nil
	}
	l.stuckLogged = false
	b := &l.batch
	b.MillisBehindLatest = ev.millisBehindLatest
	b.ContinuationSequenceNumber = aws.ToString(ev.continuation)
	b.Records = b.Records[:0]
	var records, size uint64
	batchBytes := 0
	flush := func() error {
		if len(b.Records) == 0 {
			return nil
		}
		// Paused past the lease (a stopped process, a suspended VM) or not
		// renewed lately: another instance may read the shard now. The
		// handler checks again before each message (b.Valid).
		if err := b.CheckValid(); err != nil {
			return err
		}
		if err := l.c.handler.Handle(hctx, b); err != nil {
			return err
		}
		clear(b.Records) // the next event reuses the slice: keep no data alive
		b.Records, batchBytes = b.Records[:0], 0
		return nil
	}
	for i := range l.events {
		r := &l.events[i]
		l.split.Reset(r.Data, r.PartitionKey, r.ExplicitHashKey, r.SequenceNumber, r.ArrivalTime)
		skip := l.skip
		l.skip = cursor{} // only the first record read can be the aggregate opened at
		for {
			u, ok := l.split.Next()
			if !ok {
				break
			}
			if skip.inAgg && u.Aggregated && u.SequenceNumber == skip.seq && u.SubSequenceNumber <= skip.sub {
				continue
			}
			n := u.Size()
			if len(b.Records) == record.MaxBatchRecords || (batchBytes+n > record.MaxBatchBytes && len(b.Records) > 0) {
				reached := batchEnd(b.Records[len(b.Records)-1], r.SequenceNumber)
				if err := flush(); err != nil {
					return endHandler, err
				}
				if reason := l.advance(reached); reason != endClean {
					return reason, nil
				}
			}
			b.Records = append(b.Records, u)
			batchBytes += n
			records++
			size += uint64(len(u.Data))
		}
	}
	if err := flush(); err != nil {
		return endHandler, err
	}
	hadRecords := len(l.events) > 0
	clear(l.events)
	l.events = reuse.Fit(&l.eventsUse, l.events, len(l.events))
	c := l.c
	l.counted(records, size)
	if ev.continuation == nil {
		// The shard ended: checkpoint that, then let its children start.
		if err := l.persistEnded(); err != nil {
			if l.fenced {
				return endLease, nil
			}
			return endHandler, err
		}
		l.log.Info().Int("children", len(ev.childShards)).Msg("shard read to its end")
		c.shardEnded(l.st, ev.childShards)
		return endShard, nil
	}
	if hadRecords || !l.pos.inAgg {
		// An event without records leaves a position inside an aggregate
		// as it is: a reader opened at the aggregate may not have read it
		// yet.
		l.pos = cursor{seq: b.ContinuationSequenceNumber}
	}
	l.unsavedRecords = l.unsavedRecords || records > 0
	l.persist(false)
	if l.fenced {
		return endLease, nil
	}
	return endClean, nil
}

// batchEnd is the position reached by a batch whose last user record is
// last, when the next user record to hand over belongs to the Kinesis
// record next: after last's record if it is another one (the batch ended
// with it), else inside it, an aggregate.
func batchEnd(last record.Record, next string) cursor {
	// A copy: the record's strings may share one allocation with the
	// whole event's keys, which the position would keep alive.
	seq := strings.Clone(last.SequenceNumber)
	if last.SequenceNumber != next {
		return cursor{seq: seq}
	}
	return cursor{seq: seq, sub: last.SubSequenceNumber, inAgg: true}
}

// advance moves the position to reached, a batch confirmed inside an
// event, and checkpoints it on the usual schedule: a retry after a failed
// batch, and the final checkpoint, go on after it.
func (l *shardLoop) advance(reached cursor) endReason {
	l.pos = reached
	l.unsavedRecords = true
	l.persist(false)
	if l.fenced {
		return endLease
	}
	return endClean
}

// counted accounts for an event handled, with its records and bytes.
func (l *shardLoop) counted(records, size uint64) {
	b := &l.batch
	l.touch(func(s *ShardStatus) {
		s.Events++
		s.Records += records
		s.Bytes += size
		s.LastEvent = time.Now()
		s.MillisBehindLatest = b.MillisBehindLatest
		if b.ContinuationSequenceNumber != "" {
			s.Checkpoint = b.ContinuationSequenceNumber
		}
	})
}

// persist writes the position when it moved and the checkpoint interval
// passed (or always, with force). A failed write is logged: the position in
// memory is still right, only the replay after a crash grows.
func (l *shardLoop) persist(force bool) {
	if l.fenced || l.pos.seq == "" {
		return
	}
	if l.pos == l.saved {
		if now := time.Now(); now.Sub(l.currentT) >= time.Second {
			l.currentT = now
			l.touch(func(s *ShardStatus) { s.CheckpointCurrentAt = now })
		}
		return
	}
	interval := l.c.timers.CheckpointInterval
	if !l.unsavedRecords {
		interval = max(interval, emptyCheckpointInterval)
	}
	if !force && time.Since(l.saveT) < interval {
		return
	}
	if l.lease != nil && !l.lease.Valid() {
		l.log.Debug().Msg("lease no longer valid: checkpoint not written")
		return
	}
	if err := l.c.putCheckpoint(l.st.id, checkpoint.Checkpoint{SequenceNumber: l.pos.seq, SubSequenceNumber: l.pos.sub, InAggregate: l.pos.inAgg}); err != nil {
		if errors.Is(err, checkpoint.ErrFenced) {
			l.fenced = true
			l.log.Warn().Err(err).Msg("checkpoint taken by another instance; stopping the shard")
			return
		}
		l.log.Error().Err(err).Msg("write checkpoint")
		return
	}
	l.saved, l.saveT, l.unsavedRecords = l.pos, time.Now(), false
	l.touch(func(s *ShardStatus) { s.CheckpointSavedAt = l.saveT })
}

// leaseEnded reports whether the shard must stop because of its lease (it
// ended, or a checkpoint write was fenced).
func (l *shardLoop) leaseEnded() bool {
	if l.fenced {
		return true
	}
	if l.lease == nil {
		return false
	}
	select {
	case <-l.lease.Done():
		return true
	default:
		return false
	}
}

func (l *shardLoop) persistEnded() error {
	if l.lease != nil && !l.lease.Valid() {
		return errors.New("write end-of-shard checkpoint: the lease is no longer valid")
	}
	if err := l.c.putCheckpoint(l.st.id, checkpoint.Checkpoint{ShardEnded: true}); err != nil {
		if errors.Is(err, checkpoint.ErrFenced) {
			l.fenced = true
		}
		return fmt.Errorf("write end-of-shard checkpoint: %w", err)
	}
	l.pos, l.saved = cursor{}, cursor{}
	return nil
}
