package config

import (
	"time"

	"github.com/fanoutd/fanoutd/fanout"
	"github.com/fanoutd/fanoutd/relay"
)

// The config file maps to the options of the packages that do the work;
// they never read the file themselves.

// ConnOptions are the relay's connection options for the nats section.
func (n NATSConfig) ConnOptions() relay.ConnOptions {
	return relay.ConnOptions{
		Servers: n.Servers, Name: n.Name,
		CredsFile: n.CredsFile, NKeySeedFile: n.NKeySeedFile,
		Token: string(n.Token), User: n.User, Password: string(n.Password),
		CAFile: n.TLS.CAFile, CertFile: n.TLS.CertFile, KeyFile: n.TLS.KeyFile,
		ConnectTimeout:          time.Duration(n.PublishTimeout),
		IgnoreDiscoveredServers: n.IgnoreDiscoveredServers,
	}
}

// Spec is the JetStream stream nats.stream describes.
func (c JetStreamConfig) Spec() relay.StreamSpec {
	return relay.StreamSpec{Name: c.Name, Subjects: c.Subjects, Replicas: c.Replicas, Storage: c.Storage,
		DuplicateWindow: time.Duration(c.DuplicateWindow), MaxBytes: c.MaxBytes, MaxMsgs: c.MaxMsgs}
}

// LargeRecordPolicy is what happens to a record too big for one NATS
// message: nats.oversize, the deprecated name, when it is set, else
// nats.large_records.
func (n NATSConfig) LargeRecordPolicy() relay.OversizePolicy {
	if n.Oversize != "" {
		return n.Oversize
	}
	return n.LargeRecords
}

// Spec is the Object Store bucket nats.object_store describes.
func (c ObjectStoreConfig) Spec() relay.ObjectBucketSpec {
	return relay.ObjectBucketSpec{Bucket: c.Bucket, Storage: c.Storage, Replicas: c.Replicas, MaxAge: time.Duration(c.MaxAge)}
}

// Spec is the dead-letter stream nats.dead_letter_stream describes.
func (c DeadLetterStreamConfig) Spec() relay.DeadLetterStreamSpec {
	return relay.DeadLetterStreamSpec{Name: c.Name, Storage: c.Storage, Replicas: c.Replicas, MaxAge: time.Duration(c.MaxAge)}
}

// Spec is the stream as fanout consumes it.
func (s StreamConfig) Spec() fanout.StreamSpec {
	return fanout.StreamSpec{
		Name:                s.StreamName(),
		ARN:                 s.ARN,
		Consumer:            s.Consumer,
		ConsumerARN:         s.ConsumerARN,
		StartPosition:       s.StartPosition,
		StartTimestamp:      s.StartTime(),
		OnExpiredCheckpoint: s.OnExpiredCheckpoint,
	}
}
