package daemon

import (
	"strings"
	"testing"
	"time"

	"github.com/fanoutd/fanoutd/emulator"
	"github.com/fanoutd/fanoutd/internal/testutil"
	"github.com/fanoutd/fanoutd/internal/testutil/e2e"
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
	if err := e.Emu.CreateStream("orders", 2); err != nil {
		t.Fatal(err)
	}
	if st, _ := e.Emu.StreamStatus("orders"); st != emulator.StatusCreating {
		t.Fatalf("status %s, want CREATING", st)
	}
	stop := e.run(e.config(false, `  - name: orders`))
	testutil.WaitFor(t, 20*time.Second, "the stream to become ACTIVE", func() bool {
		st, _ := e.Emu.StreamStatus("orders")
		return st == emulator.StatusActive
	})
	keys := e2e.Keys(4)
	e.Put("orders", keys, 0, 5)
	testutil.WaitFor(t, 30*time.Second, "every record", func() bool { return len(e.Msgs.OnSubject("kinesis.")) >= 20 })
	e2e.ExactlyOnceInOrder(t, e.Msgs.OnSubject("kinesis."), keys, 5)
	if err := stop(); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if strings.Contains(e.logs.String(), `"level":"error"`) {
		t.Errorf("errors logged:\n%s", e.logs.String())
	}
}
