package emulator

import (
	"maps"
	"sort"
	"strings"
	"unicode/utf8"
)

// Stream tags (AddTagsToStream, ListTagsForStream, RemoveTagsFromStream,
// Tags on CreateStream) and consumer tags (Tags on RegisterStreamConsumer),
// with AWS's limits: 10 tags a call, 50 a resource, keys of 1 to 128
// characters not starting with "aws:", values up to 256.

const (
	maxTagsPerCall     = 10
	maxTagsPerResource = 50
	maxTagKeyLen       = 128
	maxTagValueLen     = 256
	maxListTagsLimit   = 50
)

// validateTags checks keys and values as AWS's model does
// (ValidationException) and reserved prefixes as the service does.
func validateTags(tags map[string]string, what string) *apiError {
	for k, v := range tags {
		if n := utf8.RuneCountInString(k); n < 1 || n > maxTagKeyLen {
			return errorf(ErrValidation, "1 validation error detected: Value '%s' at 'tags' failed to satisfy constraint: Map keys must satisfy constraint: [Member must have length less than or equal to %d, Member must have length greater than or equal to 1]", k, maxTagKeyLen)
		}
		if utf8.RuneCountInString(v) > maxTagValueLen {
			return errorf(ErrValidation, "1 validation error detected: Value '%s' at 'tags' failed to satisfy constraint: Map value must satisfy constraint: [Member must have length less than or equal to %d]", v, maxTagValueLen)
		}
		if strings.HasPrefix(strings.ToLower(k), "aws:") {
			return invalidArg("Failed to add tags to %s because tag keys cannot start with the reserved prefix 'aws:' (key '%s').", what, k)
		}
	}
	return nil
}

// mergeTags adds tags to existing, refusing more than 50 in all.
func mergeTags(existing map[string]string, tags map[string]string, what string) (map[string]string, *apiError) {
	n := len(existing)
	for k := range tags {
		if _, ok := existing[k]; !ok {
			n++
		}
	}
	if n > maxTagsPerResource {
		return nil, invalidArg("Failed to add tags to %s because a given stream cannot have more than %d tags associated with it.", what, maxTagsPerResource)
	}
	out := make(map[string]string, n)
	for k, v := range existing {
		out[k] = v
	}
	for k, v := range tags {
		out[k] = v
	}
	return out, nil
}

// createTags validates the Tags of CreateStream or RegisterStreamConsumer.
func createTags(tags map[string]string, what string) (map[string]string, *apiError) {
	if len(tags) == 0 {
		return nil, nil
	}
	if err := validateTags(tags, what); err != nil {
		return nil, err
	}
	return mergeTags(nil, tags, what)
}

func (s *Server) addTagsToStream(body []byte) (any, *apiError) {
	var req struct {
		streamRef
		Tags map[string]string `json:"Tags"`
	}
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	if req.Tags == nil {
		return nil, errorf(ErrValidation, "1 validation error detected: Value null at 'tags' failed to satisfy constraint: Member must not be null")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.notCreating(req.streamRef)
	if err != nil {
		return nil, err
	}
	what := "stream " + st.name + " under account " + s.opts.AccountID
	if len(req.Tags) > maxTagsPerCall {
		return nil, invalidArg("Failed to add tags to %s because a given request cannot have more than %d tags associated.", what, maxTagsPerCall)
	}
	if err := validateTags(req.Tags, what); err != nil {
		return nil, err
	}
	tags, err := mergeTags(st.settings.tags, req.Tags, what)
	if err != nil {
		return nil, err
	}
	st.settings.tags = tags
	return struct{}{}, nil
}

func (s *Server) listTagsForStream(body []byte) (any, *apiError) {
	var req struct {
		streamRef
		ExclusiveStartTagKey string `json:"ExclusiveStartTagKey"`
		Limit                *int   `json:"Limit"`
	}
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	limit := maxListTagsLimit
	if req.Limit != nil {
		if *req.Limit < 1 {
			return nil, errorf(ErrValidation, "1 validation error detected: Value '%d' at 'limit' failed to satisfy constraint: Member must have value greater than or equal to 1", *req.Limit)
		}
		if *req.Limit > maxListTagsLimit {
			return nil, errorf(ErrValidation, "1 validation error detected: Value '%d' at 'limit' failed to satisfy constraint: Member must have value less than or equal to %d", *req.Limit, maxListTagsLimit)
		}
		limit = *req.Limit
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.lookupStream(req.streamRef, true)
	if err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(st.settings.tags))
	for k := range st.settings.tags {
		if req.ExclusiveStartTagKey == "" || k > req.ExclusiveStartTagKey {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	more := len(keys) > limit
	if more {
		keys = keys[:limit]
	}
	out := make([]map[string]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, map[string]string{"Key": k, "Value": st.settings.tags[k]})
	}
	return map[string]any{"Tags": out, "HasMoreTags": more}, nil
}

func (s *Server) removeTagsFromStream(body []byte) (any, *apiError) {
	var req struct {
		streamRef
		TagKeys []string `json:"TagKeys"`
	}
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	if req.TagKeys == nil {
		return nil, errorf(ErrValidation, "1 validation error detected: Value null at 'tagKeys' failed to satisfy constraint: Member must not be null")
	}
	if n := len(req.TagKeys); n < 1 || n > maxTagsPerResource {
		return nil, errorf(ErrValidation, "1 validation error detected: Value '[%s]' at 'tagKeys' failed to satisfy constraint: Member must have length less than or equal to %d, Member must have length greater than or equal to 1", strings.Join(req.TagKeys, ", "), maxTagsPerResource)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.notCreating(req.streamRef)
	if err != nil {
		return nil, err
	}
	for _, k := range req.TagKeys {
		delete(st.settings.tags, k)
	}
	return struct{}{}, nil
}

// StreamTags returns a stream's tags (Go API, for tests).
func (s *Server) StreamTags(name string) (map[string]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.lookupStream(streamRef{StreamName: name}, false)
	if err != nil {
		return nil, err
	}
	return maps.Clone(st.settings.tags), nil
}

// ConsumerTags returns the tags a consumer was registered with (Go API, for
// tests; AWS reads them with ListTagsForResource, which the emulator does not
// serve).
func (s *Server) ConsumerTags(consumerARN string) (map[string]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, c, err := s.lookupConsumer(consumerRef{ConsumerARN: consumerARN})
	if err != nil {
		return nil, err
	}
	return maps.Clone(c.tags), nil
}
