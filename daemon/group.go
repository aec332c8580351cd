package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/fanoutd/fanoutd/checkpoint"
	"github.com/fanoutd/fanoutd/checkpoint/kvstore"
	"github.com/fanoutd/fanoutd/config"
	"github.com/fanoutd/fanoutd/coordination"
	"github.com/fanoutd/fanoutd/fanout"
	"github.com/fanoutd/fanoutd/jsassets"
	"github.com/fanoutd/fanoutd/monitor"
)

// instanceName is coordination.instance, or the host name and a random
// suffix: unique per process start, even for two processes with one pid in
// two containers of one host name.
func instanceName(cfg *config.Config) string {
	if cfg.Coordination.Instance != "" {
		return cfg.Coordination.Instance
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "fanoutd"
	}
	return host + "-" + coordination.RandomSuffix()
}

// bucket returns the key-value bucket b, configured under key, creating it
// when missing, and its spec.
func bucket(ctx context.Context, nc *nats.Conn, key string, b config.BucketConfig, log zerolog.Logger) (jetstream.KeyValue, jsassets.KVSpec, error) {
	spec := b.Spec(key)
	kv, err := jsassets.EnsureKV(ctx, nc, spec, log)
	if err != nil {
		return nil, spec, fmt.Errorf("%s: %w (does the NATS server have JetStream, and may fanoutd's user create key-value buckets?)", key, err)
	}
	return kv, spec, nil
}

// openShared opens the JetStream checkpoint store and, with coordination,
// joins the group.
func (d *Daemon) openShared(ctx context.Context, cfg *config.Config) error {
	instance := instanceName(cfg)
	kv, _, err := bucket(ctx, d.nc, "checkpoint.bucket", cfg.Checkpoint.Bucket, d.log)
	if err != nil {
		return err
	}
	d.store = kvstore.New(kv, instance)
	if cfg.Coordination.Mode != config.CoordinationJetStream {
		return nil
	}
	gkv, gbc, err := bucket(ctx, d.nc, "coordination.bucket", cfg.Coordination.Bucket, d.log)
	if err != nil {
		return err
	}
	d.group, err = coordination.Join(ctx, gkv, coordination.Options{
		Instance: instance, LeaseTTL: time.Duration(cfg.Coordination.LeaseTTL), Log: d.log, ObserveRenew: d.mon.ObserveLeaseRenew,
		Conn: d.nc, Bucket: gbc})
	if errors.Is(err, coordination.ErrInstanceInUse) {
		return &ConfigError{err}
	}
	return err
}

// groupLeases adapts a coordination.Group to fanout.Leases.
type groupLeases struct{ g *coordination.Group }

func (a groupLeases) Claim(ctx context.Context, stream, consumer, shard string) (fanout.Lease, error) {
	l, err := a.g.Claim(ctx, stream, consumer, shard)
	if l == nil {
		return nil, err // not a nil *Lease in a non-nil interface
	}
	return l, err
}

func (a groupLeases) SetShards(stream, consumer string, readable int) {
	a.g.SetShards(stream, consumer, readable)
}
func (a groupLeases) Wake() <-chan struct{} { return a.g.Wake() }

// groupStatus is the group with every lease's checkpoint (monitor source).
func (d *Daemon) groupStatus() monitor.GroupStatus {
	gs := monitor.GroupStatus{Instance: d.group.Instance(), Members: d.group.Members(), Stats: d.group.Stats()}
	cps := map[[2]string]map[string]checkpoint.Checkpoint{}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, l := range d.group.Leases() {
		k := [2]string{l.Stream, l.Consumer}
		if _, ok := cps[k]; !ok {
			cps[k], _ = d.store.List(ctx, l.Stream, l.Consumer)
		}
		cp := cps[k][l.Shard]
		gs.Leases = append(gs.Leases, monitor.LeaseStatus{Stream: l.Stream, Consumer: l.Consumer, Shard: l.Shard,
			Owner: l.Owner, Expires: l.Expires, Checkpoint: cp.SequenceNumber, ShardEnded: cp.ShardEnded})
	}
	return gs
}
