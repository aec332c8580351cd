package monitor

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fanoutd/fanoutd/fanout"
)

// collector turns the consumers' and the publisher's snapshots into
// metrics at scrape time, so the hot path only bumps its own counters.
type collector struct{ m *Monitor }

var (
	descRecords       = prometheus.NewDesc("fanoutd_records_relayed_total", "User records published to NATS and confirmed (KPL sub-records counted one by one; dead letters not included), by stream.", []string{"stream"}, nil)
	descBytes         = prometheus.NewDesc("fanoutd_bytes_relayed_total", "Payload bytes of the records relayed, by stream.", []string{"stream"}, nil)
	descHandled       = prometheus.NewDesc("fanoutd_records_read_total", "User records read from Kinesis and handled (relayed or dead-lettered), by stream and shard.", []string{"stream", "shard"}, nil)
	descEvents        = prometheus.NewDesc("fanoutd_events_total", "SubscribeToShard events received and handled (empty ones included).", []string{"stream", "shard"}, nil)
	descBehind        = prometheus.NewDesc("fanoutd_millis_behind_latest", "MillisBehindLatest of the shard's last event: how far reading is behind the tip of the shard.", []string{"stream", "shard"}, nil)
	descSubsStarted   = prometheus.NewDesc("fanoutd_subscriptions_started_total", "Readers opened (SubscribeToShard subscriptions or GetRecords iterators).", []string{"stream", "shard"}, nil)
	descSubsEnded     = prometheus.NewDesc("fanoutd_subscriptions_ended_total", "Readers (subscriptions or GetRecords iterators) ended, by reason: expired (the 5-minute end or a cut connection), error, idle (watchdog), handler (NATS did not confirm), shard_end, shutdown.", []string{"stream", "reason"}, nil)
	descSubErrors     = prometheus.NewDesc("fanoutd_subscribe_errors_total", "SubscribeToShard and event-stream errors, by AWS error code (transport for network errors).", []string{"stream", "error"}, nil)
	descCheckpointAge = prometheus.NewDesc("fanoutd_checkpoint_age_seconds", "Seconds since the shard's checkpoint was last written, or last found current (nothing delivered since it was written).", []string{"stream", "shard"}, nil)
	descLastEventAge  = prometheus.NewDesc("fanoutd_last_event_age_seconds", "Seconds since the shard's last event.", []string{"stream", "shard"}, nil)
	descShards        = prometheus.NewDesc("fanoutd_shards", "Shards known, by state: reading, waiting (for parents), ended, not_owned (another instance of the group reads it).", []string{"stream", "state"}, nil)
	descStalled       = prometheus.NewDesc("fanoutd_shard_stalled", "1 while a reading shard's loop has shown no activity for timers.stall_timeout.", []string{"stream", "shard"}, nil)
	descNATS          = prometheus.NewDesc("fanoutd_nats_connected", "1 while the NATS connection is up.", nil, nil)
	descReady         = prometheus.NewDesc("fanoutd_ready", "1 while /readyz answers 200.", nil, nil)
	descDeadLetters   = prometheus.NewDesc("fanoutd_dead_letters_total", "Records replaced by a dead letter (too large for NATS, or data the stream's payload setting can't decode), by stream.", []string{"stream"}, nil)
	descPubAckRetries = prometheus.NewDesc("fanoutd_jetstream_puback_retries_total", "JetStream messages published again because their PubAck failed or did not come.", nil, nil)
	descBatched       = prometheus.NewDesc("fanoutd_jetstream_batched_records_total", "Records JetStream stored as part of a fast batch (confirmed by flow acks and one PubAck per chunk), not one PubAck each.", nil, nil)
	descDuplicates    = prometheus.NewDesc("fanoutd_jetstream_duplicates_total", "Messages JetStream acknowledged as duplicates (a replay dropped by Nats-Msg-Id).", nil, nil)
	descAsyncErrors   = prometheus.NewDesc("fanoutd_nats_async_errors_total", "Core NATS batches failed (and replayed) because the server sent an asynchronous error while they were published, e.g. a permissions violation.", nil, nil)
	descGetRecords    = prometheus.NewDesc("fanoutd_getrecords_calls_total", "GetRecords calls of streams read by polling, by result: ok, throttled (ProvisionedThroughputExceededException, retried after a backoff), expired (ExpiredIteratorException, the iterator replaced), error.", []string{"stream", "result"}, nil)
	descReadMode      = prometheus.NewDesc("fanoutd_stream_read_mode", "1 for the way each stream is read now (mode efo or polling), 0 for the other: a stream with read: auto that fell back to polling shows polling.", []string{"stream", "mode"}, nil)
	descStopped       = prometheus.NewDesc("fanoutd_stream_stopped", "1 for a configured stream that is not being read while the others are: deleted (probed until it is created again) or stopped alone.", []string{"stream"}, nil)
	descFiltered      = prometheus.NewDesc("fanoutd_filtered_records_total", "Records (or CloudWatch Logs events) that matched none of the stream's filter patterns: not published, the checkpoint moved past them.", []string{"stream"}, nil)
	descFallbacks     = prometheus.NewDesc("fanoutd_subject_fallbacks_total", "Messages whose subject holds subject_fallback: the data gave no scalar for a {data.PATH} (or no log group or stream).", []string{"stream"}, nil)
	descControl       = prometheus.NewDesc("fanoutd_cloudwatch_control_messages_total", "CloudWatch Logs CONTROL_MESSAGE records skipped (payload: cloudwatch_logs).", []string{"stream"}, nil)
	descBuild         = prometheus.NewDesc("fanoutd_build_info", "Always 1; the version label says which build runs.", []string{"version"}, nil)
)

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRecords, descBytes, descHandled, descEvents, descBehind, descSubsStarted, descSubsEnded,
		descSubErrors, descCheckpointAge, descLastEventAge, descShards, descStalled, descNATS, descReady,
		descDeadLetters, descPubAckRetries, descBatched, descDuplicates, descAsyncErrors, descStopped, descBuild,
		descGetRecords, descReadMode, descFiltered, descFallbacks, descControl,
		descObjects, descObjectBytes, descObjectReused} {
		ch <- d
	}
	for _, d := range groupDescs {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	m := c.m
	src := m.sources()
	now := time.Now()
	type key struct{ a, b string }
	ends, errs, states, gets := map[key]float64{}, map[key]float64{}, map[key]float64{}, map[key]float64{}
	shards := src.Shards()
	c.collectGroup(ch, src, shards)
	for _, s := range shards {
		states[key{s.Stream, string(s.State)}]++
		for r, n := range s.Ends {
			ends[key{s.Stream, r}] += float64(n)
		}
		for e, n := range s.Errors {
			errs[key{s.Stream, e}] += float64(n)
		}
		for r, n := range s.Polls {
			gets[key{s.Stream, r}] += float64(n)
		}
		ch <- prometheus.MustNewConstMetric(descHandled, prometheus.CounterValue, float64(s.Records), s.Stream, s.ShardID)
		ch <- prometheus.MustNewConstMetric(descEvents, prometheus.CounterValue, float64(s.Events), s.Stream, s.ShardID)
		ch <- prometheus.MustNewConstMetric(descSubsStarted, prometheus.CounterValue, float64(s.Subscriptions), s.Stream, s.ShardID)
		if s.State != fanout.ShardReading {
			continue
		}
		ch <- prometheus.MustNewConstMetric(descBehind, prometheus.GaugeValue, float64(s.MillisBehindLatest), s.Stream, s.ShardID)
		if !s.CheckpointSavedAt.IsZero() {
			ch <- prometheus.MustNewConstMetric(descCheckpointAge, prometheus.GaugeValue, checkpointAge(&s, now).Seconds(), s.Stream, s.ShardID)
		}
		if !s.LastEvent.IsZero() {
			ch <- prometheus.MustNewConstMetric(descLastEventAge, prometheus.GaugeValue, now.Sub(s.LastEvent).Seconds(), s.Stream, s.ShardID)
		}
		stalled := 0.0
		if now.Sub(s.LastActivity) > m.stallTimeout {
			stalled = 1
		}
		ch <- prometheus.MustNewConstMetric(descStalled, prometheus.GaugeValue, stalled, s.Stream, s.ShardID)
	}
	if src.PublisherStreams != nil {
		for st, v := range src.PublisherStreams() {
			ch <- prometheus.MustNewConstMetric(descRecords, prometheus.CounterValue, float64(v.Published), st)
			ch <- prometheus.MustNewConstMetric(descBytes, prometheus.CounterValue, float64(v.Bytes), st)
			ch <- prometheus.MustNewConstMetric(descDeadLetters, prometheus.CounterValue, float64(v.DeadLettered), st)
			ch <- prometheus.MustNewConstMetric(descObjects, prometheus.CounterValue, float64(v.Objects), st)
			ch <- prometheus.MustNewConstMetric(descObjectBytes, prometheus.CounterValue, float64(v.ObjectBytes), st)
			ch <- prometheus.MustNewConstMetric(descFiltered, prometheus.CounterValue, float64(v.Filtered), st)
			ch <- prometheus.MustNewConstMetric(descFallbacks, prometheus.CounterValue, float64(v.SubjectFallbacks), st)
			ch <- prometheus.MustNewConstMetric(descControl, prometheus.CounterValue, float64(v.ControlMessages), st)
		}
	}
	for k, v := range ends {
		ch <- prometheus.MustNewConstMetric(descSubsEnded, prometheus.CounterValue, v, k.a, k.b)
	}
	for k, v := range errs {
		ch <- prometheus.MustNewConstMetric(descSubErrors, prometheus.CounterValue, v, k.a, k.b)
	}
	for k, v := range states {
		ch <- prometheus.MustNewConstMetric(descShards, prometheus.GaugeValue, v, k.a, k.b)
	}
	for k, v := range gets {
		ch <- prometheus.MustNewConstMetric(descGetRecords, prometheus.CounterValue, v, k.a, k.b)
	}
	if src.ReadModes != nil {
		for name, mode := range src.ReadModes() {
			for _, m := range []fanout.ReadMode{fanout.ReadEFO, fanout.ReadPolling} {
				v := 0.0
				if m == mode {
					v = 1
				}
				ch <- prometheus.MustNewConstMetric(descReadMode, prometheus.GaugeValue, v, name, string(m))
			}
		}
	}
	nats := 0.0
	if src.NATSConnected != nil && src.NATSConnected() {
		nats = 1
	}
	ch <- prometheus.MustNewConstMetric(descNATS, prometheus.GaugeValue, nats)
	ready := 0.0
	if m.Health().Ready {
		ready = 1
	}
	ch <- prometheus.MustNewConstMetric(descReady, prometheus.GaugeValue, ready)
	if src.Publisher != nil {
		ps := src.Publisher()
		ch <- prometheus.MustNewConstMetric(descPubAckRetries, prometheus.CounterValue, float64(ps.Retries))
		ch <- prometheus.MustNewConstMetric(descBatched, prometheus.CounterValue, float64(ps.Batched))
		ch <- prometheus.MustNewConstMetric(descDuplicates, prometheus.CounterValue, float64(ps.Duplicates))
		ch <- prometheus.MustNewConstMetric(descAsyncErrors, prometheus.CounterValue, float64(ps.AsyncErrors))
	}
	if src.Objects != nil {
		ch <- prometheus.MustNewConstMetric(descObjectReused, prometheus.CounterValue, float64(src.Objects().Reused))
	}
	if src.StoppedStreams != nil {
		for name := range src.StoppedStreams() {
			ch <- prometheus.MustNewConstMetric(descStopped, prometheus.GaugeValue, 1, name)
		}
	}
	ch <- prometheus.MustNewConstMetric(descBuild, prometheus.GaugeValue, 1, m.version)
}

// checkpointAge is the time since s's checkpoint was written or last found
// current.
func checkpointAge(s *fanout.ShardStatus, now time.Time) time.Duration {
	current := s.CheckpointSavedAt
	if s.CheckpointCurrentAt.After(current) {
		current = s.CheckpointCurrentAt
	}
	return now.Sub(current)
}
