//! No committed entry lost (witness mode; the
//! [manual](crate::manual::invariants#no-committed-entry-lost)): every
//! acknowledged proposal is applied, with the same command, by every live
//! voter.

use super::{Ack, Checker, Replica, Violation};

/// `acks`: every acknowledged proposal of the final epoch. Each must be at
/// or below every live voter's applied index, and what was applied at its
/// (epoch, index) must be the acknowledged command: an acknowledged index
/// later overwritten by another command is lost.
pub(crate) fn check(acks: &[Ack], replicas: &[Replica], checker: &Checker) -> Vec<Violation> {
    let mut found = Vec::new();
    for ack in acks {
        let kept = ack.applied_as_acknowledged(checker, ack.epoch);
        for r in replicas.iter().filter(|r| r.live_voter) {
            if r.applied < ack.index || !kept {
                found.push(Violation::AckedLost {
                    index: ack.index,
                    node: r.id,
                });
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::NodeId;

    fn ack(index: u64, digest: Option<u64>) -> Ack {
        Ack {
            epoch: crate::ids::FIRST_EPOCH,
            index,
            digest,
        }
    }

    fn replica(id: u64, applied: u64) -> Replica {
        Replica {
            id: NodeId(id),
            epoch: crate::ids::FIRST_EPOCH,
            live_voter: true,
            applied,
            log: vec![],
        }
    }

    #[test]
    fn an_acknowledged_index_not_applied_is_caught() {
        let mut c = Checker::default();
        c.on_apply(NodeId(1), crate::ids::FIRST_EPOCH, 7, 1);
        let (ok, behind) = (replica(1, 9), replica(2, 6));
        assert!(check(&[ack(7, Some(1))], std::slice::from_ref(&ok), &c).is_empty());
        assert_eq!(
            check(&[ack(7, Some(1))], &[ok.clone(), behind], &c).len(),
            1
        );
        assert_eq!(
            check(&[ack(8, Some(1))], std::slice::from_ref(&ok), &c).len(),
            1,
            "never applied anywhere"
        );
        assert!(
            check(&[ack(7, None)], &[ok], &c).is_empty(),
            "proposed around the simulator: the index is all there is to check"
        );
    }

    /// A reconciliation applies several commands at its record's index;
    /// a proposal it re-applied is acknowledged there (the fuzzer's
    /// `two_site_schedule` found the checker calling that lost).
    #[test]
    fn any_command_a_reconciliation_applied_at_the_index_counts() {
        let mut c = Checker::default();
        let at = |n| (crate::ids::FIRST_EPOCH, 7, n);
        for (node, n, digest) in [(1, 0, 5), (1, 1, 6), (2, 0, 5), (2, 1, 6)] {
            c.on_apply_at(NodeId(node), at(n), digest);
        }
        let replicas = [replica(1, 9), replica(2, 9)];
        assert!(check(&[ack(7, Some(6))], &replicas, &c).is_empty());
        assert_eq!(check(&[ack(7, Some(8))], &replicas, &c).len(), 2);
    }

    #[test]
    fn another_command_at_an_acknowledged_index_is_caught() {
        // The leader acknowledged command 1 at index 7; every replica
        // applied command 2 there (the acknowledged entry was overwritten).
        let mut c = Checker::default();
        c.on_apply(NodeId(1), crate::ids::FIRST_EPOCH, 7, 2);
        c.on_apply(NodeId(2), crate::ids::FIRST_EPOCH, 7, 2);
        let found = check(&[ack(7, Some(1))], &[replica(1, 9), replica(2, 9)], &c);
        assert_eq!(
            found,
            [
                Violation::AckedLost {
                    index: 7,
                    node: NodeId(1)
                },
                Violation::AckedLost {
                    index: 7,
                    node: NodeId(2)
                }
            ]
        );
    }
}
