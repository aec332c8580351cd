package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// benchChild is a relay (the daemon or the baseline) running as a child
// process of the bench, so that its CPU time and memory are its own.
type benchChild struct {
	cmd  *exec.Cmd
	out  *tailBuffer
	done chan struct{}
	err  error // from Wait, once done is closed
}

// childUsage is what the kernel counted for a child that exited.
type childUsage struct {
	CPU time.Duration // user + system, from the child's rusage
	// MaxRSS is the child's VmHWM just before SIGTERM, not ru_maxrss: Go
	// starts a child with vfork, and Linux carries the high-water mark of
	// the mm it leaves at exec (the bench's own) into ru_maxrss.
	MaxRSS int64 // bytes
}

func startBenchChild(args, env []string) (*benchChild, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own executable: %w", err)
	}
	c := &benchChild{cmd: exec.Command(exe, args...), out: &tailBuffer{max: 64 << 10}, done: make(chan struct{})}
	c.cmd.Env = env
	c.cmd.Stdout, c.cmd.Stderr = c.out, c.out
	if err := c.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", strings.Join(args, " "), err)
	}
	go func() {
		c.err = c.cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

// exitedEarly returns an error with the child's last output if it exited.
func (c *benchChild) exitedEarly() error {
	select {
	case <-c.done:
		return fmt.Errorf("relay process exited early (%v):\n%s", c.err, c.out.String())
	default:
		return nil
	}
}

// stop sends SIGTERM, waits for the exit (killing it after timeout) and
// returns its resource usage.
func (c *benchChild) stop(timeout time.Duration) (childUsage, error) {
	var u childUsage
	hwm, hwmErr := procStatusBytes(c.cmd.Process.Pid, "VmHWM:")
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(timeout):
		_ = c.cmd.Process.Kill()
		<-c.done
		return childUsage{}, fmt.Errorf("relay process did not stop within %v after SIGTERM:\n%s", timeout, c.out.String())
	}
	if ru, ok := c.cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		u.CPU = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	u.MaxRSS = hwm
	if c.err != nil {
		return u, fmt.Errorf("relay process: %v:\n%s", c.err, c.out.String())
	}
	if hwmErr != nil {
		return u, fmt.Errorf("peak RSS: %w", hwmErr)
	}
	return u, nil
}

// kill ends a child whose results are not needed (an error path).
func (c *benchChild) kill() {
	select {
	case <-c.done:
	default:
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

// procSample reads a running process's CPU time and resident set from
// /proc (Linux).
func procSample(pid int) (cpu time.Duration, rss int64, err error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// The command name (field 2) may hold spaces; the fields after it start
	// after the last ')'. utime and stime are fields 14 and 15.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	const clockTicks = 100 // USER_HZ, 100 on every Linux architecture Go supports
	cpu = time.Duration(ut+st) * time.Second / clockTicks
	rss, err = procStatusBytes(pid, "VmRSS:")
	return cpu, rss, err
}

// procStatusBytes reads a "kB" field of /proc/pid/status, in bytes.
func procStatusBytes(pid int, field string) (int64, error) {
	status, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer status.Close()
	sc := bufio.NewScanner(status)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("parse %s %q", field, v)
			}
			return kb * 1024, nil
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
