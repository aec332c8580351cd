package config

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoadBytes: whatever the bytes, LoadBytes returns a config or an error,
// never panics, and a config it returns is valid.
func FuzzLoadBytes(f *testing.F) {
	for _, dir := range []string{"valid", "invalid"} {
		files, err := filepath.Glob(filepath.Join("testdata", dir, "*.yaml"))
		if err != nil {
			f.Fatal(err)
		}
		for _, file := range files {
			data, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	f.Add([]byte("streams: &a [*a]"))
	f.Add([]byte("aws: &a {<<: *a}"))
	f.Add([]byte("streams: [{<<: [{name: a}, {subject: x}], consumer: c}]\ncheckpoint: {dir: ${D}}"))
	lookup := mapLookup(map[string]string{"D": "/d", "E": "", "T": "true"})
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := LoadBytes(data, lookup)
		if err != nil {
			if cfg != nil {
				t.Fatalf("LoadBytes returned both a config and an error: %v", err)
			}
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("LoadBytes returned a config that fails Validate: %v", err)
		}
	})
}
