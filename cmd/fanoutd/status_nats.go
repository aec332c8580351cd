package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/fanoutd/fanoutd/checkpoint/kvstore"
	"github.com/fanoutd/fanoutd/config"
	"github.com/fanoutd/fanoutd/coordination"
	"github.com/fanoutd/fanoutd/relay"
)

// shardJSON is one line of `status --context --json`: a shard's checkpoint
// and, in a group, its lease.
type shardJSON struct {
	Stream            string    `json:"stream"`
	Consumer          string    `json:"consumer"`
	Shard             string    `json:"shard"`
	SequenceNumber    string    `json:"sequence_number,omitempty"`
	SubSequenceNumber int64     `json:"sub_sequence_number,omitempty"`
	InAggregate       bool      `json:"in_aggregate,omitempty"`
	ShardEnded        bool      `json:"shard_ended,omitempty"`
	UpdatedAt         time.Time `json:"updated_at,omitzero"`
	Instance          string    `json:"instance,omitempty"`
	// Owner holds the lease ("" when free or without coordination);
	// LeaseExpires is when it ends unless renewed.
	Owner        string    `json:"owner,omitempty"`
	LeaseExpires time.Time `json:"lease_expires,omitzero"`
	leased       bool
}

// groupView is what the daemons keep in NATS: checkpoints, and the leases
// and members of a group when there is one.
type groupView struct {
	server, bucket, groupBucket string // groupBucket "": no coordination bucket
	shards                      []shardJSON
	members                     []coordination.MemberInfo
}

// runNATS prints the checkpoints kept in the JetStream bucket, and the
// group's leases, read through the nats context: the state of every
// instance without reaching any of them.
func (s *StatusCmd) runNATS(ctx context.Context, w io.Writer) error {
	ncfg, err := config.ContextNATS(s.Context, nil)
	if err != nil {
		return usageError{fmt.Errorf("--context: %w", err)}
	}
	if len(ncfg.Servers) == 0 {
		ncfg.Servers = []string{config.DefaultNATSServer}
	}
	ncfg.Name = "fanoutd-status"
	nc, err := relay.Connect(ctx, ncfg.ConnOptions(), zerolog.Nop())
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	v := groupView{server: relay.RedactURL(nc.ConnectedUrl()), bucket: cmp.Or(s.Bucket, config.DefaultCheckpointBucket)}
	if err := v.read(ctx, js, cmp.Or(s.CoordinationBucket, config.DefaultCoordinationBucket)); err != nil {
		return err
	}
	if s.JSON {
		enc := json.NewEncoder(w)
		for _, sh := range v.shards {
			if err := enc.Encode(sh); err != nil {
				return fmt.Errorf("write: %w", err)
			}
		}
		return nil
	}
	v.print(w, time.Now())
	return nil
}

func (v *groupView) read(ctx context.Context, js jetstream.JetStream, groupBucket string) error {
	kv, err := js.KeyValue(ctx, v.bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return fmt.Errorf("no checkpoint bucket %s on %s: daemons keep checkpoints in NATS with checkpoint.store: jetstream (--bucket names checkpoint.bucket.name)", v.bucket, v.server)
	}
	if err != nil {
		return fmt.Errorf("open checkpoint bucket %s: %w", v.bucket, err)
	}
	entries, err := kvstore.All(ctx, kv)
	if err != nil {
		return err
	}
	byKey := map[string]int{}
	for _, e := range entries {
		cp := e.Checkpoint
		byKey[e.Stream+"\x00"+e.Consumer+"\x00"+e.Shard] = len(v.shards)
		v.shards = append(v.shards, shardJSON{Stream: e.Stream, Consumer: e.Consumer, Shard: e.Shard, SequenceNumber: cp.SequenceNumber,
			SubSequenceNumber: cp.SubSequenceNumber, InAggregate: cp.InAggregate, ShardEnded: cp.ShardEnded, UpdatedAt: cp.UpdatedAt, Instance: e.Instance})
	}
	gkv, err := js.KeyValue(ctx, groupBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil // no group: checkpoints only
	}
	if err != nil {
		return fmt.Errorf("open coordination bucket %s: %w", groupBucket, err)
	}
	leases, members, err := coordination.Read(ctx, gkv)
	if err != nil {
		return err
	}
	v.groupBucket, v.members = groupBucket, members
	for _, l := range leases {
		i, ok := byKey[l.Stream+"\x00"+l.Consumer+"\x00"+l.Shard]
		if !ok { // claimed, no checkpoint yet
			i = len(v.shards)
			v.shards = append(v.shards, shardJSON{Stream: l.Stream, Consumer: l.Consumer, Shard: l.Shard})
		}
		v.shards[i].Owner, v.shards[i].LeaseExpires, v.shards[i].leased = l.Owner, l.Expires, true
	}
	slices.SortStableFunc(v.shards, func(a, b shardJSON) int {
		return strings.Compare(a.Stream+"\x00"+a.Consumer+"\x00"+a.Shard, b.Stream+"\x00"+b.Consumer+"\x00"+b.Shard)
	})
	return nil
}

func (v *groupView) print(w io.Writer, now time.Time) {
	fmt.Fprintf(w, "checkpoints in bucket %s on %s: %d shards\n", v.bucket, v.server, len(v.shards))
	if v.groupBucket != "" {
		var ms []string
		for _, m := range v.members {
			ms = append(ms, fmt.Sprintf("%s (heartbeat %s)", m.Name, ago(now, m.At)))
		}
		fmt.Fprintf(w, "group in bucket %s: members %s\n", v.groupBucket, strings.Join(ms, ", "))
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	head := "STREAM\tCONSUMER\tSHARD\tCHECKPOINT\tSAVED\tBY"
	if v.groupBucket != "" {
		head += "\tOWNER\tLEASE"
	}
	fmt.Fprintln(tw, head)
	for _, sh := range v.shards {
		pos := sh.SequenceNumber
		switch {
		case sh.ShardEnded:
			pos = "(shard ended)"
		case sh.InAggregate:
			pos = fmt.Sprintf("%s/%d", sh.SequenceNumber, sh.SubSequenceNumber)
		case pos == "":
			pos = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s", sh.Stream, sh.Consumer, sh.Shard, pos, ago(now, sh.UpdatedAt), cmp.Or(sh.Instance, "-"))
		if v.groupBucket != "" {
			owner, lease := "-", "-"
			switch {
			case sh.leased && sh.Owner == "":
				owner = "(free)"
			case sh.leased && sh.LeaseExpires.After(now):
				owner, lease = sh.Owner, "expires in "+sh.LeaseExpires.Sub(now).Round(100*time.Millisecond).String()
			case sh.leased:
				owner, lease = sh.Owner, "expired "+ago(now, sh.LeaseExpires)
			}
			fmt.Fprintf(tw, "\t%s\t%s", owner, lease)
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
}
