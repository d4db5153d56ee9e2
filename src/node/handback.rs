//! Hand-back: a leader outside the main site (or a witness leading as the
//! last resort) moves leadership to the most preferred member that is
//! reachable and caught up, under the [`HandBackPolicy`].
//!
//! Gates, in order: the candidate is a voter of a more preferred site; it
//! answered within the last election timeout; it is fresh: it lags by at
//! most `max_lag_entries`, or it holds every entry this leader had half an
//! election timeout ago (under a steady load over a long WAN, the entries
//! in flight alone can exceed any fixed count: 400 proposals/s over a
//! 200 ms round trip keep 80 on the way, and a count-only gate never
//! opens; what is in flight costs the transfer nothing, see
//! `hurry_transfer`); the policy allows it now (stable
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
    /// The leader's last index at recent ticks (the freshness gate).
    history: IndexHistory,
}

/// The leader's last index at recent ticks, oldest first, pruned to what
/// the freshness gate looks back at.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct IndexHistory {
    samples: std::collections::VecDeque<(u64, u64)>,
}

impl IndexHistory {
    /// Records `last` at `tick`, keeping what a look `back` ticks into the
    /// past needs (the newest sample at or before `tick - back`).
    pub(super) fn note(&mut self, tick: u64, last: u64, back: u64) {
        if self.samples.back().is_some_and(|&(t, _)| t == tick) {
            self.samples.pop_back();
        }
        self.samples.push_back((tick, last));
        let horizon = tick.saturating_sub(back);
        while self.samples.len() >= 2 && self.samples[1].0 <= horizon {
            self.samples.pop_front();
        }
    }

    /// The last index as of `tick` (0 when nothing that old is known).
    pub(super) fn as_of(&self, tick: u64) -> u64 {
        (self.samples.iter().rev())
            .find(|&&(t, _)| t <= tick)
            .map_or(0, |&(_, last)| last)
    }

    /// Forgets everything (leadership lost: the next term starts afresh).
    pub(super) fn clear(&mut self) {
        self.samples.clear();
    }
}

/// What the leader does about the best hand-back target this tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Attempt {
    /// Not now: before the retry time, or the policy does not allow it.
    Wait,
    /// The policy's attempt limit was hit for this target.
    Abandoned,
    /// Transfer to the target now: attempt number.
    Start(u32),
}

/// How a hand-back that cost this node its leadership ended, once the new
/// leader is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Landed {
    /// No attempt was under way, or no leader is known yet.
    NotYet,
    /// The target leads.
    Completed {
        /// The member that leads now.
        target: NodeId,
        /// Attempts it took.
        attempts: u32,
    },
    /// Someone else leads (this node included): the attempt failed.
    Failed {
        /// The member the attempt was for.
        target: NodeId,
        /// Which attempt.
        attempt: u32,
    },
}

impl HandBackState {
    /// Forgets everything (a new epoch: other members, other history).
    pub(super) fn reset(&mut self) {
        *self = Self::default();
    }

    /// An operator asked for a hand-back: allowed whatever the policy, and
    /// the limit and retry time are lifted.
    pub(super) fn ask(&mut self) {
        self.manual = true;
        self.abandoned = false;
        self.next_attempt = 0;
    }

    /// The decision for the best `target` now (in contact since tick
    /// `since`), at tick `tick_no`, `allowed` by the policy: counts the
    /// attempts per target and contact, and starts one when due.
    pub(super) fn next(
        &mut self,
        target: NodeId,
        since: u64,
        tick_no: u64,
        allowed: bool,
    ) -> Attempt {
        if let Some(until) = self.rebase_until {
            if tick_no > until {
                self.rebase_until = None;
            } else if self.counted.is_some_and(|(t, _)| t == target) {
                self.counted = Some((target, since));
            }
        }
        if self.counted != Some((target, since)) {
            // Another target, or contact with it restarted: count afresh.
            self.counted = Some((target, since));
            self.attempts = 0;
            self.abandoned = false;
        }
        if self.abandoned {
            return Attempt::Abandoned;
        }
        if tick_no < self.next_attempt || !allowed {
            return Attempt::Wait;
        }
        self.attempts += 1;
        self.in_flight = Some(target);
        Attempt::Start(self.attempts)
    }

    /// Attempt `attempt` failed at tick `tick_no`: the next one waits
    /// `retry_ticks`; returns whether the limit `max` is now hit (the
    /// target is abandoned).
    pub(super) fn failed(
        &mut self,
        attempt: u32,
        tick_no: u64,
        retry_ticks: u64,
        max: Option<u32>,
    ) -> bool {
        self.next_attempt = tick_no + retry_ticks;
        if max.is_some_and(|max| attempt >= max) {
            self.abandoned = true;
            self.manual = false;
            return true;
        }
        false
    }

    /// After stepping down mid-attempt: `leader` is known now (this node
    /// is `me`). If this node won back the leadership the attempt cost it,
    /// the restart of contact with the target in the next two election
    /// timeouts is the failed election's silence and keeps the count.
    pub(super) fn landed(
        &mut self,
        leader: Option<NodeId>,
        me: NodeId,
        tick_no: u64,
        election: u64,
    ) -> Landed {
        let (Some((target, attempt)), Some(l)) = (self.handed, leader) else {
            return Landed::NotYet;
        };
        self.handed = None;
        if l == target {
            self.manual = false;
            return Landed::Completed {
                target,
                attempts: attempt,
            };
        }
        if l == me {
            self.rebase_until = Some(tick_no + 2 * election);
        } else {
            self.manual = false;
        }
        Landed::Failed { target, attempt }
    }
}

/// A voter the leader might hand back to, as the leader sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Candidate {
    pub(super) id: NodeId,
    pub(super) preference: u32,
    pub(super) position: usize,
    /// Tick it was last heard from.
    pub(super) heard: u64,
    /// Tick since which it has been heard without a gap.
    pub(super) since: u64,
    /// Highest index known to be on it.
    pub(super) matched: u64,
}

/// The freshness gate: the leader's last index, the lag allowed, the
/// leader's last index half an election timeout ago (`settled`: a
/// candidate holding it keeps up, whatever is in flight) and the clock (a
/// candidate must have answered within the election timeout).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Freshness {
    pub(super) last: u64,
    pub(super) max_lag: u64,
    pub(super) settled: u64,
    pub(super) tick_no: u64,
    pub(super) election: u64,
}

/// The most preferred candidate (then lowest position, then id) that is
/// preferred to this leader (`mine`), answered within an election timeout
/// and is fresh (lags by at most `max_lag`, or holds `settled`): (id,
/// ticks in contact, lag).
pub(super) fn pick_target(
    mine: u32,
    candidates: impl Iterator<Item = Candidate>,
    gate: Freshness,
) -> Option<(NodeId, u64, u64)> {
    if mine == 0 {
        return None;
    }
    candidates
        .filter(|c| {
            c.preference < mine && gate.tick_no - c.heard <= gate.election && gate.fresh(c.matched)
        })
        .map(|c| {
            let key = (c.preference, c.position, c.id);
            (
                key,
                gate.tick_no - c.since,
                gate.last.saturating_sub(c.matched),
            )
        })
        .min_by_key(|(k, _, _)| *k)
        .map(|((_, _, id), stable, lag)| (id, stable, lag))
}

impl Freshness {
    /// Whether a member holding the log up to `matched` passes the gate.
    pub(super) fn fresh(&self, matched: u64) -> bool {
        matched + self.max_lag >= self.last || (self.settled > 0 && matched >= self.settled)
    }
}

/// Whether `policy` allows a hand-back now: `forced` (an operator asked, or
/// a witness leads as the last resort) always; otherwise by the policy,
/// for a target in contact for `stable_ms`, at wall-clock `now_ms`.
pub(super) fn policy_allows(
    policy: &HandBackPolicy,
    forced: bool,
    stable_ms: u64,
    now_ms: u64,
) -> bool {
    if forced {
        return true;
    }
    match policy {
        HandBackPolicy::Immediate => true,
        HandBackPolicy::AfterStable(d) => stable_ms >= d.as_millis() as u64,
        HandBackPolicy::Window { start, end } => TimeOfDay::of_unix_ms(now_ms).within(*start, *end),
        HandBackPolicy::Manual => false,
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
        self.hand_back.ask();
        self.drive_hand_back();
        self.on_ready();
        Ok(())
    }

    /// The best hand-back target now, with how long it has been in contact
    /// (ticks) and how far it lags (entries).
    fn hand_back_target(&self) -> Option<(NodeId, u64, u64)> {
        let mine = self.my_member().map_or(u32::MAX, |m| m.preference());
        let holds = super::drain::notice_holds(&self.ticks);
        let prs = self.raw.raft.prs();
        let candidates = self
            .membership
            .voter_ids()
            .filter(|&id| id != self.id)
            // A drained member never takes leadership.
            .filter(|&id| !self.drain.peer_drained(id, self.tick_no, holds))
            .filter_map(|id| {
                let m = &self.membership.members.get(&id)?.member;
                Some(Candidate {
                    id,
                    preference: m.preference(),
                    position: m.position(),
                    heard: *self.contact.last_heard.get(&id)?,
                    since: *self.contact.contact_since.get(&id)?,
                    matched: prs.get(id.0)?.matched,
                })
            });
        pick_target(mine, candidates, self.freshness())
    }

    /// The freshness gate now. Call [`note_last_index`](Self::note_last_index) first.
    pub(super) fn freshness(&self) -> Freshness {
        let back = (self.ticks.election / 2) as u64;
        Freshness {
            last: self.raw.raft.raft_log.last_index(),
            max_lag: self.cfg.topology.hand_back().max_lag_entries,
            settled: self
                .hand_back
                .history
                .as_of(self.tick_no.saturating_sub(back)),
            tick_no: self.tick_no,
            election: self.ticks.election as u64,
        }
    }

    /// Records this leader's last index for the freshness gate.
    pub(super) fn note_last_index(&mut self) {
        let back = (self.ticks.election / 2) as u64;
        let last = self.raw.raft.raft_log.last_index();
        self.hand_back.history.note(self.tick_no, last, back);
    }

    pub(super) fn drive_hand_back(&mut self) {
        if self.election.role != StateRole::Leader {
            self.hand_back.history.clear();
            return;
        }
        self.note_last_index();
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
        let allowed = self.policy_allows(stable_ticks);
        let Attempt::Start(attempt) = self.hand_back.next(target, since, self.tick_no, allowed)
        else {
            return;
        };
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
        let hb = self.cfg.topology.hand_back();
        let retry = (hb.retry_after.as_millis() as u64).div_ceil(self.ticks.tick_ms);
        if self
            .hand_back
            .failed(attempt, self.tick_no, retry, hb.max_attempts)
        {
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
    pub(super) fn hurry_transfer(&mut self, target: NodeId) {
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

    /// Whether the hand-back policy allows an attempt now at a target in
    /// contact for `stable_ticks`.
    fn policy_allows(&self, stable_ticks: u64) -> bool {
        let witness = matches!(self.my_member().map(|m| &m.role), Some(Role::Witness));
        policy_allows(
            &self.cfg.topology.hand_back().policy,
            witness || self.hand_back.manual,
            stable_ticks * self.ticks.tick_ms,
            self.now_ms,
        )
    }

    /// Leadership was won: a transfer of an earlier term is over. The
    /// attempt count, the limit and the retry time stay: an attempt that
    /// cost this node its leadership counts like one raft aborted.
    pub(super) fn hand_back_gained_leadership(&mut self) {
        self.hand_back.in_flight = None;
        self.hand_back.history.clear();
    }

    /// An operator's transfer (or a drained leader's) replaces the attempt
    /// under way, if any: it is not reported as failed.
    pub(super) fn hand_back_superseded(&mut self) {
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
        let e = self.ticks.election as u64;
        match self.hand_back.landed(leader, self.id, self.tick_no, e) {
            Landed::NotYet => {}
            Landed::Completed { target, attempts } => {
                self.emit(Event::HandBackCompleted { target, attempts })
            }
            Landed::Failed { target, attempt } => self.hand_back_failed(target, attempt),
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
    ///
    /// DR auto-sync mode: the same, except that at home the survivable
    /// members are voters again (promoted once fresh, never demoted), so
    /// the leader can take the cluster back to `Sync`.
    pub(super) fn drive_main_site_return(&mut self) {
        let topology = self.cfg.topology.clone();
        if !topology.mode().forks_epochs() || self.election.role != StateRole::Leader {
            return;
        }
        let dr = topology.mode() == QuorumMode::DrAutoSync;
        let pending = self.raw.raft.pending_conf_index > self.applied;
        let recently = self.tick_no < self.membership.conf_proposed_at + self.ticks.election as u64;
        if pending || recently || !self.membership.conf.voters_outgoing.is_empty() {
            return;
        }
        let main = topology.main_site();
        let home = self.my_member().is_some_and(|m| m.site == main);
        // Away, the main site's members come back first (in DR mode the
        // topology's voters include the survivable site's).
        let wanted: Vec<NodeId> = topology
            .voters()
            .into_iter()
            .filter(|v| home || topology.member(*v).is_some_and(|m| m.site == main))
            .collect();
        let ready = self.ready_to_vote(&wanted);
        let changes: Vec<ConfChangeSingle> = if home {
            // Survivable members back to learners; main-site members that
            // rejoined after control came home (a learner of this epoch
            // still) voters again, so the main site's layout is whole.
            self.membership
                .voter_ids()
                .filter(|_| !dr)
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
        let gate = self.freshness();
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
                heard && gate.fresh(matched)
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

#[cfg(test)]
#[path = "handback_tests.rs"]
mod tests;
