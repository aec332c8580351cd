package fanout

import (
	"errors"
	"fmt"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/aws/smithy-go"

	"github.com/fanoutd/fanoutd/internal/testutil"
	"github.com/fanoutd/fanoutd/internal/testutil/emutest"
)

func TestErrorLabel(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{errors.New("dial tcp: connection refused"), "transport"},
		{&smithy.GenericAPIError{Code: "ResourceInUseException"}, "ResourceInUseException"},
		{fmt.Errorf("wrapped: %w", &smithy.GenericAPIError{Code: "KMSThrottlingException"}), "KMSThrottlingException"},
		{&smithy.GenericAPIError{Code: "InternalFailure"}, "InternalFailure"},
		{&smithy.GenericAPIError{Code: "TotallyMadeUpException"}, "other"},
		{&smithy.GenericAPIError{Code: "\xff\xfe"}, "other"},
		{&smithy.GenericAPIError{Code: "resourceinuseexception"}, "other"},
	} {
		if got := errorLabel(tc.err); got != tc.want {
			t.Errorf("errorLabel(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

// TestHostileExceptionTypesBounded ends subscriptions with exception frames
// whose type is whatever a hostile or broken server may send (invalid UTF-8,
// a new name each time): the error counts, which become a Prometheus label,
// keep to the known codes plus "other".
func TestHostileExceptionTypesBounded(t *testing.T) {
	t.Parallel()
	h := newHarness(t, emutest.Options())
	if err := h.emu.CreateStream("s", 1); err != nil {
		t.Fatal(err)
	}
	timers := fastTimers()
	timers.IdleTimeout = time.Minute // only the emulator ends subscriptions here
	c := h.consumer(StreamSpec{Name: "s"}, timers)
	h.start(c)
	const rounds = 5
	hostile := []string{"\xff\xfe\xfd", "Bogus\x00Exception", "x-1", "x-2", "x-3"}
	var subs map[string]uint64
	for i := range rounds {
		subs = freshSubscriptions(t, c, 1, subs)
		if n := h.emu.EndSubscriptions("s", "", hostile[i], ""); n != 1 {
			t.Fatalf("%d subscriptions got the exception, want 1", n)
		}
		testutil.WaitFor(t, 20*time.Second, "error counted", func() bool {
			var n uint64
			for _, s := range c.Shards() {
				n += s.Errors[labelOther]
			}
			return n >= uint64(i+1)
		})
	}
	// A known code keeps its name.
	freshSubscriptions(t, c, 1, subs)
	if n := h.emu.EndSubscriptions("s", "", "KMSThrottlingException", ""); n != 1 {
		t.Fatalf("%d subscriptions got the exception, want 1", n)
	}
	testutil.WaitFor(t, 20*time.Second, "KMS error counted", func() bool {
		for _, s := range c.Shards() {
			if s.Errors["KMSThrottlingException"] > 0 {
				return true
			}
		}
		return false
	})
	for _, s := range c.Shards() {
		for code, n := range s.Errors {
			if !utf8.ValidString(code) {
				t.Errorf("error label %q is not valid UTF-8", code)
			}
			if !errorLabels[code] && code != labelTransport && code != labelOther {
				t.Errorf("error label %q (%d) is not a known code", code, n)
			}
		}
		if got, want := s.Errors[labelOther], uint64(rounds); got != want {
			t.Errorf("%s: Errors[other] = %d, want %d (all: %v)", s.ShardID, got, want, s.Errors)
		}
	}
}
