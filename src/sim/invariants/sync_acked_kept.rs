//! Nothing acknowledged in a group-commit state is lost by a proven
//! takeover (DR auto-sync; the
//! [manual](crate::manual::invariants#nothing-acknowledged-at-rpo-0-lost)).
//!
//! While the leader's replication state is `Sync` or `AsyncWait`, a commit
//! needs a member of each site, and a survivable member that activates
//! with `rpo_proven` claims to hold every such commit. So every proposal
//! acknowledged in the parent epoch while its leader was in one of those
//! states must be in the new epoch's history: at or below the fork index,
//! applied there as the acknowledged command, or beyond it, carried over
//! (the founder proposes its log's tail again in the new epoch): its
//! command applied in the new epoch. One in neither is an acknowledged
//! entry lost where the cluster said RPO 0.

use super::{Ack, Checker, Violation};
use crate::ids::EpochId;

/// An activation reported with `rpo_proven`: the epoch it founded, the
/// epoch it forked from and the last index it took from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct ProvenFork {
    /// The epoch the activation left.
    pub parent: EpochId,
    /// The epoch it founded.
    pub epoch: EpochId,
    /// The last index taken from `parent`.
    pub fork_index: u64,
}

/// `acks`: the proposals acknowledged while their epoch's leader was in a
/// group-commit state; `forks`: every proven activation. Each ack of a
/// fork's parent must be in the fork's history.
pub(crate) fn check(acks: &[Ack], forks: &[ProvenFork], checker: &Checker) -> Vec<Violation> {
    let mut found = Vec::new();
    for f in forks {
        let carried: std::collections::BTreeSet<u64> = checker
            .applied
            .range((f.epoch, 0, 0)..=(f.epoch, u64::MAX, u64::MAX))
            .map(|(_, (d, _))| *d)
            .collect();
        for a in acks.iter().filter(|a| a.epoch == f.parent) {
            let in_prefix = a.index <= f.fork_index && a.applied_as_acknowledged(checker, f.parent);
            let carried_over = a.digest.is_some_and(|d| carried.contains(&d));
            if !in_prefix && !carried_over {
                found.push(Violation::SyncAckedLost {
                    epoch: a.epoch,
                    index: a.index,
                    fork: f.epoch,
                });
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::FIRST_EPOCH;
    use crate::topology::NodeId;

    fn ack(index: u64, digest: u64) -> Ack {
        Ack {
            epoch: FIRST_EPOCH,
            index,
            digest: Some(digest),
        }
    }

    fn fork(fork_index: u64) -> ProvenFork {
        ProvenFork {
            parent: FIRST_EPOCH,
            epoch: EpochId {
                number: 2,
                founder: NodeId(3),
            },
            fork_index,
        }
    }

    #[test]
    fn an_acknowledgement_beyond_a_proven_fork_is_lost() {
        let mut c = Checker::default();
        c.on_apply(NodeId(1), FIRST_EPOCH, 7, 70);
        c.on_apply(NodeId(1), FIRST_EPOCH, 8, 80);
        assert!(check(&[ack(7, 70)], &[fork(7)], &c).is_empty());
        assert_eq!(
            check(&[ack(7, 70), ack(8, 80)], &[fork(7)], &c),
            [Violation::SyncAckedLost {
                epoch: FIRST_EPOCH,
                index: 8,
                fork: fork(7).epoch
            }]
        );
        // No proven fork: nothing to hold the acknowledgements to.
        assert!(check(&[ack(8, 80)], &[], &c).is_empty());
        // Carried over: the same command applied in the new epoch.
        c.on_apply(NodeId(3), fork(7).epoch, 8, 80);
        assert!(check(&[ack(7, 70), ack(8, 80)], &[fork(7)], &c).is_empty());
    }

    #[test]
    fn another_command_at_the_index_is_lost_too() {
        let mut c = Checker::default();
        c.on_apply(NodeId(3), FIRST_EPOCH, 7, 71);
        assert_eq!(check(&[ack(7, 70)], &[fork(9)], &c).len(), 1);
        // Acknowledgements of another epoch are not this fork's business.
        let other = Ack {
            epoch: fork(9).epoch,
            ..ack(12, 70)
        };
        assert!(check(&[other], &[fork(9)], &c).is_empty());
    }
}
