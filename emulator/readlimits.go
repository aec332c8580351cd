package emulator

import (
	"time"

	"golang.org/x/time/rate"
)

// GetRecords' limits, as the API reference states them: a shard serves at
// most 5 calls a second and 2 MiB a second, shared by every application that
// polls it; after a call that returned 10 MiB the calls of the next 5 seconds
// are refused, and while the shard's read throughput is used up calls are
// refused too. A refused call returns no data.
const (
	defaultGetRecordsPerSecond  = 5
	defaultGetRecordsThroughput = 2 << 20
	defaultGetRecordsCooldown   = 5 * time.Second
	shardIteratorsPerSecond     = 5
)

// readBudget is a shard's GetRecords budget.
type readBudget struct {
	// calls is a bucket of GetRecordsPerSecond calls refilled at that rate:
	// the 6th of 6 calls in a row is refused, while a reader that keeps
	// 200 ms between its calls is not, even when the network delays its
	// requests unevenly.
	calls *rate.Limiter
	// tokens are the bytes a call may still read. A call may overdraw them
	// (one call returns up to 10 MiB): the debt refuses the following calls
	// until the rate has paid it back.
	tokens float64
	filled time.Time
	// coolUntil ends the refusal after a call that returned 10 MiB.
	coolUntil time.Time
}

// refill brings the tokens up to date at bytesPerSec, up to one second's
// worth.
func (b *readBudget) refill(now time.Time, bytesPerSec int) {
	perSec := float64(bytesPerSec)
	if b.filled.IsZero() {
		b.tokens = perSec
	} else {
		b.tokens = min(perSec, b.tokens+now.Sub(b.filled).Seconds()*perSec)
	}
	b.filled = now
}

// checkShardRead admits a GetRecords call on sh or answers
// ProvisionedThroughputExceededException, with the message AWS sends for
// GetRecords. Called with s.mu held.
func (s *Server) checkShardRead(st *stream, sh *shard) *apiError {
	b := &sh.limits.reads
	// Real time, not the emulator's clock: AdvanceClock must not refill.
	now := time.Now()
	ok := !now.Before(b.coolUntil)
	if bps := s.opts.GetRecordsThroughput; ok && bps > 0 {
		b.refill(now, bps)
		ok = b.tokens > 0
	}
	if n := s.opts.GetRecordsPerSecond; ok && n > 0 {
		if b.calls == nil {
			b.calls = rate.NewLimiter(rate.Limit(n), n)
		}
		ok = b.calls.AllowN(now, 1)
	}
	if !ok {
		s.readsRefused[st.name]++
		return s.shardRateExceeded(st, sh)
	}
	return nil
}

func (s *Server) shardRateExceeded(st *stream, sh *shard) *apiError {
	return errorf(ErrProvisionedThroughput, "Rate exceeded for Shard - %s/%s/%s", s.opts.AccountID, st.name, sh.id)
}

// checkShardIterators answers ProvisionedThroughputExceededException for
// more than 5 GetShardIterator calls a second on a shard, as AWS documents
// (EnforceLimits only). Called with s.mu held.
func (s *Server) checkShardIterators(st *stream, sh *shard) *apiError {
	if !s.opts.EnforceLimits || sh.limits.iterators.Allow() {
		return nil
	}
	return s.shardRateExceeded(st, sh)
}

// chargeShardRead counts n bytes returned by a GetRecords call on sh.
// Called with s.mu held.
func (s *Server) chargeShardRead(sh *shard, n int) {
	b := &sh.limits.reads
	now := time.Now()
	if bps := s.opts.GetRecordsThroughput; bps > 0 {
		b.refill(now, bps)
		b.tokens -= float64(n)
	}
	if n >= maxGetRecordsBytes && s.opts.GetRecordsCooldown > 0 {
		b.coolUntil = now.Add(s.opts.GetRecordsCooldown)
	}
}

// ReadsRefused counts the GetRecords calls on a stream that its shards'
// read limits refused (injected faults not included).
func (s *Server) ReadsRefused(stream string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.readsRefused[stream]
}

// PolledShards counts the shards of a stream that served a GetRecords call:
// the polling counterpart of ActiveSubscriptions.
func (s *Server) PolledShards(streamName string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.streams[streamName]
	if st == nil {
		return 0
	}
	n := 0
	for _, sh := range st.shards {
		if sh.polled {
			n++
		}
	}
	return n
}
