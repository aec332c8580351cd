package monitor

import (
	"context"
	"fmt"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/rs/zerolog"
)

// Notifier speaks the sd_notify protocol to systemd (Type=notify): READY=1
// once the daemon is ready, WATCHDOG=1 only while no shard is stalled, a
// STATUS= line with the state of things, STOPPING=1 and RELOADING=1. Outside
// systemd (no NOTIFY_SOCKET) every call does nothing.
type Notifier struct {
	m   *Monitor
	log zerolog.Logger
}

// NewNotifier returns a notifier for m.
func NewNotifier(m *Monitor, log zerolog.Logger) *Notifier { return &Notifier{m: m, log: log} }

func (n *Notifier) notify(state string) {
	if _, err := daemon.SdNotify(false, state); err != nil {
		n.log.Debug().Err(err).Str("state", state).Msg("sd_notify failed")
	}
}

// Run sends READY=1 the first time the daemon is ready, feeds the watchdog
// at half its interval while the daemon is live, and updates STATUS, until
// ctx ends.
func (n *Notifier) Run(ctx context.Context) {
	wd, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		n.log.Warn().Err(err).Msg("invalid systemd watchdog settings; not feeding the watchdog")
		wd = 0
	}
	tick := time.Second
	if wd > 0 && wd/2 < tick {
		tick = wd / 2
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	ready := false
	var lastPing, lastStatus time.Time
	var lastRecords uint64
	var lastAt time.Time
	var status, waiting string
	for {
		h := n.m.Health()
		if !ready && h.Ready {
			n.notify("READY=1")
			ready = true
		}
		now := time.Now()
		if wd > 0 && h.Live && now.Sub(lastPing) >= wd/2 {
			n.notify("WATCHDOG=1")
			lastPing = now
		}
		if w := n.m.Waiting(); now.Sub(lastStatus) >= 5*time.Second || status == "" || w != waiting {
			waiting = w
			records := n.m.totalRecords()
			rate := 0.0
			if !lastAt.IsZero() {
				rate = float64(records-lastRecords) / now.Sub(lastAt).Seconds()
			}
			lastRecords, lastAt = records, now
			status = fmt.Sprintf("%d/%d shards subscribed, %.0f records/s, max lag %dms", h.Subscribed, h.Shards, rate, h.MaxLagMillis)
			if len(h.Stalled) > 0 {
				status += fmt.Sprintf(", %d STALLED", len(h.Stalled))
			} else if !h.NATSConnected {
				status += ", NATS disconnected"
			}
			if waiting != "" {
				status = "not ready: " + waiting + "; " + status
			}
			n.notify("STATUS=" + status)
			lastStatus = now
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Stopping tells systemd that the daemon is shutting down.
func (n *Notifier) Stopping() { n.notify("STOPPING=1") }

// Reloading and Reloaded frame a configuration reload.
func (n *Notifier) Reloading() {
	n.notify(fmt.Sprintf("RELOADING=1\nMONOTONIC_USEC=%d", monotonicUsec()))
}

// Reloaded tells systemd the reload is done.
func (n *Notifier) Reloaded() { n.notify("READY=1") }

func (m *Monitor) totalRecords() uint64 {
	var n uint64
	for _, s := range m.sources().Shards() {
		n += s.Records
	}
	return n
}
