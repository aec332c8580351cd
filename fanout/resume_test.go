package fanout

import (
	"context"
	"testing"
	"time"

	"github.com/fanoutd/fanoutd/internal/testutil"
)

type sleepResult struct{ live, resumed bool }

// A loop backing off after a failed delivery wakes when Resume fires, and
// Fire counts it; other backoffs, and waits that ended, are not touched.
func TestResumeWakesHandlerBackoff(t *testing.T) {
	c := &StreamConsumer{resume: NewResume()}
	woke := make(chan sleepResult, 1)
	gen := c.resume.generation()
	go func() {
		live, resumed := c.backoffSleep(context.Background(), time.Hour, endHandler, gen)
		woke <- sleepResult{live, resumed}
	}()
	testutil.WaitFor(t, 10*time.Second, "the loop waiting", func() bool {
		c.resume.mu.Lock()
		defer c.resume.mu.Unlock()
		return c.resume.waiting == 1
	})
	if got := c.resume.Fire(); got != 1 {
		t.Fatalf("Fire woke %d, want 1", got)
	}
	select {
	case r := <-woke:
		if !r.live || !r.resumed {
			t.Fatalf("backoffSleep after Fire: %+v, want live and resumed", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the backoff did not end at Fire")
	}

	gen = c.resume.generation()
	if live, resumed := c.backoffSleep(context.Background(), time.Millisecond, endHandler, gen); !live || resumed {
		t.Fatalf("a completed backoff: live %t, resumed %t", live, resumed)
	}
	if got := c.resume.Fire(); got != 0 {
		t.Fatalf("Fire after every wait ended counted %d, want 0", got)
	}

	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		live, resumed := c.backoffSleep(ctx, time.Hour, endError, c.resume.generation())
		woke <- sleepResult{live, resumed}
	}()
	c.resume.Fire() // not a handler backoff: not woken
	cancel()
	if r := <-woke; r.live {
		t.Fatal("an error backoff ended by its context reported live")
	}
}

// A Fire between the failed delivery and the start of the backoff (the
// reconnect came while the batch was failing) is not missed: the loop does
// not wait at all.
func TestResumeBeforeTheBackoffIsNotMissed(t *testing.T) {
	c := &StreamConsumer{resume: NewResume()}
	gen := c.resume.generation() // the attempt begins
	c.resume.Fire()              // the reconnect, before the loop backs off
	done := make(chan sleepResult, 1)
	go func() {
		live, resumed := c.backoffSleep(context.Background(), time.Hour, endHandler, gen)
		done <- sleepResult{live, resumed}
	}()
	select {
	case r := <-done:
		if !r.live || !r.resumed {
			t.Fatalf("backoffSleep: %+v, want live and resumed", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a Fire before the backoff began was missed: the loop waits its whole backoff")
	}
}
