//! The purge off the writer's thread: a crash between the synced
//! compaction and the purge, and a drop while a purge waits.

use std::path::Path;
use std::time::{Duration, Instant};

use raft::eraftpb::{ConfState, Entry, Snapshot};
use raft::{GetEntriesContext, Storage};

use super::DurableStorage;
use crate::storage::{LogStore, LogWrite};

fn open(dir: &Path) -> DurableStorage {
    DurableStorage::open(dir, 7, 1).unwrap()
}

/// An entry with `pad` bytes that do not compress (raft-engine compresses
/// batches), so the log spans several files.
fn entry(index: u64, pad: usize) -> Entry {
    let mut x = index.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let data: Vec<u8> = (0..pad)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect();
    Entry {
        index,
        term: 1,
        data: data.into(),
        ..Default::default()
    }
}

/// raft-engine's append-queue files, oldest first.
fn log_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".raftlog"))
        .collect();
    v.sort();
    v
}

fn write<'a>(snapshot: Option<&'a Snapshot>, entries: &'a [Entry]) -> LogWrite<'a> {
    LogWrite {
        snapshot,
        entries,
        hard_state: None,
        sync: true,
    }
}

/// A store bootstrapped at index 1 holding entries 2..=`last` in several
/// files.
fn filled(dir: &Path, last: u64) -> DurableStorage {
    let s = open(dir);
    let mut snap = Snapshot::default();
    (snap.mut_metadata().index, snap.mut_metadata().term) = (1, 1);
    snap.mut_metadata().mut_conf_state().voters = vec![1];
    s.persist(write(Some(&snap), &[])).unwrap();
    for chunk in (2..=last).collect::<Vec<_>>().chunks(100) {
        let ents: Vec<Entry> = chunk.iter().map(|&i| entry(i, 4096)).collect();
        s.persist(write(None, &ents)).unwrap();
    }
    s
}

/// Checks a reopened store: the snapshot at `last`, entries after
/// `last - keep` read back whole.
fn check(s: &DurableStorage, last: u64, keep: u64) {
    assert_eq!(s.latest_snapshot().get_metadata().index, last);
    assert_eq!(s.latest_snapshot().data.as_ref(), b"state");
    assert_eq!(s.first_index().unwrap(), last - keep + 1);
    assert_eq!(s.last_index().unwrap(), last);
    let ents = s
        .entries(
            last - keep + 1,
            last + 1,
            None,
            GetEntriesContext::empty(false),
        )
        .unwrap();
    assert_eq!(
        ents,
        (last - keep + 1..=last)
            .map(|i| entry(i, 4096))
            .collect::<Vec<_>>()
    );
}

/// A crash after the snapshot and its compaction were synced but before
/// the purge thread deleted anything (held off here): the copy restarts
/// from the new snapshot and the kept entries. Then the purge runs, and
/// the store, dropped and reopened at once (the drop waited for the purge
/// thread, which released the directory), holds the same.
#[test]
fn a_crash_before_the_purge_restarts_from_the_synced_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, image) = (tmp.path().join("member"), tmp.path().join("crashed"));
    let (last, keep) = (3_000, 10);
    let s = filled(&dir, last);
    let before = log_files(&dir);
    assert!(before.len() >= 3, "{before:?}");
    let cs = ConfState {
        voters: vec![1],
        ..Default::default()
    };
    let held = s.shared.purger.running.lock();
    s.create_snapshot(last, cs, b"state".to_vec(), keep)
        .unwrap();
    std::fs::create_dir(&image).unwrap();
    for f in std::fs::read_dir(&dir).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), image.join(f.file_name())).unwrap();
    }
    assert_eq!(log_files(&image), before, "purged while held off");
    drop(held);
    check(&open(&image), last, keep);
    // A bound on a hang, not a measured time: the purge takes milliseconds.
    let started = Instant::now();
    while log_files(&dir).len() >= before.len() {
        assert!(started.elapsed() < Duration::from_secs(60), "never purged");
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(s);
    check(&open(&dir), last, keep);
}

/// Dropping the store while a purge is requested but held off waits for
/// it: reopening at once finds the directory unlocked and purged.
#[test]
fn dropping_the_store_waits_for_its_purge() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("member");
    let (last, keep) = (3_000, 10);
    let s = filled(&dir, last);
    let before = log_files(&dir).len();
    let cs = ConfState {
        voters: vec![1],
        ..Default::default()
    };
    let running = s.shared.purger.running.clone();
    let held = running.lock();
    s.create_snapshot(last, cs, b"state".to_vec(), keep)
        .unwrap();
    let dropper = std::thread::spawn(move || drop(s));
    std::thread::sleep(Duration::from_millis(20));
    drop(held);
    dropper.join().unwrap();
    let s = open(&dir);
    check(&s, last, keep);
    assert!(log_files(&dir).len() < before, "{:?}", log_files(&dir));
}
