//! What the simulator watches: every apply at every member, every leader,
//! every acknowledged proposal. The invariant checks of DESIGN §6 run on it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::state_machine::{RestoreError, StateMachine};
use crate::topology::NodeId;

/// A digest of a command, to compare what members applied.
pub(crate) fn digest(bytes: &[u8]) -> u64 {
    // FNV-1a: the same on every run, platform and toolchain.
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// One broken invariant.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Violation {
    /// Two leaders in one (epoch, term).
    TwoLeaders {
        /// Epoch.
        epoch: u64,
        /// Term.
        term: u64,
        /// First leader seen.
        first: NodeId,
        /// Second leader seen.
        second: NodeId,
    },
    /// Two members applied different commands at one index (a committed
    /// entry was lost or replaced).
    Diverged {
        /// The index.
        index: u64,
        /// Who applied it first.
        first: NodeId,
        /// Who applied something else.
        second: NodeId,
    },
    /// An acknowledged proposal is missing from a member's final state.
    AckedLost {
        /// Index it was acknowledged at.
        index: u64,
        /// The member missing it.
        node: NodeId,
    },
    /// After the faults healed, members did not converge.
    NotConverged {
        /// Applied index per live member.
        applied: Vec<(NodeId, u64)>,
    },
    /// After healing, the main site did not lead again in time.
    MainSiteNotLeading {
        /// Who leads, if anyone.
        leader: Option<NodeId>,
    },
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

#[derive(Debug, Default)]
pub(crate) struct Observations {
    /// index -> (digest, first member to apply it)
    pub applied: BTreeMap<u64, (u64, NodeId)>,
    pub leaders: BTreeMap<(u64, u64), NodeId>,
    pub violations: Vec<Violation>,
    pub diverged_seen: BTreeSet<u64>,
}

impl Observations {
    pub(crate) fn on_apply(&mut self, node: NodeId, index: u64, d: u64) {
        match self.applied.get(&index) {
            None => {
                self.applied.insert(index, (d, node));
            }
            Some(&(d0, first)) if d0 != d && self.diverged_seen.insert(index) => {
                self.violations.push(Violation::Diverged {
                    index,
                    first,
                    second: node,
                });
            }
            _ => {}
        }
    }

    pub(crate) fn on_leader(&mut self, node: NodeId, epoch: u64, term: u64) {
        match self.leaders.get(&(epoch, term)) {
            None => {
                self.leaders.insert((epoch, term), node);
            }
            Some(&first) if first != node => self.violations.push(Violation::TwoLeaders {
                epoch,
                term,
                first,
                second: node,
            }),
            _ => {}
        }
    }
}

/// The user's state machine, observed: every apply is recorded for the
/// invariant checks. Dereferences to the inner state machine.
#[derive(Debug)]
pub struct Observed<M> {
    inner: M,
    node: NodeId,
    obs: Arc<Mutex<Observations>>,
}

impl<M> Observed<M> {
    pub(crate) fn new(inner: M, node: NodeId, obs: Arc<Mutex<Observations>>) -> Self {
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
