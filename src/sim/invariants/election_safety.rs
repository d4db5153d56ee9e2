//! Election safety (Raft §5.2; the
//! [manual](crate::manual::invariants#election-safety)): at most one leader
//! per (epoch, term).

use std::collections::BTreeMap;

use super::Violation;
use crate::ids::EpochId;
use crate::topology::NodeId;

pub(super) fn check(
    leaders: &mut BTreeMap<(EpochId, u64), NodeId>,
    node: NodeId,
    epoch: EpochId,
    term: u64,
) -> Option<Violation> {
    match leaders.get(&(epoch, term)) {
        None => {
            leaders.insert((epoch, term), node);
            None
        }
        Some(&first) if first != node => Some(Violation::TwoLeaders {
            epoch,
            term,
            first,
            second: node,
        }),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_leader_in_a_term_is_caught() {
        let mut l = BTreeMap::new();
        let (e1, e2) = (
            crate::ids::FIRST_EPOCH,
            EpochId {
                number: 2,
                founder: NodeId(3),
            },
        );
        assert_eq!(check(&mut l, NodeId(1), e1, 2), None);
        assert_eq!(check(&mut l, NodeId(1), e1, 2), None);
        assert_eq!(check(&mut l, NodeId(2), e1, 3), None);
        assert_eq!(check(&mut l, NodeId(3), e2, 3), None, "another epoch");
        assert!(matches!(
            check(&mut l, NodeId(2), e1, 2),
            Some(Violation::TwoLeaders {
                first: NodeId(1),
                second: NodeId(2),
                ..
            })
        ));
    }
}
