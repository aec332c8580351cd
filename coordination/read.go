package coordination

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// MemberInfo is one instance's last heartbeat in the bucket.
type MemberInfo struct {
	Name string
	At   time.Time
}

// maxKeys bounds what Read takes from a bucket.
const maxKeys = 100_000

// Read returns the leases and members a coordination bucket holds now, for
// operators who read it from outside the group: a lease's Expires is what
// its owner wrote (zero for a free lease); a member that stopped is still
// listed until its key ends, with its last heartbeat.
func Read(ctx context.Context, kv jetstream.KeyValue) ([]LeaseInfo, []MemberInfo, error) {
	w, err := kv.WatchFiltered(ctx, []string{"lease.>", "member.>"})
	if err != nil {
		return nil, nil, fmt.Errorf("read bucket %s: %w", kv.Bucket(), err)
	}
	defer w.Stop()
	var leases []LeaseInfo
	var members []MemberInfo
	for n := 0; ; n++ {
		var e jetstream.KeyValueEntry
		select {
		case <-ctx.Done():
			return nil, nil, fmt.Errorf("read bucket %s: %w", kv.Bucket(), ctx.Err())
		case u, ok := <-w.Updates():
			if !ok {
				return nil, nil, fmt.Errorf("read bucket %s: %w", kv.Bucket(), errors.New("watcher closed"))
			}
			e = u
		}
		if e == nil { // every current value was delivered
			break
		}
		if n > maxKeys {
			return nil, nil, fmt.Errorf("read bucket %s: more than %d keys", kv.Bucket(), maxKeys)
		}
		var v leaseValue
		put := e.Operation() == jetstream.KeyValuePut && json.Unmarshal(e.Value(), &v) == nil
		if name, ok := strings.CutPrefix(e.Key(), "member."); ok {
			if put && v.Owner != "" {
				members = append(members, MemberInfo{Name: unpart(name), At: v.At})
			}
			continue
		}
		parts := strings.SplitN(strings.TrimPrefix(e.Key(), "lease."), ".", 3)
		if len(parts) != 3 {
			continue
		}
		li := LeaseInfo{Stream: unpart(parts[0]), Consumer: unpart(parts[1]), Shard: unpart(parts[2])}
		if put {
			li.Owner, li.Expires = v.Owner, v.Expires
		}
		leases = append(leases, li)
	}
	slices.SortFunc(leases, func(a, b LeaseInfo) int {
		return strings.Compare(a.Stream+"/"+a.Consumer+"/"+a.Shard, b.Stream+"/"+b.Consumer+"/"+b.Shard)
	})
	slices.SortFunc(members, func(a, b MemberInfo) int { return strings.Compare(a.Name, b.Name) })
	return leases, members, nil
}
