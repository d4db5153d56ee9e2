use raft::eraftpb::Entry;

use super::*;

fn entry(index: u64, len: usize) -> Entry {
    Entry {
        index,
        term: 1,
        data: vec![7; len].into(),
        ..Entry::default()
    }
}

fn bound(max_entries: Option<u64>, max_bytes: Option<u64>) -> Bound {
    Bound {
        max_entries,
        max_bytes,
        warn_percent: 80,
    }
}

#[test]
fn the_account_follows_appends_conflicts_and_compaction() {
    let mut log = RetainedLog::default();
    let one = u64::from(entry_size(&entry(1, 10)));
    log.appended(&(1..=5).map(|i| entry(i, 10)).collect::<Vec<_>>());
    assert_eq!((log.entries(), log.bytes()), (5, 5 * one));
    assert!(log.covers(1, 5));
    // A follower's conflicting suffix from index 4 replaces 4 and 5.
    let big = u64::from(entry_size(&entry(4, 100)));
    log.appended(&[entry(4, 100)]);
    assert_eq!((log.entries(), log.bytes()), (4, 3 * one + big));
    assert!(log.covers(1, 4) && !log.covers(1, 5));
    log.compacted_to(3);
    assert_eq!((log.entries(), log.bytes()), (2, one + big));
    assert!(log.covers(3, 4));
    // Everything compacted (a snapshot past the log): empty, first moves.
    log.compacted_to(10);
    assert_eq!((log.entries(), log.bytes()), (0, 0));
    assert!(log.covers(10, 9));
    log.appended(&[entry(10, 10)]);
    assert!(log.covers(10, 10));
    // Rebuilt after a restart.
    log.rebuild(20, [5, 6, 7]);
    assert_eq!((log.entries(), log.bytes()), (3, 18));
    assert!(log.covers(20, 22));
}

#[test]
fn start_within_finds_the_lowest_index_that_fits() {
    let mut log = RetainedLog::default();
    log.rebuild(10, [4, 4, 4, 4]); // indexes 10..=13
    assert_eq!(log.start_within(16), 10);
    assert_eq!(log.start_within(15), 11);
    assert_eq!(log.start_within(8), 12);
    assert_eq!(log.start_within(3), 14, "not even the last fits");
}

#[test]
fn level_warns_at_the_mark_and_is_full_at_either_bound() {
    let b = bound(Some(1000), Some(10_000));
    assert_eq!(level(799, 7_999, b), Level::Fine);
    assert_eq!(level(800, 0, b), Level::Warn);
    assert_eq!(level(0, 8_000, b), Level::Warn);
    assert_eq!(level(999, 9_999, b), Level::Warn);
    assert_eq!(level(1000, 0, b), Level::Full);
    assert_eq!(level(0, 10_000, b), Level::Full);
    assert_eq!(level(u64::MAX, u64::MAX, bound(None, None)), Level::Fine);
    // The mark rounds up: 80 % of 7 is 5.6, so 6 warns and 5 does not.
    assert_eq!(level(5, 0, bound(Some(7), None)), Level::Fine);
    assert_eq!(level(6, 0, bound(Some(7), None)), Level::Warn);
    // No overflow at the largest bound.
    assert_eq!(
        level(u64::MAX - 1, 0, bound(Some(u64::MAX), None)),
        Level::Warn
    );
}

#[test]
fn the_bounded_floor_keeps_the_bound_less_one_snapshot_interval() {
    let none = |_: u64| unreachable!("no byte bound");
    // 10,000 entries bound, snapshot every 1024: keep 8,976 of a log
    // ending at 50,000, so the floor rises from 100 to 41,024.
    assert_eq!(
        bounded_floor(100, 50_000, bound(Some(10_000), None), 1024, none),
        41_024
    );
    // Already within: the floor stays.
    assert_eq!(
        bounded_floor(45_000, 50_000, bound(Some(10_000), None), 1024, none),
        45_000
    );
    // A small bound keeps at least half of it.
    assert_eq!(
        bounded_floor(0, 1000, bound(Some(100), None), 1024, none),
        950
    );
    // Bytes: entries from start_within(7/8 of the bound) on stay.
    let start = |max: u64| {
        assert_eq!(max, 7000);
        900
    };
    assert_eq!(
        bounded_floor(10, 1000, bound(None, Some(8000)), 1024, start),
        899
    );
    // Never above the last index.
    assert_eq!(bounded_floor(0, 5, bound(None, Some(8)), 1024, |_| 99), 5);
}

#[test]
fn dropped_counts_only_what_lay_above_the_floor() {
    // Floor 100: compacting 1..=150 drops 101..=150 (50) a survivable
    // member lacks.
    assert_eq!(dropped_above(100, 1, 151), 50);
    // Compacting below the floor drops nothing it lacks.
    assert_eq!(dropped_above(100, 1, 90), 0);
    assert_eq!(dropped_above(100, 101, 101), 0);
    // Already above the floor: everything compacted counts.
    assert_eq!(dropped_above(100, 200, 300), 100);
}

#[test]
fn held_back_is_what_the_floor_keeps_beyond_keep_entries() {
    assert_eq!(held_back(10_000, 256, None), 0);
    assert_eq!(held_back(10_000, 256, Some(9_900)), 0);
    assert_eq!(held_back(10_000, 256, Some(1_000)), 9_000 - 256);
    assert_eq!(held_back(100, 256, Some(0)), 0, "young log");
}
