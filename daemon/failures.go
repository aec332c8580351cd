package daemon

import (
	"errors"
	"fmt"
	"io/fs"
	"syscall"

	"github.com/aws/smithy-go"

	"github.com/fanoutd/fanoutd/checkpoint"
	"github.com/fanoutd/fanoutd/fanout"
	"github.com/fanoutd/fanoutd/record"
)

// operatorCodes are the AWS error codes that say the credentials or their
// permissions are wrong: the same request after a restart gets the same
// answer.
var operatorCodes = map[string]bool{
	"AccessDeniedException":       true,
	"AccessDenied":                true,
	"UnrecognizedClientException": true,
	"InvalidSignatureException":   true,
	"IncompleteSignature":         true,
	"InvalidClientTokenId":        true,
}

// operatorFailure reports whether a stream's fatal error is one a restart
// meets again, so that only an operator can cure it: the stream does not
// exist, a checkpoint expired under on_expired_checkpoint: fail, a record
// the configured large_records policy stops on, another process writing the
// checkpoints without coordination, or AWS refusing the credentials or the
// permission.
func operatorFailure(err error) bool {
	if errors.Is(err, fanout.ErrStreamNotFound) || errors.Is(err, fanout.ErrExpiredCheckpoint) || errors.Is(err, record.ErrStop) || errors.Is(err, fanout.ErrCheckpointTaken) {
		return true
	}
	var ae smithy.APIError
	return errors.As(err, &ae) && operatorCodes[ae.ErrorCode()]
}

// checkpointDirFailure is err (the checkpoint directory could not be
// used) as a ConfigError when a restart meets it again: another process
// holds the directory, no permission, a read-only file system, a path
// through a file, a name too long. A full disk, an I/O error or a file
// system not mounted yet at boot may be cured by a later start: plain
// errors.
func checkpointDirFailure(err error) error {
	if errors.Is(err, checkpoint.ErrLocked) {
		return &ConfigError{err} // says which process holds it
	}
	err = fmt.Errorf("checkpoint.dir: %w: give fanoutd a writable directory (under systemd, the unit's StateDirectory)", err)
	if errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EROFS) ||
		errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.ENAMETOOLONG) {
		return &ConfigError{err}
	}
	return err
}

// listenFailure is err (http.listen could not be listened on) as a
// ConfigError when a restart meets it again: the port is taken (another
// fanoutd?), privileged, or the address malformed. An address that is not
// (yet) one of this host's may come up later at boot: a plain error.
func listenFailure(err error) error {
	if errors.Is(err, syscall.EADDRNOTAVAIL) {
		return err
	}
	return &ConfigError{err}
}
