package config

import (
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/fanoutd/fanoutd/fanout"
	"github.com/fanoutd/fanoutd/jsassets"
	"github.com/fanoutd/fanoutd/payload"
	"github.com/fanoutd/fanoutd/relay"
)

// Defaults for keys left out of the file. A key that is present keeps its
// value, so an explicit "0s" or "" is reported by Validate instead of being
// silently replaced.
const (
	DefaultStartPosition = fanout.StartTrimHorizon
	DefaultSubject       = "kinesis.{stream}"
	DefaultNATSServer    = "nats://127.0.0.1:4222"
	DefaultLogLevel      = "info"
	DefaultLogFormat     = "auto"
	DefaultHTTPListen    = "127.0.0.1:9780"
	// The key-value buckets of checkpoint.store: jetstream and of
	// coordination.mode: jetstream.
	DefaultCheckpointBucket   = "fanoutd_checkpoints"
	DefaultCoordinationBucket = "fanoutd_coordination"
	// DefaultObjectMaxAge is the default retention of a Kinesis stream: an
	// object is kept as long as the record it holds would be in Kinesis.
	DefaultObjectMaxAge = 24 * time.Hour
	// DefaultAWSStartupTimeout is aws.startup_timeout: long enough for an
	// instance role's first credentials, short enough that a daemon without
	// any says so within a minute.
	DefaultAWSStartupTimeout = time.Minute
)

// Default returns a Config with every default applied and no streams; it
// does not pass Validate until streams and checkpoint.dir are set.
func Default() *Config {
	ft := fanout.DefaultTimers()
	return &Config{
		AWS: AWSConfig{StartupTimeout: Duration(DefaultAWSStartupTimeout)},
		NATS: NATSConfig{
			Servers:        []string{DefaultNATSServer},
			Name:           relay.DefaultConnectionName,
			PublishTimeout: Duration(relay.DefaultPublishTimeout),
			BatchPublish:   true,

			LargeRecords:      relay.OversizeObjectStore,
			DeadLetterSubject: relay.DefaultDeadLetterSubject,
			ObjectStore: ObjectStoreConfig{
				Bucket:  jsassets.DefaultObjectBucket,
				Storage: "file",
				MaxAge:  Duration(DefaultObjectMaxAge),
			},
			Stream: JetStreamConfig{
				Replicas:        1,
				Storage:         "file",
				DuplicateWindow: Duration(2 * time.Minute),
			},
			DeadLetterStream: DeadLetterStreamConfig{
				Name:    jsassets.DefaultDeadLetterStream,
				Storage: "file",
				MaxAge:  Duration(7 * 24 * time.Hour),
			},
		},
		Checkpoint: CheckpointConfig{Store: StoreFile, Interval: Duration(ft.CheckpointInterval),
			Bucket: BucketConfig{Name: DefaultCheckpointBucket, Storage: "file"}},
		Coordination: CoordinationConfig{Mode: CoordinationNone, LeaseTTL: Duration(10 * time.Second),
			Bucket: BucketConfig{Name: DefaultCoordinationBucket, Storage: "file"}},
		Log:    LogConfig{Level: DefaultLogLevel, Format: DefaultLogFormat},
		Timers: defaultTimers(),

		HTTP: HTTPConfig{Listen: DefaultHTTPListen},
	}
}

// DefaultStream returns a stream with the defaults applied and neither name
// nor arn set.
func DefaultStream() StreamConfig {
	return StreamConfig{
		Consumer:      fanout.DefaultConsumer,
		StartPosition: DefaultStartPosition,
		Subject:       DefaultSubject,

		SubjectFallback: relay.DefaultSubjectFallback,
		Payload:         payload.Raw,
		MaxDecompressed: payload.DefaultMaxDecompressed,

		OnExpiredCheckpoint: fanout.OnExpiredFail,
		Read:                fanout.ReadEFO,
		Polling:             PollingConfig{Interval: Duration(fanout.DefaultPollingInterval), MaxRecords: fanout.MaxPollingRecords},
	}
}

// UnmarshalYAML applies the stream defaults before decoding, because list
// elements are created empty by the decoder.
func (s *StreamConfig) UnmarshalYAML(n *yaml.Node) error {
	*s = DefaultStream()
	type plain StreamConfig // no methods: no recursion
	return n.Decode((*plain)(s))
}
