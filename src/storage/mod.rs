//! Raft log storage: what the node persists, behind one trait.
//!
//! [`LogStore`] is raft's read side ([`raft::Storage`]) plus the writes the
//! node makes. [`MemStorage`] keeps everything in memory (what a simulated
//! crash keeps, see the `sim` module); [`DurableStorage`] (feature
//! `runtime`) keeps it on disk in tikv's raft-engine, with the same
//! semantics. [`testing::conformance`] checks any implementation.
//!
// Without the feature, the link leads to the crate's list of features.
#![cfg_attr(not(feature = "runtime"), doc = "[`DurableStorage`]: crate#features")]
//!
//! # Correctness requirements
//! - [`LogStore::persist`] is atomic (all of the write or none of it) and,
//!   when `sync` is set, durable before it returns: the node sends votes and
//!   append acknowledgements only after it returns.
//! - Reads ([`raft::Storage`]) see every write as soon as it returns.
//! - A store never forgets an entry, a term or a vote it acknowledged, and
//!   never invents one: a restart finds exactly what was persisted.

#[cfg(feature = "runtime")]
mod durable;
#[cfg(feature = "runtime")]
mod files;
mod mem;
pub mod testing;

#[cfg(feature = "runtime")]
#[cfg_attr(docsrs, doc(cfg(feature = "runtime")))]
pub use durable::DurableStorage;
pub use mem::MemStorage;

use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use thiserror::Error;

/// A storage operation failed. The node stops ([`Fatal::Storage`](crate::Fatal::Storage))
/// rather than run on a store it cannot trust.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Reading or writing failed.
    #[error("storage I/O failed at {path}: {reason}")]
    Io {
        /// The file or directory.
        path: String,
        /// What the OS or engine said.
        reason: String,
    },
    /// What is on disk does not decode or is inconsistent.
    #[error("stored data is corrupt at {path}: {reason}; restore the member from a backup or re-seed it as a replacement, never reset it silently")]
    Corrupt {
        /// The file or record.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The data directory belongs to another cluster or member.
    #[error("data directory {path} belongs to cluster {found_cluster} node {found_node}, not cluster {cluster} node {node}; point this member at its own directory")]
    ForeignData {
        /// The directory.
        path: String,
        /// Cluster id found on disk.
        found_cluster: u64,
        /// Node id found on disk.
        found_node: u64,
        /// Cluster id expected.
        cluster: u64,
        /// Node id expected.
        node: u64,
    },
    /// A write would leave a hole in the log or rewrite compacted entries.
    #[error("append at index {index} does not follow the log {first}..={last}")]
    NotContiguous {
        /// First index written.
        index: u64,
        /// First index held.
        first: u64,
        /// Last index held.
        last: u64,
    },
}

/// One `Ready`'s worth of log writes, persisted atomically.
#[derive(Debug, Clone, Copy)]
pub struct LogWrite<'a> {
    /// A snapshot to install: the log restarts after it (entries above its
    /// index may be overwritten by `entries`).
    pub snapshot: Option<&'a Snapshot>,
    /// Entries to append; they replace any held entries at the same or
    /// later indexes.
    pub entries: &'a [Entry],
    /// The new term, vote and commit.
    pub hard_state: Option<&'a HardState>,
    /// Whether the write must be durable before `persist` returns.
    pub sync: bool,
}

/// The node's raft log storage: raft's reads plus the node's writes.
///
/// Clones share one store (the node keeps one, raft another).
pub trait LogStore: raft::Storage + Clone {
    /// Whether anything was ever written (a bootstrap or a received snapshot).
    fn is_initialized(&self) -> bool;

    /// The latest snapshot: what the state machine is rebuilt from on start.
    fn latest_snapshot(&self) -> Snapshot;

    /// Counts a start of a node on this store and returns the count (1 for
    /// the first start), durably: proposal ids include it, so a restarted
    /// node never reuses one.
    ///
    /// # Errors
    /// [`StoreError`] when it cannot be persisted.
    fn next_boot(&self) -> Result<u64, StoreError>;

    /// Persists one `Ready`'s snapshot, entries and hard state atomically.
    /// Installing a snapshot also raises the hard state's term and commit
    /// to at least the snapshot's.
    ///
    /// # Errors
    /// [`StoreError`]; nothing of the write may then be visible.
    fn persist(&self, write: LogWrite<'_>) -> Result<(), StoreError>;

    /// Records a new commit index. May be written lazily (it is re-learnt
    /// from the leader), but never lower than a snapshot's index.
    ///
    /// # Errors
    /// [`StoreError`].
    fn set_commit(&self, commit: u64) -> Result<(), StoreError>;

    /// Stores a snapshot of the state at `index` (applied locally, so
    /// committed) and compacts the log, keeping `keep` entries before
    /// `index` for followers that lag a little.
    ///
    /// # Errors
    /// [`StoreError`].
    fn create_snapshot(
        &self,
        index: u64,
        conf_state: ConfState,
        data: Vec<u8>,
        keep: u64,
    ) -> Result<(), StoreError>;

    /// Whether raft asked for a newer snapshot than the one stored (then the
    /// node takes one); clears the request.
    fn take_snapshot_request(&self) -> bool;

    /// Forgets the whole raft state (log, hard state, snapshot) and keeps
    /// `marker` (a snapshot with an empty configuration: the store is then
    /// not initialized) as the latest snapshot; the boot count stays.
    /// Used when a member leaves its epoch for a newer one. Atomic and
    /// durable.
    ///
    /// # Errors
    /// [`StoreError`]; then nothing was forgotten.
    fn reset(&self, marker: &Snapshot) -> Result<(), StoreError>;

    /// Has `observer` called with the duration of every synced write from
    /// now on (the write and its fsync), replacing any earlier observer:
    /// the runtime's metrics time the disk with it. The default ignores it
    /// (a store with nothing to sync, like [`MemStorage`]).
    fn observe_syncs(&self, observer: SyncObserver) {
        let _ = observer;
    }
}

/// Called with the duration of each synced write: see
/// [`LogStore::observe_syncs`]. It runs on the thread that writes (the
/// node's), so it must be quick (a histogram's atomic update).
pub type SyncObserver = std::sync::Arc<dyn Fn(std::time::Duration) + Send + Sync>;

#[cfg(feature = "runtime")]
fn io_err(path: &std::path::Path, e: impl std::fmt::Display) -> StoreError {
    let (path, reason) = (path.display().to_string(), e.to_string());
    StoreError::Io { path, reason }
}

#[cfg(feature = "runtime")]
fn corrupt(path: impl std::fmt::Display, reason: impl Into<String>) -> StoreError {
    let (path, reason) = (path.to_string(), reason.into());
    StoreError::Corrupt { path, reason }
}

/// Whether a stored snapshot can answer raft's request for one at
/// `request_index` or later for member `to`: it must be new enough and name
/// `to` in its configuration (raft refuses to restore one that does not, so
/// a newly added learner needs a snapshot taken after it joined). When it
/// cannot, a [`raft::Storage::snapshot`] implementation returns
/// `SnapshotTemporarilyUnavailable` and asks the node for a fresh one
/// through [`LogStore::take_snapshot_request`].
pub fn serves_snapshot(stored: &Snapshot, request_index: u64, to: u64) -> bool {
    let meta = stored.get_metadata();
    let cs = meta.get_conf_state();
    let names_to = cs
        .voters
        .iter()
        .chain(&cs.learners)
        .chain(&cs.voters_outgoing)
        .chain(&cs.learners_next)
        .any(|&id| id == to);
    meta.index >= request_index && names_to
}
