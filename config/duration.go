package config

import (
	"fmt"
	"regexp"
	"time"

	"go.yaml.in/yaml/v3"
)

// Duration is a time.Duration written in YAML as a Go duration string
// ("1.5s", "2m"). Bare numbers are rejected: "60" is ambiguous (seconds?
// nanoseconds, as Go counts?); the error says to add a unit.
type Duration time.Duration

// bareNumber is a duration written without its unit.
var bareNumber = regexp.MustCompile(`^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)$`)

// String formats d like time.Duration.
func (d Duration) String() string { return time.Duration(d).String() }

// UnmarshalYAML parses a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("expected a duration such as \"10s\", got %s", kindName(n))
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil && bareNumber.MatchString(n.Value) {
		return fmt.Errorf("%q: add a unit, e.g. %ss", n.Value, n.Value)
	}
	if err != nil {
		return fmt.Errorf("invalid duration %q: write a number with a unit, e.g. 10s, 1m30s or 250ms", n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes d back as a duration string.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }
