package emulator

import (
	"time"

	"golang.org/x/time/rate"
)

// AWS's documented per-operation limits, enforced when
// Options.EnforceLimits is set. Control-plane calls are limited per account
// or per stream as the Kinesis API reference says; writes per shard to 1,000
// records and 1 MiB a second; GetShardIterator to 5 calls a second per shard
// (readlimits.go). The rules of the two ways of reading always apply:
// SubscribeToShard's (1 call a second per shard and consumer, the 5-second
// takeover) and GetRecords' (readlimits.go).
var apiLimits = map[string]struct {
	perSecond float64
	perStream bool
}{
	"CreateStream":             {5, false},
	"DeleteStream":             {5, false},
	"DescribeStream":           {10, false},
	"DescribeStreamSummary":    {20, false},
	"ListStreams":              {5, false},
	"ListShards":               {1000, true},
	"RegisterStreamConsumer":   {5, false},
	"DeregisterStreamConsumer": {5, false},
	"DescribeStreamConsumer":   {20, true},
	"ListStreamConsumers":      {5, true},
	"SplitShard":               {5, false},
	"MergeShards":              {5, false},
	"UpdateShardCount":         {5, false},
}

const (
	shardWriteRecords = 1000
	shardWriteBytes   = 1 << 20
)

// limiter returns the token bucket of op (for stream, when the limit is per
// stream). Called with s.mu held.
func (s *Server) limiter(op, stream string) *rate.Limiter {
	l, ok := apiLimits[op]
	if !ok {
		return nil
	}
	key := op
	if l.perStream {
		key += "/" + stream
	}
	lim := s.limiters[key]
	if lim == nil {
		lim = rate.NewLimiter(rate.Limit(l.perSecond), max(1, int(l.perSecond)))
		s.limiters[key] = lim
	}
	return lim
}

// checkAPILimit answers LimitExceededException when op is over its rate.
// Called with s.mu held.
func (s *Server) checkAPILimit(op, stream string) *apiError {
	if !s.opts.EnforceLimits {
		return nil
	}
	if lim := s.limiter(op, stream); lim != nil && !lim.Allow() {
		s.limitHits[op]++
		return errorf(ErrLimitExceeded, "Rate exceeded for %s (limit %v per second).", op, apiLimits[op].perSecond)
	}
	return nil
}

// shardLimits are a shard's write buckets and its read budgets.
type shardLimits struct {
	records, bytes *rate.Limiter
	reads          readBudget
	iterators      *rate.Limiter
}

func newShardLimits() *shardLimits {
	return &shardLimits{
		records:   rate.NewLimiter(shardWriteRecords, shardWriteRecords),
		bytes:     rate.NewLimiter(shardWriteBytes, shardWriteBytes),
		iterators: rate.NewLimiter(shardIteratorsPerSecond, shardIteratorsPerSecond),
	}
}

// checkShardWrite answers ProvisionedThroughputExceededException when a
// record of n bytes would exceed the shard's write limits. Called with s.mu
// held.
func (s *Server) checkShardWrite(sh *shard, n int) *apiError {
	if !s.opts.EnforceLimits {
		return nil
	}
	now := time.Now()
	// A record over 1 MiB (up to 10 MiB where the stream allows it) rides on
	// the shard's burst capacity, which AWS does not quantify: it needs the
	// whole second's bucket and empties it.
	n = min(n, shardWriteBytes)
	if !sh.limits.records.AllowN(now, 1) || !sh.limits.bytes.AllowN(now, n) {
		return errorf(ErrProvisionedThroughput, "Rate exceeded for shard %s in stream under account %s.", sh.id, s.opts.AccountID)
	}
	return nil
}

// LimitHits counts the calls of op refused by EnforceLimits' control-plane
// limits.
func (s *Server) LimitHits(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.limitHits[op]
}
