package emulator

// Account quotas as DescribeLimits reports them. AWS's default shard quota
// is 500 in us-east-1, us-west-2 and eu-west-1 and 200 elsewhere; on-demand
// streams are limited to 50 an account. With Options.EnforceLimits,
// CreateStream refuses to go over the shard quota as AWS does.

const onDemandStreamLimit = 50

func (s *Server) shardLimit() int {
	switch s.opts.Region {
	case "us-east-1", "us-west-2", "eu-west-1":
		return 500
	}
	return 200
}

// accountUsage counts open shards and on-demand streams. Called with s.mu held.
func (s *Server) accountUsage() (openShards, onDemand int) {
	for name := range s.streams {
		st, err := s.lookupStream(streamRef{StreamName: name}, true)
		if err != nil {
			continue
		}
		openShards += len(st.openShards())
		if st.mode == ModeOnDemand {
			onDemand++
		}
	}
	return openShards, onDemand
}

func (s *Server) describeLimits(body []byte) (any, *apiError) {
	var req struct{}
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	open, onDemand := s.accountUsage()
	return map[string]any{
		"ShardLimit":               s.shardLimit(),
		"OpenShardCount":           open,
		"OnDemandStreamCount":      onDemand,
		"OnDemandStreamCountLimit": onDemandStreamLimit,
	}, nil
}

// checkShardQuota answers LimitExceededException, as AWS does, when adding
// n shards would go over the account's shard quota (EnforceLimits only).
// Called with s.mu held.
func (s *Server) checkShardQuota(n int) *apiError {
	if !s.opts.EnforceLimits {
		return nil
	}
	open, _ := s.accountUsage()
	if open+n > s.shardLimit() {
		return errorf(ErrLimitExceeded, "This request would exceed the shard limit for the account %s in %s. Current shard count for the account: %d. Limit: %d. Number of additional shards that would have resulted from this request: %d. Refer to the AWS Service Limits page (https://docs.aws.amazon.com/general/latest/gr/aws_service_limits.html) for current limits and how to request higher limits.",
			s.opts.AccountID, s.opts.Region, open, s.shardLimit(), n)
	}
	return nil
}

// SeedStream creates a stream that is ACTIVE at once, skipping
// StreamCreationDelay: for streams that exist before the endpoint is
// announced (`fanoutd emulator --streams`).
func (s *Server) SeedStream(name string, shards int, onDemand bool) error {
	mode := ModeProvisioned
	if onDemand {
		mode, shards = ModeOnDemand, onDemandInitialShards
	}
	if shards < 1 {
		return apiErr(invalidArg("ShardCount %d must be at least 1.", shards))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.createStreamLocked(name, shards, mode, 1<<20)
	if err != nil {
		return err
	}
	st.activeAt = st.created
	return nil
}

// StreamStatus returns a stream's status: CREATING, ACTIVE, UPDATING or
// DELETING.
func (s *Server) StreamStatus(name string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.lookupStream(streamRef{StreamName: name}, false)
	if err != nil {
		return "", err
	}
	return st.status(s.now()), nil
}
