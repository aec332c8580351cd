package relay

import (
	"slices"
	"strings"
)

// FilterSubject is the subject filter that captures every subject t
// renders: each token with a placeholder becomes '*' (a placeholder always
// renders within one token).
func (t *SubjectTemplate) FilterSubject() string {
	var tokens []string
	var tok strings.Builder
	wild := false
	end := func() {
		if wild {
			tokens = append(tokens, "*")
		} else {
			tokens = append(tokens, tok.String())
		}
		tok.Reset()
		wild = false
	}
	for _, p := range t.parts {
		if p.kind != partLiteral {
			wild = true
			continue
		}
		lit := p.literal
		for {
			i := strings.IndexByte(lit, '.')
			if i < 0 {
				tok.WriteString(lit)
				break
			}
			tok.WriteString(lit[:i])
			end()
			lit = lit[i+1:]
		}
	}
	end()
	return strings.Join(tokens, ".")
}

// Tokens is how many tokens every subject t renders has.
func (t *SubjectTemplate) Tokens() int { return strings.Count(t.FilterSubject(), ".") + 1 }

// SampleSubjects renders each template with sample values: subjects to
// check that a JetStream stream captures what the templates render.
func SampleSubjects(templates map[string]*SubjectTemplate, consumer func(stream string) string) []string {
	var out []string
	for stream, t := range templates {
		out = append(out, string(t.Render(nil, SubjectValues{Stream: stream, Shard: "shardId-000000000000", PartitionKey: "key", Consumer: consumer(stream)})))
	}
	slices.Sort(out)
	return out
}
