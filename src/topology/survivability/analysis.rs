//! Computing the survivability report: the failures to consider, and for
//! each, who leads afterwards, how and how fast (the model is described on
//! the parent module).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::{Committed, Failure, Latency, Scenario, SurvivabilityReport, Takeover};
use crate::policy::QuorumMode;
use crate::topology::{Member, NodeId, Role, Topology};

/// The report for `t` with the round-trip times of `latency`.
pub(crate) fn analyse(t: &Topology, latency: Latency) -> SurvivabilityReport {
    let steady_leader = t
        .members
        .values()
        .find(|m| matches!(m.role, Role::MainCore { position: 0, .. }))
        .map(Member::id);
    // (failure, members it stops, groups of sites cut off from the first
    // group, the rest of the sites)
    let mut failures: Vec<(Failure, BTreeSet<NodeId>, Vec<Vec<String>>)> = Vec::new();
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
            failures.push((failure, BTreeSet::new(), vec![side_b]));
        }
    }
    if names.len() >= 3 {
        // Every site alone: each site but the first is a group of its own.
        let apart = names[1..].iter().map(|s| vec![s.to_string()]).collect();
        failures.push((Failure::AllApart, BTreeSet::new(), apart));
    }

    let scenarios = failures
        .into_iter()
        .map(|(failure, down, cut)| {
            let group = |m: &Member| {
                cut.iter()
                    .position(|g| g.contains(&m.site))
                    .map_or(0, |i| i + 1)
            };
            evaluate(t, &latency, steady_leader, failure, down, group)
        })
        .collect();
    let scenarios = with_hosts_during_partitions(t, &latency, scenarios);

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

/// Adds, after each two-way partition that leaves one leader (witness
/// mode: no new epoch), a row for each host on the leading side failing
/// while the partition lasts, settled from the partition's leader. Hosts
/// on the other side change nothing and get no row.
fn with_hosts_during_partitions(
    t: &Topology,
    latency: &Latency,
    rows: Vec<Scenario>,
) -> Vec<Scenario> {
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let extra = match (&row.failure, row.leader, row.how) {
            (Failure::Partition { side_a, side_b }, Some(leader), how)
                if !matches!(
                    how,
                    Takeover::Split { .. }
                        | Takeover::SplitAfterStall { .. }
                        | Takeover::Activation { .. }
                ) =>
            {
                hosts_during(t, latency, side_a, side_b, leader)
            }
            _ => Vec::new(),
        };
        out.push(row);
        out.extend(extra);
    }
    out
}

/// The rows of [`with_hosts_during_partitions`] for one partition led by
/// `leader`.
fn hosts_during(
    t: &Topology,
    latency: &Latency,
    side_a: &[String],
    side_b: &[String],
    leader: NodeId,
) -> Vec<Scenario> {
    let group = |m: &Member| usize::from(side_b.contains(&m.site));
    let leading = t.member(leader).map(&group);
    let mut hosts: BTreeMap<&str, BTreeSet<NodeId>> = BTreeMap::new();
    for m in t.members.values().filter(|m| Some(group(m)) == leading) {
        hosts.entry(&m.spec.host).or_default().insert(m.id());
    }
    hosts
        .into_iter()
        .map(|(host, down)| {
            let failure = Failure::HostDuringPartition {
                host: host.to_string(),
                side_a: side_a.to_vec(),
                side_b: side_b.to_vec(),
            };
            evaluate(t, latency, Some(leader), failure, down, group)
        })
        .collect()
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
    if t.mode.forks_epochs() {
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
    if t.mode == QuorumMode::DrAutoSync {
        dr_auto_sync(&mut row, t, latency, &down, &side, majority, &group);
    }
    row
}

/// DR auto-sync mode: what the replication state makes of a row.
///
/// * The main site lost (an activation): the survivable core's epoch
///   starts with every entry the main site committed while the cluster was
///   in `Sync` or `AsyncWait` (each commit needed one of its members, and
///   its lease proves the leader had not stopped waiting); in `Async` or
///   `SyncRecover` it lacks what it had not received, the lag.
/// * The survivable site silent (lost, or a WAN cut) while the main site
///   leads: commits wait `sync_wait` for it, then go on in the main site
///   alone; in a WAN cut the survivable core also activates its own epoch
///   (it reaches no majority), as in main-site mode, and the two are
///   reconciled when the sites meet.
fn dr_auto_sync(
    row: &mut Scenario,
    t: &Topology,
    latency: &Latency,
    down: &BTreeSet<NodeId>,
    side: &[&Member],
    majority: usize,
    group: &impl Fn(&Member) -> usize,
) {
    let stall = Duration::from_millis(t.ticks.ms(t.ticks.sync_wait));
    match row.how {
        Takeover::Activation { .. } => row.committed = Committed::ZeroIfSync,
        Takeover::Split { rank } => row.how = Takeover::SplitAfterStall { rank, stall },
        Takeover::Unaffected => {
            let main = t.main_site();
            let leading = side.first().map(|m| group(m));
            let heard = t
                .members
                .values()
                .any(|m| m.site != main && !down.contains(&m.id()) && Some(group(m)) == leading);
            if heard {
                return;
            }
            row.how = Takeover::StallThenAsync { stall };
            let Some(leader) = row.leader.and_then(|l| t.member(l)) else {
                return;
            };
            // The silence starts when the site's last messages land (a
            // crash: still in flight; a cut drops them). After the stall
            // the leader announces AsyncWait to the main site's voters (a
            // round) and then commits there (a round).
            let in_flight = match row.failure {
                Failure::Partition { .. } | Failure::AllApart => Duration::ZERO,
                _ => (t.members.values())
                    .filter(|m| m.site != main && down.contains(&m.id()))
                    .map(|m| latency.one_way(&m.site, &leader.site))
                    .max()
                    .unwrap_or_default(),
            };
            let round = quorum_rtt(latency, leader, side, majority);
            row.takeover = Some(in_flight + stall + round * 2);
        }
        _ => {}
    }
}

/// Main-site and DR auto-sync modes: the best-ranked survivable core that
/// cannot reach a majority of its epoch's voters activates a new epoch.
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
    // The new epoch's voters are the activating core's members it reaches.
    let partners: Vec<&Member> = t
        .members
        .values()
        .filter(|m| m.core() == c.core() && !down.contains(&m.id()) && group(m) == group(c))
        .collect();
    let round = quorum_rtt(latency, c, &partners, partners.len() / 2 + 1);
    let mut detect = ms(t.ticks.survivable_campaign_after(rank, c.position()));
    if t.mode == QuorumMode::DrAutoSync {
        // DR auto-sync: the core's members each stop acknowledging
        // (prepare) after their own wait, and the longest log forks once
        // all have answered prepared: after the standby's stagger and its
        // answer (a round); without a partner, two election timeouts after
        // this member prepared.
        let ticks = &t.ticks;
        detect = if partners.len() > 1 {
            ms(ticks.survivable_campaign_after(rank, 1)) + round
        } else {
            detect + ms(2 * ticks.election)
        };
    }
    let in_flight = match (&row.failure, steady_leader.and_then(|l| t.member(l))) {
        (Failure::Partition { .. } | Failure::AllApart, _) | (_, None) => Duration::ZERO,
        (_, Some(old)) => latency.one_way(&old.site, &c.site),
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
        let (in_flight, cut_from) = match (&row.failure, leader_member) {
            (_, None) => (Duration::ZERO, None),
            (Failure::Partition { .. } | Failure::AllApart, Some(old)) => {
                (Duration::ZERO, Some(old))
            }
            (_, Some(old)) => (latency.one_way(&old.site, &leader.site), None),
        };
        // A pair failover first asks a quorum whether the standby can win
        // (after `failover_probe_after`); the campaign waits for the answer.
        let detect = if how == Takeover::PairFailover {
            detect.max(ms(ticks.failover_probe_after()) + round)
        } else {
            detect
        };
        row.takeover = Some(if rounds == 2 {
            // Pre-vote, then the vote and the commit rounds.
            let pre_vote = pre_vote_rtt(latency, leader, side, majority, cut_from);
            let commit = commit_rtt(latency, leader, side, majority, cut_from);
            in_flight + detect + pre_vote + round + commit
        } else {
            in_flight + detect + round * (rounds + 1)
        });
    }
}

/// When `candidate` holds a majority of pre-votes from `side`.
///
/// With `cut_from` the leader was cut off by a partition under load: what
/// it had in flight is lost, so a voter nearer it (a shorter one-way
/// latency from it) holds newer entries than the candidate and refuses its
/// pre-vote. It relays its log tail instead (`node::relay`), arriving one
/// round trip after the request, and the candidate asks everyone again:
/// the grants it held are dropped, answers still on their way count in
/// the new round. Once the candidate holds a majority its pre-vote is won
/// and later relays change nothing. Without a cut (a crash: what the
/// leader sent still lands) no voter is ahead, and the round is one round
/// trip to the voter that completes the majority.
fn pre_vote_rtt(
    latency: &Latency,
    candidate: &Member,
    side: &[&Member],
    majority: usize,
    cut_from: Option<&Member>,
) -> Duration {
    // (round trip, ahead of the candidate) for every other voter.
    let voters: Vec<(Duration, bool)> = side
        .iter()
        .filter(|m| m.id() != candidate.id())
        .map(|m| {
            let ahead = cut_from.is_some_and(|l| {
                latency.one_way(&l.site, &m.site) < latency.one_way(&l.site, &candidate.site)
            });
            (latency.rtt(&candidate.site, &m.site), ahead)
        })
        .collect();
    let need = majority.saturating_sub(1);
    if need == 0 {
        return Duration::ZERO;
    }
    // Answers in flight: (arrival, voter, a relay rather than a grant).
    let mut answers: Vec<(Duration, usize, bool)> = Vec::new();
    let ask = |at: Duration, answers: &mut Vec<(Duration, usize, bool)>| {
        for (i, &(rtt, ahead)) in voters.iter().enumerate() {
            // An ahead voter's own relay lands one round trip after the
            // first request: asked after that, it grants.
            answers.push((at + rtt, i, ahead && at < rtt));
        }
    };
    ask(Duration::ZERO, &mut answers);
    let mut granted: Vec<usize> = Vec::new();
    // Each relay is answered by at most one more per ahead voter; bounded.
    for _ in 0..voters.len() * (voters.len() + 2) * 4 {
        answers.sort_unstable();
        let Some(&(at, i, relay)) = answers.first() else {
            break;
        };
        answers.remove(0);
        if relay {
            granted.clear();
            ask(at, &mut answers);
        } else if !granted.contains(&i) {
            granted.push(i);
            if granted.len() >= need {
                return at;
            }
        }
    }
    // Not enough voters: the caller found a majority, so this is not reached.
    Duration::ZERO
}

/// When the new leader `leader` has its first entry on a majority of
/// `side`. With `cut_from` (a partition under load) a voter farther from
/// the old leader than the new one holds fewer entries: it refuses the
/// leader's first append (its log does not hold the entry before) and
/// takes the second, one more round trip.
fn commit_rtt(
    latency: &Latency,
    leader: &Member,
    side: &[&Member],
    majority: usize,
    cut_from: Option<&Member>,
) -> Duration {
    let mut acks: Vec<Duration> = side
        .iter()
        .filter(|m| m.id() != leader.id())
        .map(|m| {
            let rtt = latency.rtt(&leader.site, &m.site);
            let behind = cut_from.is_some_and(|l| {
                latency.one_way(&l.site, &m.site) > latency.one_way(&l.site, &leader.site)
            });
            if behind {
                rtt * 2
            } else {
                rtt
            }
        })
        .collect();
    acks.sort_unstable();
    majority
        .checked_sub(2)
        .and_then(|i| acks.get(i).copied())
        .unwrap_or(Duration::ZERO)
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
