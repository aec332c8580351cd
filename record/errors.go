package record

import "errors"

// ErrNotValid, wrapped in a Handler's error, means the batch's Valid said
// no: the shard is not this instance's to publish now.
var ErrNotValid = errors.New("the shard's lease is not valid (not renewed in time): not publishing until it is renewed")

// ErrStop, wrapped in a Handler's error, means retrying can't help (a
// record the configuration says must not be skipped can't be delivered): the
// stream stops instead of the batch being retried.
var ErrStop = errors.New("handler cannot continue")
