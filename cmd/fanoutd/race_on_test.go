//go:build race

package main

// raceEnabled: the race detector's shadow memory inflates the RSS of the
// daemon child (the test binary), so RSS bounds are asserted without it.
const raceEnabled = true
