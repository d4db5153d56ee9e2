//! Epochs: histories of the cluster. The first epoch starts at bootstrap;
//! in main-site mode a survivable core that loses the main site forks a new
//! one from the log it has. Every message carries its sender's epoch, and a
//! node never steps a message of another epoch into raft.
//!
//! An epoch is identified by its number and founder ([`EpochId`]). A
//! member keeps its epoch's *lineage*: every epoch from the first one to
//! its own, each with the point (index, term) where it forked from its
//! parent. Two lineages share a prefix; where they part is the *common
//! point*: every entry up to it is the same on both sides, every entry
//! after it on the older side is *divergent* and goes to reconciliation.

use std::fmt;

use crate::topology::{NodeId, Topology};

/// Which history: its number and the member that founded it (`n0` for the
/// first epoch). Newer epochs have higher numbers; two epochs of one number
/// (two survivable cores that each activated) are ordered by the founder's
/// rank.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EpochId {
    /// Sequence number, 1 for the first epoch.
    pub number: u64,
    /// The founding member (`NodeId(0)` for the first epoch).
    pub founder: NodeId,
}

/// The first epoch of every cluster.
pub const FIRST_EPOCH: EpochId = EpochId {
    number: 1,
    founder: NodeId(0),
};

impl fmt::Display for EpochId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.founder.0 == 0 {
            write!(f, "e{}", self.number)
        } else {
            write!(f, "e{}/{}", self.number, self.founder)
        }
    }
}

/// An epoch and where it forked from its parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochRecord {
    /// The epoch.
    pub id: EpochId,
    /// Last index taken from the parent (0 for the first epoch).
    pub fork_index: u64,
    /// Term of that entry.
    pub fork_term: u64,
}

impl EpochRecord {
    /// The first epoch's record.
    pub const FIRST: Self = Self {
        id: FIRST_EPOCH,
        fork_index: 0,
        fork_term: 0,
    };
}

/// Whether `a` is newer than `b`: a higher number, or the same number
/// founded by a better-ranked member.
pub(crate) fn newer(topology: &Topology, a: EpochId, b: EpochId) -> bool {
    let key = |e: EpochId| {
        let pref = topology
            .member(e.founder)
            .map_or(u32::MAX, |m| m.preference());
        (
            e.number,
            std::cmp::Reverse(pref),
            std::cmp::Reverse(e.founder),
        )
    };
    key(a) > key(b)
}

/// Where two lineages part: every index up to it holds the same entry on
/// both sides. `None` when they share no epoch (different clusters).
pub(crate) fn common_point(a: &[EpochRecord], b: &[EpochRecord]) -> Option<u64> {
    let shared = a.iter().zip(b).take_while(|(x, y)| x.id == y.id).count();
    if shared == 0 {
        return None;
    }
    let next = |l: &[EpochRecord]| l.get(shared).map_or(u64::MAX, |r| r.fork_index);
    Some(next(a).min(next(b)))
}

/// The epoch that appended index `index` of the history `lineage` ends in
/// (its *origin*): the epoch whose span, after its fork point and up to
/// its child's, holds it.
pub(crate) fn origin_of(lineage: &[EpochRecord], index: u64) -> EpochId {
    lineage
        .iter()
        .rev()
        .find(|r| index > r.fork_index)
        .or(lineage.first())
        .map_or(FIRST_EPOCH, |r| r.id)
}

/// Whether entry `index` appended by `epoch` is part of the history
/// `lineage` ends in (it was taken over when the later epochs forked).
pub(crate) fn in_history(lineage: &[EpochRecord], epoch: EpochId, index: u64) -> bool {
    let Some(pos) = lineage.iter().position(|r| r.id == epoch) else {
        return false;
    };
    lineage
        .get(pos + 1)
        .is_none_or(|child| index <= child.fork_index)
}

/// A run of entries appended by one epoch, `first..=last` in its indexes:
/// what one reconciliation showed the application of that epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EntryRange {
    /// The epoch that appended (and committed) them: their origin.
    pub epoch: EpochId,
    /// First index.
    pub first: u64,
    /// Last index.
    pub last: u64,
}

impl EntryRange {
    /// Whether `(epoch, index)` is in the range.
    pub fn contains(&self, epoch: EpochId, index: u64) -> bool {
        self.epoch == epoch && (self.first..=self.last).contains(&index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(number: u64, founder: u64, fork: u64) -> EpochRecord {
        EpochRecord {
            id: EpochId {
                number,
                founder: NodeId(founder),
            },
            fork_index: fork,
            fork_term: 1,
        }
    }

    #[test]
    fn origins_and_history_follow_the_fork_points() {
        let paris = [EpochRecord::FIRST, rec(2, 3, 100), rec(3, 4, 300)];
        assert_eq!(origin_of(&paris, 1), FIRST_EPOCH);
        assert_eq!(origin_of(&paris, 100), FIRST_EPOCH);
        assert_eq!(origin_of(&paris, 101), rec(2, 3, 0).id);
        assert_eq!(origin_of(&paris, 301), rec(3, 4, 0).id);
        assert!(in_history(&paris, FIRST_EPOCH, 100));
        assert!(!in_history(&paris, FIRST_EPOCH, 101));
        assert!(in_history(&paris, rec(2, 3, 0).id, 300));
        assert!(in_history(&paris, rec(3, 4, 0).id, 5000));
        assert!(!in_history(&paris, rec(2, 6, 0).id, 101));
    }

    #[test]
    fn lineages_part_at_the_first_fork() {
        let root = EpochRecord::FIRST;
        let paris = [root, rec(2, 3, 100)];
        let london = [root, rec(2, 6, 120)];
        assert_eq!(common_point(&[root], &paris), Some(100));
        assert_eq!(common_point(&paris, &[root]), Some(100));
        assert_eq!(common_point(&paris, &london), Some(100));
        assert_eq!(common_point(&paris, &paris), Some(u64::MAX));
        let later = [root, rec(2, 3, 100), rec(3, 4, 300)];
        assert_eq!(common_point(&later, &paris), Some(300));
        assert_eq!(common_point(&[rec(1, 9, 0)], &paris), None);
    }

    #[test]
    fn newer_by_number_then_rank() {
        let t = crate::topology::denver_paris_london().build().unwrap();
        let e = |n, f| EpochId {
            number: n,
            founder: NodeId(f),
        };
        assert!(newer(&t, e(2, 3), FIRST_EPOCH));
        assert!(newer(&t, e(3, 6), e(2, 3)));
        // Paris (rank 1) beats London (rank 2) at one number.
        assert!(newer(&t, e(2, 3), e(2, 6)));
        assert!(!newer(&t, e(2, 6), e(2, 3)));
        assert!(!newer(&t, e(2, 3), e(2, 3)));
        assert_eq!(e(2, 3).to_string(), "e2/n3");
        assert_eq!(FIRST_EPOCH.to_string(), "e1");
    }
}
