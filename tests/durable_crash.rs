//! `DurableStorage` on disk: the conformance suite, refusal of foreign and
//! corrupt directories, and kill -9 crash rounds against a child process.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft::{GetEntriesContext, Storage};
use survivable_core::storage::{testing, DurableStorage, LogStore, LogWrite, StoreError};

const CLUSTER: u64 = 7;
const NODE: u64 = 1;
const CHILD_ENV: &str = "SURVIVABLE_DURABLE_CRASH_DIR";

fn open(dir: &Path) -> DurableStorage {
    DurableStorage::open(dir, CLUSTER, NODE)
        .unwrap_or_else(|e| panic!("open {}: {e}", dir.display()))
}

/// An entry whose data names its index and term, padded with `pad`
/// incompressible bytes (raft-engine compresses batches).
fn entry(index: u64, term: u64, pad: usize) -> Entry {
    let mut data = format!("{index}:{term}:").into_bytes();
    let mut seed = index.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    data.extend((0..pad).map(|_| (xorshift(&mut seed) >> 32) as u8));
    Entry {
        index,
        term,
        data: data.into(),
        ..Default::default()
    }
}

fn bootstrap(s: &DurableStorage) {
    let mut snap = Snapshot::default();
    snap.mut_metadata().index = 1;
    snap.mut_metadata().term = 1;
    snap.mut_metadata().mut_conf_state().voters = vec![NODE];
    persist(s, Some(&snap), &[], None, true);
}

fn persist(
    s: &DurableStorage,
    snap: Option<&Snapshot>,
    ents: &[Entry],
    hs: Option<&HardState>,
    sync: bool,
) {
    s.persist(LogWrite {
        snapshot: snap,
        entries: ents,
        hard_state: hs,
        sync,
    })
    .expect("persist");
}

fn all_entries(s: &DurableStorage) -> Vec<Entry> {
    let (lo, hi) = (s.first_index().unwrap(), s.last_index().unwrap() + 1);
    s.entries(lo, hi, None, GetEntriesContext::empty(false))
        .expect("entries")
}

/// A closed store in `dir` holding entries 2..=`last` (term 1, `pad`
/// bytes each), written in one synced batch.
fn written(dir: &Path, last: u64, pad: usize) {
    let s = open(dir);
    bootstrap(&s);
    let ents: Vec<Entry> = (2..=last).map(|i| entry(i, 1, pad)).collect();
    persist(&s, None, &ents, None, true);
}

/// The one log file of a small store.
fn only_log_file(dir: &Path) -> PathBuf {
    let files = log_files(dir);
    let [file] = &files[..] else {
        panic!("expected one log file, found {files:?}")
    };
    file.clone()
}

/// raft-engine's append-queue files in a store directory, oldest first.
fn log_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "raftlog"))
        .collect();
    v.sort();
    v
}

/// The bytes in a store's directory. The store's purge thread may delete
/// a file between the listing and its size: it then counts nothing.
fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.unwrap().metadata().ok())
        .map(|m| m.len())
        .sum()
}

/// `dir`'s size once the store's purge (on a thread of its own, after the
/// write that compacted the log) has brought it below `bound`, or after
/// 10 s if it never does: what the store keeps, not the copies it is
/// about to delete.
fn settled_size(dir: &Path, bound: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut size = dir_size(dir);
    while size >= bound && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
        size = dir_size(dir);
    }
    size
}

#[test]
fn conforms() {
    let tmp = tempfile::tempdir().unwrap();
    testing::conformance(|n| open(&tmp.path().join(n.to_string())));
}

/// raft-engine panics on an append below its first index; installing a
/// snapshot older than the compaction point must not lead there.
#[test]
fn a_snapshot_behind_the_compaction_point_replaces_the_log() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("member");
    let s = open(&dir);
    bootstrap(&s);
    let ents: Vec<Entry> = (2..=30).map(|i| entry(i, 1, 10)).collect();
    persist(&s, None, &ents, None, true);
    let cs = ConfState {
        voters: vec![NODE],
        ..Default::default()
    };
    s.create_snapshot(25, cs, b"s25".to_vec(), 0).unwrap();
    assert_eq!(s.first_index().unwrap(), 26);
    let mut snap = Snapshot::default();
    snap.mut_metadata().index = 10;
    snap.mut_metadata().term = 2;
    snap.mut_metadata().mut_conf_state().voters = vec![NODE];
    let ents: Vec<Entry> = (11..=12).map(|i| entry(i, 2, 10)).collect();
    persist(&s, Some(&snap), &ents, None, true);
    drop(s);
    let s = open(&dir);
    assert_eq!(
        (s.first_index().unwrap(), s.last_index().unwrap()),
        (11, 12)
    );
    assert_eq!(s.term(10).unwrap(), 2);
    assert_eq!(all_entries(&s), ents);
    persist(&s, None, &[entry(13, 2, 10)], None, true);
}

#[test]
fn a_foreign_directory_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("member");
    bootstrap(&open(&dir));
    for (cluster, node) in [(CLUSTER + 1, NODE), (CLUSTER, NODE + 1)] {
        match DurableStorage::open(&dir, cluster, node) {
            Err(StoreError::ForeignData {
                path,
                found_cluster: CLUSTER,
                found_node: NODE,
                ..
            }) => assert!(path.ends_with("member"), "{path}"),
            other => panic!("expected ForeignData, got {other:?}"),
        }
    }
    let live = open(&dir);
    assert!(live.is_initialized(), "the refusals changed the store");
    // A directory in use (here by a live clone) is locked.
    match DurableStorage::open(&dir, CLUSTER, NODE) {
        Err(StoreError::Io { reason, .. }) => assert!(reason.contains("lock"), "{reason}"),
        other => panic!("expected Io (locked), got {other:?}"),
    }
    assert!(live.is_initialized());
}

#[test]
fn a_directory_overwritten_with_garbage_is_refused_not_reset() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("member");
    written(&dir, 50, 100);
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    for f in std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()) {
        if f.ends_with("LOCK") {
            continue;
        }
        let len = std::fs::metadata(&f).unwrap().len() as usize;
        let garbage: Vec<u8> = (0..len)
            .map(|_| (xorshift(&mut seed) >> 24) as u8)
            .collect();
        std::fs::write(&f, garbage).unwrap();
    }
    for _ in 0..2 {
        match DurableStorage::open(&dir, CLUSTER, NODE) {
            Err(StoreError::Corrupt { path, reason }) => {
                assert!(path.ends_with(".raftlog"), "{path}: {reason}")
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }
    // Not a directory at all.
    let file = tmp.path().join("plain-file");
    std::fs::write(&file, b"x").unwrap();
    assert!(matches!(
        DurableStorage::open(&file, CLUSTER, NODE),
        Err(StoreError::Io { .. })
    ));
}

#[test]
fn garbage_inside_the_last_file_is_refused_and_left_as_found() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("member");
    {
        let s = open(&dir);
        bootstrap(&s);
        for i in 2..=40 {
            persist(&s, None, &[entry(i, 1, 200)], None, true);
        }
    }
    let file = &only_log_file(&dir);
    let good = std::fs::read(file).unwrap();
    // Wherever the garbage lands before the final write (in a batch's
    // header, items or entries), raft-engine's recovery or the read-back of
    // the log finds it, and the file is left as it was found.
    for tenth in 1..10 {
        let mut bad = good.clone();
        let at = 64 + (bad.len() - 64) * tenth / 10;
        bad[at..at + 16].copy_from_slice(b"not raft-engine!");
        std::fs::write(file, &bad).unwrap();
        match DurableStorage::open(&dir, CLUSTER, NODE) {
            Err(StoreError::Corrupt { path, reason }) => {
                println!("garbage at {at}: {path}: {reason}");
                assert!(path.contains("member"), "{path}: {reason}");
            }
            other => panic!("garbage at {at}: expected Corrupt, got {other:?}"),
        }
        assert_eq!(
            std::fs::read(file).unwrap(),
            bad,
            "the corrupt file was changed"
        );
    }
    // Repaired from a copy, everything is back.
    std::fs::write(file, &good).unwrap();
    let s = open(&dir);
    assert_eq!(s.last_index().unwrap(), 40);
    assert_eq!(all_entries(&s).len(), 39);
}

#[test]
fn a_torn_final_write_and_preallocated_zeros_are_tolerated() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("member");
    written(&dir, 10, 50);
    let file = &only_log_file(&dir);
    let before = std::fs::metadata(file).unwrap().len() as usize;
    {
        let s = open(&dir);
        persist(
            &s,
            None,
            &[entry(11, 2, 50)],
            Some(&HardState {
                term: 2,
                ..Default::default()
            }),
            true,
        );
    }
    // As if the process died half-way through that write, after
    // raft-engine had preallocated the file.
    let mut bytes = std::fs::read(file).unwrap();
    let torn = before + (bytes.len() - before) / 2;
    bytes[torn..].fill(0);
    bytes.resize(bytes.len() + (1 << 20), 0);
    std::fs::write(file, &bytes).unwrap();
    let s = open(&dir);
    assert_eq!(s.last_index().unwrap(), 10, "the torn write survived");
    assert_eq!(
        s.initial_state().unwrap().hard_state.term,
        1,
        "the torn hard state survived"
    );
    assert_eq!(all_entries(&s).len(), 9);
    persist(&s, None, &[entry(11, 2, 50)], None, true);
}

/// A store in `dir` holding ~12 MB of entries, so several 4 MB log
/// files; returns the files, oldest first.
fn several_log_files(dir: &Path) -> Vec<PathBuf> {
    {
        let s = open(dir);
        bootstrap(&s);
        for i in 0..60 {
            let ents: Vec<Entry> = (0..50).map(|j| entry(2 + i * 50 + j, 1, 4096)).collect();
            persist(&s, None, &ents, None, false);
        }
    }
    let files = log_files(dir);
    assert!(files.len() >= 3, "{files:?}");
    files
}

#[test]
fn a_missing_log_file_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("member");
    let files = several_log_files(&dir);
    std::fs::remove_file(&files[1]).unwrap();
    match DurableStorage::open(&dir, CLUSTER, NODE) {
        Err(StoreError::Corrupt { path, reason }) => {
            assert!(reason.contains("missing"), "{path}: {reason}")
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

/// A byte flipped in the middle of any log file, or in the last batch of
/// an older one, is refused with an error naming that file (raft-engine's
/// own errors name only the directory, and a broken last batch of an older
/// file showed as a failed truncation, an I/O error). The file is left as
/// found.
#[test]
fn a_flipped_byte_in_a_log_file_is_refused_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("member");
    let files = several_log_files(&dir);
    let older = &files[..files.len() - 1];
    let mut cases: Vec<(&PathBuf, &str)> = vec![(files.last().unwrap(), "middle")];
    for f in older {
        cases.extend([(f, "middle"), (f, "last index"), (f, "last entries")]);
    }
    for (file, place) in cases {
        let good = std::fs::read(file).unwrap();
        let at = match place {
            "middle" => good.len() / 2,
            "last index" => good.len() - 64,
            _ => good.len() - 20_000,
        };
        let mut bad = good.clone();
        bad[at] ^= 0x20;
        std::fs::write(file, &bad).unwrap();
        match DurableStorage::open(&dir, CLUSTER, NODE) {
            Err(StoreError::Corrupt { path, reason }) => {
                println!("{place} of {}: {reason}", file.display());
                assert_eq!(path, file.display().to_string(), "{place}: {reason}");
            }
            other => panic!(
                "{place} of {}: expected Corrupt, got {other:?}",
                file.display()
            ),
        }
        assert_eq!(
            std::fs::read(file).unwrap(),
            bad,
            "{} was changed",
            file.display()
        );
        std::fs::write(file, &good).unwrap();
    }
    let s = open(&dir);
    assert_eq!(all_entries(&s).len(), 60 * 50);
}

#[test]
fn disk_use_stays_bounded_when_the_log_is_compacted() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("member");
    let s = open(&dir);
    bootstrap(&s);
    let cs = ConfState {
        voters: vec![NODE],
        ..Default::default()
    };
    let mut max = 0;
    let mut next = 2;
    // ~200 MB written in total; at most ~1000 entries (~2 MB) are live.
    for round in 0..100 {
        for _ in 0..50 {
            let ents: Vec<Entry> = (next..next + 20).map(|i| entry(i, 1, 2048)).collect();
            next += 20;
            persist(&s, None, &ents, None, false);
        }
        s.create_snapshot(next - 1, cs.clone(), vec![round as u8; 1024], 200)
            .unwrap();
        // Once the purge (on the store's own thread) has caught up.
        max = max.max(settled_size(&dir, 64 << 20));
    }
    let end = dir_size(&dir);
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    println!(
        "disk use: max {} KiB, end {} KiB: {files:?}",
        max >> 10,
        end >> 10
    );
    assert!(max < 64 << 20, "disk use reached {max} bytes");
    drop(s);
    let s = open(&dir);
    assert_eq!(s.last_index().unwrap(), next - 1);
    assert_eq!(s.first_index().unwrap(), next - 200);
}

/// A snapshot larger than a frame (40 MiB of incompressible state): one
/// raft-engine batch when installed from a leader and when taken here,
/// read back whole after a restart, and replaced again and again without
/// the disk filling up with old copies.
#[test]
fn a_snapshot_of_40_mib_is_installed_taken_and_reopened() {
    const BIG: usize = 40 << 20;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("member");
    let state = |round: u64| entry(round, 0, BIG).data.to_vec();
    let cs = ConfState {
        voters: vec![NODE],
        ..Default::default()
    };
    let s = open(&dir);
    bootstrap(&s);
    persist(&s, None, &[entry(2, 1, 10)], None, true);
    // Installed from a leader, past the log's end.
    let mut snap = Snapshot {
        data: state(0).into(),
        ..Default::default()
    };
    snap.mut_metadata().index = 100;
    snap.mut_metadata().term = 2;
    snap.mut_metadata().set_conf_state(cs.clone());
    let ents: Vec<Entry> = (101..=105).map(|i| entry(i, 2, 10)).collect();
    let hs = HardState {
        term: 2,
        commit: 105,
        ..Default::default()
    };
    let started = Instant::now();
    persist(&s, Some(&snap), &ents, Some(&hs), true);
    println!("40 MiB snapshot installed in {:?}", started.elapsed());
    drop(s);
    let started = Instant::now();
    let s = open(&dir);
    println!("reopened in {:?}", started.elapsed());
    assert!(
        s.snapshot(100, NODE).unwrap() == snap,
        "the snapshot read back differs"
    );
    assert_eq!(all_entries(&s), ents);
    // Taken here, round after round, with the log moving on.
    let mut next = 106;
    let mut max = 0;
    for round in 1..=6 {
        let ents: Vec<Entry> = (next..next + 10).map(|i| entry(i, 2, 10)).collect();
        next += 10;
        persist(&s, None, &ents, None, true);
        s.create_snapshot(next - 1, cs.clone(), state(round), 5)
            .unwrap();
        // The purge runs on the store's own thread, after this write: the
        // copies it deletes may still be there for a moment (three copies
        // and the log were seen, just over 3 × 40 MiB, on a loaded host).
        // What is kept once it has run is what this checks.
        max = max.max(settled_size(&dir, 3 * BIG as u64));
    }
    // raft-engine counts a queue's size in files: before it was told to
    // purge past one file, eight dead snapshots were kept (320 MiB here),
    // however long one waited.
    println!(
        "disk use with six 40 MiB snapshots taken, each purge done: max {} MiB",
        max >> 20
    );
    assert!(max < 3 * BIG as u64, "disk use stayed at {max} bytes");
    drop(s);
    let s = open(&dir);
    let got = s.snapshot(next - 1, NODE).unwrap();
    assert!(
        got.data.as_ref() == state(6).as_slice(),
        "the snapshot read back differs"
    );
    assert_eq!(got.get_metadata().index, next - 1);
    assert_eq!(s.first_index().unwrap(), next - 5);
}

fn xorshift(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

/// Kills (SIGKILL) and reaps the child however the test ends.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The candidate the crash child votes for in `term`: the same in every
/// run, and different in consecutive terms, so a vote recovered with the
/// wrong term shows.
fn vote_in(term: u64) -> u64 {
    1 + term % 3
}

/// What the crash child acknowledged.
#[derive(Default)]
struct Acks {
    boot: u64,
    seen: u64,
    /// The last acknowledged (last index, its term).
    acked: (u64, u64),
    /// The last acknowledged hard state's (term, vote).
    voted: (u64, u64),
}

impl Acks {
    fn take(&mut self, line: &str, round: u64) {
        // libtest's own output may share the line.
        let at = line
            .find("boot ")
            .or_else(|| line.find("acked "))
            .unwrap_or(line.len());
        let words: Vec<&str> = line[at..].split_whitespace().collect();
        match words[..] {
            ["boot", n] => self.boot = n.parse().unwrap(),
            ["acked", last, term, hs_term, vote] => {
                let a = (last.parse().unwrap(), term.parse().unwrap());
                let acked = self.acked;
                assert!(
                    a >= acked,
                    "round {round}: acks went back: {acked:?} then {a:?}"
                );
                let v = (hs_term.parse().unwrap(), vote.parse().unwrap());
                assert!(v.0 >= self.voted.0, "round {round}: terms went back");
                (self.acked, self.voted) = (a, v);
                self.seen += 1;
            }
            _ => {}
        }
    }
}

/// The state the crash child snapshots at `index`: 256 KiB that do not
/// compress, after a prefix naming the index.
fn snapshot_state(index: u64) -> Vec<u8> {
    let mut state = format!("state@{index}:").into_bytes();
    state.extend_from_slice(&entry(index, 0, 256 << 10).data);
    state
}

/// The child side of [`kill_9_never_loses_an_acknowledged_write`]: does
/// nothing unless started by it.
#[test]
fn crash_child_process() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    use std::io::Write;
    let s = open(Path::new(&dir));
    let boot = s.next_boot().unwrap();
    if !s.is_initialized() {
        bootstrap(&s);
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "boot {boot}").unwrap();
    let cs = ConfState {
        voters: vec![NODE],
        ..Default::default()
    };
    let mut last = s.last_index().unwrap();
    let mut term = s.initial_state().unwrap().hard_state.term.max(1);
    let mut hs_term = term;
    let mut seed = boot.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let started = Instant::now();
    // Bounded, in case the parent dies without killing us.
    for i in 0..200_000u64 {
        if started.elapsed() > Duration::from_secs(120) {
            break;
        }
        let r = xorshift(&mut seed);
        // Hard states alternate as a member's do: a new term without a
        // vote, then the vote in it.
        let vote = if i % 2 == 0 {
            hs_term += 1;
            0
        } else {
            vote_in(hs_term)
        };
        // Now and then a new term overwrites a short tail (and goes past it,
        // so acknowledged last indexes only grow).
        let from = if i % 9 == 8 && last > s.first_index().unwrap() + 2 {
            term = hs_term;
            last - 1
        } else {
            last + 1
        };
        let ents: Vec<Entry> = (from..=last + 1 + r % 6)
            .map(|i| entry(i, term, (r % 3000) as usize))
            .collect();
        let hs = HardState {
            term: hs_term,
            vote,
            commit: last,
            ..Default::default()
        };
        persist(&s, None, &ents, Some(&hs), true);
        last = ents.last().unwrap().index;
        if i % 40 == 39 {
            s.create_snapshot(
                last - 5,
                cs.clone(),
                // Padded, so files fill and the purge thread deletes
                // some while the child runs (and is killed).
                snapshot_state(last - 5),
                30,
            )
            .unwrap();
        }
        writeln!(out, "acked {last} {term} {hs_term} {vote}").unwrap();
        out.flush().unwrap();
    }
}

#[test]
fn kill_9_never_loses_an_acknowledged_write() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("member");
    let exe = std::env::current_exe().unwrap();
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    println!("seed {seed}");
    // SURVIVABLE_CRASH_ROUNDS=N runs more rounds (a longer soak).
    let rounds =
        std::env::var("SURVIVABLE_CRASH_ROUNDS").map_or(6, |n| n.parse().expect("a number"));
    for round in 1..=rounds {
        let child = Command::new(&exe)
            .args([
                "--exact",
                "crash_child_process",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn child");
        let mut child = ChildGuard(child);
        let stdout = child.0.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                if tx.send(line.unwrap_or_default()).is_err() {
                    break;
                }
            }
        });
        let want = 1 + xorshift(&mut seed) % 400;
        let mut acks = Acks::default();
        while acks.seen < want {
            let line = rx
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|e| {
                    panic!("round {round}: child stopped after {} acks: {e}", acks.seen)
                });
            acks.take(&line, round);
        }
        assert_eq!(acks.boot, round, "boot counter");
        drop(child); // SIGKILL, mid-write as likely as not
                     // Every acknowledgement the child printed before it died: each one
                     // was flushed before its next write began.
        let seen_when_killed = acks.seen;
        for line in rx.iter() {
            acks.take(&line, round);
        }
        let Acks { acked, voted, .. } = acks;

        let s = open(&dir);
        let (first, last) = (s.first_index().unwrap(), s.last_index().unwrap());
        let hs = s.initial_state().unwrap().hard_state;
        println!(
            "round {round}: killed after {seen_when_killed} acks ({} in all, last {acked:?}, vote {voted:?}); reopened {first}..={last}, term {} vote {}",
            acks.seen, hs.term, hs.vote
        );
        assert!(
            last >= acked.0,
            "round {round}: last index {last} < acknowledged {}",
            acked.0
        );
        assert!(
            hs.term >= voted.0,
            "round {round}: term {} < acknowledged {}",
            hs.term,
            voted.0
        );
        // The last acknowledged (term, vote), or the next one if its write
        // was under way when the child died (a write is atomic): never the
        // acknowledged vote lost, never a different vote in the same term.
        let next = if voted.1 == 0 {
            (voted.0, vote_in(voted.0))
        } else {
            (voted.0 + 1, 0)
        };
        let recovered = (hs.term, hs.vote);
        assert!(
            recovered == voted || recovered == next,
            "round {round}: recovered (term, vote) {recovered:?}; acknowledged {voted:?}"
        );
        assert!(
            hs.commit >= first - 1 && hs.commit <= last,
            "round {round}: commit {}",
            hs.commit
        );
        let ents = all_entries(&s);
        assert_eq!(
            ents.len() as u64,
            last + 1 - first,
            "round {round}: entries"
        );
        let mut prev_term = s.term(first - 1).unwrap();
        for (e, want) in ents.iter().zip(first..) {
            assert_eq!(e.index, want, "round {round}: not contiguous");
            assert!(
                e.term >= prev_term,
                "round {round}: terms go back at {want}"
            );
            assert!(e
                .data
                .starts_with(format!("{}:{}:", e.index, e.term).as_bytes()));
            prev_term = e.term;
        }
        assert!(prev_term >= acked.1, "round {round}: last entry's term");
        let snap = s.latest_snapshot();
        assert!(
            snap.get_metadata().index >= first - 1,
            "round {round}: snapshot behind the log"
        );
        let index = snap.get_metadata().index;
        assert!(
            index <= 1 || snap.data.as_ref() == snapshot_state(index).as_slice(),
            "round {round}: the snapshot at {index} read back differs"
        );
    }
}
