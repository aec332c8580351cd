// Package emutest holds the emulator preset the packages' tests share. It is
// apart from testutil because the emulator's own tests use testutil.
package emutest

import (
	"time"

	"github.com/fanoutd/fanoutd/emulator"
)

// Options runs AWS's slow timers in milliseconds (a consumer is ACTIVE
// after 200 ms and deleted at once; no subscribe rate limit, no takeover
// grace; an empty event every 100 ms) and keeps everything else as AWS has
// it, subscriptions of 5 minutes included: tests end them on demand
// (Server.EndSubscriptions) instead of waiting for them to expire.
func Options() emulator.Options {
	return emulator.Options{
		ConsumerActivationDelay: 200 * time.Millisecond,
		ConsumerDeletionDelay:   -1,
		SubscribeRate:           -1,
		TakeoverGrace:           -1,
		EmptyEventInterval:      100 * time.Millisecond,
	}
}
