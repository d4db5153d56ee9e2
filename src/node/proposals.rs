//! Proposals waiting to be applied, and the replicated de-duplication
//! table that makes re-submitting them safe.
//!
//! A proposal is re-submitted whenever the leader changes and periodically
//! until it is applied, so a proposal dropped by a leader transfer or lost
//! with a deposed leader's uncommitted tail is never failed back to the
//! caller. The same proposal may then sit in the log twice; every member
//! applies only its first copy (at-most-once), keyed by
//! (proposer, boot, seq).

use std::collections::{BTreeMap, VecDeque};

use raft::StateRole;

use super::Node;

use crate::error::ProposeError;
use crate::ids::ProposalId;
use crate::state_machine::StateMachine;
use crate::storage::LogStore;
use crate::topology::NodeId;
use crate::wire::payload::{encode, DedupRecord, EntryPayload};

/// A proposal that was applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// Log index it was applied at.
    pub index: u64,
    /// Raft term of that entry: with the epoch, the fencing token to pass to
    /// downstream systems.
    pub term: u64,
    /// The epoch that appended it (for an entry at or below a fork point,
    /// the older epoch the new one inherited it from): `(epoch, term)` is
    /// the fencing token. Compared as a tuple it is ordered like time: a
    /// newer epoch (by [`EpochId`](crate::node::EpochId)'s own order, which
    /// ranks sibling epochs by their founder's rank), or the same epoch
    /// and a higher term, supersedes. No topology is needed to compare.
    pub epoch: crate::node::EpochId,
    /// What [`StateMachine::apply`](crate::StateMachine::apply) returned,
    /// or `None` when this member did not see the apply itself (it caught
    /// up from a snapshot taken after it): the command was applied, once,
    /// at `index`, but its response is not known here.
    pub response: Option<Vec<u8>>,
}

/// The result of a proposal, drained with [`Node::poll_outcome`](crate::Node::poll_outcome).
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct ProposalOutcome {
    /// Which proposal.
    pub id: ProposalId,
    /// Applied, or why it never will be.
    pub result: Result<Applied, ProposeError>,
}

#[derive(Debug)]
pub(crate) struct Pending {
    pub command: Vec<u8>,
    /// (term, tick) of the last submission.
    pub submitted: Option<(u64, u64)>,
}

/// Proposals made at this node and not applied yet, their outcomes, and
/// the replicated de-duplication table.
#[derive(Debug, Default)]
pub(crate) struct Proposals {
    next_seq: u64,
    pub pending: BTreeMap<u64, Pending>,
    /// Results not yet drained by [`Node::poll_outcome`].
    pub outcomes: VecDeque<ProposalOutcome>,
    /// Which proposals were applied (replicated: part of every snapshot).
    pub dedup: Dedup,
    /// The compaction floor the log last recorded (main-site mode; see
    /// `Node::compaction_floor`), `None` until one is applied here since
    /// this member started.
    pub keep_floor: Option<u64>,
    /// Leader: the floor it last proposed.
    pub keep_floor_proposed: u64,
    /// Leader of a newer epoch: per older epoch, the reconciled mark for
    /// which a divergent run missing its start was first offered, the
    /// tick, and the smallest gap offered since (see `Node::on_divergent`).
    pub gapped_since: BTreeMap<crate::ids::EpochId, (u64, u64, u64)>,
    /// What the last scan of `pending` that found none due proved, as
    /// (term, retry, tick): in that term and with that retry interval, none
    /// of them is due before that tick. A proposal added or made
    /// unsubmitted clears it; one removed leaves it true. So a leader
    /// waiting on many submitted proposals does not walk them all at
    /// every input.
    quiet: Option<(u64, u64, u64)>,
}

impl Proposals {
    pub(crate) fn add(&mut self, command: Vec<u8>) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.quiet = None; // the new one is due
        self.pending.insert(
            seq,
            Pending {
                command,
                submitted: None,
            },
        );
        seq
    }

    /// Every seq below this is resolved (applied or failed) here.
    pub(crate) fn floor(&self) -> u64 {
        self.pending.keys().next().copied().unwrap_or(self.next_seq)
    }

    pub(crate) fn len(&self) -> usize {
        self.pending.len()
    }

    /// Every waiting proposal is to be submitted again (a new epoch's
    /// leader).
    pub(crate) fn unsubmit_all(&mut self) {
        for p in self.pending.values_mut() {
            p.submitted = None;
        }
        self.quiet = None;
    }

    /// Whether any waiting proposal is [due](Pending::due) in `term` at
    /// tick `now`. Walks them only when the last walk's finding (see
    /// `quiet`) does not already answer, and records what a walk that
    /// finds none due proves: none is due before the earliest
    /// submission tick plus `retry` (a proposal submitted at `at` in this
    /// term is due exactly from `at + retry` on, `retry` being positive).
    pub(crate) fn any_due(&mut self, term: u64, now: u64, retry: u64) -> bool {
        if let Some((t, r, until)) = self.quiet {
            if t == term && r == retry && now < until {
                return false;
            }
        }
        self.quiet = None;
        let mut until = u64::MAX;
        for p in self.pending.values() {
            if p.due(term, now, retry) {
                return true;
            }
            if let Some((_, at)) = p.submitted {
                until = until.min(at.saturating_add(retry));
            }
        }
        if retry > 0 {
            self.quiet = Some((term, retry, until));
        }
        false
    }
}

impl Pending {
    /// Whether to (re-)submit now, in `term` at tick `now`: never
    /// submitted, submitted in another term, or `retry` ticks ago.
    pub(crate) fn due(&self, term: u64, now: u64, retry: u64) -> bool {
        match self.submitted {
            None => true,
            Some((t, at)) => t != term || now.saturating_sub(at) >= retry,
        }
    }
}

/// What the node admits a proposal or read against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Intake {
    /// This member was removed from the configuration.
    pub removed: bool,
    /// It leads.
    pub leading: bool,
    /// Followers forward to the leader ([`NodeConfig::forward_proposals`](super::NodeConfig::forward_proposals)).
    pub forward: bool,
    /// The leader known.
    pub leader: Option<NodeId>,
    /// How many may wait at once.
    pub max_pending: usize,
}

impl Intake {
    /// Admits a command of `len` bytes (at most `max_len`) with `pending`
    /// proposals waiting, or says why not.
    pub(crate) fn proposal(
        &self,
        len: usize,
        max_len: usize,
        pending: usize,
    ) -> Result<(), ProposeError> {
        if self.removed {
            return Err(ProposeError::Removed);
        }
        if len > max_len {
            return Err(ProposeError::TooLarge { len, max: max_len });
        }
        self.routed(pending)
    }

    /// Admits a read with `pending` reads waiting, or says why not.
    pub(crate) fn read(&self, pending: usize) -> Result<(), ProposeError> {
        if self.removed {
            return Err(ProposeError::Removed);
        }
        self.routed(pending)
    }

    fn routed(&self, pending: usize) -> Result<(), ProposeError> {
        if !self.forward && !self.leading {
            return Err(ProposeError::NotLeader {
                leader: self.leader,
            });
        }
        if pending >= self.max_pending {
            return Err(ProposeError::QueueFull {
                pending,
                limit: self.max_pending,
            });
        }
        Ok(())
    }
}

/// Whether waiting proposals can be handed to raft now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Route {
    /// This member leads.
    pub leader: bool,
    /// A leader transfer is under way.
    pub transferring: bool,
    /// The leader heard a majority of voters lately.
    pub quorum: bool,
    /// A leader is known (to forward to).
    pub leader_known: bool,
    /// Followers forward to the leader.
    pub forward: bool,
}

impl Route {
    /// A leader submits unless transferring or cut off from its quorum; a
    /// follower forwards when it knows the leader and forwarding is on.
    pub(crate) fn submits(&self) -> bool {
        let leading = self.leader && !self.transferring && self.quorum;
        let forwarding = !self.leader && self.leader_known && self.forward;
        leading || forwarding
    }
}

/// Whether a majority of `voters` (`me` included) was heard within
/// `window` ticks of `tick_no`, by `last_heard`.
pub(crate) fn quorum_heard(
    voters: &[u64],
    me: NodeId,
    last_heard: &BTreeMap<NodeId, u64>,
    tick_no: u64,
    window: u64,
) -> bool {
    let mut heard = 0;
    for &v in voters {
        let recent = v == me.0
            || last_heard
                .get(&NodeId(v))
                .is_some_and(|&t| tick_no - t <= window);
        heard += usize::from(recent);
        if heard * 2 > voters.len() {
            return true; // a majority already: the rest cannot change it
        }
    }
    false
}

/// Proposer incarnations remembered per proposer; older ones are forgotten.
const BOOTS_KEPT: usize = 4;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Window {
    floor: u64,
    /// seq -> (index, term) of the copy that was applied.
    seen: BTreeMap<u64, (u64, u64)>,
}

/// The replicated de-duplication table (part of every snapshot).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Dedup {
    windows: BTreeMap<(u64, u64), Window>,
}

impl Dedup {
    /// Admits the first copy of a proposal (applied at `index` in `term`)
    /// and records it; for a later copy, returns where the first one was
    /// applied (`None` if that has been forgotten).
    pub(crate) fn admit(
        &mut self,
        p: &EntryPayload,
        index: u64,
        term: u64,
    ) -> Result<(), Option<(u64, u64)>> {
        let w = self.windows.entry((p.proposer, p.boot)).or_default();
        if p.seq < w.floor {
            return Err(None);
        }
        if let Some(&first) = w.seen.get(&p.seq) {
            return Err(Some(first));
        }
        w.seen.insert(p.seq, (index, term));
        if p.floor > w.floor {
            w.floor = p.floor;
            w.seen = w.seen.split_off(&p.floor);
        }
        let boots: Vec<u64> = self
            .windows
            .range((p.proposer, 0)..=(p.proposer, u64::MAX))
            .map(|(k, _)| k.1)
            .collect();
        if boots.len() > BOOTS_KEPT {
            for b in &boots[..boots.len() - BOOTS_KEPT] {
                self.windows.remove(&(p.proposer, *b));
            }
        }
        Ok(())
    }

    /// Whether proposal (proposer, boot, seq) was applied in this history:
    /// it is remembered as applied, or it is below its proposer's floor
    /// (every seq below the floor was resolved at the proposer, and a
    /// proposal is only ever resolved by being applied). Proposer 0 is no
    /// proposal: never.
    pub(crate) fn covers(&self, proposer: u64, boot: u64, seq: u64) -> bool {
        proposer != 0
            && self
                .windows
                .get(&(proposer, boot))
                .is_some_and(|w| seq < w.floor || w.seen.contains_key(&seq))
    }

    /// Where proposal (proposer, boot, seq) was applied, if it was and is remembered.
    pub(crate) fn applied_at(&self, proposer: u64, boot: u64, seq: u64) -> Option<(u64, u64)> {
        self.windows.get(&(proposer, boot))?.seen.get(&seq).copied()
    }

    pub(crate) fn to_records(&self) -> Vec<DedupRecord> {
        self.windows
            .iter()
            .map(|((proposer, boot), w)| DedupRecord {
                proposer: *proposer,
                boot: *boot,
                floor: w.floor,
                seen: w.seen.keys().copied().collect(),
                seen_index: w.seen.values().map(|v| v.0).collect(),
                seen_term: w.seen.values().map(|v| v.1).collect(),
            })
            .collect()
    }

    pub(crate) fn from_records(records: &[DedupRecord]) -> Self {
        Self {
            windows: records
                .iter()
                .map(|r| {
                    (
                        (r.proposer, r.boot),
                        Window {
                            floor: r.floor,
                            seen: r
                                .seen
                                .iter()
                                .enumerate()
                                .map(|(i, &seq)| {
                                    let at = |v: &[u64]| v.get(i).copied().unwrap_or(0);
                                    (seq, (at(&r.seen_index), at(&r.seen_term)))
                                })
                                .collect(),
                        },
                    )
                })
                .collect(),
        }
    }
}

impl<M: StateMachine, S: LogStore> Node<M, S> {
    /// Whether a majority of voters (this leader included) answered within
    /// half an election timeout. A leader cut off from its quorum holds new
    /// proposals back (they wait and go to whoever leads next) instead of
    /// appending entries that cannot commit, well before check-quorum
    /// deposes it.
    pub(super) fn quorum_in_contact(&self) -> bool {
        let window = (self.ticks.election / 2) as u64;
        quorum_heard(
            &self.membership.conf.voters,
            self.id,
            &self.contact.last_heard,
            self.tick_no,
            window,
        )
    }

    pub(super) fn submit_pending(&mut self) {
        // Fenced or joining: proposals wait for the newer epoch.
        if self.proposals.len() == 0 || self.fenced() || self.ep.joining {
            return;
        }
        let term = self.raw.raft.term;
        let retry = 3 * self.ticks.election as u64;
        let now = self.tick_no;
        if !self.proposals.any_due(term, now, retry) {
            return; // all submitted lately: nothing below would change
        }
        let leader = self.election.role == StateRole::Leader;
        let route = Route {
            leader,
            transferring: self.raw.raft.lead_transferee.is_some(),
            quorum: leader && self.quorum_in_contact(),
            leader_known: self.election.leader.is_some(),
            forward: self.cfg.forward_proposals,
        };
        if !route.submits() {
            return;
        }
        let floor = self.proposals.floor();
        let mut submitted = Vec::new();
        for (&seq, p) in &self.proposals.pending {
            if p.due(term, now, retry) {
                let payload = EntryPayload {
                    proposer: self.id.0,
                    boot: self.boot,
                    seq,
                    floor,
                    command: p.command.clone(),
                    reconcile: None,
                    keep_from: None,
                    topology: None,
                    replication: None,
                };
                if self.raw.propose(Vec::new(), encode(&payload)).is_err() {
                    break;
                }
                submitted.push(seq);
            }
        }
        for seq in submitted {
            if let Some(p) = self.proposals.pending.get_mut(&seq) {
                p.submitted = Some((term, now));
            }
        }
        // Some may still be due (a refused proposal ends the loop above);
        // the next call walks them again.
        self.proposals.quiet = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(seq: u64, floor: u64) -> EntryPayload {
        EntryPayload {
            proposer: 1,
            boot: 1,
            seq,
            floor,
            command: vec![],
            reconcile: None,
            keep_from: None,
            topology: None,
            replication: None,
        }
    }

    #[test]
    fn second_copy_is_dropped_and_points_at_the_first() {
        let mut d = Dedup::default();
        assert_eq!(d.admit(&p(0, 0), 10, 2), Ok(()));
        assert_eq!(d.admit(&p(1, 0), 11, 2), Ok(()));
        assert_eq!(d.admit(&p(1, 0), 15, 3), Err(Some((11, 2))));
        assert_eq!(d.applied_at(1, 1, 1), Some((11, 2)));
        assert_eq!(d.admit(&p(0, 1), 16, 3), Err(Some((10, 2))));
        // Once the proposer says everything below 2 is resolved, it is forgotten.
        assert_eq!(d.admit(&p(2, 2), 17, 3), Ok(()));
        assert_eq!(d.admit(&p(0, 2), 18, 3), Err(None), "below the floor");
    }

    #[test]
    fn covers_what_was_applied_or_is_below_the_floor_never_proposer_zero() {
        let mut d = Dedup::default();
        assert!(!d.covers(1, 1, 0));
        assert_eq!(d.admit(&p(3, 2), 10, 2), Ok(()));
        assert!(d.covers(1, 1, 3), "applied");
        assert!(d.covers(1, 1, 1), "below the floor");
        assert!(!d.covers(1, 1, 2), "pending at the proposer");
        assert!(!d.covers(1, 2, 3), "another boot");
        let mut zero = p(0, 0);
        zero.proposer = 0;
        assert_eq!(d.admit(&zero, 11, 2), Ok(()));
        assert!(!d.covers(0, 1, 0));
    }

    #[test]
    fn floor_prunes_and_survives_snapshots() {
        let mut d = Dedup::default();
        for s in 0..100 {
            assert_eq!(d.admit(&p(s, s), s + 1, 1), Ok(()));
        }
        assert!(d.windows[&(1, 1)].seen.len() <= 1);
        let back = Dedup::from_records(&d.to_records());
        assert_eq!(back, d);
        assert_eq!(back.clone().admit(&p(42, 99), 200, 1), Err(None));
        assert_eq!(back.applied_at(1, 1, 99), Some((100, 1)));
    }

    #[test]
    fn old_boots_are_forgotten() {
        let mut d = Dedup::default();
        for boot in 1..=6 {
            let mut e = p(0, 0);
            e.boot = boot;
            assert_eq!(d.admit(&e, boot, 1), Ok(()));
        }
        assert_eq!(d.windows.len(), BOOTS_KEPT);
    }

    #[test]
    fn floor_is_lowest_pending() {
        let mut ps = Proposals::default();
        assert_eq!(ps.floor(), 0);
        let a = ps.add(vec![1]);
        let b = ps.add(vec![2]);
        assert_eq!(ps.floor(), a);
        ps.pending.remove(&a);
        assert_eq!(ps.floor(), b);
        ps.pending.remove(&b);
        assert_eq!(ps.floor(), 2);
        assert_eq!(ps.len(), 0);
    }

    /// The remembered walk answers exactly as a walk would: a proposal
    /// becomes due at its submission tick plus the retry interval, in
    /// another term, when added, or when made unsubmitted.
    #[test]
    fn any_due_remembers_only_what_a_walk_proved() {
        let walk =
            |ps: &Proposals, term, now, retry| ps.pending.values().any(|p| p.due(term, now, retry));
        let mut ps = Proposals::default();
        let (a, b) = (ps.add(vec![1]), ps.add(vec![2]));
        assert!(ps.any_due(3, 10, 5));
        ps.pending.get_mut(&a).unwrap().submitted = Some((3, 10));
        ps.pending.get_mut(&b).unwrap().submitted = Some((3, 12));
        for (term, now, retry) in [(3, 11, 5), (3, 14, 5), (3, 15, 5), (3, 14, 5), (4, 14, 5)] {
            assert_eq!(ps.any_due(term, now, retry), walk(&ps, term, now, retry));
        }
        assert!(!ps.any_due(3, 14, 5));
        ps.pending.remove(&a);
        assert!(!ps.any_due(3, 16, 5), "a gone: b is due at 17");
        assert!(ps.any_due(3, 17, 5));
        assert!(!ps.any_due(3, 14, 5));
        let c = ps.add(vec![3]);
        assert!(ps.any_due(3, 14, 5), "c never submitted");
        ps.pending.get_mut(&c).unwrap().submitted = Some((3, 14));
        assert!(!ps.any_due(3, 14, 5));
        ps.unsubmit_all();
        assert!(ps.any_due(3, 14, 5));
        // No retry interval: every submitted one is due at once.
        for p in ps.pending.values_mut() {
            p.submitted = Some((3, 20));
        }
        assert!(ps.any_due(3, 14, 0) && ps.any_due(3, 14, 0));
    }

    fn intake() -> Intake {
        Intake {
            removed: false,
            leading: false,
            forward: true,
            leader: Some(NodeId(1)),
            max_pending: 2,
        }
    }

    #[test]
    fn proposals_are_refused_in_order_removed_too_large_not_leader_queue_full() {
        let gate = intake();
        assert_eq!(gate.proposal(10, 10, 1), Ok(()));
        assert_eq!(
            gate.proposal(11, 10, 5),
            Err(ProposeError::TooLarge { len: 11, max: 10 })
        );
        assert_eq!(
            gate.proposal(10, 10, 2),
            Err(ProposeError::QueueFull {
                pending: 2,
                limit: 2
            })
        );
        let removed = Intake {
            removed: true,
            ..gate
        };
        assert_eq!(removed.proposal(11, 10, 5), Err(ProposeError::Removed));
        let no_forwarding = Intake {
            forward: false,
            ..gate
        };
        assert_eq!(
            no_forwarding.proposal(10, 10, 5),
            Err(ProposeError::NotLeader {
                leader: Some(NodeId(1))
            })
        );
        let leading = Intake {
            leading: true,
            ..no_forwarding
        };
        assert_eq!(leading.proposal(10, 10, 1), Ok(()));
    }

    #[test]
    fn reads_are_admitted_like_proposals_without_a_size_limit() {
        let gate = intake();
        assert_eq!(gate.read(1), Ok(()));
        assert_eq!(
            gate.read(2),
            Err(ProposeError::QueueFull {
                pending: 2,
                limit: 2
            })
        );
        let removed = Intake {
            removed: true,
            ..gate
        };
        assert_eq!(removed.read(0), Err(ProposeError::Removed));
    }

    #[test]
    fn a_proposal_is_resubmitted_in_a_new_term_or_after_the_retry_time() {
        let fresh = Pending {
            command: vec![],
            submitted: None,
        };
        assert!(fresh.due(3, 100, 60));
        let sent = Pending {
            command: vec![],
            submitted: Some((3, 100)),
        };
        assert!(!sent.due(3, 159, 60));
        assert!(sent.due(3, 160, 60));
        assert!(sent.due(4, 101, 60), "another term");
    }

    #[test]
    fn leader_submits_only_with_its_quorum_and_no_transfer_follower_only_forwarding() {
        let leader = Route {
            leader: true,
            transferring: false,
            quorum: true,
            leader_known: true,
            forward: false,
        };
        assert!(leader.submits());
        assert!(!Route {
            transferring: true,
            ..leader
        }
        .submits());
        assert!(!Route {
            quorum: false,
            ..leader
        }
        .submits());
        let follower = Route {
            leader: false,
            forward: true,
            ..leader
        };
        assert!(follower.submits());
        assert!(!Route {
            leader_known: false,
            ..follower
        }
        .submits());
        assert!(!Route {
            forward: false,
            ..follower
        }
        .submits());
    }

    #[test]
    fn quorum_counts_the_leader_and_voters_heard_within_the_window() {
        let heard = BTreeMap::from([(NodeId(2), 95), (NodeId(3), 89)]);
        // Voters 1 (me), 2 (5 ticks ago), 3 (11 ticks ago).
        assert!(quorum_heard(&[1, 2, 3], NodeId(1), &heard, 100, 10));
        assert!(!quorum_heard(&[1, 2, 3], NodeId(1), &heard, 106, 10));
        // Two of four is no majority.
        assert!(!quorum_heard(&[1, 2, 3, 4], NodeId(1), &heard, 100, 10));
        assert!(quorum_heard(&[1, 2, 3, 4], NodeId(1), &heard, 100, 11));
    }
}
