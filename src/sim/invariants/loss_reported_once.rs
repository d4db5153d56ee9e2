//! Nothing silently lost (main-site mode; the
//! [manual](crate::manual::invariants#nothing-silently-lost)): a proposal
//! acknowledged in an epoch that lost the reunion is either in the
//! surviving history (it was committed before the surviving epoch forked,
//! and the command there is the acknowledged one) or shown to the
//! application by exactly one reconciliation, never both. Counted as
//! compacted (its command gone before the surviving epoch had it) is not
//! shown: that is a loss.
//!
//! DR auto-sync's founder carries its old log's tail beyond the fork into
//! the new epoch as proposals under their own ids: an acknowledged entry
//! there is kept if its command was applied in a later epoch of the final
//! history; a reconciliation that later covers it (the old epoch's copy,
//! when its members return) skips it as already applied, so it may cover
//! it once too. Applying it twice is what the per-proposal apply counts
//! catch.

use std::collections::BTreeSet;

use super::{Ack, Checker, Violation};
use crate::node::{EntryRange, EpochId, EpochRecord};

/// A reconciliation as a member applied it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Report {
    /// The epoch that recorded it ...
    pub epoch: EpochId,
    /// ... at this index.
    pub index: u64,
    /// What it accounts for, by origin epoch.
    pub ranges: Vec<EntryRange>,
    /// The older epoch whose log it took in.
    pub from: EpochId,
    /// The run of that log counted only (compacted by the sender): first
    /// index and how many.
    pub compacted: (u64, u64),
}

impl Report {
    /// Whether this record only counted `(epoch, index)`: the sender had
    /// compacted it away.
    fn only_counted(&self, epoch: EpochId, index: u64) -> bool {
        let (first, n) = self.compacted;
        self.from == epoch && index >= first && index < first.saturating_add(n)
    }
}

/// `acks`: every acknowledged proposal of an older epoch; `lineage`: the
/// final epoch's lineage; `reports`: every reconciliation any member
/// applied; `checker`: what was applied where. Only records in the final
/// history count (an epoch that lost may have reconciled others; what it
/// showed is shown again).
pub(crate) fn check(
    acks: &[Ack],
    lineage: &[EpochRecord],
    reports: &BTreeSet<Report>,
    checker: &Checker,
) -> Vec<Violation> {
    let kept: Vec<&Report> = reports
        .iter()
        .filter(|r| survived(r.epoch, r.index, lineage))
        .collect();
    let later = later_digests(lineage, checker);
    let mut found = Vec::new();
    for ack in acks {
        let (epoch, index) = (ack.epoch, ack.index);
        let holding: Vec<&&Report> = kept
            .iter()
            .filter(|r| r.ranges.iter().any(|x| x.contains(epoch, index)))
            .collect();
        let ranges = holding.len();
        let in_history =
            survived(epoch, index, lineage) && kept_as_acknowledged(ack, lineage, checker);
        let carried = !in_history
            && ack
                .digest
                .is_some_and(|d| later.get(&d).is_some_and(|e| e.iter().any(|&x| x != epoch)));
        match (in_history, ranges) {
            _ if carried && ranges <= 1 => {}
            (true, 0) => {}
            (false, 1) if holding.iter().any(|r| r.only_counted(epoch, index)) => {
                found.push(Violation::AckedCompacted { epoch, index });
            }
            (false, 1) => {}
            (true, n) => found.push(Violation::KeptAndReported {
                epoch,
                index,
                ranges: n,
            }),
            (false, 0) => found.push(Violation::AckedUnreported { epoch, index }),
            (false, n) => found.push(Violation::ReportedTwice {
                epoch,
                index,
                ranges: n,
            }),
        }
    }
    found
}

/// The digest of every command applied in the final history's epochs, with
/// the epochs it was applied in (a carried command: in a later one).
fn later_digests(
    lineage: &[EpochRecord],
    checker: &Checker,
) -> std::collections::HashMap<u64, Vec<EpochId>> {
    let mut out: std::collections::HashMap<u64, Vec<EpochId>> = Default::default();
    for r in lineage {
        let range = (r.id, 0, 0)..=(r.id, u64::MAX, u64::MAX);
        for (&(e, i, _), &(d, _)) in checker.applied.range(range) {
            if survived(e, i, lineage) {
                out.entry(d).or_default().push(e);
            }
        }
    }
    out
}

/// Whether `(epoch, index)` is part of the history `lineage` ends in.
pub(crate) fn survived(epoch: EpochId, index: u64, lineage: &[EpochRecord]) -> bool {
    crate::ids::in_history(lineage, epoch, index)
}

/// Whether the command the history holds at the acknowledged position is
/// the acknowledged one. A member applies an inherited entry under the
/// epoch it is in at the time, so the apply is looked up under the
/// acknowledging epoch and every later epoch of the lineage (they all hold
/// the same entry at an index below their forks).
pub(crate) fn kept_as_acknowledged(ack: &Ack, lineage: &[EpochRecord], checker: &Checker) -> bool {
    let Some(pos) = lineage.iter().position(|r| r.id == ack.epoch) else {
        return false;
    };
    lineage[pos..]
        .iter()
        .any(|r| ack.applied_as_acknowledged(checker, r.id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::FIRST_EPOCH;
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

    /// Reconciliations (recording epoch, index, ranges) that counted
    /// nothing as compacted.
    fn of<const N: usize>(r: [(EpochId, u64, Vec<EntryRange>); N]) -> BTreeSet<Report> {
        r.into_iter()
            .map(|(epoch, index, ranges)| Report {
                epoch,
                index,
                ranges,
                from: FIRST_EPOCH,
                compacted: (0, 0),
            })
            .collect()
    }

    fn range(epoch: EpochId, first: u64, last: u64) -> EntryRange {
        EntryRange { epoch, first, last }
    }

    /// Acknowledgements without a known command (positions only), and a
    /// checker that saw each applied.
    fn acks(at: &[(EpochId, u64)]) -> (Vec<Ack>, Checker) {
        let mut c = Checker::default();
        for &(epoch, index) in at {
            c.on_apply(NodeId(1), epoch, index, 1);
        }
        let acks = at
            .iter()
            .map(|&(epoch, index)| Ack {
                epoch,
                index,
                digest: None,
            })
            .collect();
        (acks, c)
    }

    fn run(
        at: &[(EpochId, u64)],
        lineage: &[EpochRecord],
        reports: &BTreeSet<Report>,
    ) -> Vec<Violation> {
        let (acks, c) = acks(at);
        check(&acks, lineage, reports, &c)
    }

    #[test]
    fn before_the_fork_survives_after_it_must_be_reported_once() {
        let p = paris().id;
        let lineage = [EpochRecord::FIRST, paris()];
        let none = BTreeSet::new();
        assert!(run(&[(FIRST_EPOCH, 100), (p, 130)], &lineage, &none).is_empty());
        assert_eq!(
            run(&[(FIRST_EPOCH, 101)], &lineage, &none),
            [Violation::AckedUnreported {
                epoch: FIRST_EPOCH,
                index: 101
            }]
        );
        let once = of([
            (p, 140, vec![range(FIRST_EPOCH, 101, 120)]),
            (p, 141, vec![range(FIRST_EPOCH, 121, 150)]),
        ]);
        assert!(run(&[(FIRST_EPOCH, 101), (FIRST_EPOCH, 150)], &lineage, &once).is_empty());
        let twice = of([
            (p, 140, vec![range(FIRST_EPOCH, 101, 120)]),
            (p, 141, vec![range(FIRST_EPOCH, 110, 150)]),
        ]);
        assert_eq!(
            run(&[(FIRST_EPOCH, 115)], &lineage, &twice),
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
        let reports = of([
            (lost, 130, vec![range(FIRST_EPOCH, 101, 120)]),
            (
                paris().id,
                160,
                vec![range(FIRST_EPOCH, 101, 120), range(lost, 121, 135)],
            ),
        ]);
        assert!(run(&[(FIRST_EPOCH, 110), (lost, 125)], &lineage, &reports).is_empty());
        let only_lost = of([(lost, 130, vec![range(FIRST_EPOCH, 101, 120)])]);
        assert_eq!(run(&[(FIRST_EPOCH, 110)], &lineage, &only_lost).len(), 1);
    }

    #[test]
    fn an_epoch_outside_the_lineage_must_be_reported() {
        let lineage = [EpochRecord::FIRST];
        let lost = paris().id;
        assert_eq!(run(&[(lost, 90)], &lineage, &BTreeSet::new()).len(), 1);
        let reported = of([(FIRST_EPOCH, 200, vec![range(lost, 1, 95)])]);
        assert!(run(&[(lost, 90)], &lineage, &reported).is_empty());
    }

    #[test]
    fn kept_and_also_reported_is_caught() {
        let p = paris().id;
        let lineage = [EpochRecord::FIRST, paris()];
        // Index 90 survived (below Paris's fork at 100), yet a reconciliation
        // in the final history also showed it: applied twice.
        let reports = of([(p, 140, vec![range(FIRST_EPOCH, 80, 120)])]);
        assert_eq!(
            run(&[(FIRST_EPOCH, 90)], &lineage, &reports),
            [Violation::KeptAndReported {
                epoch: FIRST_EPOCH,
                index: 90,
                ranges: 1
            }]
        );
    }

    #[test]
    fn surviving_by_position_needs_the_acknowledged_command() {
        let p = paris().id;
        let lineage = [EpochRecord::FIRST, paris()];
        let mut c = Checker::default();
        // Denver acknowledged command 7 at index 90; the history holds
        // command 8 there.
        c.on_apply(NodeId(1), FIRST_EPOCH, 90, 8);
        let ack = Ack {
            epoch: FIRST_EPOCH,
            index: 90,
            digest: Some(7),
        };
        assert_eq!(
            check(&[ack], &lineage, &BTreeSet::new(), &c),
            [Violation::AckedUnreported {
                epoch: FIRST_EPOCH,
                index: 90
            }]
        );
        // Reported once instead: accounted for.
        let once = of([(p, 140, vec![range(FIRST_EPOCH, 90, 90)])]);
        assert!(check(&[ack], &lineage, &once, &c).is_empty());
        // The acknowledged command, applied late under Paris's epoch: kept.
        let mut late = Checker::default();
        late.on_apply(NodeId(3), p, 90, 7);
        assert!(check(&[ack], &lineage, &BTreeSet::new(), &late).is_empty());
    }

    #[test]
    fn counted_as_compacted_is_a_loss_not_a_report() {
        let p = paris().id;
        let lineage = [EpochRecord::FIRST, paris()];
        // Paris took in Denver's 101..=150; the sender had compacted
        // 101..=130, so their commands never reached the hook.
        let compacted = BTreeSet::from([Report {
            epoch: p,
            index: 140,
            ranges: vec![range(FIRST_EPOCH, 101, 150)],
            from: FIRST_EPOCH,
            compacted: (101, 30),
        }]);
        assert_eq!(
            run(
                &[(FIRST_EPOCH, 130), (FIRST_EPOCH, 131)],
                &lineage,
                &compacted
            ),
            [Violation::AckedCompacted {
                epoch: FIRST_EPOCH,
                index: 130
            }]
        );
        assert!(run(
            &[(FIRST_EPOCH, 101)],
            &lineage,
            &of([(p, 140, vec![range(FIRST_EPOCH, 101, 150)])])
        )
        .is_empty());
    }
}
