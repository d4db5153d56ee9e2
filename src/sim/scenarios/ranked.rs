//! Behaviour 8, ranked survivable cores: with a rank-1 and a rank-2
//! survivable core, the rank-2 core takes over only when the rank-1 core
//! cannot.
//!
//! - [`site_lost`]: the main site is lost; the rank-1 core takes over after
//!   `survivable_after` and the rank-2 core never campaigns, not even once
//!   its own, later, timer has run out.
//! - [`rank_one_cut`], then [`site_lost`] with `heal`: the rank-1 core's
//!   site is cut off while the others commit on, so its log falls behind;
//!   it returns just as the main site is lost. It campaigns first but cannot win with a stale log; the
//!   rank-2 core takes over (`Takeover { rank: 2 }`), without waiting out
//!   its own timer.

use std::time::Duration;

use super::SiteCut;
use crate::events::{Event, LeadershipCause};
use crate::sim::Sim;
use crate::state_machine::StateMachine;
use crate::topology::NodeId;

/// Every [`Event::BecameLeader`] at or after `from_us`: when (µs), who,
/// why.
fn leaders_since<M: StateMachine>(
    sim: &Sim<M>,
    from_us: u64,
) -> Vec<(u64, NodeId, LeadershipCause)> {
    (sim.events().iter())
        .filter(|(t, _, _)| *t >= from_us)
        .filter_map(|(t, id, e)| match e {
            Event::BecameLeader { cause, .. } => Some((*t, *id, cause.clone())),
            _ => None,
        })
        .collect()
}

/// Every [`Event::TakeoverStarted`] (a survivable core's campaign) at or
/// after `from_us`: when (µs), who.
fn campaigns_since<M: StateMachine>(sim: &Sim<M>, from_us: u64) -> Vec<(u64, NodeId)> {
    (sim.events().iter())
        .filter(|(t, _, e)| *t >= from_us && matches!(e, Event::TakeoverStarted { .. }))
        .map(|(t, id, _)| (*t, *id))
        .collect()
}

/// The leader's term (0 without a leader).
fn leader_term<M: StateMachine>(sim: &Sim<M>) -> u64 {
    (sim.leader().and_then(|l| sim.node(l))).map_or(0, |n| n.term())
}

/// The highest commit index among the running members of `sites`.
fn commit_of<M: StateMachine>(sim: &Sim<M>, sites: &[String]) -> u64 {
    (sites.iter().flat_map(|s| sim.site_members(s)))
        .filter_map(|id| sim.node(id).map(|n| n.status().commit))
        .max()
        .unwrap_or(0)
}

/// What a takeover looked like: the leaders and campaigns since the fault,
/// and the first commit under the new leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Takeover {
    /// When the main site was lost (virtual µs).
    pub lost_at_us: u64,
    /// The leader's term just before (0 without a leader).
    pub term_at_loss: u64,
    /// µs from the loss to the first acknowledged proposal in a term above
    /// [`term_at_loss`](Self::term_at_loss).
    pub takeover_us: Option<u64>,
    /// Every [`Event::BecameLeader`] since the loss: when (µs), who, why.
    pub leaders: Vec<(u64, NodeId, LeadershipCause)>,
    /// The leader at the end of the run.
    pub leader_at_end: Option<NodeId>,
}

impl Takeover {
    fn measure<M: StateMachine>(sim: &Sim<M>, lost_at_us: u64, term_at_loss: u64) -> Self {
        Self {
            lost_at_us,
            term_at_loss,
            takeover_us: sim.first_commit_after(lost_at_us, term_at_loss),
            leaders: leaders_since(sim, lost_at_us),
            leader_at_end: sim.leader(),
        }
    }

    /// The first member to lead after the loss: when (µs), who, why.
    pub fn first_leader(&self) -> Option<&(u64, NodeId, LeadershipCause)> {
        self.leaders.first()
    }
}

/// The script of [`site_lost`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteLost {
    /// The main site, lost whole ([`Sim::crash_site`]).
    pub site: String,
    /// Whether every cut heals at the instant of the loss (after
    /// [`rank_one_cut`]: the rank-1 core returns just as the main site is
    /// lost).
    pub heal: bool,
    /// How long the load runs after the loss.
    pub run_for: Duration,
}

/// What [`site_lost`] measured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteLostOutcome {
    /// The takeover.
    pub takeover: Takeover,
    /// Every survivable core's campaign ([`Event::TakeoverStarted`]) since
    /// the loss: when (µs), who.
    pub campaigns: Vec<(u64, NodeId)>,
}

/// Loses the main site (healing every cut first if `plan.heal`) and runs
/// the load for `plan.run_for`. `load(sim, d)` runs `d` of virtual time
/// while its users propose.
pub fn site_lost<M: StateMachine>(
    sim: &mut Sim<M>,
    plan: &SiteLost,
    mut load: impl FnMut(&mut Sim<M>, Duration),
) -> SiteLostOutcome {
    let lost_at_us = sim.now_us();
    let term_at_loss = leader_term(sim);
    if plan.heal {
        sim.heal();
    }
    sim.crash_site(&plan.site);
    load(sim, plan.run_for);
    SiteLostOutcome {
        takeover: Takeover::measure(sim, lost_at_us, term_at_loss),
        campaigns: campaigns_since(sim, lost_at_us),
    }
}

/// The script of [`rank_one_cut`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RankOneCut {
    /// The rank-1 core's site (`isolated`) cut off from the others.
    pub cut: SiteCut,
    /// How long the load runs with the cut in force.
    pub cut_for: Duration,
    /// The main site, whose commit index the cut-off site falls behind.
    pub main_site: String,
}

/// What [`rank_one_cut`] measured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RankOneCutOutcome {
    /// When the rank-1 core's site was cut off (virtual µs).
    pub cut_at_us: u64,
    /// The leader at the end of the cut.
    pub leader_while_cut: Option<NodeId>,
    /// How many committed entries the cut-off site is behind the main
    /// site at the end of the cut (highest commit index of each).
    pub behind: u64,
    /// Every survivable core's campaign from the cut to (not including)
    /// the end of the run: when (µs), who. A [`site_lost`] that follows
    /// counts its own from that instant on.
    pub campaigns: Vec<(u64, NodeId)>,
}

/// Cuts the rank-1 core's site off and runs the load for `plan.cut_for`,
/// so that its log falls behind; the cut is left in force (a
/// [`site_lost`] with `heal` follows: it returns just as the main site is
/// lost, and cannot win with its stale log). `load(sim, d)` runs `d` of
/// virtual time while its users propose.
pub fn rank_one_cut<M: StateMachine>(
    sim: &mut Sim<M>,
    plan: &RankOneCut,
    mut load: impl FnMut(&mut Sim<M>, Duration),
) -> RankOneCutOutcome {
    let cut_at_us = sim.now_us();
    plan.cut.apply(sim);
    load(sim, plan.cut_for);
    let main = commit_of(sim, std::slice::from_ref(&plan.main_site));
    let end = sim.now_us();
    RankOneCutOutcome {
        cut_at_us,
        leader_while_cut: sim.leader(),
        behind: main.saturating_sub(commit_of(sim, &plan.cut.isolated)),
        campaigns: (campaigns_since(sim, cut_at_us).into_iter())
            .filter(|(t, _)| *t < end)
            .collect(),
    }
}
