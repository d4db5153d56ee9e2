//! Errors of the node API, one type per call, plus [`Fatal`].

use thiserror::Error;

use crate::ids::EpochId;
use crate::state_machine::RestoreError;
use crate::storage::StoreError;
use crate::topology::NodeId;
use crate::wire::WireError;

/// Where to go instead of a member that does not lead: `ask the leader n1`,
/// or `no leader known (an election is under way); retry shortly`.
fn leader_hint(leader: Option<NodeId>) -> String {
    leader.map_or_else(
        || "no leader known (an election is under way); retry shortly".to_string(),
        |l| format!("ask the leader {l}"),
    )
}

#[cfg(test)]
mod message_tests {
    use super::*;

    /// Messages name members as `n1`, never as `Some(NodeId(1))`.
    #[test]
    fn messages_name_members_plainly() {
        let cases = [
            (
                ProposeError::NotLeader {
                    leader: Some(NodeId(1)),
                }
                .to_string(),
                "not the leader; ask the leader n1",
            ),
            (
                HandBackError::NotLeader { leader: None }.to_string(),
                "not the leader; no leader known (an election is under way); retry shortly",
            ),
            (
                MembershipError::NotLeader {
                    leader: Some(NodeId(3)),
                }
                .to_string(),
                "not the leader; ask the leader n3",
            ),
            (
                ActivateError::MainSiteReachable {
                    leader: Some(NodeId(2)),
                    reachable: 3,
                    voters: 5,
                }
                .to_string(),
                "the main site is reachable (leader n2 heard within an election timeout; 3 of \
                 the epoch's 5 voters answered): activation refused; ask again once it is cut \
                 off or silent",
            ),
        ];
        for (got, want) in cases {
            assert_eq!(got, want);
            assert!(!got.contains("Some(") && !got.contains("NodeId"), "{got}");
        }
    }
}

/// A proposal was refused; nothing was proposed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ProposeError {
    /// Too many proposals are waiting (no leader for a while, or the leader
    /// is slow); retry later.
    #[error("{pending} proposals are already waiting (limit {limit}); retry later")]
    QueueFull {
        /// Proposals waiting.
        pending: usize,
        /// The limit.
        limit: usize,
    },
    /// The command is larger than the configured limit.
    #[error("command of {len} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Forwarding is off and this node is not the leader; send the
    /// proposal to `leader` instead (unknown while an election runs).
    #[error("not the leader; {}", leader_hint(*leader))]
    NotLeader {
        /// The current leader, if known.
        leader: Option<NodeId>,
    },
    /// This node was removed from the cluster.
    #[error("this node was removed from the cluster; propose at a member")]
    Removed,
    /// The node's runtime stopped (shut down, or the node failed) before
    /// the proposal was applied. It may still have been applied.
    #[error(
        "the node stopped before the proposal was applied; it may have been, check before retrying"
    )]
    Stopped,
    /// No result within the caller's timeout. The proposal stays queued and
    /// may still be applied (never twice).
    #[error("no result within {waited:?}; the proposal may still be applied")]
    Timeout {
        /// How long the caller waited.
        waited: std::time::Duration,
    },
}

/// An inbound envelope was dropped (and counted); the node is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum StepError {
    /// The envelope or its raft payload does not decode.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// The sender speaks another protocol version.
    #[error("node {from} speaks protocol version {version}, this node speaks {ours}")]
    UnsupportedVersion {
        /// Claimed sender.
        from: u64,
        /// Its version.
        version: u32,
        /// Ours.
        ours: u32,
    },
    /// The envelope belongs to another cluster.
    #[error("envelope from node {from} is for cluster {got}, this is cluster {expected}")]
    WrongCluster {
        /// Claimed sender.
        from: u64,
        /// Its cluster id.
        got: u64,
        /// Ours.
        expected: u64,
    },
    /// The envelope is addressed to another node.
    #[error("envelope for node {to} delivered to node {me}")]
    WrongRecipient {
        /// Addressee.
        to: u64,
        /// This node.
        me: u64,
    },
    /// The sender is not a member.
    #[error("node {from} is not a member of this cluster")]
    UnknownSender {
        /// Claimed sender.
        from: u64,
    },
    /// The sender was a member, removed from the cluster (removed or
    /// replaced): its messages are dropped, whatever they say. A removed
    /// member still running should be stopped; its id is never reused.
    #[error(
        "node {from} was removed from the cluster: its messages are dropped; stop that member"
    )]
    RemovedSender {
        /// Claimed sender.
        from: u64,
    },
    /// The raft message inside disagrees with the envelope about sender or receiver.
    #[error(
        "envelope from {env_from} to {env_to} carries a raft message from {msg_from} to {msg_to}"
    )]
    Spoofed {
        /// Envelope sender.
        env_from: u64,
        /// Envelope receiver.
        env_to: u64,
        /// Raft message sender.
        msg_from: u64,
        /// Raft message receiver.
        msg_to: u64,
    },
    /// The envelope's epoch is not ours (its raft message belongs to
    /// another history; epochs meet through control messages instead).
    #[error("envelope from node {from} carries epoch {got}, this node is in epoch {ours}")]
    OtherEpoch {
        /// Sender.
        from: u64,
        /// Its epoch.
        got: EpochId,
        /// Ours.
        ours: EpochId,
    },
    /// An envelope claiming an epoch in a witness-mode cluster, where
    /// epochs never change: a misconfigured member (its topology says
    /// main-site mode) or one whose key is misused. Refused before it can
    /// fence anything.
    #[error("envelope from node {from} claims epoch {got}, but this cluster runs in witness mode, where the epoch never changes: check that member's topology (quorum mode) and whether its key is in the right hands")]
    EpochInWitnessMode {
        /// Sender.
        from: u64,
        /// The epoch it claims.
        got: EpochId,
    },
    /// A control message that does not decode.
    #[error("malformed control message from node {from}: {reason}")]
    MalformedControl {
        /// Sender.
        from: u64,
        /// Decoder's reason.
        reason: String,
    },
    /// Raft refused the message (a local-only type, or a response from a
    /// peer it does not track).
    #[error("raft refused a message from node {from}: {reason}")]
    Refused {
        /// Sender.
        from: u64,
        /// Raft's reason.
        reason: String,
    },
}

/// A membership operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum MembershipError {
    /// Only the leader changes membership.
    #[error("not the leader; {}", leader_hint(*leader))]
    NotLeader {
        /// The current leader, if known.
        leader: Option<NodeId>,
    },
    /// The member to replace is not a voter.
    #[error("node {0} is not a voter of the current configuration")]
    NotAVoter(NodeId),
    /// The replacement's id is or was in use.
    #[error("node id {0} is already in use; never reuse an id")]
    IdInUse(NodeId),
    /// The member to replace is this leader.
    #[error("node {0} is the leader; transfer leadership away before replacing it")]
    IsLeader(NodeId),
    /// The replacement's id belonged to a member removed from the
    /// cluster (removed or replaced).
    #[error("node id {0} belonged to a member removed from the cluster and is never reused: pick a new id")]
    IdRemoved(NodeId),
    /// A configuration or topology change is proposed and not yet
    /// applied: a replacement waits for it.
    #[error("a membership or topology change is under way: wait until it is applied, then retry")]
    UnderWay,
    /// The topology with the replacement in the dead member's place does
    /// not validate (e.g. a host whose loss would break the majority).
    #[error("the topology after this replacement is invalid: {0}")]
    Topology(crate::topology::TopologyError),
    /// Another replacement is still running.
    #[error("replacement of node {0} is still in progress")]
    Busy(NodeId),
    /// The replacement would share a host with its pair partner.
    #[error("replacement {new} would share host {host:?} with its pair partner {partner}; pick another host")]
    SharesHost {
        /// The replacement.
        new: NodeId,
        /// Its partner.
        partner: NodeId,
        /// The shared host.
        host: String,
    },
    /// The replacement's appliance type differs from its partner's.
    #[error("replacement {new} is not the same appliance type as its partner {partner}")]
    MixesAppliances {
        /// The replacement.
        new: NodeId,
        /// Its partner.
        partner: NodeId,
    },
}

/// An operator's activation was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ActivateError {
    /// Only a survivable member (a learner of its epoch, in main-site mode,
    /// not fenced) can activate.
    #[error("only a survivable member of a main-site topology, learner of its epoch, can activate a new epoch")]
    NotSurvivable,
    /// This member is drained for maintenance: it never takes leadership.
    #[error("this member is drained for maintenance and never takes leadership; undrain it first")]
    Drained,
    /// The main site answers: activating now would split the cluster for
    /// nothing. Cut it off (or wait until it is silent) and ask again.
    #[error("the main site is reachable ({} heard within an election timeout; {reachable} of the epoch's {voters} voters answered): activation refused; ask again once it is cut off or silent", leader.map_or_else(|| "no leader".to_string(), |l| format!("leader {l}")))]
    MainSiteReachable {
        /// The epoch's leader, if it was heard within an election timeout.
        leader: Option<NodeId>,
        /// Voters heard from recently.
        reachable: usize,
        /// Voters in all.
        voters: usize,
    },
    /// The fork could not be written; the node stopped.
    #[error(transparent)]
    Fatal(Fatal),
    /// The member's runtime stopped.
    #[error("the member is not running")]
    Stopped,
}

/// A hand-back request was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum HandBackError {
    /// Only the leader hands back.
    #[error("not the leader; {}", leader_hint(*leader))]
    NotLeader {
        /// The current leader, if known.
        leader: Option<NodeId>,
    },
    /// The leader is already in the most preferred site available.
    #[error("the leader is already the most preferred member available")]
    AlreadyPreferred,
}

/// The node cannot start or continue; its state is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Fatal {
    /// The node id is not in the topology, no member record was given,
    /// and it has no data (a member added at runtime restarts from its
    /// data without one).
    #[error("node {0} is not in the topology; start a new member with NodeConfig::joining")]
    UnknownNode(NodeId),
    /// The snapshot in storage does not decode.
    #[error("stored snapshot is corrupt: {0}")]
    CorruptSnapshot(String),
    /// The state machine refused its snapshot.
    #[error(transparent)]
    Restore(#[from] RestoreError),
    /// Raft refused to start on this storage.
    #[error("raft refused to start: {0}")]
    Raft(String),
    /// The log storage failed; the node stopped rather than run on it.
    #[error(transparent)]
    Storage(#[from] StoreError),
    /// The state machine could not produce the first snapshot, which a
    /// member starting on empty storage writes; nothing was written.
    #[error("{0}; nothing was written: fix the cause and start the member again")]
    Snapshot(#[from] crate::state_machine::SnapshotError),
}

/// Says who to ask instead: `the leader n2`, or that none is known.
fn ask_leader(leader: &Option<NodeId>) -> String {
    match leader {
        Some(l) => format!("ask the leader {l}"),
        None => "no leader is known; retry once one is elected".into(),
    }
}

/// An operator's leader transfer ([`Node::transfer_leader`](crate::Node::transfer_leader))
/// was refused; nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum TransferError {
    /// Only the leader transfers leadership.
    #[error("this member does not lead; {}", ask_leader(.leader))]
    NotLeader {
        /// The current leader, if known.
        leader: Option<NodeId>,
    },
    /// The target already leads.
    #[error("{0} already leads; nothing to transfer")]
    AlreadyLeader(NodeId),
    /// The target is not a member of the cluster.
    #[error("{0} is not a member of this cluster; name a voter")]
    UnknownMember(NodeId),
    /// The target is a learner of the current configuration (or removed):
    /// only a voter can lead.
    #[error("{0} is not a voter of the current configuration; name a voter")]
    NotAVoter(NodeId),
    /// The target is a witness: it leads only as the last resort and hands
    /// leadership on at once.
    #[error("{0} is a witness, which leads only as the last resort; name a core member")]
    Witness(NodeId),
    /// The target is drained (maintenance): it never takes leadership.
    #[error("{0} is drained for maintenance; undrain it first or name another member")]
    Drained(NodeId),
    /// The target did not answer within an election timeout.
    #[error(
        "{0} has not answered within an election timeout; check that it runs and is reachable"
    )]
    Unreachable(NodeId),
    /// The target lags too far to catch up within an election timeout (the
    /// time raft gives a transfer before aborting it).
    #[error("{target} lags the leader by {lag} entries (at most {max} allowed); wait until it has caught up and ask again")]
    TooFarBehind {
        /// The target.
        target: NodeId,
        /// Entries it lags by.
        lag: u64,
        /// The lag allowed (`HandBack::max_lag_entries`).
        max: u64,
    },
    /// This member's epoch met a newer one: it changes nothing more.
    #[error("this member's epoch is fenced by a newer epoch; ask the newer epoch's leader")]
    Fenced,
    /// The member's runtime stopped.
    #[error("the member is not running")]
    Stopped,
}

/// A drain or undrain ([`Node::drain`](crate::Node::drain)) was refused;
/// nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DrainError {
    /// The member is drained already.
    #[error("this member is drained already; nothing to do")]
    AlreadyDrained,
    /// The member is not drained.
    #[error("this member is not drained; nothing to do")]
    NotDrained,
    /// This member was removed from the cluster.
    #[error("this member was removed from the cluster; drain a member")]
    Removed,
    /// The member's runtime stopped.
    #[error("the member is not running")]
    Stopped,
}

/// A query of the state machine ([`Handle::query`](crate::runtime::Handle::query))
/// failed; the closure did not run.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum QueryError {
    /// The closure asked for another state machine type than the member runs.
    #[error("the query asks for state machine {asked}, but the member runs {runs}; query with that type")]
    WrongStateMachine {
        /// The type the closure takes.
        asked: &'static str,
        /// The type the member runs.
        runs: &'static str,
    },
    /// No linearizable read point (see [`ProposeError`]): the closure
    /// did not run.
    #[error("no linearizable read point: {0}")]
    Read(ProposeError),
    /// The member's runtime stopped before the closure ran.
    #[error("the member is not running")]
    Stopped,
}
