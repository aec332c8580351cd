package checkpoint

import (
	"context"
	"sync"
)

// MemStore keeps checkpoints in memory, for tests of the packages that use
// a Store. It validates keys like FileStore does.
type MemStore struct {
	mu     sync.Mutex
	m      map[memKey]Checkpoint
	closed bool
}

type memKey struct{ stream, consumer, shard string }

var _ Store = (*MemStore)(nil)

// NewMemStore returns an empty MemStore.
func NewMemStore() *MemStore {
	return &MemStore{m: make(map[memKey]Checkpoint)}
}

// Get implements Store.
func (s *MemStore) Get(ctx context.Context, stream, consumer, shardID string) (Checkpoint, bool, error) {
	if err := ctx.Err(); err != nil {
		return Checkpoint{}, false, err
	}
	if err := ValidateKey(stream, consumer, shardID); err != nil {
		return Checkpoint{}, false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return Checkpoint{}, false, ErrClosed
	}
	cp, ok := s.m[memKey{stream, consumer, shardID}]
	return cp, ok, nil
}

// Put implements Store.
func (s *MemStore) Put(ctx context.Context, stream, consumer, shardID string, cp Checkpoint) error {
	if err := CheckPut(ctx, stream, consumer, shardID, &cp); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	s.m[memKey{stream, consumer, shardID}] = cp
	return nil
}

// List implements Store.
func (s *MemStore) List(ctx context.Context, stream, consumer string) (map[string]Checkpoint, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := ValidateKey(stream, consumer, "x"); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	out := make(map[string]Checkpoint)
	for k, cp := range s.m {
		if k.stream == stream && k.consumer == consumer {
			out[k.shard] = cp
		}
	}
	return out, nil
}

// Reset implements Store.
func (s *MemStore) Reset(ctx context.Context, stream, consumer string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := ValidateKey(stream, consumer, "x"); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	for k := range s.m {
		if k.stream == stream && k.consumer == consumer {
			delete(s.m, k)
		}
	}
	return nil
}

// Close implements Store. Later calls return ErrClosed.
func (s *MemStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}
