// Package pattern is a stub until the real package lands.
package pattern

import "time"

type Input struct {
	Data           []byte
	JSON           bool
	PartitionKey   string
	SequenceNumber string
	ArrivalTime    time.Time
}
type Pattern struct{ src string }

func Parse(src string) (*Pattern, error)    { return &Pattern{src}, nil }
func (p *Pattern) Match(in *Input) bool     { return true }
func (p *Pattern) String() string           { return p.src }

type Filter []*Pattern

func ParseFilter(srcs []string) (Filter, []error) { return nil, nil }
func (f Filter) Match(in *Input) bool            { return true }
func (f Filter) UsesData() bool                  { return true }
