package fanout

import "time"

// Timers are every duration the consumer waits on. Each but
// CheckpointInterval is described in TimerSpecs, which the config file's
// keys, defaults and checks derive from: a new timer is a field here and a
// row there.
type Timers struct {
	// IdleTimeout: a reader silent this long is closed and opened again.
	IdleTimeout time.Duration
	// ShardSyncInterval is the ListShards period.
	ShardSyncInterval time.Duration
	// MinResubscribeInterval is the least time between two opens of a
	// shard's reader (Kinesis allows one SubscribeToShard per second).
	MinResubscribeInterval time.Duration
	BackoffInitial         time.Duration
	BackoffMax             time.Duration
	ConsumerPollInitial    time.Duration
	ConsumerPollMax        time.Duration
	ConsumerActiveTimeout  time.Duration
	// ShutdownTimeout bounds the in-flight batches after Run's context ends.
	ShutdownTimeout time.Duration
	// CheckpointInterval is the least time between two checkpoint writes of
	// a shard (0: after every batch delivered). The in-memory position
	// always follows every batch; this only bounds the replay after a crash.
	CheckpointInterval time.Duration
	// CheckpointWriteTimeout bounds one checkpoint write.
	CheckpointWriteTimeout time.Duration
}

// TimerSpec describes one timer of Timers that must be greater than zero.
type TimerSpec struct {
	// Key names the timer in the config file, under timers:.
	Key string
	// Default is the production value.
	Default time.Duration
	// Field is the timer in t.
	Field func(t *Timers) *time.Duration
}

var timerSpecs = []TimerSpec{
	{"idle_timeout", 60 * time.Second, func(t *Timers) *time.Duration { return &t.IdleTimeout }},
	{"shard_sync_interval", 60 * time.Second, func(t *Timers) *time.Duration { return &t.ShardSyncInterval }},
	{"min_resubscribe_interval", time.Second, func(t *Timers) *time.Duration { return &t.MinResubscribeInterval }},
	{"backoff_initial", 200 * time.Millisecond, func(t *Timers) *time.Duration { return &t.BackoffInitial }},
	{"backoff_max", 30 * time.Second, func(t *Timers) *time.Duration { return &t.BackoffMax }},
	{"consumer_poll_initial", 500 * time.Millisecond, func(t *Timers) *time.Duration { return &t.ConsumerPollInitial }},
	{"consumer_poll_max", 5 * time.Second, func(t *Timers) *time.Duration { return &t.ConsumerPollMax }},
	{"consumer_active_timeout", 2 * time.Minute, func(t *Timers) *time.Duration { return &t.ConsumerActiveTimeout }},
	{"shutdown_timeout", 20 * time.Second, func(t *Timers) *time.Duration { return &t.ShutdownTimeout }},
	{"checkpoint_write_timeout", 10 * time.Second, func(t *Timers) *time.Duration { return &t.CheckpointWriteTimeout }},
}

// TimerSpecs are every timer of Timers but CheckpointInterval, which may be
// 0 (the config file sets it as checkpoint.interval).
func TimerSpecs() []TimerSpec { return append([]TimerSpec(nil), timerSpecs...) }

// DefaultCheckpointInterval is the production CheckpointInterval.
const DefaultCheckpointInterval = time.Second

// DefaultTimers are the production values.
func DefaultTimers() Timers {
	t := Timers{CheckpointInterval: DefaultCheckpointInterval}
	for _, s := range timerSpecs {
		*s.Field(&t) = s.Default
	}
	return t
}

// withDefaults returns t with the production value for every timer of
// TimerSpecs that is not greater than zero.
func (t Timers) withDefaults() Timers {
	for _, s := range timerSpecs {
		if p := s.Field(&t); *p <= 0 {
			*p = s.Default
		}
	}
	return t
}
