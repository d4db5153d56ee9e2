//! Survivable activation (main-site mode): a survivable core that has
//! heard no leader of its epoch for `survivable_after`, and cannot reach a
//! majority of its voters, forks a new epoch from the log it has, with
//! itself as the only voter (its core partners join as learners; see
//! `Node::activate` for why and what it costs), fenced from the old one:
//! nothing of the old epoch is ever stepped into the new one.
//!
//! A lower-ranked survivable core activates only if no better-ranked one is
//! reachable. The activation is an event carrying the fork point and the
//! loss known at that moment (the entries the old leader had committed
//! beyond the fork, as last reported to this member).

use std::collections::BTreeMap;

use raft::eraftpb::{ConfState, Snapshot};
use raft::{RawNode, StateRole};

use super::Node;
use crate::error::{ActivateError, Fatal};
use crate::events::{Event, LeadershipCause};
use crate::ids::{EpochId, EpochRecord};
use crate::policy::{QuorumMode, TickTimers};
use crate::state_machine::StateMachine;
use crate::storage::{LogStore, LogWrite};
use crate::topology::{Member, NodeId, Role};
use crate::wire::control::{Kind, Probe};
use crate::wire::payload::{
    encode, encode_lineage, encode_members, encode_reconciled, SnapshotData,
};

/// Refuted epoch claims remembered.
pub(super) const REFUTED_KEPT: usize = 16;

/// Ticks after which a fence that only an envelope's header set is lifted
/// when no notice of the claimed epoch came: the fenced member asks the
/// sender and the epoch's founder for their notice at once and again every
/// election timeout (notices are rate-limited so), and a member of a real
/// newer epoch answers at once, within a round trip, which the timers keep
/// below an election timeout. Four election timeouts let the first ask and
/// three more go unanswered (lost) before the claim is judged false.
pub(super) fn unconfirmed_fence_after(t: &TickTimers) -> usize {
    4 * t.election
}

/// Reported commit indexes kept for the RPO in time.
pub(super) const BEYOND_KEPT: usize = 4096;

/// The epoch lineage and its bookkeeping: fencing, reconciliation, probes.
#[derive(Debug, Default)]
pub(super) struct EpochState {
    /// The epoch lineage, first epoch first; this node's epoch is the last.
    pub(super) lineage: Vec<EpochRecord>,
    /// How far each older epoch's log has been taken in by reconciliation
    /// (in that epoch's indexes; its members join once it has all of it).
    pub(super) reconciled: BTreeMap<EpochId, u64>,
    /// How far each epoch's own entries have been shown to the application
    /// by reconciliation, whoever brought them: an entry is shown once.
    pub(super) covered: BTreeMap<EpochId, u64>,
    /// A newer epoch this member met: its lineage, reconciled map, leader.
    pub(super) newer: Option<super::reunion::Newer>,
    /// A newer epoch seen in an envelope's header before its notice came:
    /// (the epoch, who sent it). Fences at once; reunion waits for the
    /// notice with its lineage.
    pub(super) fenced_by: Option<(EpochId, NodeId)>,
    /// Tick at which `fenced_by` was set.
    pub(super) fenced_at: u64,
    /// Epochs claimed by envelopes whose fence was lifted for want of a
    /// notice (newest last, at most [`REFUTED_KEPT`]): they fence nothing
    /// more until a notice of them comes.
    pub(super) refuted: Vec<EpochId>,
    /// This member left its epoch and waits to be added to the new one.
    pub(super) joining: bool,
    /// Joining: the new epoch's leader, as last heard.
    pub(super) join_leader: Option<NodeId>,
    /// Notices sent, per peer (tick).
    pub(super) notice_sent: BTreeMap<NodeId, u64>,
    /// The highest commit index the leader reported (for the RPO).
    pub(super) leader_commit: u64,
    /// Commit indexes the leader reported that this member had not applied
    /// yet, each with when it was first reported (ms), increasing: the
    /// first one beyond the fork point dates the RPO. At most
    /// [`BEYOND_KEPT`] (later reports are not recorded, which can only make
    /// the RPO in time smaller, never larger).
    pub(super) beyond: std::collections::VecDeque<(u64, u64)>,
    /// When this member last heard its leader (ms).
    pub(super) leader_heard_ms: u64,
    /// Leader: older epochs whose reconciliation the hook refused, with the
    /// consecutive failures and the tick before which it is not retried.
    pub(super) reconcile_backoff: BTreeMap<EpochId, (u32, u64)>,
    /// Tick of the last probe round.
    pub(super) probed_at: u64,
    /// Tick of the last divergent or join message sent.
    pub(super) asked_at: u64,
    /// Leader: tick of the last announcement to members outside the
    /// configuration.
    pub(super) announced_at: u64,
    /// Leader: a reconciliation proposed and not applied yet
    /// (older epoch, last index, tick, the member whose run it takes).
    pub(super) reconciling: Option<(EpochId, u64, u64, NodeId)>,
}

impl EpochState {
    /// The RPO in time of a fork at `fork_index`: from the first report of
    /// the leader that it had committed beyond the fork to the last time
    /// this member heard it (0 when no report went beyond the fork). See
    /// [`Event::Activated`]'s `rpo_ms`.
    pub(super) fn rpo_ms(&self, fork_index: u64) -> u64 {
        if self.leader_commit <= fork_index {
            return 0;
        }
        self.beyond
            .iter()
            .find(|&&(reported, _)| reported > fork_index)
            .map_or(0, |&(_, at)| self.leader_heard_ms.saturating_sub(at))
    }

    /// Records a leader's append (`reported`: its commit) or heartbeat
    /// (`None`) heard at `now_ms` by a member that applied up to `applied`.
    pub(super) fn note_report(&mut self, now_ms: u64, applied: u64, reported: Option<u64>) {
        self.leader_heard_ms = now_ms;
        while self.beyond.front().is_some_and(|&(r, _)| r <= applied) {
            self.beyond.pop_front();
        }
        let Some(reported) = reported.filter(|&r| r > applied) else {
            return;
        };
        let grows = self.beyond.back().is_none_or(|&(r, _)| reported > r);
        if grows && self.beyond.len() < BEYOND_KEPT {
            self.beyond.push_back((reported, now_ms));
        }
    }
}

/// The (rank, position) of a member in `role` that may fork a new epoch:
/// main-site mode, a survivable member, a learner of its epoch, and not
/// `busy` (leading, fenced or joining).
pub(super) fn activation_slot(
    mode: QuorumMode,
    busy: bool,
    learner: bool,
    role: &Role,
) -> Option<(u32, usize)> {
    // Main-site mode: a learner of its epoch; DR auto-sync: a voter too.
    let eligible = match mode {
        QuorumMode::MainSite => learner,
        QuorumMode::DrAutoSync => true,
        _ => false,
    };
    if !eligible || busy {
        return None;
    }
    match *role {
        Role::Survivable { rank, position, .. } => Some((rank, position)),
        _ => None,
    }
}

/// The survivable members among `members` ranked before (rank, position).
pub(super) fn better_survivors<'a>(
    members: impl Iterator<Item = &'a Member>,
    rank: u32,
    position: usize,
) -> Vec<NodeId> {
    members
        .filter_map(|m| match m.role {
            Role::Survivable {
                rank: r,
                position: p,
                ..
            } if (r, p) < (rank, position) => Some(m.id()),
            _ => None,
        })
        .collect()
}

/// Whether a survivable member leaderless long enough activates on its
/// own: it reaches at most half of its epoch's `voters` (`reachable` of
/// them answered within an election timeout) and no better-ranked
/// survivable member (`better_reachable`).
pub(super) fn unattended_activation(
    reachable: usize,
    voters: usize,
    better_reachable: usize,
) -> bool {
    reachable * 2 <= voters && better_reachable == 0
}

/// Whether an operator's activation goes ahead: refused while the epoch's
/// leader was heard within an election timeout (`leader`) or a majority of
/// its `voters` answered.
pub(super) fn manual_activation(
    leader: Option<NodeId>,
    reachable: usize,
    voters: usize,
) -> Result<(), ActivateError> {
    if leader.is_some() || reachable * 2 > voters {
        return Err(ActivateError::MainSiteReachable {
            leader,
            reachable,
            voters,
        });
    }
    Ok(())
}

impl<M: StateMachine, S: LogStore> Node<M, S> {
    /// Whether this member is a survivable member that main-site mode lets
    /// fork a new epoch: a learner of its current epoch.
    fn may_activate(&self) -> Option<(u32, usize)> {
        activation_slot(
            self.cfg.topology.mode(),
            self.election.role == StateRole::Leader || self.fenced() || self.ep.joining,
            self.membership.conf.learners.contains(&self.id.0),
            &self.my_member()?.role,
        )
    }

    /// Members heard from within an election timeout, among `ids`.
    fn reachable(&self, ids: impl Iterator<Item = NodeId>) -> usize {
        let e = self.ticks.election as u64;
        ids.filter(|id| {
            self.contact
                .last_heard
                .get(id)
                .is_some_and(|&t| self.tick_no.saturating_sub(t) <= e)
        })
        .count()
    }

    /// Better-ranked survivable members (or earlier ones in this core).
    fn better_survivors(&self, rank: u32, position: usize) -> Vec<NodeId> {
        better_survivors(
            self.membership.members.values().map(|s| &s.member),
            rank,
            position,
        )
    }

    /// Each tick: probe the voters once the leader is silent, and activate
    /// when the conditions hold.
    pub(super) fn drive_takeover(&mut self) {
        if self.drain.drained {
            return;
        }
        let Some((rank, position)) = self.may_activate() else {
            return;
        };
        let e = self.ticks.election;
        let voters: Vec<NodeId> = self.membership.voter_ids().collect();
        let better = self.better_survivors(rank, position);
        if self.election.since_leader >= e / 2 && self.tick_no >= self.ep.probed_at + (e / 2) as u64
        {
            self.ep.probed_at = self.tick_no;
            let leader = self.election.leader.map_or(0, |l| l.0);
            for &to in voters.iter().chain(&better) {
                self.send_control(
                    to,
                    Kind::Probe(Probe {
                        leader,
                        ..Probe::default()
                    }),
                );
            }
        }
        let after = self.ticks.survivable_campaign_after(rank, position);
        if self.election.since_leader < after {
            return;
        }
        let reachable = self.reachable(voters.iter().copied());
        if self.dr_mode() {
            // Better-ranked members of this core are weighed by log length
            // once prepared; other cores' by rank, as in main-site mode.
            let better_cores: Vec<NodeId> = better
                .into_iter()
                .filter(|b| {
                    let core = |id: &NodeId| {
                        self.membership
                            .members
                            .get(id)
                            .and_then(|s| s.member.core())
                    };
                    core(b) != core(&self.id)
                })
                .collect();
            let may = self.dr.prepared
                || !self.partner_led()
                    && unattended_activation(
                        reachable,
                        voters.len(),
                        self.reachable(better_cores.into_iter()),
                    );
            self.drive_dr_takeover(may, position);
            return;
        }
        if !unattended_activation(reachable, voters.len(), self.reachable(better.into_iter())) {
            return;
        }
        let held = self.applied;
        if let Err(f) = self.activate_epoch(rank, position, false, held) {
            self.fail(f);
        }
    }

    /// Activation an operator asked for ([`Node::activate`]).
    pub(super) fn activate_now(&mut self) -> Result<(), ActivateError> {
        if self.drain.drained {
            return Err(ActivateError::Drained);
        }
        let Some((rank, position)) = self.may_activate() else {
            return Err(ActivateError::NotSurvivable);
        };
        let voters: Vec<NodeId> = self.membership.voter_ids().collect();
        let reachable = self.reachable(voters.iter().copied());
        // A leader heard lately holds a quorum (check-quorum), even if this
        // learner has not heard the other voters themselves.
        let leader = self
            .leader()
            .filter(|_| self.election.since_leader < self.ticks.election);
        manual_activation(leader, reachable, voters.len())?;
        if self.dr_mode() {
            return self.activate_with_tail(false).map_err(ActivateError::Fatal);
        }
        let held = self.applied;
        self.activate_epoch(rank, position, false, held)
            .map_err(ActivateError::Fatal)
    }

    /// Forks a new epoch at the applied (committed) index. `proven`: DR
    /// auto-sync proved that nothing committed is missing (see
    /// [`crate::replication`]); `held`: the last index of the old epoch's
    /// log this epoch keeps (the fork index, or the end of the tail DR
    /// auto-sync carries over).
    pub(super) fn activate_epoch(
        &mut self,
        rank: u32,
        position: usize,
        proven: bool,
        held: u64,
    ) -> Result<(), Fatal> {
        self.finish_install_now()?;
        let fork_index = self.applied;
        let fork_term = self
            .raw
            .raft
            .raft_log
            .term(fork_index)
            .map_err(|e| Fatal::Raft(e.to_string()))?;
        let id = EpochId::fork(&self.ep.lineage, self.id, rank, position);
        let mut lineage = self.ep.lineage.clone();
        lineage.push(EpochRecord {
            id,
            fork_index,
            fork_term,
        });
        let conf = ConfState {
            voters: vec![self.id.0],
            ..Default::default()
        };
        let data = SnapshotData {
            user: self.sm.snapshot().into(),
            members: encode_members(&self.membership.members),
            dedup: self.proposals.dedup.to_records(),
            epochs: encode_lineage(&lineage),
            reconciled: encode_reconciled(&self.ep.reconciled),
            covered: encode_reconciled(&self.ep.covered),
            topology: (self.cfg.topology.version() > 0)
                .then(|| crate::wire::payload::TopologyRecord::from(&*self.cfg.topology)),
            replication: self.fork_replication(id.generation()),
        };
        let mut snap = Snapshot {
            data: encode(&data).into(),
            ..Default::default()
        };
        let meta = snap.mut_metadata();
        meta.index = fork_index;
        meta.term = fork_term;
        meta.set_conf_state(conf.clone());
        self.storage.persist(LogWrite {
            snapshot: Some(&snap),
            entries: &[],
            hard_state: None,
            sync: true,
        })?;
        let silent_ms = self.ticks.ms(self.election.since_leader);
        // `held`: the last old-epoch index this epoch keeps, in its
        // prefix or carried as commands (DR auto-sync).
        let rpo_entries = self.ep.leader_commit.saturating_sub(held.max(fork_index));
        let rpo_ms = self.ep.rpo_ms(fork_index);
        let proven = proven && rpo_entries == 0;
        self.ep.lineage = lineage;
        self.membership.conf = conf;
        self.snapshot_index = fork_index;
        self.restart_raft(fork_index)?;
        self.sm.note_epoch(id);
        self.emit(Event::Activated {
            epoch: id,
            fork_index,
            fork_term,
            rpo_entries,
            rpo_ms,
            silent_ms,
            rpo_proven: proven,
        });
        if let Some(r) = data.replication {
            self.adopt_replication(Some(&r), fork_index);
        }
        // Partners and everyone else learn of the new epoch now.
        let others: Vec<NodeId> = self
            .membership
            .members
            .keys()
            .copied()
            .filter(|&m| m != self.id)
            .collect();
        for to in others {
            self.send_notice(to);
        }
        self.election.pending_cause = Some(LeadershipCause::Takeover { rank });
        let _ = self.raw.campaign();
        Ok(())
    }

    /// Each tick: lifts a fence that only an envelope's header set once no
    /// notice of the claimed epoch came within [`unconfirmed_fence_after`],
    /// with an alarm ([`Event::FenceLifted`]). One envelope must not
    /// silence an epoch for good; a real newer epoch's next notice fences
    /// again (and starts reunion).
    pub(super) fn expire_unconfirmed_fence(&mut self) {
        let Some((claimed, by)) = self.ep.fenced_by else {
            return;
        };
        let waited = self.tick_no.saturating_sub(self.ep.fenced_at);
        if self.ep.newer.is_some() || waited < unconfirmed_fence_after(&self.ticks) as u64 {
            return;
        }
        self.ep.fenced_by = None;
        if self.ep.refuted.len() >= REFUTED_KEPT {
            self.ep.refuted.remove(0);
        }
        self.ep.refuted.push(claimed);
        let ours = self.epoch();
        let fenced_ms = waited * self.ticks.tick_ms;
        slog::error!(self.logger, "fenced by an envelope claiming a newer epoch, but no notice of it came: fence lifted, taking proposals again; check the sender";
            "ours" => %ours, "claimed" => %claimed, "by" => by.0, "fenced_ms" => fenced_ms);
        self.emit(Event::FenceLifted {
            ours,
            claimed,
            by,
            fenced_ms,
        });
    }

    /// Records a leader's append (its reported commit) or heartbeat, for
    /// the RPO in time.
    pub(super) fn note_leader_report(&mut self, reported: Option<u64>) {
        self.ep.note_report(self.now_ms, self.applied, reported);
    }

    /// Recreates raft over the storage as it now is (after a fork or a reset).
    pub(super) fn restart_raft(&mut self, applied: u64) -> Result<(), Fatal> {
        let priority = self.own_priority();
        let cfg = super::config::raft_config(self.id, &self.ticks, applied, priority);
        self.raw = RawNode::new(&cfg, self.storage.clone(), &self.logger)
            .map_err(|e| Fatal::Raft(e.to_string()))?;
        self.applied = applied;
        self.forget_install();
        self.election.role = StateRole::Follower;
        self.election.leader = None;
        self.election.since_leader = 0;
        self.election.fast_failover_term = 0;
        self.election.failover_declined = false;
        self.election.fresh_leader = false;
        self.hand_back.reset();
        self.membership.snapshot_sent.clear();
        self.ep.leader_commit = 0;
        self.ep.beyond.clear();
        self.ep.leader_heard_ms = 0;
        self.election.next_campaign = self.campaign_threshold();
        self.proposals.unsubmit_all();
        self.reads.reset();
        self.dr.reset();
        Ok(())
    }
}

#[cfg(test)]
#[path = "takeover_tests.rs"]
mod tests;
