//! The user's state machine as the simulator runs it: every apply is
//! reported to the [invariant checker](super::invariants::Checker).

use std::sync::Arc;

use parking_lot::Mutex;

use super::invariants::{digest, Checker};
use crate::node::{EpochId, FIRST_EPOCH};
use crate::state_machine::{ReconcileError, Reconciliation, RestoreError, StateMachine};
use crate::topology::NodeId;

/// The user's state machine, observed: every apply is recorded for the
/// invariant checks. Dereferences to the inner state machine.
#[derive(Debug)]
pub struct Observed<M> {
    inner: M,
    node: NodeId,
    epoch: EpochId,
    /// The last index applied, and how many commands were applied at it (a
    /// reconciliation applies several at one index).
    last: (u64, u64),
    obs: Arc<Mutex<Checker>>,
}

impl<M> Observed<M> {
    pub(crate) fn new(inner: M, node: NodeId, obs: Arc<Mutex<Checker>>) -> Self {
        Self {
            inner,
            node,
            epoch: FIRST_EPOCH,
            last: (0, 0),
            obs,
        }
    }

    /// The user's state machine.
    pub fn inner(&self) -> &M {
        &self.inner
    }
}

impl<M> std::ops::Deref for Observed<M> {
    type Target = M;
    fn deref(&self) -> &M {
        &self.inner
    }
}

impl<M: StateMachine> StateMachine for Observed<M> {
    fn apply(&mut self, index: u64, command: &[u8]) -> Vec<u8> {
        self.last = if self.last.0 == index {
            (index, self.last.1 + 1)
        } else {
            (index, 0)
        };
        let at = (self.epoch, index, self.last.1);
        self.obs.lock().on_apply_at(self.node, at, digest(command));
        self.inner.apply(index, command)
    }

    fn reconcile(&self, divergent: &Reconciliation<'_>) -> Result<Vec<Vec<u8>>, ReconcileError> {
        self.inner.reconcile(divergent)
    }

    fn note_epoch(&mut self, epoch: EpochId) {
        self.epoch = epoch;
        self.last = (0, 0);
        self.inner.note_epoch(epoch);
    }

    fn snapshot(&self) -> Vec<u8> {
        self.inner.snapshot()
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), RestoreError> {
        self.inner.restore(snapshot)
    }
}
