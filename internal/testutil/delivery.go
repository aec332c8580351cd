package testutil

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// Delivery is one record as a test saw it arrive: its partition key ("" when
// the receiver cannot tell it) and its data, "key:i" as Records writes it.
type Delivery struct {
	PartitionKey string
	Data         []byte
}

// Mode is what a delivery check accepts.
type Mode int

const (
	// ExactlyOnce: every key's records 0..n-1 once each, in order.
	ExactlyOnce Mode = iota
	// AtLeastOnce: every key's records 0..n-1, each at least once; a
	// duplicate may only replay what came before (a redelivery from the
	// last confirmed position), so per key the first arrivals are in order.
	AtLeastOnce
)

// RecordData is the data of record i of key: "key:i".
func RecordData(key string, i int) []byte { return []byte(key + ":" + strconv.Itoa(i)) }

// Want is what a test expects when it wrote n records for every key.
func Want(keys []string, n int) map[string]int {
	w := make(map[string]int, len(keys))
	for _, k := range keys {
		w[k] = n
	}
	return w
}

// CheckDelivered checks that got holds, for every key of want, its records
// 0..want[key]-1 (and nothing else), as mode requires. It returns the number
// of duplicates (always 0 with ExactlyOnce).
func CheckDelivered(t testing.TB, got []Delivery, want map[string]int, mode Mode) (duplicates int) {
	t.Helper()
	next := map[string]int{} // the next record each key has not had yet
	for _, d := range got {
		k, i, err := parseRecordData(d.Data)
		if err != nil {
			t.Fatalf("%v", err)
		}
		if d.PartitionKey != "" && d.PartitionKey != k {
			t.Fatalf("record %q has partition key %q", d.Data, d.PartitionKey)
		}
		n, ok := want[k]
		if !ok {
			t.Fatalf("record %q: key %s was not written", d.Data, k)
		}
		if i >= n {
			t.Fatalf("record %q: key %s had only %d records written", d.Data, k, n)
		}
		switch {
		case i == next[k]:
			next[k]++
		case mode == AtLeastOnce && i < next[k]:
			duplicates++
		case i < next[k]:
			t.Fatalf("key %s: record %d again after %d (duplicate)", k, i, next[k]-1)
		default:
			t.Fatalf("key %s: record %d before %d (gap or reorder)", k, i, next[k])
		}
	}
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if next[k] != want[k] {
			t.Fatalf("key %s: %d of its %d records arrived (the first missing: %d)", k, next[k], want[k], next[k])
		}
	}
	return duplicates
}

func parseRecordData(d []byte) (string, int, error) {
	k, s, ok := strings.Cut(string(d), ":")
	if !ok {
		return "", 0, fmt.Errorf("record %q is not key:i", d)
	}
	i, err := strconv.Atoi(s)
	if err != nil || i < 0 {
		return "", 0, fmt.Errorf("record %q is not key:i", d)
	}
	return k, i, nil
}
