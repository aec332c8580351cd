package checkpoint

import (
	"errors"
	"fmt"
)

var (
	// ErrClosed is returned by calls on a closed Store.
	ErrClosed = errors.New("checkpoint store closed")
	// ErrInvalidKey is returned for a stream, consumer or shard ID that is
	// not a Kinesis name; the FileStore uses them as file names.
	ErrInvalidKey = errors.New("invalid checkpoint key")
	// ErrFenced is returned by a shared store's Put when the checkpoint
	// was written by someone else since this store last read or wrote it:
	// another instance took the shard over, and this one must stop
	// reading it.
	ErrFenced = errors.New("checkpoint was written by another instance since this one last saw it")
	// ErrEmptyCheckpoint is returned by Put for a checkpoint with no
	// sequence number that does not end the shard: it would mean nothing.
	ErrEmptyCheckpoint = errors.New("checkpoint has no sequence number and does not end the shard")
)

// LockedError is returned by NewFileStore when another process holds the
// directory.
type LockedError struct {
	Dir string
	// Holder names the other process: "pid N", as its lock file says.
	Holder string
}

func (e *LockedError) Error() string {
	return fmt.Sprintf("checkpoint dir %s is in use by another fanoutd (%s): stop it, or give this one another checkpoint.dir", e.Dir, e.Holder)
}

// Is makes errors.Is(err, ErrLocked) true for a *LockedError.
func (e *LockedError) Is(target error) bool { return target == ErrLocked }

// ErrLocked matches a *LockedError with errors.Is.
var ErrLocked = errors.New("checkpoint dir locked by another process")
