package config

import (
	"time"

	"github.com/fanoutd/fanoutd/fanout"
	"github.com/fanoutd/fanoutd/jsassets"
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
func (c JetStreamConfig) Spec() jsassets.StreamSpec {
	return jsassets.StreamSpec{Name: c.Name, Subjects: c.Subjects, Replicas: jsassets.Replicas(c.Replicas), Storage: storage(c.Storage),
		DuplicateWindow: time.Duration(c.DuplicateWindow), MaxBytes: c.MaxBytes, MaxMsgs: c.MaxMsgs, Key: "nats.stream"}
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
func (c ObjectStoreConfig) Spec() jsassets.ObjectStoreSpec {
	return jsassets.ObjectStoreSpec{Bucket: c.Bucket, Storage: storage(c.Storage), Replicas: jsassets.Replicas(c.Replicas),
		MaxAge: time.Duration(c.MaxAge), Key: "nats.object_store"}
}

// Spec is the dead-letter stream nats.dead_letter_stream describes.
func (c DeadLetterStreamConfig) Spec() jsassets.DeadLetterStreamSpec {
	return jsassets.DeadLetterStreamSpec{Name: c.Name, Storage: storage(c.Storage), Replicas: jsassets.Replicas(c.Replicas),
		MaxAge: time.Duration(c.MaxAge), Key: "nats.dead_letter_stream"}
}

// Spec is the key-value bucket b describes, configured under key.
func (b BucketConfig) Spec(key string) jsassets.KVSpec {
	return jsassets.KVSpec{Name: b.Name, Replicas: jsassets.Replicas(b.Replicas), Storage: storage(b.Storage), Key: key}
}

// storage is s, which Validate has checked, as jsassets takes it.
func storage(s string) jsassets.Storage {
	st, _ := jsassets.ParseStorage(s)
	return st
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
		Read:                s.Read,
		Polling:             fanout.PollingSpec{Interval: time.Duration(s.Polling.Interval), MaxRecords: s.Polling.MaxRecords},
	}
}
