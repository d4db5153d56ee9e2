//! Snapshots of the state machine: taking one (then compacting the log)
//! and installing the leader's, on the node thread or, when the driver
//! [offloads](Node::offload_snapshots) them, as [`SnapshotJob`]s it runs
//! on another thread.
//!
//! # Taking a snapshot in the background
//!
//! When one is due, the node captures, on its thread and between two
//! applies, everything the snapshot holds: the state machine's view
//! ([`StateMachine::snapshot_handle`], cheap by contract) and the
//! library's own state (members, de-duplication table, epoch lineage,
//! encoded at once: small), with the applied index and configuration.
//! The job reads the view into one buffer on the worker; the node keeps
//! serving (ticks, heartbeats, appends, proposals) meanwhile. When the
//! result comes back ([`Node::snapshot_done`]) the node stores it at the
//! captured index and compacts the log behind it, unless a newer snapshot
//! (received or taken) or a new epoch superseded it: then it is dropped.
//! One take runs at a time; a failed one is logged and retried at the next
//! due point (nothing is compacted meanwhile).
//!
//! # Installing a received snapshot in the background
//!
//! raft-rs requires the snapshot in a `Ready` to be persisted in that
//! `Ready`: the node does so, and takes on the library's state from it
//! (members, configuration, de-duplication, lineage) at once, so raft's
//! view and the library's agree from then on. Only the state machine's
//! part is left to a job, when the state machine has a
//! [decoder](StateMachine::snapshot_decoder): the worker builds the new
//! state from the bytes (a slice of the persisted snapshot's buffer, not
//! a copy: the node thread never copies a whole state to read it) and the
//! node thread swaps it in ([`StateMachine::install`]). Until then the state machine still holds
//! the state at the node's *applied* index, which stays where it was:
//!
//! - entries that commit meanwhile (all above the snapshot's index) are
//!   held back and applied, in order, right after the install;
//! - reads wait (they are answered once the applied index reaches them);
//! - proposals the snapshot shows applied are reported once it is
//!   installed;
//! - no snapshot is taken.
//!
//! A second snapshot received meanwhile supersedes the first (its index
//! is above every held entry: raft refuses a snapshot below its commit
//! index). A crash meanwhile is safe: the restart rebuilds the state
//! machine from the persisted snapshot, as any restart does. A snapshot
//! the state machine cannot load stops the node with
//! [`Fatal::Restore`]; it is persisted by then, so a restart stops the
//! same way (re-seed the member as a replacement). Without a decoder, or
//! without offloading, the state machine restores on the node thread
//! before anything is persisted (a snapshot it cannot load is then never
//! persisted).

use std::collections::VecDeque;

use prost::bytes::Bytes;

use raft::eraftpb::{ConfState, Entry, Snapshot};

use super::ready::{keep_for, snapshot_due, LogWeight};
use super::Node;
use crate::error::Fatal;
use crate::ids::EpochId;
use crate::state_machine::{
    Decoded, RestoreError, SnapshotDecoder, SnapshotError, SnapshotSource, StateMachine,
};
use crate::storage::LogStore;
use crate::wire::payload::{encode, encode_members, SnapshotData, TopologyRecord};

/// The protobuf key of `SnapshotData.user` (field 1, length-delimited).
const USER_KEY: u8 = 0x0a;
/// A varint's longest encoding: the user bytes' length is written in it,
/// padded, once they are all read.
const VARINT_MAX: usize = 10;

/// Work on a snapshot for the driver to run off the node thread (see
/// [`Node::offload_snapshots`]): [`run`](Self::run) it anywhere, then
/// hand its result to [`Node::snapshot_done`].
pub struct SnapshotJob {
    id: u64,
    work: Work,
}

enum Work {
    /// Read the state machine's view; `header` is the library's part,
    /// already encoded.
    Take {
        source: Box<dyn SnapshotSource>,
        header: Vec<u8>,
    },
    /// Build the state machine's new state from `user` (a slice of the
    /// persisted snapshot's buffer: not a copy).
    Restore {
        user: Bytes,
        decoder: SnapshotDecoder,
    },
}

impl std::fmt::Debug for SnapshotJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotJob")
            .field("id", &self.id)
            .field("restore", &self.is_restore())
            .field("size_hint", &self.size_hint())
            .finish()
    }
}

impl SnapshotJob {
    /// Whether it installs a received snapshot (else it takes one).
    pub fn is_restore(&self) -> bool {
        matches!(self.work, Work::Restore { .. })
    }

    /// About how many bytes it reads or writes (the simulator models the
    /// time it takes from this).
    pub fn size_hint(&self) -> usize {
        match &self.work {
            Work::Take { source, header } => source.size_hint() + header.len(),
            Work::Restore { user, .. } => user.len(),
        }
    }

    /// Does the work (on the calling thread).
    pub fn run(self) -> SnapshotDone {
        let result = match self.work {
            Work::Take { mut source, header } => Outcome::Taken(read_all(&mut *source, &header)),
            Work::Restore { user, decoder } => Outcome::Restored(decoder(&user)),
        };
        SnapshotDone {
            id: self.id,
            result,
        }
    }
}

/// A [`SnapshotJob`]'s result, for [`Node::snapshot_done`].
pub struct SnapshotDone {
    id: u64,
    result: Outcome,
}

enum Outcome {
    Taken(Result<Vec<u8>, SnapshotError>),
    Restored(Result<Decoded, RestoreError>),
}

impl std::fmt::Debug for SnapshotDone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ok = match &self.result {
            Outcome::Taken(r) => r.is_ok(),
            Outcome::Restored(r) => r.is_ok(),
        };
        f.debug_struct("SnapshotDone")
            .field("id", &self.id)
            .field("ok", &ok)
            .finish()
    }
}

/// The snapshot payload: the user's bytes as field 1, read straight into
/// the one buffer (its length, unknown until read, goes in a padded
/// varint reserved before them), then the library's fields. Protobuf
/// takes fields in any order and varints padded to ten bytes, so this
/// decodes as the [`SnapshotData`] it is.
pub(super) fn read_all(
    source: &mut dyn SnapshotSource,
    header: &[u8],
) -> Result<Vec<u8>, SnapshotError> {
    let mut out = Vec::with_capacity(1 + VARINT_MAX + source.size_hint() + header.len());
    out.push(USER_KEY);
    out.extend_from_slice(&[0; VARINT_MAX]);
    let start = out.len();
    while source.read_chunk(&mut out)? {}
    let len = (out.len() - start) as u64;
    for (i, b) in out[1..start].iter_mut().enumerate() {
        let bits = (len >> (7 * i)) as u8 & 0x7f;
        *b = if i + 1 < VARINT_MAX {
            bits | 0x80
        } else {
            bits
        };
    }
    out.extend_from_slice(header);
    Ok(out)
}

/// A take under way.
struct Taking {
    id: u64,
    index: u64,
    conf: ConfState,
    epoch: EpochId,
}

/// An install under way.
struct Restoring {
    id: u64,
    index: u64,
    /// Entries committed since, to apply after the install.
    held: Vec<Entry>,
}

/// What a node's snapshots are doing.
#[derive(Default)]
pub(super) struct Snapshots {
    /// Whether jobs go to the driver (else they run inline).
    offload: bool,
    next_id: u64,
    jobs: VecDeque<SnapshotJob>,
    taking: Option<Taking>,
    restoring: Option<Restoring>,
    /// Size of the latest snapshot: taken here, installed from the
    /// leader, or stored before a restart.
    pub(super) last_bytes: u64,
}

/// A received snapshot, decoded: the payload and, when the state machine
/// is installed off the node thread, its decoder.
pub(super) type Received = (SnapshotData, Option<SnapshotDecoder>);

/// Snapshot jobs: the driver's side (behind [`Node::offload_snapshots`]
/// and its siblings).
impl<M: StateMachine, S: LogStore> Node<M, S> {
    pub(super) fn set_offload(&mut self) {
        self.snaps.offload = true;
    }

    pub(super) fn next_snapshot_job(&mut self) -> Option<SnapshotJob> {
        self.process();
        self.snaps.jobs.pop_front()
    }

    pub(super) fn take_snapshot_result(&mut self, done: SnapshotDone) {
        if self.fatal.is_some() {
            return;
        }
        match done.result {
            Outcome::Taken(r) => self.taken(done.id, r),
            Outcome::Restored(r) => self.restored(done.id, r),
        }
        self.dirty = true;
    }

    pub(super) fn restoring(&self) -> bool {
        self.snaps.restoring.is_some()
    }

    /// Forgets an install under way (raft restarts over a reset or forked
    /// log): the state machine keeps its state until the next snapshot.
    /// A take under way is dropped when it completes (its epoch is gone).
    pub(super) fn forget_install(&mut self) {
        self.snaps.restoring = None;
    }

    fn next_job_id(&mut self) -> u64 {
        self.snaps.next_id += 1;
        self.snaps.next_id
    }

    /// Runs `job` now, or queues it for the driver.
    fn dispatch(&mut self, job: SnapshotJob) {
        if self.snaps.offload {
            self.snaps.jobs.push_back(job);
        } else {
            let done = job.run();
            self.take_snapshot_result(done);
        }
    }
}

/// Taking snapshots.
impl<M: StateMachine, S: LogStore> Node<M, S> {
    /// Snapshots the state machine and compacts the log every
    /// `snapshot_every` entries once the log held weighs as much as the
    /// last snapshot (see [`snapshot_due`]), or when raft asked for a
    /// fresh one.
    pub(super) fn maybe_snapshot(&mut self) {
        if self.fatal.is_some() || self.snaps.taking.is_some() || self.snaps.restoring.is_some() {
            return; // a raft request stays set until then
        }
        let requested = self.storage.take_snapshot_request() | self.retention_due();
        if !snapshot_due(
            self.applied,
            self.snapshot_index,
            self.cfg.snapshot_every,
            requested,
            LogWeight {
                // Brought up to date by `retention_due` above.
                held_bytes: self.retained.bytes(),
                snapshot_bytes: self.snaps.last_bytes,
            },
        ) {
            return;
        }
        let header = SnapshotData {
            user: Bytes::new(),
            members: encode_members(&self.membership.members),
            dedup: self.proposals.dedup.to_records(),
            epochs: crate::wire::payload::encode_lineage(&self.ep.lineage),
            reconciled: crate::wire::payload::encode_reconciled(&self.ep.reconciled),
            covered: crate::wire::payload::encode_reconciled(&self.ep.covered),
            topology: (self.cfg.topology.version() > 0)
                .then(|| TopologyRecord::from(&*self.cfg.topology)),
            replication: self.replication_record(),
        };
        let id = self.next_job_id();
        self.snaps.taking = Some(Taking {
            id,
            index: self.applied,
            conf: self.membership.conf.clone(),
            epoch: self.epoch(),
        });
        let work = Work::Take {
            source: self.sm.snapshot_handle(),
            header: encode(&header),
        };
        self.dispatch(SnapshotJob { id, work });
    }

    fn taken(&mut self, id: u64, result: Result<Vec<u8>, SnapshotError>) {
        let Some(t) = self.snaps.taking.take_if(|t| t.id == id) else {
            return;
        };
        if t.epoch != self.epoch() || t.index <= self.snapshot_index {
            slog::debug!(self.logger, "snapshot superseded before it was stored"; "index" => t.index);
            return;
        }
        let data = match result {
            Ok(data) => data,
            Err(e) => {
                slog::warn!(self.logger, "snapshot not taken; retried at the next due point";
                    "index" => t.index, "reason" => %e);
                return;
            }
        };
        let (floor, old_first) = (
            self.compaction_floor(),
            self.raw.raft.raft_log.first_index(),
        );
        let keep = keep_for(t.index, self.cfg.keep_entries, self.compaction_point());
        self.snaps.last_bytes = data.len() as u64;
        if let Err(e) = self.storage.create_snapshot(t.index, t.conf, data, keep) {
            return self.fail(Fatal::Storage(e));
        }
        self.snapshot_index = t.index;
        self.note_compacted(old_first, floor);
    }
}

/// Installing received snapshots.
impl<M: StateMachine, S: LogStore> Node<M, S> {
    /// Decodes a leader's snapshot and, unless it is installed off the
    /// node thread, loads it into the state machine. `None` (and the node
    /// stops) when either fails.
    pub(super) fn restore_snapshot(&mut self, snap: &Snapshot) -> Option<Received> {
        let data = match SnapshotData::decode_shared(&snap.data) {
            Ok(d) => d,
            Err(e) => {
                self.fail(Fatal::CorruptSnapshot(e));
                return None;
            }
        };
        if self.snaps.offload {
            if let Some(decoder) = self.sm.snapshot_decoder() {
                return Some((data, Some(decoder)));
            }
        }
        if let Err(e) = self.sm.restore(&data.user) {
            self.fail(Fatal::Restore(e));
            return None;
        }
        Some((data, None))
    }

    /// Takes on the library's state from a persisted snapshot, and has the
    /// state machine's part installed off the node thread when it has a
    /// decoder.
    pub(super) fn adopt_snapshot(&mut self, snap: &Snapshot, received: Received) {
        let (mut data, decoder) = received;
        let user = std::mem::take(&mut data.user); // shares `snap.data`
        let applied = self.applied;
        self.unpack(super::start::Unpacked::of(snap, &data));
        self.membership.removed = !self.is_in_conf(self.id);
        self.ep.joining = false;
        let Some(decoder) = decoder else {
            self.sm.note_epoch(self.epoch());
            self.resolve_from_dedup();
            return;
        };
        // The state machine is still at `applied` until the install.
        let index = self.applied;
        self.applied = applied;
        let id = self.next_job_id();
        // Replaces (and so drops) an install under way, and what it held:
        // all at or below this snapshot's index.
        self.snaps.restoring = Some(Restoring {
            id,
            index,
            held: Vec::new(),
        });
        let work = Work::Restore { user, decoder };
        self.dispatch(SnapshotJob { id, work });
    }

    /// Committed entries to apply now: none while an install is under way
    /// (they are held for after it).
    pub(super) fn hold_while_restoring(&mut self, entries: Vec<Entry>) -> Vec<Entry> {
        match &mut self.snaps.restoring {
            Some(r) => {
                r.held.extend(entries);
                Vec::new()
            }
            None => entries,
        }
    }

    fn restored(&mut self, id: u64, result: Result<Decoded, RestoreError>) {
        let Some(r) = self.snaps.restoring.take_if(|r| r.id == id) else {
            return;
        };
        if let Err(e) = result.and_then(|d| self.sm.install(d)) {
            return self.fail(Fatal::Restore(e));
        }
        self.applied = r.index;
        self.sm.note_epoch(self.epoch());
        self.resolve_from_dedup();
        self.apply_entries(r.held);
    }

    /// Finishes an install under way on the node thread, now (a fork must
    /// start from the state at the applied index): the state machine
    /// restores the stored snapshot itself, and the job's result, when it
    /// comes, is dropped.
    pub(super) fn finish_install_now(&mut self) -> Result<(), Fatal> {
        let Some(r) = self.snaps.restoring.take() else {
            return Ok(());
        };
        let snap = self.storage.latest_snapshot();
        let data = SnapshotData::decode_shared(&snap.data).map_err(Fatal::CorruptSnapshot)?;
        self.sm.restore(&data.user)?;
        self.applied = r.index;
        self.sm.note_epoch(self.epoch());
        self.resolve_from_dedup();
        self.apply_entries(r.held);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state_machine::BytesSource;

    /// A source giving its bytes in chunks of `n`.
    struct Chunks(Vec<u8>, usize);

    impl SnapshotSource for Chunks {
        fn read_chunk(&mut self, out: &mut Vec<u8>) -> Result<bool, SnapshotError> {
            let n = self.1.min(self.0.len());
            out.extend(self.0.drain(..n));
            Ok(!self.0.is_empty())
        }
    }

    fn header() -> SnapshotData {
        SnapshotData {
            dedup: vec![crate::wire::payload::DedupRecord::default(); 2],
            ..SnapshotData::default()
        }
    }

    /// The padded length and the fields after the user bytes decode as
    /// the payload they stand for, at lengths that need one to ten varint
    /// bytes in their shortest form.
    #[test]
    fn streamed_payload_decodes() {
        for len in [0usize, 1, 127, 128, 16_383, 16_384, 300_000] {
            let user: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let mut want = header();
            let bytes = read_all(&mut Chunks(user.clone(), 7_000), &encode(&want)).unwrap();
            want.user = user.into();
            assert_eq!(SnapshotData::decode_bytes(&bytes).unwrap(), want, "{len}");
        }
        let mut one = BytesSource::new(b"abc".to_vec());
        let bytes = read_all(&mut one, &[]).unwrap();
        assert_eq!(
            SnapshotData::decode_bytes(&bytes).unwrap().user,
            &b"abc"[..]
        );
    }

    /// A stored or received snapshot's state machine bytes are read in
    /// place: a slice of the snapshot's buffer, not a copy of it.
    #[test]
    fn stored_payload_decodes_without_a_copy() {
        let user: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();
        let stored =
            Bytes::from(read_all(&mut Chunks(user.clone(), 1 << 16), &encode(&header())).unwrap());
        let data = SnapshotData::decode_shared(&stored).unwrap();
        assert_eq!(data.user, user);
        let range = stored.as_ptr_range();
        assert!(
            range.contains(&data.user.as_ptr()),
            "the user bytes were copied"
        );
        assert_eq!(data.dedup, header().dedup);
        // A slice of a plain buffer is copied (as before): `decode_bytes`.
        let copied = SnapshotData::decode_bytes(&stored).unwrap();
        assert!(!range.contains(&copied.user.as_ptr()));
    }

    /// A source's error abandons the snapshot.
    #[test]
    fn source_errors_are_returned() {
        struct Broken;
        impl SnapshotSource for Broken {
            fn read_chunk(&mut self, _: &mut Vec<u8>) -> Result<bool, SnapshotError> {
                Err(SnapshotError {
                    reason: "disk gone".into(),
                })
            }
        }
        let e = read_all(&mut Broken, &[]).unwrap_err();
        assert_eq!(e.reason, "disk gone");
    }
}
