//! Maintenance and operator transfers: [`Node::drain`], [`Node::undrain`]
//! and [`Node::transfer_leader`].
//!
//! A drained member never campaigns: no election, no pair failover, no
//! survivable takeover, no activation, no last-resort leadership, and it
//! is no hand-back or transfer target. It stays a replica: it votes and
//! replicates. Its raft priority drops to 0, so its vote never refuses an
//! equally fresh candidate for priority (raft refuses a candidate of lower
//! priority whose log merely equals its own). If it leads, it moves
//! leadership away at once, to its core partner when that one can take it,
//! else to the most preferred member that can (a reachable, fresh voter of
//! a core, not drained itself), retried every election timeout while none
//! can; meanwhile it keeps leading (a cluster without a leader would be
//! worse than a drained one leading).
//!
//! raft never campaigns on its own here (its randomized election timer is
//! pushed out of reach in `config`), so every campaign starts in this
//! driver: the election schedule and the pair failover (`election`), the
//! survivable activation and the operator's (`takeover`), and leadership
//! handed over (`MsgTimeoutNow`, `inbound`). Each is gated on the drained
//! flag.
//!
//! A drained member tells every member so, at once and again every election
//! timeout (a notice lost, or a member started later, hears the next one);
//! a notice holds for three election timeouts. The leader never picks a
//! member it knows drained; one that does not know yet and hands over
//! anyway (raft's `MsgTimeoutNow`) is refused: the drained member drops the
//! message and answers with a notice, and raft aborts the transfer after an
//! election timeout, as for any target that did not take it.
//!
//! The drained state is kept in memory: a restarted member starts
//! undrained.

use std::collections::BTreeMap;

use raft::StateRole;

use super::handback::Freshness;
use super::Node;
use crate::error::{DrainError, TransferError};
use crate::events::Event;
use crate::policy::TickTimers;
use crate::state_machine::StateMachine;
use crate::storage::LogStore;
use crate::topology::{Member, NodeId, Role};
use crate::wire::control::{DrainNotice, Kind};

/// Drain state, this member's and its peers' as they told it, and the
/// transfer under way.
#[derive(Debug, Default)]
pub(super) struct DrainState {
    /// This member is drained.
    pub(super) drained: bool,
    /// Peers that said they are drained, with the tick they last said so.
    peers: BTreeMap<NodeId, u64>,
    /// Tick of the last round of notices sent.
    told_at: Option<u64>,
    /// Leader: a transfer under way (an operator's, or off this drained
    /// member).
    pub(super) transfer: Option<NodeId>,
    /// Leader, drained: no new transfer attempt before this tick.
    next_attempt: u64,
    /// Leader, drained: the lack of a target was logged in this spell.
    stuck_logged: bool,
}

/// Ticks a peer's drain notice holds: it repeats them every election
/// timeout, so three let two in a row be lost.
pub(super) fn notice_holds(t: &TickTimers) -> u64 {
    3 * t.election as u64
}

impl DrainState {
    /// `from` told at `tick` whether it is drained.
    pub(super) fn note_peer(&mut self, from: NodeId, drained: bool, tick: u64) {
        if drained {
            self.peers.insert(from, tick);
        } else {
            self.peers.remove(&from);
        }
    }

    /// Whether `id` told within `holds` ticks of `tick` that it is drained.
    pub(super) fn peer_drained(&self, id: NodeId, tick: u64, holds: u64) -> bool {
        self.peers
            .get(&id)
            .is_some_and(|&at| tick.saturating_sub(at) <= holds)
    }

    /// Whether this drained member's notices are due again at `tick`
    /// (every `every` ticks); records them as sent.
    pub(super) fn notice_due(&mut self, tick: u64, every: u64) -> bool {
        if !self.drained || self.told_at.is_some_and(|at| tick < at + every) {
            return false;
        }
        self.told_at = Some(tick);
        true
    }
}

/// A member as a transfer target, as the leader sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Peer {
    pub(super) id: NodeId,
    /// In the leader's core (its partner).
    pub(super) same_core: bool,
    pub(super) preference: u32,
    pub(super) position: usize,
    /// A voter of the current configuration.
    pub(super) voter: bool,
    pub(super) witness: bool,
    /// It told the leader it is drained.
    pub(super) drained: bool,
    /// Tick it was last heard from.
    pub(super) heard: Option<u64>,
    /// Highest index known to be on it.
    pub(super) matched: u64,
}

/// Whether `target` (described by `peer`, `None` when it is no member) can
/// take leadership now: a voter of a core, not drained, heard within an
/// election timeout and fresh by the hand-back's gate (`gate`), so raft's
/// transfer, which waits at most an election timeout for it to catch up,
/// can land.
pub(super) fn transfer_check(
    target: NodeId,
    peer: Option<&Peer>,
    gate: &Freshness,
) -> Result<(), TransferError> {
    let Some(p) = peer else {
        return Err(TransferError::UnknownMember(target));
    };
    if !p.voter {
        return Err(TransferError::NotAVoter(target));
    }
    if p.witness {
        return Err(TransferError::Witness(target));
    }
    if p.drained {
        return Err(TransferError::Drained(target));
    }
    if p.heard
        .is_none_or(|h| gate.tick_no.saturating_sub(h) > gate.election)
    {
        return Err(TransferError::Unreachable(target));
    }
    if !gate.fresh(p.matched) {
        return Err(TransferError::TooFarBehind {
            target,
            lag: gate.last.saturating_sub(p.matched),
            max: gate.max_lag,
        });
    }
    Ok(())
}

/// Where a drained leader moves leadership: its core partner if it can
/// take it, else the most preferred member that can (then lowest
/// position, then id); `None` when none can.
pub(super) fn drain_target(peers: &[Peer], gate: &Freshness) -> Option<NodeId> {
    peers
        .iter()
        .filter(|p| transfer_check(p.id, Some(p), gate).is_ok())
        .min_by_key(|p| (!p.same_core, p.preference, p.position, p.id))
        .map(|p| p.id)
}

impl<M: StateMachine, S: LogStore> Node<M, S> {
    /// Every other member, as a transfer target.
    fn transfer_peers(&self) -> Vec<Peer> {
        let holds = notice_holds(&self.ticks);
        let prs = self.raw.raft.prs();
        let voters: Vec<NodeId> = self.membership.voter_ids().collect();
        self.membership
            .members
            .values()
            .map(|s| &s.member)
            .filter(|m| m.id() != self.id)
            .map(|m| Peer {
                id: m.id(),
                same_core: self.same_core(m.id()),
                preference: m.preference(),
                position: m.position(),
                voter: voters.contains(&m.id()),
                witness: matches!(m.role, Role::Witness),
                drained: self.drain.peer_drained(m.id(), self.tick_no, holds),
                heard: self.contact.last_heard.get(&m.id()).copied(),
                matched: prs.get(m.id().0).map_or(0, |p| p.matched),
            })
            .collect()
    }

    /// [`Node::transfer_leader`].
    pub(super) fn request_transfer(&mut self, to: NodeId) -> Result<(), TransferError> {
        if self.election.role != StateRole::Leader {
            return Err(TransferError::NotLeader {
                leader: self.election.leader,
            });
        }
        if to == self.id {
            return Err(TransferError::AlreadyLeader(to));
        }
        if self.fenced() {
            return Err(TransferError::Fenced);
        }
        self.note_last_index();
        let peers = self.transfer_peers();
        transfer_check(to, peers.iter().find(|p| p.id == to), &self.freshness())?;
        self.start_transfer(to);
        Ok(())
    }

    /// Starts a raft leader transfer to `target` (it supersedes a
    /// hand-back attempt under way, which is then not counted as failed).
    fn start_transfer(&mut self, target: NodeId) {
        self.hand_back_superseded();
        self.drain.transfer = Some(target);
        slog::info!(self.logger, "transferring leadership"; "target" => %target,
            "drained" => self.drain.drained);
        self.emit(Event::TransferStarted { target });
        self.raw.transfer_leader(target.0);
        self.on_ready();
        self.hurry_transfer(target);
    }

    /// [`Node::drain`] (`true`) and [`Node::undrain`] (`false`).
    pub(super) fn set_drained(&mut self, drained: bool) -> Result<(), DrainError> {
        if self.membership.removed {
            return Err(DrainError::Removed);
        }
        match (self.drain.drained, drained) {
            (true, true) => return Err(DrainError::AlreadyDrained),
            (false, false) => return Err(DrainError::NotDrained),
            _ => {}
        }
        self.drain.drained = drained;
        self.raw.set_priority(self.own_priority());
        if drained {
            // Nothing of a campaign in the making survives.
            self.election.probe = None;
            self.election.step_up = None;
            self.drain.next_attempt = 0;
            self.drain.stuck_logged = false;
            self.emit(Event::Drained);
        } else {
            self.drain.told_at = None;
            self.emit(Event::Undrained);
        }
        slog::info!(self.logger, "drain state changed"; "drained" => drained);
        self.tell_drain_state(drained);
        if drained && self.election.role == StateRole::Leader && !self.fenced() {
            self.drive_transfer();
        }
        self.dirty = true;
        Ok(())
    }

    /// raft priority this member runs with: 0 while drained or while it
    /// breaks a priority deadlock, its member priority otherwise.
    pub(super) fn own_priority(&self) -> i64 {
        if self.drain.drained || self.election.priority_lowered {
            0
        } else {
            self.my_member().map_or(0, Member::priority)
        }
    }

    /// Tells every other member whether this one is drained.
    fn tell_drain_state(&mut self, drained: bool) {
        if drained {
            self.drain.told_at = Some(self.tick_no);
        }
        let others: Vec<NodeId> = (self.membership.members.keys())
            .copied()
            .filter(|&m| m != self.id)
            .collect();
        for to in others {
            self.send_control(to, Kind::Drain(DrainNotice { drained }));
        }
    }

    /// Each tick: a drained member repeats its notices; a leader that is
    /// no longer one forgets its transfer.
    pub(super) fn drive_drain(&mut self) {
        if self.election.role != StateRole::Leader {
            self.drain.transfer = None;
        }
        let every = self.ticks.election as u64;
        if self.drain.notice_due(self.tick_no, every) {
            self.tell_drain_state(true);
        }
    }

    /// Leader, each tick: follows the transfer under way and, drained,
    /// moves leadership away. Returns whether the hand-back must stand
    /// aside (a transfer runs, or this leader is drained).
    pub(super) fn drive_transfer(&mut self) -> bool {
        self.note_last_index();
        if let Some(target) = self.drain.transfer {
            if self.raw.raft.lead_transferee == Some(target.0) {
                return true;
            }
            // raft gave up on the transfer and this member still leads.
            self.drain.transfer = None;
            self.emit(Event::TransferFailed { target });
            self.drain.next_attempt = self.tick_no + self.ticks.election as u64;
            return self.drain.drained;
        }
        if !self.drain.drained {
            return false;
        }
        if self.tick_no < self.drain.next_attempt {
            return true;
        }
        let peers = self.transfer_peers();
        match drain_target(&peers, &self.freshness()) {
            Some(target) => {
                self.drain.stuck_logged = false;
                self.start_transfer(target);
            }
            None => {
                if !std::mem::replace(&mut self.drain.stuck_logged, true) {
                    slog::warn!(self.logger, "drained, but no member can take leadership (reachable, fresh, not drained voter of a core): keeps leading and tries again every election timeout");
                }
                self.drain.next_attempt = self.tick_no + self.ticks.election as u64;
            }
        }
        true
    }

    /// A drained member was asked to take leadership (`MsgTimeoutNow`
    /// from `from`, a leader that did not know): refused; the leader is
    /// told, and raft aborts its transfer after an election timeout.
    pub(super) fn refuse_leadership(&mut self, from: NodeId) {
        slog::info!(self.logger, "drained: refusing leadership offered by a transfer"; "from" => %from);
        self.send_control(from, Kind::Drain(DrainNotice { drained: true }));
    }

    /// A peer's drain notice.
    pub(super) fn note_drain_notice(&mut self, from: NodeId, drained: bool) {
        self.drain.note_peer(from, drained, self.tick_no);
    }

    /// Leadership was lost: whether a transfer was under way (then its
    /// target is taking over, not nobody).
    pub(super) fn transfer_lost_leadership(&mut self) -> bool {
        self.drain.transfer.take().is_some()
    }
}

#[cfg(test)]
#[path = "drain_tests.rs"]
mod tests;
