//! DR auto-sync takeover (see [`crate::replication`]): a survivable core
//! whose main site fell silent *prepares* (acknowledges nothing more in its
//! epoch), weighs its members' log ends, and the longest forks, carrying
//! its log's tail into the new epoch, with RPO 0 proven while its lease
//! runs.

use raft::eraftpb::EntryType;
use raft::StateRole;

use super::Node;
use crate::error::Fatal;
use crate::state_machine::StateMachine;
use crate::storage::LogStore;
use crate::topology::{NodeId, Role};
use crate::wire::control::Kind;
use crate::wire::payload::EntryPayload;

/// What a core partner said in its last probe reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Partner {
    /// Tick the reply came.
    pub(super) at: u64,
    pub(super) prepared: bool,
    /// It follows a leader of the epoch.
    pub(super) led: bool,
    /// Its last log entry (term, index).
    pub(super) last: (u64, u64),
}

/// Whether `me` (its last (term, index) and position in its core) should
/// fork rather than a prepared partner: the longest log, then the lower
/// position. Pure: unit-tested.
pub(super) fn longest_log_first(me: ((u64, u64), usize), partner: ((u64, u64), usize)) -> bool {
    me.0 > partner.0 || (me.0 == partner.0 && me.1 < partner.1)
}

impl<M: StateMachine, S: LogStore> Node<M, S> {
    /// A probe reply: what a member of this core said of its log.
    pub(super) fn note_partner(&mut self, from: NodeId, p: &crate::wire::control::Probe) {
        if !self.dr_mode() {
            return;
        }
        let partner = Partner {
            at: self.tick_no,
            prepared: p.prepared,
            led: p.leader != 0,
            last: (p.last_term, p.last_index),
        };
        self.dr.partners.insert(from, partner);
    }

    /// A member of this core answered within an election timeout that it
    /// follows a leader (and has not prepared): the epoch is alive and this
    /// member is the one cut off, so it must not prepare.
    pub(super) fn partner_led(&self) -> bool {
        let e = self.ticks.election as u64;
        self.core_partners().iter().any(|(id, _)| {
            self.dr
                .partners
                .get(id)
                .is_some_and(|p| p.led && !p.prepared && self.tick_no - p.at <= e)
        })
    }

    /// This member's log end and prepared flag, for a probe reply.
    pub(super) fn probe_facts(&self) -> (u64, u64, bool) {
        let log = &self.raw.raft.raft_log;
        (log.last_term(), log.last_index(), self.dr.prepared)
    }

    /// The members of this member's survivable core, but itself.
    fn core_partners(&self) -> Vec<(NodeId, usize)> {
        let Some(Role::Survivable { core, .. }) = self.my_member().map(|m| m.role.clone()) else {
            return Vec::new();
        };
        self.membership
            .members
            .values()
            .filter_map(|s| match &s.member.role {
                Role::Survivable {
                    core: c, position, ..
                } if *c == core && s.member.id() != self.id => Some((s.member.id(), *position)),
                _ => None,
            })
            .collect()
    }

    /// DR auto-sync activation, each tick once `survivable_after` (by rank
    /// and position) passed without a leader. First this member
    /// *prepares*: it stops acknowledging its epoch for good, so its log
    /// no longer grows. Then it forks if its log is the longest among its
    /// core's prepared members (proven when all of them answered prepared
    /// within an election timeout), or after two election timeouts without
    /// that (unproven); a partner with a longer log forks instead, and this
    /// member only after four.
    pub(super) fn drive_dr_takeover(&mut self, may_prepare: bool, position: usize) -> bool {
        if !self.dr.prepared {
            if may_prepare {
                self.dr.prepared = true;
                self.dr.prepared_at = self.tick_no;
                slog::warn!(self.logger, "main site silent: prepared to activate (no more acknowledgements in this epoch)");
                // The probe carries this member's final log end: a partner
                // waiting on it forks now, not at its next probe round.
                let leader = self.election.leader.map_or(0, |l| l.0);
                let (last_term, last_index, prepared) = self.probe_facts();
                for (to, _) in self.core_partners() {
                    let probe = crate::wire::control::Probe {
                        leader,
                        last_term,
                        last_index,
                        prepared,
                    };
                    self.send_control(to, Kind::Probe(probe));
                }
            }
            return false;
        }
        let e = self.ticks.election as u64;
        let waited = self.tick_no - self.dr.prepared_at;
        let mine = {
            let (t, i, _) = self.probe_facts();
            ((t, i), position)
        };
        let mut all_prepared = true;
        let mut longer_partner = false;
        for (id, pos) in self.core_partners() {
            match self.dr.partners.get(&id) {
                Some(p) if p.prepared && self.tick_no - p.at <= e => {
                    longer_partner |= !longest_log_first(mine, (p.last, pos));
                }
                _ => all_prepared = false,
            }
        }
        let go = if longer_partner {
            waited >= 4 * e
        } else {
            all_prepared || waited >= 2 * e
        };
        if !go {
            return false;
        }
        if let Err(f) = self.activate_with_tail(all_prepared && !longer_partner) {
            self.fail(f);
        }
        false
    }

    /// Forks a new epoch at the applied index (the old epoch's committed
    /// prefix, as in main-site mode) and carries the log's tail beyond it
    /// into the new epoch: its user commands are proposed again there,
    /// under their own proposal ids, once this member leads
    /// (deduplication applies each once). The tail holds what the main
    /// site committed with this site's acknowledgement but had not reported
    /// yet, so it must be kept; it cannot join the fork's prefix, because
    /// entries there that the old epoch had not committed may be
    /// overwritten there later (a WAN cut, not a loss, and a new leader
    /// there), while a reunion takes everything below a fork point for
    /// common history. `candidate`: every core partner prepared with no
    /// longer a log; RPO 0 is proven if, besides, the lease runs and the
    /// log's last state record is `Sync` or `AsyncWait`.
    pub(super) fn activate_with_tail(&mut self, candidate: bool) -> Result<(), Fatal> {
        let Some(Role::Survivable { rank, position, .. }) =
            self.my_member().map(|m| m.role.clone())
        else {
            return Ok(());
        };
        self.dr.prepared = true;
        let proven = candidate && self.lease_left_ms() > 0 && self.dr.last.state.needs_both_sites();
        let held = self.raw.raft.raft_log.last_index();
        let tail = self.tail_commands()?;
        self.activate_epoch(rank, position, proven, held)?;
        self.dr.carry = tail;
        Ok(())
    }

    /// The user commands in the log beyond the applied index, as entry
    /// data (library records and configuration changes stay behind).
    fn tail_commands(&self) -> Result<Vec<Vec<u8>>, Fatal> {
        let log = &self.raw.raft.raft_log;
        if log.last_index() <= self.applied {
            return Ok(Vec::new());
        }
        let ctx = raft::GetEntriesContext::empty(false);
        let entries = log
            .entries(self.applied + 1, u64::MAX, ctx)
            .map_err(|e| Fatal::Raft(e.to_string()))?;
        Ok(entries
            .into_iter()
            .filter(|e| e.get_entry_type() == EntryType::EntryNormal && !e.data.is_empty())
            .filter(|e| {
                <EntryPayload as prost::Message>::decode(&e.data[..])
                    .is_ok_and(|p| p.proposer != 0 && p.reconcile.is_none())
            })
            .map(|e| e.data.to_vec())
            .collect())
    }

    /// Leader of a forked epoch: proposes the carried tail (see
    /// [`Self::activate_with_tail`]), as much as raft takes now.
    pub(super) fn propose_carried(&mut self) {
        if self.dr.carry.is_empty() || self.election.role != StateRole::Leader || self.fenced() {
            return;
        }
        let carry = std::mem::take(&mut self.dr.carry);
        let mut rest = carry.into_iter();
        for data in rest.by_ref() {
            if self.raw.propose(Vec::new(), data.clone()).is_err() {
                self.dr.carry.push(data);
                break;
            }
        }
        self.dr.carry.extend(rest);
    }
}

#[cfg(test)]
mod tests {
    use super::longest_log_first;

    #[test]
    fn the_longest_log_forks_and_ties_go_to_the_primary() {
        assert!(longest_log_first(((3, 10), 1), ((3, 9), 0)));
        assert!(!longest_log_first(((3, 9), 0), ((3, 10), 1)));
        assert!(longest_log_first(((4, 5), 1), ((3, 9), 0)));
        assert!(longest_log_first(((3, 10), 0), ((3, 10), 1)));
        assert!(!longest_log_first(((3, 10), 1), ((3, 10), 0)));
    }
}
