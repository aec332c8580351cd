package daemon

import (
	"context"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/rs/zerolog"

	"github.com/fanoutd/fanoutd/config"
	"github.com/fanoutd/fanoutd/emulator"
	"github.com/fanoutd/fanoutd/internal/testutil"
	"github.com/fanoutd/fanoutd/internal/testutil/e2e"
)

// e2eEnv runs the daemon in this process against the emulator and a NATS
// server. The daemon finds the emulator through Options, not the
// environment, so these tests run in parallel.
type e2eEnv struct {
	*e2e.Env
	t    *testing.T
	d    *Daemon              // the last run
	logs *testutil.SyncBuffer // of the last run
}

func newE2E(t *testing.T, opts emulator.Options, jetstream bool) *e2eEnv {
	t.Helper()
	t.Parallel()
	return &e2eEnv{Env: e2e.Start(t, opts, jetstream), t: t}
}

// config writes the config of the given streams (YAML list items).
func (e *e2eEnv) config(jetstream bool, streams string) string {
	e.t.Helper()
	return e.Config(jetstream, streams).Write(e.t)
}

// options point the Kinesis client at the emulator and log JSON to w.
func (e *e2eEnv) options(w io.Writer) Options {
	return Options{
		Log:         zerolog.New(w).Level(zerolog.DebugLevel).With().Timestamp().Logger(),
		Version:     "test",
		Endpoint:    e.Emu.URL(),
		Region:      e.Emu.Region(),
		CABundle:    e.Emu.CAPEM(),
		Credentials: credentials.NewStaticCredentialsProvider("emulator", "emulator", ""),
	}
}

// open opens a daemon on the config file at path, logging to e.logs.
func (e *e2eEnv) open(path string) (*Daemon, error) {
	e.t.Helper()
	cfg, err := config.Load(path)
	if err != nil {
		e.t.Fatal(err)
	}
	logs := &testutil.SyncBuffer{}
	e.logs = logs
	e.t.Cleanup(func() {
		if e.t.Failed() {
			e.t.Logf("daemon log:\n%s", logs.String())
		}
	})
	return Open(context.Background(), cfg, e.options(logs))
}

// run opens a daemon on the config file at path; stop closes it (as SIGTERM
// does) and returns what Close returns.
func (e *e2eEnv) run(path string) (stop func() error) {
	e.t.Helper()
	d, err := e.open(path)
	if err != nil {
		e.t.Fatalf("open: %v", err)
	}
	e.d = d
	var once sync.Once
	var closeErr error
	stop = func() error {
		once.Do(func() {
			done := make(chan error, 1)
			go func() { done <- d.Close() }()
			select {
			case closeErr = <-done:
			case <-time.After(30 * time.Second):
				e.t.Fatal("daemon did not stop")
			}
		})
		return closeErr
	}
	e.t.Cleanup(func() { stop() })
	return stop
}
