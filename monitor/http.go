package monitor

import (
	"encoding/json"
	"net/http"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/fanoutd/fanoutd/fanout"
	"github.com/fanoutd/fanoutd/relay"
)

// Status is the document /status serves and `fanoutd status` prints.
type Status struct {
	Version   string         `json:"version"`
	StartedAt time.Time      `json:"started_at"`
	Health    Health         `json:"health"`
	Publisher relay.Stats    `json:"publisher"`
	Streams   []StreamStatus `json:"streams"`
	// StoppedStreams are streams that stopped while the others run, with
	// the reason (e.g. the stream was deleted).
	StoppedStreams map[string]string `json:"stopped_streams,omitempty"`
	// Group is the group of instances sharing the shards (coordination
	// mode jetstream), omitted otherwise.
	Group *GroupStatus `json:"group,omitempty"`
}

// StreamStatus is one stream.
type StreamStatus struct {
	Name string `json:"name"`
	// ReadMode is how the stream is read now: efo or polling.
	ReadMode string        `json:"read_mode,omitempty"`
	Shards   []ShardStatus `json:"shards"`
}

// ShardStatus is one shard.
type ShardStatus struct {
	ID                  string    `json:"id"`
	Parents             []string  `json:"parents,omitempty"`
	State               string    `json:"state"`
	Subscribed          bool      `json:"subscribed"`
	Stalled             bool      `json:"stalled"`
	Checkpoint          string    `json:"checkpoint,omitempty"`
	CheckpointSavedAt   time.Time `json:"checkpoint_saved_at,omitzero"`
	MillisBehindLatest  int64     `json:"millis_behind_latest"`
	LastEvent           time.Time `json:"last_event,omitzero"`
	SubscriptionAgeSecs float64   `json:"subscription_age_seconds"`
	Records             uint64    `json:"records"`
	Events              uint64    `json:"events"`
	Subscriptions       uint64    `json:"subscriptions"`
	// GetRecords counts the GetRecords calls of a shard read by polling,
	// by result.
	GetRecords map[string]uint64 `json:"get_records,omitempty"`
}

// Status builds the /status document.
func (m *Monitor) Status() Status {
	src := m.sources()
	now := time.Now()
	st := Status{Version: m.version, StartedAt: m.startedAt, Health: m.Health()}
	if src.StoppedStreams != nil {
		st.StoppedStreams = src.StoppedStreams()
	}
	if src.Group != nil {
		g := src.Group()
		st.Group = &g
	}
	if src.Publisher != nil {
		st.Publisher = src.Publisher()
	}
	byStream := map[string]*StreamStatus{}
	for _, s := range src.Shards() {
		ss := byStream[s.Stream]
		if ss == nil {
			ss = &StreamStatus{Name: s.Stream}
			byStream[s.Stream] = ss
		}
		sh := ShardStatus{
			ID: s.ShardID, Parents: s.Parents, State: string(s.State), Subscribed: s.Subscribed,
			Stalled:    s.State == fanout.ShardReading && now.Sub(s.LastActivity) > m.stallTimeout,
			Checkpoint: s.Checkpoint, CheckpointSavedAt: s.CheckpointSavedAt,
			MillisBehindLatest: s.MillisBehindLatest, LastEvent: s.LastEvent,
			Records: s.Records, Events: s.Events, Subscriptions: s.Subscriptions, GetRecords: s.Polls,
		}
		if s.Subscribed {
			sh.SubscriptionAgeSecs = now.Sub(s.SubscribedAt).Seconds()
		}
		ss.Shards = append(ss.Shards, sh)
	}
	if src.ReadModes != nil {
		for name, mode := range src.ReadModes() {
			if ss := byStream[name]; ss != nil {
				ss.ReadMode = string(mode)
			}
		}
	}
	for _, ss := range byStream {
		st.Streams = append(st.Streams, *ss)
	}
	sort.Slice(st.Streams, func(i, j int) bool { return st.Streams[i].Name < st.Streams[j].Name })
	return st
}

// Handler serves /metrics, /healthz, /readyz and /status.
func (m *Monitor) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		h := m.Health()
		code := http.StatusOK
		if !h.Ready {
			code = http.StatusServiceUnavailable
		}
		writeJSON(w, code, h)
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, m.Status())
	})
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
