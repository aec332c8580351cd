package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strconv"

	"go.yaml.in/yaml/v3"
)

// yamlLine is how yaml.v3 starts a syntax error; the line is left out
// when yaml.v3 counts it as 0.
var yamlLine = regexp.MustCompile(`^yaml: (?:line (\d+): )?`)

// maxLocate bounds the file whose syntax error is located again.
const maxLocate = 1 << 20

// syntaxError is err, a syntax error in data, naming the line at fault.
// yaml.v3 names instead, when there is one, the line where the block that
// holds the problem starts (and counts it from 0): "line 1" for a bad
// indent on line 3, and no line for a problem on line 1. The line at fault is the first whose prefix of data
// fails with the same message: a prefix that ends before it parses, or
// fails otherwise (cut short), and every longer one meets the same error.
// yaml.v3's line is never after it, so the search starts there.
func syntaxError(data []byte, err error) error {
	m := yamlLine.FindStringSubmatch(err.Error())
	if m == nil || len(data) > maxLocate {
		return err
	}
	msg := err.Error()[len(m[0]):]
	var ends []int // ends[i]: the length of the prefix of lines 1 to i+1
	for i, b := range data {
		if b == '\n' {
			ends = append(ends, i+1)
		}
	}
	if len(ends) == 0 || ends[len(ends)-1] != len(data) {
		ends = append(ends, len(data))
	}
	from, _ := strconv.Atoi(m[1])
	from = min(max(from, 1), len(ends))
	fails := func(line int) bool {
		perr := parseDocuments(data[:ends[line-1]])
		return perr != nil && yamlLine.ReplaceAllString(perr.Error(), "") == msg
	}
	line := from + sort.Search(len(ends)-from+1, func(i int) bool { return fails(from + i) })
	if line > len(ends) {
		return err
	}
	return fmt.Errorf("yaml: line %d: %s", line, msg)
}

// parseDocuments parses every YAML document in data and returns the first
// syntax error.
func parseDocuments(data []byte) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var n yaml.Node
		if err := dec.Decode(&n); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return err
		}
	}
}
