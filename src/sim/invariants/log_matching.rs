//! Log matching (Raft §5.3; the
//! [manual](crate::manual::invariants#log-matching)): if two logs hold an
//! entry with the same index and term, the entries are identical, and so
//! are the logs up to that index. Checked pairwise over the indexes both
//! logs still hold: same term implies same bytes, and same term at `i`
//! implies same term at `i - 1` (which, by induction, covers the whole
//! shared prefix). Logs of different epochs are separate histories and are
//! not compared.

use std::collections::BTreeMap;

use super::{Replica, Violation};

/// A replica's log by index: (term, digest).
type Log = BTreeMap<u64, (u64, u64)>;

pub(crate) fn check(replicas: &[Replica]) -> Vec<Violation> {
    let mut found = Vec::new();
    let logs: Vec<(&Replica, Log)> = replicas
        .iter()
        .map(|r| (r, r.log.iter().map(|&(i, t, d)| (i, (t, d))).collect()))
        .collect();
    for (a, (ra, la)) in logs.iter().enumerate() {
        for (rb, lb) in logs.iter().skip(a + 1).map(|(r, l)| (*r, l)) {
            if ra.epoch != rb.epoch {
                continue;
            }
            for (&i, &(ta, da)) in la {
                let Some(&(tb, db)) = lb.get(&i) else {
                    continue;
                };
                let prev_differs = matches!(
                    (la.get(&(i - 1)), lb.get(&(i - 1))),
                    (Some((pa, _)), Some((pb, _))) if pa != pb
                );
                if ta == tb && (da != db || prev_differs) {
                    found.push(Violation::LogMismatch {
                        index: i,
                        first: ra.id,
                        second: rb.id,
                    });
                    break;
                }
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::NodeId;

    fn r(id: u64, log: &[(u64, u64, u64)]) -> Replica {
        Replica {
            id: NodeId(id),
            epoch: crate::ids::FIRST_EPOCH,
            live_voter: true,
            applied: 0,
            log: log.to_vec(),
        }
    }

    #[test]
    fn matching_and_diverging_tails_are_fine() {
        // A follower with an uncommitted tail from an older term.
        let a = r(1, &[(1, 1, 10), (2, 1, 20), (3, 2, 30)]);
        let b = r(2, &[(1, 1, 10), (2, 1, 20), (3, 1, 99)]);
        assert!(check(&[a, b]).is_empty());
    }

    #[test]
    fn same_term_different_bytes_is_caught() {
        let a = r(1, &[(1, 1, 10), (2, 2, 20)]);
        let b = r(2, &[(1, 1, 10), (2, 2, 21)]);
        assert_eq!(check(&[a, b]).len(), 1);
    }

    #[test]
    fn same_term_over_a_different_past_is_caught() {
        let a = r(1, &[(4, 1, 40), (5, 3, 50)]);
        let b = r(2, &[(4, 2, 41), (5, 3, 50)]);
        assert!(matches!(
            check(&[a, b])[..],
            [Violation::LogMismatch { index: 5, .. }]
        ));
    }
}
