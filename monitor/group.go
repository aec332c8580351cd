package monitor

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fanoutd/fanoutd/coordination"
	"github.com/fanoutd/fanoutd/fanout"
)

// GroupStatus is the group of instances sharing the shards (coordination),
// as this instance sees it.
type GroupStatus struct {
	Instance string   `json:"instance"`
	Members  []string `json:"members"`
	// Leases are every shard's lease in the group, with its checkpoint.
	Leases []LeaseStatus      `json:"leases"`
	Stats  coordination.Stats `json:"stats"`
}

// LeaseStatus is one shard's lease.
type LeaseStatus struct {
	Stream   string `json:"stream"`
	Consumer string `json:"consumer"`
	Shard    string `json:"shard"`
	// Owner is "" for a free lease.
	Owner string `json:"owner"`
	// Expires is when others may take the lease over if it is not renewed.
	Expires    time.Time `json:"expires,omitzero"`
	Checkpoint string    `json:"checkpoint,omitempty"`
	ShardEnded bool      `json:"shard_ended,omitempty"`
}

var (
	descGroupMembers  = prometheus.NewDesc("fanoutd_coordination_members", "Live instances of the group, this one included.", nil, nil)
	descGroupOwned    = prometheus.NewDesc("fanoutd_coordination_owned_shards", "Shards whose lease this instance holds.", nil, nil)
	descGroupUnowned  = prometheus.NewDesc("fanoutd_coordination_unowned_shards", "Readable shards that no live instance holds the lease of, as this instance sees the group.", []string{"stream"}, nil)
	descGroupAcquired = prometheus.NewDesc("fanoutd_coordination_leases_acquired_total", "Leases this instance took (free, released, or expired).", nil, nil)
	descGroupLost     = prometheus.NewDesc("fanoutd_coordination_leases_lost_total", "Leases this instance lost: not renewed in time (NATS unreachable) or taken by another instance.", nil, nil)
	descGroupFailures = prometheus.NewDesc("fanoutd_coordination_lease_renew_failures_total", "Lease renewals that failed (retried until the lease would expire).", nil, nil)
	descGroupHandoffs = prometheus.NewDesc("fanoutd_coordination_handoffs_total", "Leases this instance handed over to rebalance the group.", nil, nil)
	descGroupReleased = prometheus.NewDesc("fanoutd_coordination_leases_released_total", "Leases this instance released (handoff, shutdown, shard end).", nil, nil)
	descGroupConflict = prometheus.NewDesc("fanoutd_coordination_claim_conflicts_total", "Lease claims that another instance won (the lease was written first by someone else).", nil, nil)
	descGroupResets   = prometheus.NewDesc("fanoutd_coordination_bucket_resets_total", "Times the coordination bucket was found deleted or deleted and created again while this instance ran (recreated, leases written anew).", nil, nil)
	descGroupTakeover = prometheus.NewDesc("fanoutd_coordination_leases_taken_over_total", "Leases this instance took after their owner let them expire (a member that stopped renewing: killed, cut off from NATS, or stalled).", nil, nil)
)

var groupDescs = []*prometheus.Desc{descGroupMembers, descGroupOwned, descGroupUnowned, descGroupAcquired, descGroupLost, descGroupFailures, descGroupHandoffs, descGroupReleased, descGroupConflict, descGroupResets, descGroupTakeover}

// ObserveLeaseRenew records one lease renewal; it fits
// coordination.Options.ObserveRenew.
func (m *Monitor) ObserveLeaseRenew(d time.Duration, err error) {
	m.renewLatency.Observe(d.Seconds())
}

func (c *collector) collectGroup(ch chan<- prometheus.Metric, src Sources, shards []fanout.ShardStatus) {
	if src.Group == nil {
		return
	}
	g := src.Group()
	s := g.Stats
	ch <- prometheus.MustNewConstMetric(descGroupMembers, prometheus.GaugeValue, float64(s.Members))
	ch <- prometheus.MustNewConstMetric(descGroupOwned, prometheus.GaugeValue, float64(s.Owned))
	for _, v := range []struct {
		d *prometheus.Desc
		n uint64
	}{{descGroupAcquired, s.Acquired}, {descGroupLost, s.Lost}, {descGroupFailures, s.RenewFailures}, {descGroupHandoffs, s.Handoffs}, {descGroupReleased, s.Released},
		{descGroupConflict, s.ClaimConflicts}, {descGroupResets, s.BucketResets}, {descGroupTakeover, s.TakenOverStale}} {
		ch <- prometheus.MustNewConstMetric(v.d, prometheus.CounterValue, float64(v.n))
	}
	for stream, n := range unowned(g, shards, time.Now()) {
		ch <- prometheus.MustNewConstMetric(descGroupUnowned, prometheus.GaugeValue, float64(n), stream)
	}
}

// unowned counts, by stream, the shards this instance does not read
// (not_owned) whose lease no live instance holds.
func unowned(g GroupStatus, shards []fanout.ShardStatus, now time.Time) map[string]int {
	live := map[[2]string]bool{}
	for _, l := range g.Leases {
		if l.Owner != "" && now.Before(l.Expires) {
			live[[2]string{l.Stream, l.Shard}] = true
		}
	}
	out := map[string]int{}
	for _, s := range shards {
		out[s.Stream] += 0 // every known stream has a series, 0 when all is owned
		if s.State == fanout.ShardNotOwned && !live[[2]string{s.Stream, s.ShardID}] {
			out[s.Stream]++
		}
	}
	return out
}
