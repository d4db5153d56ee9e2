//! DR auto-sync takeover (see [`crate::replication`]): a survivable core
//! whose main site fell silent *prepares* (acknowledges nothing more in its
//! epoch), weighs its members' log ends, and the longest forks from its
//! whole log, with RPO 0 proven while its lease runs.

use super::Node;
use crate::state_machine::StateMachine;
use crate::storage::LogStore;
use crate::topology::{NodeId, Role};
use crate::wire::control::Kind;

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
        if self.dr.activating.is_some() {
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
        self.activate_whole_log(all_prepared && !longer_partner);
        false
    }

    /// Prepares (if not yet), commits this member's whole log and forks
    /// from its end once it is applied (next tick). `candidate`: every
    /// core partner prepared with no longer a log.
    pub(super) fn activate_whole_log(&mut self, candidate: bool) {
        if !self.dr.prepared {
            self.dr.prepared = true;
            self.dr.prepared_at = self.tick_no;
        }
        let log = &self.raw.raft.raft_log;
        let target = log.last_index().min(log.persisted);
        self.raw.raft.raft_log.commit_to(target);
        self.dr.activating = Some((target, candidate));
        self.dirty = true;
    }

    /// An activation whose log tail is applied: fork now.
    pub(super) fn finish_activation(&mut self) {
        let Some((target, candidate)) = self.dr.activating else {
            return;
        };
        if self.applied < target {
            return;
        }
        let Some(Role::Survivable { rank, position, .. }) =
            self.my_member().map(|m| m.role.clone())
        else {
            return;
        };
        let proven = candidate && self.lease_left_ms() > 0 && self.dr.last.state.needs_both_sites();
        self.dr.activating = None;
        if let Err(f) = self.activate_epoch(rank, position, proven) {
            self.fail(f);
        }
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
