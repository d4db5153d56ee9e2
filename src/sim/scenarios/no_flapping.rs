//! Behaviour 7, no flapping: the main site is cut off and a survivable
//! core takes over; then the link flaps, up for less than the hand-back
//! stability window each time; then it heals for good. Leadership must
//! move exactly twice: to the survivable core, and home once the link has
//! been steady for the whole window. No hand-back is even attempted while
//! the link flaps.

use std::time::Duration;

use super::SiteCut;
use crate::events::Event;
use crate::sim::Sim;
use crate::state_machine::StateMachine;
use crate::topology::NodeId;

/// The script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoFlapping {
    /// The cut (the main site from the others), made first and again at
    /// the end of every flap.
    pub cut: SiteCut,
    /// How long the load runs under the first cut (the takeover).
    pub cut_for: Duration,
    /// How long the link is up in each flap.
    pub up: Duration,
    /// How long it is down again in each flap.
    pub down: Duration,
    /// How many flaps.
    pub flaps: u64,
    /// How long the load runs once the link healed for good.
    pub steady_for: Duration,
}

/// What was measured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoFlappingOutcome {
    /// When the first cut was made (virtual µs).
    pub cut_at_us: u64,
    /// The leader's term just before it (0 without a leader).
    pub term_at_cut: u64,
    /// The takeover: µs from the cut to the first acknowledged proposal in
    /// a term above [`term_at_cut`](Self::term_at_cut), measured at the end
    /// of the first cut.
    pub takeover_us: Option<u64>,
    /// The leader at the end of the first cut.
    pub leader_after_cut: Option<NodeId>,
    /// When the flapping began (virtual µs).
    pub flapping_from_us: u64,
    /// When the link healed for good (virtual µs).
    pub steady_at_us: u64,
    /// The leader then.
    pub leader_at_steady: Option<NodeId>,
    /// [`Event::HandBackAttempt`]s from the cut up to the final heal
    /// (counted at that heal).
    pub hand_back_attempts_while_flapping: usize,
    /// Every [`Event::BecameLeader`] from the cut to the end of the run:
    /// when (µs), who.
    pub moves: Vec<(u64, NodeId)>,
}

impl NoFlappingOutcome {
    /// Milliseconds from the final heal to the second move (control going
    /// home), if there was one.
    pub fn back_after_ms(&self) -> Option<u64> {
        (self.moves.get(1)).map(|(t, _)| t.saturating_sub(self.steady_at_us) / 1000)
    }
}

/// Runs the script. `load(sim, d)` runs `d` of virtual time while its users
/// propose. The link is healed at the end.
pub fn run<M: StateMachine>(
    sim: &mut Sim<M>,
    plan: &NoFlapping,
    mut load: impl FnMut(&mut Sim<M>, Duration),
) -> NoFlappingOutcome {
    let cut_at_us = sim.now_us();
    let term_at_cut = (sim.leader().and_then(|l| sim.node(l))).map_or(0, |n| n.term());
    plan.cut.apply(sim);
    load(sim, plan.cut_for);
    let takeover_us = sim.first_commit_after(cut_at_us, term_at_cut);
    let leader_after_cut = sim.leader();

    let flapping_from_us = sim.now_us();
    for _ in 0..plan.flaps {
        sim.heal();
        load(sim, plan.up);
        plan.cut.apply(sim);
        load(sim, plan.down);
    }
    let steady_at_us = sim.now_us();
    sim.heal();
    let hand_back_attempts_while_flapping = (sim.events().iter())
        .filter(|(t, _, e)| *t >= cut_at_us && matches!(e, Event::HandBackAttempt { .. }))
        .count();
    let leader_at_steady = sim.leader();
    load(sim, plan.steady_for);

    let moves = (sim.events().iter())
        .filter(|(t, _, e)| *t >= cut_at_us && matches!(e, Event::BecameLeader { .. }))
        .map(|(t, id, _)| (*t, *id))
        .collect();
    NoFlappingOutcome {
        cut_at_us,
        term_at_cut,
        takeover_us,
        leader_after_cut,
        flapping_from_us,
        steady_at_us,
        leader_at_steady,
        hand_back_attempts_while_flapping,
        moves,
    }
}
