//! Measurements over a run: what the scenario tests, the example and the
//! survivability report compare.

use std::time::Duration;

use super::Sim;
use crate::state_machine::StateMachine;

impl<M: StateMachine> Sim<M> {
    /// Microseconds from `from_us` to the first acknowledged proposal
    /// applied in a term above `term` (the first commit under a new
    /// leader): how takeover times are measured.
    pub fn first_commit_after(&self, from_us: u64, term: u64) -> Option<u64> {
        self.outcomes
            .iter()
            .filter(|c| c.done_us >= from_us)
            .filter(|c| c.outcome.result.as_ref().is_ok_and(|a| a.term > term))
            .map(|c| c.done_us - from_us)
            .min()
    }

    /// Runs until every running voter has applied the same index and no
    /// member holds a proposal, for at most `limit`; whether that happened.
    pub fn run_until_converged(&mut self, limit: Duration) -> bool {
        self.run_until(limit, |s| {
            let mut applied = s.slots.iter().filter_map(|(&id, slot)| {
                let n = slot.node.as_ref().filter(|n| n.voters().contains(&id))?;
                Some((n.applied_index(), n.pending_proposals()))
            });
            let Some((first, pending)) = applied.next() else {
                return true;
            };
            pending == 0 && applied.all(|(a, p)| a == first && p == 0)
        })
    }

    /// The longest stretch, in microseconds, between two acknowledged
    /// proposals inside `[from_us, to_us]` (a write outage, under a steady
    /// load); `None` with fewer than two.
    pub fn longest_commit_gap(&self, from_us: u64, to_us: u64) -> Option<u64> {
        let mut times: Vec<u64> = self
            .outcomes
            .iter()
            .filter(|c| c.outcome.result.is_ok() && (from_us..=to_us).contains(&c.done_us))
            .map(|c| c.done_us)
            .collect();
        times.sort_unstable();
        times.windows(2).map(|w| w[1] - w[0]).max()
    }
}
