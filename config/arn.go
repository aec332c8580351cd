package config

import (
	"time"

	"github.com/fanoutd/fanoutd/fanout"
)

// StreamName returns the stream's name: Name, or the name inside ARN.
// It is "" only for a stream that fails Validate.
func (s StreamConfig) StreamName() string {
	if s.Name != "" {
		return s.Name
	}
	a, err := fanout.ParseStreamARN(s.ARN)
	if err != nil {
		return ""
	}
	return a.Stream
}

// Region returns the region inside ARN, or "" when the stream is given by
// name (the client's region, aws.region or the SDK chain, applies).
func (s StreamConfig) Region() string {
	a, err := fanout.ParseStreamARN(s.ARN)
	if err != nil {
		return ""
	}
	return a.Region
}

// StartTime returns StartTimestamp parsed, or the zero time when it is unset
// (or invalid, which Validate reports).
func (s StreamConfig) StartTime() time.Time {
	t, err := time.Parse(time.RFC3339, s.StartTimestamp)
	if err != nil {
		return time.Time{}
	}
	return t
}
