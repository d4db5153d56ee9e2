//! What the simulator records of DR auto-sync
//! ([`crate::replication`]) for the checker: the replication state each
//! index was committed in, and the activations that claimed RPO 0.
//!
//! The state an index was committed in is read off the leader after every
//! input it handled: the commit index it moved past since the last reading
//! (of any leader of that epoch) was committed in the state its status
//! reports then. A leader turns group commit off in the same step that it
//! appends the `Async` record, so an index committed without the
//! survivable site is never recorded as `Sync` or `AsyncWait`; the reverse
//! (a state recorded as `Async` that still had group commit on) only makes
//! the check weaker, never wrong.

use std::collections::BTreeMap;

use super::invariants::{self, ProvenFork, Violation};
use super::Sim;
use crate::events::Event;
use crate::ids::EpochId;
use crate::replication::ReplicationState;
use crate::state_machine::StateMachine;

/// The simulator's DR auto-sync record.
#[derive(Debug, Default)]
pub(super) struct DrRecord {
    /// Per epoch, (last index, state) runs in index order: the indexes
    /// above the previous run's last, up to this one, were committed in
    /// this state.
    committed: BTreeMap<EpochId, Vec<(u64, ReplicationState)>>,
    /// Every activation reported with `rpo_proven`.
    proven: Vec<ProvenFork>,
}

impl DrRecord {
    /// A leader of `epoch` reports commit index `commit` in `state`.
    pub(super) fn note_commit(&mut self, epoch: EpochId, commit: u64, state: ReplicationState) {
        let runs = self.committed.entry(epoch).or_default();
        if runs.last().is_none_or(|&(last, _)| commit > last) {
            runs.push((commit, state));
        }
    }

    /// Events drained from a member that was in `before` when the input
    /// arrived, each with its epoch: proven activations are kept with the
    /// epoch they left.
    pub(super) fn note_events(&mut self, before: EpochId, events: &[Event], epochs: &[EpochId]) {
        let mut parent = before;
        for (e, epoch) in events.iter().zip(epochs) {
            if let Event::Activated {
                epoch: new,
                fork_index,
                rpo_proven: true,
                ..
            } = e
            {
                self.proven.push(ProvenFork {
                    parent,
                    epoch: *new,
                    fork_index: *fork_index,
                });
            }
            parent = *epoch;
        }
    }

    /// The state index `index` of `epoch` was committed in, if a leader
    /// was seen committing it.
    pub(super) fn state_at(&self, epoch: EpochId, index: u64) -> Option<ReplicationState> {
        let runs = self.committed.get(&epoch)?;
        let at = runs.partition_point(|&(last, _)| last < index);
        runs.get(at).map(|&(_, s)| s)
    }
}

impl<M: StateMachine> Sim<M> {
    /// Reads the commit index and replication state of `id` if it leads
    /// in DR auto-sync mode (see the [module docs](self)).
    pub(super) fn note_dr_leader(&mut self, id: super::NodeId) {
        if self.cfg.topology.mode() != crate::policy::QuorumMode::DrAutoSync {
            return;
        }
        let Some(n) = self.slots.get(&id).and_then(|s| s.node.as_ref()) else {
            return;
        };
        if !n.is_leader() {
            return;
        }
        if let (commit, Some(state)) = n.commit_state() {
            self.dr.note_commit(n.epoch(), commit, state);
        }
    }

    /// Proposals acknowledged while their epoch's leader needed both sites
    /// to commit (`Sync` or `AsyncWait`), as the checker sees them.
    fn sync_acks(&self) -> Vec<invariants::Ack> {
        self.acks(|_| true)
            .into_iter()
            .filter(|a| {
                self.dr
                    .state_at(a.epoch, a.index)
                    .is_some_and(ReplicationState::needs_both_sites)
            })
            .collect()
    }

    /// How many proposals were acknowledged while commits needed both
    /// sites (DR auto-sync's `Sync` and `AsyncWait`: RPO 0).
    pub fn acknowledged_at_rpo_zero(&self) -> usize {
        self.sync_acks().len()
    }

    /// DR auto-sync: every proposal acknowledged while commits needed both
    /// sites is in the history of every epoch activated from its epoch
    /// with `rpo_proven` ([`Violation::SyncAckedLost`]). Returns the
    /// violations (also kept; [`check_converged`](Self::check_converged)
    /// runs it too).
    pub fn check_rpo_zero_kept(&self) -> Vec<Violation> {
        let found = self.rpo_zero_lost();
        self.obs.lock().record(&found);
        found
    }

    /// The violations of [`check_rpo_zero_kept`](Self::check_rpo_zero_kept), not kept.
    pub(super) fn rpo_zero_lost(&self) -> Vec<Violation> {
        let acks = self.sync_acks();
        invariants::sync_acked_kept(&acks, &self.dr.proven, &self.obs.lock())
    }
}
