package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/fanoutd/fanoutd/internal/testutil"
)

// stores runs a test against every Store implementation.
func stores(t *testing.T, test func(t *testing.T, s Store)) {
	t.Run("FileStore", func(t *testing.T) {
		s, err := NewFileStore(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		test(t, s)
	})
}

var t0 = time.Date(2024, 1, 2, 15, 4, 5, 123456789, time.UTC)

func TestStore_RoundTrip(t *testing.T) {
	t.Parallel()
	stores(t, func(t *testing.T, s Store) {
		ctx := context.Background()
		if _, ok, err := s.Get(ctx, "orders", "fanoutd", "shardId-000000000000"); err != nil || ok {
			t.Fatalf("Get(empty) = _, %v, %v; want false, nil", ok, err)
		}
		want := Checkpoint{SequenceNumber: "49590338271490256608559692538361571095921575989136588898", UpdatedAt: t0}
		if err := s.Put(ctx, "orders", "fanoutd", "shardId-000000000000", want); err != nil {
			t.Fatal(err)
		}
		got, ok, err := s.Get(ctx, "orders", "fanoutd", "shardId-000000000000")
		if err != nil || !ok {
			t.Fatalf("Get = _, %v, %v; want true, nil", ok, err)
		}
		if !got.UpdatedAt.Equal(want.UpdatedAt) || got.SequenceNumber != want.SequenceNumber || got.ShardEnded {
			t.Fatalf("Get = %+v, want %+v", got, want)
		}
		// Other keys are unaffected.
		for _, k := range [][3]string{
			{"orders", "fanoutd", "shardId-000000000001"},
			{"orders", "other", "shardId-000000000000"},
			{"payments", "fanoutd", "shardId-000000000000"},
		} {
			if _, ok, err := s.Get(ctx, k[0], k[1], k[2]); err != nil || ok {
				t.Fatalf("Get(%v) = _, %v, %v; want false, nil", k, ok, err)
			}
		}
	})
}

func TestStore_Overwrite(t *testing.T) {
	t.Parallel()
	stores(t, func(t *testing.T, s Store) {
		ctx := context.Background()
		for _, cp := range []Checkpoint{
			{SequenceNumber: "1", UpdatedAt: t0},
			{SequenceNumber: "2", UpdatedAt: t0.Add(time.Second)},
			{ShardEnded: true, UpdatedAt: t0.Add(2 * time.Second)},
		} {
			if err := s.Put(ctx, "orders", "fanoutd", "shardId-1", cp); err != nil {
				t.Fatal(err)
			}
			got, _, err := s.Get(ctx, "orders", "fanoutd", "shardId-1")
			if err != nil {
				t.Fatal(err)
			}
			if got.SequenceNumber != cp.SequenceNumber || got.ShardEnded != cp.ShardEnded || !got.UpdatedAt.Equal(cp.UpdatedAt) {
				t.Fatalf("Get = %+v, want %+v", got, cp)
			}
		}
	})
}

func TestStore_List(t *testing.T) {
	t.Parallel()
	stores(t, func(t *testing.T, s Store) {
		ctx := context.Background()
		if got, err := s.List(ctx, "orders", "fanoutd"); err != nil || len(got) != 0 || got == nil {
			t.Fatalf("List(empty) = %v, %v; want empty map", got, err)
		}
		want := map[string]Checkpoint{
			"shardId-0": {SequenceNumber: "10", UpdatedAt: t0},
			"shardId-1": {SequenceNumber: "11", UpdatedAt: t0},
			"shardId-2": {ShardEnded: true, UpdatedAt: t0},
		}
		for id, cp := range want {
			if err := s.Put(ctx, "orders", "fanoutd", id, cp); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Put(ctx, "orders", "other", "shardId-9", Checkpoint{SequenceNumber: "9"}); err != nil {
			t.Fatal(err)
		}
		if err := s.Put(ctx, "payments", "fanoutd", "shardId-9", Checkpoint{SequenceNumber: "9"}); err != nil {
			t.Fatal(err)
		}
		got, err := s.List(ctx, "orders", "fanoutd")
		if err != nil {
			t.Fatal(err)
		}
		if !equalCheckpoints(got, want) {
			t.Fatalf("List = %+v, want %+v", got, want)
		}
	})
}

func equalCheckpoints(a, b map[string]Checkpoint) bool {
	if len(a) != len(b) {
		return false
	}
	for k, x := range a {
		y, ok := b[k]
		if !ok || x.SequenceNumber != y.SequenceNumber || x.ShardEnded != y.ShardEnded || !x.UpdatedAt.Equal(y.UpdatedAt) {
			return false
		}
	}
	return true
}

// TestStore_ConcurrentPuts has many goroutines write their own shards and a
// few shared ones at once; run with -race.
func TestStore_ConcurrentPuts(t *testing.T) {
	t.Parallel()
	stores(t, func(t *testing.T, s Store) {
		ctx := context.Background()
		const workers, puts = 16, 20
		testutil.Concurrently(t, workers, func(w int) error {
			own := fmt.Sprintf("shardId-%03d", w)
			shared := fmt.Sprintf("shardId-shared-%d", w%2)
			for i := range puts {
				cp := Checkpoint{SequenceNumber: fmt.Sprintf("%d%06d", w, i)}
				if err := s.Put(ctx, "orders", "fanoutd", own, cp); err != nil {
					return err
				}
				if err := s.Put(ctx, "orders", "fanoutd", shared, cp); err != nil {
					return err
				}
				if _, _, err := s.Get(ctx, "orders", "fanoutd", shared); err != nil {
					return err
				}
			}
			return nil
		})
		got, err := s.List(ctx, "orders", "fanoutd")
		if err != nil {
			t.Fatal(err)
		}
		if g, w := len(got), workers+2; g != w {
			t.Fatalf("List has %d shards, want %d", g, w)
		}
		for w := range workers {
			id := fmt.Sprintf("shardId-%03d", w)
			if g, want := got[id].SequenceNumber, fmt.Sprintf("%d%06d", w, puts-1); g != want {
				t.Errorf("%s = %q, want %q (the last Put)", id, g, want)
			}
		}
	})
}

func TestStore_InvalidKeys(t *testing.T) {
	t.Parallel()
	stores(t, func(t *testing.T, s Store) {
		ctx := context.Background()
		for _, k := range [][3]string{
			{"", "c", "s"},
			{"a", "", "s"},
			{"a", "c", ""},
			{"..", "c", "s"},
			{"a", ".", "s"},
			{"a", "c", ".."},
			{"a/b", "c", "s"},
			{"a", "../c", "s"},
			{"a", "c", "s/../../x"},
			{"a", "c", `s\x`},
			{"a", "c", "s\x00"},
			{"a", "c", "s x"},
			{"/abs", "c", "s"},
			{"a", "c", string(make([]byte, 129))},
		} {
			err := s.Put(ctx, k[0], k[1], k[2], Checkpoint{SequenceNumber: "1"})
			if !errors.Is(err, ErrInvalidKey) {
				t.Errorf("Put(%q) = %v, want ErrInvalidKey", k, err)
			}
			if _, _, err := s.Get(ctx, k[0], k[1], k[2]); !errors.Is(err, ErrInvalidKey) {
				t.Errorf("Get(%q) = %v, want ErrInvalidKey", k, err)
			}
		}
		for _, k := range [][2]string{{"", "c"}, {"a", ""}, {"..", "c"}, {"a", "."}, {"a/b", "c"}, {"a", "../c"}, {"/abs", "c"}} {
			if _, err := s.List(ctx, k[0], k[1]); !errors.Is(err, ErrInvalidKey) {
				t.Errorf("List(%q) = %v, want ErrInvalidKey", k, err)
			}
		}
		// Names Kinesis allows are fine, dots included.
		if err := s.Put(ctx, "my.stream_1-x", ".consumer", "shardId-000000000007", Checkpoint{SequenceNumber: "1"}); err != nil {
			t.Fatal(err)
		}
	})
}

func TestStore_EmptyCheckpoint(t *testing.T) {
	t.Parallel()
	stores(t, func(t *testing.T, s Store) {
		err := s.Put(context.Background(), "a", "c", "s", Checkpoint{UpdatedAt: t0})
		if !errors.Is(err, ErrEmptyCheckpoint) {
			t.Fatalf("Put(empty) = %v, want ErrEmptyCheckpoint", err)
		}
	})
}

func TestStore_SetsUpdatedAt(t *testing.T) {
	t.Parallel()
	stores(t, func(t *testing.T, s Store) {
		ctx := context.Background()
		before := time.Now()
		if err := s.Put(ctx, "a", "c", "s", Checkpoint{SequenceNumber: "1"}); err != nil {
			t.Fatal(err)
		}
		got, _, err := s.Get(ctx, "a", "c", "s")
		if err != nil {
			t.Fatal(err)
		}
		if got.UpdatedAt.Before(before.Add(-time.Second)) || got.UpdatedAt.After(time.Now().Add(time.Second)) {
			t.Fatalf("UpdatedAt = %v, want about now", got.UpdatedAt)
		}
	})
}

func TestStore_ContextAndClose(t *testing.T) {
	t.Parallel()
	stores(t, func(t *testing.T, s Store) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := s.Put(ctx, "a", "c", "s", Checkpoint{SequenceNumber: "1"}); !errors.Is(err, context.Canceled) {
			t.Fatalf("Put(canceled) = %v, want context.Canceled", err)
		}
		if _, _, err := s.Get(ctx, "a", "c", "s"); !errors.Is(err, context.Canceled) {
			t.Fatalf("Get(canceled) = %v, want context.Canceled", err)
		}

		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("second Close = %v", err)
		}
		bg := context.Background()
		if err := s.Put(bg, "a", "c", "s", Checkpoint{SequenceNumber: "1"}); !errors.Is(err, ErrClosed) {
			t.Fatalf("Put after Close = %v, want ErrClosed", err)
		}
		if _, _, err := s.Get(bg, "a", "c", "s"); !errors.Is(err, ErrClosed) {
			t.Fatalf("Get after Close = %v, want ErrClosed", err)
		}
		if _, err := s.List(bg, "a", "c"); !errors.Is(err, ErrClosed) {
			t.Fatalf("List after Close = %v, want ErrClosed", err)
		}
	})
}

func TestStore_Delete(t *testing.T) {
	t.Parallel()
	stores(t, func(t *testing.T, s Store) {
		ctx := context.Background()
		for _, id := range []string{"shardId-0", "shardId-1"} {
			if err := s.Put(ctx, "a", "c", id, Checkpoint{SequenceNumber: "1"}); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Delete(ctx, "a", "c", "shardId-0"); err != nil {
			t.Fatal(err)
		}
		if err := s.Delete(ctx, "a", "c", "shardId-0"); err != nil {
			t.Fatalf("Delete of a missing checkpoint = %v, want nil", err)
		}
		got, err := s.List(ctx, "a", "c")
		if err != nil || len(got) != 1 || got["shardId-1"].SequenceNumber != "1" {
			t.Fatalf("List after Delete = %v, %v; want only shardId-1", got, err)
		}
		if err := s.Delete(ctx, "a", "c", "../x"); !errors.Is(err, ErrInvalidKey) {
			t.Fatalf("Delete(invalid) = %v, want ErrInvalidKey", err)
		}
	})
}

// TestStore_SubSequence checks that a checkpoint inside a KPL aggregate
// keeps its sub-sequence, and that one after it reads without.
func TestStore_SubSequence(t *testing.T) {
	t.Parallel()
	stores(t, func(t *testing.T, s Store) {
		ctx := context.Background()
		for _, want := range []Checkpoint{
			{SequenceNumber: "49590338271490256608559692538361571095921575989136588898", SubSequenceNumber: 0, InAggregate: true, UpdatedAt: t0},
			{SequenceNumber: "49590338271490256608559692538361571095921575989136588898", SubSequenceNumber: 1749999, InAggregate: true, UpdatedAt: t0},
			{SequenceNumber: "49590338271490256608559692538361571095921575989136588899", UpdatedAt: t0},
		} {
			if err := s.Put(ctx, "orders", "fanoutd", "shardId-0", want); err != nil {
				t.Fatal(err)
			}
			got, ok, err := s.Get(ctx, "orders", "fanoutd", "shardId-0")
			if err != nil || !ok || got.SequenceNumber != want.SequenceNumber || got.SubSequenceNumber != want.SubSequenceNumber || got.InAggregate != want.InAggregate {
				t.Fatalf("Get = %+v, %v, %v; want %+v", got, ok, err, want)
			}
		}
	})
}
