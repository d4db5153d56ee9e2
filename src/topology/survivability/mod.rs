//! The survivability report: for every single failure (each host, each
//! core, each site), every two-way partition between sites, each host on
//! a partition's leading side failing while it lasts and, with three sites
//! or more, every site cut off from every other, which member
//! leads afterwards, whether committed data survives, and how long the
//! takeover takes with the configured timers.
//!
//! The model mirrors what the node does (`node::election`): the leader stays
//! while it keeps a majority; the standby of a dead primary runs a fast,
//! transfer-style election after `failover` of silence; otherwise the
//! best-ranked survivable core in the majority campaigns after
//! `survivable_after` (plus `rank_step` per rank below 1, plus an election
//! timeout for a standby), with pre-vote; a witness campaigns last. An
//! election round costs one round trip to the farthest voter the candidate
//! needs for a majority; the first commit under the new leader one more.
//! The scenario tests check every row against the simulator.
//!
//! DR auto-sync mode adds what its replication state makes of a row: the
//! main site lost, the survivable core activates (after the standby's
//! stagger, once both members stopped acknowledging) with RPO 0 if the
//! cluster was in `Sync`, else the `Async` lag; the survivable site lost,
//! the main site's commits stall `sync_wait` and go on alone; a WAN cut,
//! both (the main site stalls, the survivable core activates its own
//! epoch).
//!
//! The report's types live here; `analysis` computes the rows from a
//! topology, `table` renders them as an aligned table.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use super::NodeId;
use crate::policy::{HandBackPolicy, QuorumMode};

mod analysis;
mod table;
#[cfg(test)]
mod tests;

pub(crate) use analysis::analyse;

/// Latencies the report assumes: a round trip within a site, one between
/// sites, and optional overrides per pair of sites and per direction (real
/// WAN paths are uneven, and sometimes asymmetric).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Latency {
    /// Round trip between two members of one site. Defaults to 1 ms.
    pub lan_rtt: Duration,
    /// Round trip between two sites without an override. Defaults to 80 ms.
    pub wan_rtt: Duration,
    /// One-way latency from a site to another, where it is not `wan_rtt / 2`.
    one_way: BTreeMap<(String, String), Duration>,
}

impl Default for Latency {
    fn default() -> Self {
        Self::new(Duration::from_millis(1), Duration::from_millis(80))
    }
}

impl Latency {
    /// A LAN and a WAN round trip.
    pub fn new(lan_rtt: Duration, wan_rtt: Duration) -> Self {
        Self {
            lan_rtt,
            wan_rtt,
            one_way: BTreeMap::new(),
        }
    }

    /// Overrides the round trip between sites `a` and `b`: half of it each way.
    pub fn with_site_rtt(self, a: &str, b: &str, rtt: Duration) -> Self {
        self.with_link_latency(a, b, rtt / 2)
            .with_link_latency(b, a, rtt / 2)
    }

    /// Overrides the one-way latency from site `from` to site `to` (that
    /// direction only).
    pub fn with_link_latency(mut self, from: &str, to: &str, one_way: Duration) -> Self {
        self.one_way
            .insert((from.to_string(), to.to_string()), one_way);
        self
    }

    /// The one-way latency from a member of site `from` to one of site `to`.
    pub fn one_way(&self, from: &str, to: &str) -> Duration {
        if from == to {
            return self.lan_rtt / 2;
        }
        self.one_way
            .get(&(from.to_string(), to.to_string()))
            .copied()
            .unwrap_or(self.wan_rtt / 2)
    }

    /// The round trip between a member of site `a` and one of site `b`:
    /// the one-way latency there plus the one back.
    pub fn rtt(&self, a: &str, b: &str) -> Duration {
        self.one_way(a, b) + self.one_way(b, a)
    }

    /// Each pair of sites with an override, for the table: "a-b N ms RTT",
    /// or "a→b N ms, b→a M ms one way" when the two directions differ.
    fn pairs(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (a, b) in self.one_way.keys() {
            let back = (b.clone(), a.clone());
            if a > b && self.one_way.contains_key(&back) {
                continue;
            }
            let (there, home) = (self.one_way(a, b), self.one_way(b, a));
            out.push(if there == home {
                format!("{a}-{b} {} ms RTT", (there + home).as_millis())
            } else {
                format!(
                    "{a}→{b} {} ms, {b}→{a} {} ms one way",
                    there.as_millis(),
                    home.as_millis()
                )
            });
        }
        out
    }

    /// Every per-site override: ((from, to), one-way latency).
    pub fn overrides(&self) -> impl Iterator<Item = ((&str, &str), Duration)> + '_ {
        self.one_way
            .iter()
            .map(|((a, b), &d)| ((a.as_str(), b.as_str()), d))
    }
}

/// What fails in a scenario.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Failure {
    /// A physical host dies, with every member on it.
    Host {
        /// The host.
        host: String,
    },
    /// Both members of a core die.
    Core {
        /// The core.
        core: String,
    },
    /// A whole site is lost.
    Site {
        /// The site.
        site: String,
    },
    /// The WAN splits the sites into two groups that cannot reach each other.
    Partition {
        /// One side (it holds the first declared site, the main site usually).
        side_a: Vec<String>,
        /// The other side.
        side_b: Vec<String>,
    },
    /// The WAN fails everywhere: every site is alone, cut off from every
    /// other (listed for three sites or more).
    AllApart,
    /// A host dies while a partition lasts, after leadership has settled
    /// on the partition's leading side (listed for each host on that side,
    /// in witness mode).
    HostDuringPartition {
        /// The host.
        host: String,
        /// The partition's side holding the first declared site.
        side_a: Vec<String>,
        /// Its other side.
        side_b: Vec<String>,
    },
}

impl Failure {
    /// The failure already in force when this one happens, if any: the
    /// partition, for a host failure during a partition. Inject it first
    /// and let leadership settle before injecting this one.
    pub fn before(&self) -> Option<Self> {
        match self {
            Self::HostDuringPartition { side_a, side_b, .. } => Some(Self::Partition {
                side_a: side_a.clone(),
                side_b: side_b.clone(),
            }),
            _ => None,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Host { host } => write!(f, "host {host}"),
            Self::Core { core } => write!(f, "core {core}"),
            Self::Site { site } => write!(f, "site {site}"),
            Self::Partition { side_a, side_b } => {
                write!(f, "partition {} | {}", side_a.join("+"), side_b.join("+"))
            }
            Self::AllApart => f.write_str("every site alone"),
            Self::HostDuringPartition {
                host,
                side_a,
                side_b,
            } => write!(
                f,
                "host {host} during {} | {}",
                side_a.join("+"),
                side_b.join("+")
            ),
        }
    }
}

/// How leadership is settled after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Takeover {
    /// The leader keeps a majority and stays: nothing moves.
    Unaffected,
    /// The standby of the dead primary takes over (paper Fig. 3–4).
    PairFailover,
    /// Another main-core member wins an ordinary election.
    Election,
    /// A survivable core of this rank takes over after `survivable_after`.
    Survivable {
        /// Its rank.
        rank: u32,
    },
    /// Only a witness is left to lead; it does, as the last resort.
    LastResort,
    /// Main-site and DR auto-sync modes: the main site cannot serve; the
    /// survivable core of this rank activates a new epoch after
    /// `survivable_after` (DR auto-sync: once its standby, an election
    /// timeout later, stopped acknowledging too).
    Activation {
        /// Its rank.
        rank: u32,
    },
    /// Main-site mode: the main site goes on serving its side and the
    /// survivable core of this rank, cut off from it, activates a new epoch
    /// for its own side; the two are reconciled when they meet again.
    Split {
        /// Its rank.
        rank: u32,
    },
    /// No group of reachable members holds a majority of the voters: no
    /// one leads and writes stop until members return.
    NoQuorum,
    /// DR auto-sync mode, the survivable site silent (lost): the leader
    /// stays, its commits wait `stall` (`sync_wait`) for that site, then
    /// go on in the main site alone (`Async`).
    StallThenAsync {
        /// How long commits wait (`sync_wait`).
        stall: Duration,
    },
    /// DR auto-sync mode, a WAN cut: the main site's commits wait `stall`
    /// (`sync_wait`) and then go on alone (`Async`), while the survivable
    /// core of this rank, cut off, activates a new epoch for its side
    /// (from every entry committed while the cluster was in `Sync`); the
    /// two are reconciled when they meet again.
    SplitAfterStall {
        /// Its rank.
        rank: u32,
        /// How long the main site's commits wait (`sync_wait`).
        stall: Duration,
    },
}

impl fmt::Display for Takeover {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unaffected => f.write_str("unaffected"),
            Self::PairFailover => f.write_str("pair failover"),
            Self::Election => f.write_str("election"),
            Self::Survivable { rank } => write!(f, "survivable rank {rank}"),
            Self::LastResort => f.write_str("witness, last resort"),
            Self::Activation { rank } => write!(f, "new epoch, rank {rank}"),
            Self::Split { rank } => write!(f, "both serve, rank {rank}"),
            Self::NoQuorum => f.write_str("no quorum"),
            Self::StallThenAsync { stall } => {
                write!(f, "commits stall {} ms, then async", stall.as_millis())
            }
            Self::SplitAfterStall { rank, stall } => write!(
                f,
                "both serve, rank {rank}; main stalls {} ms, then async",
                stall.as_millis()
            ),
        }
    }
}

/// What happens to committed data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Committed {
    /// Every committed entry is in the new leader's log (witness mode: every
    /// commit is on a majority, and any two majorities share a member).
    Preserved,
    /// Nothing committed is lost, but with no majority nothing can commit
    /// either until enough members return.
    Unavailable,
    /// Main-site mode: entries the main site committed but had not shipped
    /// (at most the replication lag) are missing from the new epoch;
    /// counted and reported at activation, and reconciled if the main site
    /// comes back.
    UpToLag,
    /// Main-site and DR auto-sync modes: both sides commit their own
    /// writes; nothing is lost, and the older epoch's writes are
    /// reconciled at reunion.
    Reconciled,
    /// DR auto-sync mode, the main site lost: nothing, proven (by the
    /// survivable member's lease), if the cluster was in `Sync` or
    /// `AsyncWait`; otherwise what the survivable site had not received
    /// (the `Async` lag), counted and reported at activation.
    ZeroIfSync,
}

impl fmt::Display for Committed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Preserved => f.write_str("preserved"),
            Self::Unavailable => f.write_str("kept, unavailable"),
            Self::UpToLag => f.write_str("lag reported"),
            Self::Reconciled => f.write_str("reconciled later"),
            Self::ZeroIfSync => f.write_str("RPO 0 if in sync (lease), else async lag"),
        }
    }
}

/// One row of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scenario {
    /// What fails.
    pub failure: Failure,
    /// Members stopped by the failure.
    pub down: Vec<NodeId>,
    /// Members still running but outside the group that can lead.
    pub cut_off: Vec<NodeId>,
    /// Who leads once things settle (`None`: no one can).
    pub leader: Option<NodeId>,
    /// That leader's site.
    pub leader_site: Option<String>,
    /// Main-site mode, a split: the survivable member leading a new epoch
    /// on the other side while `leader` goes on in the main site.
    pub epoch_leader: Option<NodeId>,
    /// How leadership gets there.
    pub how: Takeover,
    /// What happens to committed data.
    pub committed: Committed,
    /// Expected time from the failure to the first commit under the new
    /// leader (`None` when the leader is unaffected or no one can lead);
    /// after a stall ([`Takeover::StallThenAsync`]), to the leader's first
    /// commit without the silent site.
    pub takeover: Option<Duration>,
}

/// What happens under each failure; print it for the table.
/// See [`Topology::survivability`](crate::topology::Topology::survivability).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SurvivabilityReport {
    /// The quorum mode analysed.
    pub mode: QuorumMode,
    /// Number of voters.
    pub voters: usize,
    /// The member that leads when nothing has failed.
    pub steady_leader: Option<NodeId>,
    /// The round trips assumed.
    pub latency: Latency,
    /// The hand-back policy that brings leadership home afterwards.
    pub hand_back: HandBackPolicy,
    /// One row per failure.
    pub scenarios: Vec<Scenario>,
    names: BTreeMap<NodeId, String>,
}

impl SurvivabilityReport {
    /// The row for a failure, if the report has one.
    pub fn scenario(&self, failure: &Failure) -> Option<&Scenario> {
        self.scenarios.iter().find(|s| &s.failure == failure)
    }

    fn names(&self, ids: &[NodeId]) -> String {
        ids.iter()
            .map(|id| {
                self.names
                    .get(id)
                    .cloned()
                    .unwrap_or_else(|| id.to_string())
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}
