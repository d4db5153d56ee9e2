//! The application's state machine: what the control plane replicates.

use thiserror::Error;

/// A snapshot could not be restored.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("state machine could not restore its snapshot: {reason}")]
pub struct RestoreError {
    /// What was wrong with the bytes.
    pub reason: String,
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
}
