package jsassets

import (
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Storage is where JetStream keeps an asset's data.
type Storage int

// The storages; the zero value is FileStorage.
const (
	FileStorage Storage = iota
	MemoryStorage
)

// ParseStorage parses the config's spelling: "file" or "memory".
func ParseStorage(s string) (Storage, error) {
	switch s {
	case "file":
		return FileStorage, nil
	case "memory":
		return MemoryStorage, nil
	}
	return FileStorage, fmt.Errorf("must be one of file, memory (got %q)", s)
}

func (s Storage) String() string {
	if s == MemoryStorage {
		return "memory"
	}
	return "file"
}

func (s Storage) jetstream() jetstream.StorageType {
	if s == MemoryStorage {
		return jetstream.MemoryStorage
	}
	return jetstream.FileStorage
}

// Replicas is how many servers keep an asset: 1 to 5, or AutoReplicas.
type Replicas int

// AutoReplicas is 3 when connected to a cluster of at least three servers,
// else 1.
const AutoReplicas Replicas = 0

// Count is the number of replicas r asks for on nc's cluster.
func (r Replicas) Count(nc *nats.Conn) int {
	if r > 0 {
		return int(r)
	}
	if nc.ConnectedClusterName() != "" && len(nc.Servers()) >= 3 {
		return 3
	}
	return 1
}
