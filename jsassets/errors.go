package jsassets

import (
	"errors"
	"fmt"
	"strings"
)

// ErrJetStreamPermission marks a JetStream API call the NATS server refused
// for the connection's permissions: no retry cures it, the operator must
// grant the permission (or create the asset themselves).
var ErrJetStreamPermission = errors.New("no permission for the JetStream API")

// ErrNoJetStream marks a NATS server (or account) without JetStream: it
// has no Object Store either.
var ErrNoJetStream = errors.New("the NATS server has no JetStream")

// ErrBucketMissing marks a bucket that does not exist, from a call asked
// not to create it (ObjectStoreSpec.OpenOnly).
var ErrBucketMissing = errors.New("the bucket does not exist")

// NotCapturedError is CheckCapture's error: no JetStream stream captures
// Subjects.
type NotCapturedError struct{ Subjects []string }

func (e *NotCapturedError) Error() string {
	return fmt.Sprintf("no JetStream stream captures %s: records published there could never be confirmed. "+
		"Add the subjects to a stream, or configure nats.stream so that fanoutd creates one", strings.Join(e.Subjects, ", "))
}
