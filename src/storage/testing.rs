//! A conformance suite for [`LogStore`] implementations, yours included:
//! call [`conformance`] from a test. Each check opens a fresh store, writes
//! through the trait, reopens it where durability matters, and panics with
//! a message naming the check that failed.
//!
//! ```
//! use std::collections::BTreeMap;
//! use survivable_core::storage::{testing, MemStorage};
//!
//! // MemStorage "reopens" by sharing the same memory.
//! let mut stores: BTreeMap<u32, MemStorage> = BTreeMap::new();
//! testing::conformance(|n| stores.entry(n).or_default().clone());
//! ```

use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft::{GetEntriesContext, StorageError};

use super::{LogStore, LogWrite, StoreError};

fn entry(index: u64, term: u64) -> Entry {
    Entry {
        index,
        term,
        data: format!("e{index}").into_bytes().into(),
        ..Default::default()
    }
}

fn entries(range: std::ops::RangeInclusive<u64>, term: u64) -> Vec<Entry> {
    range.map(|i| entry(i, term)).collect()
}

fn snapshot(index: u64, term: u64, voters: &[u64]) -> Snapshot {
    let mut s = Snapshot {
        data: format!("state@{index}").into_bytes().into(),
        ..Default::default()
    };
    s.mut_metadata().index = index;
    s.mut_metadata().term = term;
    s.mut_metadata().mut_conf_state().voters = voters.to_vec();
    s
}

fn hard_state(term: u64, vote: u64, commit: u64) -> HardState {
    HardState {
        term,
        vote,
        commit,
        ..Default::default()
    }
}

fn write<S: LogStore>(s: &S, snap: Option<&Snapshot>, ents: &[Entry], hs: Option<&HardState>) {
    s.persist(LogWrite {
        snapshot: snap,
        entries: ents,
        hard_state: hs,
        sync: true,
    })
    .expect("persist");
}

fn read<S: LogStore>(s: &S, lo: u64, hi: u64) -> raft::Result<Vec<Entry>> {
    s.entries(lo, hi, None, GetEntriesContext::empty(false))
}

fn bootstrapped<S: LogStore>(s: &S) {
    write(s, Some(&snapshot(1, 1, &[1, 2, 3])), &[], None);
}

/// Runs every check. `open(n)` opens store number `n`: a fresh, empty
/// store the first time, the same store (as persisted) on later calls.
///
/// # Panics
/// On the first check the store fails, naming it.
pub fn conformance<S: LogStore>(mut open: impl FnMut(u32) -> S) {
    starts_empty(open(1));
    bootstrap_snapshot_initializes(&mut open, 2);
    append_overwrites_a_conflicting_tail(open(3));
    a_hole_is_refused_and_changes_nothing(open(4));
    hard_state_and_log_survive_a_reopen(&mut open, 5);
    snapshots_compact_and_keep_a_tail(&mut open, 6);
    boot_counts_survive_a_reopen(&mut open, 7);
    an_installed_snapshot_replaces_the_log(&mut open, 8);
}

fn starts_empty<S: LogStore>(s: S) {
    assert!(
        !s.is_initialized(),
        "starts_empty: a new store is initialized"
    );
    assert_eq!(s.first_index().unwrap(), 1, "starts_empty: first_index");
    assert_eq!(s.last_index().unwrap(), 0, "starts_empty: last_index");
    let st = s.initial_state().unwrap();
    assert_eq!(
        st.hard_state,
        HardState::default(),
        "starts_empty: hard state"
    );
    assert_eq!(
        st.conf_state,
        ConfState::default(),
        "starts_empty: conf state"
    );
}

fn bootstrap_snapshot_initializes<S: LogStore>(open: &mut impl FnMut(u32) -> S, n: u32) {
    let s = open(n);
    bootstrapped(&s);
    drop(s);
    let s = open(n);
    let what = "bootstrap_snapshot_initializes";
    assert!(s.is_initialized(), "{what}: not initialized after reopen");
    assert_eq!(s.first_index().unwrap(), 2, "{what}: first_index");
    assert_eq!(s.last_index().unwrap(), 1, "{what}: last_index");
    assert_eq!(s.term(1).unwrap(), 1, "{what}: term of the snapshot index");
    let st = s.initial_state().unwrap();
    assert_eq!(st.conf_state.voters, vec![1, 2, 3], "{what}: conf state");
    assert!(
        st.hard_state.commit >= 1,
        "{what}: commit below the snapshot"
    );
    assert!(st.hard_state.term >= 1, "{what}: term below the snapshot");
    assert_eq!(
        s.latest_snapshot().get_metadata().index,
        1,
        "{what}: snapshot"
    );
}

fn append_overwrites_a_conflicting_tail<S: LogStore>(s: S) {
    let what = "append_overwrites_a_conflicting_tail";
    bootstrapped(&s);
    write(&s, None, &entries(2..=6, 1), None);
    write(&s, None, &entries(4..=4, 2), None);
    assert_eq!(s.last_index().unwrap(), 4, "{what}: the old tail survived");
    assert_eq!(s.term(4).unwrap(), 2, "{what}: term of the new entry");
    assert_eq!(s.term(3).unwrap(), 1, "{what}: term before the conflict");
    let got = read(&s, 2, 5).unwrap();
    assert_eq!(got.len(), 3, "{what}: entries(2, 5)");
    assert_eq!(&got[2].data[..], b"e4", "{what}: data");
    assert!(
        matches!(s.term(0), Err(raft::Error::Store(StorageError::Compacted))),
        "{what}: term below the first index must be Compacted"
    );
    assert!(
        matches!(
            s.term(9),
            Err(raft::Error::Store(StorageError::Unavailable))
        ),
        "{what}: term past the last index must be Unavailable"
    );
    assert!(read(&s, 1, 3).is_err(), "{what}: entries below first_index");
}

fn a_hole_is_refused_and_changes_nothing<S: LogStore>(s: S) {
    let what = "a_hole_is_refused_and_changes_nothing";
    bootstrapped(&s);
    write(&s, None, &entries(2..=3, 1), None);
    let hs = hard_state(9, 2, 3);
    let err = s
        .persist(LogWrite {
            snapshot: None,
            entries: &entries(5..=6, 1),
            hard_state: Some(&hs),
            sync: true,
        })
        .expect_err("a hole must be refused");
    assert!(
        matches!(err, StoreError::NotContiguous { index: 5, .. }),
        "{what}: {err:?}"
    );
    assert_eq!(s.last_index().unwrap(), 3, "{what}: entries were written");
    assert_ne!(
        s.initial_state().unwrap().hard_state.term,
        9,
        "{what}: the hard state was written"
    );
}

fn hard_state_and_log_survive_a_reopen<S: LogStore>(open: &mut impl FnMut(u32) -> S, n: u32) {
    let what = "hard_state_and_log_survive_a_reopen";
    let s = open(n);
    bootstrapped(&s);
    let hs = hard_state(4, 3, 5);
    write(&s, None, &entries(2..=7, 4), Some(&hs));
    s.set_commit(6).unwrap();
    drop(s);
    let s = open(n);
    let st = s.initial_state().unwrap();
    assert_eq!(
        (st.hard_state.term, st.hard_state.vote),
        (4, 3),
        "{what}: term and vote"
    );
    assert!(st.hard_state.commit >= 5, "{what}: commit went back");
    assert_eq!(s.last_index().unwrap(), 7, "{what}: last_index");
    assert_eq!(
        read(&s, 2, 8).unwrap(),
        entries(2..=7, 4),
        "{what}: entries"
    );
}

fn snapshots_compact_and_keep_a_tail<S: LogStore>(open: &mut impl FnMut(u32) -> S, n: u32) {
    let what = "snapshots_compact_and_keep_a_tail";
    let s = open(n);
    bootstrapped(&s);
    write(&s, None, &entries(2..=20, 1), None);
    let cs = ConfState {
        voters: vec![1, 2, 3],
        ..Default::default()
    };
    s.create_snapshot(15, cs, b"state".to_vec(), 5).unwrap();
    drop(s);
    let s = open(n);
    assert_eq!(s.first_index().unwrap(), 11, "{what}: first_index");
    assert_eq!(s.last_index().unwrap(), 20, "{what}: last_index");
    assert_eq!(
        s.term(10).unwrap(),
        1,
        "{what}: term of the compaction point"
    );
    let snap = s.latest_snapshot();
    assert_eq!(snap.get_metadata().index, 15, "{what}: snapshot index");
    assert_eq!(&snap.data[..], b"state", "{what}: snapshot data");
    assert_eq!(snap.get_metadata().get_conf_state().voters, vec![1, 2, 3]);
    assert!(
        s.initial_state().unwrap().hard_state.commit >= 15,
        "{what}: commit below the snapshot"
    );
    assert!(
        read(&s, 5, 12).is_err(),
        "{what}: compacted entries were served"
    );
    assert_eq!(read(&s, 11, 21).unwrap().len(), 10, "{what}: the tail");
    // The log goes on after the snapshot.
    write(&s, None, &entries(21..=22, 1), None);
    assert_eq!(
        s.last_index().unwrap(),
        22,
        "{what}: append after compaction"
    );
}

fn boot_counts_survive_a_reopen<S: LogStore>(open: &mut impl FnMut(u32) -> S, n: u32) {
    let what = "boot_counts_survive_a_reopen";
    let s = open(n);
    let a = s.next_boot().unwrap();
    let b = s.next_boot().unwrap();
    drop(s);
    let c = open(n).next_boot().unwrap();
    assert!(a < b && b < c, "{what}: {a}, {b}, {c} do not increase");
}

fn an_installed_snapshot_replaces_the_log<S: LogStore>(open: &mut impl FnMut(u32) -> S, n: u32) {
    let what = "an_installed_snapshot_replaces_the_log";
    let s = open(n);
    bootstrapped(&s);
    write(&s, None, &entries(2..=30, 1), None);
    // A leader's snapshot at 20 (term 3): the old log, tail included, goes.
    let snap = snapshot(20, 3, &[1, 2, 3, 4]);
    write(&s, Some(&snap), &entries(21..=22, 3), None);
    drop(s);
    let s = open(n);
    assert_eq!(s.first_index().unwrap(), 21, "{what}: first_index");
    assert_eq!(
        s.last_index().unwrap(),
        22,
        "{what}: the stale tail survived"
    );
    assert_eq!(s.term(20).unwrap(), 3, "{what}: term of the snapshot index");
    assert_eq!(s.term(22).unwrap(), 3, "{what}: term after the snapshot");
    let st = s.initial_state().unwrap();
    assert_eq!(st.conf_state.voters, vec![1, 2, 3, 4], "{what}: conf state");
    assert!(
        st.hard_state.commit >= 20 && st.hard_state.term >= 3,
        "{what}: hard state"
    );
}
