//! The topology as replicated state: a [`TopologyChange`] is validated at
//! the leader, proposed as a new version of the topology, and applied at
//! every member in log order, so every member holds the same topology.
//!
//! - A change that moves members in or out of the raft configuration
//!   (adds or removes a member, a survivable core or a witness) travels
//!   in one `ConfChangeV2`, the new topology in its context: raft takes
//!   the voter/learner change and the library the topology, in the same
//!   entry. Several changes at once go through joint consensus (the old
//!   and the new voters must both agree), and raft leaves the joint
//!   configuration by itself once it is committed; should it not (a
//!   leader change in the middle), the leader of the day leaves it
//!   explicitly.
//! - A change that moves nobody (a rank, an address, a new empty site)
//!   is a normal entry carrying the new topology.
//!
//! Applying a version swaps the node's topology (what
//! [`Node::topology`](super::Node::topology) returns and every decision
//! reads), updates this member's election priority when its rank moved,
//! and emits [`Event::TopologyChanged`] naming the members whose address
//! changed. Snapshots carry the topology, so a member restored from one
//! has it.

use std::sync::Arc;

use raft::eraftpb::{ConfChangeSingle, ConfChangeType, ConfChangeV2};
use raft::StateRole;
use thiserror::Error;

use super::Node;
use crate::events::Event;
use crate::state_machine::StateMachine;
use crate::storage::LogStore;
use crate::topology::change::ConfMoves;
use crate::topology::{NodeId, Topology, TopologyChange, TopologyError};
use crate::wire::payload::{encode, EntryPayload, MemberRecord, MemberState, TopologyRecord};

/// Why [`Node::change_topology`](super::Node::change_topology) refused a
/// change. Nothing was proposed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum TopologyChangeError {
    /// Only the leader proposes topology changes.
    #[error("not the leader: send the change to the leader ({leader:?})")]
    NotLeader {
        /// The leader, if known.
        leader: Option<NodeId>,
    },
    /// A configuration or topology change is still under way (proposed
    /// and not yet applied, a joint configuration not yet left, or a
    /// replacement not finished).
    #[error("a membership or topology change is under way: wait until it is applied, then retry")]
    UnderWay,
    /// The change is invalid for the current topology.
    #[error("invalid topology change: {0}")]
    Invalid(#[from] TopologyError),
    /// The change would remove the leader itself.
    #[error("the change removes the leader {0}: transfer leadership to another member first")]
    RemovesLeader(NodeId),
    /// raft dropped the proposal (e.g. during a leadership transfer).
    #[error("raft dropped the proposal ({0}): retry")]
    Dropped(String),
}

/// The leader's bookkeeping of its topology proposals.
#[derive(Debug, Default)]
pub(super) struct Reconfig {
    /// Index of the last topology entry proposed here (0: none).
    pub(super) proposed_index: u64,
}

fn single(kind: ConfChangeType, id: NodeId) -> ConfChangeSingle {
    let mut s = ConfChangeSingle::default();
    s.set_change_type(kind);
    s.node_id = id.0;
    s
}

/// The configuration change that carries `moves`, with the new topology
/// `record` in its context.
pub(super) fn conf_change(moves: &ConfMoves, record: &TopologyRecord) -> ConfChangeV2 {
    let adds = (moves.add_voters.iter()).map(|&id| single(ConfChangeType::AddNode, id));
    let learners =
        (moves.add_learners.iter()).map(|&id| single(ConfChangeType::AddLearnerNode, id));
    let removes = (moves.remove.iter()).map(|&id| single(ConfChangeType::RemoveNode, id));
    ConfChangeV2 {
        changes: adds
            .chain(learners)
            .chain(removes)
            .collect::<Vec<_>>()
            .into(),
        context: encode(record).into(),
        ..Default::default()
    }
}

/// The members whose address `next` sets or changes.
pub(super) fn moved(old: &Topology, next: &Topology) -> Vec<NodeId> {
    (next.addresses().iter())
        .filter(|(id, a)| old.address(**id) != Some(a.as_str()))
        .map(|(&id, _)| id)
        .collect()
}

impl<M: StateMachine, S: LogStore> Node<M, S> {
    /// [`Node::change_topology`](super::Node::change_topology).
    pub(super) fn propose_topology(
        &mut self,
        change: &TopologyChange,
    ) -> Result<u64, TopologyChangeError> {
        if self.election.role != StateRole::Leader {
            return Err(TopologyChangeError::NotLeader {
                leader: self.election.leader,
            });
        }
        let replacing = (self.membership.members.values()).any(|s| s.replaces.is_some());
        if self.topology_under_way()
            || !self.membership.conf.voters_outgoing.is_empty()
            || replacing
        {
            return Err(TopologyChangeError::UnderWay);
        }
        let next = self.cfg.topology.apply(change)?;
        let moves = ConfMoves::between(&self.cfg.topology, &next);
        if moves.remove.contains(&self.id) {
            return Err(TopologyChangeError::RemovesLeader(self.id));
        }
        let record = TopologyRecord::from(&next);
        let proposed = if moves.is_empty() {
            let payload = EntryPayload {
                topology: Some(record),
                ..EntryPayload::default()
            };
            self.raw.propose(Vec::new(), encode(&payload))
        } else {
            let cc = conf_change(&moves, &record);
            self.raw.propose_conf_change(Vec::new(), cc)
        };
        proposed.map_err(|e| TopologyChangeError::Dropped(e.to_string()))?;
        self.reconfig.proposed_index = self.raw.raft.raft_log.last_index();
        self.membership.conf_proposed_at = self.tick_no;
        self.on_ready();
        Ok(next.version())
    }

    /// A configuration change or a topology version is in the log and not
    /// yet applied here: nothing that changes the topology or the
    /// configuration may be proposed until it is (the next version is
    /// computed from the applied one). A new leader's `pending_conf_index`
    /// is its last index, which covers entries a former leader proposed.
    pub(super) fn topology_under_way(&self) -> bool {
        self.raw.raft.pending_conf_index > self.applied
            || self.reconfig.proposed_index > self.applied
    }

    /// The configuration change that promotes the caught-up replacement
    /// `state` and removes `dead`, in one joint change whose context
    /// carries both the member's record and the next topology version
    /// (`dead`'s slot now naming the replacement, at the address it was
    /// given if any), so every member applies both at the same log index.
    /// `None` (logged) when that topology does not validate, which
    /// [`start_replacement`](Self::start_replacement) checked already.
    pub(super) fn promotion(&self, dead: NodeId, state: &MemberState) -> Option<ConfChangeV2> {
        let member = &state.member;
        let change = TopologyChange::ReplaceMember {
            old: dead,
            new: member.spec.clone(),
            address: state.address.clone(),
        };
        let next = match self.cfg.topology.apply(&change) {
            Ok(next) => next,
            Err(e) => {
                slog::error!(self.logger, "replacement not promoted: invalid topology";
                    "dead" => %dead, "new" => %member.id(), "reason" => %e);
                return None;
            }
        };
        let moves = ConfMoves {
            add_voters: vec![member.id()],
            add_learners: Vec::new(),
            remove: vec![dead],
        };
        let mut cc = conf_change(&moves, &TopologyRecord::from(&next));
        let record = MemberRecord::from(&MemberState {
            member: member.clone(),
            replaces: None,
            address: state.address.clone(),
        });
        // Disjoint field numbers: each record decodes from the joined bytes.
        let mut context = encode(&record);
        context.extend_from_slice(&cc.context);
        cc.context = context.into();
        Some(cc)
    }

    /// Applies a topology version read from the log or a snapshot: an
    /// older or equal version is skipped (already applied), one that does
    /// not validate is skipped with an error (the same at every member).
    pub(super) fn apply_topology(&mut self, record: &TopologyRecord) {
        if record.version <= self.cfg.topology.version() {
            return;
        }
        match record.to_topology(&self.cfg.topology) {
            Ok(next) => self.adopt_topology(next),
            Err(e) => {
                self.counters.malformed_entries += 1;
                slog::error!(self.logger, "skipping invalid topology";
                    "version" => record.version, "reason" => %e);
            }
        }
    }

    /// Makes `next` the node's topology.
    pub(super) fn adopt_topology(&mut self, next: Topology) {
        let old = Arc::clone(&self.cfg.topology);
        for (id, m) in next.members() {
            let state = self.membership.members.entry(*id).or_insert(MemberState {
                member: m.clone(),
                replaces: None,
                address: None,
            });
            state.member = m.clone();
        }
        for id in old.members().keys() {
            if next.member(*id).is_none() {
                self.membership.members.remove(id);
            }
        }
        let priority = |t: &Topology| t.member(self.id).map(|m| m.priority());
        if let Some(p) = priority(&next).filter(|&p| Some(p) != priority(&old)) {
            self.raw.raft.set_priority(p);
        }
        let event = Event::TopologyChanged {
            version: next.version(),
            moved: moved(&old, &next),
        };
        self.cfg.topology = Arc::new(next);
        // A new rank moves this member's turn to campaign.
        self.election.next_campaign = self.campaign_threshold();
        self.emit(event);
    }
}

#[cfg(test)]
#[path = "reconfig_tests.rs"]
mod tests;
