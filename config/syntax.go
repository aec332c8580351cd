package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"

	"go.yaml.in/yaml/v3"
)

// yamlLine is how yaml.v3 starts a syntax error.
var yamlLine = regexp.MustCompile(`^yaml: line (\d+): `)

// maxLocate bounds the file whose syntax error is located again: each line
// tried parses the file up to it.
const maxLocate = 256 << 10

// syntaxError is err, a syntax error in data, naming the line at fault.
// yaml.v3 names instead, when there is one, the line where the block that
// holds the problem starts (and counts it from 0): "line 1" for a bad
// indent on line 3. The line at fault is the first whose prefix of data
// fails with the same message; yaml.v3's line is never after it, so the
// search starts there.
func syntaxError(data []byte, err error) error {
	m := yamlLine.FindStringSubmatch(err.Error())
	if m == nil || len(data) > maxLocate {
		return err
	}
	msg := err.Error()[len(m[0]):]
	from, _ := strconv.Atoi(m[1])
	end := 0
	for line := 1; end < len(data); line++ {
		if i := bytes.IndexByte(data[end:], '\n'); i >= 0 {
			end += i + 1
		} else {
			end = len(data)
		}
		if line < from {
			continue
		}
		if perr := parseDocuments(data[:end]); perr != nil && yamlLine.ReplaceAllString(perr.Error(), "") == msg {
			return fmt.Errorf("yaml: line %d: %s", line, msg)
		}
	}
	return err
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
