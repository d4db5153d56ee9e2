//! The invariant checks of a run (see [`super::invariants`]).

use std::time::Duration;

use super::invariants::{self, Replica, Violation};
use super::Sim;
use crate::state_machine::StateMachine;

impl<M: StateMachine> Sim<M> {
    /// Invariant violations found so far: the safety invariants, checked
    /// after every step, plus whatever the end-of-run checks found.
    pub fn violations(&self) -> Vec<Violation> {
        self.obs.lock().violations().to_vec()
    }

    /// The digest of the command applied at `index` (by whoever applied it first).
    pub fn applied_digest(&self, index: u64) -> Option<u64> {
        self.obs.lock().applied_digest(index)
    }

    /// What every member holds now (running or crashed: storage survives).
    fn replicas(&self) -> Vec<Replica> {
        use raft::Storage as _;
        self.slots
            .iter()
            .map(|(&id, s)| {
                let first = s.storage.first_index().unwrap_or(1);
                let last = s.storage.last_index().unwrap_or(0);
                let ctx = raft::GetEntriesContext::empty(false);
                let entries = if last >= first {
                    s.storage
                        .entries(first, last + 1, None, ctx)
                        .unwrap_or_default()
                } else {
                    Vec::new()
                };
                Replica {
                    id,
                    live_voter: s.node.as_ref().is_some_and(|n| n.voters().contains(&id)),
                    applied: s.node.as_ref().map_or(0, |n| n.applied_index()),
                    log: entries
                        .iter()
                        .map(|e| (e.index, e.term, invariants::digest(&e.data)))
                        .collect(),
                }
            })
            .collect()
    }

    /// Checks log matching across every member's log now. Returns the
    /// violations (also kept).
    pub fn check_log_matching(&mut self) -> Vec<Violation> {
        let found = invariants::log_matching(&self.replicas());
        self.obs.lock().record(&found);
        found
    }

    /// The end-of-run checks, once every fault has healed and the cluster
    /// has had time to settle: every live voter applied the same prefix
    /// (convergence), every acknowledged proposal is in it (no committed
    /// entry lost), and the logs match. Returns the violations (also kept).
    pub fn check_converged(&mut self) -> Vec<Violation> {
        let replicas = self.replicas();
        let acks: Vec<u64> = self
            .outcomes
            .iter()
            .filter_map(|c| c.outcome.result.as_ref().ok().map(|a| a.index))
            .collect();
        let mut found: Vec<Violation> = invariants::convergence(&replicas).into_iter().collect();
        found.extend(invariants::no_committed_loss(
            &acks,
            &replicas,
            &self.obs.lock(),
        ));
        found.extend(invariants::log_matching(&replicas));
        self.obs.lock().record(&found);
        found
    }

    /// Runs until a member of the main site leads, for at most `within`;
    /// a violation (also kept) if none does by then.
    pub fn check_main_site_leads(&mut self, within: Duration) -> Option<Violation> {
        let main = self.cfg.topology.main_site().to_string();
        self.run_until(within, |s| s.leader().is_some_and(|l| s.site_of(l) == main));
        let leader = self.leader().map(|l| (l, self.site_of(l)));
        let found = invariants::handback_liveness(leader, &main);
        if let Some(v) = &found {
            self.obs.lock().record(std::slice::from_ref(v));
        }
        found
    }
}
