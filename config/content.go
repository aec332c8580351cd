package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/dustin/go-humanize"
	"go.yaml.in/yaml/v3"

	"github.com/fanoutd/fanoutd/pattern"
	"github.com/fanoutd/fanoutd/payload"
	"github.com/fanoutd/fanoutd/relay"
)

// ByteSize is a number of bytes, written in YAML as an integer or with a
// unit: "64MiB", "512KiB", "1GiB" (powers of 1024) or "64MB" (of 1000).
type ByteSize int64

// UnmarshalYAML parses a size.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("expected a size such as \"64MiB\", got %s", kindName(n))
	}
	v, err := humanize.ParseBytes(n.Value)
	if err != nil || v > 1<<62 {
		return fmt.Errorf("invalid size %q: write bytes, or a number with a unit such as 64MiB or 512KiB", n.Value)
	}
	*b = ByteSize(v)
	return nil
}

// MarshalYAML writes b back in IEC units.
func (b ByteSize) MarshalYAML() (any, error) {
	return strings.ReplaceAll(humanize.IBytes(uint64(b)), " ", ""), nil
}

// String formats b in IEC units ("64 MiB").
func (b ByteSize) String() string { return humanize.IBytes(uint64(b)) }

// FilterPattern is one filter pattern: the JSON text of a Lambda
// FilterCriteria pattern. YAML may give it as a string holding the JSON
// ('{"data": {"type": ["a"]}}') or as a mapping, which becomes its JSON.
type FilterPattern string

// UnmarshalYAML takes a string as it is and a mapping as its JSON.
func (f *FilterPattern) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		*f = FilterPattern(n.Value)
		return nil
	case yaml.MappingNode:
		var v any
		if err := n.Decode(&v); err != nil {
			return err
		}
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("a filter pattern must be JSON: %v", err)
		}
		*f = FilterPattern(b)
		return nil
	}
	return fmt.Errorf("expected a filter pattern (a JSON object, as a string or a mapping), got %s", kindName(n))
}

// MaxDecompressedLimit bounds max_decompressed: each shard may hold that
// much decompressed data.
const MaxDecompressedLimit = 1 << 30

// validateContent checks the keys that read a record's data: the subject's
// fallback token, the filter patterns and the payload decoding.
func (s StreamConfig) validateContent(p string, tmpl *relay.SubjectTemplate, ps *problems) {
	if tmpl != nil {
		if _, err := tmpl.WithFallback(s.SubjectFallback); err != nil {
			ps.add(p+".subject_fallback", "%v", err)
		}
		if tmpl.UsesLogs() && s.Payload != payload.CloudWatchLogs {
			ps.add(p+".subject", "{log_group} and {log_stream} need payload: %s (got payload: %s)", payload.CloudWatchLogs, s.Payload)
		}
	}
	_, errs := s.ParseFilter()
	for _, err := range errs {
		var pe *pattern.ParseError
		if errors.As(err, &pe) {
			ps.add(joinIndex(p+".filter", pe.Index), "%v", pe.Err)
		} else {
			ps.add(p+".filter", "%v", err)
		}
	}
	if !slices.Contains(payload.Kinds, s.Payload) {
		ps.add(p+".payload", "must be one of %s (got %q)", oneOf(payload.Kinds), s.Payload)
	}
	if s.MaxDecompressed <= 0 || s.MaxDecompressed > MaxDecompressedLimit {
		ps.add(p+".max_decompressed", "must be between 1 and %s (got %d)", ByteSize(MaxDecompressedLimit), int64(s.MaxDecompressed))
	}
}

// ParseFilter parses the stream's filter patterns; errs holds one
// *pattern.ParseError per invalid pattern.
func (s StreamConfig) ParseFilter() (pattern.Filter, []error) {
	srcs := make([]string, len(s.Filter))
	for i, f := range s.Filter {
		srcs[i] = string(f)
	}
	return pattern.ParseFilter(srcs)
}

// WithoutRoute is s with the keys of its route (see Route) cleared: two
// stream configs equal but for those change without a restart.
func (s StreamConfig) WithoutRoute() StreamConfig {
	s.Subject, s.SubjectFallback, s.Filter, s.Payload, s.MaxDecompressed = "", "", nil, "", 0
	return s
}

// Route is how the relay publishes the stream's records.
func (s StreamConfig) Route() (*relay.Route, error) {
	t, err := relay.ParseSubjectTemplate(s.Subject)
	if err != nil {
		return nil, fmt.Errorf("subject: %w", err)
	}
	if t, err = t.WithFallback(s.SubjectFallback); err != nil {
		return nil, fmt.Errorf("subject_fallback: %w", err)
	}
	f, errs := s.ParseFilter()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &relay.Route{Subject: t, Filter: f, Payload: s.Payload, MaxDecompressed: int64(s.MaxDecompressed)}, nil
}
