package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Load reads the config file at path, expands ${VAR} from the environment,
// decodes it strictly, applies defaults, validates it and checks that the
// files it names can be read. Problems are returned as a *ValidationError
// whose lines start with path: all of them, in one pass.
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
// A node with a problem is taken out of the tree before decoding, so that
// one bad key hides nothing else: the problems come in that order
// (environment, shape), then that of the nats context nats.context names,
// then those of Validate and of the files the config names, without the
// ones that only follow from a value taken out.
func LoadBytes(data []byte, lookup func(string) (string, bool)) (*Config, error) {
	if lookup == nil {
		lookup = os.LookupEnv
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return nil, syntaxError(data, err)
	}
	for {
		// A trailing "---" opens an empty document: harmless.
		var extra yaml.Node
		err := dec.Decode(&extra)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, syntaxError(data, err)
		}
		if len(extra.Content) > 0 && !isNull(extra.Content[0]) {
			return nil, &ValidationError{Problems: []Problem{{
				Message: fmt.Sprintf("a second YAML document starts on line %d; the config is one document", extra.Line),
			}}}
		}
	}

	cfg := Default()
	cfg.Checkpoint.Dir = stateDirectory(lookup)
	var probs []Problem
	var c shapeChecker
	servers := false
	if len(doc.Content) > 0 {
		expandEnv(&doc, "", lookup, &probs)
		for _, p := range probs {
			c.skip = append(c.skip, p.Path)
		}
		if !c.check("", doc.Content[0], reflect.TypeFor[Config]()) {
			c.nulls = append(c.nulls, nullAt{&doc, 0})
		}
		c.fix()
		probs = append(probs, c.probs...)
		if err := doc.Decode(cfg); err != nil {
			if len(probs) > 0 {
				return nil, &ValidationError{Problems: probs} // the cause is among them
			}
			return nil, fmt.Errorf("decode config: %w", err)
		}
		servers = serversSet(&doc)
	}
	if !covers(append(c.skip, c.covered...), "nats.context") {
		var cps problems
		cfg.NATS.applyContext(servers, lookup, &cps)
		probs = append(probs, cps...)
	}
	ps := cfg.problems(true)
	reported := append(c.skip, c.covered...)
	for _, p := range ps {
		if !covers(reported, p.Path) {
			probs = append(probs, p)
		}
	}
	if len(probs) > 0 {
		return nil, &ValidationError{Problems: probs}
	}
	return cfg, nil
}

// stateDirectory is the default checkpoint.dir: $STATE_DIRECTORY, which
// systemd sets for a unit with StateDirectory= (colon-separated when the
// unit names several; the first is fanoutd's), or "".
func stateDirectory(lookup func(string) (string, bool)) string {
	v, _ := lookup("STATE_DIRECTORY")
	first, _, _ := strings.Cut(v, ":")
	return first
}
