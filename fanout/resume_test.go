package fanout

import (
	"context"
	"testing"
	"time"

	"github.com/fanoutd/fanoutd/internal/testutil"
)

// A loop backing off after a failed delivery wakes when Resume fires, and
// Fire counts it; other backoffs, and waits that ended, are not touched.
func TestResumeWakesHandlerBackoff(t *testing.T) {
	c := &StreamConsumer{resume: NewResume()}
	woke := make(chan bool, 1)
	go func() { woke <- c.backoffSleep(context.Background(), time.Hour, endHandler) }()
	testutil.WaitFor(t, 10*time.Second, "the loop waiting", func() bool {
		c.resume.mu.Lock()
		defer c.resume.mu.Unlock()
		return c.resume.waiting == 1
	})
	if got := c.resume.Fire(); got != 1 {
		t.Fatalf("Fire woke %d, want 1", got)
	}
	select {
	case ok := <-woke:
		if !ok {
			t.Fatal("backoffSleep reported a cancelled context")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the backoff did not end at Fire")
	}

	if !c.backoffSleep(context.Background(), time.Millisecond, endHandler) {
		t.Fatal("a completed backoff reported a cancelled context")
	}
	if got := c.resume.Fire(); got != 0 {
		t.Fatalf("Fire after every wait ended counted %d, want 0", got)
	}

	ctx, cancel := context.WithCancel(context.Background())
	go func() { woke <- c.backoffSleep(ctx, time.Hour, endError) }()
	c.resume.Fire() // not a handler backoff: not woken
	cancel()
	if <-woke {
		t.Fatal("an error backoff ended by its context reported true")
	}
}
