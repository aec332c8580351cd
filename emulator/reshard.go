package emulator

import (
	"math/big"
	"sort"
)

func (s *Server) splitShard(body []byte) (any, *apiError) {
	var req struct {
		streamRef
		ShardToSplit       string `json:"ShardToSplit"`
		NewStartingHashKey string `json:"NewStartingHashKey"`
	}
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, sh, err := s.shardOf(s.reshardableStream, req.streamRef, req.ShardToSplit)
	if err != nil {
		return nil, err
	}
	h, ok := parseHashKey(req.NewStartingHashKey)
	if !ok {
		return nil, invalidArg("NewStartingHashKey %q is not a decimal integer between 0 and 2^128-1.", req.NewStartingHashKey)
	}
	if _, err := s.splitLocked(st, sh, h); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

func (s *Server) reshardableStream(ref streamRef) (*stream, *apiError) {
	return s.activeStream(ref)
}

// closeShard ends a shard: no more records go to it, and readers that reach
// its end get its children. Called with s.mu held.
func (s *Server) closeShard(sh *shard, children []string) {
	s.counter++
	sh.endSeq = makeSeq(s.counter, sh.index)
	sh.closed = s.now()
	sh.children = children
	sh.wake()
}

// splitLocked splits sh at h into two children. Called with s.mu held.
func (s *Server) splitLocked(st *stream, sh *shard, h *big.Int) ([2]string, *apiError) {
	if !sh.isOpen() {
		return [2]string{}, invalidArg("Shard %s in stream %s under account %s is closed and can't be split.", sh.id, st.name, s.opts.AccountID)
	}
	if h.Cmp(sh.hashStart) <= 0 || h.Cmp(sh.hashEnd) > 0 {
		return [2]string{}, invalidArg("NewStartingHashKey %s must be greater than %s and at most %s for shard %s.", h, sh.hashStart, sh.hashEnd, sh.id)
	}
	now := s.now()
	a := s.addShard(st, sh.hashStart, new(big.Int).Sub(h, big.NewInt(1)), sh.id, "", now)
	b := s.addShard(st, new(big.Int).Set(h), sh.hashEnd, sh.id, "", now)
	s.closeShard(sh, []string{a.id, b.id})
	s.markUpdating(st)
	return [2]string{a.id, b.id}, nil
}

func (s *Server) mergeShards(body []byte) (any, *apiError) {
	var req struct {
		streamRef
		ShardToMerge         string `json:"ShardToMerge"`
		AdjacentShardToMerge string `json:"AdjacentShardToMerge"`
	}
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, a, err := s.shardOf(s.reshardableStream, req.streamRef, req.ShardToMerge)
	if err != nil {
		return nil, err
	}
	b, err := s.lookupShard(st, req.AdjacentShardToMerge)
	if err != nil {
		return nil, err
	}
	if _, err := s.mergeLocked(st, a, b); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

// mergeLocked merges two adjacent open shards. Called with s.mu held.
func (s *Server) mergeLocked(st *stream, a, b *shard) (string, *apiError) {
	if !a.isOpen() || !b.isOpen() {
		return "", invalidArg("Shards %s and %s must both be open to be merged.", a.id, b.id)
	}
	one := big.NewInt(1)
	var lo, hi *shard
	switch {
	case new(big.Int).Add(a.hashEnd, one).Cmp(b.hashStart) == 0:
		lo, hi = a, b
	case new(big.Int).Add(b.hashEnd, one).Cmp(a.hashStart) == 0:
		lo, hi = b, a
	default:
		return "", invalidArg("Shards %s and %s in stream %s under account %s are not adjacent.", a.id, b.id, st.name, s.opts.AccountID)
	}
	child := s.addShard(st, lo.hashStart, hi.hashEnd, a.id, b.id, s.now())
	s.closeShard(a, []string{child.id})
	s.closeShard(b, []string{child.id})
	s.markUpdating(st)
	return child.id, nil
}

func (s *Server) updateShardCount(body []byte) (any, *apiError) {
	var req struct {
		streamRef
		TargetShardCount int    `json:"TargetShardCount"`
		ScalingType      string `json:"ScalingType"`
	}
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	if req.ScalingType != "UNIFORM_SCALING" {
		return nil, errorf(ErrValidation, "1 validation error detected: Value '%s' at 'scalingType' failed to satisfy constraint: Member must satisfy enum value set: [UNIFORM_SCALING]", req.ScalingType)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.reshardableStream(req.streamRef)
	if err != nil {
		return nil, err
	}
	current := len(st.openShards())
	if err := s.updateShardCountLocked(st, req.TargetShardCount); err != nil {
		return nil, err
	}
	return map[string]any{
		"StreamName":        st.name,
		"StreamARN":         st.arn,
		"CurrentShardCount": current,
		"TargetShardCount":  req.TargetShardCount,
	}, nil
}

// updateShardCountLocked reshards to target uniform shards the way AWS does:
// by splits and merges, so every new shard has parents and readers can follow
// the lineage. First every open shard is split at each target boundary inside
// it, then the pieces within one target range are merged.
func (s *Server) updateShardCountLocked(st *stream, target int) *apiError {
	if st.mode == ModeOnDemand {
		return invalidArg("UpdateShardCount is not supported for ON_DEMAND stream %s.", st.name)
	}
	current := len(st.openShards())
	if target < 1 || target > 10000 {
		return invalidArg("TargetShardCount %d must be between 1 and 10000.", target)
	}
	if target > 2*current {
		return errorf(ErrLimitExceeded, "TargetShardCount %d is more than double the current %d open shards.", target, current)
	}
	if 2*target < current {
		return errorf(ErrLimitExceeded, "TargetShardCount %d is less than half the current %d open shards.", target, current)
	}
	ranges := uniformRanges(target)
	for _, r := range ranges[1:] {
		b := r[0]
		if sh := st.shardForHash(b); sh != nil && sh.hashStart.Cmp(b) != 0 {
			if _, err := s.splitLocked(st, sh, b); err != nil {
				return err
			}
		}
	}
	for _, r := range ranges {
		for {
			var in []*shard
			for _, sh := range st.openShards() {
				if sh.hashStart.Cmp(r[0]) >= 0 && sh.hashEnd.Cmp(r[1]) <= 0 {
					in = append(in, sh)
				}
			}
			if len(in) < 2 {
				break
			}
			sort.Slice(in, func(i, j int) bool { return in[i].hashStart.Cmp(in[j].hashStart) < 0 })
			if _, err := s.mergeLocked(st, in[0], in[1]); err != nil {
				return err
			}
		}
	}
	return nil
}
