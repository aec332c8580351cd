package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"

	"go.yaml.in/yaml/v3"
)

// Load reads the config file at path, expands ${VAR} from the environment,
// decodes it strictly, applies defaults and validates it. Problems are
// returned as a *ValidationError whose lines start with path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	cfg, err := LoadBytes(data, os.LookupEnv)
	if err != nil {
		if ve, ok := errors.AsType[*ValidationError](err); ok {
			ve.File = path
			return nil, ve
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// LoadBytes is Load for a config already in memory; lookup resolves ${VAR}
// (os.LookupEnv when nil).
//
// Decoding goes in three steps over a yaml.Node tree rather than one
// Decoder.Decode with KnownFields(true), to report problems by key path:
// expand variables in scalar values, check the tree's shape against the
// types (unknown and duplicate keys, wrong kinds, bad values), then decode.
func LoadBytes(data []byte, lookup func(string) (string, bool)) (*Config, error) {
	if lookup == nil {
		lookup = os.LookupEnv
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	for {
		// A trailing "---" opens an empty document: harmless.
		var extra yaml.Node
		err := dec.Decode(&extra)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if len(extra.Content) > 0 && !isNull(extra.Content[0]) {
			return nil, &ValidationError{Problems: []Problem{{
				Message: fmt.Sprintf("a second YAML document starts on line %d; the config is one document", extra.Line),
			}}}
		}
	}

	cfg := Default()
	if len(doc.Content) > 0 {
		var probs []Problem
		expandEnv(&doc, "", lookup, &probs)
		if len(probs) > 0 {
			return nil, &ValidationError{Problems: probs}
		}
		var c shapeChecker
		c.check("", doc.Content[0], reflect.TypeFor[Config]())
		if len(c.probs) > 0 {
			return nil, &ValidationError{Problems: c.probs}
		}
		if err := doc.Decode(cfg); err != nil {
			return nil, fmt.Errorf("decode config: %w", err)
		}
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}
