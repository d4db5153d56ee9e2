//! Survivable activation (main-site mode): a survivable core that has
//! heard nothing from its epoch's voters for `survivable_after`, and cannot
//! reach a majority of them, forks a new epoch from the log it has, with
//! itself as the voter (its core partners join as learners), fenced from
//! the old one: nothing of the old epoch is ever stepped into the new one.
//!
//! A lower-ranked survivable core activates only if no better-ranked one is
//! reachable. The activation is an event carrying the fork point and the
//! loss known at that moment (the entries the old leader had committed
//! beyond the fork, as last reported to this member).

use std::collections::BTreeMap;

use raft::eraftpb::{ConfState, Snapshot};
use raft::{RawNode, StateRole};

use super::control::{Kind, Probe};
use super::epoch::{EpochId, EpochRecord};
use super::payload::{encode, encode_lineage, encode_members, encode_reconciled, SnapshotData};
use super::Node;
use crate::error::{ActivateError, Fatal};
use crate::events::{Event, LeadershipCause};
use crate::policy::QuorumMode;
use crate::state_machine::StateMachine;
use crate::storage::{LogStore, LogWrite};
use crate::topology::{NodeId, Role};

/// Epoch bookkeeping beyond the lineage.
#[derive(Debug, Default)]
pub(super) struct EpochState {
    /// How far each older epoch's log has been taken in by reconciliation
    /// (in that epoch's indexes; its members join once it has all of it).
    pub(super) reconciled: BTreeMap<EpochId, u64>,
    /// How far each epoch's own entries have been shown to the application
    /// by reconciliation, whoever brought them: an entry is shown once.
    pub(super) covered: BTreeMap<EpochId, u64>,
    /// A newer epoch this member met: its lineage, reconciled map, leader.
    pub(super) newer: Option<super::reunion::Newer>,
    /// This member left its epoch and waits to be added to the new one.
    pub(super) joining: bool,
    /// Joining: the new epoch's leader, as last heard.
    pub(super) join_leader: Option<NodeId>,
    /// Notices sent, per peer (tick).
    pub(super) notice_sent: BTreeMap<NodeId, u64>,
    /// The highest commit index the leader reported (for the RPO).
    pub(super) leader_commit: u64,
    /// Tick of the last probe round.
    pub(super) probed_at: u64,
    /// Tick of the last divergent or join message sent.
    pub(super) asked_at: u64,
    /// Leader: tick of the last announcement to members outside the
    /// configuration.
    pub(super) announced_at: u64,
    /// Leader: a reconciliation proposed and not applied yet
    /// (older epoch, last index, tick).
    pub(super) reconciling: Option<(EpochId, u64, u64)>,
}

impl<M: StateMachine, S: LogStore> Node<M, S> {
    /// Whether this member is a survivable member that main-site mode lets
    /// fork a new epoch: a learner of its current epoch.
    fn may_activate(&self) -> Option<(u32, usize)> {
        if self.cfg.topology.mode() != QuorumMode::MainSite
            || self.role == StateRole::Leader
            || self.ep.newer.is_some()
            || self.ep.joining
            || !self.conf.learners.contains(&self.id.0)
        {
            return None;
        }
        match self.my_member()?.role {
            Role::Survivable { rank, position, .. } => Some((rank, position)),
            _ => None,
        }
    }

    /// Members heard from within an election timeout, among `ids`.
    fn reachable(&self, ids: impl Iterator<Item = NodeId>) -> usize {
        let e = self.ticks.election as u64;
        ids.filter(|id| {
            self.last_heard
                .get(id)
                .is_some_and(|&t| self.tick_no.saturating_sub(t) <= e)
        })
        .count()
    }

    /// Better-ranked survivable members (or earlier ones in this core).
    fn better_survivors(&self, rank: u32, position: usize) -> Vec<NodeId> {
        self.members
            .values()
            .filter_map(|s| match s.member.role {
                Role::Survivable {
                    rank: r,
                    position: p,
                    ..
                } if (r, p) < (rank, position) => Some(s.member.id()),
                _ => None,
            })
            .collect()
    }

    /// Each tick: probe the voters once the leader is silent, and activate
    /// when the conditions hold.
    pub(super) fn drive_takeover(&mut self) {
        let Some((rank, position)) = self.may_activate() else {
            return;
        };
        let e = self.ticks.election;
        let voters: Vec<NodeId> = self.conf.voters.iter().map(|&v| NodeId(v)).collect();
        let better = self.better_survivors(rank, position);
        if self.since_leader >= e / 2 && self.tick_no >= self.ep.probed_at + (e / 2) as u64 {
            self.ep.probed_at = self.tick_no;
            let leader = self.leader.map_or(0, |l| l.0);
            for &to in voters.iter().chain(&better) {
                self.send_control(to, Kind::Probe(Probe { leader }));
            }
        }
        let after = self.ticks.survivable_campaign_after(rank, position);
        if self.since_leader < after {
            return;
        }
        let majority_reachable = self.reachable(voters.iter().copied()) * 2 > voters.len();
        if majority_reachable || self.reachable(better.into_iter()) > 0 {
            return;
        }
        if let Err(f) = self.activate_epoch(rank) {
            self.fail(f);
        }
    }

    /// Activates a new epoch now, as an operator would after deciding the
    /// main site is gone: refused while this member can still reach a
    /// majority of its epoch's voters.
    ///
    /// # Errors
    /// [`ActivateError`] saying why not.
    pub fn activate(&mut self) -> Result<(), ActivateError> {
        let Some((rank, _)) = self.may_activate() else {
            return Err(ActivateError::NotSurvivable);
        };
        let voters: Vec<NodeId> = self.conf.voters.iter().map(|&v| NodeId(v)).collect();
        let reachable = self.reachable(voters.iter().copied());
        // A leader heard lately holds a quorum (check-quorum), even if this
        // learner has not heard the other voters themselves.
        let leader = self
            .leader()
            .filter(|_| self.since_leader < self.ticks.election);
        if leader.is_some() || reachable * 2 > voters.len() {
            return Err(ActivateError::MainSiteReachable {
                leader,
                reachable,
                voters: voters.len(),
            });
        }
        self.activate_epoch(rank).map_err(ActivateError::Fatal)
    }

    /// Forks a new epoch at the applied (committed) index.
    fn activate_epoch(&mut self, rank: u32) -> Result<(), Fatal> {
        let fork_index = self.applied;
        let fork_term = self
            .raw
            .raft
            .raft_log
            .term(fork_index)
            .map_err(|e| Fatal::Raft(e.to_string()))?;
        let number = self.lineage.iter().map(|r| r.id.number).max().unwrap_or(1) + 1;
        let id = EpochId {
            number,
            founder: self.id,
        };
        let mut lineage = self.lineage.clone();
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
            user: self.sm.snapshot(),
            members: encode_members(&self.members),
            dedup: self.dedup.to_records(),
            epochs: encode_lineage(&lineage),
            reconciled: encode_reconciled(&self.ep.reconciled),
            covered: encode_reconciled(&self.ep.covered),
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
        let silent_ms = self.ticks.ms(self.since_leader);
        let rpo_entries = self.ep.leader_commit.saturating_sub(fork_index);
        self.lineage = lineage;
        self.conf = conf;
        self.snapshot_index = fork_index;
        self.restart_raft(fork_index)?;
        self.sm.note_epoch(id);
        self.emit(Event::Activated {
            epoch: id,
            fork_index,
            fork_term,
            rpo_entries,
            silent_ms,
        });
        // Partners and everyone else learn of the new epoch now.
        let others: Vec<NodeId> = self
            .members
            .keys()
            .copied()
            .filter(|&m| m != self.id)
            .collect();
        for to in others {
            self.send_notice(to);
        }
        self.pending_cause = Some(LeadershipCause::Takeover { rank });
        let _ = self.raw.campaign();
        Ok(())
    }

    /// Recreates raft over the storage as it now is (after a fork or a reset).
    pub(super) fn restart_raft(&mut self, applied: u64) -> Result<(), Fatal> {
        let priority = self.my_member().map_or(0, |m| m.priority());
        let cfg = super::raft_config(self.id, &self.ticks, applied, priority);
        self.raw = RawNode::new(&cfg, self.storage.clone(), &self.logger)
            .map_err(|e| Fatal::Raft(e.to_string()))?;
        self.applied = applied;
        self.role = StateRole::Follower;
        self.leader = None;
        self.since_leader = 0;
        self.fast_failover_term = 0;
        self.failover_declined = false;
        self.fresh_leader = false;
        self.hand_back.reset();
        self.snapshot_sent.clear();
        self.ep.leader_commit = 0;
        self.next_campaign = self.campaign_threshold();
        for p in self.proposals.pending.values_mut() {
            p.submitted = None;
        }
        self.reads.reset();
        Ok(())
    }
}
