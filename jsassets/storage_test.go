package jsassets_test

import (
	"testing"

	"github.com/fanoutd/fanoutd/jsassets"
)

func TestParseStorage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want jsassets.Storage
		err  string
	}{
		{"file", jsassets.FileStorage, ""},
		{"memory", jsassets.MemoryStorage, ""},
		{"", jsassets.FileStorage, `must be one of file, memory (got "")`},
		{"File", jsassets.FileStorage, `must be one of file, memory (got "File")`},
		{"disk", jsassets.FileStorage, `must be one of file, memory (got "disk")`},
	} {
		got, err := jsassets.ParseStorage(tc.in)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("ParseStorage(%q): %v, want %s", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want || got.String() != tc.in {
			t.Errorf("ParseStorage(%q) = %v, %v", tc.in, got, err)
		}
	}
}

// Explicit replicas are taken as they are; auto is 1 on a single server
// (a cluster of three gets 3: see TestEnsureWhileOthersCreateTheSame).
func TestReplicasCount(t *testing.T) {
	t.Parallel()
	nc := connect(t, false)
	for r, want := range map[jsassets.Replicas]int{jsassets.AutoReplicas: 1, 1: 1, 3: 3, 5: 5} {
		if got := r.Count(nc); got != want {
			t.Errorf("Replicas(%d).Count = %d, want %d", r, got, want)
		}
	}
}
