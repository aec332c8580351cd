// Package reuse decides when a buffer reused from event to event is given
// back: the buffers of a shard's reader follow its events' sizes down as
// well as up.
package reuse

import "unsafe"

// KeepBytes is how much of a reused buffer is always kept.
const KeepBytes = 1 << 20

// ShrinkAfter is how many events in a row must need under a quarter of a
// reused buffer larger than KeepBytes before it is dropped.
const ShrinkAfter = 8

// Use follows how much of one reused buffer recent events needed, so that
// one outsized event (a 10 MiB record) does not pin its buffers for a
// reader's life, while a shard whose events are all large keeps them.
type Use struct{ small int }

// Fit returns s to reuse for the next event, given that this event needed
// used elements of it: s itself, or nil once ShrinkAfter events in a row
// needed under a quarter of a buffer larger than KeepBytes.
func Fit[T any](u *Use, s []T, used int) []T {
	var zero T
	if cap(s)*int(unsafe.Sizeof(zero)) <= KeepBytes || used*4 > cap(s) {
		u.small = 0
		return s
	}
	if u.small++; u.small < ShrinkAfter {
		return s
	}
	u.small = 0
	return nil
}
