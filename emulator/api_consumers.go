package emulator

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

type consumerRef struct {
	StreamARN    string `json:"StreamARN"`
	ConsumerName string `json:"ConsumerName"`
	ConsumerARN  string `json:"ConsumerARN"`
}

func (s *Server) consumerJSON(st *stream, c *consumer, withStream bool) map[string]any {
	out := map[string]any{
		"ConsumerName":              c.name,
		"ConsumerARN":               c.arn,
		"ConsumerStatus":            c.status(s.now()),
		"ConsumerCreationTimestamp": epochSeconds(c.created),
	}
	if withStream {
		out["StreamARN"] = st.arn
	}
	return out
}

// purgeConsumers drops consumers whose deletion has completed. Called with
// s.mu held.
func (s *Server) purgeConsumers(st *stream) {
	now := s.now()
	for name, c := range st.consumers {
		if !c.deletedAt.IsZero() && now.Sub(c.deletedAt) >= s.opts.ConsumerDeletionDelay {
			delete(st.consumers, name)
		}
	}
}

// lookupConsumer resolves a consumer by ARN, or by stream ARN and name.
// Called with s.mu held.
func (s *Server) lookupConsumer(ref consumerRef) (*stream, *consumer, *apiError) {
	if ref.ConsumerARN != "" {
		streamARN, rest, ok := strings.Cut(ref.ConsumerARN, "/consumer/")
		name, _, ok2 := strings.Cut(rest, ":")
		if !ok || !ok2 || !nameRE.MatchString(name) {
			return nil, nil, errorf(ErrValidation, "1 validation error detected: Value '%s' at 'consumerARN' failed to satisfy constraint: Member must satisfy regular expression pattern: ^(arn):aws.*:kinesis:.*:\\d{12}:.*stream\\/[a-zA-Z0-9_.-]+\\/consumer\\/[a-zA-Z0-9_.-]+:[0-9]+", ref.ConsumerARN)
		}
		if ref.StreamARN != "" && ref.StreamARN != streamARN {
			return nil, nil, invalidArg("ConsumerARN %s does not belong to stream %s.", ref.ConsumerARN, ref.StreamARN)
		}
		st, err := s.lookupStream(streamRef{StreamARN: streamARN}, true)
		if err != nil {
			if err.typ == ErrResourceNotFound {
				return nil, nil, notFound("Consumer %s under account %s not found.", ref.ConsumerARN, s.opts.AccountID)
			}
			return nil, nil, err
		}
		s.purgeConsumers(st)
		c := st.consumers[name]
		if c == nil || c.arn != ref.ConsumerARN {
			return nil, nil, notFound("Consumer %s under account %s not found.", ref.ConsumerARN, s.opts.AccountID)
		}
		return st, c, nil
	}
	if ref.StreamARN == "" || ref.ConsumerName == "" {
		return nil, nil, invalidArg("Either ConsumerARN, or both StreamARN and ConsumerName, should be provided.")
	}
	st, err := s.lookupStream(streamRef{StreamARN: ref.StreamARN}, true)
	if err != nil {
		return nil, nil, err
	}
	s.purgeConsumers(st)
	c := st.consumers[ref.ConsumerName]
	if c == nil {
		return nil, nil, notFound("Consumer %s under account %s not found.", ref.ConsumerName, s.opts.AccountID)
	}
	return st, c, nil
}

func (s *Server) registerStreamConsumer(body []byte) (any, *apiError) {
	var req struct {
		StreamARN    string            `json:"StreamARN"`
		ConsumerName string            `json:"ConsumerName"`
		Tags         map[string]string `json:"Tags"`
	}
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	if !nameRE.MatchString(req.ConsumerName) {
		return nil, errorf(ErrValidation, "1 validation error detected: Value '%s' at 'consumerName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+", req.ConsumerName)
	}
	if req.StreamARN == "" {
		return nil, errorf(ErrValidation, "1 validation error detected: Value null at 'streamARN' failed to satisfy constraint: Member must not be null")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	tags, err := createTags(req.Tags, "consumer "+req.ConsumerName+" under account "+s.opts.AccountID)
	if err != nil {
		return nil, err
	}
	st, err := s.notCreating(streamRef{StreamARN: req.StreamARN})
	if err != nil {
		return nil, err
	}
	c, err := s.registerConsumerLocked(st, req.ConsumerName)
	if err != nil {
		return nil, err
	}
	c.tags = tags
	return map[string]any{"Consumer": s.consumerJSON(st, c, false)}, nil
}

func (s *Server) registerConsumerLocked(st *stream, name string) (*consumer, *apiError) {
	s.purgeConsumers(st)
	if _, ok := st.consumers[name]; ok {
		return nil, inUse("Consumer %s under account %s already exists for stream %s.", name, s.opts.AccountID, st.arn)
	}
	if len(st.consumers) >= st.maxConsumers {
		return nil, errorf(ErrLimitExceeded, "Stream %s under account %s already has %d registered consumers, the maximum.", st.name, s.opts.AccountID, st.maxConsumers)
	}
	now := s.now()
	creating := 0
	for _, other := range s.streams {
		for _, oc := range other.consumers {
			if oc.status(now) == StatusCreating {
				creating++
			}
		}
	}
	if creating >= maxConsumersCreating {
		return nil, errorf(ErrLimitExceeded, "Account %s already has %d consumers in CREATING state, the maximum.", s.opts.AccountID, maxConsumersCreating)
	}
	c := &consumer{
		name:     name,
		arn:      fmt.Sprintf("%s/consumer/%s:%d", st.arn, name, now.Unix()),
		created:  now,
		activeAt: now.Add(s.opts.ConsumerActivationDelay),
	}
	st.consumers[name] = c
	return c, nil
}

func (s *Server) describeStreamConsumer(body []byte) (any, *apiError) {
	var req consumerRef
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, c, err := s.lookupConsumer(req)
	if err != nil {
		return nil, err
	}
	return map[string]any{"ConsumerDescription": s.consumerJSON(st, c, true)}, nil
}

func (s *Server) listStreamConsumers(body []byte) (any, *apiError) {
	var req struct {
		StreamARN               string   `json:"StreamARN"`
		NextToken               string   `json:"NextToken"`
		MaxResults              *int     `json:"MaxResults"`
		StreamCreationTimestamp *float64 `json:"StreamCreationTimestamp"`
	}
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	limit, err := pageSize("MaxResults", req.MaxResults, 100, 10000)
	if err != nil {
		return nil, err
	}
	after := ""
	if req.NextToken != "" {
		t, err := decodeToken(req.NextToken)
		if err != nil {
			return nil, err
		}
		if s.now().After(t.Expires) {
			return nil, errorf(ErrExpiredNextToken, "The NextToken has expired.")
		}
		after = t.After
	}
	if req.StreamARN == "" {
		return nil, errorf(ErrValidation, "1 validation error detected: Value null at 'streamARN' failed to satisfy constraint: Member must not be null")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.lookupStream(streamRef{StreamARN: req.StreamARN}, true)
	if err != nil {
		return nil, err
	}
	s.purgeConsumers(st)
	names := make([]string, 0, len(st.consumers))
	for n := range st.consumers {
		names = append(names, n)
	}
	sort.Strings(names)
	out := []map[string]any{}
	more := false
	for _, n := range names {
		if after != "" && n <= after {
			continue
		}
		if len(out) == limit {
			more = true
			break
		}
		out = append(out, s.consumerJSON(st, st.consumers[n], false))
	}
	resp := map[string]any{"Consumers": out}
	if more {
		resp["NextToken"] = encodeToken(pageToken{Stream: st.name, After: out[len(out)-1]["ConsumerName"].(string), Expires: s.now().Add(5 * time.Minute)})
	}
	return resp, nil
}

func (s *Server) deregisterStreamConsumer(body []byte) (any, *apiError) {
	var req consumerRef
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, c, err := s.lookupConsumer(req)
	if err != nil {
		return nil, err
	}
	if c.deletedAt.IsZero() {
		c.deletedAt = s.now()
		s.endConsumerSubs(c.arn, control{kind: ctlEnd})
	}
	return struct{}{}, nil
}
