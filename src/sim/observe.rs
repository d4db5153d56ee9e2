//! The user's state machine as the simulator runs it: every apply is
//! reported to the [invariant checker](super::invariants::Checker).

use std::sync::Arc;

use parking_lot::Mutex;

use super::invariants::{digest, Checker};
use crate::state_machine::{RestoreError, StateMachine};
use crate::topology::NodeId;

/// The user's state machine, observed: every apply is recorded for the
/// invariant checks. Dereferences to the inner state machine.
#[derive(Debug)]
pub struct Observed<M> {
    inner: M,
    node: NodeId,
    obs: Arc<Mutex<Checker>>,
}

impl<M> Observed<M> {
    pub(crate) fn new(inner: M, node: NodeId, obs: Arc<Mutex<Checker>>) -> Self {
        Self { inner, node, obs }
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
        self.obs.lock().on_apply(self.node, index, digest(command));
        self.inner.apply(index, command)
    }

    fn snapshot(&self) -> Vec<u8> {
        self.inner.snapshot()
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), RestoreError> {
        self.inner.restore(snapshot)
    }
}
