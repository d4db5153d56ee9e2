//! Hand-back: a leader outside the main site (or a witness leading as the
//! last resort) moves leadership to the most preferred member that is
//! reachable and caught up, under the [`HandBackPolicy`].
//!
//! Gates, in order: the candidate is a voter of a more preferred site; it
//! answered within the last election timeout; it lags by at most
//! `max_lag_entries` (the freshness gate); the policy allows it now (stable
//! long enough, inside the window, or asked for by an operator). Each
//! attempt is a raft leader transfer; one that raft aborts (target did not
//! catch up within an election timeout, or lost the election) is retried
//! after `retry_after`. Proposals arriving meanwhile wait in the proposal
//! queue and are re-submitted to whoever leads next.

use raft::StateRole;

use super::Node;
use crate::error::HandBackError;
use crate::events::Event;
use raft::eraftpb::{ConfChangeSingle, ConfChangeType, ConfChangeV2};

use crate::policy::{HandBackPolicy, QuorumMode, TimeOfDay};
use crate::state_machine::StateMachine;
use crate::storage::LogStore;
use crate::topology::{NodeId, Role};

#[derive(Debug, Default)]
pub(super) struct HandBackState {
    attempts: u32,
    in_flight: Option<NodeId>,
    next_attempt: u64,
    manual: bool,
    /// Set when the attempt limit was hit: (target, its contact_since then).
    abandoned: Option<(NodeId, u64)>,
    /// We stepped down during an attempt: (target, attempts), until the new
    /// leader is known.
    handed: Option<(NodeId, u32)>,
}

impl HandBackState {
    pub(super) fn reset(&mut self) {
        *self = Self::default();
    }
}

impl<M: StateMachine, S: LogStore> Node<M, S> {
    /// Asks the leader to hand leadership back to the most preferred member
    /// that is reachable and caught up, now (the freshness gate still
    /// applies). This is how [`HandBackPolicy::Manual`] hands back; under
    /// other policies it skips the wait.
    ///
    /// # Errors
    /// [`HandBackError`] when this node is not the leader or already the
    /// most preferred member.
    pub fn hand_back(&mut self) -> Result<(), HandBackError> {
        if self.role != StateRole::Leader {
            return Err(HandBackError::NotLeader {
                leader: self.leader,
            });
        }
        let mine = self.my_member().map_or(u32::MAX, |m| m.preference());
        if mine == 0 {
            return Err(HandBackError::AlreadyPreferred);
        }
        self.hand_back.manual = true;
        self.hand_back.abandoned = None;
        self.hand_back.next_attempt = 0;
        self.drive_hand_back();
        self.on_ready();
        Ok(())
    }

    /// The best hand-back target now, with how long it has been in contact
    /// (ticks) and how far it lags (entries).
    fn hand_back_target(&self) -> Option<(NodeId, u64, u64)> {
        let mine = self.my_member().map_or(u32::MAX, |m| m.preference());
        if mine == 0 {
            return None;
        }
        let last = self.raw.raft.raft_log.last_index();
        let max_lag = self.cfg.topology.hand_back().max_lag_entries;
        let e = self.ticks.election as u64;
        let prs = self.raw.raft.prs();
        self.conf
            .voters
            .iter()
            .map(|&v| NodeId(v))
            .filter(|&id| id != self.id)
            .filter_map(|id| {
                let m = &self.members.get(&id)?.member;
                let heard = *self.last_heard.get(&id)?;
                let since = *self.contact_since.get(&id)?;
                let matched = prs.get(id.0)?.matched;
                let ok =
                    m.preference() < mine && self.tick_no - heard <= e && matched + max_lag >= last;
                ok.then(|| {
                    let key = (m.preference(), m.position(), id);
                    (key, self.tick_no - since, last.saturating_sub(matched))
                })
            })
            .min_by_key(|(k, _, _)| *k)
            .map(|((_, _, id), stable, lag)| (id, stable, lag))
    }

    pub(super) fn drive_hand_back(&mut self) {
        if self.role != StateRole::Leader {
            return;
        }
        if let Some(target) = self.hand_back.in_flight {
            if self.raw.raft.lead_transferee.is_some() {
                return;
            }
            // Raft gave up on the transfer and we still lead.
            self.hand_back.in_flight = None;
            let attempt = self.hand_back.attempts;
            self.emit(Event::HandBackFailed { attempt, target });
            let retry = self.cfg.topology.hand_back().retry_after.as_millis() as u64;
            self.hand_back.next_attempt = self.tick_no + retry.div_ceil(self.ticks.tick_ms);
            if let Some(max) = self.cfg.topology.hand_back().max_attempts {
                if attempt >= max {
                    let since = self.contact_since.get(&target).copied().unwrap_or(0);
                    self.hand_back.abandoned = Some((target, since));
                    self.hand_back.manual = false;
                    self.emit(Event::HandBackAbandoned {
                        target,
                        attempts: attempt,
                    });
                }
            }
            return;
        }
        let Some((target, stable_ticks, lag)) = self.hand_back_target() else {
            return;
        };
        if let Some((t, since)) = self.hand_back.abandoned {
            if t == target && self.contact_since.get(&target) == Some(&since) {
                return;
            }
            self.hand_back.abandoned = None;
            self.hand_back.attempts = 0;
        }
        if self.tick_no < self.hand_back.next_attempt || !self.policy_allows(stable_ticks) {
            return;
        }
        self.hand_back.attempts += 1;
        self.hand_back.in_flight = Some(target);
        let attempt = self.hand_back.attempts;
        self.emit(Event::HandBackAttempt {
            attempt,
            target,
            lag,
        });
        self.raw.transfer_leader(target.0);
        self.on_ready();
        self.hurry_transfer(target);
    }

    /// raft sends `MsgTimeoutNow` only once the target acknowledged the last
    /// index, a round trip after the last append. When every entry is
    /// already on its way to the target (replicating, nothing unsent), the
    /// links are FIFO, so the target will hold the whole log before the
    /// message arrives: send it now. If an append was lost after all, the
    /// target's campaign fails on the log check (raft's safety is
    /// untouched) and the pair re-elects as after any failed election.
    fn hurry_transfer(&mut self, target: NodeId) {
        if self.raw.raft.lead_transferee != Some(target.0) {
            return;
        }
        let last = self.raw.raft.raft_log.last_index();
        let ready = self.raw.raft.prs().get(target.0).is_some_and(|pr| {
            pr.state == raft::ProgressState::Replicate
                && pr.next_idx == last + 1
                && pr.matched < last
        });
        if !ready {
            return;
        }
        let mut m = raft::eraftpb::Message::default();
        m.set_msg_type(raft::eraftpb::MessageType::MsgTimeoutNow);
        m.from = self.id.0;
        m.to = target.0;
        m.term = self.raw.raft.term;
        let cluster = self.cfg.topology.cluster_id();
        self.outbox
            .push_back(crate::wire::Envelope::wrap(cluster, self.epoch(), &m));
    }

    fn policy_allows(&self, stable_ticks: u64) -> bool {
        let witness = matches!(self.my_member().map(|m| &m.role), Some(Role::Witness));
        if witness || self.hand_back.manual {
            return true;
        }
        match &self.cfg.topology.hand_back().policy {
            HandBackPolicy::Immediate => true,
            HandBackPolicy::AfterStable(d) => {
                stable_ticks * self.ticks.tick_ms >= d.as_millis() as u64
            }
            HandBackPolicy::Window { start, end } => {
                TimeOfDay::of_unix_ms(self.now_ms).within(*start, *end)
            }
            HandBackPolicy::Manual => false,
        }
    }

    /// Leadership was lost; returns whether a hand-back transfer was under
    /// way (then the target is taking over, not nobody).
    pub(super) fn hand_back_lost_leadership(&mut self) -> bool {
        let handed = self
            .hand_back
            .in_flight
            .map(|t| (t, self.hand_back.attempts));
        self.hand_back.reset();
        self.hand_back.handed = handed;
        handed.is_some()
    }

    /// After stepping down mid-attempt: reports the hand-back once the new
    /// leader is known to be its target.
    pub(super) fn hand_back_landed(&mut self, leader: Option<NodeId>) {
        let (Some((target, attempts)), Some(l)) = (self.hand_back.handed, leader) else {
            return;
        };
        self.hand_back.handed = None;
        if l == target {
            self.emit(Event::HandBackCompleted { target, attempts });
        }
    }
}

impl<M: StateMachine, S: LogStore> Node<M, S> {
    /// Main-site mode, after a survivable core led a new epoch: bring the
    /// main site back as the voting majority. Away from home, the leader
    /// promotes the main site's members (learners of its epoch once they
    /// rejoined) to voters, under the hand-back policy and the freshness
    /// gate; the ordinary hand-back then moves leadership to the main
    /// primary. At home again, the leader demotes the survivable members
    /// to learners. One configuration change at a time.
    pub(super) fn drive_main_site_return(&mut self) {
        let topology = self.cfg.topology.clone();
        if topology.mode() != QuorumMode::MainSite || self.role != StateRole::Leader {
            return;
        }
        let pending = self.raw.raft.pending_conf_index > self.applied;
        let recently = self.tick_no < self.conf_proposed_at + self.ticks.election as u64;
        if pending || recently || !self.conf.voters_outgoing.is_empty() {
            return;
        }
        let main = topology.main_site();
        let home = self.my_member().is_some_and(|m| m.site == main);
        let changes: Vec<ConfChangeSingle> = if home {
            self.conf
                .voters
                .iter()
                .map(|&v| NodeId(v))
                .filter(|v| self.members.get(v).is_some_and(|s| s.member.site != main))
                .map(|v| single(ConfChangeType::AddLearnerNode, v))
                .collect()
        } else {
            let wanted = topology.voters();
            let last = self.raw.raft.raft_log.last_index();
            let max_lag = topology.hand_back().max_lag_entries;
            let e = self.ticks.election as u64;
            let ready: Vec<NodeId> = wanted
                .iter()
                .copied()
                .filter(|id| self.conf.learners.contains(&id.0))
                .filter(|id| {
                    let heard = self
                        .last_heard
                        .get(id)
                        .is_some_and(|&t| self.tick_no - t <= e);
                    let matched = self.raw.raft.prs().get(id.0).map_or(0, |p| p.matched);
                    heard && matched + max_lag >= last
                })
                .collect();
            if ready.len() * 2 <= wanted.len() {
                return;
            }
            let stable = ready
                .iter()
                .filter_map(|id| self.contact_since.get(id))
                .map(|&since| self.tick_no - since)
                .min()
                .unwrap_or(0);
            if !self.policy_allows(stable) {
                return;
            }
            ready
                .into_iter()
                .map(|v| single(ConfChangeType::AddNode, v))
                .collect()
        };
        if changes.is_empty() {
            return;
        }
        slog::info!(self.logger, "main site's layout: configuration change"; "home" => home,
            "changes" => changes.len());
        let cc = ConfChangeV2 {
            changes: changes.into(),
            ..Default::default()
        };
        let _ = self.raw.propose_conf_change(Vec::new(), cc);
        self.conf_proposed_at = self.tick_no;
    }
}

fn single(kind: ConfChangeType, id: NodeId) -> ConfChangeSingle {
    let mut s = ConfChangeSingle::default();
    s.set_change_type(kind);
    s.node_id = id.0;
    s
}
