package checkpoint

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func newFileStore(t *testing.T) (*FileStore, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "state", "checkpoints")
	s, err := NewFileStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, dir
}

func TestNewFileStore_CreatesDir(t *testing.T) {
	t.Parallel()
	s, dir := newFileStore(t)
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !fi.IsDir() || fi.Mode().Perm()&0o007 != 0 {
		t.Fatalf("dir mode = %v, want a directory closed to others (0750)", fi.Mode())
	}
	if got, want := s.Dir(), dir; got != want {
		t.Fatalf("Dir() = %q, want %q", got, want)
	}

	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := NewFileStore(file); err == nil {
		t.Fatal("NewFileStore(a file) = nil error")
	}
	if _, err := NewFileStore(""); err == nil {
		t.Fatal(`NewFileStore("") = nil error`)
	}
}

func TestFileStore_Layout(t *testing.T) {
	t.Parallel()
	s, dir := newFileStore(t)
	ctx := context.Background()
	if err := s.Put(ctx, "orders", "fanoutd", "shardId-000000000003", Checkpoint{SequenceNumber: "42", UpdatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "orders", "fanoutd", "shardId-000000000003.json")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	want := map[string]any{
		"version":         1.0,
		"stream":          "orders",
		"consumer":        "fanoutd",
		"shard_id":        "shardId-000000000003",
		"sequence_number": "42",
		"shard_ended":     false,
		"updated_at":      "2024-01-02T15:04:05.123456789Z",
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: %s = %v, want %v", path, k, got[k], w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%s has keys %v, want %v", path, got, want)
	}
}

func TestFileStore_Reopen(t *testing.T) {
	t.Parallel()
	s, dir := newFileStore(t)
	ctx := context.Background()
	if err := s.Put(ctx, "orders", "fanoutd", "shardId-1", Checkpoint{SequenceNumber: "7", UpdatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s2, err := NewFileStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	got, ok, err := s2.Get(ctx, "orders", "fanoutd", "shardId-1")
	if err != nil || !ok || got.SequenceNumber != "7" {
		t.Fatalf("Get after reopen = %+v, %v, %v", got, ok, err)
	}
}

// TestFileStore_NoTempFiles checks that Puts leave only checkpoint files.
func TestFileStore_NoTempFiles(t *testing.T) {
	t.Parallel()
	s, dir := newFileStore(t)
	ctx := context.Background()
	for i := range 20 {
		shard := []string{"shardId-0", "shardId-1"}[i%2]
		if err := s.Put(ctx, "orders", "fanoutd", shard, Checkpoint{SequenceNumber: strings.Repeat("9", i+1)}); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := listFiles(t, dir), []string{".lock", "orders/fanoutd/shardId-0.json", "orders/fanoutd/shardId-1.json"}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("files = %q, want %q", got, want)
	}
}

// TestFileStore_FailedPutCleansUp makes the rename fail (a directory stands
// where the file goes): the error names the file and no temp file remains.
func TestFileStore_FailedPutCleansUp(t *testing.T) {
	t.Parallel()
	s, dir := newFileStore(t)
	ctx := context.Background()
	target := filepath.Join(dir, "orders", "fanoutd", "shardId-0.json")
	if err := os.MkdirAll(filepath.Join(target, "x"), 0o750); err != nil {
		t.Fatal(err)
	}
	err := s.Put(ctx, "orders", "fanoutd", "shardId-0", Checkpoint{SequenceNumber: "1"})
	if err == nil || !strings.Contains(err.Error(), target) {
		t.Fatalf("Put = %v, want an error naming %s", err, target)
	}
	for _, f := range listFiles(t, dir) {
		if strings.HasSuffix(f, ".tmp") {
			t.Fatalf("temp file left behind: %s", f)
		}
	}
}

func listFiles(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(dir, path)
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestFileStore_Corrupt checks that a bad file is an error naming it, from
// Get and from List, and never a panic or a silent restart.
func TestFileStore_Corrupt(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, content, why string
	}{
		{"torn", `{"version":1,"stream":"orders","consum`, "unexpected end of JSON input"},
		{"empty", ``, "unexpected end of JSON input"},
		{"garbage", "\x00\x01\x02", "invalid character"},
		{"wrong type", `{"version":"1"}`, "cannot unmarshal"},
		{"version", `{"version":3,"stream":"orders","consumer":"fanoutd","shard_id":"shardId-0","sequence_number":"1"}`, "version 3, want 1 or 2"},
		{"aggregate without version 2", `{"version":1,"stream":"orders","consumer":"fanoutd","shard_id":"shardId-0","sequence_number":"1","sub_sequence_number":3,"in_aggregate":true}`, "version 1 with in_aggregate true"},
		{"moved", `{"version":1,"stream":"payments","consumer":"fanoutd","shard_id":"shardId-0","sequence_number":"1"}`, `it is for stream "payments", consumer "fanoutd", shard "shardId-0"`},
		{"no sequence", `{"version":1,"stream":"orders","consumer":"fanoutd","shard_id":"shardId-0"}`, "no sequence number"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, dir := newFileStore(t)
			ctx := context.Background()
			path := filepath.Join(dir, "orders", "fanoutd", "shardId-0.json")
			if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(tc.content), 0o640); err != nil {
				t.Fatal(err)
			}
			_, _, err := s.Get(ctx, "orders", "fanoutd", "shardId-0")
			if err == nil {
				t.Fatal("Get(corrupt) = nil error")
			}
			prefix := "corrupt checkpoint file " + path + ": "
			if !strings.HasPrefix(err.Error(), prefix) || !strings.Contains(err.Error(), tc.why) {
				t.Fatalf("Get error = %q, want %q...%q", err, prefix, tc.why)
			}
			if _, err := s.List(ctx, "orders", "fanoutd"); err == nil || !strings.HasPrefix(err.Error(), prefix) {
				t.Fatalf("List error = %v, want %q...", err, prefix)
			}
			// A Put replaces the bad file.
			if err := s.Put(ctx, "orders", "fanoutd", "shardId-0", Checkpoint{SequenceNumber: "5"}); err != nil {
				t.Fatal(err)
			}
			if got, _, err := s.Get(ctx, "orders", "fanoutd", "shardId-0"); err != nil || got.SequenceNumber != "5" {
				t.Fatalf("Get after Put = %+v, %v", got, err)
			}
		})
	}
}

// TestFileStore_ListIgnoresOtherFiles: leftover temp files from a crash,
// subdirectories and stray files are not checkpoints.
func TestFileStore_ListIgnoresOtherFiles(t *testing.T) {
	t.Parallel()
	s, dir := newFileStore(t)
	ctx := context.Background()
	if err := s.Put(ctx, "orders", "fanoutd", "shardId-0", Checkpoint{SequenceNumber: "1"}); err != nil {
		t.Fatal(err)
	}
	cdir := filepath.Join(dir, "orders", "fanoutd")
	for _, name := range []string{"shardId-1.json.123456.tmp", "README", "bad name.json"} {
		if err := os.WriteFile(filepath.Join(cdir, name), []byte("junk"), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(cdir, "shardId-2.json"), 0o750); err != nil {
		t.Fatal(err)
	}
	got, err := s.List(ctx, "orders", "fanoutd")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := got["shardId-0"]; !ok || len(got) != 1 {
		t.Fatalf("List = %v, want only shardId-0", got)
	}
}

// TestFileStore_Lock: a second store on the same directory fails and names
// the holder's PID; once the first closes, the directory is free again.
func TestFileStore_Lock(t *testing.T) {
	t.Parallel()
	s, dir := newFileStore(t)
	_, err := NewFileStore(dir)
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second NewFileStore = %v, want ErrLocked", err)
	}
	want := fmt.Sprintf("checkpoint dir %s is in use by another fanoutd (pid %d): stop it, or give this one another checkpoint.dir", dir, os.Getpid())
	if got := err.Error(); got != want {
		t.Fatalf("error = %q, want %q", got, want)
	}
	data, err := os.ReadFile(filepath.Join(dir, ".lock"))
	if err != nil || strings.TrimSpace(string(data)) != strconv.Itoa(os.Getpid()) {
		t.Fatalf(".lock = %q, %v, want this PID", data, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := NewFileStore(dir)
	if err != nil {
		t.Fatalf("NewFileStore after Close = %v", err)
	}
	s2.Close()
}

// TestFileStore_RemovesLeftoverTempFiles: the temp files of Puts a crash
// interrupted are removed at start; checkpoints and other files stay.
func TestFileStore_RemovesLeftoverTempFiles(t *testing.T) {
	t.Parallel()
	s, dir := newFileStore(t)
	ctx := context.Background()
	if err := s.Put(ctx, "orders", "fanoutd", "shardId-0", Checkpoint{SequenceNumber: "1"}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	cdir := filepath.Join(dir, "orders", "fanoutd")
	for _, name := range []string{"shardId-0.json.123456.tmp", "shardId-1.json.99.tmp", "README"} {
		if err := os.WriteFile(filepath.Join(cdir, name), []byte("junk"), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	s2, err := NewFileStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if got, want := strings.Join(listFiles(t, dir), " "), ".lock orders/fanoutd/README orders/fanoutd/shardId-0.json"; got != want {
		t.Fatalf("files = %q, want %q", got, want)
	}
}

// TestFileStore_ReadsFilesWithoutSubSequence checks that a checkpoint file
// without the sub-sequence fields reads as a position after its sequence
// number.
func TestFileStore_ReadsFilesWithoutSubSequence(t *testing.T) {
	t.Parallel()
	s, dir := newFileStore(t)
	path := filepath.Join(dir, "orders", "fanoutd", "shardId-000000000003.json")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	old := `{"version":1,"stream":"orders","consumer":"fanoutd","shard_id":"shardId-000000000003","sequence_number":"42","shard_ended":false,"updated_at":"2024-01-02T15:04:05.123456789Z"}`
	if err := os.WriteFile(path, []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	got, ok, err := s.Get(context.Background(), "orders", "fanoutd", "shardId-000000000003")
	if err != nil || !ok || got.SequenceNumber != "42" || got.InAggregate || got.SubSequenceNumber != 0 || !got.UpdatedAt.Equal(t0) {
		t.Fatalf("Get = %+v, %v, %v", got, ok, err)
	}
}

// A checkpoint inside an aggregate is written as version 2: a binary that
// does not know sub-sequences stops on it rather than resuming after the
// whole aggregate.
func TestFileStore_AggregateCheckpointIsVersion2(t *testing.T) {
	t.Parallel()
	s, dir := newFileStore(t)
	ctx := context.Background()
	for _, cp := range []Checkpoint{{SequenceNumber: "42"}, {SequenceNumber: "43", SubSequenceNumber: 7, InAggregate: true}} {
		if err := s.Put(ctx, "orders", "fanoutd", "shardId-1", cp); err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(filepath.Join(dir, "orders", "fanoutd", "shardId-1.json"))
		if err != nil {
			t.Fatal(err)
		}
		want := `"version":1,`
		if cp.InAggregate {
			want = `"version":2,`
		}
		if !strings.Contains(string(data), want) {
			t.Fatalf("%+v written as %s, want %s", cp, data, want)
		}
		if got, ok, err := s.Get(ctx, "orders", "fanoutd", "shardId-1"); err != nil || !ok || got.SequenceNumber != cp.SequenceNumber || got.InAggregate != cp.InAggregate || got.SubSequenceNumber != cp.SubSequenceNumber {
			t.Fatalf("Get = %+v %v %v, want %+v", got, ok, err, cp)
		}
	}
}
