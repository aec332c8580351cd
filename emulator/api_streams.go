package emulator

import (
	"encoding/base64"
	"encoding/json"
	"math/big"
	"regexp"
	"sort"
	"strings"
	"time"
)

var nameRE = regexp.MustCompile(`^[a-zA-Z0-9_.-]{1,128}$`)

type streamRef struct {
	StreamName string `json:"StreamName"`
	StreamARN  string `json:"StreamARN"`
}

type streamModeDetails struct {
	StreamMode string `json:"StreamMode"`
}

type hashKeyRangeJSON struct {
	StartingHashKey string `json:"StartingHashKey"`
	EndingHashKey   string `json:"EndingHashKey"`
}

type seqRangeJSON struct {
	StartingSequenceNumber string  `json:"StartingSequenceNumber"`
	EndingSequenceNumber   *string `json:"EndingSequenceNumber,omitempty"`
}

type shardJSON struct {
	ShardId               string           `json:"ShardId"`
	ParentShardId         *string          `json:"ParentShardId,omitempty"`
	AdjacentParentShardId *string          `json:"AdjacentParentShardId,omitempty"`
	HashKeyRange          hashKeyRangeJSON `json:"HashKeyRange"`
	SequenceNumberRange   seqRangeJSON     `json:"SequenceNumberRange"`
}

type enhancedMetrics struct {
	ShardLevelMetrics []string `json:"ShardLevelMetrics"`
}

func (s *Server) streamARN(name string) string {
	return "arn:aws:kinesis:" + s.opts.Region + ":" + s.opts.AccountID + ":stream/" + name
}

// streamNameFromARN returns the stream name an ARN names, if it is an ARN of
// this emulator's region and account.
func (s *Server) streamNameFromARN(arn string) (string, *apiError) {
	prefix := "arn:aws:kinesis:" + s.opts.Region + ":" + s.opts.AccountID + ":stream/"
	name, ok := strings.CutPrefix(arn, prefix)
	if !ok || !nameRE.MatchString(name) {
		if !strings.HasPrefix(arn, "arn:aws") || !strings.Contains(arn, ":stream/") {
			return "", errorf(ErrValidation, "1 validation error detected: Value '%s' at 'streamARN' failed to satisfy constraint: Member must satisfy regular expression pattern: arn:aws.*:kinesis:.*:\\d{12}:stream/\\S+", arn)
		}
		return "", notFound("Stream %s under account %s not found.", arn, s.opts.AccountID)
	}
	return name, nil
}

// lookupStream resolves a stream by name or ARN. With data=true a stream
// being deleted is not found, as data calls on AWS see it.
// Called with s.mu held.
func (s *Server) lookupStream(ref streamRef, data bool) (*stream, *apiError) {
	name := ref.StreamName
	if ref.StreamARN != "" {
		n, err := s.streamNameFromARN(ref.StreamARN)
		if err != nil {
			return nil, err
		}
		if name != "" && name != n {
			return nil, invalidArg("StreamName %s and StreamARN %s name different streams", name, ref.StreamARN)
		}
		name = n
	}
	if name == "" {
		return nil, invalidArg("Either StreamName or StreamARN should be provided.")
	}
	st := s.streams[name]
	now := s.now()
	if st != nil && !st.deletedAt.IsZero() && now.Sub(st.deletedAt) >= s.opts.StreamDeletionDelay {
		delete(s.streams, name)
		st = nil
	}
	if st == nil || (data && !st.deletedAt.IsZero()) {
		return nil, notFound("Stream %s under account %s not found.", name, s.opts.AccountID)
	}
	return st, nil
}

// createStreamLocked adds a stream with n uniform shards. Called with s.mu held.
func (s *Server) createStreamLocked(name string, n int, mode string, maxRecordSize int) (*stream, *apiError) {
	if !nameRE.MatchString(name) {
		return nil, errorf(ErrValidation, "1 validation error detected: Value '%s' at 'streamName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+", name)
	}
	if _, err := s.lookupStream(streamRef{StreamName: name}, false); err == nil {
		return nil, inUse("Stream %s under account %s already exists.", name, s.opts.AccountID)
	}
	now := s.now()
	if prev, ok := s.lastCreated[name]; ok && now.UnixMilli() <= prev.UnixMilli() {
		now = time.UnixMilli(prev.UnixMilli() + 1)
	}
	if s.lastCreated == nil {
		s.lastCreated = map[string]time.Time{}
	}
	s.lastCreated[name] = now
	st := &stream{
		name:           name,
		arn:            s.streamARN(name),
		mode:           mode,
		created:        now,
		activeAt:       now.Add(s.opts.StreamCreationDelay),
		retentionHours: defaultRetentionHours,
		maxRecordSize:  maxRecordSize,
		byID:           map[string]*shard{},
		consumers:      map[string]*consumer{},
		maxConsumers:   s.opts.MaxConsumersPerStream,
	}
	for _, r := range uniformRanges(n) {
		s.addShard(st, r[0], r[1], "", "", now)
	}
	s.streams[name] = st
	return st, nil
}

// addShard creates an open shard. Called with s.mu held.
func (s *Server) addShard(st *stream, start, end *big.Int, parent, adjacent string, now time.Time) *shard {
	s.counter++
	sh := &shard{
		id:             ShardID(st.nextShard),
		index:          st.nextShard,
		hashStart:      start,
		hashEnd:        end,
		parent:         parent,
		adjacentParent: adjacent,
		startSeq:       makeSeq(s.counter, st.nextShard),
		created:        now,
		notify:         make(chan struct{}),
		limits:         newShardLimits(),
	}
	st.nextShard++
	st.shards = append(st.shards, sh)
	st.byID[sh.id] = sh
	return sh
}

func (s *Server) createStream(body []byte) (any, *apiError) {
	var req struct {
		StreamName         string             `json:"StreamName"`
		ShardCount         *int               `json:"ShardCount"`
		StreamModeDetails  *streamModeDetails `json:"StreamModeDetails"`
		MaxRecordSizeInKiB *int               `json:"MaxRecordSizeInKiB"`
		Tags               map[string]string  `json:"Tags"`
	}
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	mode := ModeProvisioned
	if req.StreamModeDetails != nil && req.StreamModeDetails.StreamMode != "" {
		mode = req.StreamModeDetails.StreamMode
	}
	if mode != ModeProvisioned && mode != ModeOnDemand {
		return nil, errorf(ErrValidation, "1 validation error detected: Value '%s' at 'streamModeDetails.streamMode' failed to satisfy constraint: Member must satisfy enum value set: [PROVISIONED, ON_DEMAND]", mode)
	}
	n := onDemandInitialShards
	if mode == ModeProvisioned {
		if req.ShardCount == nil {
			return nil, invalidArg("ShardCount is required for a PROVISIONED stream.")
		}
		n = *req.ShardCount
	} else if req.ShardCount != nil {
		n = *req.ShardCount
	}
	if n < 1 || n > 10000 {
		return nil, invalidArg("ShardCount %d must be between 1 and 10000.", n)
	}
	maxSize := 1 << 20
	if req.MaxRecordSizeInKiB != nil {
		if err := validateRecordSizeKiB(req.MaxRecordSizeInKiB); err != nil {
			return nil, err
		}
		maxSize = *req.MaxRecordSizeInKiB << 10
	}
	tags, terr := createTags(req.Tags, "stream "+req.StreamName+" under account "+s.opts.AccountID)
	if terr != nil {
		return nil, terr
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkShardQuota(n); err != nil {
		return nil, err
	}
	st, err := s.createStreamLocked(req.StreamName, n, mode, maxSize)
	if err != nil {
		return nil, err
	}
	st.settings.tags = tags
	return struct{}{}, nil
}

func (s *Server) deleteStream(body []byte) (any, *apiError) {
	var req struct {
		streamRef
		EnforceConsumerDeletion bool `json:"EnforceConsumerDeletion"`
	}
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.lookupStream(req.streamRef, true)
	if err != nil {
		return nil, err
	}
	if len(st.consumers) > 0 && !req.EnforceConsumerDeletion {
		return nil, inUse("Stream %s under account %s has registered consumers; set EnforceConsumerDeletion to delete it.", st.name, s.opts.AccountID)
	}
	s.deleteStreamLocked(st)
	return struct{}{}, nil
}

// deleteStreamLocked marks st DELETING and ends its subscriptions.
func (s *Server) deleteStreamLocked(st *stream) {
	st.deletedAt = s.now()
	for _, c := range st.consumers {
		s.endConsumerSubs(c.arn, control{kind: ctlException, excType: ErrResourceNotFound,
			msg: "Stream " + st.arn + " was deleted."})
	}
	st.consumers = map[string]*consumer{}
	for _, sh := range st.shards {
		sh.wake()
	}
}

func (s *Server) shardJSON(sh *shard) shardJSON {
	out := shardJSON{
		ShardId: sh.id,
		HashKeyRange: hashKeyRangeJSON{
			StartingHashKey: sh.hashStart.String(),
			EndingHashKey:   sh.hashEnd.String(),
		},
		SequenceNumberRange: seqRangeJSON{StartingSequenceNumber: formatSeq(sh.startSeq)},
	}
	if sh.parent != "" {
		p := sh.parent
		out.ParentShardId = &p
	}
	if sh.adjacentParent != "" {
		p := sh.adjacentParent
		out.AdjacentParentShardId = &p
	}
	if sh.endSeq != nil {
		e := formatSeq(sh.endSeq)
		out.SequenceNumberRange.EndingSequenceNumber = &e
	}
	return out
}

// liveShards are the shards whose data has not all aged out of retention.
func (s *Server) liveShards(st *stream) []*shard {
	horizon := s.now().Add(-time.Duration(st.retentionHours) * time.Hour)
	var out []*shard
	for _, sh := range st.shards {
		if sh.isOpen() || sh.closed.After(horizon) {
			out = append(out, sh)
		}
	}
	return out
}

func (s *Server) describeStream(body []byte) (any, *apiError) {
	var req struct {
		streamRef
		Limit                 *int   `json:"Limit"`
		ExclusiveStartShardId string `json:"ExclusiveStartShardId"`
	}
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	limit, err := pageSize("Limit", req.Limit, 100, 10000)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.lookupStream(req.streamRef, false)
	if err != nil {
		return nil, err
	}
	shards := []shardJSON{}
	more := false
	for _, sh := range s.liveShards(st) {
		if req.ExclusiveStartShardId != "" && sh.id <= req.ExclusiveStartShardId {
			continue
		}
		if len(shards) == limit {
			more = true
			break
		}
		shards = append(shards, s.shardJSON(sh))
	}
	return map[string]any{"StreamDescription": st.withKeyID(map[string]any{
		"StreamName":              st.name,
		"StreamARN":               st.arn,
		"StreamStatus":            st.status(s.now()),
		"StreamModeDetails":       streamModeDetails{StreamMode: st.mode},
		"Shards":                  shards,
		"HasMoreShards":           more,
		"RetentionPeriodHours":    st.retentionHours,
		"StreamCreationTimestamp": epochSeconds(st.created),
		"EnhancedMonitoring":      st.enhancedMonitoring(),
		"EncryptionType":          st.encryptionType(),
	})}, nil
}

func (s *Server) describeStreamSummary(body []byte) (any, *apiError) {
	var req streamRef
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.lookupStream(req, false)
	if err != nil {
		return nil, err
	}
	return map[string]any{"StreamDescriptionSummary": st.withKeyID(map[string]any{
		"StreamName":              st.name,
		"StreamARN":               st.arn,
		"StreamStatus":            st.status(s.now()),
		"StreamModeDetails":       streamModeDetails{StreamMode: st.mode},
		"RetentionPeriodHours":    st.retentionHours,
		"StreamCreationTimestamp": epochSeconds(st.created),
		"EnhancedMonitoring":      st.enhancedMonitoring(),
		"EncryptionType":          st.encryptionType(),
		"OpenShardCount":          len(st.openShards()),
		"ConsumerCount":           len(st.consumers),
		"MaxRecordSizeInKiB":      st.maxRecordSize >> 10,
	})}, nil
}

type pageToken struct {
	Stream  string    `json:"s"`
	After   string    `json:"a"`
	Filter  string    `json:"f,omitempty"`
	ShardID string    `json:"i,omitempty"`
	Time    float64   `json:"t,omitempty"`
	Expires time.Time `json:"e"`
}

func encodeToken(t pageToken) string {
	b, _ := json.Marshal(t)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeToken(s string) (pageToken, *apiError) {
	var t pageToken
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || json.Unmarshal(b, &t) != nil || t.Stream == "" {
		return t, invalidArg("Invalid NextToken.")
	}
	return t, nil
}

// pageSize is the page size a request asks for in field: def when it is
// absent, and an error outside 1 to max.
func pageSize(field string, n *int, def, max int) (int, *apiError) {
	if n == nil {
		return def, nil
	}
	if *n < 1 || *n > max {
		return 0, invalidArg("%s must be between 1 and %d.", field, max)
	}
	return *n, nil
}

func (s *Server) listStreams(body []byte) (any, *apiError) {
	var req struct {
		Limit                    *int   `json:"Limit"`
		ExclusiveStartStreamName string `json:"ExclusiveStartStreamName"`
		NextToken                string `json:"NextToken"`
	}
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	limit, err := pageSize("Limit", req.Limit, 100, 10000)
	if err != nil {
		return nil, err
	}
	after := req.ExclusiveStartStreamName
	if req.NextToken != "" {
		t, err := decodeToken(req.NextToken)
		if err != nil {
			return nil, err
		}
		after = t.After
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var names []string
	for name := range s.streams {
		if _, err := s.lookupStream(streamRef{StreamName: name}, false); err == nil {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	out := []string{}
	summaries := []map[string]any{}
	more := false
	for _, name := range names {
		if after != "" && name <= after {
			continue
		}
		if len(out) == limit {
			more = true
			break
		}
		st := s.streams[name]
		out = append(out, name)
		summaries = append(summaries, map[string]any{
			"StreamName":              st.name,
			"StreamARN":               st.arn,
			"StreamStatus":            st.status(s.now()),
			"StreamModeDetails":       streamModeDetails{StreamMode: st.mode},
			"StreamCreationTimestamp": epochSeconds(st.created),
		})
	}
	resp := map[string]any{"StreamNames": out, "HasMoreStreams": more, "StreamSummaries": summaries}
	if more {
		resp["NextToken"] = encodeToken(pageToken{Stream: "*", After: out[len(out)-1], Expires: s.now().Add(5 * time.Minute)})
	}
	return resp, nil
}

type shardFilter struct {
	Type      string   `json:"Type"`
	ShardId   string   `json:"ShardId"`
	Timestamp *float64 `json:"Timestamp"`
}

func (s *Server) listShards(body []byte) (any, *apiError) {
	var req struct {
		streamRef
		NextToken               string       `json:"NextToken"`
		ExclusiveStartShardId   string       `json:"ExclusiveStartShardId"`
		MaxResults              *int         `json:"MaxResults"`
		StreamCreationTimestamp *float64     `json:"StreamCreationTimestamp"`
		ShardFilter             *shardFilter `json:"ShardFilter"`
	}
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	limit, err := pageSize("MaxResults", req.MaxResults, 1000, 10000)
	if err != nil {
		return nil, err
	}
	after := req.ExclusiveStartShardId
	filter := req.ShardFilter
	s.mu.Lock()
	defer s.mu.Unlock()
	ref := req.streamRef
	if req.NextToken != "" {
		if ref.StreamName != "" || ref.StreamARN != "" || req.ExclusiveStartShardId != "" || req.ShardFilter != nil || req.StreamCreationTimestamp != nil {
			return nil, invalidArg("NextToken cannot be combined with StreamName, StreamARN, ExclusiveStartShardId, ShardFilter or StreamCreationTimestamp.")
		}
		t, err := decodeToken(req.NextToken)
		if err != nil {
			return nil, err
		}
		if s.now().After(t.Expires) {
			return nil, errorf(ErrExpiredNextToken, "The NextToken has expired.")
		}
		ref = streamRef{StreamName: t.Stream}
		after = t.After
		if t.Filter != "" {
			filter = &shardFilter{Type: t.Filter, ShardId: t.ShardID}
			if t.Time != 0 {
				ts := t.Time
				filter.Timestamp = &ts
			}
		}
	}
	st, err := s.lookupStream(ref, false)
	if err != nil {
		return nil, err
	}
	if st.status(s.now()) == StatusCreating {
		return nil, inUse("Stream %s under account %s not ACTIVE, instead in state %s", st.name, s.opts.AccountID, StatusCreating)
	}
	if req.StreamCreationTimestamp != nil && int64(*req.StreamCreationTimestamp*1000) != st.created.UnixMilli() {
		return nil, notFound("Stream %s with creation timestamp %v not found.", st.name, *req.StreamCreationTimestamp)
	}
	keep, ferr := s.shardFilterFunc(st, filter)
	if ferr != nil {
		return nil, ferr
	}
	shards := []shardJSON{}
	more := false
	for _, sh := range s.liveShards(st) {
		if after != "" && sh.id <= after {
			continue
		}
		if !keep(sh) {
			continue
		}
		if len(shards) == limit {
			more = true
			break
		}
		shards = append(shards, s.shardJSON(sh))
	}
	resp := map[string]any{"Shards": shards}
	if more {
		t := pageToken{Stream: st.name, After: shards[len(shards)-1].ShardId, Expires: s.now().Add(5 * time.Minute)}
		if filter != nil {
			t.Filter, t.ShardID = filter.Type, filter.ShardId
			if filter.Timestamp != nil {
				t.Time = *filter.Timestamp
			}
		}
		resp["NextToken"] = encodeToken(t)
	}
	return resp, nil
}

// shardFilterFunc implements ListShards' ShardFilter.
func (s *Server) shardFilterFunc(st *stream, f *shardFilter) (func(*shard) bool, *apiError) {
	if f == nil {
		return func(*shard) bool { return true }, nil
	}
	at := func(t time.Time) func(*shard) bool {
		if t.Before(st.created) {
			t = st.created
		}
		return func(sh *shard) bool { return sh.openAt(t) }
	}
	from := func(t time.Time) func(*shard) bool {
		if t.Before(st.created) {
			t = st.created
		}
		return func(sh *shard) bool { return sh.isOpen() || sh.closed.After(t) }
	}
	ts := func() (time.Time, *apiError) {
		if f.Timestamp == nil {
			return time.Time{}, invalidArg("ShardFilter %s requires Timestamp.", f.Type)
		}
		return time.UnixMilli(int64(*f.Timestamp * 1000)), nil
	}
	horizon := s.now().Add(-time.Duration(st.retentionHours) * time.Hour)
	switch f.Type {
	case "AFTER_SHARD_ID":
		if f.ShardId == "" {
			return nil, invalidArg("ShardFilter AFTER_SHARD_ID requires ShardId.")
		}
		id := f.ShardId
		return func(sh *shard) bool { return sh.id > id }, nil
	case "AT_TRIM_HORIZON":
		return at(horizon), nil
	case "FROM_TRIM_HORIZON":
		return from(horizon), nil
	case "AT_LATEST":
		return func(sh *shard) bool { return sh.isOpen() }, nil
	case "AT_TIMESTAMP":
		t, err := ts()
		if err != nil {
			return nil, err
		}
		return at(t), nil
	case "FROM_TIMESTAMP":
		t, err := ts()
		if err != nil {
			return nil, err
		}
		return from(t), nil
	default:
		return nil, errorf(ErrValidation, "1 validation error detected: Value '%s' at 'shardFilter.type' failed to satisfy constraint: Member must satisfy enum value set: [AFTER_SHARD_ID, AT_TRIM_HORIZON, FROM_TRIM_HORIZON, AT_LATEST, AT_TIMESTAMP, FROM_TIMESTAMP]", f.Type)
	}
}
