package emulator

import (
	"errors"
	"math/big"
	"time"
)

// The Go API below lets tests and the demo drive the emulator directly,
// without an SDK client. Errors are the same the HTTP API answers with.

// ShardInfo describes a shard.
type ShardInfo struct {
	ID             string
	ParentID       string
	AdjacentID     string
	HashKeyStart   *big.Int
	HashKeyEnd     *big.Int
	Open           bool
	Records        int
	StartingSeq    string
	EndingSeq      string // "" while open
	ChildShardsIDs []string
}

// Record is a stored record.
type Record struct {
	ShardID        string
	SequenceNumber string
	PartitionKey   string
	Data           []byte
	Arrival        time.Time
}

func apiErr(e *apiError) error {
	if e == nil {
		return nil
	}
	return e
}

// CreateStream creates a provisioned stream with n shards.
func (s *Server) CreateStream(name string, n int) error {
	if n < 1 {
		return apiErr(invalidArg("ShardCount %d must be at least 1.", n))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, err := s.createStreamLocked(name, n, ModeProvisioned, 1<<20)
	return apiErr(err)
}

// CreateOnDemandStream creates an on-demand stream (4 shards, as AWS starts).
func (s *Server) CreateOnDemandStream(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, err := s.createStreamLocked(name, onDemandInitialShards, ModeOnDemand, 1<<20)
	return apiErr(err)
}

// DeleteStream deletes a stream and its consumers; their subscriptions end
// with ResourceNotFoundException.
func (s *Server) DeleteStream(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.lookupStream(streamRef{StreamName: name}, true)
	if err != nil {
		return err
	}
	s.deleteStreamLocked(st)
	return nil
}

// StreamARN returns the ARN of a stream name.
func (s *Server) StreamARN(name string) string { return s.streamARN(name) }

// PutRecord stores a record, routed by the MD5 of its partition key, and
// returns its shard and sequence number.
func (s *Server) PutRecord(streamName, partitionKey string, data []byte) (shardID, seq string, err error) {
	return s.PutRecordHashKey(streamName, partitionKey, "", data)
}

// PutRecordHashKey stores a record routed by an explicit hash key (decimal),
// or by its partition key when explicitHashKey is "".
func (s *Server) PutRecordHashKey(streamName, partitionKey, explicitHashKey string, data []byte) (shardID, seq string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, aerr := s.writableStream(streamRef{StreamName: streamName})
	if aerr != nil {
		return "", "", aerr
	}
	hash, aerr := validateRecord(st, data, partitionKey, explicitHashKey)
	if aerr != nil {
		return "", "", aerr
	}
	sh, rec, aerr := s.appendRecord(st, hash, append([]byte(nil), data...), partitionKey, explicitHashKey)
	if aerr != nil {
		return "", "", aerr
	}
	return sh.id, rec.seqStr, nil
}

// RegisterConsumer registers an enhanced fan-out consumer and returns its ARN.
// It is CREATING for the activation delay, then ACTIVE.
func (s *Server) RegisterConsumer(streamName, consumerName string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.lookupStream(streamRef{StreamName: streamName}, true)
	if err != nil {
		return "", err
	}
	c, err := s.registerConsumerLocked(st, consumerName)
	if err != nil {
		return "", err
	}
	return c.arn, nil
}

// SetMaxConsumers sets how many consumers a stream takes (0: none);
// RegisterStreamConsumer past it answers LimitExceededException. Consumers
// already registered stay.
func (s *Server) SetMaxConsumers(streamName string, n int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.lookupStream(streamRef{StreamName: streamName}, true)
	if err != nil {
		return err
	}
	st.maxConsumers = max(0, n)
	return nil
}

// DeregisterConsumer removes a consumer; its subscriptions end.
func (s *Server) DeregisterConsumer(consumerARN string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, c, err := s.lookupConsumer(consumerRef{ConsumerARN: consumerARN})
	if err != nil {
		return err
	}
	if c.deletedAt.IsZero() {
		c.deletedAt = s.now()
		s.endConsumerSubs(c.arn, control{kind: ctlEnd})
	}
	return nil
}

// SplitShard splits a shard at the midpoint of its hash range and returns the
// two children.
func (s *Server) SplitShard(streamName, shardID string) ([2]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, sh, err := s.shardOf(s.reshardableStream, streamRef{StreamName: streamName}, shardID)
	if err != nil {
		return [2]string{}, err
	}
	mid := new(big.Int).Add(sh.hashStart, sh.hashEnd)
	mid.Rsh(mid, 1)
	mid.Add(mid, big.NewInt(1))
	ids, err := s.splitLocked(st, sh, mid)
	return ids, apiErr(err)
}

// MergeShards merges two adjacent shards and returns the child.
func (s *Server) MergeShards(streamName, shardID, adjacentShardID string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, a, err := s.shardOf(s.reshardableStream, streamRef{StreamName: streamName}, shardID)
	if err != nil {
		return "", err
	}
	b, err := s.lookupShard(st, adjacentShardID)
	if err != nil {
		return "", err
	}
	id, err := s.mergeLocked(st, a, b)
	return id, apiErr(err)
}

// UpdateShardCount reshards a provisioned stream to n uniform shards. It also
// stands in for the automatic resharding of an on-demand stream.
func (s *Server) UpdateShardCount(streamName string, n int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.reshardableStream(streamRef{StreamName: streamName})
	if err != nil {
		return err
	}
	mode := st.mode
	st.mode = ModeProvisioned
	defer func() { st.mode = mode }()
	return apiErr(s.updateShardCountLocked(st, n))
}

// Shards lists every shard of a stream, closed ones included.
func (s *Server) Shards(streamName string) ([]ShardInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.lookupStream(streamRef{StreamName: streamName}, false)
	if err != nil {
		return nil, err
	}
	out := make([]ShardInfo, 0, len(st.shards))
	for _, sh := range st.shards {
		info := ShardInfo{
			ID: sh.id, ParentID: sh.parent, AdjacentID: sh.adjacentParent,
			HashKeyStart: new(big.Int).Set(sh.hashStart), HashKeyEnd: new(big.Int).Set(sh.hashEnd),
			Open: sh.isOpen(), Records: len(sh.records), StartingSeq: formatSeq(sh.startSeq),
			ChildShardsIDs: append([]string(nil), sh.children...),
		}
		if sh.endSeq != nil {
			info.EndingSeq = formatSeq(sh.endSeq)
		}
		out = append(out, info)
	}
	return out, nil
}

// Records returns the retained records of a shard, oldest first.
func (s *Server) Records(streamName, shardID string) ([]Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.lookupStream(streamRef{StreamName: streamName}, false)
	if err != nil {
		return nil, err
	}
	sh, err := s.lookupShard(st, shardID)
	if err != nil {
		return nil, err
	}
	s.trimShard(st, sh)
	out := make([]Record, len(sh.records))
	for i, r := range sh.records {
		out[i] = Record{ShardID: sh.id, SequenceNumber: r.seqStr, PartitionKey: r.partitionKey, Data: r.data, Arrival: r.arrival}
	}
	return out, nil
}

// ShardForKey returns the open shard a partition key is routed to.
func (s *Server) ShardForKey(streamName, partitionKey string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.lookupStream(streamRef{StreamName: streamName}, true)
	if err != nil {
		return "", err
	}
	sh := st.shardForHash(hashKeyOf(partitionKey))
	if sh == nil {
		return "", errors.New("no open shard")
	}
	return sh.id, nil
}

// trimShard drops the records that have aged out of the stream's retention
// period. Called with s.mu held.
func (s *Server) trimShard(st *stream, sh *shard) {
	horizon := s.now().Add(-time.Duration(st.retentionHours) * time.Hour)
	n := 0
	for n < len(sh.records) && sh.records[n].arrival.Before(horizon) {
		n++
	}
	if n == 0 {
		return
	}
	sh.lastTrimmed = sh.records[n-1].seq
	sh.records = append([]record(nil), sh.records[n:]...)
	sh.trimmed += n
}
