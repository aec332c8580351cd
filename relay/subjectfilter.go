package relay

import (
	"slices"
	"strings"
)

// FilterSubject is the subject filter that captures every subject t
// renders: each token with a placeholder becomes '*' (a placeholder always
// renders within one token).
func (t *SubjectTemplate) FilterSubject() string {
	tokens := strings.Split(t.src, ".")
	for i, tok := range tokens {
		if strings.Contains(tok, "{") {
			tokens[i] = "*"
		}
	}
	return strings.Join(tokens, ".")
}

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
