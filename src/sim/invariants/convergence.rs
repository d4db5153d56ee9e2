//! Convergence (the [manual](crate::manual::invariants#convergence)): after
//! every fault healed, every live voter is in the same epoch and has applied
//! the same sequence (state machine safety makes equal indexes mean equal
//! contents).

use super::{Replica, Violation};

pub(crate) fn check(replicas: &[Replica]) -> Option<Violation> {
    let live: Vec<(crate::topology::NodeId, u64)> = replicas
        .iter()
        .filter(|r| r.live_voter)
        .map(|r| (r.id, r.applied))
        .collect();
    let max = live.iter().map(|(_, a)| *a).max()?;
    let mut epochs = replicas.iter().filter(|r| r.live_voter).map(|r| r.epoch);
    let first = epochs.next();
    let split = epochs.any(|e| Some(e) != first);
    (split || live.iter().any(|(_, a)| *a != max))
        .then_some(Violation::NotConverged { applied: live })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::NodeId;

    #[test]
    fn a_voter_behind_is_caught_and_others_are_ignored() {
        let r = |id, live_voter, applied| Replica {
            id: NodeId(id),
            epoch: crate::ids::FIRST_EPOCH,
            live_voter,
            applied,
            log: vec![],
        };
        assert_eq!(check(&[r(1, true, 9), r(2, true, 9), r(3, false, 2)]), None);
        assert!(check(&[r(1, true, 9), r(2, true, 8)]).is_some());
    }
}
