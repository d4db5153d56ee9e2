use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::Arc;

use parking_lot::{RwLock, RwLockWriteGuard};
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
///
/// raft asks for the first and last index many times per message; those
/// two, and the snapshot request, are answered without the lock: the
/// bounds are mirrored in atomics that every write publishes before it
/// releases the lock, and a reader keeps a mirrored value only when no
/// publication overlapped its read (the ordering argument is in the
/// source, on the private `Bounds` type).
#[derive(Clone, Default)]
pub struct MemStorage {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    inner: RwLock<Inner>,
    /// The log's bounds, mirrored from `inner`.
    bounds: Bounds,
    /// Whether raft asked for a newer snapshot than the one stored.
    snapshot_requested: AtomicBool,
}

/// The log's bounds (`Inner::truncated_index` and `Inner::last_index`),
/// mirrored so that reading them takes no lock.
///
/// Why a reader sees what a read under the lock would have seen:
/// - Every change of `inner` happens through a [`Writing`] guard, which
///   *publishes* the new bounds when it is dropped, before it releases the
///   write lock; nothing else stores to these fields. Publications are
///   therefore never concurrent, and each lies inside the write it
///   belongs to (no reader holding the lock overlaps it).
/// - A publication makes `seq` odd, stores both bounds, and makes `seq`
///   even again; every access is `SeqCst`, so all of them fall into one
///   total order that respects each thread's program order.
/// - A reader loads `seq`, then the bound, then `seq` again, and keeps
///   the bound only when both loads saw the same even value. No
///   publication can then have started between the two loads (it would
///   have changed `seq`), and every publication that started before the
///   first load had finished (else that load would be odd): so the bound
///   read is the one the latest finished publication stored, never half
///   of one. Otherwise the reader reads `inner` under the read lock,
///   which waits for the writer.
///
/// So each lock-free read takes effect at one instant between two writes,
/// and a thread that reads the first index and then the last never sees a
/// newer first index with an older last index. A write takes effect for
/// lock-free readers at its publication, which lies inside its write lock:
/// readers under the lock see it at the same point.
#[derive(Default)]
struct Bounds {
    /// Even between publications, odd during one.
    seq: AtomicU64,
    /// `Inner::truncated_index`: the first index less one.
    truncated: AtomicU64,
    /// `Inner::last_index()`.
    last: AtomicU64,
}

impl Bounds {
    /// Stores new bounds; only from [`Writing::drop`], under the write lock.
    fn publish(&self, truncated: u64, last: u64) {
        if self.truncated.load(SeqCst) == truncated && self.last.load(SeqCst) == last {
            return; // unchanged: nothing to publish
        }
        self.seq.fetch_add(1, SeqCst);
        self.truncated.store(truncated, SeqCst);
        self.last.store(last, SeqCst);
        self.seq.fetch_add(1, SeqCst);
    }

    /// The bound `pick` reads, if no publication overlapped the read.
    fn read(&self, pick: impl Fn(&Self) -> u64) -> Option<u64> {
        let seq = self.seq.load(SeqCst);
        if seq % 2 == 1 {
            return None;
        }
        let value = pick(self);
        (self.seq.load(SeqCst) == seq).then_some(value)
    }
}

/// The write lock on a store's data: publishes the log's bounds when
/// dropped, before the lock is released (see [`Bounds`]).
struct Writing<'a> {
    inner: RwLockWriteGuard<'a, Inner>,
    bounds: &'a Bounds,
}

impl Deref for Writing<'_> {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.inner
    }
}

impl DerefMut for Writing<'_> {
    fn deref_mut(&mut self) -> &mut Inner {
        &mut self.inner
    }
}

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        // Runs before `inner` (the lock guard) is dropped.
        self.bounds
            .publish(self.inner.truncated_index, self.inner.last_index());
    }
}

impl std::fmt::Debug for MemStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let i = self.shared.inner.read();
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

    /// The write lock, publishing the log's bounds when released.
    fn write(&self) -> Writing<'_> {
        Writing {
            inner: self.shared.inner.write(),
            bounds: &self.shared.bounds,
        }
    }

    fn read(&self) -> parking_lot::RwLockReadGuard<'_, Inner> {
        self.shared.inner.read()
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
        self.read().entries.len()
    }
}

impl LogStore for MemStorage {
    fn is_initialized(&self) -> bool {
        let i = self.read();
        !i.snapshot.get_metadata().get_conf_state().voters.is_empty()
    }

    fn latest_snapshot(&self) -> Snapshot {
        self.read().snapshot.clone()
    }

    fn next_boot(&self) -> Result<u64, StoreError> {
        let mut i = self.write();
        i.boots += 1;
        Ok(i.boots)
    }

    fn persist(&self, write: LogWrite<'_>) -> Result<(), StoreError> {
        let mut i = self.write();
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
        self.write().hard_state.commit = commit;
        Ok(())
    }

    fn create_snapshot(
        &self,
        index: u64,
        conf_state: ConfState,
        data: Vec<u8>,
        keep: u64,
    ) -> Result<(), StoreError> {
        let mut i = self.write();
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
        // Load first: the swap's locked write is needed only when set.
        let flag = &self.shared.snapshot_requested;
        flag.load(SeqCst) && flag.swap(false, SeqCst)
    }

    fn reset(&self, marker: &Snapshot) -> Result<(), StoreError> {
        let mut i = self.write();
        let boots = i.boots;
        *i = Inner {
            boots,
            ..Inner::default()
        };
        self.shared.snapshot_requested.store(false, SeqCst);
        let meta = marker.get_metadata();
        i.truncated_index = meta.index;
        i.truncated_term = meta.term;
        i.snapshot = marker.clone();
        Ok(())
    }
}

impl raft::Storage for MemStorage {
    fn initial_state(&self) -> raft::Result<RaftState> {
        let i = self.read();
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
        let i = self.read();
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
        self.read().term(idx)
    }

    fn first_index(&self) -> raft::Result<u64> {
        let bounds = &self.shared.bounds;
        let truncated = bounds
            .read(|b| b.truncated.load(SeqCst))
            .unwrap_or_else(|| self.read().truncated_index);
        Ok(truncated + 1)
    }

    fn last_index(&self) -> raft::Result<u64> {
        let bounds = &self.shared.bounds;
        Ok(bounds
            .read(|b| b.last.load(SeqCst))
            .unwrap_or_else(|| self.read().last_index()))
    }

    /// The stored snapshot, unless it is older than `request_index` or does
    /// not name `to` in its ConfState (raft refuses to restore such a
    /// snapshot, so a newly added learner needs one taken after it joined):
    /// then a fresh snapshot is requested from the node and raft retries.
    fn snapshot(&self, request_index: u64, to: u64) -> raft::Result<Snapshot> {
        let i = self.read();
        if serves_snapshot(&i.snapshot, request_index, to) {
            Ok(i.snapshot.clone())
        } else {
            self.shared.snapshot_requested.store(true, SeqCst);
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

    fn entry(index: u64) -> Entry {
        Entry {
            index,
            term: 1,
            ..Default::default()
        }
    }

    /// Writers that move the log forward (appends, compactions, snapshots
    /// installed far ahead) race readers that read the first and then the
    /// last index without the lock: a reader never sees a first index
    /// newer than the last index it reads next (`last >= first - 1`),
    /// nor a bound that goes back; at the end the mirrors hold what the
    /// data under the lock says.
    #[test]
    fn lock_free_bounds_stay_in_step_with_writers() {
        let s = MemStorage::new();
        let done = Arc::new(AtomicBool::new(false));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (s, done) = (s.clone(), done.clone());
                std::thread::spawn(move || {
                    let (mut first_seen, mut last_seen, mut reads) = (1, 0, 0u64);
                    while !done.load(SeqCst) || reads < 1000 {
                        let first = s.first_index().unwrap();
                        let last = s.last_index().unwrap();
                        assert!(last + 1 >= first, "first {first} after last {last}");
                        assert!(
                            first >= first_seen && last >= last_seen,
                            "a bound went back"
                        );
                        (first_seen, last_seen, reads) = (first, last, reads + 1);
                    }
                    reads
                })
            })
            .collect();
        let write = |snapshot: Option<&Snapshot>, entries: &[Entry]| {
            let w = LogWrite {
                snapshot,
                entries,
                hard_state: None,
                sync: true,
            };
            s.persist(w).unwrap();
        };
        for round in 0..3000u64 {
            let last = s.last_index().unwrap();
            match round % 3 {
                0 => write(None, &[entry(last + 1), entry(last + 2)]),
                1 => s
                    .create_snapshot(last, ConfState::default(), Vec::new(), 1)
                    .unwrap(),
                _ => {
                    // A snapshot from the leader, ten entries ahead.
                    let mut snap = Snapshot::default();
                    snap.mut_metadata().index = last + 10;
                    snap.mut_metadata().term = 1;
                    write(Some(&snap), &[entry(last + 11)]);
                }
            }
        }
        done.store(true, SeqCst);
        for r in readers {
            assert!(r.join().unwrap() >= 1000);
        }
        let i = s.read();
        assert_eq!(s.first_index().unwrap(), i.truncated_index + 1);
        assert_eq!(s.last_index().unwrap(), i.last_index());
        assert_eq!(i.last_index(), 3000 / 3 * 13);
    }

    /// Every write publishes the bounds it leaves, including one that
    /// fails after validation and a reset that moves them back.
    #[test]
    fn bounds_follow_every_write() {
        fn w(entries: &[Entry]) -> LogWrite<'_> {
            LogWrite {
                snapshot: None,
                entries,
                hard_state: None,
                sync: true,
            }
        }
        let s = MemStorage::new();
        s.persist(w(&[entry(1), entry(2), entry(3)])).unwrap();
        assert_eq!((s.first_index().unwrap(), s.last_index().unwrap()), (1, 3));
        assert!(s.persist(w(&[entry(9)])).is_err());
        assert_eq!(s.last_index().unwrap(), 3);
        s.create_snapshot(3, ConfState::default(), Vec::new(), 1)
            .unwrap();
        assert_eq!((s.first_index().unwrap(), s.last_index().unwrap()), (3, 3));
        s.persist(w(&[entry(3)])).unwrap(); // overwrites the tail
        assert_eq!(s.last_index().unwrap(), 3);
        let mut marker = Snapshot::default();
        marker.mut_metadata().index = 1;
        s.snapshot(5, 1).unwrap_err();
        s.reset(&marker).unwrap();
        assert!(!s.take_snapshot_request(), "a reset forgets the request");
        assert_eq!((s.first_index().unwrap(), s.last_index().unwrap()), (2, 1));
    }
}
