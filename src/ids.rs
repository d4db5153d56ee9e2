//! The vocabulary every layer shares: epochs (which history), entry ranges
//! (runs of entries of one epoch) and proposal ids (which command). It sits
//! below everything else: the node, the wire formats, events, errors and
//! the state machine trait all speak it, and it depends only on
//! [`NodeId`].
//!
//! # Epochs
//!
//! Epochs are histories of the cluster. The first epoch starts at bootstrap;
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

use crate::topology::NodeId;

/// Which history: its number and the member that founded it (`n0` for the
/// first epoch).
///
/// # Order
/// The derived order (`number`, then `founder`) is the order of time: of
/// two epochs, the greater one is the newer, the one that survives when
/// they meet. The number encodes it without needing the topology, so a
/// downstream system that receives fencing tokens can compare them as they
/// are:
///
/// - `number = (generation − 1) · 2¹⁶ + precedence` for a fork, 1 for the
///   first epoch. A fork's generation is one more than the highest
///   generation of the history it forks from, so a descendant is newer
///   than every epoch of its parent's generation.
/// - Two *sibling* epochs (forked in the same generation, e.g. two
///   survivable cores that each lost the main site) differ by their
///   founder's precedence: the better rank wins, then the earlier position
///   in its core (see [`EpochId::fork`]).
///
/// [`generation`](Self::generation) is the sequence number people read
/// (`e1`, `e2/n3`, ...); `number` is the ordering key carried on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EpochId {
    /// Ordering key: 1 for the first epoch, then
    /// `(generation − 1) · 2¹⁶ + precedence` (see the type's docs).
    pub number: u64,
    /// The founding member (`NodeId(0)` for the first epoch).
    pub founder: NodeId,
}

/// The first epoch of every cluster.
pub const FIRST_EPOCH: EpochId = EpochId {
    number: 1,
    founder: NodeId(0),
};

/// Epoch numbers per generation: the low part holds the founder's precedence.
const GENERATION_STRIDE: u64 = 1 << 16;
/// Positions per rank in the precedence (a core has at most this many members).
const POSITIONS_PER_RANK: u64 = 16;

impl EpochId {
    /// The epoch a survivable member of rank `rank` (1 = best) at
    /// `position` in its core (0 = primary) founds when it forks from
    /// the history `lineage`: one generation after the newest epoch there,
    /// with the founder's precedence in the low part of the number, so
    /// that siblings order by rank, then position (and, for two founders
    /// of the same rank and position, such as a replacement and the member
    /// it replaced, by id).
    pub fn fork(lineage: &[EpochRecord], founder: NodeId, rank: u32, position: usize) -> Self {
        let generation = lineage.iter().map(|r| r.id.generation()).max().unwrap_or(1) + 1;
        let slot = u64::from(rank.max(1) - 1)
            .saturating_mul(POSITIONS_PER_RANK)
            .saturating_add((position as u64).min(POSITIONS_PER_RANK - 1))
            .min(GENERATION_STRIDE - 1);
        Self {
            number: (generation - 1)
                .saturating_mul(GENERATION_STRIDE)
                .saturating_add(GENERATION_STRIDE - 1 - slot),
            founder,
        }
    }

    /// The generation: 1 for the first epoch, one more for each fork on
    /// the way to this one.
    pub fn generation(&self) -> u64 {
        self.number / GENERATION_STRIDE + 1
    }
}

impl fmt::Display for EpochId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.founder.0 == 0 {
            write!(f, "e{}", self.generation())
        } else {
            write!(f, "e{}/{}", self.generation(), self.founder)
        }
    }
}

/// The stable JSON form: `{"name":"e2/n3","number":131071,"founder":3}`
/// (`name` is the [`Display`](fmt::Display) form, `number` the ordering key,
/// `founder` the founding member's id, 0 for the first epoch).
impl serde::Serialize for EpochId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct as _;
        let mut st = s.serialize_struct("EpochId", 3)?;
        st.serialize_field("name", &self.to_string())?;
        st.serialize_field("number", &self.number)?;
        st.serialize_field("founder", &self.founder.0)?;
        st.end()
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

/// Whether `a` is newer than `b`: the epochs' own order (a later
/// generation, or the same generation founded by a better-ranked member;
/// see [`EpochId`]). The topology is not needed: the founder's precedence
/// is part of the number.
pub(crate) fn newer(a: EpochId, b: EpochId) -> bool {
    a > b
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
#[cfg(any(test, feature = "sim"))]
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
///
/// Displays as `e1:5..=9`; serializes as
/// `{"epoch":{"name":"e1",..},"first":5,"last":9}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
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

impl fmt::Display for EntryRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}..={}", self.epoch, self.first, self.last)
    }
}

/// Identifies one proposal in the whole cluster's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProposalId {
    /// The node it was proposed at.
    pub node: NodeId,
    /// That node's start count on its storage (ids never repeat across restarts).
    pub boot: u64,
    /// Sequence number within that start.
    pub seq: u64,
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

    /// The public order and `newer` agree with the order of time, for
    /// sibling epochs (forked from one parent by different survivable
    /// members) and for descendants.
    #[test]
    fn the_order_is_time_for_siblings_and_descendants() {
        let t = crate::topology::denver_paris_london().build().unwrap();
        let fork = |parent: &[EpochRecord], founder: u64| {
            let m = t.member(NodeId(founder)).unwrap();
            let id = EpochId::fork(parent, NodeId(founder), m.preference(), m.position());
            let mut lineage = parent.to_vec();
            lineage.push(EpochRecord {
                id,
                fork_index: 10 * lineage.len() as u64,
                fork_term: 1,
            });
            lineage
        };
        let root = [EpochRecord::FIRST];
        // Siblings of generation 2: Paris's primary (rank 1, position 0),
        // Paris's standby, London's primary (rank 2), London's standby.
        let paris_a = fork(&root, 3);
        let paris_b = fork(&root, 4);
        let london_a = fork(&root, 6);
        let london_b = fork(&root, 7);
        // Descendants (generation 3): London's standby forking from
        // London's primary, Paris's primary from Paris's.
        let london_child = fork(&london_a, 7);
        let paris_child = fork(&paris_a, 3);
        let last = |l: &[EpochRecord]| l.last().unwrap().id;
        // Oldest first, as time (and the survivor at reunion) orders them.
        let by_time = [
            FIRST_EPOCH,
            last(&london_b),
            last(&london_a),
            last(&paris_b),
            last(&paris_a),
            last(&london_child),
            last(&paris_child),
        ];
        for (i, a) in by_time.iter().enumerate() {
            for (j, b) in by_time.iter().enumerate() {
                assert_eq!(a.cmp(b), i.cmp(&j), "{a} vs {b}");
                assert_eq!(newer(*a, *b), i > j, "newer({a}, {b})");
            }
        }
        // A fencing token (epoch, term) orders the same way: a sibling's
        // high term does not make it newer than the epoch that survives.
        assert!((last(&paris_a), 1) > (last(&london_a), 99));
        assert!((last(&london_child), 1) > (last(&paris_a), 99));
        assert_eq!(last(&paris_a).generation(), 2);
        assert_eq!(last(&paris_child).generation(), 3);
        assert_eq!(last(&paris_a).to_string(), "e2/n3");
        assert_eq!(last(&london_child).to_string(), "e3/n7");
        assert_eq!(FIRST_EPOCH.to_string(), "e1");
        assert_eq!(FIRST_EPOCH.generation(), 1);
    }

    /// The stable JSON forms of ids, as the module docs and the README
    /// fix them: a node is its number, an epoch its name, number and
    /// founder.
    #[test]
    fn ids_serialize_to_their_stable_json() {
        let t = crate::topology::denver_paris().build().unwrap();
        let m = t.member(NodeId(3)).unwrap();
        let e2 = EpochId::fork(
            &[EpochRecord::FIRST],
            NodeId(3),
            m.preference(),
            m.position(),
        );
        assert_eq!(json(&NodeId(3)), "3");
        assert_eq!(json(&e2), r#"{"name":"e2/n3","number":131071,"founder":3}"#);
        assert_eq!(
            json(&FIRST_EPOCH),
            r#"{"name":"e1","number":1,"founder":0}"#
        );
        let r = EntryRange {
            epoch: FIRST_EPOCH,
            first: 5,
            last: 9,
        };
        assert_eq!(r.to_string(), "e1:5..=9");
        assert_eq!(
            json(&r),
            r#"{"epoch":{"name":"e1","number":1,"founder":0},"first":5,"last":9}"#
        );
    }

    fn json<T: serde::Serialize>(v: &T) -> String {
        serde_json::to_string(v).unwrap()
    }
}
