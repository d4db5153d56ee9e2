//! Nothing silently lost (DESIGN §6, main-site mode): a proposal
//! acknowledged in an epoch that lost the reunion is either in the
//! surviving history (it was committed before the surviving epoch forked)
//! or shown to the application by exactly one reconciliation.

use std::collections::BTreeSet;

use super::Violation;
use crate::node::{EntryRange, EpochId, EpochRecord};

/// A reconciliation as a member applied it: the epoch and index of the
/// record, and what it accounts for.
pub(crate) type Report = (EpochId, u64, Vec<EntryRange>);

/// `acks`: (epoch, index) of every acknowledged proposal; `lineage`: the
/// final epoch's lineage; `reports`: every reconciliation any member
/// applied. Only records in the final history count (an epoch that lost
/// may have reconciled others; what it showed is shown again).
pub(crate) fn check(
    acks: &[(EpochId, u64)],
    lineage: &[EpochRecord],
    reports: &BTreeSet<Report>,
) -> Vec<Violation> {
    let kept: Vec<&Report> = reports
        .iter()
        .filter(|(epoch, index, _)| survived(*epoch, *index, lineage))
        .collect();
    let mut found = Vec::new();
    for &(epoch, index) in acks {
        if survived(epoch, index, lineage) {
            continue;
        }
        let ranges = kept
            .iter()
            .filter(|(_, _, rs)| rs.iter().any(|r| r.contains(epoch, index)))
            .count();
        match ranges {
            0 => found.push(Violation::AckedUnreported { epoch, index }),
            1 => {}
            n => found.push(Violation::ReportedTwice {
                epoch,
                index,
                ranges: n,
            }),
        }
    }
    found
}

/// Whether `(epoch, index)` is part of the history `lineage` ends in.
fn survived(epoch: EpochId, index: u64, lineage: &[EpochRecord]) -> bool {
    crate::node::epoch::in_history(lineage, epoch, index)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::FIRST_EPOCH;
    use crate::topology::NodeId;

    fn paris() -> EpochRecord {
        EpochRecord {
            id: EpochId {
                number: 2,
                founder: NodeId(3),
            },
            fork_index: 100,
            fork_term: 4,
        }
    }

    fn range(epoch: EpochId, first: u64, last: u64) -> EntryRange {
        EntryRange { epoch, first, last }
    }

    #[test]
    fn before_the_fork_survives_after_it_must_be_reported_once() {
        let p = paris().id;
        let lineage = [EpochRecord::FIRST, paris()];
        let none = BTreeSet::new();
        assert!(check(&[(FIRST_EPOCH, 100), (p, 130)], &lineage, &none).is_empty());
        assert_eq!(
            check(&[(FIRST_EPOCH, 101)], &lineage, &none),
            [Violation::AckedUnreported {
                epoch: FIRST_EPOCH,
                index: 101
            }]
        );
        let once = BTreeSet::from([
            (p, 140, vec![range(FIRST_EPOCH, 101, 120)]),
            (p, 141, vec![range(FIRST_EPOCH, 121, 150)]),
        ]);
        assert!(check(&[(FIRST_EPOCH, 101), (FIRST_EPOCH, 150)], &lineage, &once).is_empty());
        let twice = BTreeSet::from([
            (p, 140, vec![range(FIRST_EPOCH, 101, 120)]),
            (p, 141, vec![range(FIRST_EPOCH, 110, 150)]),
        ]);
        assert_eq!(
            check(&[(FIRST_EPOCH, 115)], &lineage, &twice),
            [Violation::ReportedTwice {
                epoch: FIRST_EPOCH,
                index: 115,
                ranges: 2
            }]
        );
    }

    #[test]
    fn only_records_in_the_final_history_count() {
        let lost = EpochId {
            number: 2,
            founder: NodeId(4),
        };
        let lineage = [EpochRecord::FIRST, paris()];
        // A sibling epoch that lost had shown 101..=120; Paris showed them
        // again: once in the final history.
        let reports = BTreeSet::from([
            (lost, 130, vec![range(FIRST_EPOCH, 101, 120)]),
            (
                paris().id,
                160,
                vec![range(FIRST_EPOCH, 101, 120), range(lost, 121, 135)],
            ),
        ]);
        assert!(check(&[(FIRST_EPOCH, 110), (lost, 125)], &lineage, &reports).is_empty());
        let only_lost = BTreeSet::from([(lost, 130, vec![range(FIRST_EPOCH, 101, 120)])]);
        assert_eq!(check(&[(FIRST_EPOCH, 110)], &lineage, &only_lost).len(), 1);
    }

    #[test]
    fn an_epoch_outside_the_lineage_must_be_reported() {
        let lineage = [EpochRecord::FIRST];
        let lost = paris().id;
        assert_eq!(check(&[(lost, 90)], &lineage, &BTreeSet::new()).len(), 1);
        let reported = BTreeSet::from([(FIRST_EPOCH, 200, vec![range(lost, 1, 95)])]);
        assert!(check(&[(lost, 90)], &lineage, &reported).is_empty());
    }
}
