package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
)

// checkJSONLog checks that every line of a daemon's output is one JSON
// object whose keys each appear once (json.Unmarshal into a map would hide a
// duplicate: the decoder's tokens show it). Lines starting with
// "fanoutd: " are main's final error, printed as text on purpose.
func checkJSONLog(t *testing.T, out string) {
	t.Helper()
	for i, line := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		if strings.HasPrefix(line, "fanoutd: ") {
			continue
		}
		if err := uniqueKeysObject(line); err != nil {
			t.Fatalf("log line %d is not a JSON object with unique keys: %v\n%s", i+1, err, line)
		}
	}
}

// uniqueKeysObject parses s as exactly one JSON object, failing on a key
// that appears twice in any object.
func uniqueKeysObject(s string) error {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return fmt.Errorf("starts with %v, not an object", tok)
	}
	if err := walkObject(dec); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("text after the object")
	}
	if rest, _ := io.ReadAll(dec.Buffered()); len(bytes.TrimSpace(rest)) > 0 {
		return fmt.Errorf("text after the object: %q", rest)
	}
	return nil
}

// walkObject reads an object's members after its '{', through its '}'.
func walkObject(dec *json.Decoder) error {
	seen := map[string]bool{}
	for {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		if d, ok := tok.(json.Delim); ok && d == '}' {
			return nil
		}
		key, ok := tok.(string)
		if !ok {
			return fmt.Errorf("key %v is not a string", tok)
		}
		if seen[key] {
			return fmt.Errorf("key %q appears twice", key)
		}
		seen[key] = true
		if err := walkValue(dec); err != nil {
			return err
		}
	}
}

func walkValue(dec *json.Decoder) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch tok {
	case json.Delim('{'):
		return walkObject(dec)
	case json.Delim('['):
		for dec.More() {
			if err := walkValue(dec); err != nil {
				return err
			}
		}
		_, err := dec.Token() // ']'
		return err
	}
	return nil
}

func TestUniqueKeysObject(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{`{"a":1,"b":{"a":2},"c":[{"a":1},{"a":2}]}`, true},
		{`{"component":"nats","component":"nats"}`, false},
		{`{"a":{"b":1,"b":2}}`, false},
		{`{"a":[{"b":1,"b":2}]}`, false},
		{`SDK 2026/12/07 10:00:00 WARN falling back to IMDSv1`, false},
		{`{"a":1} {"b":2}`, false},
		{`[1]`, false},
	} {
		if err := uniqueKeysObject(tc.in); (err == nil) != tc.ok {
			t.Errorf("uniqueKeysObject(%s) = %v, want ok=%v", tc.in, err, tc.ok)
		}
	}
}
