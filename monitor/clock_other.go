//go:build !linux

package monitor

func monotonicUsec() int64 { return 0 }
