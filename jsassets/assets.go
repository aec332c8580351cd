package jsassets

import (
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

// asset names an existing JetStream asset in the logs about it.
type asset struct {
	kind string // "stream", "object_store", "kv"
	name string
	key  string // the config key that describes it, if any
}

func (a asset) event(ev *zerolog.Event) *zerolog.Event {
	ev = ev.Str("asset", a.kind).Str("name", a.name)
	if a.key != "" {
		ev = ev.Str("key", a.key)
	}
	return ev
}

// setting is one setting of an asset as it is and as the config wants it.
type setting struct {
	name       string
	have, want string
}

// warnDiffs logs one warning per setting in which a differs from the
// config. The asset is used as it is: fanoutd does not change it.
func warnDiffs(log zerolog.Logger, a asset, settings ...setting) {
	for _, s := range settings {
		if s.have == s.want {
			continue
		}
		a.event(log.Warn()).Str("setting", s.name).Str("have", s.have).Str("want", s.want).
			Str("hint", "fanoutd uses it as it is: change the asset or the config to match").
			Msg("existing JetStream asset differs from config")
	}
}

// createdEvent is the event that logs that fanoutd created a with replicas:
// a warning when that is one, whose server's storage is then all there is.
func createdEvent(log zerolog.Logger, a asset, replicas int, what string) *zerolog.Event {
	if replicas != 1 {
		return a.event(log.Info()).Int("replicas", replicas)
	}
	hint := "losing that server's storage loses " + what + "; use 3 replicas on a cluster"
	if a.key != "" {
		hint = "losing that server's storage loses " + what + "; set " + a.key + ".replicas to 3 on a cluster"
	}
	return a.event(log.Warn()).Int("replicas", replicas).Str("hint", hint)
}

// storageName is s as the config spells it.
func storageName(s jetstream.StorageType) string {
	if s == jetstream.MemoryStorage {
		return MemoryStorage.String()
	}
	return FileStorage.String()
}
