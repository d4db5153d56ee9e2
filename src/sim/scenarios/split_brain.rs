//! Behaviour 5, split-brain prevention: the leader is cut off from the
//! majority (alone, or with its whole site) while the users keep
//! proposing. Check-quorum makes the isolated old leader step down within
//! two election timeouts; it commits nothing after the cut, its log stops
//! growing once it stepped down, and nothing proposed on its side is
//! acknowledged past the commit index it had at the cut (those proposals
//! are held until the heal), while the majority side elects a leader and
//! goes on committing.
//!
//! [`run`] applies the cut, runs the load and watches the old leader; it
//! does not heal: what happens after the heal is the caller's next step.

use std::time::Duration;

use super::SiteCut;
use crate::events::Event;
use crate::sim::Sim;
use crate::state_machine::StateMachine;
use crate::topology::NodeId;

/// What to cut off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cut {
    /// One member, from everyone ([`Sim::isolate`]).
    Member(NodeId),
    /// Groups of sites, from each other.
    Sites(SiteCut),
}

impl Cut {
    /// Whether `id` is on the isolated side of the cut.
    fn isolates<M: StateMachine>(&self, sim: &Sim<M>, id: NodeId) -> bool {
        match self {
            Self::Member(m) => *m == id,
            Self::Sites(c) => c.isolated.iter().any(|s| s == sim.site_of(id)),
        }
    }
}

/// The script: the cut, and how long the load runs under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitBrain {
    /// What is cut off.
    pub cut: Cut,
    /// How long the load runs with the cut in force.
    pub run_for: Duration,
}

/// What was measured: the old leader at the cut, what it did during it, and
/// what each side acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitBrainOutcome {
    /// When the cut was made (virtual µs).
    pub cut_at_us: u64,
    /// The leader just before the cut.
    pub old_leader: Option<NodeId>,
    /// Its term then (0 without a leader).
    pub term_at_cut: u64,
    /// Its commit index then (0 without a leader).
    pub commit_at_cut: u64,
    /// When the old leader first stepped down at or after the cut (its
    /// first [`Event::SteppedDown`]).
    pub stepped_down_at_us: Option<u64>,
    /// How far the old leader's commit index moved from the cut to the end
    /// of the run (`None` if it is down).
    pub commit_growth: Option<u64>,
    /// The old leader's last log index when first seen not leading (the
    /// load's watch looks after each of its steps).
    pub log_at_step_down: Option<u64>,
    /// Its last log index when last seen not leading.
    pub log_last_seen: Option<u64>,
    /// Proposals acknowledged at a member on the isolated side since the
    /// cut, at an index past [`commit_at_cut`](Self::commit_at_cut) (an
    /// entry committed just before the cut may still reach its proposer
    /// after it).
    pub isolated_acked_past_cut: usize,
    /// Proposals acknowledged at members on the other side since the cut.
    pub majority_acked: usize,
    /// The leader at the end of the run.
    pub leader_at_end: Option<NodeId>,
    /// When the run ended (virtual µs).
    pub ended_at_us: u64,
}

impl SplitBrainOutcome {
    /// Milliseconds from the cut to the old leader's step-down.
    pub fn stepped_down_after_ms(&self) -> Option<u64> {
        self.stepped_down_at_us.map(|t| (t - self.cut_at_us) / 1000)
    }

    /// How many entries the old leader's log grew by after it stepped down
    /// (`None` if it was never seen not leading).
    pub fn log_growth(&self) -> Option<u64> {
        (self.log_last_seen.zip(self.log_at_step_down)).map(|(l, s)| l - s)
    }
}

/// The old leader's log, watched during the cut.
struct Watch {
    leader: Option<NodeId>,
    at_step_down: Option<u64>,
    last_seen: Option<u64>,
}

impl Watch {
    fn look<M: StateMachine>(&mut self, sim: &Sim<M>) {
        let Some(n) = self.leader.and_then(|l| sim.node(l)) else {
            return;
        };
        if !n.is_leader() {
            let last = n.status().last_index;
            self.at_step_down.get_or_insert(last);
            self.last_seen = Some(last);
        }
    }
}

/// Runs the script: takes the leader's term and commit index, applies the
/// cut, and runs the load for `plan.run_for`. `load(sim, d, watch)` runs
/// `d` of virtual time while its users propose, calling `watch` after each
/// of its steps (the watch only looks). The cut is left in force.
pub fn run<M: StateMachine>(
    sim: &mut Sim<M>,
    plan: &SplitBrain,
    mut load: impl FnMut(&mut Sim<M>, Duration, &mut dyn FnMut(&Sim<M>)),
) -> SplitBrainOutcome {
    let old_leader = sim.leader();
    let status = old_leader.and_then(|l| sim.node(l)).map(|n| n.status());
    let cut_at_us = sim.now_us();
    let term_at_cut = status.as_ref().map_or(0, |s| s.term);
    let commit_at_cut = status.map_or(0, |s| s.commit);
    match &plan.cut {
        Cut::Member(id) => sim.isolate(*id),
        Cut::Sites(c) => c.apply(sim),
    }
    let mut watch = Watch {
        leader: old_leader,
        at_step_down: None,
        last_seen: None,
    };
    load(sim, plan.run_for, &mut |s| watch.look(s));

    let stepped_down_at_us = old_leader.and_then(|l| {
        (sim.events().iter())
            .find(|(t, id, e)| {
                *t >= cut_at_us && *id == l && matches!(e, Event::SteppedDown { .. })
            })
            .map(|(t, _, _)| *t)
    });
    let commit_growth = (old_leader.and_then(|l| sim.node(l)))
        .map(|n| n.status().commit.saturating_sub(commit_at_cut));
    let since_cut = || sim.commits().iter().filter(move |k| k.done_us >= cut_at_us);
    let isolated_acked_past_cut = since_cut()
        .filter(|k| plan.cut.isolates(sim, k.node))
        .filter(|k| (k.outcome.result.as_ref()).is_ok_and(|a| a.index > commit_at_cut))
        .count();
    let majority_acked = since_cut()
        .filter(|k| !plan.cut.isolates(sim, k.node))
        .filter(|k| k.outcome.result.is_ok())
        .count();
    SplitBrainOutcome {
        cut_at_us,
        old_leader,
        term_at_cut,
        commit_at_cut,
        stepped_down_at_us,
        commit_growth,
        log_at_step_down: watch.at_step_down,
        log_last_seen: watch.last_seen,
        isolated_acked_past_cut,
        majority_acked,
        leader_at_end: sim.leader(),
        ended_at_us: sim.now_us(),
    }
}
