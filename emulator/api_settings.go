package emulator

import (
	"net/http"
	"slices"
	"sort"
	"strings"
)

// Stream settings that tooling changes and reads back: retention, record
// size, enhanced monitoring, encryption (state only: records are stored as
// given). Each change that AWS runs as an update puts the stream in UPDATING
// for Options.StreamUpdateDelay.

const (
	minRetentionHours = 24
	maxRetentionHours = 8760
	minRecordSizeKiB  = 1024
	maxRecordSizeKiB  = 10240
)

// shardLevelMetrics are the metrics EnableEnhancedMonitoring takes, in the
// order AWS lists them; "ALL" stands for all of them.
var shardLevelMetrics = []string{
	"IncomingBytes", "IncomingRecords", "OutgoingBytes", "OutgoingRecords",
	"WriteProvisionedThroughputExceeded", "ReadProvisionedThroughputExceeded",
	"IteratorAgeMilliseconds",
}

// streamSettings are a stream's tags, encryption and enhanced monitoring.
type streamSettings struct {
	tags       map[string]string
	encryption string // "" is NONE
	keyID      string
	metrics    map[string]bool
}

func (st *stream) encryptionType() string {
	if st.settings.encryption == "" {
		return "NONE"
	}
	return st.settings.encryption
}

// withKeyID adds KeyId to a stream description when the stream is encrypted.
func (st *stream) withKeyID(m map[string]any) map[string]any {
	if st.settings.keyID != "" {
		m["KeyId"] = st.settings.keyID
	}
	return m
}

func (st *stream) enhancedMonitoring() []enhancedMetrics {
	return []enhancedMetrics{{ShardLevelMetrics: st.metricList()}}
}

func (st *stream) metricList() []string {
	out := []string{}
	for _, m := range shardLevelMetrics {
		if st.settings.metrics[m] {
			out = append(out, m)
		}
	}
	return out
}

// settingsHandlers are merged into handlers (server.go).
var settingsHandlers = map[string]handlerFunc{
	"DescribeLimits":                (*Server).describeLimits,
	"AddTagsToStream":               (*Server).addTagsToStream,
	"ListTagsForStream":             (*Server).listTagsForStream,
	"RemoveTagsFromStream":          (*Server).removeTagsFromStream,
	"UpdateMaxRecordSize":           (*Server).updateMaxRecordSize,
	"EnableEnhancedMonitoring":      (*Server).enableEnhancedMonitoring,
	"DisableEnhancedMonitoring":     (*Server).disableEnhancedMonitoring,
	"IncreaseStreamRetentionPeriod": (*Server).increaseRetention,
	"DecreaseStreamRetentionPeriod": (*Server).decreaseRetention,
	"StartStreamEncryption":         (*Server).startStreamEncryption,
	"StopStreamEncryption":          (*Server).stopStreamEncryption,
}

// notServed are Kinesis operations the emulator knows of and does not
// serve; they answer UnknownOperationException as AWS does for an action it
// does not have, with a message that says so.
var notServed = []string{
	"DeleteResourcePolicy", "DescribeAccountSettings", "GetResourcePolicy",
	"ListTagsForResource", "PutResourcePolicy", "TagResource", "UntagResource",
	"UpdateAccountSettings", "UpdateStreamMode", "UpdateStreamWarmThroughput",
}

// unknownOperation is the answer to an X-Amz-Target the emulator does not
// serve: UnknownOperationException, HTTP 400, as AWS answers.
func unknownOperation(target string) *apiError {
	op, _ := strings.CutPrefix(target, targetPrefix)
	i := sort.SearchStrings(notServed, op)
	if i < len(notServed) && notServed[i] == op {
		return errorf(ErrUnknownOperation, "%s is a Kinesis operation the fanoutd emulator does not serve.", op)
	}
	return errorf(ErrUnknownOperation, "unknown operation %q", target)
}

// notServedAnswer is how an endpoint without the operation of target
// answers it.
func notServedAnswer(how NotServed, target string) *apiError {
	if how == NotServedKinesisMock {
		op, _ := strings.CutPrefix(target, targetPrefix)
		e := errorf("ApiNotImplemented", "%s is not yet supported", op)
		e.status = http.StatusNotFound
		return e
	}
	return unknownOperation(target)
}

// markUpdating puts st in UPDATING for the update delay. Called with s.mu held.
func (s *Server) markUpdating(st *stream) {
	st.updatingUntil = s.now().Add(s.opts.StreamUpdateDelay)
}

// activeStream resolves a stream that must be ACTIVE for an update, as
// AWS requires: ResourceInUseException otherwise. Called with s.mu held.
func (s *Server) activeStream(ref streamRef) (*stream, *apiError) {
	st, err := s.lookupStream(ref, true)
	if err != nil {
		return nil, err
	}
	if status := st.status(s.now()); status != StatusActive {
		return nil, inUse("Stream %s under account %s not ACTIVE, instead in state %s", st.name, s.opts.AccountID, status)
	}
	return st, nil
}

// notCreating resolves a stream for a call that AWS refuses while the
// stream is CREATING (ResourceInUseException). Called with s.mu held.
func (s *Server) notCreating(ref streamRef) (*stream, *apiError) {
	st, err := s.lookupStream(ref, true)
	if err != nil {
		return nil, err
	}
	if st.status(s.now()) == StatusCreating {
		return nil, inUse("Stream %s under account %s not ACTIVE, instead in state %s", st.name, s.opts.AccountID, StatusCreating)
	}
	return st, nil
}

func (s *Server) updateMaxRecordSize(body []byte) (any, *apiError) {
	var req struct {
		StreamARN          string `json:"StreamARN"`
		MaxRecordSizeInKiB *int   `json:"MaxRecordSizeInKiB"`
	}
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	if err := validateRecordSizeKiB(req.MaxRecordSizeInKiB); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.activeStream(streamRef{StreamARN: req.StreamARN})
	if err != nil {
		return nil, err
	}
	st.maxRecordSize = *req.MaxRecordSizeInKiB << 10
	s.markUpdating(st)
	return struct{}{}, nil
}

// validateRecordSizeKiB checks MaxRecordSizeInKiB as AWS does: a
// ValidationException outside 1024..10240.
func validateRecordSizeKiB(kib *int) *apiError {
	switch {
	case kib == nil:
		return errorf(ErrValidation, "1 validation error detected: Value null at 'maxRecordSizeInKiB' failed to satisfy constraint: Member must not be null")
	case *kib < minRecordSizeKiB:
		return errorf(ErrValidation, "1 validation error detected: Value '%d' at 'maxRecordSizeInKiB' failed to satisfy constraint: Member must have value greater than or equal to %d", *kib, minRecordSizeKiB)
	case *kib > maxRecordSizeKiB:
		return errorf(ErrValidation, "1 validation error detected: Value '%d' at 'maxRecordSizeInKiB' failed to satisfy constraint: Member must have value less than or equal to %d", *kib, maxRecordSizeKiB)
	}
	return nil
}

type monitoringRequest struct {
	streamRef
	ShardLevelMetrics []string `json:"ShardLevelMetrics"`
}

func (s *Server) enableEnhancedMonitoring(body []byte) (any, *apiError) {
	return s.setMonitoring(body, true)
}

func (s *Server) disableEnhancedMonitoring(body []byte) (any, *apiError) {
	return s.setMonitoring(body, false)
}

func (s *Server) setMonitoring(body []byte, on bool) (any, *apiError) {
	var req monitoringRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	if n := len(req.ShardLevelMetrics); n < 1 || n > 7 {
		return nil, errorf(ErrValidation, "1 validation error detected: Value '[%s]' at 'shardLevelMetrics' failed to satisfy constraint: Member must have length less than or equal to 7, Member must have length greater than or equal to 1", strings.Join(req.ShardLevelMetrics, ", "))
	}
	var names []string
	for _, m := range req.ShardLevelMetrics {
		if m == "ALL" {
			names = append(names, shardLevelMetrics...)
			continue
		}
		if !slices.Contains(shardLevelMetrics, m) {
			return nil, errorf(ErrValidation, "1 validation error detected: Value '[%s]' at 'shardLevelMetrics' failed to satisfy constraint: Member must satisfy constraint: [Member must satisfy enum value set: [IncomingBytes, OutgoingRecords, IteratorAgeMilliseconds, IncomingRecords, ReadProvisionedThroughputExceeded, WriteProvisionedThroughputExceeded, OutgoingBytes, ALL]]", strings.Join(req.ShardLevelMetrics, ", "))
		}
		names = append(names, m)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.activeStream(req.streamRef)
	if err != nil {
		return nil, err
	}
	current := st.metricList()
	if st.settings.metrics == nil {
		st.settings.metrics = map[string]bool{}
	}
	for _, m := range names {
		if on {
			st.settings.metrics[m] = true
		} else {
			delete(st.settings.metrics, m)
		}
	}
	return map[string]any{
		"StreamName":               st.name,
		"StreamARN":                st.arn,
		"CurrentShardLevelMetrics": current,
		"DesiredShardLevelMetrics": st.metricList(),
	}, nil
}

type retentionRequest struct {
	streamRef
	RetentionPeriodHours *int `json:"RetentionPeriodHours"`
}

func (s *Server) increaseRetention(body []byte) (any, *apiError) {
	return s.changeRetention(body, true)
}

func (s *Server) decreaseRetention(body []byte) (any, *apiError) {
	return s.changeRetention(body, false)
}

// changeRetention implements Increase/DecreaseStreamRetentionPeriod with
// AWS's messages.
func (s *Server) changeRetention(body []byte, increase bool) (any, *apiError) {
	var req retentionRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	if req.RetentionPeriodHours == nil {
		return nil, errorf(ErrValidation, "1 validation error detected: Value null at 'retentionPeriodHours' failed to satisfy constraint: Member must not be null")
	}
	h := *req.RetentionPeriodHours
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.activeStream(req.streamRef)
	if err != nil {
		return nil, err
	}
	switch {
	case h < minRetentionHours:
		return nil, invalidArg("Minimum allowed retention period is %d hours. Requested retention period (%d hours) is too short.", minRetentionHours, h)
	case h > maxRetentionHours:
		return nil, invalidArg("Maximum allowed retention period is %d hours. Requested retention period (%d hours) is too long.", maxRetentionHours, h)
	case increase && h < st.retentionHours:
		return nil, invalidArg("Requested retention period (%d hours) for stream %s can not be shorter than existing retention period (%d hours). Use DecreaseRetentionPeriod API.", h, st.name, st.retentionHours)
	case !increase && h > st.retentionHours:
		return nil, invalidArg("Requested retention period (%d hours) for stream %s can not be longer than existing retention period (%d hours). Use IncreaseRetentionPeriod API.", h, st.name, st.retentionHours)
	}
	if h != st.retentionHours {
		st.retentionHours = h
		s.markUpdating(st)
	}
	return struct{}{}, nil
}

type encryptionRequest struct {
	streamRef
	EncryptionType string `json:"EncryptionType"`
	KeyId          string `json:"KeyId"`
}

func (s *Server) startStreamEncryption(body []byte) (any, *apiError) {
	return s.setEncryption(body, true)
}

func (s *Server) stopStreamEncryption(body []byte) (any, *apiError) {
	return s.setEncryption(body, false)
}

// setEncryption records StartStreamEncryption/StopStreamEncryption. The
// emulator has no KMS: any key ID is accepted and records are not encrypted.
func (s *Server) setEncryption(body []byte, start bool) (any, *apiError) {
	var req encryptionRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	if req.EncryptionType != "KMS" && req.EncryptionType != "NONE" {
		if req.EncryptionType == "" {
			return nil, errorf(ErrValidation, "1 validation error detected: Value null at 'encryptionType' failed to satisfy constraint: Member must not be null")
		}
		return nil, errorf(ErrValidation, "1 validation error detected: Value '%s' at 'encryptionType' failed to satisfy constraint: Member must satisfy enum value set: [KMS, NONE]", req.EncryptionType)
	}
	if req.KeyId == "" {
		return nil, errorf(ErrValidation, "1 validation error detected: Value null at 'keyId' failed to satisfy constraint: Member must not be null")
	}
	if len(req.KeyId) > 2048 {
		return nil, errorf(ErrValidation, "1 validation error detected: Value at 'keyId' failed to satisfy constraint: Member must have length less than or equal to 2048")
	}
	if req.EncryptionType != "KMS" {
		return nil, invalidArg("Encryption type %s is not supported; use KMS.", req.EncryptionType)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.activeStream(req.streamRef)
	if err != nil {
		return nil, err
	}
	if start {
		st.settings.encryption, st.settings.keyID = "KMS", req.KeyId
	} else {
		if st.settings.encryption == "" {
			return nil, invalidArg("Stream %s under account %s is not encrypted.", st.name, s.opts.AccountID)
		}
		st.settings.encryption, st.settings.keyID = "", ""
	}
	s.markUpdating(st)
	return struct{}{}, nil
}
