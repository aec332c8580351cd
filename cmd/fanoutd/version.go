package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// version is set at build time: -ldflags "-X main.version=v1.2.3".
var version = ""

// Version returns the build's version: the -X value, else the module version
// or VCS revision recorded by the Go toolchain.
func Version() string {
	if version != "" {
		return version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	rev, dirty := "", false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "devel"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "-dirty"
	}
	return "devel-" + rev
}

// VersionCmd prints the version.
type VersionCmd struct{}

// Run prints the version line.
func (VersionCmd) Run(w io.Writer) error {
	_, err := fmt.Fprintln(w, versionLine())
	return err
}

// versionLine is what `fanoutd version` and `fanoutd --version` print.
func versionLine() string {
	return fmt.Sprintf("fanoutd %s (%s, %s/%s)", Version(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
