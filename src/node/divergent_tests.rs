//! What reunion shows the reconciliation hook, and how it backs off.

use super::*;
use crate::ids::FIRST_EPOCH;
use crate::wire::payload::{encode, RangePb, ReconcileRecord};

/// Our epoch: founded by the rank-1 primary (node 3) at index 10.
fn ours() -> Vec<EpochRecord> {
    vec![
        EpochRecord::FIRST,
        EpochRecord {
            id: EpochId::fork(&[EpochRecord::FIRST], NodeId(3), 1, 0),
            fork_index: 10,
            fork_term: 2,
        },
    ]
}

/// A sibling founded by the rank-2 primary (node 7) at index 10: older.
fn sibling() -> Vec<EpochRecord> {
    vec![
        EpochRecord::FIRST,
        EpochRecord {
            id: EpochId::fork(&[EpochRecord::FIRST], NodeId(7), 2, 0),
            fork_index: 10,
            fork_term: 2,
        },
    ]
}

/// A command proposed at node 1 (boot 1) as `seq`, at `index` in term 3.
fn command(index: u64, seq: u64) -> Entry {
    let p = EntryPayload {
        proposer: 1,
        boot: 1,
        seq,
        command: vec![seq as u8],
        ..EntryPayload::default()
    };
    Entry {
        index,
        term: 3,
        data: encode(&p).into(),
        ..Entry::default()
    }
}

/// A new leader's empty entry.
fn empty(index: u64) -> Entry {
    Entry {
        index,
        term: 3,
        ..Entry::default()
    }
}

fn shown_to_hook(
    covered: &BTreeMap<EpochId, u64>,
    lineage: &[EpochRecord],
    entries: &[Entry],
    done: u64,
    compacted: u64,
    compacted_covered: &BTreeMap<EpochId, u64>,
) -> Option<(Vec<DivergentEntry>, Vec<EntryRange>)> {
    let (originals, ranges) = to_show(
        &ours(),
        covered,
        lineage,
        entries,
        done,
        compacted,
        compacted_covered,
    )?;
    Some((originals.iter().map(divergent_entry).collect(), ranges))
}

fn divergent(epoch: EpochId, index: u64, seq: u64) -> DivergentEntry {
    DivergentEntry {
        epoch,
        index,
        term: 3,
        command: vec![seq as u8],
        proposal: Some(ProposalId {
            node: NodeId(1),
            boot: 1,
            seq,
        }),
    }
}

#[test]
fn reunion_shows_each_divergent_command_once_with_its_origin_and_the_run_covered() {
    let none = BTreeMap::new();
    // The first epoch's entries after our fork point, as its members hold them.
    let log = [command(11, 4), empty(12), command(13, 5)];
    let (shown, ranges) = shown_to_hook(&none, &[EpochRecord::FIRST], &log, 10, 0, &none).unwrap();
    assert_eq!(
        shown,
        [divergent(FIRST_EPOCH, 11, 4), divergent(FIRST_EPOCH, 13, 5)]
    );
    assert_eq!(
        ranges,
        [EntryRange {
            epoch: FIRST_EPOCH,
            first: 11,
            last: 13
        }]
    );
}

#[test]
fn entries_shown_before_are_not_shown_again() {
    let covered = BTreeMap::from([(FIRST_EPOCH, 12)]);
    let log = [command(11, 4), command(12, 5), command(13, 6)];
    let none = BTreeMap::new();
    let (shown, ranges) =
        shown_to_hook(&covered, &[EpochRecord::FIRST], &log, 10, 0, &none).unwrap();
    assert_eq!(shown, [divergent(FIRST_EPOCH, 13, 6)]);
    assert_eq!(
        ranges,
        [EntryRange {
            epoch: FIRST_EPOCH,
            first: 13,
            last: 13
        }]
    );
}

#[test]
fn a_run_that_would_leave_a_gap_after_what_was_shown_waits_for_the_rest() {
    let covered = BTreeMap::from([(FIRST_EPOCH, 12)]);
    let none = BTreeMap::new();
    let log = [command(15, 7), command(16, 8)];
    assert_eq!(
        shown_to_hook(&covered, &[EpochRecord::FIRST], &log, 14, 0, &none),
        None
    );
}

#[test]
fn compacted_entries_and_what_they_had_reconciled_are_counted_but_not_shown() {
    let elsewhere = EpochId::fork(&ours(), NodeId(9), 3, 0);
    let none = BTreeMap::new();
    let compacted_covered = BTreeMap::from([(elsewhere, 5)]);
    let log = [command(13, 6)];
    let (shown, ranges) = shown_to_hook(
        &none,
        &[EpochRecord::FIRST],
        &log,
        10,
        2,
        &compacted_covered,
    )
    .unwrap();
    assert_eq!(shown, [divergent(FIRST_EPOCH, 13, 6)]);
    let mut expected = vec![
        EntryRange {
            epoch: FIRST_EPOCH,
            first: 11,
            last: 13,
        },
        EntryRange {
            epoch: elsewhere,
            first: 1,
            last: 5,
        },
    ];
    expected.sort_by_key(|r| r.epoch);
    assert_eq!(ranges, expected);
}

#[test]
fn a_sibling_epoch_shows_its_own_entries_and_what_it_reconciled_as_first_proposed() {
    let theirs = sibling();
    let sibling_id = theirs[1].id;
    let third = EpochId::fork(&ours(), NodeId(9), 3, 0);
    let carried = OriginalEntry {
        origin_number: third.number,
        origin_founder: third.founder.0,
        index: 4,
        term: 3,
        command: vec![9],
        proposer: 1,
        boot: 1,
        seq: 9,
    };
    let record = ReconcileRecord {
        originals: vec![carried],
        covered: vec![RangePb::from(&EntryRange {
            epoch: third,
            first: 4,
            last: 4,
        })],
        ..ReconcileRecord::default()
    };
    let reconcile = Entry {
        index: 12,
        term: 3,
        data: encode(&EntryPayload {
            reconcile: Some(record),
            ..EntryPayload::default()
        })
        .into(),
        ..Entry::default()
    };
    let none = BTreeMap::new();
    let log = [command(11, 4), reconcile];
    let (shown, ranges) = shown_to_hook(&none, &theirs, &log, 10, 0, &none).unwrap();
    assert_eq!(
        shown,
        [divergent(sibling_id, 11, 4), divergent(third, 4, 9)]
    );
    let mut expected = vec![
        EntryRange {
            epoch: sibling_id,
            first: 11,
            last: 12,
        },
        EntryRange {
            epoch: third,
            first: 4,
            last: 4,
        },
    ];
    expected.sort_by_key(|r| r.epoch);
    assert_eq!(ranges, expected);
}

#[test]
fn reconciliation_back_off_doubles_up_to_thirty_two_election_timeouts() {
    assert_eq!(backoff(0, 20), (1, 20));
    assert_eq!(backoff(1, 20), (2, 40));
    assert_eq!(backoff(4, 20), (5, 320));
    assert_eq!(backoff(5, 20), (6, 640));
    assert_eq!(backoff(9, 20), (10, 640));
}

#[test]
fn a_reconciliation_overlapping_what_was_taken_in_since_is_stale() {
    let from = sibling()[1].id;
    let range = |first, last| EntryRange {
        epoch: from,
        first,
        last,
    };
    let reconciled = BTreeMap::from([(from, 12)]);
    let covered = BTreeMap::from([(from, 12)]);
    assert!(!stale(13, from, &[range(13, 15)], &reconciled, &covered));
    assert!(stale(12, from, &[range(13, 15)], &reconciled, &covered));
    assert!(stale(13, from, &[range(12, 15)], &reconciled, &covered));
    let empty = BTreeMap::new();
    assert!(!stale(1, from, &[range(1, 15)], &empty, &empty));
}

#[test]
fn divergent_entries_are_taken_after_what_was_done_contiguously_and_gaps_only_if_compacted() {
    let indexes = |run: Option<(Vec<Entry>, u64, u64)>| {
        run.map(|(entries, gap, to)| (entries.iter().map(|e| e.index).collect::<Vec<_>>(), gap, to))
    };
    let log =
        |range: std::ops::RangeInclusive<u64>| range.map(empty).collect::<Vec<_>>().into_iter();
    // Entries 11..=13 after done = 10; a resent 9..=13 is trimmed to them.
    assert_eq!(
        indexes(divergent_run(11, 0, 10, log(11..=13))),
        Some((vec![11, 12, 13], 0, 13))
    );
    assert_eq!(
        indexes(divergent_run(9, 0, 10, log(9..=13))),
        Some((vec![11, 12, 13], 0, 13))
    );
    // The sender compacted 11 and 12: a gap of 2 it accounts for.
    assert_eq!(
        indexes(divergent_run(13, 2, 10, log(13..=13))),
        Some((vec![13], 2, 13))
    );
    assert_eq!(
        indexes(divergent_run(13, 2, 10, std::iter::empty())),
        Some((vec![], 2, 12))
    );
    // A gap it did not compact, a hole inside, nothing new, no first index.
    assert_eq!(indexes(divergent_run(13, 1, 10, log(13..=13))), None);
    let holed = [empty(11), empty(13)].into_iter();
    assert_eq!(indexes(divergent_run(11, 0, 10, holed)), None);
    assert_eq!(indexes(divergent_run(9, 0, 10, log(9..=10))), None);
    assert_eq!(indexes(divergent_run(0, 0, 10, log(11..=11))), None);
}

/// An original of proposal (1, 1, `seq`) at `index` (proposer 0: a
/// library record's).
fn original(index: u64, proposer: u64, seq: u64) -> OriginalEntry {
    OriginalEntry {
        origin_number: 1,
        origin_founder: 0,
        index,
        term: 3,
        command: vec![seq as u8],
        proposer,
        boot: 1,
        seq,
    }
}

#[test]
fn proposals_applied_here_or_shown_already_are_left_out() {
    // Seq 5 was re-submitted and applied here after the cut; seq 6 sits
    // twice in the older log; seq 7 is new; proposer 0 is no proposal.
    let originals = vec![
        original(11, 1, 5),
        original(12, 1, 6),
        original(13, 1, 6),
        original(14, 0, 0),
        original(15, 1, 7),
    ];
    let (kept, left_out) = unapplied(originals, |o| o.seq == 5);
    let at: Vec<u64> = kept.iter().map(|o| o.index).collect();
    assert_eq!(at, [12, 14, 15]);
    assert_eq!(left_out, 2);
    let (kept, left_out) = unapplied(vec![original(11, 1, 5)], |_| false);
    assert_eq!((kept.len(), left_out), (1, 0));
}

#[test]
fn a_record_showing_a_proposal_applied_here_since_is_not_applied() {
    let originals = [original(11, 1, 5), original(12, 0, 0), original(13, 1, 7)];
    assert!(any_applied(&originals, |o| o.seq == 7));
    assert!(!any_applied(&originals, |o| o.seq == 6));
    // Proposer 0 is no proposal, whatever the table says.
    assert!(!any_applied(&[original(12, 0, 0)], |_| true));
    assert!(!any_applied(&[], |_| true));
}

#[test]
fn a_run_missing_its_start_waits_three_election_timeouts_for_a_whole_one() {
    assert!(!gap_wait_over(100, 100, 40));
    assert!(!gap_wait_over(100, 219, 40));
    assert!(gap_wait_over(100, 220, 40));
}
