package main

import (
	"strings"
	"testing"
	"time"

	"github.com/fanoutd/fanoutd/emulator"
	"github.com/fanoutd/fanoutd/internal/testutil"
	"github.com/fanoutd/fanoutd/internal/testutil/emutest"
)

// TestRunStartsOnAStreamStillCreating: a daemon started right after
// CreateStream, while the stream is CREATING (RegisterStreamConsumer and
// ListShards answer ResourceInUseException, as on AWS), waits and relays
// once the stream is ACTIVE.
func TestRunStartsOnAStreamStillCreating(t *testing.T) {
	opts := emutest.Options()
	opts.StreamCreationDelay = time.Second
	e := newE2E(t, opts, false)
	if err := e.emu.CreateStream("orders", 2); err != nil {
		t.Fatal(err)
	}
	if st, _ := e.emu.StreamStatus("orders"); st != emulator.StatusCreating {
		t.Fatalf("status %s, want CREATING", st)
	}
	stop := e.run(e.config(false, `  - name: orders`))
	testutil.WaitFor(t, 20*time.Second, "the stream to become ACTIVE", func() bool {
		st, _ := e.emu.StreamStatus("orders")
		return st == emulator.StatusActive
	})
	keys := testKeys(4)
	e.put("orders", keys, 0, 5)
	testutil.WaitFor(t, 30*time.Second, "every record", func() bool { return len(e.msgs.onSubject("kinesis.")) >= 20 })
	exactlyOnceInOrder(t, e.msgs.onSubject("kinesis."), keys, 5)
	if code := stop(); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if strings.Contains(e.logs.String(), `"level":"error"`) {
		t.Errorf("errors logged:\n%s", e.logs.String())
	}
}
