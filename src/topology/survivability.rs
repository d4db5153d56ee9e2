//! The survivability report: for every single failure (each host, each
//! core, each site) and every two-way partition between sites, which member
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

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use super::{Member, NodeId, Role, Topology};
use crate::policy::{HandBackPolicy, QuorumMode};

/// Round-trip times the report assumes: one within a site, one between
/// sites, and optional per-site-pair overrides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Latency {
    /// Round trip between two members of one site. Defaults to 1 ms.
    pub lan_rtt: Duration,
    /// Round trip between two sites. Defaults to 80 ms.
    pub wan_rtt: Duration,
    site_rtt: BTreeMap<(String, String), Duration>,
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
            site_rtt: BTreeMap::new(),
        }
    }

    /// Overrides the round trip between sites `a` and `b` (both directions).
    pub fn with_site_rtt(mut self, a: &str, b: &str, rtt: Duration) -> Self {
        self.site_rtt.insert((a.to_string(), b.to_string()), rtt);
        self.site_rtt.insert((b.to_string(), a.to_string()), rtt);
        self
    }

    /// The round trip between a member of site `a` and one of site `b`.
    pub fn rtt(&self, a: &str, b: &str) -> Duration {
        if a == b {
            return self.lan_rtt;
        }
        self.site_rtt
            .get(&(a.to_string(), b.to_string()))
            .copied()
            .unwrap_or(self.wan_rtt)
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
    /// Main-site mode: the main site cannot serve; the survivable core of
    /// this rank activates a new epoch after `survivable_after`.
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
    /// Main-site mode: both sides commit their own writes; nothing is
    /// lost, and the older epoch's writes are reconciled at reunion.
    Reconciled,
}

impl fmt::Display for Committed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Preserved => f.write_str("preserved"),
            Self::Unavailable => f.write_str("kept, unavailable"),
            Self::UpToLag => f.write_str("lag reported"),
            Self::Reconciled => f.write_str("reconciled later"),
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
    /// leader (`None` when the leader is unaffected or no one can lead).
    pub takeover: Option<Duration>,
}

/// What happens under each failure; print it for the table.
/// See [`Topology::survivability`].
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

pub(crate) fn analyse(t: &Topology, latency: Latency) -> SurvivabilityReport {
    let steady_leader = t
        .members
        .values()
        .find(|m| matches!(m.role, Role::MainCore { position: 0, .. }))
        .map(Member::id);
    // (failure, members it stops, sites cut off from the others)
    let mut failures: Vec<(Failure, BTreeSet<NodeId>, Vec<String>)> = Vec::new();
    let mut hosts: BTreeMap<&str, BTreeSet<NodeId>> = BTreeMap::new();
    for m in t.members.values() {
        hosts.entry(&m.spec.host).or_default().insert(m.id());
    }
    for (host, down) in hosts {
        let host = host.to_string();
        failures.push((Failure::Host { host }, down, Vec::new()));
    }

    let mut cores: Vec<(u32, &str)> = Vec::new();
    for m in t.members.values() {
        let key = (m.preference(), m.core().unwrap_or_default());
        if m.core().is_some() && !cores.contains(&key) {
            cores.push(key);
        }
    }
    cores.sort_unstable();
    for (_, core) in cores {
        let down = t
            .members
            .values()
            .filter(|m| m.core() == Some(core))
            .map(Member::id)
            .collect();
        let core = core.to_string();
        failures.push((Failure::Core { core }, down, Vec::new()));
    }

    for site in &t.sites {
        let down = t.site_members(&site.name).into_iter().collect();
        let site = site.name.clone();
        failures.push((Failure::Site { site }, down, Vec::new()));
    }

    let names: Vec<&str> = t.sites.iter().map(|s| s.name.as_str()).collect();
    if names.len() >= 2 && names.len() <= 16 {
        for mask in 1u32..(1 << (names.len() - 1)) {
            let in_b = |i: usize| i >= 1 && mask & (1 << (i - 1)) != 0;
            let side = |b: bool| -> Vec<String> {
                (0..names.len())
                    .filter(|&i| in_b(i) == b)
                    .map(|i| names[i].to_string())
                    .collect()
            };
            let (side_a, side_b) = (side(false), side(true));
            let failure = Failure::Partition {
                side_a,
                side_b: side_b.clone(),
            };
            failures.push((failure, BTreeSet::new(), side_b));
        }
    }

    let scenarios = failures
        .into_iter()
        .map(|(failure, down, cut)| {
            let group = |m: &Member| usize::from(cut.contains(&m.site));
            evaluate(t, &latency, steady_leader, failure, down, group)
        })
        .collect();

    SurvivabilityReport {
        mode: t.mode,
        voters: t.voters().len(),
        steady_leader,
        latency,
        hand_back: t.hand_back.policy.clone(),
        scenarios,
        names: t
            .members
            .values()
            .map(|m| (m.id(), m.spec.name.clone()))
            .collect(),
    }
}

/// Settles one failure: `down` members are stopped; `group` says which
/// side of a partition each member is on (all 0 without a partition).
fn evaluate(
    t: &Topology,
    latency: &Latency,
    steady_leader: Option<NodeId>,
    failure: Failure,
    down: BTreeSet<NodeId>,
    group: impl Fn(&Member) -> usize,
) -> Scenario {
    let voters = t.voters();
    let majority = voters.len() / 2 + 1;
    let live: Vec<&Member> = t
        .members
        .values()
        .filter(|m| !down.contains(&m.id()) && voters.contains(&m.id()))
        .collect();
    let mut sizes: BTreeMap<usize, usize> = BTreeMap::new();
    for m in &live {
        *sizes.entry(group(m)).or_default() += 1;
    }
    let winner = sizes.iter().find(|(_, &n)| n >= majority).map(|(&g, _)| g);
    let side: Vec<&Member> = live
        .iter()
        .copied()
        .filter(|m| Some(group(m)) == winner)
        .collect();
    let cut_off: Vec<NodeId> = t
        .members
        .values()
        .filter(|m| !down.contains(&m.id()) && Some(group(m)) != winner)
        .map(|m| m.id())
        .collect();
    let mut row = Scenario {
        failure,
        down: down.iter().copied().collect(),
        cut_off,
        leader: None,
        leader_site: None,
        epoch_leader: None,
        how: Takeover::NoQuorum,
        committed: Committed::Unavailable,
        takeover: None,
    };
    if !side.is_empty() {
        settle_leader(&mut row, t, latency, steady_leader, &down, &side, majority);
    }
    if t.mode == QuorumMode::MainSite {
        activate(
            &mut row,
            t,
            latency,
            steady_leader,
            &down,
            &live,
            majority,
            &group,
        );
    }
    row
}

/// Main-site mode: the best-ranked survivable core that cannot reach a
/// majority of the main site's voters activates a new epoch.
#[allow(clippy::too_many_arguments)]
fn activate(
    row: &mut Scenario,
    t: &Topology,
    latency: &Latency,
    steady_leader: Option<NodeId>,
    down: &BTreeSet<NodeId>,
    live_voters: &[&Member],
    majority: usize,
    group: &impl Fn(&Member) -> usize,
) {
    let reachable = |m: &Member| live_voters.iter().filter(|v| group(v) == group(m)).count();
    let Some(c) = t
        .members
        .values()
        .filter(|m| matches!(m.role, Role::Survivable { .. }) && !down.contains(&m.id()))
        .filter(|m| reachable(m) < majority)
        .min_by_key(|m| (m.preference(), m.position(), m.id()))
    else {
        return;
    };
    let rank = c.preference();
    let ms = |ticks_: usize| Duration::from_millis(t.ticks.ms(ticks_));
    let detect = ms(t.ticks.survivable_campaign_after(rank, c.position()));
    // The new epoch's voters are the activating core's members it reaches.
    let partners: Vec<&Member> = t
        .members
        .values()
        .filter(|m| m.core() == c.core() && !down.contains(&m.id()) && group(m) == group(c))
        .collect();
    let round = quorum_rtt(latency, c, &partners, partners.len() / 2 + 1);
    let in_flight = match (&row.failure, steady_leader.and_then(|l| t.member(l))) {
        (Failure::Partition { .. }, _) | (_, None) => Duration::ZERO,
        (_, Some(old)) => latency.rtt(&old.site, &c.site) / 2,
    };
    let takeover = Some(in_flight + detect + round * 3);
    if row.leader.is_some() {
        row.how = Takeover::Split { rank };
        row.committed = Committed::Reconciled;
        row.epoch_leader = Some(c.id());
        row.takeover = takeover;
    } else {
        row.leader = Some(c.id());
        row.leader_site = Some(c.site.clone());
        row.how = Takeover::Activation { rank };
        row.committed = Committed::UpToLag;
        row.takeover = takeover;
    }
}

/// Who leads `side`, a group holding a majority of the voters.
fn settle_leader(
    row: &mut Scenario,
    t: &Topology,
    latency: &Latency,
    steady_leader: Option<NodeId>,
    down: &BTreeSet<NodeId>,
    side: &[&Member],
    majority: usize,
) {
    row.committed = Committed::Preserved;

    let ticks = t.ticks;
    let ms = |ticks_: usize| Duration::from_millis(ticks.ms(ticks_));
    let leader_member = steady_leader.and_then(|l| t.member(l));
    let stays = leader_member.filter(|l| side.iter().any(|m| m.id() == l.id()));
    let standby = leader_member.and_then(|l| {
        side.iter().copied().find(|m| {
            down.contains(&l.id()) && m.id() != l.id() && m.core().is_some() && m.core() == l.core()
        })
    });
    let best = |pred: &dyn Fn(&Member) -> bool| {
        side.iter()
            .copied()
            .filter(|m| pred(m))
            .min_by_key(|m| (m.preference(), m.position(), m.id()))
    };
    // (leader, how, detection time, election rounds before the commit round)
    let (leader, how, detect, rounds) = if let Some(l) = stays {
        (l, Takeover::Unaffected, Duration::ZERO, 0)
    } else if let Some(s) = standby {
        (s, Takeover::PairFailover, ms(ticks.failover), 1)
    } else if let Some(m) = best(&|m| matches!(m.role, Role::MainCore { .. })) {
        let after = ticks.main_campaign_after(m.position());
        (m, Takeover::Election, ms(after), 2)
    } else if let Some(m) = best(&|m| matches!(m.role, Role::Survivable { .. })) {
        let rank = m.preference();
        let after = ticks.survivable_campaign_after(rank, m.position());
        (m, Takeover::Survivable { rank }, ms(after), 2)
    } else {
        let m = side[0];
        let after = ticks.witness_after(t.max_rank());
        (m, Takeover::LastResort, ms(after), 2)
    };
    row.leader = Some(leader.id());
    row.leader_site = Some(leader.site.clone());
    row.how = how;
    if how != Takeover::Unaffected {
        let round = quorum_rtt(latency, leader, side, majority);
        // A dead leader's last heartbeat is still on its way when it dies:
        // silence starts when it lands. A partition drops it with the link.
        let in_flight = match (&row.failure, leader_member) {
            (Failure::Partition { .. }, _) | (_, None) => Duration::ZERO,
            (_, Some(old)) => latency.rtt(&old.site, &leader.site) / 2,
        };
        row.takeover = Some(in_flight + detect + round * (rounds + 1));
    }
}

/// The round trip after which `candidate` has heard from enough of `side`
/// to make a majority with itself.
fn quorum_rtt(
    latency: &Latency,
    candidate: &Member,
    side: &[&Member],
    majority: usize,
) -> Duration {
    let mut rtts: Vec<Duration> = side
        .iter()
        .filter(|m| m.id() != candidate.id())
        .map(|m| latency.rtt(&candidate.site, &m.site))
        .collect();
    rtts.sort_unstable();
    majority
        .checked_sub(2)
        .and_then(|i| rtts.get(i).copied())
        .unwrap_or(Duration::ZERO)
}

impl fmt::Display for SurvivabilityReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = match self.mode {
            QuorumMode::Witness => "witness mode",
            QuorumMode::MainSite => "main-site mode",
        };
        writeln!(
            f,
            "Survivability ({mode}: {} voters, majority {}; LAN RTT {} ms, WAN RTT {} ms)",
            self.voters,
            self.voters / 2 + 1,
            self.latency.lan_rtt.as_millis(),
            self.latency.wan_rtt.as_millis()
        )?;
        let header = [
            "failure",
            "down",
            "cut off",
            "leader afterwards",
            "how",
            "committed data",
            "takeover",
        ];
        let rows: Vec<[String; 7]> = self
            .scenarios
            .iter()
            .map(|s| {
                let mut leader = match (s.leader, &s.leader_site) {
                    (Some(l), Some(site)) => format!("{} ({site})", self.names(&[l])),
                    _ => "none".to_string(),
                };
                if let Some(e) = s.epoch_leader {
                    leader.push_str(&format!(" + {} (new epoch)", self.names(&[e])));
                }
                let dash = |v: String| if v.is_empty() { "-".to_string() } else { v };
                [
                    s.failure.to_string(),
                    dash(self.names(&s.down)),
                    dash(self.names(&s.cut_off)),
                    leader,
                    s.how.to_string(),
                    s.committed.to_string(),
                    s.takeover
                        .map_or("-".to_string(), |d| format!("{} ms", d.as_millis())),
                ]
            })
            .collect();
        let mut widths = header.map(str::len);
        for r in &rows {
            for (w, cell) in widths.iter_mut().zip(r) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |f: &mut fmt::Formatter<'_>, cells: &[&str]| -> fmt::Result {
            let last = cells.len() - 1;
            for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
                if i == last {
                    writeln!(f, "{cell}")?;
                } else {
                    write!(f, "{cell:<w$}  ")?;
                }
            }
            Ok(())
        };
        line(f, &header)?;
        let rule: Vec<String> = widths.iter().map(|&w| "-".repeat(w)).collect();
        line(f, &rule.iter().map(String::as_str).collect::<Vec<_>>())?;
        for r in &rows {
            line(f, &r.iter().map(String::as_str).collect::<Vec<_>>())?;
        }
        let back = match &self.hand_back {
            HandBackPolicy::Immediate => "as soon as it is caught up".to_string(),
            HandBackPolicy::AfterStable(d) => {
                format!("once caught up and reachable for {} ms", d.as_millis())
            }
            HandBackPolicy::Window { start, end } => {
                format!("once caught up, between {start} and {end} UTC")
            }
            HandBackPolicy::Manual => "when an operator calls Node::hand_back".to_string(),
        };
        write!(
            f,
            "Takeover: from the failure to the first commit under the new leader. \
             Leadership returns to the main site {back}."
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::{Appliance::Virtual, Core, Site};

    fn denver_paris() -> Topology {
        crate::topology::denver_paris().build().unwrap()
    }

    fn row(r: &SurvivabilityReport, f: Failure) -> &Scenario {
        r.scenario(&f).unwrap_or_else(|| panic!("no row for {f}"))
    }

    #[test]
    fn lists_every_host_core_site_and_partition() {
        let r = denver_paris().survivability();
        // 5 hosts, 2 cores, 3 sites, 3 two-way partitions.
        assert_eq!(r.scenarios.len(), 13);
        assert_eq!(r.steady_leader, Some(NodeId(1)));
    }

    #[test]
    fn primary_host_loss_is_a_pair_failover() {
        let r = denver_paris().survivability();
        let s = row(
            &r,
            Failure::Host {
                host: "esxi-1".into(),
            },
        );
        assert_eq!(s.leader, Some(NodeId(2)));
        assert_eq!(s.how, Takeover::PairFailover);
        assert_eq!(s.committed, Committed::Preserved);
        // Last heartbeat in flight (LAN), 30 ms detection, then a vote round
        // and a commit round over the WAN.
        assert_eq!(
            s.takeover,
            Some(Duration::from_micros(500 + 30_000 + 2 * 80_000))
        );
    }

    #[test]
    fn main_site_loss_and_isolation_go_to_paris() {
        let r = denver_paris().survivability();
        for (f, in_flight) in [
            (
                Failure::Site {
                    site: "denver".into(),
                },
                40,
            ),
            (
                Failure::Core {
                    core: "cm01".into(),
                },
                40,
            ),
            (
                Failure::Partition {
                    side_a: vec!["denver".into()],
                    side_b: vec!["paris".into(), "kansas".into()],
                },
                0,
            ),
        ] {
            let s = row(&r, f);
            assert_eq!(s.leader, Some(NodeId(3)));
            assert_eq!(s.leader_site.as_deref(), Some("paris"));
            assert_eq!(s.how, Takeover::Survivable { rank: 1 });
            // The last heartbeat lands (a crash), survivable_after, then
            // pre-vote, vote and commit rounds.
            assert_eq!(
                s.takeover,
                Some(Duration::from_millis(in_flight + 2000 + 3 * 80))
            );
        }
    }

    #[test]
    fn backup_failures_leave_the_leader_alone() {
        let r = denver_paris().survivability();
        for f in [
            Failure::Host {
                host: "esxi-3".into(),
            },
            Failure::Site {
                site: "paris".into(),
            },
            Failure::Site {
                site: "kansas".into(),
            },
            Failure::Partition {
                side_a: vec!["denver".into(), "kansas".into()],
                side_b: vec!["paris".into()],
            },
        ] {
            let s = row(&r, f);
            assert_eq!(s.how, Takeover::Unaffected);
            assert_eq!(s.leader, Some(NodeId(1)));
            assert_eq!(s.takeover, None);
        }
    }

    #[test]
    fn a_lone_pair_has_no_quorum_after_a_host_loss() {
        let t = Topology::builder(1)
            .site(Site::main("denver"))
            .core(
                Core::new("cm01", "denver")
                    .member(1, "a", "h1", Virtual)
                    .member(2, "b", "h2", Virtual),
            )
            .allow_single_host_outage(true)
            .build()
            .unwrap();
        let r = t.survivability();
        let s = row(&r, Failure::Host { host: "h1".into() });
        assert_eq!(s.how, Takeover::NoQuorum);
        assert_eq!(s.leader, None);
        assert_eq!(s.committed, Committed::Unavailable);
    }

    #[test]
    fn prints_an_aligned_table() {
        let text = denver_paris().survivability().to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].contains("5 voters, majority 3"));
        assert!(lines[1].starts_with("failure"));
        let takeover_col = lines[1].find("takeover").unwrap();
        assert!(lines[2..15].iter().all(|l| l.len() >= takeover_col));
        assert!(text.contains("partition denver | paris+kansas"));
        assert!(text.contains("CM02a (paris)"));
        assert!(text.contains("2240 ms"));
    }

    #[test]
    fn the_two_site_report_is_honest() {
        let t = crate::topology::denver_paris_two_site().build().unwrap();
        let r = t.survivability();
        assert_eq!(r.voters, 3);
        // A host in Denver: the pair fails over over the LAN.
        let s = row(
            &r,
            Failure::Host {
                host: "esxi-1".into(),
            },
        );
        assert_eq!((s.how, s.leader), (Takeover::PairFailover, Some(NodeId(2))));
        assert_eq!(s.committed, Committed::Preserved);
        assert!(s.takeover.unwrap() < Duration::from_millis(40));
        // Paris is a learner: losing it changes nothing.
        let s = row(
            &r,
            Failure::Site {
                site: "paris".into(),
            },
        );
        assert_eq!(s.how, Takeover::Unaffected);
        // Losing Denver costs the replication lag; Paris activates.
        let s = row(
            &r,
            Failure::Site {
                site: "denver".into(),
            },
        );
        assert_eq!(s.how, Takeover::Activation { rank: 1 });
        assert_eq!(
            (s.leader, s.committed),
            (Some(NodeId(3)), Committed::UpToLag)
        );
        assert!(s.takeover.unwrap() <= Duration::from_millis(2000 + 40 + 3));
        // A cut WAN: both sides serve, reconciled later.
        let s = row(
            &r,
            Failure::Partition {
                side_a: vec!["denver".into()],
                side_b: vec!["paris".into()],
            },
        );
        assert_eq!(s.how, Takeover::Split { rank: 1 });
        assert_eq!(
            (s.leader, s.epoch_leader),
            (Some(NodeId(1)), Some(NodeId(3)))
        );
        assert_eq!(s.committed, Committed::Reconciled);
        let text = r.to_string();
        assert!(text.contains("main-site mode: 3 voters"), "{text}");
        assert!(
            text.contains("CM01a (denver) + CM02a (new epoch)"),
            "{text}"
        );
    }

    #[test]
    fn site_rtt_overrides_the_wan() {
        let l = Latency::default().with_site_rtt("denver", "kansas", Duration::from_millis(20));
        assert_eq!(l.rtt("kansas", "denver"), Duration::from_millis(20));
        assert_eq!(l.rtt("denver", "paris"), Duration::from_millis(80));
        assert_eq!(l.rtt("paris", "paris"), Duration::from_millis(1));
    }
}
