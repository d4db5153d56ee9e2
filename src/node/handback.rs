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
    /// Attempts made at `counted`'s target since its contact last started;
    /// kept across losing and regaining leadership, so the policy's limit
    /// holds whichever way attempts fail.
    attempts: u32,
    /// Whose attempts `attempts` counts: (target, its `contact_since` when
    /// counting started). Another target, or contact with it interrupted
    /// and restored, starts the count over.
    counted: Option<(NodeId, u64)>,
    /// The limit was hit for `counted`: no more attempts at it until its
    /// contact restarts or an operator asks.
    abandoned: bool,
    /// A transfer under way (this node leads).
    in_flight: Option<NodeId>,
    next_attempt: u64,
    /// An operator asked (`Node::hand_back`); cleared once another member
    /// leads or the attempts are abandoned.
    manual: bool,
    /// We stepped down during an attempt: (target, attempt), until the new
    /// leader is known.
    handed: Option<(NodeId, u32)>,
    /// This node won back the leadership an attempt had cost it: until this
    /// tick, contact with the target that restarts is the failed
    /// election's silence, not an interruption, and keeps the count.
    rebase_until: Option<u64>,
}

impl HandBackState {
    /// Forgets everything (a new epoch: other members, other history).
    pub(super) fn reset(&mut self) {
        *self = Self::default();
    }
}

impl<M: StateMachine, S: LogStore> Node<M, S> {
    /// Starts a hand-back an operator asked for ([`Node::hand_back`]).
    pub(super) fn request_hand_back(&mut self) -> Result<(), HandBackError> {
        if self.election.role != StateRole::Leader {
            return Err(HandBackError::NotLeader {
                leader: self.election.leader,
            });
        }
        let mine = self.my_member().map_or(u32::MAX, |m| m.preference());
        if mine == 0 {
            return Err(HandBackError::AlreadyPreferred);
        }
        self.hand_back.manual = true;
        self.hand_back.abandoned = false;
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
        self.membership
            .conf
            .voters
            .iter()
            .map(|&v| NodeId(v))
            .filter(|&id| id != self.id)
            .filter_map(|id| {
                let m = &self.membership.members.get(&id)?.member;
                let heard = *self.contact.last_heard.get(&id)?;
                let since = *self.contact.contact_since.get(&id)?;
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
        if self.election.role != StateRole::Leader {
            return;
        }
        if let Some(target) = self.hand_back.in_flight {
            if self.raw.raft.lead_transferee.is_some() {
                return;
            }
            // Raft gave up on the transfer and we still lead.
            self.hand_back.in_flight = None;
            let attempt = self.hand_back.attempts;
            self.hand_back_failed(target, attempt);
            return;
        }
        let Some((target, stable_ticks, lag)) = self.hand_back_target() else {
            return;
        };
        let since = self
            .contact
            .contact_since
            .get(&target)
            .copied()
            .unwrap_or(0);
        if let Some(until) = self.hand_back.rebase_until {
            if self.tick_no > until {
                self.hand_back.rebase_until = None;
            } else if self.hand_back.counted.is_some_and(|(t, _)| t == target) {
                self.hand_back.counted = Some((target, since));
            }
        }
        if self.hand_back.counted != Some((target, since)) {
            // Another target, or contact with it restarted: count afresh.
            self.hand_back.counted = Some((target, since));
            self.hand_back.attempts = 0;
            self.hand_back.abandoned = false;
        }
        if self.hand_back.abandoned {
            return;
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

    /// Attempt `attempt` at `target` did not land: reports it, schedules
    /// the next one and applies the policy's limit.
    fn hand_back_failed(&mut self, target: NodeId, attempt: u32) {
        self.emit(Event::HandBackFailed { attempt, target });
        let retry = self.cfg.topology.hand_back().retry_after.as_millis() as u64;
        self.hand_back.next_attempt = self.tick_no + retry.div_ceil(self.ticks.tick_ms);
        let max = self.cfg.topology.hand_back().max_attempts;
        if max.is_some_and(|max| attempt >= max) {
            self.hand_back.abandoned = true;
            self.hand_back.manual = false;
            self.emit(Event::HandBackAbandoned {
                target,
                attempts: attempt,
            });
        }
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

    /// Leadership was won: a transfer of an earlier term is over. The
    /// attempt count, the limit and the retry time stay: an attempt that
    /// cost this node its leadership counts like one raft aborted.
    pub(super) fn hand_back_gained_leadership(&mut self) {
        self.hand_back.in_flight = None;
    }

    /// Leadership was lost; returns whether a hand-back transfer was under
    /// way (then the target is taking over, not nobody).
    pub(super) fn hand_back_lost_leadership(&mut self) -> bool {
        let handed = self
            .hand_back
            .in_flight
            .take()
            .map(|t| (t, self.hand_back.attempts));
        self.hand_back.handed = handed;
        handed.is_some()
    }

    /// After stepping down mid-attempt: once the new leader is known,
    /// reports the attempt as completed if it is the target, as failed
    /// otherwise (the target's campaign failed and someone else won, this
    /// node included), which counts toward the policy's limit.
    pub(super) fn hand_back_landed(&mut self, leader: Option<NodeId>) {
        let (Some((target, attempt)), Some(l)) = (self.hand_back.handed, leader) else {
            return;
        };
        self.hand_back.handed = None;
        if l == target {
            self.hand_back.manual = false;
            self.emit(Event::HandBackCompleted {
                target,
                attempts: attempt,
            });
        } else {
            if l == self.id {
                let e = self.ticks.election as u64;
                self.hand_back.rebase_until = Some(self.tick_no + 2 * e);
            } else {
                self.hand_back.manual = false;
            }
            self.hand_back_failed(target, attempt);
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
    /// to learners and promotes any main-site member that rejoined only
    /// after control came home (e.g. under `Immediate`, once a majority of
    /// the main site was back). One configuration change at a time.
    pub(super) fn drive_main_site_return(&mut self) {
        let topology = self.cfg.topology.clone();
        if topology.mode() != QuorumMode::MainSite || self.election.role != StateRole::Leader {
            return;
        }
        let pending = self.raw.raft.pending_conf_index > self.applied;
        let recently = self.tick_no < self.membership.conf_proposed_at + self.ticks.election as u64;
        if pending || recently || !self.membership.conf.voters_outgoing.is_empty() {
            return;
        }
        let main = topology.main_site();
        let home = self.my_member().is_some_and(|m| m.site == main);
        let wanted = topology.voters();
        let ready = self.ready_to_vote(&wanted);
        let changes: Vec<ConfChangeSingle> = if home {
            // Survivable members back to learners; main-site members that
            // rejoined after control came home (a learner of this epoch
            // still) voters again, so the main site's layout is whole.
            self.membership
                .conf
                .voters
                .iter()
                .map(|&v| NodeId(v))
                .filter(|v| {
                    self.membership
                        .members
                        .get(v)
                        .is_some_and(|s| s.member.site != main)
                })
                .map(|v| single(ConfChangeType::AddLearnerNode, v))
                .chain(
                    ready
                        .into_iter()
                        .map(|v| single(ConfChangeType::AddNode, v)),
                )
                .collect()
        } else {
            if ready.len() * 2 <= wanted.len() {
                return;
            }
            let stable = ready
                .iter()
                .filter_map(|id| self.contact.contact_since.get(id))
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
        self.membership.conf_proposed_at = self.tick_no;
    }
}

impl<M: StateMachine, S: LogStore> Node<M, S> {
    /// The members of `wanted` (the main site's voters) that are learners
    /// here, answered within an election timeout and pass the freshness
    /// gate: ready to vote again.
    fn ready_to_vote(&self, wanted: &[NodeId]) -> Vec<NodeId> {
        let last = self.raw.raft.raft_log.last_index();
        let max_lag = self.cfg.topology.hand_back().max_lag_entries;
        let e = self.ticks.election as u64;
        wanted
            .iter()
            .copied()
            .filter(|id| self.membership.conf.learners.contains(&id.0))
            .filter(|id| {
                let heard = self
                    .contact
                    .last_heard
                    .get(id)
                    .is_some_and(|&t| self.tick_no - t <= e);
                let matched = self.raw.raft.prs().get(id.0).map_or(0, |p| p.matched);
                heard && matched + max_lag >= last
            })
            .collect()
    }
}

fn single(kind: ConfChangeType, id: NodeId) -> ConfChangeSingle {
    let mut s = ConfChangeSingle::default();
    s.set_change_type(kind);
    s.node_id = id.0;
    s
}
