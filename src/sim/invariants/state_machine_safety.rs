//! State machine safety (Raft §5.4.3; the
//! [manual](crate::manual::invariants#state-machine-safety)): every member
//! applies the same command at a given index.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};

use super::Violation;
use crate::ids::EpochId;
use crate::topology::NodeId;

/// `at`: the epoch, index and position at that index of the apply (epochs
/// diverge after a fork; a reconciliation applies several commands at one
/// index).
pub(super) fn check(
    applied: &mut BTreeMap<(EpochId, u64, u64), (u64, NodeId)>,
    reported: &mut BTreeSet<(EpochId, u64, u64)>,
    node: NodeId,
    at: (EpochId, u64, u64),
    digest: u64,
) -> Option<Violation> {
    let index = at.1;
    // One search of the map per apply (an entry), not a look-up then an
    // insert: every apply of every member comes here.
    match applied.entry(at) {
        Entry::Vacant(v) => {
            v.insert((digest, node));
            None
        }
        Entry::Occupied(o) => {
            let (d0, first) = *o.get();
            (d0 != digest && reported.insert(at)).then_some(Violation::Diverged {
                index,
                first,
                second: node,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_different_command_at_an_applied_index_is_caught_once() {
        let (mut a, mut r) = (BTreeMap::new(), BTreeSet::new());
        let e1 = crate::ids::FIRST_EPOCH;
        let e2 = EpochId {
            number: 2,
            founder: NodeId(3),
        };
        assert_eq!(check(&mut a, &mut r, NodeId(1), (e1, 5, 0), 42), None);
        assert_eq!(check(&mut a, &mut r, NodeId(2), (e1, 5, 0), 42), None);
        assert_eq!(
            check(&mut a, &mut r, NodeId(5), (e2, 5, 0), 77),
            None,
            "another epoch"
        );
        assert!(check(&mut a, &mut r, NodeId(3), (e1, 5, 0), 43).is_some());
        assert_eq!(
            check(&mut a, &mut r, NodeId(4), (e1, 5, 0), 44),
            None,
            "reported once"
        );
    }
}
