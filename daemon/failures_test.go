package daemon

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/rs/zerolog"

	"github.com/fanoutd/fanoutd/checkpoint"
	"github.com/fanoutd/fanoutd/coordination"
)

func isConfigError(err error) bool {
	var ce *ConfigError
	return errors.As(err, &ce)
}

// A checkpoint directory a restart can't fix exits 2; one a later start may
// find cured (a full disk, an I/O error, a mount not up yet) exits 1.
func TestCheckpointDirFailure(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, notDir := checkpoint.NewFileStore(file) // a real error from the file system
	held, err := checkpoint.NewFileStore(filepath.Join(dir, "held"))
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	_, locked := checkpoint.NewFileStore(filepath.Join(dir, "held"))
	for _, tc := range []struct {
		err       error
		permanent bool
	}{
		{notDir, true},
		{locked, true},
		{&os.PathError{Op: "mkdir", Path: "/x", Err: syscall.EACCES}, true},
		{&os.PathError{Op: "mkdir", Path: "/x", Err: syscall.EROFS}, true},
		{&os.PathError{Op: "open", Path: "/x", Err: syscall.ENOSPC}, false},
		{&os.PathError{Op: "open", Path: "/x", Err: syscall.EIO}, false},
		{&os.PathError{Op: "mkdir", Path: "/x", Err: syscall.ENOENT}, false},
	} {
		if tc.err == nil {
			t.Fatal("no error from NewFileStore on a file")
		}
		got := checkpointDirFailure(tc.err)
		if isConfigError(got) != tc.permanent {
			t.Errorf("%v: ConfigError %t, want %t", tc.err, isConfigError(got), tc.permanent)
		}
	}
}

// A port in use exits 2; an address not (yet) of this host exits 1 (the
// network may bring it up later at boot).
func TestListenFailure(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, inUse := net.Listen("tcp", ln.Addr().String())
	if !isConfigError(listenFailure(inUse)) {
		t.Errorf("%v: not a ConfigError", inUse)
	}
	// 192.0.2.1 (TEST-NET-1) is no address of this machine: listening on it
	// sends nothing anywhere.
	_, notHere := net.Listen("tcp", "192.0.2.1:0")
	if !errors.Is(notHere, syscall.EADDRNOTAVAIL) {
		t.Skipf("listening on 192.0.2.1 gave %v, not EADDRNOTAVAIL", notHere)
	}
	if isConfigError(listenFailure(notHere)) {
		t.Errorf("%v: a ConfigError, want a plain error", notHere)
	}
}

// A second daemon with a live member's coordination.instance fails to start
// with a ConfigError (exit 2) that says what to do.
func TestInstanceNameInUse(t *testing.T) {
	e := newGroupEnv(t, 1)
	e.open("a")
	_, err := Open(t.Context(), e.config("a"), Options{Log: zerolog.Nop(), Version: "test", CABundle: e.emu.CAPEM(),
		Credentials: credentials.NewStaticCredentialsProvider("k", "s", "")})
	if !isConfigError(err) || !errors.Is(err, coordination.ErrInstanceInUse) || !strings.Contains(err.Error(), "unique coordination.instance") {
		t.Fatalf("second daemon named a: %v, want a ConfigError of ErrInstanceInUse saying to give a unique name", err)
	}
}
