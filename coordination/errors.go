package coordination

import "errors"

// Errors a Lease ends with.
var (
	// ErrLeaseLost: the lease could not be renewed in time, or another
	// instance holds it now. Stop reading at once.
	ErrLeaseLost = errors.New("lease lost")
	// ErrHandoff: this instance holds more than its share; finish the
	// batch in flight, write the final checkpoint, then Release.
	ErrHandoff = errors.New("lease handed over to rebalance the group")
)

// ErrInstanceInUse: another live process holds this instance's name in the
// group. Join returns it (wrapped); no restart can cure it.
var ErrInstanceInUse = errors.New("instance name in use by another live process")

// errTakenInNewBucket: another instance wrote a lease into the recreated
// bucket before this one could.
var errTakenInNewBucket = errors.New("another instance took the lease in the recreated coordination bucket")
