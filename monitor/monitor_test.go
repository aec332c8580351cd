package monitor

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fanoutd/fanoutd/coordination"
	"github.com/fanoutd/fanoutd/fanout"
	"github.com/fanoutd/fanoutd/relay"
)

func shard(stream, id string, state fanout.ShardState, subscribed bool, activity time.Duration) fanout.ShardStatus {
	return fanout.ShardStatus{Stream: stream, ShardID: id, State: state, Subscribed: subscribed,
		LastActivity: time.Now().Add(-activity), Ends: map[string]uint64{}, Errors: map[string]uint64{}}
}

func TestHealth(t *testing.T) {
	for _, tc := range []struct {
		name        string
		shards      []fanout.ShardStatus
		streams     []string
		nats        bool
		started     bool
		stopping    bool
		ready, live bool
		reason      string
	}{
		{"ready", []fanout.ShardStatus{shard("a", "0", "reading", true, 0), shard("a", "1", "ended", false, time.Hour)}, []string{"a"}, true, true, false, true, true, ""},
		{"starting", []fanout.ShardStatus{shard("a", "0", "reading", true, 0)}, []string{"a"}, true, false, false, false, true, "starting"},
		{"no NATS", []fanout.ShardStatus{shard("a", "0", "reading", true, 0)}, []string{"a"}, false, true, false, false, true, "NATS not connected"},
		{"renewing is still subscribed", []fanout.ShardStatus{shard("a", "0", "reading", false, 2*time.Second)}, []string{"a"}, true, true, false, true, true, ""},
		{"no subscription", []fanout.ShardStatus{shard("a", "0", "reading", false, 30*time.Second)}, []string{"a"}, true, true, false, false, true, "1 of 1 shards without a subscription"},
		{"stalled", []fanout.ShardStatus{shard("a", "0", "reading", true, 2*time.Minute)}, []string{"a"}, true, true, false, false, false, "stalled shards (no activity for 1m0s): a/0"},
		{"waiting shards can't stall", []fanout.ShardStatus{shard("a", "0", "reading", true, 0), shard("a", "1", "waiting", false, time.Hour)}, []string{"a"}, true, true, false, true, true, ""},
		{"a stream not read yet", []fanout.ShardStatus{shard("a", "0", "reading", true, 0)}, []string{"a", "b"}, true, true, false, false, true, "streams not being read yet: b"},
		{"nothing yet", nil, []string{"a"}, true, true, false, false, true, "no shard is being read yet"},
		{"stopping", []fanout.ShardStatus{shard("a", "0", "reading", true, 0)}, []string{"a"}, true, true, true, false, true, "shutting down"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := New(Sources{
				Shards:        func() []fanout.ShardStatus { return tc.shards },
				Streams:       func() []string { return tc.streams },
				NATSConnected: func() bool { return tc.nats },
			}, time.Minute, "test")
			if tc.started {
				m.SetStarted()
			}
			if tc.stopping {
				m.SetStopping()
			}
			h := m.Health()
			if h.Ready != tc.ready || h.Live != tc.live {
				t.Fatalf("ready=%v live=%v, want %v %v (%v)", h.Ready, h.Live, tc.ready, tc.live, h.Reasons)
			}
			if tc.reason != "" && !strings.Contains(strings.Join(h.Reasons, "|"), tc.reason) {
				t.Fatalf("reasons %q lack %q", h.Reasons, tc.reason)
			}
		})
	}
}

func TestEndpoints(t *testing.T) {
	sh := shard("a", "shardId-0", "reading", true, 0)
	sh.Records, sh.Events, sh.MillisBehindLatest = 7, 3, 250
	sh.Ends["expired"], sh.Errors["LimitExceededException"] = 2, 1
	sh.Polls = map[string]uint64{fanout.PollOK: 5, fanout.PollThrottled: 2}
	// Written an hour ago, found current since: the age counts from then.
	sh.CheckpointSavedAt, sh.CheckpointCurrentAt = time.Now().Add(-time.Hour), time.Now()
	m := New(Sources{
		Shards:    func() []fanout.ShardStatus { return []fanout.ShardStatus{sh} },
		Publisher: func() relay.Stats { return relay.Stats{Published: 7, Retries: 2} },
		PublisherStreams: func() map[string]relay.StreamStats {
			return map[string]relay.StreamStats{"a": {Published: 7, Bytes: 70, DeadLettered: 1, Objects: 2, ObjectBytes: 3 << 20,
				Filtered: 4, SubjectFallbacks: 5, ControlMessages: 6}}
		},
		Objects:       func() relay.ObjectStats { return relay.ObjectStats{Stored: 2, Reused: 1} },
		NATSConnected: func() bool { return true },
		Streams:       func() []string { return []string{"a"} },
		ReadModes:     func() map[string]fanout.ReadMode { return map[string]fanout.ReadMode{"a": fanout.ReadPolling} },
		Group: func() GroupStatus {
			return GroupStatus{Instance: "i1", Members: []string{"i1", "i2"}, Stats: coordination.Stats{Owned: 1, Members: 2,
				Acquired: 3, RenewFailures: 4, Lost: 5, Handoffs: 6, Released: 7, TakenOverStale: 8, ClaimConflicts: 9, BucketResets: 10}}
		},
	}, time.Minute, "v1")
	m.SetStarted()
	m.ObservePublish("a", 7, 3*time.Millisecond, nil)
	m.ObserveObjectPut("a", 3<<20, 40*time.Millisecond, nil)
	m.ObserveObjectPut("a", 1<<20, time.Second, errors.New("put failed"))
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	body := func(path string) (int, string) {
		res, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var b strings.Builder
		buf := make([]byte, 4096)
		for {
			n, err := res.Body.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				break
			}
		}
		return res.StatusCode, b.String()
	}
	code, metrics := body("/metrics")
	if code != 200 {
		t.Fatalf("/metrics %d", code)
	}
	for _, line := range strings.Split(metrics, "\n") {
		if v, ok := strings.CutPrefix(line, `fanoutd_checkpoint_age_seconds{shard="shardId-0",stream="a"} `); ok {
			if age, err := strconv.ParseFloat(v, 64); err != nil || age > 600 {
				t.Fatalf("checkpoint age %q, want the time since it was found current", v)
			}
		}
	}
	if !strings.Contains(metrics, `fanoutd_checkpoint_age_seconds{shard="shardId-0",stream="a"}`) {
		t.Fatal("no checkpoint age")
	}
	for _, want := range []string{
		`fanoutd_records_relayed_total{stream="a"} 7`,
		`fanoutd_bytes_relayed_total{stream="a"} 70`,
		`fanoutd_dead_letters_total{stream="a"} 1`,
		`fanoutd_records_read_total{shard="shardId-0",stream="a"} 7`,
		`fanoutd_events_total{shard="shardId-0",stream="a"} 3`,
		`fanoutd_millis_behind_latest{shard="shardId-0",stream="a"} 250`,
		`fanoutd_subscriptions_ended_total{reason="expired",stream="a"} 2`,
		`fanoutd_subscribe_errors_total{error="LimitExceededException",stream="a"} 1`,
		`fanoutd_shards{state="reading",stream="a"} 1`,
		`fanoutd_shard_stalled{shard="shardId-0",stream="a"} 0`,
		`fanoutd_jetstream_puback_retries_total 2`,
		`fanoutd_nats_connected 1`,
		`fanoutd_ready 1`,
		`fanoutd_publish_duration_seconds_count{stream="a"} 1`,
		`fanoutd_build_info{version="v1"} 1`,
		`fanoutd_records_stored_as_objects_total{stream="a"} 2`,
		`fanoutd_object_bytes_total{stream="a"} 3.145728e+06`,
		`fanoutd_objects_reused_total 1`,
		`fanoutd_filtered_records_total{stream="a"} 4`,
		`fanoutd_subject_fallbacks_total{stream="a"} 5`,
		`fanoutd_cloudwatch_control_messages_total{stream="a"} 6`,
		`fanoutd_object_put_duration_seconds_count{stream="a"} 2`,
		`fanoutd_object_put_failures_total{stream="a"} 1`,
		`fanoutd_coordination_owned_shards 1`,
		`fanoutd_coordination_members 2`,
		`fanoutd_coordination_leases_acquired_total 3`,
		`fanoutd_coordination_lease_renew_failures_total 4`,
		`fanoutd_coordination_leases_lost_total 5`,
		`fanoutd_coordination_handoffs_total 6`,
		`fanoutd_coordination_leases_released_total 7`,
		`fanoutd_coordination_leases_taken_over_total 8`,
		`fanoutd_coordination_claim_conflicts_total 9`,
		`fanoutd_coordination_bucket_resets_total 10`,
		`fanoutd_getrecords_calls_total{result="ok",stream="a"} 5`,
		`fanoutd_getrecords_calls_total{result="throttled",stream="a"} 2`,
		`fanoutd_stream_read_mode{mode="efo",stream="a"} 0`,
		`fanoutd_stream_read_mode{mode="polling",stream="a"} 1`,
	} {
		if !strings.Contains(metrics, want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if code, b := body("/readyz"); code != 200 || !strings.Contains(b, `"ready": true`) {
		t.Fatalf("/readyz %d %s", code, b)
	}
	code, status := body("/status")
	if code != 200 || !strings.Contains(status, `"records": 7`) || !strings.Contains(status, `"published": 7`) ||
		!strings.Contains(status, `"read_mode": "polling"`) || !strings.Contains(status, `"throttled": 2`) {
		t.Fatalf("/status %d %s", code, status)
	}
	for _, want := range []string{`"owned": 1`, `"members": 2`, `"acquired": 3`, `"renew_failures": 4`, `"lost": 5`,
		`"handoffs": 6`, `"released": 7`, `"taken_over_expired": 8`, `"claim_conflicts": 9`, `"bucket_resets": 10`} {
		if !strings.Contains(status, want) {
			t.Errorf("/status lacks the group counter %s", want)
		}
	}
	m.SetStopping()
	if code, _ := body("/readyz"); code != 503 {
		t.Fatalf("/readyz while stopping: %d", code)
	}
	if code, _ := body("/healthz"); code != 200 {
		t.Fatalf("/healthz %d", code)
	}
}

// What the start waits for is a reason not to be ready, until cleared.
func TestHealthWaiting(t *testing.T) {
	m := New(Sources{Shards: func() []fanout.ShardStatus { return nil }, NATSConnected: func() bool { return true }}, time.Minute, "test")
	m.SetWaiting("no AWS credentials yet: no EC2 IMDS role found")
	if h := m.Health(); h.Ready || !strings.Contains(strings.Join(h.Reasons, "|"), "no AWS credentials yet: no EC2 IMDS role found") {
		t.Fatalf("reasons %q, want the waiting reason", h.Reasons)
	}
	m.SetWaiting("")
	for _, r := range m.Health().Reasons {
		if strings.Contains(r, "AWS") {
			t.Fatalf("reason %q after the wait ended", r)
		}
	}
}
