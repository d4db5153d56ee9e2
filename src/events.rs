//! Typed events a node reports: leadership, failover, takeover, hand-back,
//! membership. Drain them with [`Node::poll_event`](crate::Node::poll_event).

use crate::ids::{EntryRange, EpochId};
use crate::state_machine::ReconcileFailure;
use crate::topology::NodeId;

/// Why a node became leader.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LeadershipCause {
    /// An ordinary election (start-up, or the main site re-electing).
    Elected,
    /// The standby of a duplicated pair took over from its silent primary.
    PairFailover {
        /// The primary it replaced.
        from: NodeId,
    },
    /// A survivable core took over after `survivable_after` without a leader.
    Takeover {
        /// Rank of the survivable core.
        rank: u32,
    },
    /// A leader transfer handed leadership to this node (hand-back or
    /// hand-on from a witness).
    Transfer,
    /// A witness leads as the last resort; it hands leadership on at once.
    LastResort,
}

/// Something that happened at a node.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// This node's view of the leader changed.
    LeaderChanged {
        /// Raft term.
        term: u64,
        /// The new leader, if known.
        leader: Option<NodeId>,
    },
    /// This node became leader.
    BecameLeader {
        /// Raft term.
        term: u64,
        /// Why.
        cause: LeadershipCause,
    },
    /// This node stopped being leader.
    SteppedDown {
        /// Raft term it led.
        term: u64,
    },
    /// The pair standby noticed its primary went silent and campaigns now.
    FailoverStarted {
        /// The silent primary.
        primary: NodeId,
        /// Milliseconds without hearing from it.
        silent_ms: u64,
    },
    /// A survivable core member campaigns after `survivable_after` without a
    /// leader. Reported once per leaderless spell; retries go to the log.
    TakeoverStarted {
        /// Its rank.
        rank: u32,
        /// Milliseconds without a leader.
        leaderless_ms: u64,
    },
    /// A witness campaigns as the last resort (once per leaderless spell).
    LastResortCampaign {
        /// Milliseconds without a leader.
        leaderless_ms: u64,
    },
    /// The leader starts a hand-back attempt (a leader transfer).
    HandBackAttempt {
        /// 1 for the first attempt at this target. The count is kept
        /// across this member losing and regaining leadership, and starts
        /// over for another target or once contact with the target was
        /// interrupted and restored.
        attempt: u32,
        /// The member leadership is handed to.
        target: NodeId,
        /// Entries the target lagged the leader by when the attempt
        /// started (never above `HandBack::max_lag_entries`).
        lag: u64,
    },
    /// A hand-back attempt did not land: raft aborted the transfer (the
    /// target did not catch up or answer within an election timeout), or
    /// the target campaigned and lost, and another member (this one
    /// included) leads. In the latter case the member that made the
    /// attempt reports it once it knows the new leader. Either way it
    /// counts toward `HandBack::max_attempts`.
    HandBackFailed {
        /// The attempt that failed.
        attempt: u32,
        /// Its target.
        target: NodeId,
    },
    /// Leadership moved to the hand-back target.
    HandBackCompleted {
        /// The new leader.
        target: NodeId,
        /// Attempts it took.
        attempts: u32,
    },
    /// The policy's attempt limit was reached; no more attempts until
    /// the preferred member's contact is interrupted and restored, or an
    /// operator calls [`Node::hand_back`](crate::Node::hand_back).
    HandBackAbandoned {
        /// The target.
        target: NodeId,
        /// Attempts made.
        attempts: u32,
    },
    /// A member joined as a learner (catching up).
    MemberAdded {
        /// The member.
        id: NodeId,
    },
    /// A learner became a voter.
    MemberPromoted {
        /// The member.
        id: NodeId,
    },
    /// A member left the configuration.
    MemberRemoved {
        /// The member.
        id: NodeId,
    },
    /// This node was removed from the configuration; it stops campaigning
    /// and refuses proposals.
    Removed,
    /// Main-site mode: this survivable member lost the main site for
    /// `survivable_after` and started a new epoch from the log it had.
    Activated {
        /// The new epoch.
        epoch: EpochId,
        /// Last index taken from the old epoch.
        fork_index: u64,
        /// Its term.
        fork_term: u64,
        /// Entries the old leader had reported committed beyond the fork:
        /// the loss known now (the full figure comes at reunion).
        rpo_entries: u64,
        /// The RPO in time, as this member could observe it: milliseconds
        /// from the first message in which the old leader reported a
        /// commit beyond the fork point to the last message heard from it
        /// (0 when no report went beyond the fork: `rpo_entries` is 0).
        /// In other words, the old leader had been committing entries this
        /// epoch does not have for at least this long when it went silent.
        ///
        /// Limits: it is a lower bound on how far behind, in time, the
        /// fork's state is: on how long before the old leader went silent
        /// it committed the first entry the fork lacks (up to the link's
        /// jitter and one tick). Commits the old leader made after its last message
        /// reached this member, or reported in messages that were lost, are
        /// not seen; nor is the one-way delay a report takes, so with a
        /// healthy but slow link (this member always holding what was
        /// reported) it is 0 even though the leader's last commits were
        /// in flight. Measured on this member's clock, at tick precision.
        rpo_ms: u64,
        /// How long the old epoch's leader had been silent, in ms.
        silent_ms: u64,
    },
    /// This member met a newer epoch: it takes no more proposals in its own.
    EpochFenced {
        /// Its epoch.
        ours: EpochId,
        /// The newer one.
        newer: EpochId,
    },
    /// Alarm: this member was fenced by an envelope claiming a newer
    /// epoch, and no notice of that epoch (the start of a real reunion)
    /// came within four election timeouts, so the fence was lifted and
    /// this epoch takes proposals again. Either the member that sent it is
    /// misconfigured or lying (check `by`), or every notice of a real
    /// newer epoch was lost (then the next one fences again). Envelopes
    /// claiming `claimed` fence nothing more until its notice comes.
    FenceLifted {
        /// This member's epoch.
        ours: EpochId,
        /// The epoch the envelope claimed.
        claimed: EpochId,
        /// Who sent it.
        by: NodeId,
        /// How long the fence held (ms).
        fenced_ms: u64,
    },
    /// Part of an older epoch's log was reconciled into this one (emitted
    /// by every member as it applies the record).
    Reconciled {
        /// The older epoch whose log was taken in.
        from: EpochId,
        /// First index of its log taken in.
        from_index: u64,
        /// Last index taken in.
        to_index: u64,
        /// What this accounts for, by the epoch that appended each entry:
        /// in a whole history, every entry of an epoch that lost is in
        /// exactly one such range (shown, or counted if compacted).
        ranges: Vec<EntryRange>,
        /// This epoch, which recorded the reconciliation ...
        epoch: EpochId,
        /// ... at this index.
        index: u64,
        /// Divergent user commands the application saw.
        divergent: u64,
        /// Commands it chose to apply.
        commands: u64,
        /// Divergent entries the older side had compacted (counted only).
        compacted: u64,
    },
    /// The application refused a reconciliation (or its hook panicked);
    /// nothing was applied, both epochs keep their data, and it is tried
    /// again after `retry_in_ms` (reported by the leader that called the
    /// hook).
    ReconcileFailed {
        /// The older epoch.
        from: EpochId,
        /// Consecutive failed attempts at this older epoch's entries, this
        /// one included (1 for the first).
        attempt: u32,
        /// Why: the hook's error, or its panic.
        failure: ReconcileFailure,
        /// Milliseconds before the hook is called again (the back-off:
        /// one election timeout, doubling with each failure up to 32).
        retry_in_ms: u64,
    },
    /// This member left its old epoch for a newer one; it catches up from a
    /// snapshot once the newer epoch's leader adds it.
    JoinedEpoch {
        /// The epoch joined.
        epoch: EpochId,
    },
    /// This member was drained for maintenance: it never campaigns, moves
    /// leadership away if it leads, and stays a replica.
    Drained,
    /// This member was undrained: it campaigns and takes leadership again.
    Undrained,
    /// The leader starts an operator's leader transfer (or one moving
    /// leadership off a drained member).
    TransferStarted {
        /// The member leadership is handed to.
        target: NodeId,
    },
    /// A leader transfer did not land: raft aborted it (the target did not
    /// catch up or answer within an election timeout) and this member
    /// still leads.
    TransferFailed {
        /// Its target.
        target: NodeId,
    },
}
