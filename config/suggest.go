package config

import (
	"slices"

	"github.com/agnivade/levenshtein"
)

// closestKey is the known key nearest to key by edit distance, or "" when
// none is close enough to be the one meant: at most 2 edits, and at most a
// third of the known key's length (so that short keys suggest only on a
// one-letter slip). Ties go to the first in alphabetical order.
func closestKey(key string, known []string) string {
	best, bestD := "", 3
	for _, k := range slices.Sorted(slices.Values(known)) {
		d := levenshtein.ComputeDistance(key, k)
		if d < bestD && 3*d <= len(k) {
			best, bestD = k, d
		}
	}
	return best
}
