//! DR auto-sync series ([`Status::replication`](crate::node::Status::replication)):
//! registered only in a DR auto-sync topology, so the other modes show no
//! replication state at all rather than a misleading `sync`.
//!
//! What a site's loss would cost is a pair of series per site (`site` is
//! `main` or `survivable`, the role of the site lost, not its name: the
//! names are in `survivable_member_info`). A cost this member cannot tell
//! is an *absent* series, never 0: a 0 is a figure, and it is only shown
//! when the member has one (proven or measured, see
//! [`SiteLossCost`](crate::replication::SiteLossCost)).

use prometheus::{Gauge, GaugeVec, IntCounter, IntGauge, IntGaugeVec, Opts, Registry};

use super::{counter, gauge, int_gauge, int_gauges, reg};
use crate::replication::{Replication, ReplicationState, SiteLossCost};

/// The states `survivable_replication_state` labels, by code.
const STATES: [ReplicationState; 4] = [
    ReplicationState::Sync,
    ReplicationState::AsyncWait,
    ReplicationState::Async,
    ReplicationState::SyncRecover,
];

/// The `site` label of a site-loss series: which site is lost.
const SITES: [&str; 2] = ["main", "survivable"];

/// The DR auto-sync series of one member.
#[derive(Clone)]
pub(crate) struct ReplicationMetrics {
    state: IntGaugeVec,
    code: IntGauge,
    state_id: IntGauge,
    lease: Gauge,
    rpo_entries: IntGaugeVec,
    rpo_seconds: GaugeVec,
    proven: IntGaugeVec,
    pub(crate) changes: IntCounter,
}

impl ReplicationMetrics {
    pub(crate) fn new(r: &Registry) -> Self {
        let seconds = Opts::new(
            "survivable_replication_rpo_seconds",
            "DR auto-sync: for how long the oldest committed entry the other site lacks has been committed, if the site labelled were lost now (absent: unknown here)",
        );
        Self {
            state: int_gauges(
                r,
                "survivable_replication_state",
                "DR auto-sync: 1 for the replication state this member's log says, 0 for the others",
                &["state"],
            ),
            code: int_gauge(
                r,
                "survivable_replication_state_code",
                "DR auto-sync: that state as a number (0 sync, 1 async_wait, 2 async, 3 sync_recover)",
            ),
            state_id: int_gauge(
                r,
                "survivable_replication_state_id",
                "DR auto-sync: the id of that state (larger for every later state)",
            ),
            lease: gauge(
                r,
                "survivable_replication_lease_seconds",
                "DR auto-sync, survivable member: for how much longer its lease proves the leader commits nothing without its site (0: none)",
            ),
            rpo_entries: int_gauges(
                r,
                "survivable_replication_rpo_entries",
                "DR auto-sync: committed entries the other site lacks, if the site labelled were lost now (absent: unknown here)",
                &["site"],
            ),
            rpo_seconds: reg(r, GaugeVec::new(seconds, &["site"]).expect("valid name")),
            proven: int_gauges(
                r,
                "survivable_replication_rpo_proven",
                "DR auto-sync: 1 if the loss figure of the site labelled is proven (group commit, a running lease or the leader's count), 0 if it is unknown",
                &["site"],
            ),
            changes: counter(
                r,
                "survivable_replication_changes_total",
                "DR auto-sync: replication state changes this member saw in its log (ReplicationChanged events)",
            ),
        }
    }

    /// Sets every series from `r` (`None`: no DR view, every series
    /// removed but the counter).
    pub(crate) fn record(&self, r: Option<&Replication>) {
        let Some(r) = r else {
            self.state.reset();
            self.rpo_entries.reset();
            self.rpo_seconds.reset();
            self.proven.reset();
            return;
        };
        for s in STATES {
            let on = i64::from(s == r.state);
            self.state.with_label_values(&[s.name()]).set(on);
        }
        let as_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.code.set(i64::from(r.state.code()));
        self.state_id.set(as_i64(r.state_id));
        self.lease.set(r.lease_ms as f64 / 1000.0);
        for (site, cost) in SITES
            .into_iter()
            .zip([r.main_site_loss, r.survivable_site_loss])
        {
            self.site_loss(site, cost);
        }
    }

    /// One site's loss series: each figure present only when known.
    fn site_loss(&self, site: &str, cost: SiteLossCost) {
        let labels = [site];
        self.proven
            .with_label_values(&labels)
            .set(i64::from(cost.proven));
        match cost.entries {
            Some(n) => self
                .rpo_entries
                .with_label_values(&labels)
                .set(i64::try_from(n).unwrap_or(i64::MAX)),
            None => {
                let _ = self.rpo_entries.remove_label_values(&labels);
            }
        }
        match cost.ms {
            Some(ms) => self
                .rpo_seconds
                .with_label_values(&labels)
                .set(ms as f64 / 1000.0),
            None => {
                let _ = self.rpo_seconds.remove_label_values(&labels);
            }
        }
    }
}
