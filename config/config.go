// Package config owns the YAML config file of fanoutd: its types, defaults,
// Load and Validate, with every problem reported by key path
// (streams[1].start_position). It never connects to anything; Load checks
// that the files the config names (creds, nkey seed, TLS) can be read, and
// the packages that use them check what is in them.
package config

import (
	"github.com/fanoutd/fanoutd/fanout"
	"github.com/fanoutd/fanoutd/payload"
	"github.com/fanoutd/fanoutd/relay"
)

// Config is the whole file. The yaml tags are the contract with operators:
// renaming one is a breaking change.
type Config struct {
	AWS        AWSConfig        `yaml:"aws"`
	Streams    []StreamConfig   `yaml:"streams"`
	NATS       NATSConfig       `yaml:"nats"`
	Checkpoint CheckpointConfig `yaml:"checkpoint"`
	Log        LogConfig        `yaml:"log"`
	Timers     TimersConfig     `yaml:"timers"`
	HTTP       HTTPConfig       `yaml:"http"`
	// Coordination lets several instances share the streams' shards.
	Coordination CoordinationConfig `yaml:"coordination"`
}

// HTTPConfig is the daemon's HTTP endpoint: /metrics (Prometheus),
// /healthz, /readyz and /status.
type HTTPConfig struct {
	// Listen is host:port; empty turns the endpoint off.
	Listen string `yaml:"listen"`
}

// AWSConfig holds the Kinesis client settings. Empty fields fall back to the
// AWS SDK's default chain (environment, shared config, instance metadata).
type AWSConfig struct {
	Region  string `yaml:"region"`
	Profile string `yaml:"profile"`
	// Endpoint overrides the Kinesis endpoint, e.g. the emulator's URL.
	Endpoint string `yaml:"endpoint"`
	// Decoder reads SubscribeToShard event streams: "fanoutd" (the
	// default: fanoutd's own reader and decoder) or "sdk" (the AWS SDK's
	// event-stream reader, kept for one release as a fallback).
	Decoder string `yaml:"decoder"`
	// StartupTimeout bounds the check at start that the credentials resolve
	// and every stream can be described: past it, fanoutd exits (2 when no
	// credentials were found or AWS refused them).
	StartupTimeout Duration `yaml:"startup_timeout"`
}

// StreamConfig is one Kinesis stream, read through an enhanced fan-out
// consumer or by polling. Exactly one of Name and ARN is set.
type StreamConfig struct {
	Name string `yaml:"name"`
	ARN  string `yaml:"arn"`
	// Consumer is the application's name: its EFO consumer, and in every
	// read mode the namespace of its checkpoints.
	Consumer string `yaml:"consumer"`
	// ConsumerARN, if set, skips registration and uses this consumer.
	ConsumerARN   string               `yaml:"consumer_arn"`
	StartPosition fanout.StartPosition `yaml:"start_position"`
	// StartTimestamp is RFC 3339, set iff StartPosition is AT_TIMESTAMP;
	// StartTime returns it parsed.
	StartTimestamp string `yaml:"start_timestamp"`
	// Subject is a NATS subject template (relay.ParseSubjectTemplate).
	Subject string `yaml:"subject"`
	// SubjectFallback is the token of a {data.PATH} the data does not give
	// as a scalar (and of {log_group}, {log_stream} outside CloudWatch
	// Logs events).
	SubjectFallback string `yaml:"subject_fallback"`
	// Filter: a record is relayed only if one of these patterns (Lambda
	// FilterCriteria syntax) matches it; none: every record.
	Filter []FilterPattern `yaml:"filter"`
	// Payload is how a record's data is decoded before routing, filtering
	// and publishing: raw, gzip or cloudwatch_logs.
	Payload payload.Kind `yaml:"payload"`
	// MaxDecompressed bounds a record's decompressed data: a record over
	// it becomes a dead letter.
	MaxDecompressed ByteSize `yaml:"max_decompressed"`
	// OnExpiredCheckpoint is what to do when Kinesis rejects a shard's
	// checkpoint (older than the retention period): "fail" (stop with an
	// error that says what to do) or "trim_horizon" (log it loudly and read
	// the shard from its oldest record).
	OnExpiredCheckpoint fanout.ExpiredPolicy `yaml:"on_expired_checkpoint"`
	// Read is how the shards are read: efo (enhanced fan-out), polling
	// (GetRecords) or auto (enhanced fan-out unless Kinesis refuses it,
	// then polling).
	Read fanout.ReadMode `yaml:"read"`
	// Polling paces reading by polling.
	Polling PollingConfig `yaml:"polling"`
}

// PollingConfig paces the GetRecords calls of a stream read by polling.
type PollingConfig struct {
	// Interval is the wait between two calls on a shard that is caught up.
	Interval Duration `yaml:"interval"`
	// MaxRecords is the Limit of each call, 1 to 10000.
	MaxRecords int `yaml:"max_records"`
}

// NATSConfig holds the NATS connection and publishing settings.
type NATSConfig struct {
	// Context names a nats CLI context (or the path of its file) that
	// supplies servers, credentials and TLS files; the keys below that
	// are set win over it. Load reads it; see applyContext.
	Context   string   `yaml:"context"`
	Servers   []string `yaml:"servers"`
	Name      string   `yaml:"name"`
	JetStream bool     `yaml:"jetstream"`

	// At most one way to authenticate: CredsFile, NKeySeedFile, Token or
	// User (with Password).
	CredsFile    string `yaml:"creds_file"`
	NKeySeedFile string `yaml:"nkey_seed_file"`
	Token        Secret `yaml:"token"`
	User         string `yaml:"user"`
	Password     Secret `yaml:"password"`

	TLS TLSConfig `yaml:"tls"`
	// IgnoreDiscoveredServers: connect only to Servers, never to the other
	// servers of the cluster that the servers announce (behind a proxy or
	// NAT, where those addresses can't be reached).
	IgnoreDiscoveredServers bool     `yaml:"ignore_discovered_servers"`
	PublishTimeout          Duration `yaml:"publish_timeout"`
	// BatchPublish (jetstream: true): publish each chunk of a batch as one
	// JetStream fast batch where the server (2.14+) and the stream
	// (allow_batched) take it, confirmed by a few flow acks and one PubAck
	// instead of one per message. Default true.
	BatchPublish bool `yaml:"batch_publish"`

	// LargeRecords is what happens to a record too big for one NATS
	// message (over the server's max_payload, or a JetStream stream's
	// max_msg_size): "object_store" (put into the ObjectStore bucket, and a
	// reference message in its place; needs JetStream on the server, else
	// dead_letter applies), "dead_letter" (a metadata-only message on
	// DeadLetterSubject, counted, and the shard moves on) or "fail" (the
	// daemon stops with an error). See LargeRecordPolicy.
	LargeRecords relay.OversizePolicy `yaml:"large_records"`
	// Oversize is the deprecated name of LargeRecords (dead_letter or fail
	// only); when set it stands for large_records, which must then be left
	// out (or say the same).
	Oversize relay.OversizePolicy `yaml:"oversize"`
	// ObjectStore is the JetStream Object Store bucket of large records
	// (large_records: object_store), created at start with jetstream: true,
	// at the first large record in core mode.
	ObjectStore ObjectStoreConfig `yaml:"object_store"`
	// DeadLetterSubject is a subject template for dead letters.
	DeadLetterSubject string `yaml:"dead_letter_subject"`
	// Stream, when its name is set, is the JetStream stream fanoutd creates
	// at start, or verifies when it exists (jetstream: true only).
	Stream JetStreamConfig `yaml:"stream"`
	// DeadLetterStream is the JetStream stream fanoutd creates at start when
	// no stream captures the dead-letter subjects (jetstream: true only), as
	// Kafka Connect creates its dead-letter topic.
	DeadLetterStream DeadLetterStreamConfig `yaml:"dead_letter_stream"`

	// contextFile is the context file read, and fromContext the keys
	// whose values it gave, so that a problem with one says where it
	// came from.
	contextFile string
	fromContext []string
}

// ObjectStoreConfig describes the Object Store bucket fanoutd keeps large
// records in.
type ObjectStoreConfig struct {
	Bucket string `yaml:"bucket"`
	// Storage is "file" or "memory".
	Storage string `yaml:"storage"`
	// Replicas is 1 to 5, or 0: 3 when the NATS cluster has at least three
	// servers, else 1.
	Replicas int `yaml:"replicas"`
	// MaxAge is how long an object is kept (0: for ever); by default 24h, the
	// default retention of a Kinesis stream.
	MaxAge Duration `yaml:"max_age"`
}

// DeadLetterStreamConfig describes the dead-letter stream fanoutd creates.
type DeadLetterStreamConfig struct {
	Name string `yaml:"name"`
	// Storage is "file" or "memory".
	Storage string `yaml:"storage"`
	// Replicas is 1 to 5, or 0: 3 when the NATS cluster has at least three
	// servers, else 1.
	Replicas int `yaml:"replicas"`
	// MaxAge is how long a dead letter is kept; 0 keeps it for ever.
	MaxAge Duration `yaml:"max_age"`
}

// JetStreamConfig describes the JetStream stream that stores the records.
type JetStreamConfig struct {
	Name     string   `yaml:"name"`
	Subjects []string `yaml:"subjects"`
	Replicas int      `yaml:"replicas"`
	// Storage is "file" or "memory".
	Storage string `yaml:"storage"`
	// DuplicateWindow is how long JetStream remembers a Nats-Msg-Id: a
	// replay within it is dropped. It should cover the worst replay gap,
	// checkpoint.interval plus the time a restart takes.
	DuplicateWindow Duration `yaml:"duplicate_window"`
	// MaxBytes and MaxMsgs limit the stream (0: unlimited); a full stream
	// refuses new messages (discard new), which stops reading, not data.
	MaxBytes int64 `yaml:"max_bytes"`
	MaxMsgs  int64 `yaml:"max_msgs"`
}

// TLSConfig names PEM files. CertFile and KeyFile are set together or not at all.
type TLSConfig struct {
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// The checkpoint stores.
const (
	// StoreFile keeps checkpoints in files under checkpoint.dir.
	StoreFile = "file"
	// StoreJetStream keeps them in a NATS JetStream key-value bucket, shared
	// by the instances of a group, every write a compare-and-set.
	StoreJetStream = "jetstream"
)

// CheckpointConfig selects where checkpoints are kept.
type CheckpointConfig struct {
	Store string `yaml:"store"`
	// Dir is required when Store is "file"; Load defaults it to
	// $STATE_DIRECTORY (its first path) when systemd sets it.
	Dir string `yaml:"dir"`
	// Bucket is the key-value bucket when Store is "jetstream", created at
	// start when missing.
	Bucket BucketConfig `yaml:"bucket"`
	// Interval is the least time between two checkpoint writes of a shard
	// (0s: after every batch delivered). It bounds the replay after a crash.
	Interval Duration `yaml:"interval"`
}

// BucketConfig names a JetStream key-value bucket fanoutd creates when it
// is missing.
type BucketConfig struct {
	Name string `yaml:"name"`
	// Replicas 0: 3 on a cluster of at least 3 servers, else 1 (with a
	// warning).
	Replicas int `yaml:"replicas"`
	// Storage is file or memory.
	Storage string `yaml:"storage"`
}

// The coordination modes.
const (
	// CoordinationNone: this instance reads every shard.
	CoordinationNone = "none"
	// CoordinationJetStream: instances share the shards through leases in a
	// JetStream key-value bucket.
	CoordinationJetStream = "jetstream"
)

// CoordinationConfig lets several instances share the shards of the
// configured streams.
type CoordinationConfig struct {
	Mode string `yaml:"mode"`
	// Instance is this instance's name in the group, unique (default: the
	// host name and a random suffix, new at each start).
	Instance string `yaml:"instance"`
	// LeaseTTL: the shards of an instance that died move after about this
	// long.
	LeaseTTL Duration `yaml:"lease_ttl"`
	// Bucket holds the leases and the members' heartbeats.
	Bucket BucketConfig `yaml:"bucket"`
}

// LogConfig selects the log level (trace, debug, info, warn, error) and
// format (json for journald, console for a terminal, auto: console when
// stderr is a terminal, else json).
type LogConfig struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
}

// TimersConfig holds every long protocol timer, so that tests can run the
// minutes-long rules of Kinesis in seconds. All must be greater than zero.
type TimersConfig struct {
	// IdleTimeout: no event on a subscription for this long means resubscribe.
	IdleTimeout Duration `yaml:"idle_timeout"`
	// ShardSyncInterval is the ListShards period.
	ShardSyncInterval      Duration `yaml:"shard_sync_interval"`
	MinResubscribeInterval Duration `yaml:"min_resubscribe_interval"`
	BackoffInitial         Duration `yaml:"backoff_initial"`
	BackoffMax             Duration `yaml:"backoff_max"`
	// ConsumerPoll*: DescribeStreamConsumer polling while a new consumer
	// becomes ACTIVE, for at most ConsumerActiveTimeout.
	ConsumerPollInitial   Duration `yaml:"consumer_poll_initial"`
	ConsumerPollMax       Duration `yaml:"consumer_poll_max"`
	ConsumerActiveTimeout Duration `yaml:"consumer_active_timeout"`
	ShutdownTimeout       Duration `yaml:"shutdown_timeout"`
	// StallTimeout: a reading shard whose loop shows no activity (no event,
	// no subscribe attempt) for this long is stalled: /readyz turns 503 and
	// the systemd watchdog stops being fed, so systemd restarts the daemon.
	StallTimeout Duration `yaml:"stall_timeout"`
	// CheckpointWriteTimeout bounds one checkpoint write.
	CheckpointWriteTimeout Duration `yaml:"checkpoint_write_timeout"`
}

// Secret is a string that does not print itself, so that logging a Config
// (fmt %v, zerolog Interface, YAML or JSON encoding) never leaks it.
// Convert with string(s) where the value is needed.
type Secret string

const redacted = "<redacted>"

// String returns a placeholder, or "" for an empty secret.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// GoString keeps %#v from printing the secret.
func (s Secret) GoString() string { return `"` + s.String() + `"` }

// MarshalText keeps encoders (JSON, YAML) from printing the secret.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }
