//! Prometheus metrics of one member, in the text format etcd and TiKV
//! expose.
//!
//! [`Metrics`] holds its own [`prometheus::Registry`] (one per member, so
//! several members in one process never collide, and nothing is
//! registered globally); [`Recorder`] keeps it up to date from what a
//! node reports: its [`Status`], its [`Event`]s, its [`Counters`], the
//! transport's refusals and connections, proposal and sync timings. The
//! [runtime](crate::runtime) runs one per member
//! ([`RuntimeConfig::metrics`](crate::runtime::RuntimeConfig::metrics))
//! and [`Handle::metrics`](crate::runtime::Handle::metrics) encodes it;
//! a service driving a [`Node`](crate::Node) itself feeds a
//! [`Recorder`] the same way.
//!
//! Every name starts with `survivable_`, carries its unit (`_seconds`,
//! `_entries`) and, for counters, ends in `_total`. Per-peer series are
//! labelled `member` (the peer, `n2`) and `site` (its site). Counters
//! count at this member (a pair failover is counted by the standby that
//! took over): sum them over the members for the cluster. The
//! `survivable_replication_*` series exist only in a DR auto-sync
//! topology (see `replication.rs` here for why a cost this member cannot
//! tell is an absent series rather than 0).
//!
//! | metric | type | labels | meaning |
//! |---|---|---|---|
//! | `survivable_member_info` | gauge | `member`, `site` | 1: who this member is |
//! | `survivable_role` | gauge | `role` | 1 for this member's role, 0 for the others |
//! | `survivable_term` | gauge | | raft term |
//! | `survivable_epoch` | gauge | | epoch number (1 for the first) |
//! | `survivable_leader_site` | gauge | `site` | 1 for the site of the leader this member knows of |
//! | `survivable_leader_member` | gauge | | that leader's id (0: none known) |
//! | `survivable_commit_index` | gauge | | commit index |
//! | `survivable_applied_index` | gauge | | applied index |
//! | `survivable_last_index` | gauge | | last log index |
//! | `survivable_peer_lag_entries` | gauge | `member`, `site` | leader only: entries the peer lacks |
//! | `survivable_peer_lag_seconds` | gauge | `member`, `site` | leader only: age of the oldest entry the peer lacks |
//! | `survivable_peer_reachable` | gauge | `member`, `site` | leader only: 1 if it answered within an election timeout |
//! | `survivable_peer_connected` | gauge | `member`, `site` | 1 while this member's connection to the peer is up |
//! | `survivable_rpo_entries` | gauge | | entries lost if the leader were lost now ([`Status::rpo_entries`]) |
//! | `survivable_rpo_seconds` | gauge | | the same in time ([`Status::rpo_ms`]) |
//! | `survivable_retained_entries` | gauge | | log entries held above the compaction point ([`Status::retained`]) |
//! | `survivable_retained_bytes` | gauge | | their size in bytes |
//! | `survivable_retained_held_back_entries` | gauge | | of those, entries held only for survivable members that lack them (main-site mode) |
//! | `survivable_retention_warnings_total` | counter | | the retained log reached the warning mark of its bound ([`Event::RetentionWarning`]) |
//! | `survivable_retained_dropped_entries_total` | counter | | entries survivable members lacked that were dropped at the bound ([`Event::RetainedDropped`]) |
//! | `survivable_pair_failovers_total` | counter | | became leader by a pair failover |
//! | `survivable_takeovers_total` | counter | | became leader by a survivable takeover |
//! | `survivable_activations_total` | counter | | epochs activated here (main-site mode) |
//! | `survivable_hand_backs_attempted_total` | counter | | hand-back attempts started |
//! | `survivable_hand_backs_succeeded_total` | counter | | hand-backs that landed |
//! | `survivable_hand_backs_failed_total` | counter | | attempts that did not land |
//! | `survivable_hand_backs_abandoned_total` | counter | | hand-backs given up at the attempt limit |
//! | `survivable_campaigns_suppressed_total` | counter | | spurious campaigns suppressed ([`Counters::campaigns_suppressed`]) |
//! | `survivable_refused_envelopes_total` | counter | `reason` | envelopes the node refused ([`Counters`]) |
//! | `survivable_refused_connections_total` | counter | `reason` | connections the transport refused |
//! | `survivable_replication_state` | gauge | `state` | DR auto-sync: 1 for the replication state (`sync`, `async_wait`, `async`, `sync_recover`), 0 for the others |
//! | `survivable_replication_state_code` | gauge | | DR auto-sync: that state's code, 0 to 3 in the same order |
//! | `survivable_replication_state_id` | gauge | | DR auto-sync: that state's id |
//! | `survivable_replication_rpo_entries` | gauge | `site` (`main`, `survivable`) | DR auto-sync: entries a loss of that site would cost now; absent when unknown here |
//! | `survivable_replication_rpo_seconds` | gauge | `site` | DR auto-sync: the age of the oldest of them; absent when unknown |
//! | `survivable_replication_rpo_proven` | gauge | `site` | DR auto-sync: 1 if that figure is proven, 0 if unknown |
//! | `survivable_replication_lease_seconds` | gauge | | DR auto-sync, survivable member: its lease left (0: none) |
//! | `survivable_replication_changes_total` | counter | | DR auto-sync: state changes reported ([`Event::ReplicationChanged`]) |
//! | `survivable_takeover_seconds` | histogram | | leaderless time until this member led |
//! | `survivable_hand_back_outage_seconds` | histogram | | hand-back start until the target led |
//! | `survivable_proposal_seconds` | histogram | | proposal submitted until applied |
//! | `survivable_fsync_seconds` | histogram | | each synced storage write |

mod lag;
mod recorder;
mod replication;
#[cfg(test)]
mod tests;

use prometheus::core::Collector;
use prometheus::{
    Gauge, GaugeVec, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};

pub use recorder::{Recorder, SLOW_EVERY};

use crate::events::Event;
use crate::node::{Counters, NodeRole, Status};
use crate::policy::QuorumMode;
use crate::storage::SyncObserver;
use crate::topology::{NodeId, Topology};

/// The roles `survivable_role` labels, in [`NodeRole`]'s order.
const ROLES: [&str; 6] = [
    "leader",
    "follower",
    "candidate",
    "pre-candidate",
    "learner",
    "removed",
];

fn role_index(role: NodeRole) -> usize {
    match role {
        NodeRole::Leader => 0,
        NodeRole::Follower => 1,
        NodeRole::Candidate => 2,
        NodeRole::PreCandidate => 3,
        NodeRole::Learner => 4,
        NodeRole::Removed => 5,
    }
}

/// One member's metrics in its own registry: see the [module docs](self)
/// for every metric. Clones share the registry (cheap: handles only).
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub(crate) me: NodeId,
    /// Each member's site (the `site` label of its per-peer series).
    pub(crate) sites: Vec<(NodeId, String)>,
    pub(crate) state: StateMetrics,
    pub(crate) peers: PeerMetrics,
    pub(crate) counts: CountMetrics,
    pub(crate) timings: TimingMetrics,
    /// DR auto-sync mode only.
    pub(crate) replication: Option<replication::ReplicationMetrics>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").field("member", &self.me).finish()
    }
}

/// Registers `c` and hands it back. The names and labels are this
/// module's constants, each registered once in a registry of its own:
/// registration cannot fail (the encoding test lists every metric).
fn reg<C: Collector + Clone + 'static>(r: &Registry, c: C) -> C {
    let registered = r.register(Box::new(c.clone()));
    debug_assert!(registered.is_ok(), "{registered:?}");
    c
}

fn int_gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    reg(
        r,
        IntGauge::with_opts(Opts::new(name, help)).expect("valid name"),
    )
}

fn gauge(r: &Registry, name: &str, help: &str) -> Gauge {
    reg(
        r,
        Gauge::with_opts(Opts::new(name, help)).expect("valid name"),
    )
}

fn int_gauges(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    reg(
        r,
        IntGaugeVec::new(Opts::new(name, help), labels).expect("valid name"),
    )
}

fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    reg(
        r,
        IntCounter::with_opts(Opts::new(name, help)).expect("valid name"),
    )
}

fn counters(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    reg(
        r,
        IntCounterVec::new(Opts::new(name, help), labels).expect("valid name"),
    )
}

fn histogram(r: &Registry, name: &str, help: &str, buckets: &[f64]) -> Histogram {
    let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
    reg(r, Histogram::with_opts(opts).expect("valid buckets"))
}

/// Takeovers wait `survivable_after` (seconds) before they campaign.
const TAKEOVER_BUCKETS: &[f64] = &[
    0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 7.5, 10.0, 15.0, 30.0, 60.0,
];
/// A hand-back is a leader transfer: a round trip or two plus an election.
const OUTAGE_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// A proposal: a sync and a quorum round trip, a WAN's when the quorum
/// spans sites.
const PROPOSAL_BUCKETS: &[f64] = &[
    0.000_25, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// An fsync: etcd's WAL fsync buckets (1 ms doubling to 8 s), with two
/// below for fast disks.
const FSYNC_BUCKETS: &[f64] = &[
    0.000_25, 0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024,
    2.048, 4.096, 8.192,
];

/// This member's state: plain gauges.
#[derive(Clone)]
pub(crate) struct StateMetrics {
    pub(crate) role: IntGaugeVec,
    pub(crate) term: IntGauge,
    pub(crate) epoch: IntGauge,
    pub(crate) leader_site: IntGaugeVec,
    pub(crate) leader_member: IntGauge,
    pub(crate) commit: IntGauge,
    pub(crate) applied: IntGauge,
    pub(crate) last_index: IntGauge,
    pub(crate) rpo_entries: IntGauge,
    pub(crate) rpo_seconds: Gauge,
    pub(crate) retained_entries: IntGauge,
    pub(crate) retained_bytes: IntGauge,
    pub(crate) retained_held_back: IntGauge,
}

impl StateMetrics {
    fn new(r: &Registry) -> Self {
        Self {
            role: int_gauges(
                r,
                "survivable_role",
                "1 for this member's role, 0 for the others",
                &["role"],
            ),
            term: int_gauge(r, "survivable_term", "Raft term"),
            epoch: int_gauge(r, "survivable_epoch", "Epoch number (1 for the first epoch)"),
            leader_site: int_gauges(
                r,
                "survivable_leader_site",
                "1 for the site of the leader this member knows of, 0 for the other sites",
                &["site"],
            ),
            leader_member: int_gauge(
                r,
                "survivable_leader_member",
                "Id of the leader this member knows of (0: none)",
            ),
            commit: int_gauge(r, "survivable_commit_index", "Commit index"),
            applied: int_gauge(r, "survivable_applied_index", "Applied index"),
            last_index: int_gauge(r, "survivable_last_index", "Last log index"),
            rpo_entries: int_gauge(
                r,
                "survivable_rpo_entries",
                "Entries this member would lose if its leader were lost now (the leader's reported commit minus its own last index)",
            ),
            rpo_seconds: gauge(
                r,
                "survivable_rpo_seconds",
                "For how long the leader had been committing entries this member lacks, as last heard",
            ),
            retained_entries: int_gauge(
                r,
                "survivable_retained_entries",
                "Log entries held above the compaction point",
            ),
            retained_bytes: int_gauge(
                r,
                "survivable_retained_bytes",
                "Bytes of log entries held above the compaction point",
            ),
            retained_held_back: int_gauge(
                r,
                "survivable_retained_held_back_entries",
                "Log entries held only because a survivable member has not committed them",
            ),
        }
    }
}

/// Per-peer series, labelled `member` and `site`.
#[derive(Clone)]
pub(crate) struct PeerMetrics {
    pub(crate) lag_entries: IntGaugeVec,
    pub(crate) lag_seconds: GaugeVec,
    pub(crate) reachable: IntGaugeVec,
    pub(crate) connected: IntGaugeVec,
}

impl PeerMetrics {
    fn new(r: &Registry) -> Self {
        let peer = &["member", "site"];
        let lag = Opts::new(
            "survivable_peer_lag_seconds",
            "Leader only: how long the oldest entry the peer lacks has been in the leader's log",
        );
        Self {
            lag_entries: int_gauges(
                r,
                "survivable_peer_lag_entries",
                "Leader only: entries the peer lacks",
                peer,
            ),
            lag_seconds: reg(r, GaugeVec::new(lag, peer).expect("valid name")),
            reachable: int_gauges(
                r,
                "survivable_peer_reachable",
                "Leader only: 1 if the peer answered within the last election timeout",
                peer,
            ),
            connected: int_gauges(
                r,
                "survivable_peer_connected",
                "1 while this member's outbound connection to the peer is up (confirmed by its hello)",
                peer,
            ),
        }
    }
}

/// Counters.
#[derive(Clone)]
pub(crate) struct CountMetrics {
    pub(crate) pair_failovers: IntCounter,
    pub(crate) takeovers: IntCounter,
    pub(crate) activations: IntCounter,
    pub(crate) hand_backs_attempted: IntCounter,
    pub(crate) hand_backs_succeeded: IntCounter,
    pub(crate) hand_backs_failed: IntCounter,
    pub(crate) hand_backs_abandoned: IntCounter,
    pub(crate) campaigns_suppressed: IntCounter,
    pub(crate) retention_warnings: IntCounter,
    pub(crate) retained_dropped: IntCounter,
    pub(crate) refused_envelopes: IntCounterVec,
    pub(crate) refused_connections: IntCounterVec,
}

impl CountMetrics {
    fn new(r: &Registry) -> Self {
        Self {
            pair_failovers: counter(
                r,
                "survivable_pair_failovers_total",
                "Times this member became leader by a pair failover",
            ),
            takeovers: counter(
                r,
                "survivable_takeovers_total",
                "Times this member became leader by a survivable takeover",
            ),
            activations: counter(
                r,
                "survivable_activations_total",
                "New epochs this member activated (main-site mode)",
            ),
            hand_backs_attempted: counter(
                r,
                "survivable_hand_backs_attempted_total",
                "Hand-back attempts this member started",
            ),
            hand_backs_succeeded: counter(
                r,
                "survivable_hand_backs_succeeded_total",
                "Hand-backs from this member that landed",
            ),
            hand_backs_failed: counter(
                r,
                "survivable_hand_backs_failed_total",
                "Hand-back attempts from this member that did not land",
            ),
            hand_backs_abandoned: counter(
                r,
                "survivable_hand_backs_abandoned_total",
                "Hand-backs this member gave up at the attempt limit",
            ),
            campaigns_suppressed: counter(
                r,
                "survivable_campaigns_suppressed_total",
                "Spurious campaigns this member suppressed (a pair standby catching up, or one a quorum would not elect)",
            ),
            retention_warnings: counter(
                r,
                "survivable_retention_warnings_total",
                "Times the retained log reached the warning mark of its retention bound",
            ),
            retained_dropped: counter(
                r,
                "survivable_retained_dropped_entries_total",
                "Log entries a survivable member lacked that this member dropped at its retention bound",
            ),
            refused_envelopes: counters(
                r,
                "survivable_refused_envelopes_total",
                "Envelopes the node refused, by reason",
                &["reason"],
            ),
            refused_connections: counters(
                r,
                "survivable_refused_connections_total",
                "Connections the transport refused or closed, by reason",
                &["reason"],
            ),
        }
    }
}

/// Histograms, in seconds.
#[derive(Clone)]
pub(crate) struct TimingMetrics {
    pub(crate) takeover: Histogram,
    pub(crate) hand_back_outage: Histogram,
    pub(crate) proposal: Histogram,
    pub(crate) fsync: Histogram,
}

impl TimingMetrics {
    fn new(r: &Registry) -> Self {
        Self {
            takeover: histogram(
                r,
                "survivable_takeover_seconds",
                "Leaderless time until this member led by a takeover or an activation",
                TAKEOVER_BUCKETS,
            ),
            hand_back_outage: histogram(
                r,
                "survivable_hand_back_outage_seconds",
                "From a hand-back attempt's start until this member learned the target leads (writes wait meanwhile)",
                OUTAGE_BUCKETS,
            ),
            proposal: histogram(
                r,
                "survivable_proposal_seconds",
                "Proposal submitted until applied here",
                PROPOSAL_BUCKETS,
            ),
            fsync: histogram(
                r,
                "survivable_fsync_seconds",
                "Each synced storage write (the write and its fsync)",
                FSYNC_BUCKETS,
            ),
        }
    }
}

impl Metrics {
    /// The metrics of member `me` of `topology`, every series at its
    /// starting value (roles and the leader's site 0, no peer lag yet).
    pub fn new(me: NodeId, topology: &Topology) -> Self {
        let registry = Registry::new();
        let m = Self {
            me,
            sites: topology
                .members()
                .iter()
                .map(|(&id, m)| (id, m.site.clone()))
                .collect(),
            state: StateMetrics::new(&registry),
            peers: PeerMetrics::new(&registry),
            counts: CountMetrics::new(&registry),
            timings: TimingMetrics::new(&registry),
            replication: (topology.mode() == QuorumMode::DrAutoSync)
                .then(|| replication::ReplicationMetrics::new(&registry)),
            registry,
        };
        let info = int_gauges(
            &m.registry,
            "survivable_member_info",
            "1: this member's id and site",
            &["member", "site"],
        );
        info.with_label_values(&[&me.to_string(), m.site_of(me)])
            .set(1);
        for role in ROLES {
            m.state.role.with_label_values(&[role]).set(0);
        }
        for site in topology.sites() {
            m.state.leader_site.with_label_values(&[&site.name]).set(0);
        }
        m
    }

    /// The site of member `id` ("" for one the topology does not name: a
    /// replacement).
    pub(crate) fn site_of(&self, id: NodeId) -> &str {
        self.sites
            .iter()
            .find(|(m, _)| *m == id)
            .map_or("", |(_, s)| s.as_str())
    }

    /// Everything, in the Prometheus text format (version 0.0.4).
    pub fn encode(&self) -> String {
        TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap_or_else(|e| format!("# encoding the metrics failed: {e}\n"))
    }

    /// The registry, to gather or encode with other tools.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// An observer for [`LogStore::observe_syncs`](crate::storage::LogStore::observe_syncs)
    /// filling `survivable_fsync_seconds`.
    pub fn fsync_observer(&self) -> SyncObserver {
        let h = self.timings.fsync.clone();
        std::sync::Arc::new(move |took| h.observe(took.as_secs_f64()))
    }
}

/// What the counters of node events are bumped by (a fresh event).
fn count_event(m: &Metrics, e: &Event) {
    use crate::events::LeadershipCause;
    match e {
        Event::BecameLeader {
            cause: LeadershipCause::PairFailover { .. },
            ..
        } => m.counts.pair_failovers.inc(),
        Event::BecameLeader {
            cause: LeadershipCause::Takeover { .. },
            ..
        } => m.counts.takeovers.inc(),
        Event::Activated { .. } => m.counts.activations.inc(),
        Event::HandBackAttempt { .. } => m.counts.hand_backs_attempted.inc(),
        Event::HandBackCompleted { .. } => m.counts.hand_backs_succeeded.inc(),
        Event::HandBackFailed { .. } => m.counts.hand_backs_failed.inc(),
        Event::HandBackAbandoned { .. } => m.counts.hand_backs_abandoned.inc(),
        Event::RetentionWarning { .. } => m.counts.retention_warnings.inc(),
        Event::RetainedDropped { entries, .. } => m.counts.retained_dropped.inc_by(*entries),
        Event::ReplicationChanged { .. } => {
            if let Some(r) = &m.replication {
                r.changes.inc();
            }
        }
        _ => {}
    }
}

/// The node's counters as the metrics keep them: refusals by reason and
/// suppressed campaigns.
fn counter_values(c: &Counters) -> [u64; 10] {
    let mut out = [0; 10];
    for (o, (_, v)) in out.iter_mut().zip(c.rejected_by_reason()) {
        *o = v;
    }
    out[9] = c.campaigns_suppressed;
    out
}

/// The role and the status figures that are plain gauges.
fn set_gauges(m: &Metrics, s: &Status) {
    let as_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    m.state.term.set(as_i64(s.term));
    m.state.epoch.set(as_i64(s.epoch.number));
    m.state.commit.set(as_i64(s.commit));
    m.state.applied.set(as_i64(s.applied));
    m.state.last_index.set(as_i64(s.last_index));
    m.state.rpo_entries.set(as_i64(s.rpo_entries));
    m.state.rpo_seconds.set(s.rpo_ms as f64 / 1000.0);
    m.state.retained_entries.set(as_i64(s.retained.entries));
    m.state.retained_bytes.set(as_i64(s.retained.bytes));
    m.state.retained_held_back.set(as_i64(s.retained.held_back));
    m.state
        .leader_member
        .set(as_i64(s.leader.map_or(0, |l| l.0)));
    if let Some(r) = &m.replication {
        r.record(s.replication.as_ref());
    }
}
