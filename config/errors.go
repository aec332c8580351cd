package config

import "strings"

// Problem is one thing wrong with a config, at a key path such as
// "streams[1].start_position" ("" for the file as a whole).
type Problem struct {
	Path    string
	Message string
}

func (p Problem) String() string {
	if p.Path == "" {
		return p.Message
	}
	return p.Path + ": " + p.Message
}

// ValidationError lists every problem found, so that an operator fixes them
// all in one edit: environment and structural problems (unknown keys, wrong
// kinds) in document order, then bad values and unreadable files in the
// order of the file's sections. Load returns it for structural,
// environment and validation problems alike; a YAML syntax error or an
// unreadable file is a plain error.
type ValidationError struct {
	// File, when set by Load, prefixes every line.
	File     string
	Problems []Problem
}

// Error returns one line per problem.
func (e *ValidationError) Error() string {
	var b strings.Builder
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteByte('\n')
		}
		if e.File != "" {
			b.WriteString(e.File)
			b.WriteString(": ")
		}
		b.WriteString(p.String())
	}
	return b.String()
}
