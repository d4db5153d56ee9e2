//! The application's state machine: what the control plane replicates.
//!
//! # Large state: snapshots off the node thread
//!
//! A snapshot of the whole state is taken every
//! [`NodeConfig::snapshot_every`](crate::NodeConfig::snapshot_every)
//! entries, and installed when a lagging member receives the leader's. With
//! a large state both take long (hundreds of milliseconds at tens of MiB):
//! done on the thread that also sends heartbeats, a leader would be failed
//! over by its own snapshot. A state machine can have both done elsewhere:
//!
//! - **Taking**: [`StateMachine::snapshot_handle`] runs on the node thread
//!   and must be cheap: it captures a point-in-time view (an `Arc` of
//!   immutable data, copy-on-write shards, a "freeze" of the
//!   application's own store) and returns a [`SnapshotSource`] that
//!   produces the bytes, chunk by chunk, on a worker thread while the
//!   node keeps applying. The default serialises with
//!   [`snapshot`](StateMachine::snapshot) on the node thread (as before).
//! - **Installing**: [`StateMachine::snapshot_decoder`] returns a function
//!   that builds the new state from the bytes on a worker thread; the node
//!   thread then only swaps it in with [`StateMachine::install`]. The
//!   default (`None`) restores with [`restore`](StateMachine::restore) on
//!   the node thread.
//!
//! Which thread runs the work is the driver's choice: the sans-IO
//! [`Node`](crate::Node) hands it out as a
//! [`SnapshotJob`](crate::node::SnapshotJob); the threaded runtime runs it on a
//! worker thread and the simulator after a modelled delay.

use std::any::Any;

use thiserror::Error;

use crate::ids::{EpochId, ProposalId};

/// A snapshot could not be restored.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("state machine could not restore its snapshot: {reason}")]
pub struct RestoreError {
    /// What was wrong with the bytes.
    pub reason: String,
}

/// A [`SnapshotSource`] could not produce its bytes. The node logs it and
/// tries again at the next due snapshot; nothing is compacted meanwhile.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("state machine could not produce its snapshot: {reason}")]
pub struct SnapshotError {
    /// What went wrong.
    pub reason: String,
}

/// A point-in-time view of the state, captured on the node thread by
/// [`StateMachine::snapshot_handle`], that produces the snapshot's bytes
/// on another thread. The bytes it produces, concatenated, must be what
/// [`StateMachine::restore`] (and the decoder of
/// [`StateMachine::snapshot_decoder`]) accepts.
pub trait SnapshotSource: Send {
    /// The total length in bytes, if known (sizes the buffer once). A
    /// hint: a wrong value costs a reallocation, nothing else.
    fn size_hint(&self) -> usize {
        0
    }

    /// Appends the next chunk to `out`; returns `Ok(true)` while more
    /// chunks follow and `Ok(false)` after the last one. Chunks of about
    /// a MiB keep the worker's extra memory small.
    ///
    /// # Errors
    /// A [`SnapshotError`] when the view cannot be read; the snapshot is
    /// abandoned.
    fn read_chunk(&mut self, out: &mut Vec<u8>) -> Result<bool, SnapshotError>;
}

/// A [`SnapshotSource`] over bytes already serialised: what the default
/// [`StateMachine::snapshot_handle`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BytesSource(Option<Vec<u8>>);

impl BytesSource {
    /// A source producing `bytes` in one chunk.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Some(bytes))
    }
}

impl SnapshotSource for BytesSource {
    fn size_hint(&self) -> usize {
        self.0.as_ref().map_or(0, Vec::len)
    }

    fn read_chunk(&mut self, out: &mut Vec<u8>) -> Result<bool, SnapshotError> {
        if let Some(bytes) = self.0.take() {
            if out.is_empty() {
                *out = bytes;
            } else {
                out.extend_from_slice(&bytes);
            }
        }
        Ok(false)
    }
}

/// A state built from snapshot bytes off the node thread, waiting to be
/// swapped in by [`StateMachine::install`]. It holds whatever the
/// state machine's decoder put in it (see [`Decoded::new`]).
pub struct Decoded(Box<dyn Any + Send>);

impl std::fmt::Debug for Decoded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Decoded(..)")
    }
}

impl Decoded {
    /// Wraps a decoded state of the state machine's choosing.
    pub fn new<T: Any + Send>(state: T) -> Self {
        Self(Box::new(state))
    }

    /// The value [`new`](Self::new) wrapped, if it is a `T`.
    ///
    /// # Errors
    /// A [`RestoreError`] naming `T` when it holds something else (a
    /// decoder and an [`install`](StateMachine::install) that disagree).
    pub fn downcast<T: Any + Send>(self) -> Result<T, RestoreError> {
        self.0.downcast::<T>().map(|b| *b).map_err(|_| RestoreError {
            reason: format!(
                "the decoded snapshot is not a {}; snapshot_decoder and install must agree on the type",
                std::any::type_name::<T>()
            ),
        })
    }
}

/// Builds a state from snapshot bytes, on a worker thread: see
/// [`StateMachine::snapshot_decoder`].
pub type SnapshotDecoder = Box<dyn FnOnce(&[u8]) -> Result<Decoded, RestoreError> + Send>;

/// A reconciliation refused by the application; both epochs' data stay as
/// they are and the reunion is tried again (see [`StateMachine::reconcile`]).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("reconciliation refused: {reason}")]
pub struct ReconcileError {
    /// Why.
    pub reason: String,
}

/// Why the reconcile hook's answer was not used (see
/// [`Event::ReconcileFailed`](crate::Event::ReconcileFailed)): both epochs'
/// data stay as they are and the reconciliation is tried again later.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ReconcileFailure {
    /// [`StateMachine::reconcile`] returned this error.
    #[error(transparent)]
    Refused(ReconcileError),
    /// [`StateMachine::reconcile`] panicked; the panic was caught.
    #[error("the reconcile hook panicked: {message}")]
    Panicked {
        /// The panic's message (its payload, when it is text).
        message: String,
    },
}

/// One entry an older epoch committed that the surviving epoch lacks.
///
/// Entries are shown by *origin*: the epoch that appended and committed
/// them. That is usually the older epoch being reconciled, but an epoch
/// that itself reconciled another (or forked later than this one from a
/// common parent) passes those entries on as they were first proposed, not
/// as it applied them, and each is shown exactly once however many
/// epochs carried it here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DivergentEntry {
    /// The epoch that appended and committed it.
    pub epoch: EpochId,
    /// Its index in that epoch.
    pub index: u64,
    /// Its raft term there.
    pub term: u64,
    /// The command, as proposed.
    pub command: Vec<u8>,
    /// The proposal, when it came from a client.
    pub proposal: Option<ProposalId>,
}

/// What an older epoch committed after the point where the surviving
/// epoch forked: handed to [`StateMachine::reconcile`] when the epochs meet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reconciliation<'a> {
    /// The older epoch.
    pub from: EpochId,
    /// Its divergent committed commands, in log order.
    pub entries: &'a [DivergentEntry],
    /// Divergent entries before these that the older side had compacted
    /// away before the epochs met: counted, but their commands are gone.
    pub compacted: u64,
}

/// The replicated application state, supplied by the embedding service.
///
/// # Correctness requirements
/// - [`apply`](Self::apply) is deterministic: the same commands in the same
///   order give the same state and responses on every member. No clocks,
///   no randomness, no I/O whose result can differ between members.
/// - [`snapshot`](Self::snapshot) followed by [`restore`](Self::restore)
///   on a fresh value gives the same state; so do
///   [`snapshot_handle`](Self::snapshot_handle) and
///   [`snapshot_decoder`](Self::snapshot_decoder) with
///   [`install`](Self::install), when implemented.
/// - A command is applied at most once: the library removes duplicates
///   caused by retries before calling `apply`.
pub trait StateMachine {
    /// Applies one committed command at log `index`; returns the response
    /// handed back to whoever proposed it.
    fn apply(&mut self, index: u64, command: &[u8]) -> Vec<u8>;

    /// Serialises the whole state.
    fn snapshot(&self) -> Vec<u8>;

    /// Replaces the whole state with a snapshot taken by [`snapshot`](Self::snapshot).
    ///
    /// # Errors
    /// A [`RestoreError`] when the bytes are not a valid snapshot; the node
    /// then refuses to start (or to install the snapshot) rather than run
    /// with a half-restored state.
    fn restore(&mut self, snapshot: &[u8]) -> Result<(), RestoreError>;

    /// Captures the state as it is now, for a snapshot produced on another
    /// thread (see the [module docs](self)). Called on the node thread
    /// between two applies: it must be cheap (no serialising, no copy of
    /// the data), and later applies must not change what the returned
    /// source produces. The default serialises now, with
    /// [`snapshot`](Self::snapshot), on the node thread.
    fn snapshot_handle(&self) -> Box<dyn SnapshotSource> {
        Box::new(BytesSource::new(self.snapshot()))
    }

    /// A function that decodes snapshot bytes into a new state on a worker
    /// thread, for [`install`](Self::install) to swap in on the node
    /// thread (see the [module docs](self)). `None` (the default): the
    /// node restores with [`restore`](Self::restore) on its thread.
    fn snapshot_decoder(&self) -> Option<SnapshotDecoder> {
        None
    }

    /// Replaces the whole state with one built by the decoder of
    /// [`snapshot_decoder`](Self::snapshot_decoder). Called on the node
    /// thread: it should only swap the state in.
    ///
    /// # Errors
    /// A [`RestoreError`] when `decoded` is not what this state machine's
    /// decoder makes; the default (for state machines without a decoder,
    /// which are never given one) always refuses.
    fn install(&mut self, decoded: Decoded) -> Result<(), RestoreError> {
        let _ = decoded;
        Err(RestoreError {
            reason: "this state machine has no snapshot_decoder, so it cannot install a decoded snapshot".into(),
        })
    }

    /// Decides what an older epoch's divergent commands become in the
    /// surviving epoch (main-site mode, when the sites meet again): the
    /// returned commands are applied, in order, at the index of one
    /// reconciliation entry, on every member. The default re-applies every
    /// divergent command, in order.
    ///
    /// Called on the surviving epoch's leader with the state as it is now.
    ///
    /// - **Chunks.** The divergent suffix comes in chunks, as each member
    ///   of the older epoch sends it: one call covers at most 256 of its
    ///   log entries (and about 1 MiB of them), in log order, and the next
    ///   call continues where the last accepted one ended. (An entry that
    ///   itself recorded a reconciliation brings the commands it had taken
    ///   in, so one call may show more commands than that.) A decision
    ///   that needs the whole suffix at once (e.g. "a call set up and torn
    ///   down there is over") must tolerate the two halves arriving in two
    ///   calls.
    /// - **Repeats.** The hook may be called again for the same entries:
    ///   after it failed (below), or when the leader that called it lost
    ///   leadership before the result committed. Only one result is ever
    ///   applied for each entry, so the hook must not act on the outside
    ///   world itself; what it returns is what happens.
    ///
    /// # Errors
    /// A [`ReconcileError`] (or a panic) leaves both epochs' data intact:
    /// nothing is applied, the older side stays fenced with its data, nothing
    /// joins, and the reconciliation is tried again with back-off (one
    /// election timeout after the first failure, doubling up to 32), each
    /// failure reported as [`Event::ReconcileFailed`](crate::Event::ReconcileFailed).
    fn reconcile(&self, divergent: &Reconciliation<'_>) -> Result<Vec<Vec<u8>>, ReconcileError> {
        Ok(divergent
            .entries
            .iter()
            .map(|e| e.command.clone())
            .collect())
    }

    /// Told which epoch the following applies belong to (when it starts,
    /// forks, joins another or installs a snapshot). For observers such as
    /// the simulator's checker; applications ignore it.
    #[doc(hidden)]
    fn note_epoch(&mut self, _epoch: EpochId) {}
}
