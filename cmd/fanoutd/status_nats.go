package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/fanoutd/fanoutd/checkpoint/kvstore"
	"github.com/fanoutd/fanoutd/config"
	"github.com/fanoutd/fanoutd/relay"
)

// checkpointJSON is one line of `status --context --json`.
type checkpointJSON struct {
	Stream            string    `json:"stream"`
	Consumer          string    `json:"consumer"`
	Shard             string    `json:"shard"`
	SequenceNumber    string    `json:"sequence_number,omitempty"`
	SubSequenceNumber int64     `json:"sub_sequence_number,omitempty"`
	InAggregate       bool      `json:"in_aggregate,omitempty"`
	ShardEnded        bool      `json:"shard_ended,omitempty"`
	UpdatedAt         time.Time `json:"updated_at"`
	Instance          string    `json:"instance,omitempty"`
}

// runNATS prints the checkpoints kept in the JetStream bucket, read through
// the nats context: what every instance of a group has confirmed, without
// reaching any of them.
func (s *StatusCmd) runNATS(ctx context.Context, w io.Writer) error {
	ncfg, err := config.ContextNATS(s.Context, nil)
	if err != nil {
		return usageError{fmt.Errorf("--context: %w", err)}
	}
	if len(ncfg.Servers) == 0 {
		ncfg.Servers = []string{config.DefaultNATSServer}
	}
	ncfg.Name = "fanoutd-status"
	bucket := s.Bucket
	if bucket == "" {
		bucket = config.DefaultCheckpointBucket
	}
	nc, err := relay.Connect(ctx, ncfg.ConnOptions(), zerolog.Nop())
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	kv, err := js.KeyValue(ctx, bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return fmt.Errorf("no checkpoint bucket %s on %s: daemons keep checkpoints in NATS with checkpoint.store: jetstream (--bucket names checkpoint.bucket.name)", bucket, relay.RedactURL(nc.ConnectedUrl()))
	}
	if err != nil {
		return fmt.Errorf("open checkpoint bucket %s: %w", bucket, err)
	}
	entries, err := kvstore.All(ctx, kv)
	if err != nil {
		return err
	}
	if s.JSON {
		enc := json.NewEncoder(w)
		for _, e := range entries {
			cp := e.Checkpoint
			if err := enc.Encode(checkpointJSON{Stream: e.Stream, Consumer: e.Consumer, Shard: e.Shard, SequenceNumber: cp.SequenceNumber,
				SubSequenceNumber: cp.SubSequenceNumber, InAggregate: cp.InAggregate, ShardEnded: cp.ShardEnded, UpdatedAt: cp.UpdatedAt, Instance: e.Instance}); err != nil {
				return fmt.Errorf("write: %w", err)
			}
		}
		return nil
	}
	printCheckpoints(w, bucket, relay.RedactURL(nc.ConnectedUrl()), entries, time.Now())
	return nil
}

func printCheckpoints(w io.Writer, bucket, server string, entries []kvstore.Entry, now time.Time) {
	fmt.Fprintf(w, "checkpoints in bucket %s on %s: %d shards\n\n", bucket, server, len(entries))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STREAM\tCONSUMER\tSHARD\tCHECKPOINT\tSAVED\tBY")
	for _, e := range entries {
		cp := e.Checkpoint
		pos := cp.SequenceNumber
		switch {
		case cp.ShardEnded:
			pos = "(shard ended)"
		case cp.InAggregate:
			pos = fmt.Sprintf("%s/%d", cp.SequenceNumber, cp.SubSequenceNumber)
		}
		by := e.Instance
		if by == "" {
			by = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", e.Stream, e.Consumer, e.Shard, pos, ago(now, cp.UpdatedAt), by)
	}
	tw.Flush()
}
