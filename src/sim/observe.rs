//! The user's state machine as the simulator runs it: every apply is
//! reported to the [invariant checker](super::invariants::Checker).
//!
//! Every snapshot it takes starts with [`SNAPSHOT_TAG`] and a serial
//! number (8 bytes, little-endian) before the state machine's own bytes,
//! so that the checker knows which counts of applied commands a restore
//! brings back (see `invariants::applied_once`); a restore strips them.

use std::sync::Arc;

use parking_lot::Mutex;

use super::invariants::{digest, Checker};
use crate::node::{EpochId, FIRST_EPOCH};
use crate::state_machine::{
    Decoded, ReconcileError, Reconciliation, RestoreError, SnapshotDecoder, SnapshotError,
    SnapshotSource, StateMachine,
};
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

/// What the simulator puts before a state machine's snapshot bytes (then
/// a serial number, 8 bytes little-endian).
pub(crate) const SNAPSHOT_TAG: &[u8; 4] = b"obs1";

/// A tagged snapshot's serial and the state machine's own bytes; `None`
/// for bytes without the tag.
fn untag(snapshot: &[u8]) -> Option<(u64, &[u8])> {
    let rest = snapshot.strip_prefix(SNAPSHOT_TAG)?;
    let (serial, user) = rest.split_first_chunk::<8>()?;
    Some((u64::from_le_bytes(*serial), user))
}

impl<M> Observed<M> {
    pub(crate) fn new(inner: M, node: NodeId, obs: Arc<Mutex<Checker>>) -> Self {
        obs.lock().counts.fresh(node);
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
        let d = digest(command);
        {
            let mut obs = self.obs.lock();
            obs.on_apply_at(self.node, at, d);
            obs.counts.applied(self.node, d);
        }
        self.inner.apply(index, command)
    }

    fn reconcile(&self, divergent: &Reconciliation<'_>) -> Result<Vec<Vec<u8>>, ReconcileError> {
        let made = self.inner.reconcile(divergent);
        if let Ok(commands) = &made {
            let mut obs = self.obs.lock();
            for c in commands {
                obs.counts.hook_returned(digest(c));
            }
        }
        made
    }

    fn note_epoch(&mut self, epoch: EpochId) {
        self.epoch = epoch;
        self.last = (0, 0);
        self.inner.note_epoch(epoch);
    }

    fn snapshot(&self) -> Vec<u8> {
        let user = self.inner.snapshot();
        let serial = self.obs.lock().counts.snapshot_taken(self.node);
        let mut out = Vec::with_capacity(SNAPSHOT_TAG.len() + 8 + user.len());
        out.extend_from_slice(SNAPSHOT_TAG);
        out.extend_from_slice(&serial.to_le_bytes());
        out.extend_from_slice(&user);
        out
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), RestoreError> {
        let (serial, user) = match untag(snapshot) {
            Some((serial, user)) => (Some(serial), user),
            None => (None, snapshot),
        };
        self.inner.restore(user)?;
        self.obs.lock().counts.restored(self.node, serial);
        Ok(())
    }

    fn snapshot_handle(&self) -> Box<dyn SnapshotSource> {
        // The serial is taken here, when the state is captured.
        let inner = self.inner.snapshot_handle();
        let serial = self.obs.lock().counts.snapshot_taken(self.node);
        let mut tag = SNAPSHOT_TAG.to_vec();
        tag.extend_from_slice(&serial.to_le_bytes());
        Box::new(Tagged {
            tag: Some(tag),
            inner,
        })
    }

    fn snapshot_decoder(&self) -> Option<SnapshotDecoder> {
        let inner = self.inner.snapshot_decoder()?;
        Some(Box::new(move |snapshot: &[u8]| {
            let (serial, user) = match untag(snapshot) {
                Some((serial, user)) => (Some(serial), user),
                None => (None, snapshot),
            };
            Ok(Decoded::new((serial, inner(user)?)))
        }))
    }

    fn install(&mut self, decoded: Decoded) -> Result<(), RestoreError> {
        let (serial, inner) = decoded.downcast::<(Option<u64>, Decoded)>()?;
        self.inner.install(inner)?;
        self.obs.lock().counts.restored(self.node, serial);
        Ok(())
    }
}

/// The state machine's snapshot source behind the simulator's tag.
struct Tagged {
    tag: Option<Vec<u8>>,
    inner: Box<dyn SnapshotSource>,
}

impl SnapshotSource for Tagged {
    fn size_hint(&self) -> usize {
        SNAPSHOT_TAG.len() + 8 + self.inner.size_hint()
    }

    fn read_chunk(&mut self, out: &mut Vec<u8>) -> Result<bool, SnapshotError> {
        if let Some(tag) = self.tag.take() {
            out.extend_from_slice(&tag);
        }
        self.inner.read_chunk(out)
    }
}
