//! A snapshot of a node's state for operators and dashboards.

use raft::StateRole;

use super::Node;
use crate::error::StepError;
use crate::state_machine::StateMachine;
use crate::storage::LogStore;
use crate::topology::NodeId;

/// A node's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NodeRole {
    /// Leads.
    Leader,
    /// Follows a leader (or waits for one).
    Follower,
    /// Runs an election.
    Candidate,
    /// Runs a pre-vote.
    PreCandidate,
    /// Replicates without voting (a joining replacement).
    Learner,
    /// Removed from the configuration.
    Removed,
}

/// Replication state of one peer, as seen by the leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStatus {
    /// The peer.
    pub id: NodeId,
    /// Highest index known to be on the peer.
    pub matched: u64,
    /// Entries the peer lags the leader by.
    pub lag: u64,
    /// Whether it answered within the last election timeout.
    pub reachable: bool,
}

/// Everything an operator asks first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// This node.
    pub id: NodeId,
    /// Its site.
    pub site: String,
    /// Its role.
    pub role: NodeRole,
    /// The leader it knows of.
    pub leader: Option<NodeId>,
    /// Epoch.
    pub epoch: crate::node::EpochId,
    /// Raft term.
    pub term: u64,
    /// Commit index.
    pub commit: u64,
    /// Applied index.
    pub applied: u64,
    /// First index still held in the log (older entries are compacted into
    /// the latest snapshot).
    pub first_index: u64,
    /// Last log index.
    pub last_index: u64,
    /// Per-peer replication (leader only; empty elsewhere).
    pub peers: Vec<PeerStatus>,
    /// Drained for maintenance ([`Node::drain`](crate::Node::drain)): it
    /// never campaigns nor takes leadership, and stays a replica.
    pub drained: bool,
}

/// Counts of input the node refused (nothing counted here but
/// `relays_dropped` and `proposals_dropped` reached raft).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Envelopes or raft payloads that did not decode.
    pub malformed: u64,
    /// Envelopes of another protocol version.
    pub unsupported_version: u64,
    /// Envelopes of another cluster.
    pub wrong_cluster: u64,
    /// Envelopes addressed to another node.
    pub wrong_recipient: u64,
    /// Envelopes from non-members.
    pub unknown_sender: u64,
    /// Envelopes whose raft message names other endpoints.
    pub spoofed: u64,
    /// Envelopes of another epoch.
    pub other_epoch: u64,
    /// Messages raft itself refused.
    pub refused: u64,
    /// Duplicate copies of a proposal that were not applied again.
    pub duplicates_dropped: u64,
    /// Committed entries the library could not decode (never expected).
    pub malformed_entries: u64,
    /// Reconciliations the application refused (or whose hook panicked).
    pub reconcile_failures: u64,
    /// Proposals and read requests another member forwarded here after
    /// this member stopped leading: raft would relay them under their
    /// first sender's name, which the next member refuses as spoofed, so
    /// they are dropped and their sender asks again.
    pub relays_dropped: u64,
    /// Proposals and read requests another member forwarded here that raft
    /// dropped (`ProposalDropped`: a leader transfer was under way, or this
    /// member knew no leader). Not bad input and not counted in
    /// [`rejected`](Self::rejected): the proposer re-submits them.
    pub proposals_dropped: u64,
}

impl Counters {
    pub(super) fn count(&mut self, e: &StepError) {
        let c = match e {
            StepError::Wire(_) | StepError::MalformedControl { .. } => &mut self.malformed,
            StepError::UnsupportedVersion { .. } => &mut self.unsupported_version,
            StepError::WrongCluster { .. } => &mut self.wrong_cluster,
            StepError::WrongRecipient { .. } => &mut self.wrong_recipient,
            StepError::UnknownSender { .. } => &mut self.unknown_sender,
            StepError::Spoofed { .. } => &mut self.spoofed,
            StepError::OtherEpoch { .. } | StepError::EpochInWitnessMode { .. } => {
                &mut self.other_epoch
            }
            StepError::Refused { .. } => &mut self.refused,
        };
        *c += 1;
    }

    /// All refused envelopes.
    pub fn rejected(&self) -> u64 {
        self.malformed
            + self.unsupported_version
            + self.wrong_cluster
            + self.wrong_recipient
            + self.unknown_sender
            + self.spoofed
            + self.other_epoch
            + self.refused
    }
}

impl<M: StateMachine, S: LogStore> Node<M, S> {
    /// [`Node::status`].
    pub(super) fn current_status(&self) -> Status {
        let r = &self.raw.raft;
        let role = if self.membership.removed {
            NodeRole::Removed
        } else if !r.promotable() && self.election.role == StateRole::Follower {
            NodeRole::Learner
        } else {
            match self.election.role {
                StateRole::Leader => NodeRole::Leader,
                StateRole::Candidate => NodeRole::Candidate,
                StateRole::PreCandidate => NodeRole::PreCandidate,
                StateRole::Follower => NodeRole::Follower,
            }
        };
        let last_index = r.raft_log.last_index();
        let e = self.ticks.election as u64;
        let peers = if self.election.role == StateRole::Leader {
            r.prs()
                .iter()
                .filter(|(&id, _)| id != self.id.0)
                .map(|(&id, pr)| PeerStatus {
                    id: NodeId(id),
                    matched: pr.matched,
                    lag: last_index.saturating_sub(pr.matched),
                    reachable: self
                        .contact
                        .last_heard
                        .get(&NodeId(id))
                        .is_some_and(|&t| self.tick_no - t <= e),
                })
                .collect()
        } else {
            Vec::new()
        };
        Status {
            id: self.id,
            site: self.my_member().map(|m| m.site.clone()).unwrap_or_default(),
            role,
            leader: self.election.leader,
            epoch: self.epoch(),
            term: r.term,
            commit: r.raft_log.committed,
            applied: self.applied,
            first_index: r.raft_log.first_index(),
            last_index,
            peers,
            drained: self.drain.drained,
        }
    }
}
