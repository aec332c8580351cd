package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/fanoutd/fanoutd/config"
	"github.com/fanoutd/fanoutd/monitor"
)

// StatusCmd prints the running daemon's /status as a table.
type StatusCmd struct {
	URL  string `default:"http://${http_listen}" help:"The daemon's HTTP endpoint (http.listen)."`
	JSON bool   `help:"Print JSON: the /status document, or with --context one object per shard."`

	Context            string `placeholder:"NAME" help:"Read the checkpoints and leases the daemons keep in NATS (checkpoint.store: jetstream) through this nats CLI context (its name, or the path of its file), as nats --context does, instead of asking one daemon over HTTP."`
	Bucket             string `placeholder:"NAME" help:"With --context: the checkpoint bucket (checkpoint.bucket.name; default: fanoutd_checkpoints)."`
	CoordinationBucket string `placeholder:"NAME" help:"With --context: the group's bucket (coordination.bucket.name; default: fanoutd_coordination), read when it exists."`
}

// Run fetches /status and prints it. It exits 1 when the daemon can't be
// reached or is not ready, so that scripts can use it as a check.
func (s *StatusCmd) Run(ctx context.Context, w io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if s.Context != "" {
		if s.URL != "http://"+config.DefaultHTTPListen {
			return usageError{errors.New("status: give --url or --context, not both")}
		}
		return s.runNATS(ctx, w)
	}
	if s.Bucket != "" || s.CoordinationBucket != "" {
		return usageError{errors.New("status: --bucket and --coordination-bucket go with --context")}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(s.URL, "/")+"/status", nil)
	if err != nil {
		return usageError{fmt.Errorf("--url: %w", err)}
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("reach the daemon at %s (is it running, and is http.listen set?): %w", s.URL, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		return fmt.Errorf("read /status: %w", err)
	}
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s/status: %s", s.URL, res.Status)
	}
	if s.JSON {
		_, err := w.Write(body)
		return err
	}
	var st monitor.Status
	if err := json.Unmarshal(body, &st); err != nil {
		return fmt.Errorf("decode /status: %w", err)
	}
	printStatus(w, st)
	if !st.Health.Ready {
		return fmt.Errorf("not ready: %s", strings.Join(st.Health.Reasons, "; "))
	}
	return nil
}

func printStatus(w io.Writer, st monitor.Status) {
	now := time.Now()
	ready := "ready"
	if !st.Health.Ready {
		ready = "NOT READY: " + strings.Join(st.Health.Reasons, "; ")
	}
	nats := "connected"
	if !st.Health.NATSConnected {
		nats = "DISCONNECTED"
	}
	fmt.Fprintf(w, "fanoutd %s, up %v, %s\n", st.Version, now.Sub(st.StartedAt).Round(time.Second), ready)
	fmt.Fprintf(w, "NATS %s; published %d records, %d dead letters, %d failed batches, %d JetStream retries\n\n",
		nats, st.Publisher.Published, st.Publisher.DeadLettered, st.Publisher.FailedBatches, st.Publisher.Retries)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STREAM\tREAD\tSHARD\tSTATE\tSUBSCRIBED\tLAG\tLAST EVENT\tCHECKPOINT SAVED\tRECORDS\tSUBSCRIPTIONS")
	for _, s := range st.Streams {
		for _, sh := range s.Shards {
			state := sh.State
			if sh.Stalled {
				state = "STALLED"
			}
			sub := "-"
			if sh.Subscribed {
				sub = (time.Duration(sh.SubscriptionAgeSecs * float64(time.Second))).Round(time.Second).String()
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%dms\t%s\t%s\t%d\t%d\n", s.Name, s.ReadMode, sh.ID, state, sub,
				sh.MillisBehindLatest, ago(now, sh.LastEvent), ago(now, sh.CheckpointSavedAt), sh.Records, sh.Subscriptions)
		}
	}
	tw.Flush()
	for name, why := range st.StoppedStreams {
		fmt.Fprintf(w, "\nSTOPPED stream %s: %s\n", name, why)
	}
	if g := st.Group; g != nil {
		fmt.Fprintf(w, "\ngroup: this is %s, owning %d shards; members %s; %d leases lost, %d handed over\n",
			g.Instance, g.Stats.Owned, strings.Join(g.Members, ", "), g.Stats.Lost, g.Stats.Handoffs)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "STREAM\tSHARD\tOWNER\tLEASE EXPIRES\tCHECKPOINT")
		for _, l := range g.Leases {
			owner, expires := l.Owner, "-"
			if owner == "" {
				owner = "(free)"
			} else {
				expires = "in " + l.Expires.Sub(now).Round(100*time.Millisecond).String()
			}
			cp := l.Checkpoint
			if l.ShardEnded {
				cp = "(shard ended)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", l.Stream, l.Shard, owner, expires, cp)
		}
		tw.Flush()
	}
}

func ago(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return now.Sub(t).Round(100*time.Millisecond).String() + " ago"
}
