//! State machine safety (DESIGN §6 "no committed entry lost"; Raft §5.4.3):
//! every member applies the same command at a given index.

use std::collections::{BTreeMap, BTreeSet};

use super::Violation;
use crate::topology::NodeId;

pub(super) fn check(
    applied: &mut BTreeMap<u64, (u64, NodeId)>,
    reported: &mut BTreeSet<u64>,
    node: NodeId,
    index: u64,
    digest: u64,
) -> Option<Violation> {
    match applied.get(&index) {
        None => {
            applied.insert(index, (digest, node));
            None
        }
        Some(&(d0, first)) if d0 != digest && reported.insert(index) => Some(Violation::Diverged {
            index,
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
    fn a_different_command_at_an_applied_index_is_caught_once() {
        let (mut a, mut r) = (BTreeMap::new(), BTreeSet::new());
        assert_eq!(check(&mut a, &mut r, NodeId(1), 5, 42), None);
        assert_eq!(check(&mut a, &mut r, NodeId(2), 5, 42), None);
        assert!(check(&mut a, &mut r, NodeId(3), 5, 43).is_some());
        assert_eq!(
            check(&mut a, &mut r, NodeId(4), 5, 44),
            None,
            "reported once"
        );
    }
}
