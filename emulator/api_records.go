package emulator

import (
	"encoding/base64"
	"encoding/json"
	"math/big"
	"time"
	"unicode/utf8"
)

const (
	maxPutRecordsEntries = 500
	// The API reference: "Each record in the request can be as large as 10
	// MiB, up to a limit of 10 MiB for the entire request, including
	// partition keys" (5 MiB before large records came in 2025).
	maxPutRecordsBytes = 10 << 20
	maxGetRecordsBytes = 10 << 20
	maxGetRecordsLimit = 10000
)

type recordJSON struct {
	Data                        []byte  `json:"Data"`
	PartitionKey                string  `json:"PartitionKey"`
	SequenceNumber              string  `json:"SequenceNumber"`
	ApproximateArrivalTimestamp float64 `json:"ApproximateArrivalTimestamp"`
	EncryptionType              string  `json:"EncryptionType,omitempty"`
}

func toRecordJSON(r *record) recordJSON {
	return recordJSON{
		Data:                        r.data,
		PartitionKey:                r.partitionKey,
		SequenceNumber:              r.seqStr,
		ApproximateArrivalTimestamp: epochSeconds(r.arrival),
		EncryptionType:              "NONE",
	}
}

type childShardJSON struct {
	ShardId      string           `json:"ShardId"`
	ParentShards []string         `json:"ParentShards"`
	HashKeyRange hashKeyRangeJSON `json:"HashKeyRange"`
}

func (st *stream) childShards(sh *shard) []childShardJSON {
	out := []childShardJSON{}
	for _, id := range sh.children {
		c := st.byID[id]
		parents := []string{c.parent}
		if c.adjacentParent != "" {
			parents = append(parents, c.adjacentParent)
		}
		out = append(out, childShardJSON{
			ShardId:      c.id,
			ParentShards: parents,
			HashKeyRange: hashKeyRangeJSON{StartingHashKey: c.hashStart.String(), EndingHashKey: c.hashEnd.String()},
		})
	}
	return out
}

// validateRecord checks one record as PutRecord and PutRecords do.
func validateRecord(st *stream, data []byte, pk, ehk string) (*big.Int, *apiError) {
	n := utf8.RuneCountInString(pk)
	if n < 1 || n > 256 {
		return nil, invalidArg("Partition key must be between 1 and 256 characters long (got %d).", n)
	}
	if size := len(data) + len(pk); size > st.maxRecordSize {
		return nil, invalidArg("Record size %d bytes (data plus partition key) exceeds the maximum of %d bytes for stream %s.", size, st.maxRecordSize, st.name)
	}
	if ehk != "" {
		h, ok := parseHashKey(ehk)
		if !ok {
			return nil, invalidArg("Invalid ExplicitHashKey %q: must be a decimal integer between 0 and 2^128-1.", ehk)
		}
		return h, nil
	}
	return hashKeyOf(pk), nil
}

// appendRecord stores a record in the open shard that owns hash. Called with
// s.mu held.
func (s *Server) appendRecord(st *stream, hash *big.Int, data []byte, pk, ehk string) (*shard, *record, *apiError) {
	sh := st.shardForHash(hash)
	if sh == nil {
		return nil, nil, errorf(ErrInternalFailure, "no open shard owns hash key %s", hash)
	}
	if err := s.checkShardWrite(sh, len(data)+len(pk)); err != nil {
		return nil, nil, err
	}
	s.counter++
	seq := makeSeq(s.counter, sh.index)
	sh.records = append(sh.records, record{
		seq:          seq,
		seqStr:       formatSeq(seq),
		data:         data,
		partitionKey: pk,
		hashKey:      ehk,
		arrival:      s.now().Truncate(time.Millisecond),
	})
	sh.wake()
	return sh, &sh.records[len(sh.records)-1], nil
}

func (s *Server) writableStream(ref streamRef) (*stream, *apiError) {
	st, err := s.lookupStream(ref, true)
	if err != nil {
		return nil, err
	}
	if st.status(s.now()) == StatusCreating {
		return nil, notFound("Stream %s under account %s not found.", st.name, s.opts.AccountID)
	}
	return st, nil
}

func (s *Server) putRecord(body []byte) (any, *apiError) {
	var req struct {
		streamRef
		Data                      []byte `json:"Data"`
		PartitionKey              string `json:"PartitionKey"`
		ExplicitHashKey           string `json:"ExplicitHashKey"`
		SequenceNumberForOrdering string `json:"SequenceNumberForOrdering"`
	}
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.writableStream(req.streamRef)
	if err != nil {
		return nil, err
	}
	hash, err := validateRecord(st, req.Data, req.PartitionKey, req.ExplicitHashKey)
	if err != nil {
		return nil, err
	}
	sh, rec, err := s.appendRecord(st, hash, req.Data, req.PartitionKey, req.ExplicitHashKey)
	if err != nil {
		return nil, err
	}
	return map[string]any{"ShardId": sh.id, "SequenceNumber": rec.seqStr, "EncryptionType": "NONE"}, nil
}

func (s *Server) putRecords(body []byte) (any, *apiError) {
	var req struct {
		streamRef
		Records []struct {
			Data            []byte `json:"Data"`
			PartitionKey    string `json:"PartitionKey"`
			ExplicitHashKey string `json:"ExplicitHashKey"`
		} `json:"Records"`
	}
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	if len(req.Records) < 1 || len(req.Records) > maxPutRecordsEntries {
		return nil, invalidArg("Records must hold between 1 and %d entries (got %d).", maxPutRecordsEntries, len(req.Records))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.writableStream(req.streamRef)
	if err != nil {
		return nil, err
	}
	total := 0
	hashes := make([]*big.Int, len(req.Records))
	for i, r := range req.Records {
		total += len(r.Data) + len(r.PartitionKey)
		h, err := validateRecord(st, r.Data, r.PartitionKey, r.ExplicitHashKey)
		if err != nil {
			err.msg = "Records[" + itoa(i) + "]: " + err.msg
			return nil, err
		}
		hashes[i] = h
	}
	if total > maxPutRecordsBytes {
		return nil, invalidArg("PutRecords request of %d bytes exceeds the maximum of %d bytes.", total, maxPutRecordsBytes)
	}
	failEntries := s.takeEntryFaults(len(req.Records))
	results := make([]map[string]any, len(req.Records))
	failed := 0
	for i, r := range req.Records {
		if fe := failEntries[i]; fe != nil {
			failed++
			results[i] = map[string]any{"ErrorCode": fe.typ, "ErrorMessage": fe.msg}
			continue
		}
		sh, rec, err := s.appendRecord(st, hashes[i], r.Data, r.PartitionKey, r.ExplicitHashKey)
		if err != nil {
			if err.typ == ErrProvisionedThroughput {
				failed++
				results[i] = map[string]any{"ErrorCode": err.typ, "ErrorMessage": err.msg}
				continue
			}
			return nil, err
		}
		results[i] = map[string]any{"ShardId": sh.id, "SequenceNumber": rec.seqStr}
	}
	return map[string]any{"FailedRecordCount": failed, "Records": results, "EncryptionType": "NONE"}, nil
}

// resolvePosition turns a starting position into an absolute position in sh.
// Called with s.mu held.
func (s *Server) resolvePosition(st *stream, sh *shard, typ, seq string, ts *float64) (int, *apiError) {
	switch typ {
	case "TRIM_HORIZON":
		return sh.trimmed, nil
	case "LATEST":
		return sh.end(), nil
	case "AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER":
		after := typ == "AFTER_SEQUENCE_NUMBER"
		if seq == "" {
			return 0, invalidArg("StartingSequenceNumber is required for %s.", typ)
		}
		n, idx, ok := parseSeq(seq)
		if !ok || idx != sh.index || n.Cmp(sh.startSeq) < 0 {
			return 0, invalidArg("StartingSequenceNumber %s used in %s on shard %s in stream %s under account %s is invalid.", seq, typ, sh.id, st.name, s.opts.AccountID)
		}
		if sh.endSeq != nil && n.Cmp(sh.endSeq) > 0 {
			return 0, invalidArg("StartingSequenceNumber %s used in %s on shard %s in stream %s under account %s is beyond the end of the shard.", seq, typ, sh.id, st.name, s.opts.AccountID)
		}
		if sh.lastTrimmed != nil {
			c := n.Cmp(sh.lastTrimmed)
			if c < 0 || (c == 0 && !after) {
				return 0, invalidArg("StartingSequenceNumber %s used in %s on shard %s in stream %s under account %s is older than the stream's retention period of %d hours; the records after it have expired.", seq, typ, sh.id, st.name, s.opts.AccountID, st.retentionHours)
			}
		}
		return sh.position(n, after), nil
	case "AT_TIMESTAMP":
		if ts == nil {
			return 0, invalidArg("Timestamp is required for AT_TIMESTAMP.")
		}
		t := time.UnixMilli(int64(*ts * 1000))
		return sh.positionAtTime(t), nil
	case "":
		return 0, invalidArg("ShardIteratorType / StartingPosition.Type is required.")
	default:
		return 0, errorf(ErrValidation, "1 validation error detected: Value '%s' at 'type' failed to satisfy constraint: Member must satisfy enum value set: [AT_SEQUENCE_NUMBER, AFTER_SEQUENCE_NUMBER, TRIM_HORIZON, LATEST, AT_TIMESTAMP]", typ)
	}
}

func (s *Server) lookupShard(st *stream, id string) (*shard, *apiError) {
	sh := st.byID[id]
	// A closed shard whose records all aged out of retention is gone, as
	// on AWS: ListShards no longer lists it and calls on it fail.
	if sh == nil || !sh.isOpen() && !sh.closed.After(s.now().Add(-time.Duration(st.retentionHours)*time.Hour)) {
		return nil, notFound("Shard %s in stream %s under account %s does not exist", id, st.name, s.opts.AccountID)
	}
	return sh, nil
}

// shardOf finds a stream with find, then its shard id. Called with s.mu held.
func (s *Server) shardOf(find func(streamRef) (*stream, *apiError), ref streamRef, id string) (*stream, *shard, *apiError) {
	st, err := find(ref)
	if err != nil {
		return nil, nil, err
	}
	sh, err := s.lookupShard(st, id)
	if err != nil {
		return nil, nil, err
	}
	return st, sh, nil
}

type iteratorToken struct {
	Stream  string    `json:"s"`
	Created int64     `json:"c"`
	Shard   string    `json:"h"`
	Pos     int       `json:"p"`
	Expires time.Time `json:"e"`
}

func (s *Server) getShardIterator(body []byte) (any, *apiError) {
	var req struct {
		streamRef
		ShardId                string   `json:"ShardId"`
		ShardIteratorType      string   `json:"ShardIteratorType"`
		StartingSequenceNumber string   `json:"StartingSequenceNumber"`
		Timestamp              *float64 `json:"Timestamp"`
	}
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, sh, err := s.shardOf(s.writableStream, req.streamRef, req.ShardId)
	if err != nil {
		return nil, err
	}
	if err := s.checkShardIterators(st, sh); err != nil {
		return nil, err
	}
	pos, err := s.resolvePosition(st, sh, req.ShardIteratorType, req.StartingSequenceNumber, req.Timestamp)
	if err != nil {
		return nil, err
	}
	return map[string]any{"ShardIterator": s.encodeIterator(st, sh, pos)}, nil
}

func (s *Server) encodeIterator(st *stream, sh *shard, pos int) string {
	b, _ := json.Marshal(iteratorToken{Stream: st.name, Created: st.created.UnixNano(), Shard: sh.id, Pos: pos,
		Expires: s.now().Add(s.opts.IteratorLifetime)})
	return base64.StdEncoding.EncodeToString(b)
}

func (s *Server) getRecords(body []byte) (any, *apiError) {
	var req struct {
		ShardIterator string `json:"ShardIterator"`
		Limit         *int   `json:"Limit"`
		StreamARN     string `json:"StreamARN"`
	}
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	limit, err := pageSize("Limit", req.Limit, maxGetRecordsLimit, maxGetRecordsLimit)
	if err != nil {
		return nil, err
	}
	var it iteratorToken
	raw, derr := base64.StdEncoding.DecodeString(req.ShardIterator)
	if req.ShardIterator == "" || derr != nil || json.Unmarshal(raw, &it) != nil || it.Stream == "" {
		return nil, invalidArg("Invalid ShardIterator.")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.now().After(it.Expires) {
		// AWS writes the times as Java's Date.toString does.
		const javaDate = "Mon Jan 02 15:04:05 MST 2006"
		return nil, errorf(ErrExpiredIterator, "Iterator expired. The iterator was created at time %s while right now it is %s which is further in the future than the tolerated delay of %d milliseconds.",
			it.Expires.Add(-s.opts.IteratorLifetime).UTC().Format(javaDate), s.now().UTC().Format(javaDate), s.opts.IteratorLifetime.Milliseconds())
	}
	st, err := s.lookupStream(streamRef{StreamName: it.Stream}, true)
	if err != nil {
		return nil, err
	}
	if st.created.UnixNano() != it.Created {
		return nil, notFound("Stream %s under account %s not found.", it.Stream, s.opts.AccountID)
	}
	sh, err := s.lookupShard(st, it.Shard)
	if err != nil {
		return nil, err
	}
	if err := s.checkShardRead(st, sh); err != nil {
		return nil, err
	}
	pos := max(it.Pos, sh.trimmed)
	recs := []recordJSON{}
	// A record's size is its data plus its partition key, as for writes.
	size := 0
	for pos < sh.end() && len(recs) < limit {
		r := sh.recordAt(pos)
		n := len(r.data) + len(r.partitionKey)
		if len(recs) > 0 && size+n > maxGetRecordsBytes {
			break
		}
		size += n
		recs = append(recs, toRecordJSON(r))
		pos++
	}
	s.chargeShardRead(sh, size)
	sh.polled = true
	resp := map[string]any{"Records": recs, "MillisBehindLatest": sh.millisBehind(pos, s.now())}
	if !sh.isOpen() && pos == sh.end() {
		resp["ChildShards"] = st.childShards(sh)
	} else {
		resp["NextShardIterator"] = s.encodeIterator(st, sh, pos)
	}
	return resp, nil
}

// millisBehind is how far a reader at pos is behind the tip of the shard.
func (sh *shard) millisBehind(pos int, now time.Time) int64 {
	if pos >= sh.end() {
		return 0
	}
	return max(0, now.Sub(sh.recordAt(pos).arrival).Milliseconds())
}

func itoa(i int) string {
	b, _ := json.Marshal(i)
	return string(b)
}
