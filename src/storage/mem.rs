use std::sync::Arc;

use parking_lot::RwLock;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft::{GetEntriesContext, RaftState, StorageError};

/// In-memory raft storage that models a disk.
///
/// Clones share the same data: the simulator keeps a clone across a crash,
/// so a restarted node finds exactly what was written, as with an fsynced
/// disk. Everything the node writes here is written before any message that
/// depends on it is sent.
///
/// The ConfState returned by [`raft::Storage::initial_state`] is the one of
/// the latest snapshot: the state machine is rebuilt from that snapshot on
/// restart and every later committed entry, conf changes included, is
/// re-applied in order.
#[derive(Clone, Default)]
pub struct MemStorage {
    inner: Arc<RwLock<Inner>>,
}

impl std::fmt::Debug for MemStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let i = self.inner.read();
        f.debug_struct("MemStorage")
            .field("first_index", &(i.truncated_index + 1))
            .field("last_index", &i.last_index())
            .field("snapshot_index", &i.snapshot.get_metadata().index)
            .field("hard_state", &i.hard_state)
            .finish()
    }
}

#[derive(Default)]
struct Inner {
    hard_state: HardState,
    snapshot: Snapshot,
    /// Index and term of the entry just before `entries[0]`.
    truncated_index: u64,
    truncated_term: u64,
    entries: Vec<Entry>,
    boots: u64,
    snapshot_requested: bool,
}

impl Inner {
    fn last_index(&self) -> u64 {
        self.truncated_index + self.entries.len() as u64
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        if idx == self.truncated_index {
            return Ok(self.truncated_term);
        }
        if idx < self.truncated_index {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        match self.entries.get((idx - self.truncated_index - 1) as usize) {
            Some(e) => Ok(e.term),
            None => Err(raft::Error::Store(StorageError::Unavailable)),
        }
    }
}

impl MemStorage {
    /// Empty storage: a node starting on it either bootstraps (if it is in
    /// the initial topology) or waits for a snapshot from the leader.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether anything was ever written.
    pub fn is_initialized(&self) -> bool {
        let i = self.inner.read();
        !i.snapshot.get_metadata().get_conf_state().voters.is_empty()
    }

    /// Counts a start of a node on this storage and returns the count
    /// (1 for the first start). Proposal ids include it so a restarted node
    /// never reuses an id.
    pub(crate) fn next_boot(&self) -> u64 {
        let mut i = self.inner.write();
        i.boots += 1;
        i.boots
    }

    /// The latest snapshot.
    pub(crate) fn latest_snapshot(&self) -> Snapshot {
        self.inner.read().snapshot.clone()
    }

    /// Whether raft asked for a newer snapshot than the one stored.
    pub(crate) fn take_snapshot_request(&self) -> bool {
        std::mem::take(&mut self.inner.write().snapshot_requested)
    }

    /// Appends entries, overwriting any existing entries at the same or
    /// later indexes. Entries must follow on from the log (no holes).
    pub(crate) fn append(&self, entries: &[Entry]) {
        let Some(first) = entries.first() else {
            return;
        };
        let mut i = self.inner.write();
        assert!(
            first.index > i.truncated_index && first.index <= i.last_index() + 1,
            "append at {} leaves a hole or rewrites compacted entries (log {}..={})",
            first.index,
            i.truncated_index + 1,
            i.last_index()
        );
        let keep = (first.index - i.truncated_index - 1) as usize;
        i.entries.truncate(keep);
        i.entries.extend_from_slice(entries);
    }

    /// Stores the hard state (term, vote, commit).
    pub(crate) fn set_hard_state(&self, hs: HardState) {
        self.inner.write().hard_state = hs;
    }

    /// Records a new commit index.
    pub(crate) fn set_commit(&self, commit: u64) {
        self.inner.write().hard_state.commit = commit;
    }

    /// Installs a snapshot received from the leader (or the bootstrap one):
    /// the log restarts after it.
    pub(crate) fn apply_snapshot(&self, snap: Snapshot) {
        let mut i = self.inner.write();
        let meta = snap.get_metadata();
        i.truncated_index = meta.index;
        i.truncated_term = meta.term;
        i.entries.clear();
        let hs = &mut i.hard_state;
        hs.term = hs.term.max(meta.term);
        hs.commit = hs.commit.max(meta.index);
        i.snapshot = snap;
    }

    /// Stores a snapshot of the state at `index` (applied locally) and
    /// compacts the log, keeping `keep` entries before `index` for
    /// followers that lag a little.
    pub(crate) fn create_snapshot(
        &self,
        index: u64,
        conf_state: ConfState,
        data: Vec<u8>,
        keep: u64,
    ) {
        let mut i = self.inner.write();
        let term = i.term(index).expect("snapshot index is in the log");
        let mut snap = Snapshot {
            data: data.into(),
            ..Default::default()
        };
        let meta = snap.mut_metadata();
        meta.index = index;
        meta.term = term;
        meta.set_conf_state(conf_state);
        i.snapshot = snap;
        let compact_to = index.saturating_sub(keep);
        if compact_to > i.truncated_index {
            let term = i.term(compact_to).expect("compaction point is in the log");
            let drop = (compact_to - i.truncated_index) as usize;
            i.entries.drain(..drop);
            i.truncated_index = compact_to;
            i.truncated_term = term;
        }
    }

    /// Number of entries held in the log.
    pub fn log_len(&self) -> usize {
        self.inner.read().entries.len()
    }
}

impl raft::Storage for MemStorage {
    fn initial_state(&self) -> raft::Result<RaftState> {
        let i = self.inner.read();
        Ok(RaftState {
            hard_state: i.hard_state.clone(),
            conf_state: i.snapshot.get_metadata().get_conf_state().clone(),
        })
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        let i = self.inner.read();
        if low <= i.truncated_index {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > i.last_index() + 1 {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        let lo = (low - i.truncated_index - 1) as usize;
        let hi = (high - i.truncated_index - 1) as usize;
        let mut ents = i.entries[lo..hi].to_vec();
        raft::util::limit_size(&mut ents, max_size.into());
        Ok(ents)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        self.inner.read().term(idx)
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.inner.read().truncated_index + 1)
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.inner.read().last_index())
    }

    /// The stored snapshot, unless it is older than `request_index` or does
    /// not name `to` in its ConfState (raft refuses to restore such a
    /// snapshot, so a newly added learner needs one taken after it joined):
    /// then a fresh snapshot is requested from the node and raft retries.
    fn snapshot(&self, request_index: u64, to: u64) -> raft::Result<Snapshot> {
        let mut i = self.inner.write();
        let cs = i.snapshot.get_metadata().get_conf_state();
        let names_to = cs
            .voters
            .iter()
            .chain(&cs.learners)
            .chain(&cs.voters_outgoing)
            .chain(&cs.learners_next)
            .any(|&id| id == to);
        if i.snapshot.get_metadata().index >= request_index && names_to {
            Ok(i.snapshot.clone())
        } else {
            i.snapshot_requested = true;
            Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::Storage as _;

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            ..Default::default()
        }
    }

    fn boot(s: &MemStorage) {
        let mut snap = Snapshot::default();
        snap.mut_metadata().index = 1;
        snap.mut_metadata().term = 1;
        snap.mut_metadata().mut_conf_state().voters = vec![1, 2, 3];
        s.apply_snapshot(snap);
    }

    #[test]
    fn append_overwrites_conflicting_tail() {
        let s = MemStorage::new();
        boot(&s);
        s.append(&[entry(2, 1), entry(3, 1), entry(4, 1)]);
        s.append(&[entry(3, 2)]);
        assert_eq!(s.last_index().unwrap(), 3);
        assert_eq!(s.term(3).unwrap(), 2);
        assert_eq!(s.term(1).unwrap(), 1);
        assert!(matches!(
            s.term(0),
            Err(raft::Error::Store(StorageError::Compacted))
        ));
        assert!(matches!(
            s.term(9),
            Err(raft::Error::Store(StorageError::Unavailable))
        ));
    }

    #[test]
    fn snapshot_compacts_and_keeps_a_tail() {
        let s = MemStorage::new();
        boot(&s);
        s.append(&(2..=20).map(|i| entry(i, 1)).collect::<Vec<_>>());
        let cs = ConfState {
            voters: vec![1, 2, 3],
            ..Default::default()
        };
        s.create_snapshot(15, cs, b"state".to_vec(), 5);
        assert_eq!(s.first_index().unwrap(), 11);
        assert_eq!(s.last_index().unwrap(), 20);
        assert_eq!(s.term(10).unwrap(), 1);
        let snap = s.snapshot(0, 2).unwrap();
        assert_eq!(snap.get_metadata().index, 15);
        assert_eq!(&snap.data[..], b"state");
        let ctx = GetEntriesContext::empty(false);
        assert!(s.entries(5, 12, None, ctx).is_err());
        let ctx = GetEntriesContext::empty(false);
        assert_eq!(s.entries(11, 21, None, ctx).unwrap().len(), 10);
        // A newer snapshot than stored is requested, not faked.
        assert!(s.snapshot(16, 2).is_err());
        assert!(s.take_snapshot_request());
        // So is one for a member the stored snapshot does not know.
        assert!(s.snapshot(0, 9).is_err());
        assert!(s.take_snapshot_request());
        assert!(!s.take_snapshot_request());
    }

    #[test]
    fn clones_share_like_a_disk() {
        let s = MemStorage::new();
        let disk = s.clone();
        boot(&s);
        assert!(disk.is_initialized());
        assert_eq!(disk.next_boot(), 1);
        assert_eq!(s.next_boot(), 2);
    }
}
