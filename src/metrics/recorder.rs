//! Keeps a member's [`Metrics`] up to date from what its node reports.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use prometheus::{Gauge, IntCounter, IntGauge};

use super::lag::LagHistory;
use super::{count_event, counter_values, role_index, set_gauges, Metrics, ROLES};
use crate::events::{Event, LeadershipCause};
use crate::ids::ProposalId;
use crate::node::{Counters, NodeRole, Status};
use crate::topology::NodeId;

/// How often [`Recorder::slow_due`] says yes: the node's counters and the
/// transport's are cumulative, so reading them this often only delays
/// what a scrape shows by as much (scrapes come every few seconds).
pub const SLOW_EVERY: Duration = Duration::from_millis(100);

/// One peer's lag series.
struct PeerGauges {
    id: NodeId,
    entries: IntGauge,
    seconds: Gauge,
    reachable: IntGauge,
}

/// Feeds a member's [`Metrics`]: give it every [`Status`] and [`Event`]
/// the node reports (in order), its [`Counters`] and the transport's
/// state now and then ([`slow_due`](Self::slow_due)), and the proposals
/// submitted and completed. Each call is a few atomic updates (series
/// handles are cached), so it can run on every pass of a node's loop.
pub struct Recorder {
    metrics: Metrics,
    start: Instant,
    lag: LagHistory,
    role: Option<NodeRole>,
    leader: Option<NodeId>,
    peers: Vec<PeerGauges>,
    connected: Vec<(NodeId, IntGauge)>,
    /// The refused-envelope series, in `Counters::rejected_by_reason`
    /// order, then the suppressed campaigns.
    envelopes: Vec<IntCounter>,
    counters_seen: [u64; 10],
    connections: Vec<(&'static str, IntCounter, u64)>,
    takeover_from: Option<Instant>,
    /// `takeover_from` dates an activation (its election counts however
    /// it is labelled).
    activated: bool,
    hand_back_from: Option<Instant>,
    proposals: HashMap<ProposalId, Instant>,
    slow_at: Option<Instant>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("metrics", &self.metrics)
            .finish()
    }
}

impl Recorder {
    /// Records into `metrics` (keep a clone to encode it).
    pub fn new(metrics: Metrics) -> Self {
        let envelopes = Counters::default()
            .rejected_by_reason()
            .iter()
            .map(|(reason, _)| {
                metrics
                    .counts
                    .refused_envelopes
                    .with_label_values(&[reason])
            })
            .chain(std::iter::once(metrics.counts.campaigns_suppressed.clone()))
            .collect();
        let connected = metrics
            .sites
            .iter()
            .filter(|(id, _)| *id != metrics.me)
            .map(|(id, site)| {
                let g = metrics
                    .peers
                    .connected
                    .with_label_values(&[&id.to_string(), site]);
                (*id, g)
            })
            .collect();
        Self {
            metrics,
            start: Instant::now(),
            lag: LagHistory::default(),
            role: None,
            leader: None,
            peers: Vec::new(),
            connected,
            envelopes,
            counters_seen: [0; 10],
            connections: Vec::new(),
            takeover_from: None,
            activated: false,
            hand_back_from: None,
            proposals: HashMap::new(),
            slow_at: None,
        }
    }

    /// The metrics it records into.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether the counters and the transport are due to be read again
    /// (the first call, then every [`SLOW_EVERY`]).
    pub fn slow_due(&mut self) -> bool {
        let due = self.slow_at.is_none_or(|at| at.elapsed() >= SLOW_EVERY);
        if due {
            self.slow_at = Some(Instant::now());
        }
        due
    }

    /// The node's status now.
    pub fn status(&mut self, s: &Status) {
        let m = &self.metrics;
        set_gauges(m, s);
        if self.role != Some(s.role) {
            if let Some(old) = self.role {
                m.state
                    .role
                    .with_label_values(&[ROLES[role_index(old)]])
                    .set(0);
            }
            m.state
                .role
                .with_label_values(&[ROLES[role_index(s.role)]])
                .set(1);
            self.role = Some(s.role);
        }
        if self.leader != s.leader {
            for (leader, on) in [(self.leader, 0), (s.leader, 1)] {
                let site = leader.map_or("", |l| m.site_of(l));
                if !site.is_empty() {
                    m.state.leader_site.with_label_values(&[site]).set(on);
                }
            }
            self.leader = s.leader;
        }
        let now = self.now_ms();
        self.lag.record(s.last_index, now);
        self.peer_lags(s, now);
    }

    /// The leader's per-peer series; removed once it no longer leads.
    fn peer_lags(&mut self, s: &Status, now_ms: u64) {
        if s.peers.is_empty() {
            if !self.peers.is_empty() {
                let p = &self.metrics.peers;
                p.lag_entries.reset();
                p.lag_seconds.reset();
                p.reachable.reset();
                self.peers.clear();
            }
            return;
        }
        for peer in &s.peers {
            let at = match self.peers.iter().position(|g| g.id == peer.id) {
                Some(at) => at,
                None => {
                    let p = &self.metrics.peers;
                    let labels = [peer.id.to_string(), self.metrics.site_of(peer.id).into()];
                    let labels = [labels[0].as_str(), labels[1].as_str()];
                    self.peers.push(PeerGauges {
                        id: peer.id,
                        entries: p.lag_entries.with_label_values(&labels),
                        seconds: p.lag_seconds.with_label_values(&labels),
                        reachable: p.reachable.with_label_values(&labels),
                    });
                    self.peers.len() - 1
                }
            };
            let g = &self.peers[at];
            g.entries.set(i64::try_from(peer.lag).unwrap_or(i64::MAX));
            g.seconds
                .set(self.lag.lag_ms(peer.matched, now_ms) as f64 / 1000.0);
            g.reachable.set(i64::from(peer.reachable));
        }
    }

    /// An event the node reported, as it comes.
    pub fn event(&mut self, e: &Event) {
        count_event(&self.metrics, e);
        let now = Instant::now();
        let back = |ms: u64| now.checked_sub(Duration::from_millis(ms)).unwrap_or(now);
        match e {
            Event::TakeoverStarted { leaderless_ms, .. } => {
                self.takeover_from.get_or_insert(back(*leaderless_ms));
            }
            Event::Activated { silent_ms, .. } => {
                let from = back(*silent_ms);
                let earliest = self.takeover_from.map_or(from, |t| t.min(from));
                self.takeover_from = Some(earliest);
                self.activated = true;
            }
            Event::BecameLeader { cause, .. } => {
                let took_over = matches!(cause, LeadershipCause::Takeover { .. });
                let activated = std::mem::take(&mut self.activated);
                if let Some(from) = self.takeover_from.take() {
                    // After an activation the new epoch's election wins
                    // however it is labelled; otherwise only a takeover.
                    if took_over || activated {
                        let took = now.duration_since(from);
                        self.metrics.timings.takeover.observe(took.as_secs_f64());
                    }
                }
            }
            Event::LeaderChanged {
                leader: Some(l), ..
            } if *l != self.metrics.me => {
                self.takeover_from = None;
                self.activated = false;
            }
            Event::HandBackAttempt { .. } => self.hand_back_from = Some(now),
            Event::HandBackFailed { .. } | Event::HandBackAbandoned { .. } => {
                self.hand_back_from = None;
            }
            Event::HandBackCompleted { .. } => {
                if let Some(from) = self.hand_back_from.take() {
                    let took = now.duration_since(from).as_secs_f64();
                    self.metrics.timings.hand_back_outage.observe(took);
                }
            }
            _ => {}
        }
    }

    /// The node's counters now: refusals by reason, suppressed campaigns.
    pub fn counters(&mut self, c: &Counters) {
        let now = counter_values(c);
        for ((seen, new), series) in self.counters_seen.iter_mut().zip(now).zip(&self.envelopes) {
            if new > *seen {
                series.inc_by(new - *seen);
            }
            *seen = new;
        }
    }

    /// The transport's refused connections now, by reason (see
    /// `TransportStats::refused_by_reason`).
    pub fn refused_connections(&mut self, by_reason: &[(&'static str, u64)]) {
        for &(reason, n) in by_reason {
            let at = match self.connections.iter().position(|(r, ..)| *r == reason) {
                Some(at) => at,
                None => {
                    let c = &self.metrics.counts.refused_connections;
                    self.connections
                        .push((reason, c.with_label_values(&[reason]), 0));
                    self.connections.len() - 1
                }
            };
            let (_, series, seen) = &mut self.connections[at];
            if n > *seen {
                series.inc_by(n - *seen);
            }
            *seen = n;
        }
    }

    /// Each peer's connection state, as `connected` tells it (`None`:
    /// unknown, left as it was).
    pub fn connections(&mut self, connected: impl Fn(NodeId) -> Option<bool>) {
        for (id, g) in &self.connected {
            if let Some(up) = connected(*id) {
                g.set(i64::from(up));
            }
        }
    }

    /// A proposal was submitted (the clock of its latency starts).
    pub fn proposed(&mut self, id: ProposalId) {
        self.proposals.insert(id, Instant::now());
    }

    /// Proposals whose latency clock runs: those submitted and not yet
    /// completed, at most the node's `max_pending` (a proposal's clock is
    /// dropped when it completes either way, so 1,000,000 proposals leave
    /// none behind).
    #[cfg(test)]
    pub(super) fn clocks(&self) -> usize {
        self.proposals.len()
    }

    /// A proposal completed: `applied`, or failed (not timed).
    pub fn proposal_done(&mut self, id: ProposalId, applied: bool) {
        if let Some(at) = self.proposals.remove(&id) {
            if applied {
                let took = at.elapsed().as_secs_f64();
                self.metrics.timings.proposal.observe(took);
            }
        }
    }
}
