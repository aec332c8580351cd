package monitor

import (
	"bytes"
	"fmt"
	"os"
	"runtime/metrics"
	"runtime/pprof"
	"sync"
	"time"
)

// The environment variables that make `fanoutd run` write pprof profiles,
// for `fanoutd bench --profile`: a CPU profile of the whole run, and a heap
// profile (allocations included) taken at the peak of the live heap (after
// the catch-up, it would show an idle daemon), written when it stops.
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
	var peak *heapPeak
	if os.Getenv(EnvHeapProfile) != "" {
		peak = watchHeapPeak()
	}
	return func() error {
		if cpu != nil {
			pprof.StopCPUProfile()
			if err := cpu.Close(); err != nil {
				return fmt.Errorf("%s: %w", EnvCPUProfile, err)
			}
		}
		if peak == nil {
			return nil
		}
		if err := os.WriteFile(os.Getenv(EnvHeapProfile), peak.stop(), 0o644); err != nil {
			return fmt.Errorf("%s: %w", EnvHeapProfile, err)
		}
		return nil
	}, nil
}

// heapPeak keeps the heap profile of the largest live heap seen.
type heapPeak struct {
	mu      sync.Mutex
	profile []byte
	done    chan struct{}
	wg      sync.WaitGroup
}

// watchHeapPeak samples the live heap (as of the last GC) every 100 ms and
// takes a heap profile whenever it grew by a tenth over the largest so far.
func watchHeapPeak() *heapPeak {
	h := &heapPeak{done: make(chan struct{})}
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	var max uint64
	take := func() {
		var buf bytes.Buffer
		if pprof.Lookup("heap").WriteTo(&buf, 0) == nil {
			h.mu.Lock()
			h.profile = buf.Bytes()
			h.mu.Unlock()
		}
	}
	take()
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-h.done:
				return
			case <-t.C:
				metrics.Read(sample)
				if live := sample[0].Value.Uint64(); live > max+max/10 {
					max = live
					take()
				}
			}
		}
	}()
	return h
}

func (h *heapPeak) stop() []byte {
	close(h.done)
	h.wg.Wait()
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.profile
}
