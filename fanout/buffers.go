package fanout

import "unsafe"

// keepBytes is how much of a reused buffer is always kept.
const keepBytes = 1 << 20

// shrinkAfter is how many events in a row must need under a quarter of a
// reused buffer larger than keepBytes before it is dropped.
const shrinkAfter = 8

// bufferUse follows how much of one reused buffer recent events needed, so
// that a subscription's buffers follow its events' sizes down as well as
// up: one outsized event (a 10 MiB record) does not pin its buffers for the
// subscription's life, while a shard whose events are all large keeps them.
type bufferUse struct{ small int }

// fit returns s to reuse for the next event, given that this event needed
// used elements of it: s itself, or nil once shrinkAfter events in a row
// needed under a quarter of a buffer larger than keepBytes.
func fit[T any](u *bufferUse, s []T, used int) []T {
	var zero T
	if cap(s)*int(unsafe.Sizeof(zero)) <= keepBytes || used*4 > cap(s) {
		u.small = 0
		return s
	}
	if u.small++; u.small < shrinkAfter {
		return s
	}
	u.small = 0
	return nil
}
