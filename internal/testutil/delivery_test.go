package testutil

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// fatalRecorder is a testing.TB whose Fatalf records the message and ends
// the goroutine, as the real one does.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (f *fatalRecorder) Helper() {}

func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func check(t *testing.T, got []string, want map[string]int, mode Mode) (dups int, fatal string) {
	t.Helper()
	var ds []Delivery
	for _, g := range got {
		k, _, _ := strings.Cut(g, ":")
		ds = append(ds, Delivery{PartitionKey: k, Data: []byte(g)})
	}
	f := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		dups = CheckDelivered(f, ds, want, mode)
	}()
	<-done
	return dups, f.msg
}

func TestCheckDelivered(t *testing.T) {
	want := map[string]int{"a": 3, "b": 2}
	for _, tc := range []struct {
		name  string
		got   []string
		mode  Mode
		dups  int
		fatal string
	}{
		{"exactly once, keys interleaved", []string{"a:0", "b:0", "a:1", "b:1", "a:2"}, ExactlyOnce, 0, ""},
		{"duplicate", []string{"a:0", "a:1", "a:1", "a:2", "b:0", "b:1"}, ExactlyOnce, 0, "key a: record 1 again after 1 (duplicate)"},
		{"gap", []string{"a:0", "a:2", "b:0", "b:1"}, ExactlyOnce, 0, "key a: record 2 before 1 (gap or reorder)"},
		{"reorder", []string{"a:1", "a:0", "a:2", "b:0", "b:1"}, ExactlyOnce, 0, "key a: record 1 before 0 (gap or reorder)"},
		{"missing tail", []string{"a:0", "a:1", "b:0", "b:1"}, ExactlyOnce, 0, "key a: 2 of its 3 records arrived (the first missing: 2)"},
		{"unknown key", []string{"c:0"}, ExactlyOnce, 0, `record "c:0": key c was not written`},
		{"beyond what was written", []string{"b:0", "b:1", "b:2"}, AtLeastOnce, 0, `record "b:2": key b had only 2 records written`},
		{"not key:i", []string{"a-0"}, ExactlyOnce, 0, `record "a-0" is not key:i`},
		{"at least once, a replay", []string{"a:0", "a:1", "a:0", "a:1", "a:2", "b:0", "b:1", "b:1"}, AtLeastOnce, 3, ""},
		{"at least once still finds a gap", []string{"a:0", "a:2", "a:1", "b:0", "b:1"}, AtLeastOnce, 0, "key a: record 2 before 1 (gap or reorder)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dups, fatal := check(t, tc.got, want, tc.mode)
			if fatal != tc.fatal || (fatal == "" && dups != tc.dups) {
				t.Fatalf("got %d duplicates, failure %q; want %d, %q", dups, fatal, tc.dups, tc.fatal)
			}
		})
	}
	// A partition key that does not match the data is reported.
	f := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		CheckDelivered(f, []Delivery{{PartitionKey: "b", Data: []byte("a:0")}}, map[string]int{"a": 1}, ExactlyOnce)
	}()
	<-done
	if f.msg != `record "a:0" has partition key "b"` {
		t.Fatalf("got %q", f.msg)
	}
}
