package config

import (
	"time"

	"go.yaml.in/yaml/v3"
)

// Defaults for keys left out of the file. A key that is present keeps its
// value, so an explicit "0s" or "" is reported by Validate instead of being
// silently replaced.
const (
	DefaultConsumer       = "fanoutd"
	DefaultStartPosition  = StartTrimHorizon
	DefaultSubject        = "kinesis.{stream}"
	DefaultNATSServer     = "nats://127.0.0.1:4222"
	DefaultConnectionName = "fanoutd"
	DefaultLogLevel       = "info"
	DefaultLogFormat      = "auto"
	DefaultHTTPListen     = "127.0.0.1:9780"
	// OnExpiredFail and OnExpiredTrimHorizon are the on_expired_checkpoint values.
	OnExpiredFail        = "fail"
	OnExpiredTrimHorizon = "trim_horizon"
	// OversizeDeadLetter and OversizeFail are the nats.oversize values.
	OversizeDeadLetter       = "dead_letter"
	OversizeFail             = "fail"
	DefaultDeadLetterSubject = "fanoutd.deadletter.{stream}"
	// DefaultDeadLetterStream is the name of the dead-letter stream fanoutd
	// creates when no JetStream stream captures the dead-letter subjects.
	DefaultDeadLetterStream = "FANOUTD_DEAD_LETTERS"
)

// Default returns a Config with every default applied and no streams; it
// does not pass Validate until streams and checkpoint.dir are set.
func Default() *Config {
	return &Config{
		NATS: NATSConfig{
			Servers:        []string{DefaultNATSServer},
			Name:           DefaultConnectionName,
			PublishTimeout: Duration(10 * time.Second),

			Oversize:          OversizeDeadLetter,
			DeadLetterSubject: DefaultDeadLetterSubject,
			Stream: JetStreamConfig{
				Replicas:        1,
				Storage:         "file",
				DuplicateWindow: Duration(2 * time.Minute),
			},
			DeadLetterStream: DeadLetterStreamConfig{
				Name:    DefaultDeadLetterStream,
				Storage: "file",
				MaxAge:  Duration(7 * 24 * time.Hour),
			},
		},
		Checkpoint: CheckpointConfig{Store: StoreFile, Interval: Duration(time.Second)},
		Log:        LogConfig{Level: DefaultLogLevel, Format: DefaultLogFormat},
		Timers: TimersConfig{
			IdleTimeout:            Duration(60 * time.Second),
			ShardSyncInterval:      Duration(60 * time.Second),
			MinResubscribeInterval: Duration(1 * time.Second),
			BackoffInitial:         Duration(200 * time.Millisecond),
			BackoffMax:             Duration(30 * time.Second),
			ConsumerPollInitial:    Duration(500 * time.Millisecond),
			ConsumerPollMax:        Duration(5 * time.Second),
			ConsumerActiveTimeout:  Duration(2 * time.Minute),
			ShutdownTimeout:        Duration(20 * time.Second),
			StallTimeout:           Duration(2 * time.Minute),
		},
		HTTP: HTTPConfig{Listen: DefaultHTTPListen},
	}
}

// DefaultStream returns a stream with the defaults applied and neither name
// nor arn set.
func DefaultStream() StreamConfig {
	return StreamConfig{
		Consumer:      DefaultConsumer,
		StartPosition: DefaultStartPosition,
		Subject:       DefaultSubject,

		OnExpiredCheckpoint: OnExpiredFail,
	}
}

// UnmarshalYAML applies the stream defaults before decoding, because list
// elements are created empty by the decoder.
func (s *StreamConfig) UnmarshalYAML(n *yaml.Node) error {
	*s = DefaultStream()
	type plain StreamConfig // no methods: no recursion
	return n.Decode((*plain)(s))
}
