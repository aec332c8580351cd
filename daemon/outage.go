package daemon

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/fanoutd/fanoutd/fanout"
)

// natsOutage follows NATS outages: when the connection is back it wakes
// the shards backing off after a failed delivery (fanout.Resume), and at
// the first batch delivered after that it logs one line saying how long
// delivery stopped and how many shards waited.
type natsOutage struct {
	log    zerolog.Logger
	resume *fanout.Resume

	// pending: reconnected, no batch delivered since (read on every batch).
	pending atomic.Bool

	mu        sync.Mutex
	down      time.Time // when the connection was lost; zero while up
	stoppedAt time.Time // the outage's start, until delivery resumed
	up        time.Time
	waited    int
}

func newNATSOutage(log zerolog.Logger) *natsOutage {
	return &natsOutage{log: log, resume: fanout.NewResume()}
}

// disconnected is the connection's OnDisconnect.
func (o *natsOutage) disconnected() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.down.IsZero() {
		o.down = time.Now()
	}
	if o.stoppedAt.IsZero() {
		o.stoppedAt = o.down
	}
}

// reconnected is the connection's OnReconnect.
func (o *natsOutage) reconnected() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.up, o.down = time.Now(), time.Time{}
	o.pending.Store(true)
	o.waited += o.resume.Fire()
}

// published sees every batch the publisher finished (relay.Options.Observe).
func (o *natsOutage) published(err error) {
	if err != nil || !o.pending.Load() {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.pending.Load() || !o.down.IsZero() {
		return
	}
	now := time.Now()
	o.log.Info().Str("stopped_for", now.Sub(o.stoppedAt).Round(time.Millisecond).String()).
		Str("after_reconnect", now.Sub(o.up).Round(time.Millisecond).String()).
		Int("shards_waited", o.waited).
		Msg("delivery resumed after the NATS outage")
	o.pending.Store(false)
	o.stoppedAt, o.waited = time.Time{}, 0
}
