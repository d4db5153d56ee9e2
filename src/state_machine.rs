//! The application's state machine: what the control plane replicates.

use thiserror::Error;

use crate::ids::{EpochId, ProposalId};

/// A snapshot could not be restored.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("state machine could not restore its snapshot: {reason}")]
pub struct RestoreError {
    /// What was wrong with the bytes.
    pub reason: String,
}

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
///   on a fresh value gives the same state.
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
