package emulator

import "time"

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

// callWindow holds the times of the calls admitted in the last second,
// oldest first.
type callWindow []time.Time

// admit admits a call at now if fewer than n were admitted in the second
// before.
func (w *callWindow) admit(now time.Time, n int) bool {
	k := 0
	for k < len(*w) && now.Sub((*w)[k]) >= time.Second {
		k++
	}
	*w = append((*w)[:0], (*w)[k:]...)
	if len(*w) >= n {
		return false
	}
	*w = append(*w, now)
	return true
}

// readBudget is a shard's GetRecords budget.
type readBudget struct {
	calls callWindow
	// tokens are the bytes a call may still read. A call may overdraw them
	// (one call returns up to 10 MiB): the debt refuses the following calls
	// until the rate has paid it back.
	tokens float64
	filled time.Time
	// coolUntil ends the refusal after a call that returned 10 MiB.
	coolUntil time.Time
}

// refill brings the tokens up to date at rate bytes a second, up to one
// second's worth.
func (b *readBudget) refill(now time.Time, rate int) {
	if b.filled.IsZero() {
		b.tokens = float64(rate)
	} else {
		b.tokens = min(float64(rate), b.tokens+now.Sub(b.filled).Seconds()*float64(rate))
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
	if rate := s.opts.GetRecordsThroughput; ok && rate > 0 {
		b.refill(now, rate)
		ok = b.tokens > 0
	}
	if n := s.opts.GetRecordsPerSecond; ok && n > 0 {
		ok = b.calls.admit(now, n)
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
	if !s.opts.EnforceLimits || sh.limits.iterators.admit(time.Now(), shardIteratorsPerSecond) {
		return nil
	}
	return s.shardRateExceeded(st, sh)
}

// chargeShardRead counts n bytes returned by a GetRecords call on sh.
// Called with s.mu held.
func (s *Server) chargeShardRead(sh *shard, n int) {
	b := &sh.limits.reads
	now := time.Now()
	if rate := s.opts.GetRecordsThroughput; rate > 0 {
		b.refill(now, rate)
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
