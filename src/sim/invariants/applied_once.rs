//! Each proposal applied at most once, nothing applied that was never
//! proposed (main-site and witness mode alike).
//!
//! Counted on every member, per command, as its state machine's state
//! holds them, independently of what the state machine does with a
//! command (a key-value `set` applied twice leaves the same state and would
//! hide a second apply). A member's state is what it applied since it
//! started empty or last restored a snapshot, plus what that snapshot
//! held: the simulator tags every snapshot its state machines take with a
//! serial number and keeps the counts the taker held then, so a restore
//! (a restart, a leader's snapshot, joining a newer epoch) brings them
//! back. A replay after a restart re-applies entries on top of the
//! restored counts, exactly as the state machine sees them.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use super::Violation;
use crate::ids::ProposalId;
use crate::topology::NodeId;

/// Snapshots remembered per member (taken or restored by it): a restore
/// brings back one of the member's own latest or one its leader just sent.
const SNAPSHOTS_KEPT: usize = 4;

/// Applies per command digest in one member's current state. A hash map:
/// the simulator counts every apply of every member, and copies a
/// member's counts whenever it takes a snapshot (a flat table copies in
/// one piece); nothing iterates it in an order that shows.
type Counts = HashMap<u64, u64, DigestHash>;

/// Hashing for keys made of digests and member ids: the digests are
/// already well mixed (see `digest`), so one multiply per word suffices, and it
/// is the same on every run (no random seed).
type DigestHash = BuildHasherDefault<WordHasher>;

/// See [`DigestHash`].
#[derive(Default)]
pub(crate) struct WordHasher(u64);

impl Hasher for WordHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// How often each command was applied, per member, as the checker saw it.
#[derive(Debug, Default)]
pub(crate) struct ApplyCounts {
    /// Per member, its current state's counts and the most it held before.
    members: BTreeMap<NodeId, MemberCounts>,
    /// The counts each tagged snapshot held, by serial.
    snapshots: BTreeMap<u64, Arc<Counts>>,
    /// Per member, the serials it took or restored last (newest last).
    held: BTreeMap<NodeId, VecDeque<u64>>,
    next_serial: u64,
    /// Commands a reconciliation hook returned (they need no proposal).
    from_hooks: BTreeSet<u64>,
    /// Counts every change of what [`check`] reads (applies, restores,
    /// fresh starts, hook commands), so that a check can be reused.
    generation: u64,
    /// The last [`check`]: what it saw and what it found.
    checked: Option<(Checked, Vec<Violation>)>,
}

/// What a [`check`] saw: the counts' generation, and the number of
/// proposals and the last of them (proposals are only ever added, each
/// id once: an equal number is an equal set; the last is compared too).
type Checked = (u64, usize, Option<(ProposalId, u64)>);

/// One member's counts.
#[derive(Debug, Default)]
struct MemberCounts {
    /// Applies per command digest in its current state (shared with the
    /// snapshots that hold the same counts; copied on the next apply).
    state: Arc<Counts>,
    /// Per command digest, the most applies any of its earlier states held.
    /// A state's counts only grow while it lasts, so the most it held is
    /// what it holds when it is replaced (a restart, a restore): folded in
    /// then, not at every apply. With the current state's counts, the most
    /// any state of the member ever held.
    before: Counts,
}

impl MemberCounts {
    /// Replaces the current state by `counts`, keeping the most the old
    /// one held.
    fn replace(&mut self, counts: Arc<Counts>) {
        let old = std::mem::replace(&mut self.state, counts);
        for (&digest, &n) in old.iter() {
            let most = self.before.entry(digest).or_insert(0);
            *most = (*most).max(n);
        }
    }
}

impl ApplyCounts {
    /// `node` starts with an empty state machine.
    pub(crate) fn fresh(&mut self, node: NodeId) {
        self.generation += 1;
        self.members
            .entry(node)
            .or_default()
            .replace(Arc::default());
    }

    /// `node` applied the command with digest `digest`.
    pub(crate) fn applied(&mut self, node: NodeId, digest: u64) {
        self.generation += 1;
        let member = self.members.entry(node).or_default();
        *Arc::make_mut(&mut member.state).entry(digest).or_insert(0) += 1;
    }

    /// `node` took a snapshot of its state: its serial.
    pub(crate) fn snapshot_taken(&mut self, node: NodeId) -> u64 {
        self.next_serial += 1;
        let serial = self.next_serial;
        let counts = (self.members.get(&node)).map_or_else(Arc::default, |m| m.state.clone());
        self.snapshots.insert(serial, counts);
        self.hold(node, serial);
        serial
    }

    /// `node` restored the snapshot tagged `serial` (`None`: untagged, or
    /// one no longer remembered; its state starts empty then, which can
    /// only hide a double apply, never invent one).
    pub(crate) fn restored(&mut self, node: NodeId, serial: Option<u64>) {
        self.generation += 1;
        let counts = serial
            .and_then(|s| self.snapshots.get(&s).cloned())
            .unwrap_or_default();
        // The state now holds what the snapshot held.
        self.members.entry(node).or_default().replace(counts);
        if let Some(s) = serial.filter(|s| self.snapshots.contains_key(s)) {
            self.hold(node, s);
        }
    }

    fn hold(&mut self, node: NodeId, serial: u64) {
        let held = self.held.entry(node).or_default();
        held.retain(|&s| s != serial);
        held.push_back(serial);
        let mut dropped = Vec::new();
        while held.len() > SNAPSHOTS_KEPT {
            dropped.extend(held.pop_front());
        }
        for old in dropped {
            if !self.held.values().any(|h| h.contains(&old)) {
                self.snapshots.remove(&old);
            }
        }
    }

    /// A reconciliation hook returned `digest`: applying it is no phantom.
    pub(crate) fn hook_returned(&mut self, digest: u64) {
        self.generation += 1;
        self.from_hooks.insert(digest);
    }

    /// The most applies of each command any state of each member held,
    /// by member and digest.
    pub(crate) fn most(&self) -> Vec<((NodeId, u64), u64)> {
        let mut most = Vec::new();
        for (&node, m) in &self.members {
            let mut merged = m.before.clone();
            for (&digest, &n) in m.state.iter() {
                let e = merged.entry(digest).or_insert(0);
                *e = (*e).max(n);
            }
            most.extend(merged.into_iter().map(|(digest, n)| ((node, digest), n)));
        }
        most.sort_unstable();
        most
    }

    /// Whether a reconciliation hook returned `digest`.
    pub(crate) fn made_by_hook(&self, digest: u64) -> bool {
        self.from_hooks.contains(&digest)
    }
}

/// `proposed`: the digest of every proposal's command. Each command may be
/// applied in one state at most as often as it was proposed (once, for a
/// command proposed once); a command never proposed is a phantom unless a
/// reconciliation hook made it. Commands proposed more than once are
/// counted together (the first such proposal is named).
///
/// `proposed` only ever grows (a simulator's proposals); a check with
/// nothing applied, restored or proposed since the last one returns what
/// that one found (the end of a run checks twice).
pub(crate) fn check(
    counts: &mut ApplyCounts,
    proposed: &BTreeMap<ProposalId, u64>,
) -> Vec<Violation> {
    let seen: Checked = (
        counts.generation,
        proposed.len(),
        proposed.last_key_value().map(|(&id, &d)| (id, d)),
    );
    if let Some((was, found)) = &counts.checked {
        if *was == seen {
            return found.clone();
        }
    }
    let found = check_afresh(counts, proposed);
    counts.checked = Some((seen, found.clone()));
    found
}

fn check_afresh(counts: &ApplyCounts, proposed: &BTreeMap<ProposalId, u64>) -> Vec<Violation> {
    let mut by_digest: HashMap<u64, (ProposalId, u64), DigestHash> = HashMap::default();
    for (&id, &d) in proposed {
        by_digest.entry(d).or_insert((id, 0)).1 += 1;
    }
    let mut found = Vec::new();
    for ((node, digest), applies) in counts.most() {
        match by_digest.get(&digest) {
            Some(&(proposal, times)) if applies > times => found.push(Violation::AppliedTwice {
                node,
                proposal,
                applies,
            }),
            Some(_) => {}
            None if counts.made_by_hook(digest) => {}
            None => found.push(Violation::Phantom { node, digest }),
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(seq: u64) -> ProposalId {
        ProposalId {
            node: NodeId(3),
            boot: 1,
            seq,
        }
    }

    #[test]
    fn a_second_apply_in_one_state_is_caught_a_replay_after_a_restore_is_not() {
        let (a, b) = (NodeId(1), NodeId(2));
        let proposed = BTreeMap::from([(id(0), 10), (id(1), 11)]);
        let mut c = ApplyCounts::default();
        c.fresh(a);
        c.applied(a, 10);
        let serial = c.snapshot_taken(a);
        c.applied(a, 11);
        // Restart: back to the snapshot, the entry after it replayed.
        c.fresh(a);
        c.restored(a, Some(serial));
        c.applied(a, 11);
        assert!(check(&mut c, &proposed).is_empty());
        // Another member installs the snapshot, then applies 10 again.
        c.restored(b, Some(serial));
        c.applied(b, 10);
        // A third installs a snapshot of that state: it holds it twice.
        let twice = c.snapshot_taken(b);
        c.restored(NodeId(9), Some(twice));
        assert_eq!(
            check(&mut c, &proposed),
            [
                Violation::AppliedTwice {
                    node: b,
                    proposal: id(0),
                    applies: 2
                },
                Violation::AppliedTwice {
                    node: NodeId(9),
                    proposal: id(0),
                    applies: 2
                }
            ]
        );
        // Latched: a later restore does not hide it.
        c.restored(b, None);
        assert_eq!(check(&mut c, &proposed).len(), 2);
        // A check with nothing changed since reuses the last; one with a
        // proposal more (or an apply more) looks again.
        assert_eq!(check(&mut c, &proposed).len(), 2);
        let mut more = proposed.clone();
        more.insert(id(2), 10);
        assert_eq!(check(&mut c, &more), []);
        for _ in 0..3 {
            c.applied(b, 10);
        }
        assert_eq!(
            check(&mut c, &more).len(),
            1,
            "three applies, two proposals"
        );
    }

    #[test]
    fn commands_proposed_twice_may_be_applied_twice_never_proposed_is_a_phantom() {
        let node = NodeId(1);
        let proposed = BTreeMap::from([(id(0), 10), (id(1), 10)]);
        let mut c = ApplyCounts::default();
        c.applied(node, 10);
        c.applied(node, 10);
        assert!(check(&mut c, &proposed).is_empty());
        c.applied(node, 10);
        assert_eq!(
            check(&mut c, &proposed),
            [Violation::AppliedTwice {
                node,
                proposal: id(0),
                applies: 3
            }]
        );
        let mut c = ApplyCounts::default();
        c.applied(node, 12);
        c.applied(node, 13);
        c.hook_returned(13);
        assert_eq!(
            check(&mut c, &proposed),
            [Violation::Phantom { node, digest: 12 }]
        );
    }

    #[test]
    fn old_snapshots_are_forgotten_unless_a_member_holds_them() {
        let (a, b) = (NodeId(1), NodeId(2));
        let mut c = ApplyCounts::default();
        let first = c.snapshot_taken(a);
        c.restored(b, Some(first));
        for _ in 0..SNAPSHOTS_KEPT {
            c.snapshot_taken(a);
        }
        assert!(c.snapshots.contains_key(&first), "b still holds it");
        for _ in 0..SNAPSHOTS_KEPT {
            c.snapshot_taken(b);
        }
        assert!(!c.snapshots.contains_key(&first));
        assert_eq!(c.snapshots.len(), 2 * SNAPSHOTS_KEPT);
    }
}
