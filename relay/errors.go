package relay

import "errors"

// ErrNotConnected is returned by Handle while the NATS connection is not
// up (reconnecting, or closed). Messages published then would only sit in
// nats.go's reconnect buffer, which is no delivery; the batch is failed so
// that the shard retries it from its checkpoint.
var ErrNotConnected = errors.New("NATS connection is not connected")

// errNotAttempted marks JetStream messages a round did not publish, because
// an earlier one could not be published and publishing later ones first
// would store them out of order.
var errNotAttempted = errors.New("not published: an earlier message of the batch failed")

// PermanentError is a Connect failure that retrying cannot cure (the
// server refused the credentials, TLS did not verify, a file is missing or
// unreadable): the configuration, the files or the server's authorization
// must change first.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// ErrDeadLetterFromData: a dead-letter subject can't take the record's data
// or log fields, which may be what could not be decoded.
var ErrDeadLetterFromData = errors.New("{data.PATH}, {log_group} and {log_stream} are not allowed here: a dead letter stands for a record whose data may not decode; use {stream}, {shard}, {partition_key} or {consumer}")
