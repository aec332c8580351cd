package bench

import (
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
)

// The environment variables that make `fanoutd run` write pprof profiles,
// for `fanoutd bench --profile`: a CPU profile of the whole run, and a heap
// profile (allocations included) written when it stops.
const (
	EnvCPUProfile  = "FANOUTD_CPUPROFILE"
	EnvHeapProfile = "FANOUTD_HEAPPROFILE"
)

// StartProfiles starts the profiles the environment asks for; stop writes
// them.
func StartProfiles() (stop func() error, err error) {
	var cpu *os.File
	if path := os.Getenv(EnvCPUProfile); path != "" {
		if cpu, err = os.Create(path); err != nil {
			return nil, fmt.Errorf("%s: %w", EnvCPUProfile, err)
		}
		if err := pprof.StartCPUProfile(cpu); err != nil {
			cpu.Close()
			return nil, fmt.Errorf("%s: %w", EnvCPUProfile, err)
		}
	}
	return func() error {
		if cpu != nil {
			pprof.StopCPUProfile()
			if err := cpu.Close(); err != nil {
				return fmt.Errorf("%s: %w", EnvCPUProfile, err)
			}
		}
		path := os.Getenv(EnvHeapProfile)
		if path == "" {
			return nil
		}
		f, err := os.Create(path)
		if err != nil {
			return fmt.Errorf("%s: %w", EnvHeapProfile, err)
		}
		runtime.GC() // the heap profile shows live objects as of the last GC
		if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
			f.Close()
			return fmt.Errorf("%s: %w", EnvHeapProfile, err)
		}
		return f.Close()
	}, nil
}
