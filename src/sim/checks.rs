//! The invariant checks of a run (see [`super::invariants`]).

use std::time::Duration;

use super::invariants::{self, Replica, Violation};
use super::{LinkState, Sim};
use crate::state_machine::StateMachine;

impl<M: StateMachine> Sim<M> {
    /// Invariant violations found so far: the safety invariants, checked
    /// after every step, plus whatever the end-of-run checks found.
    pub fn violations(&self) -> Vec<Violation> {
        self.obs.lock().violations().to_vec()
    }

    /// The digest of the command applied at `index` (by whoever applied it first).
    pub fn applied_digest(&self, epoch: crate::node::EpochId, index: u64) -> Option<u64> {
        self.obs.lock().applied_digest(epoch, index)
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
                    epoch: s
                        .node
                        .as_ref()
                        .map_or(crate::node::FIRST_EPOCH, |n| n.epoch()),
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
    /// (convergence), every acknowledged proposal of the final epoch is in
    /// it (no committed entry lost), every one of an older epoch is in it
    /// or reconciled exactly once (nothing silently lost), and the logs
    /// match. Returns the violations (also kept).
    pub fn check_converged(&mut self) -> Vec<Violation> {
        let replicas = self.replicas();
        // Acknowledgements of the epoch everyone ended in; those of older
        // epochs are reconciled, not applied as they were.
        let last = replicas.iter().find(|r| r.live_voter).map(|r| r.epoch);
        let acks: Vec<(crate::node::EpochId, u64)> = self
            .outcomes
            .iter()
            .filter_map(|c| c.outcome.result.as_ref().ok())
            .filter(|a| Some(a.epoch) == last)
            .map(|a| (a.epoch, a.index))
            .collect();
        let mut found: Vec<Violation> = invariants::convergence(&replicas).into_iter().collect();
        found.extend(invariants::no_committed_loss(
            &acks,
            &replicas,
            &self.obs.lock(),
        ));
        found.extend(invariants::log_matching(&replicas));
        found.extend(self.check_loss_reported(last));
        self.obs.lock().record(&found);
        found
    }

    /// Acknowledgements of older epochs: each is in the final history or
    /// reconciled exactly once.
    fn check_loss_reported(&self, last: Option<crate::node::EpochId>) -> Vec<Violation> {
        let Some(last) = last else {
            return Vec::new();
        };
        let Some(lineage) = self
            .slots
            .values()
            .filter_map(|s| s.node.as_ref())
            .find(|n| n.epoch() == last)
            .map(|n| n.lineage().to_vec())
        else {
            return Vec::new();
        };
        let acks: Vec<(crate::node::EpochId, u64)> = self
            .outcomes
            .iter()
            .filter_map(|c| c.outcome.result.as_ref().ok())
            .filter(|a| a.epoch != last)
            .map(|a| (a.epoch, a.index))
            .collect();
        let reports = self
            .events
            .iter()
            .filter_map(|(_, _, e)| match e {
                crate::Event::Reconciled {
                    epoch,
                    index,
                    ranges,
                    ..
                } => Some((*epoch, *index, ranges.clone())),
                _ => None,
            })
            .collect();
        invariants::loss_reported_once(&acks, &lineage, &reports)
    }

    /// The leader a majority of its own voters acknowledge: they are
    /// running, in its epoch, name it as leader and the links between them
    /// are up; no running member of that epoch names another, and none is
    /// in a newer epoch. A deposed leader that has not noticed yet, or one
    /// cut off from its voters, does not count.
    pub fn agreed_leader(&self) -> Option<crate::topology::NodeId> {
        let leader = self.leader()?;
        let ln = self.slots.get(&leader)?.node.as_ref()?;
        let epoch = ln.epoch();
        let running = || {
            self.slots
                .iter()
                .filter(|(_, s)| !s.paused)
                .filter_map(|(&id, s)| s.node.as_ref().map(|n| (id, n)))
                .filter(move |(_, n)| n.epoch() == epoch)
        };
        let voters = ln.voters();
        let naming = running()
            .filter(|(id, n)| voters.contains(id) && n.leader() == Some(leader))
            .filter(|&(id, _)| id == leader || self.linked(leader, id))
            .count();
        let dissent = running().any(|(_, n)| n.leader().is_some_and(|l| l != leader));
        // A member of a newer epoch (even one not yet met) will fence it.
        let topology = &self.cfg.topology;
        let superseded = self
            .slots
            .values()
            .filter_map(|s| s.node.as_ref())
            .any(|n| crate::node::epoch::newer(topology, n.epoch(), epoch));
        if superseded {
            return None;
        }
        (naming * 2 > voters.len() && !dissent).then_some(leader)
    }

    /// Whether messages flow both ways between `a` and `b`.
    fn linked(&self, a: crate::topology::NodeId, b: crate::topology::NodeId) -> bool {
        self.link(a, b) == LinkState::Healthy && self.link(b, a) == LinkState::Healthy
    }

    /// Runs until a member of the main site leads, for at most `within`;
    /// a violation (also kept) if none does by then.
    pub fn check_main_site_leads(&mut self, within: Duration) -> Option<Violation> {
        let main = self.cfg.topology.main_site().to_string();
        self.run_until(within, |s| {
            s.agreed_leader().is_some_and(|l| s.site_of(l) == main)
        });
        let leader = self.agreed_leader().map(|l| (l, self.site_of(l)));
        let found = invariants::handback_liveness(leader, &main);
        if let Some(v) = &found {
            self.obs.lock().record(std::slice::from_ref(v));
        }
        found
    }
}
