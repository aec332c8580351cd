package main

import (
	"context"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/fanoutd/fanoutd/internal/testutil"
	"github.com/fanoutd/fanoutd/internal/testutil/e2e"
	"github.com/fanoutd/fanoutd/internal/testutil/emutest"
)

// CloudWatch Logs records unpacked into their log events reach JetStream
// exactly once, in order per log group, across a SIGKILL: the restarted
// daemon replays what was published after the last checkpoint, and
// JetStream drops each event it already has by its Nats-Msg-Id.
func TestCloudWatchLogsExactlyOnceAcrossSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: the daemon as a child process, killed and restarted")
	}
	e := newProcessE2E(t, emutest.Options(), true)
	if err := e.Emu.CreateStream("logs", 2); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(e.NS.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "LOGS", Subjects: []string{"logs.>", "fanoutd.deadletter.>"},
		Duplicates: 5 * time.Minute, AllowBatchPublish: true})
	if err != nil {
		t.Fatal(err)
	}
	stored := func() int {
		info, err := st.Info(ctx)
		if err != nil {
			return 0
		}
		return int(info.State.Msgs)
	}

	// The producer writes records of 20 log events each for four log
	// groups (the partition key), event i of group g saying "g:i".
	groups := []string{"g0", "g1", "g2", "g3"}
	var (
		mu     sync.Mutex
		want   = map[string]int{}
		stop   = make(chan struct{})
		done   = make(chan struct{})
		putErr error
	)
	go func() {
		defer close(done)
		for {
			for _, g := range groups {
				mu.Lock()
				from := want[g]
				mu.Unlock()
				r := testutil.LogsRecord{Owner: "111111111111", LogGroup: g, LogStream: "s", SubscriptionFilters: []string{"f"}, MessageType: "DATA_MESSAGE"}
				for i := from; i < from+20; i++ {
					r.LogEvents = append(r.LogEvents, testutil.LogEvent{ID: fmt.Sprint(i), Timestamp: int64(i), Message: fmt.Sprintf("%s:%d", g, i)})
				}
				if _, _, err := e.Emu.PutRecord("logs", g, r.Gzip()); err != nil {
					putErr = err
					return
				}
				mu.Lock()
				want[g] = from + 20
				mu.Unlock()
			}
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()

	c := e.Config(true, `  - name: logs
    subject: "logs.{log_group}"
    payload: cloudwatch_logs`)
	// Each shard's first checkpoint is its last before the kill: everything
	// published after it is replayed, whenever the kill comes.
	c.CheckpointInterval = "1h"
	path := c.Write(t)
	cmd, _ := fanoutdProcess(t, e.EnvLines(), "run", "--config", path)
	testutil.WaitFor(t, 60*time.Second, "events stored before the kill", func() bool { return stored() >= 2000 })
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	atKill := stored()

	_, out := fanoutdProcess(t, e.EnvLines(), "run", "--config", path)
	addr := e2e.WaitHTTPAddr(t, out)
	testutil.WaitFor(t, 60*time.Second, "progress after the restart", func() bool { return stored() >= atKill+1000 })
	close(stop)
	<-done
	if putErr != nil {
		t.Fatal(putErr)
	}
	total := 0
	for _, n := range want {
		total += n
	}
	testutil.WaitFor(t, 60*time.Second, fmt.Sprintf("all %d events stored", total), func() bool { return stored() >= total })

	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if int(info.State.Msgs) != total {
		t.Fatalf("JetStream holds %d messages, want exactly %d", info.State.Msgs, total)
	}
	var got []testutil.Delivery
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, testutil.Delivery{Data: m.Data})
	}
	testutil.CheckDelivered(t, got, want, testutil.ExactlyOnce)

	// The restarted daemon did replay: it published more than was left.
	_, metrics := e2e.Get(t, "http://"+addr+"/metrics")
	relayed := int(e2e.MetricValue(metrics, `fanoutd_records_relayed_total{stream="logs"}`))
	if relayed+atKill <= total {
		t.Fatalf("the restarted daemon relayed %d events and %d were stored at the kill, of %d: no replay to deduplicate", relayed, atKill, total)
	}
	t.Logf("%d events; %d stored at the kill; the restarted daemon relayed %d, %d of them replays JetStream dropped", total, atKill, relayed, relayed+atKill-total)
}
