//! No committed entry lost (DESIGN §6, witness mode): every acknowledged
//! proposal is applied, with the same command, by every live voter.

use super::{Checker, Replica, Violation};
use crate::node::EpochId;

/// `acks`: the (epoch, index) of every acknowledged proposal of the final
/// epoch.
pub(crate) fn check(
    acks: &[(EpochId, u64)],
    replicas: &[Replica],
    checker: &Checker,
) -> Vec<Violation> {
    let mut found = Vec::new();
    for &(epoch, index) in acks {
        let recorded = checker.applied_digest(epoch, index).is_some();
        for r in replicas.iter().filter(|r| r.live_voter) {
            if r.applied < index || !recorded {
                found.push(Violation::AckedLost { index, node: r.id });
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::NodeId;

    #[test]
    fn an_acknowledged_index_not_applied_is_caught() {
        let mut c = Checker::default();
        let e = crate::node::FIRST_EPOCH;
        c.on_apply(NodeId(1), e, 7, 1);
        let ok = Replica {
            id: NodeId(1),
            epoch: e,
            live_voter: true,
            applied: 9,
            log: vec![],
        };
        let behind = Replica {
            id: NodeId(2),
            applied: 6,
            ..ok.clone()
        };
        assert!(check(&[(e, 7)], std::slice::from_ref(&ok), &c).is_empty());
        assert_eq!(check(&[(e, 7)], &[ok.clone(), behind], &c).len(), 1);
        assert_eq!(
            check(&[(e, 8)], &[ok], &c).len(),
            1,
            "never applied anywhere"
        );
    }
}
