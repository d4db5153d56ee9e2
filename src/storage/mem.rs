use std::sync::Arc;

use parking_lot::RwLock;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft::{GetEntriesContext, RaftState, StorageError};

use super::{serves_snapshot, LogStore, LogWrite, StoreError};

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

    /// Appends entries, overwriting any existing entries at the same or
    /// later indexes.
    fn append(i: &mut Inner, entries: &[Entry]) -> Result<(), StoreError> {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        if first.index <= i.truncated_index || first.index > i.last_index() + 1 {
            return Err(StoreError::NotContiguous {
                index: first.index,
                first: i.truncated_index + 1,
                last: i.last_index(),
            });
        }
        let keep = (first.index - i.truncated_index - 1) as usize;
        i.entries.truncate(keep);
        i.entries.extend_from_slice(entries);
        Ok(())
    }

    /// Installs a snapshot: the log restarts after it.
    fn install(i: &mut Inner, snap: &Snapshot) {
        let meta = snap.get_metadata();
        i.truncated_index = meta.index;
        i.truncated_term = meta.term;
        i.entries.clear();
        let hs = &mut i.hard_state;
        hs.term = hs.term.max(meta.term);
        hs.commit = hs.commit.max(meta.index);
        i.snapshot = snap.clone();
    }

    /// Number of entries held in the log.
    pub fn log_len(&self) -> usize {
        self.inner.read().entries.len()
    }
}

impl LogStore for MemStorage {
    fn is_initialized(&self) -> bool {
        let i = self.inner.read();
        !i.snapshot.get_metadata().get_conf_state().voters.is_empty()
    }

    fn latest_snapshot(&self) -> Snapshot {
        self.inner.read().snapshot.clone()
    }

    fn next_boot(&self) -> Result<u64, StoreError> {
        let mut i = self.inner.write();
        i.boots += 1;
        Ok(i.boots)
    }

    fn persist(&self, write: LogWrite<'_>) -> Result<(), StoreError> {
        let mut i = self.inner.write();
        // Validate before changing anything: the write is all or nothing.
        let after_snapshot = write
            .snapshot
            .map_or(i.last_index(), |s| s.get_metadata().index);
        let floor = write
            .snapshot
            .map_or(i.truncated_index, |s| s.get_metadata().index);
        if let Some(first) = write.entries.first() {
            let last = if write.snapshot.is_some() {
                after_snapshot
            } else {
                i.last_index()
            };
            if first.index <= floor || first.index > last + 1 {
                return Err(StoreError::NotContiguous {
                    index: first.index,
                    first: floor + 1,
                    last,
                });
            }
        }
        if let Some(snap) = write.snapshot {
            Self::install(&mut i, snap);
        }
        Self::append(&mut i, write.entries)?;
        if let Some(hs) = write.hard_state {
            let snap_commit = i.snapshot.get_metadata().index;
            i.hard_state = hs.clone();
            i.hard_state.commit = i.hard_state.commit.max(snap_commit);
        }
        Ok(())
    }

    fn set_commit(&self, commit: u64) -> Result<(), StoreError> {
        self.inner.write().hard_state.commit = commit;
        Ok(())
    }

    fn create_snapshot(
        &self,
        index: u64,
        conf_state: ConfState,
        data: Vec<u8>,
        keep: u64,
    ) -> Result<(), StoreError> {
        let mut i = self.inner.write();
        let corrupt = |what: &str| StoreError::Corrupt {
            path: "memory".into(),
            reason: format!("{what} is not in the log"),
        };
        let term = i
            .term(index)
            .map_err(|_| corrupt(&format!("snapshot index {index}")))?;
        let mut snap = Snapshot {
            data: data.into(),
            ..Default::default()
        };
        let meta = snap.mut_metadata();
        meta.index = index;
        meta.term = term;
        meta.set_conf_state(conf_state);
        i.snapshot = snap;
        i.hard_state.commit = i.hard_state.commit.max(index);
        let compact_to = index.saturating_sub(keep);
        if compact_to > i.truncated_index {
            let term = i
                .term(compact_to)
                .map_err(|_| corrupt(&format!("compaction point {compact_to}")))?;
            let drop = (compact_to - i.truncated_index) as usize;
            i.entries.drain(..drop);
            i.truncated_index = compact_to;
            i.truncated_term = term;
        }
        Ok(())
    }

    fn take_snapshot_request(&self) -> bool {
        std::mem::take(&mut self.inner.write().snapshot_requested)
    }

    fn reset(&self, marker: &Snapshot) -> Result<(), StoreError> {
        let mut i = self.inner.write();
        let boots = i.boots;
        *i = Inner {
            boots,
            ..Inner::default()
        };
        let meta = marker.get_metadata();
        i.truncated_index = meta.index;
        i.truncated_term = meta.term;
        i.snapshot = marker.clone();
        Ok(())
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
        if serves_snapshot(&i.snapshot, request_index, to) {
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
    use std::collections::BTreeMap;

    use super::*;
    use raft::Storage as _;

    #[test]
    fn conforms() {
        let mut stores: BTreeMap<u32, MemStorage> = BTreeMap::new();
        super::super::testing::conformance(|n| stores.entry(n).or_default().clone());
    }

    #[test]
    fn snapshots_are_requested_not_faked() {
        let s = MemStorage::new();
        let mut snap = Snapshot::default();
        snap.mut_metadata().index = 1;
        snap.mut_metadata().term = 1;
        snap.mut_metadata().mut_conf_state().voters = vec![1, 2, 3];
        s.persist(LogWrite {
            snapshot: Some(&snap),
            entries: &[],
            hard_state: None,
            sync: true,
        })
        .unwrap();
        assert_eq!(s.snapshot(0, 2).unwrap().get_metadata().index, 1);
        // A newer snapshot than stored is requested, not faked.
        assert!(s.snapshot(2, 2).is_err());
        assert!(s.take_snapshot_request());
        // So is one for a member the stored snapshot does not know.
        assert!(s.snapshot(0, 9).is_err());
        assert!(s.take_snapshot_request());
        assert!(!s.take_snapshot_request());
    }
}
