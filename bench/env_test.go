package bench

import (
	"context"
	"strings"
	"testing"
	"time"
)

// The batched JetStream mode's stream allows fast batches; the no-batch
// mode's stream does not, so that fanoutd publishes into it message by
// message.
func TestBenchStreamAllowBatched(t *testing.T) {
	for _, tc := range []struct {
		mode    string
		batched bool
	}{{modeJetStream, true}, {modeJetStreamNoBatch, false}} {
		t.Run(tc.mode, func(t *testing.T) {
			env, err := newBenchEnv(tc.mode, false)
			if err != nil {
				t.Fatal(err)
			}
			defer env.close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			s, err := env.js.Stream(ctx, benchJSStream)
			if err != nil {
				t.Fatal(err)
			}
			if got := s.CachedInfo().Config.AllowBatchPublish; got != tc.batched {
				t.Errorf("allow_batched %v, want %v", got, tc.batched)
			}
		})
	}
}

// --mode takes a list of modes, "all" and "both" (each mode once, in the
// order given), and refuses an unknown one.
func TestParseModes(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"all", "core,jetstream,jetstream-nobatch"},
		{"both", "core,jetstream"},
		{"jetstream-nobatch", "jetstream-nobatch"},
		{"jetstream-nobatch, core", "jetstream-nobatch,core"},
		{"core,both", "core,jetstream"},
	} {
		modes, err := parseModes(tc.in)
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if got := strings.Join(modes, ","); got != tc.want {
			t.Errorf("%q: modes %s, want %s", tc.in, got, tc.want)
		}
	}
	if _, err := parseModes("core,nobatch"); err == nil || !strings.Contains(err.Error(), `unknown mode "nobatch"`) {
		t.Errorf("unknown mode: %v", err)
	}
}
