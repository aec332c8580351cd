package subscriber

import "errors"

// ErrObjectMismatch is returned when the object behind a reference does not
// have the size or SHA-256 digest the reference says.
var ErrObjectMismatch = errors.New("the object does not match its reference")
