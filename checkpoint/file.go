package checkpoint

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// fileVersion is the version of the JSON format; a file with another
// version is an error, not a guess. A checkpoint inside a KPL aggregate is
// written as fileVersionAggregate, so that a binary that does not know
// sub-sequences stops on it instead of resuming after the whole aggregate.
const (
	fileVersion          = 1
	fileVersionAggregate = 2
)

// FileStore keeps one small JSON file per shard, at
// DIR/STREAM/CONSUMER/SHARD.json, replaced atomically on every Put: a crash
// leaves the old file or the new one, never a torn one. One FileStore at a
// time holds a directory: it takes an exclusive lock on DIR/.lock until
// Close, so two daemons cannot overwrite each other's checkpoints.
type FileStore struct {
	dir  string
	lock *os.File // holds the flock on DIR/.lock; nil once closed

	// locks serialize Puts of one shard (striped by key, so memory does not
	// grow with shard churn); Puts of different shards run in parallel.
	seed  maphash.Seed
	locks [64]sync.Mutex

	dirsMu sync.Mutex
	dirs   map[string]bool // stream/consumer directories known to exist durably

	closed    atomic.Bool
	closeOnce sync.Once
}

var _ Store = (*FileStore)(nil)

// lockName is the lock file in the store's root, beside the stream
// directories. (A stream named ".lock" would collide with it; its first Put
// fails with "exists and is not a directory" rather than corrupting the lock.)
const lockName = ".lock"

// NewFileStore returns a FileStore rooted at dir, creating it (mode 0750)
// if needed. It takes the directory's lock (a *LockedError if another
// process holds it) and removes the temporary files a crash left behind.
func NewFileStore(dir string) (*FileStore, error) {
	if dir == "" {
		return nil, errors.New("checkpoint dir is empty")
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("create checkpoint dir: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("stat checkpoint dir: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("checkpoint dir %s is not a directory", dir)
	}
	lock, err := lockDir(dir, filepath.Join(dir, lockName))
	if err != nil {
		return nil, err
	}
	if err := removeTempFiles(dir); err != nil {
		if lock != nil {
			lock.Close()
		}
		return nil, err
	}
	return &FileStore{dir: dir, lock: lock, seed: maphash.MakeSeed(), dirs: make(map[string]bool)}, nil
}

// removeTempFiles removes DIR/STREAM/CONSUMER/*.tmp: the temporary files of
// Puts a crash interrupted. Under the lock, no Put of ours is running.
func removeTempFiles(dir string) error {
	streams, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("list checkpoint dir: %w", err)
	}
	for _, st := range streams {
		if !st.IsDir() {
			continue
		}
		consumers, err := os.ReadDir(filepath.Join(dir, st.Name()))
		if err != nil {
			return fmt.Errorf("list checkpoint dir: %w", err)
		}
		for _, c := range consumers {
			if !c.IsDir() {
				continue
			}
			cdir := filepath.Join(dir, st.Name(), c.Name())
			files, err := os.ReadDir(cdir)
			if err != nil {
				return fmt.Errorf("list checkpoint dir: %w", err)
			}
			for _, f := range files {
				if f.Type().IsRegular() && strings.HasSuffix(f.Name(), tmpExt) {
					if err := os.Remove(filepath.Join(cdir, f.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
						return fmt.Errorf("remove leftover temp file: %w", err)
					}
				}
			}
		}
	}
	return nil
}

// Dir returns the store's root directory.
func (s *FileStore) Dir() string { return s.dir }

// fileRecord is the JSON in each file. The key is repeated so that a file
// read on its own, or copied to the wrong place, says what it is.
type fileRecord struct {
	Version        int       `json:"version"`
	Stream         string    `json:"stream"`
	Consumer       string    `json:"consumer"`
	ShardID        string    `json:"shard_id"`
	SequenceNumber string    `json:"sequence_number"`
	SubSequence    int64     `json:"sub_sequence_number,omitempty"`
	InAggregate    bool      `json:"in_aggregate,omitempty"`
	ShardEnded     bool      `json:"shard_ended"`
	UpdatedAt      time.Time `json:"updated_at"`
	StreamCreated  time.Time `json:"stream_created,omitzero"`
}

const (
	fileExt = ".json"
	tmpExt  = ".tmp"
)

func (s *FileStore) consumerDir(stream, consumer string) string {
	return filepath.Join(s.dir, stream, consumer)
}

// Get implements Store.
func (s *FileStore) Get(ctx context.Context, stream, consumer, shardID string) (Checkpoint, bool, error) {
	if err := s.check(ctx); err != nil {
		return Checkpoint{}, false, err
	}
	if err := ValidateKey(stream, consumer, shardID); err != nil {
		return Checkpoint{}, false, err
	}
	path := filepath.Join(s.consumerDir(stream, consumer), shardID+fileExt)
	cp, err := readFile(path, stream, consumer, shardID)
	if errors.Is(err, fs.ErrNotExist) {
		return Checkpoint{}, false, nil
	}
	if err != nil {
		return Checkpoint{}, false, err
	}
	return cp, true, nil
}

// Put implements Store: write a temporary file in the same directory, fsync
// it, rename it over the checkpoint, fsync the directory.
func (s *FileStore) Put(ctx context.Context, stream, consumer, shardID string, cp Checkpoint) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	if err := CheckPut(ctx, stream, consumer, shardID, &cp); err != nil {
		return err
	}
	version := fileVersion
	if cp.InAggregate {
		version = fileVersionAggregate
	}
	data, err := json.Marshal(fileRecord{
		Version:        version,
		Stream:         stream,
		Consumer:       consumer,
		ShardID:        shardID,
		SequenceNumber: cp.SequenceNumber,
		SubSequence:    cp.SubSequenceNumber,
		InAggregate:    cp.InAggregate,
		ShardEnded:     cp.ShardEnded,
		UpdatedAt:      cp.UpdatedAt,
		StreamCreated:  cp.StreamCreated,
	})
	if err != nil {
		return fmt.Errorf("encode checkpoint: %w", err)
	}
	data = append(data, '\n')

	mu := &s.locks[maphash.String(s.seed, stream+"/"+consumer+"/"+shardID)%uint64(len(s.locks))]
	mu.Lock()
	defer mu.Unlock()

	dir, err := s.ensureDir(stream, consumer)
	if err != nil {
		return err
	}
	path := filepath.Join(dir, shardID+fileExt)
	if err := writeFileAtomic(dir, path, data); err != nil {
		return fmt.Errorf("write checkpoint %s: %w", path, err)
	}
	return nil
}

// List implements Store. A file it cannot read or decode fails the whole
// List: starting a shard from the wrong place is worse than not starting.
func (s *FileStore) List(ctx context.Context, stream, consumer string) (map[string]Checkpoint, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	if err := ValidateKey(stream, consumer, "x"); err != nil {
		return nil, err
	}
	dir := s.consumerDir(stream, consumer)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]Checkpoint{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list checkpoints: %w", err)
	}
	out := make(map[string]Checkpoint, len(entries))
	for _, e := range entries {
		// Temporary files end in ".tmp", never in ".json".
		shardID, ok := strings.CutSuffix(e.Name(), fileExt)
		if !ok || !e.Type().IsRegular() || validatePart("shard ID", shardID) != nil {
			continue
		}
		cp, err := readFile(filepath.Join(dir, e.Name()), stream, consumer, shardID)
		if err != nil {
			return nil, err
		}
		out[shardID] = cp
	}
	return out, nil
}

// Delete implements Store.
func (s *FileStore) Delete(ctx context.Context, stream, consumer, shardID string) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	if err := ValidateKey(stream, consumer, shardID); err != nil {
		return err
	}
	dir := s.consumerDir(stream, consumer)
	err := os.Remove(filepath.Join(dir, shardID+fileExt))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("delete checkpoint: %w", err)
	}
	return syncDir(dir)
}

// Close implements Store. Every Put that returned is already durable, so
// there is nothing to flush; Close releases the directory's lock, and later
// calls return ErrClosed.
//
// A Put running concurrently with Close may finish after the lock is gone;
// callers close the store after the shard loops stopped.
func (s *FileStore) Close() error {
	s.closed.Store(true)
	var err error
	s.closeOnce.Do(func() {
		if s.lock != nil {
			err = s.lock.Close()
		}
	})
	return err
}

func (s *FileStore) check(ctx context.Context) error {
	if s.closed.Load() {
		return ErrClosed
	}
	return ctx.Err()
}

// ensureDir creates DIR/STREAM/CONSUMER once, fsyncing each parent whose
// entries it changed, so that a new shard's first checkpoint is reachable
// after a crash.
func (s *FileStore) ensureDir(stream, consumer string) (string, error) {
	dir := s.consumerDir(stream, consumer)
	s.dirsMu.Lock()
	defer s.dirsMu.Unlock()
	if s.dirs[dir] {
		return dir, nil
	}
	if err := mkdirDurable(s.dir, stream); err != nil {
		return "", err
	}
	if err := mkdirDurable(filepath.Join(s.dir, stream), consumer); err != nil {
		return "", err
	}
	s.dirs[dir] = true
	return dir, nil
}

func mkdirDurable(parent, name string) error {
	path := filepath.Join(parent, name)
	err := os.Mkdir(path, 0o750)
	if errors.Is(err, fs.ErrExist) {
		fi, serr := os.Stat(path)
		if serr != nil {
			return fmt.Errorf("create checkpoint dir: %w", serr)
		}
		if !fi.IsDir() {
			return fmt.Errorf("create checkpoint dir: %s exists and is not a directory", path)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("create checkpoint dir: %w", err)
	}
	return syncDir(parent)
}

func writeFileAtomic(dir, path string, data []byte) (err error) {
	f, err := os.CreateTemp(dir, filepath.Base(path)+".*"+tmpExt)
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(0o640); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(dir)
}

// syncDir makes a directory's entries (a rename, a new file or
// subdirectory) durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		// EINVAL: the file system cannot sync directories; the rename is
		// as durable as it can make it.
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	return nil
}

// readFile reads and checks one checkpoint file. Errors name the file and
// what an operator can do about it.
func readFile(path, stream, consumer, shardID string) (Checkpoint, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return Checkpoint{}, err
		}
		return Checkpoint{}, fmt.Errorf("read checkpoint: %w", err)
	}
	var r fileRecord
	if err := json.Unmarshal(data, &r); err != nil {
		return Checkpoint{}, corrupt(path, err.Error())
	}
	switch {
	case r.Version != fileVersion && r.Version != fileVersionAggregate:
		return Checkpoint{}, corrupt(path, fmt.Sprintf("version %d, want %d or %d", r.Version, fileVersion, fileVersionAggregate))
	case r.InAggregate != (r.Version == fileVersionAggregate):
		return Checkpoint{}, corrupt(path, fmt.Sprintf("version %d with in_aggregate %t", r.Version, r.InAggregate))
	case r.Stream != stream || r.Consumer != consumer || r.ShardID != shardID:
		return Checkpoint{}, corrupt(path, fmt.Sprintf("it is for stream %q, consumer %q, shard %q", r.Stream, r.Consumer, r.ShardID))
	case r.SequenceNumber == "" && !r.ShardEnded:
		return Checkpoint{}, corrupt(path, "no sequence number")
	}
	return Checkpoint{SequenceNumber: r.SequenceNumber, SubSequenceNumber: r.SubSequence, InAggregate: r.InAggregate, ShardEnded: r.ShardEnded, UpdatedAt: r.UpdatedAt, StreamCreated: r.StreamCreated}, nil
}

func corrupt(path, why string) error {
	return fmt.Errorf("corrupt checkpoint file %s: %s; fix or remove it (without it the shard starts from start_position)", path, why)
}
