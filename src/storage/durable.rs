//! A durable [`LogStore`] on tikv's `raft-engine`.
//!
//! # Layout
//! One directory per member holds one raft-engine instance with one raft
//! group (`GROUP`): the log entries, and the keys `id` (cluster id and node
//! id, written on first open and checked on every later one), `hs` (the
//! `HardState`), `snap` (the latest `Snapshot`), `log` (truncated index and
//! term, last index: the log's own metadata, like TiKV's `RaftLocalState`;
//! raft-engine's first and last index are only cross-checked on open) and
//! `boots` (the boot counter).
//!
//! # Writes and fsync
//! Each write is one raft-engine `LogBatch`, validated first (raft-engine
//! panics on a hole in the log) and published to readers only after
//! `Engine::write` returned. [`LogStore::persist`] syncs when asked;
//! `create_snapshot`, `next_boot` and the identity record always sync;
//! `set_commit` never does. raft-engine panics if an fdatasync fails (a
//! failed fsync cannot be retried safely).
//!
//! # Purging, off the writer's thread
//! A snapshot that compacts the log writes the snapshot and the compaction
//! in one synced batch; deleting the files that then hold nothing live
//! (raft-engine's purge, which may first copy what is still live in them
//! into its rewrite queue, synced) is left to a purge thread per store, so
//! the node thread does not wait for it (up to tens of milliseconds, about
//! once per snapshot at high commit rates). Nothing waits for the purge:
//! until it runs the files merely stay, and a restart replays the synced
//! compaction over them, so a crash before, during or after it restarts
//! from the same state. A purge that fails is reported by the store's next
//! write. Dropping the last clone waits for a purge under way (the
//! directory stays locked until then); without a thread (the OS refused
//! one) the writer purges itself, as before.
//!
//! # Opening and corruption
//! raft-engine recovers with `TolerateTailCorruption`: after a crash the
//! active file ends in preallocated zeros or a torn batch, which it cuts
//! off. It would cut garbage in the last file the same way (acknowledged
//! writes included), and it empties a last file whose header is broken. So
//! [`DurableStorage::open`] first checks file headers and numbering, keeps a
//! copy of the last file of each queue, and after recovery accepts a cut
//! only if it was zeros or one torn batch; otherwise it puts the bytes back
//! and returns [`StoreError::Corrupt`] naming the file (on a filesystem
//! without `fallocate`, a torn final write is reported too). Then every
//! entry is read back once (raft-engine checks an entry's checksum only when
//! it is read) and the metadata is checked against the log. When raft-engine
//! refuses the directory or a read back fails, the files are walked batch
//! by batch (checksums included, see `files`) so that the error names the
//! broken file and offset rather than the directory.

use std::fs;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::Instant;

use parking_lot::{Mutex, RwLock};
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft::{GetEntriesContext, RaftState, StorageError};
use raft_engine::{Command, Config, Engine, LogBatch, MessageExt, ReadableSize, RecoveryMode};

use super::files::{self, check_tail, precheck, restore};
use super::{corrupt, io_err, serves_snapshot, LogStore, LogWrite, StoreError, SyncObserver};

/// The raft-engine group that holds everything.
const GROUP: u64 = 1;
const KEY_ID: &[u8] = b"id";
const KEY_HS: &[u8] = b"hs";
const KEY_SNAP: &[u8] = b"snap";
const KEY_LOG: &[u8] = b"log";
const KEY_BOOTS: &[u8] = b"boots";
#[derive(Clone)]
struct EntryExt;

impl MessageExt for EntryExt {
    type Entry = Entry;
    fn index(e: &Entry) -> u64 {
        e.index
    }
}

/// The log's extent: entries `ti + 1 ..= last`; `tt` is the term of `ti`.
#[derive(Clone, Copy, Default)]
struct Span {
    ti: u64,
    tt: u64,
    last: u64,
    last_term: u64,
}

impl Span {
    /// The term of `idx` when known without reading the log.
    fn term(&self, idx: u64) -> Option<Result<u64, StorageError>> {
        match idx {
            i if i == self.ti => Some(Ok(self.tt)),
            i if i == self.last => Some(Ok(self.last_term)),
            i if i < self.ti => Some(Err(StorageError::Compacted)),
            i if i > self.last => Some(Err(StorageError::Unavailable)),
            _ => None,
        }
    }
}

/// What readers see; changed only after the engine accepted a write.
#[derive(Default)]
struct Meta {
    hard_state: HardState,
    snapshot: Snapshot,
    log: Span,
    boots: u64,
}

struct Shared {
    engine: Arc<Engine>,
    path: String,
    /// Told how long each synced write took ([`LogStore::observe_syncs`]).
    sync_observer: RwLock<Option<SyncObserver>>,
    meta: RwLock<Meta>,
    snapshot_requested: AtomicBool,
    purger: Purger,
}

/// Runs raft-engine's purge on its own thread (see the module docs).
struct Purger {
    /// Wakes the thread; holds one request at most (requests made while
    /// one waits are the same request). `None` without a thread.
    wake: Option<SyncSender<()>>,
    thread: Option<JoinHandle<()>>,
    /// Held while a purge runs.
    running: Arc<Mutex<()>>,
    /// The first purge that failed, reported by every later write.
    failed: Arc<OnceLock<StoreError>>,
}

impl Purger {
    fn start(engine: &Arc<Engine>, path: &str) -> Self {
        let (running, failed) = (Arc::new(Mutex::new(())), Arc::new(OnceLock::new()));
        let (wake, woken) = sync_channel::<()>(1);
        let (engine, path) = (engine.clone(), path.to_owned());
        let (on, fail) = (running.clone(), failed.clone());
        let spawned = std::thread::Builder::new()
            .name("sc-purge".into())
            .spawn(move || {
                for () in woken {
                    let _running = on.lock();
                    if let Err(e) = purge(&engine, &path) {
                        let _ = fail.set(e);
                    }
                }
            });
        let (wake, thread) = match spawned {
            Ok(t) => (Some(wake), Some(t)),
            Err(_) => (None, None),
        };
        Self {
            wake,
            thread,
            running,
            failed,
        }
    }

    /// Has the files purged: by the thread, or now without one.
    fn request(&self, engine: &Engine, path: &str) -> Result<(), StoreError> {
        match self.wake.as_ref().map(|w| w.try_send(())) {
            Some(Ok(()) | Err(TrySendError::Full(()))) => Ok(()),
            // No thread (or it is gone): purge here.
            None | Some(Err(TrySendError::Disconnected(()))) => {
                let _running = self.running.lock();
                purge(engine, path)
            }
        }
    }
}

impl Drop for Purger {
    /// Waits for a purge under way: the engine (and the directory's lock)
    /// goes when the last clone of the store does.
    fn drop(&mut self) {
        self.wake.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Deletes the files with nothing live left. The groups raft-engine asks us
/// to compact are ignored: the node decides how much log to keep. A panic
/// (raft-engine's answer to a failed fsync) is an error here.
fn purge(engine: &Engine, path: &str) -> Result<(), StoreError> {
    match catch_unwind(AssertUnwindSafe(|| engine.purge_expired_files())) {
        Ok(done) => done.map(drop).map_err(|e| engine_err(path, e)),
        Err(_) => Err(io_err(
            Path::new(path),
            "raft-engine panicked purging files",
        )),
    }
}

/// A [`LogStore`] on disk, in tikv's raft-engine, with the semantics of
/// [`MemStorage`](super::MemStorage).
///
/// Every `persist` is one atomic engine write, fsynced when asked. Opening
/// refuses another member's directory and corrupt data rather than reset
/// anything. Clones are cheap and share one engine; the directory is locked
/// while any clone is alive, so drop every clone before opening it again.
#[derive(Clone)]
pub struct DurableStorage {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for DurableStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let m = self.shared.meta.read();
        let (first, last) = (m.log.ti + 1, m.log.last);
        write!(f, "DurableStorage({}, {first}..={last})", self.shared.path)
    }
}

fn engine_err(path: &str, e: raft_engine::Error) -> StoreError {
    use raft_engine::Error as E;
    match e {
        // Reads are checked against our own metadata first: a missing entry is corruption.
        E::Corruption(_) | E::Codec(_) | E::Protobuf(_) | E::EntryNotFound | E::EntryCompacted => {
            corrupt(path, e.to_string())
        }
        e => io_err(Path::new(path), e),
    }
}

fn other(e: StoreError) -> raft::Error {
    raft::Error::Store(StorageError::Other(Box::new(e)))
}

fn u64s(vals: &[u64]) -> Vec<u8> {
    vals.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn from_u64s<const N: usize>(v: &[u8]) -> Option<[u64; N]> {
    let mut out = [0; N];
    for (o, c) in out.iter_mut().zip(v.chunks_exact(8)) {
        *o = u64::from_le_bytes(c.try_into().ok()?);
    }
    (v.len() == 8 * N).then_some(out)
}

fn open_engine(dir: &str) -> Result<Engine, StoreError> {
    let cfg = Config {
        dir: dir.to_owned(),
        recovery_mode: RecoveryMode::TolerateTailCorruption,
        recovery_threads: 2,
        target_file_size: ReadableSize::mb(4),
        // raft-engine sizes a queue as its number of files times the target
        // size, and a file holding a snapshot is as large as the snapshot:
        // with 32 MiB here, eight 1 GiB snapshots (8 GiB of dead data)
        // looked like 32 MiB and were kept. Purging once a second file
        // exists keeps about one snapshot on disk; purges run only after
        // this member takes a snapshot (on the purge thread), so small logs
        // are not purged more often, only more thoroughly.
        purge_threshold: ReadableSize::mb(4),
        // A recycled file keeps old data after its header: a crash's tail
        // could not be told from corruption.
        enable_log_recycle: false,
        ..Config::default()
    };
    let (cause, refused) = match catch_unwind(AssertUnwindSafe(|| Engine::open(cfg))) {
        Ok(Ok(engine)) => return Ok(engine),
        // Locked by another instance: its files are not ours to read.
        Ok(Err(e @ raft_engine::Error::Other(_))) => return Err(engine_err(dir, e)),
        Ok(Err(e)) => (format!("raft-engine: {e}"), engine_err(dir, e)),
        Err(panic) => {
            let what = (panic.downcast_ref::<String>().map(String::as_str))
                .or_else(|| panic.downcast_ref::<&str>().copied());
            let why = format!("raft-engine panicked in recovery: {}", what.unwrap_or("?"));
            (why.clone(), corrupt(dir, why))
        }
    };
    // Name the broken file when one is (raft-engine's errors name none; a
    // broken last batch of an older file even shows as a failed truncation).
    Err(files::locate(Path::new(dir), &cause).unwrap_or(refused))
}

impl Shared {
    fn err(&self, e: raft_engine::Error) -> StoreError {
        engine_err(&self.path, e)
    }

    /// Builds one batch with `fill` and writes it.
    fn write<F>(&self, sync: bool, fill: F) -> Result<(), StoreError>
    where
        F: FnOnce(&mut LogBatch) -> raft_engine::Result<()>,
    {
        if let Some(e) = self.purger.failed.get() {
            return Err(e.clone());
        }
        let mut b = LogBatch::default();
        let start = sync.then(Instant::now);
        let written = fill(&mut b).and_then(|()| self.engine.write(&mut b, sync));
        if let (Some(start), Some(observe)) = (start, &*self.sync_observer.read()) {
            observe(start.elapsed());
        }
        written.map(drop).map_err(|e| self.err(e))
    }

    fn read_term(&self, m: &Meta, idx: u64) -> raft::Result<u64> {
        if let Some(r) = m.log.term(idx) {
            return r.map_err(raft::Error::Store);
        }
        match self.engine.get_entry::<EntryExt>(GROUP, idx) {
            Ok(Some(e)) if e.index == idx => Ok(e.term),
            Ok(_) => Err(other(corrupt(&self.path, format!("no entry {idx}")))),
            Err(e) => Err(other(self.err(e))),
        }
    }

    /// Reads what was persisted (or records the identity in a new store).
    fn load(&self, cluster: u64, node: u64) -> Result<Meta, StoreError> {
        let (engine, path) = (&self.engine, self.path.as_str());
        let Some(id) = engine.get(GROUP, KEY_ID) else {
            if !engine.raft_groups().is_empty() {
                return Err(corrupt(path, "raft-engine data but no identity record"));
            }
            let id = u64s(&[cluster, node]);
            self.write(true, |b| b.put(GROUP, KEY_ID.to_vec(), id))?;
            return Ok(Meta::default());
        };
        let bad = |what: &str| corrupt(path, format!("bad {what} record"));
        let [found_cluster, found_node] = from_u64s(&id).ok_or_else(|| bad("identity"))?;
        if (found_cluster, found_node) != (cluster, node) {
            let path = path.into();
            let e = StoreError::ForeignData {
                path,
                found_cluster,
                found_node,
                cluster,
                node,
            };
            return Err(e);
        }
        let hs = engine.get_message(GROUP, KEY_HS).map_err(|e| self.err(e))?;
        let snap = engine
            .get_message(GROUP, KEY_SNAP)
            .map_err(|e| self.err(e))?;
        let mut m = Meta::default();
        (m.hard_state, m.snapshot) = (hs.unwrap_or_default(), snap.unwrap_or_default());
        if let Some(v) = engine.get(GROUP, KEY_LOG) {
            [m.log.ti, m.log.tt, m.log.last] = from_u64s(&v).ok_or_else(|| bad("log"))?;
        }
        if let Some(v) = engine.get(GROUP, KEY_BOOTS) {
            [m.boots] = from_u64s(&v).ok_or_else(|| bad("boot counter"))?;
        }
        m.log.last_term = self.verify_log(&m)?;
        Ok(m)
    }

    /// Checks the metadata against the log and reads every entry back once
    /// (raft-engine checks checksums only on reads); returns the last term.
    fn verify_log(&self, m: &Meta) -> Result<u64, StoreError> {
        let Span { ti, tt, last, .. } = m.log;
        let held = self
            .engine
            .first_index(GROUP)
            .zip(self.engine.last_index(GROUP));
        let snap = m.snapshot.get_metadata().index;
        if held != (last > ti).then_some((ti + 1, last)) || snap < ti || snap > last {
            let why = format!(
                "log {held:?}, metadata {}..={last}, snapshot {snap}",
                ti + 1
            );
            return Err(corrupt(&self.path, why));
        }
        let (mut next, mut term) = (ti + 1, tt);
        while next <= last {
            let mut chunk = Vec::new();
            let max = Some(8 << 20);
            let read =
                self.engine
                    .fetch_entries_to::<EntryExt>(GROUP, next, last + 1, max, &mut chunk);
            let mut prev = term;
            let mut wrong = chunk.iter().zip(next..).filter(|&(e, i)| {
                let bad = e.index != i || e.term < prev;
                prev = e.term;
                bad
            });
            let why = match (read, wrong.next()) {
                (Err(e), _) => e.to_string(),
                (Ok(0), _) => "missing".into(),
                (Ok(_), Some((e, _))) => format!("index {} term {}", e.index, e.term),
                (Ok(n), None) => {
                    (next, term) = (next + n as u64, prev);
                    continue;
                }
            };
            let why = format!("entries {next}..={last}: {why}");
            let located = files::locate(Path::new(&self.path), &why);
            return Err(located.unwrap_or_else(|| corrupt(&self.path, why)));
        }
        Ok(term)
    }
}

impl DurableStorage {
    /// Opens (creating it if needed) the store in `dir` for member `node_id`
    /// of cluster `cluster_id`.
    ///
    /// # Errors
    /// [`StoreError::ForeignData`] if the directory belongs to another
    /// cluster or member; [`StoreError::Io`] if it cannot be read, created
    /// or locked (another process or a live clone holds it);
    /// [`StoreError::Corrupt`] if what is there does not decode or is
    /// inconsistent. Nothing is ever reset silently.
    pub fn open(dir: impl AsRef<Path>, cluster_id: u64, node_id: u64) -> Result<Self, StoreError> {
        let dir = dir.as_ref();
        let path = dir.to_str().ok_or_else(|| io_err(dir, "not UTF-8"))?;
        fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
        let tails = precheck(dir)?;
        let opened = open_engine(path).and_then(|engine| {
            tails.iter().try_for_each(check_tail)?;
            let (path, meta) = (path.to_owned(), RwLock::default());
            let snapshot_requested = AtomicBool::new(false);
            let engine = Arc::new(engine);
            let purger = Purger::start(&engine, &path);
            let shared = Shared {
                engine,
                path,
                sync_observer: RwLock::new(None),
                meta,
                snapshot_requested,
                purger,
            };
            *shared.meta.write() = shared.load(cluster_id, node_id)?;
            Ok(Self {
                shared: Arc::new(shared),
            })
        });
        // Unless the engine did not start (it is locked: not ours to touch).
        if let Err(StoreError::Corrupt { .. } | StoreError::ForeignData { .. }) = opened {
            restore(&tails)?;
        }
        opened
    }
}

impl LogStore for DurableStorage {
    fn is_initialized(&self) -> bool {
        let m = self.shared.meta.read();
        !m.snapshot.get_metadata().get_conf_state().voters.is_empty()
    }

    fn latest_snapshot(&self) -> Snapshot {
        self.shared.meta.read().snapshot.clone()
    }

    fn next_boot(&self) -> Result<u64, StoreError> {
        let mut m = self.shared.meta.write();
        let boots = u64s(&[m.boots + 1]);
        self.shared
            .write(true, |b| b.put(GROUP, KEY_BOOTS.to_vec(), boots))?;
        m.boots += 1;
        Ok(m.boots)
    }

    fn persist(&self, w: LogWrite<'_>) -> Result<(), StoreError> {
        let s = &*self.shared;
        let mut m = s.meta.write();
        let snap = w.snapshot.map(|snap| (snap, snap.get_metadata()));
        // Validate before writing anything: raft-engine panics on a hole.
        let (floor, top) = snap.map_or((m.log.ti, m.log.last), |(_, s)| (s.index, s.index));
        let mut expect: Option<u64> = None;
        for e in w.entries {
            if !expect.map_or(e.index > floor && e.index <= top + 1, |x| e.index == x) {
                let (index, first, last) = (e.index, floor + 1, expect.map_or(top, |x| x - 1));
                return Err(StoreError::NotContiguous { index, first, last });
            }
            expect = Some(e.index + 1);
        }
        let (mut log, mut hs) = (m.log, None);
        if let Some((_, sm)) = snap {
            (log.ti, log.tt, log.last, log.last_term) = (sm.index, sm.term, sm.index, sm.term);
            let mut h = m.hard_state.clone();
            (h.term, h.commit) = (h.term.max(sm.term), h.commit.max(sm.index));
            hs = Some(h);
        }
        if let Some(e) = w.entries.last() {
            (log.last, log.last_term) = (e.index, e.term);
        }
        if let Some(h) = w.hard_state {
            let snap_index = snap.map_or(m.snapshot.get_metadata(), |(_, sm)| sm).index;
            let mut h = h.clone();
            h.commit = h.commit.max(snap_index);
            hs = Some(h);
        }
        // A snapshot drops every entry held: the log restarts after it.
        let held = s.engine.last_index(GROUP).unwrap_or(0).max(m.log.last);
        s.write(w.sync, |b| {
            if let Some((snap, sm)) = snap {
                b.put_message(GROUP, KEY_SNAP.to_vec(), snap)?;
                let index = held.max(sm.index) + 1;
                b.add_command(GROUP, Command::Compact { index });
            }
            b.add_entries::<EntryExt>(GROUP, w.entries)?;
            if let Some(h) = &hs {
                b.put_message(GROUP, KEY_HS.to_vec(), h)?;
            }
            if snap.is_some() || !w.entries.is_empty() {
                b.put(GROUP, KEY_LOG.to_vec(), u64s(&[log.ti, log.tt, log.last]))?;
            }
            Ok(())
        })?;
        // Published only now that the engine holds it.
        m.log = log;
        if let Some(h) = hs {
            m.hard_state = h;
        }
        if let Some((snap, _)) = snap {
            m.snapshot = snap.clone();
        }
        Ok(())
    }

    fn set_commit(&self, commit: u64) -> Result<(), StoreError> {
        let mut m = self.shared.meta.write();
        if m.hard_state.commit != commit {
            let mut hs = m.hard_state.clone();
            hs.commit = commit;
            self.shared
                .write(false, |b| b.put_message(GROUP, KEY_HS.to_vec(), &hs))?;
            m.hard_state = hs;
        }
        Ok(())
    }

    fn create_snapshot(
        &self,
        index: u64,
        conf_state: ConfState,
        data: Vec<u8>,
        keep: u64,
    ) -> Result<(), StoreError> {
        let s = &*self.shared;
        let mut m = s.meta.write();
        let missing = |what: String| corrupt(&s.path, format!("{what} is not in the log"));
        let term = s.read_term(&m, index);
        let term = term.map_err(|_| missing(format!("snapshot index {index}")))?;
        let data = data.into();
        let mut snap = Snapshot {
            data,
            ..Default::default()
        };
        let meta = snap.mut_metadata();
        (meta.index, meta.term) = (index, term);
        meta.set_conf_state(conf_state);
        let mut hs = m.hard_state.clone();
        hs.commit = hs.commit.max(index);
        let (mut log, compact_to) = (m.log, index.saturating_sub(keep));
        if compact_to > log.ti {
            let term = s.read_term(&m, compact_to);
            log.tt = term.map_err(|_| missing(format!("compaction point {compact_to}")))?;
            log.ti = compact_to;
        }
        let compacted = log.ti != m.log.ti;
        s.write(true, |b| {
            b.put_message(GROUP, KEY_SNAP.to_vec(), &snap)?;
            b.put_message(GROUP, KEY_HS.to_vec(), &hs)?;
            if compacted {
                b.add_command(GROUP, Command::Compact { index: log.ti + 1 });
                b.put(GROUP, KEY_LOG.to_vec(), u64s(&[log.ti, log.tt, log.last]))?;
            }
            Ok(())
        })?;
        (m.snapshot, m.hard_state, m.log) = (snap, hs, log);
        drop(m);
        if compacted {
            // The compaction is durable: the files it emptied can go.
            s.purger.request(&s.engine, &s.path)?;
        }
        Ok(())
    }

    fn take_snapshot_request(&self) -> bool {
        self.shared.snapshot_requested.swap(false, Ordering::AcqRel)
    }

    fn observe_syncs(&self, observer: SyncObserver) {
        *self.shared.sync_observer.write() = Some(observer);
    }

    fn reset(&self, marker: &Snapshot) -> Result<(), StoreError> {
        let s = &*self.shared;
        let mut m = s.meta.write();
        let meta = marker.get_metadata();
        let held = s.engine.last_index(GROUP).unwrap_or(0).max(m.log.last);
        let log = Span {
            ti: meta.index,
            tt: meta.term,
            last: meta.index,
            last_term: meta.term,
        };
        let hs = HardState::default();
        s.write(true, |b| {
            b.put_message(GROUP, KEY_SNAP.to_vec(), marker)?;
            b.add_command(GROUP, Command::Compact { index: held + 1 });
            b.put_message(GROUP, KEY_HS.to_vec(), &hs)?;
            b.put(GROUP, KEY_LOG.to_vec(), u64s(&[log.ti, log.tt, log.last]))
        })?;
        (m.log, m.hard_state, m.snapshot) = (log, hs, marker.clone());
        Ok(())
    }
}

impl raft::Storage for DurableStorage {
    fn initial_state(&self) -> raft::Result<RaftState> {
        let m = self.shared.meta.read();
        let conf_state = m.snapshot.get_metadata().get_conf_state().clone();
        let hard_state = m.hard_state.clone();
        Ok(RaftState {
            hard_state,
            conf_state,
        })
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        let (s, m) = (&*self.shared, self.shared.meta.read());
        if low <= m.log.ti {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > m.log.last + 1 {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        // raft-engine limits the size as raft's `limit_size` does.
        let max = max_size
            .into()
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX));
        let mut ents = Vec::with_capacity(high.saturating_sub(low) as usize);
        let read = s
            .engine
            .fetch_entries_to::<EntryExt>(GROUP, low, high, max, &mut ents);
        read.map_err(|e| other(s.err(e)))?;
        if ents.is_empty() && low < high {
            let why = format!("entries {low}..{high} are missing");
            return Err(other(corrupt(&s.path, why)));
        }
        Ok(ents)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        self.shared.read_term(&self.shared.meta.read(), idx)
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.shared.meta.read().log.ti + 1)
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.shared.meta.read().log.last)
    }

    /// The stored snapshot, unless it is older than `request_index` or does
    /// not name `to`: then a fresh one is requested from the node (see
    /// [`LogStore::take_snapshot_request`]) and raft retries.
    fn snapshot(&self, request_index: u64, to: u64) -> raft::Result<Snapshot> {
        let m = self.shared.meta.read();
        if serves_snapshot(&m.snapshot, request_index, to) {
            return Ok(m.snapshot.clone());
        }
        self.shared
            .snapshot_requested
            .store(true, Ordering::Release);
        let e = StorageError::SnapshotTemporarilyUnavailable;
        Err(raft::Error::Store(e))
    }
}

#[cfg(test)]
#[path = "durable_tests.rs"]
mod tests;
