package coordination

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/fanoutd/fanoutd/jsassets"
)

// memberValue is a member key's value. Token is random per Join: it tells
// this process's heartbeats from those of another process with the same
// name.
type memberValue struct {
	Owner string    `json:"owner"`
	At    time.Time `json:"at"`
	Token string    `json:"token"`
}

func newToken() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// RandomSuffix is a short random string to make a default instance name
// unique per process start.
func RandomSuffix() string { return newToken()[:8] }

func (g *Group) memberKey() string { return "member." + part(g.instance) }

// checkName makes sure no other live process holds this instance's name:
// a member key with another token that is written again within a TTL
// belongs to a live process (ErrInstanceInUse); one that is not is left
// from a previous start of this instance (a crash), and this one takes its
// place.
func (g *Group) checkName(ctx context.Context) error {
	var prev jetstream.KeyValueEntry
	err := jsassets.Retry(ctx, jsassets.RetryOptions{PerAttempt: g.ttl, Attempts: 10, Retriable: jsassets.StreamStarting},
		func(ctx context.Context) error {
			e, err := g.kv.Get(ctx, g.memberKey())
			if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
				return err
			}
			prev = e
			return nil
		})
	if err != nil {
		return fmt.Errorf("read member key: %w", err)
	}
	if prev == nil || prev.Operation() != jetstream.KeyValuePut {
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, g.ttl)
	defer cancel()
	w, err := g.kv.Watch(wctx, g.memberKey(), jetstream.UpdatesOnly())
	if err != nil {
		return fmt.Errorf("watch member key: %w", err)
	}
	defer w.Stop()
	g.log.Info().Str("lease_ttl", g.ttl.String()).
		Str("then", "waiting to see whether another process holds it").Msg("instance name already in the group")
	for {
		select {
		case <-wctx.Done():
			if ctx.Err() != nil {
				return ctx.Err()
			}
			g.log.Info().Msg("instance name free again; taking it")
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				return nil
			}
			if e == nil {
				continue
			}
			if e.Operation() != jetstream.KeyValuePut {
				return nil // it left
			}
			var v memberValue
			_ = json.Unmarshal(e.Value(), &v)
			if v.Token != g.token {
				return fmt.Errorf("%w: %q renewed its membership in the group while this process started; give each instance a unique coordination.instance (or leave it empty for a unique default), or stop the other process first", ErrInstanceInUse, g.instance)
			}
		}
	}
}

// checkOwnMember notices a member key of this instance's name written by
// another process (two processes started with one name at once, both
// before the other's first heartbeat). While that twin lives, a lease
// under this name that this process does not hold is the twin's, not a
// lease left by a previous start: Claim leaves it alone.
func (g *Group) checkOwnMember(e jetstream.KeyValueEntry) {
	if e.Key() != g.memberKey() || e.Operation() != jetstream.KeyValuePut {
		return
	}
	var v memberValue
	if json.Unmarshal(e.Value(), &v) != nil || v.Token == g.token {
		return
	}
	now := time.Now()
	g.mu.Lock()
	first := !g.twinLocked(now)
	g.twinAt = now
	g.mu.Unlock()
	if first {
		g.log.Error().Str("token", v.Token).Str("fix", "give each instance a unique coordination.instance and restart them").
			Msg("another process writes this instance's membership")
	}
}

// twinLocked reports whether another process with this instance's name
// was seen within a TTL.
func (g *Group) twinLocked(now time.Time) bool {
	return !g.twinAt.IsZero() && now.Sub(g.twinAt) <= g.ttl
}
