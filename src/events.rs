//! Typed events a node reports: leadership, failover, takeover, hand-back,
//! membership. Drain them with [`Node::poll_event`](crate::Node::poll_event).
//!
//! Each event has a one-line human form ([`Display`](fmt::Display)) and a
//! stable JSON form ([`Event::to_json`]): internally tagged by `type`, the
//! variant's name in snake_case, with its fields as named here; ids as in
//! [`NodeId`]'s and [`EpochId`]'s JSON (a number; `{"name","number",
//! "founder"}`), a [`LeadershipCause`] tagged the same way, a
//! [`ReconcileFailure`] as its message. For example
//! `{"type":"became_leader","term":3,"cause":{"type":"pair_failover","from":1}}`.
//! Fields may be added; existing ones keep their name and meaning.

use std::fmt;

use serde::Serialize;

use crate::ids::{EntryRange, EpochId};
use crate::state_machine::ReconcileFailure;
use crate::topology::NodeId;

/// Why a node became leader.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
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
    /// A new version of the replicated topology was applied here (in log
    /// order, at every member). `moved` lists the members whose address
    /// it sets or changes: a runtime member tells its transport.
    TopologyChanged {
        /// The topology's new version.
        version: u64,
        /// Members with a new address.
        moved: Vec<NodeId>,
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
        /// the loss known now (the full figure comes at reunion). 0 with
        /// `rpo_proven` false means none *known*: commits the old leader
        /// never reported to this member are not counted.
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
        /// DR auto-sync: `rpo_entries` is 0 and proven (the last state was
        /// `Sync` or `AsyncWait`, this member's lease ran, its core partner
        /// stopped acknowledging with no longer a log; see
        /// [`crate::replication`]). Always false in main-site mode, whose
        /// figures are what this member saw.
        rpo_proven: bool,
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
        /// Why: the hook's error, or its panic (in JSON: its message).
        #[serde(serialize_with = "as_text")]
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
    /// Main-site mode: the log this member holds for survivable members
    /// that have not committed it (a long WAN cut) reached the warning
    /// mark of its retention bound
    /// ([`NodeConfig::retain_warn_percent`](crate::NodeConfig::retain_warn_percent)).
    /// Nothing is lost yet; at the bound the oldest such entries are
    /// dropped ([`Event::RetainedDropped`]). Fires once per crossing.
    RetentionWarning {
        /// Log entries held.
        entries: u64,
        /// Their size in bytes.
        bytes: u64,
        /// The bound in entries, if any.
        max_entries: Option<u64>,
        /// The bound in bytes, if any.
        max_bytes: Option<u64>,
        /// The warning mark, in percent of a bound.
        percent: u8,
    },
    /// Main-site mode: at its retention bound this member compacted
    /// entries a survivable member had not committed. At the reunion they
    /// are not reconciled: the newer epoch reports them as `compacted` in
    /// [`Event::Reconciled`] (unless another member of this epoch still
    /// holds them).
    RetainedDropped {
        /// First index dropped.
        from_index: u64,
        /// Last index dropped.
        to_index: u64,
        /// How many.
        entries: u64,
    },
    /// The leader lost contact with a member of a duplicated core (silent
    /// for an election timeout): the core runs without its standby (or
    /// without its primary) until the member answers again or a
    /// replacement takes its place.
    RedundancyLost {
        /// The core (its name in the topology).
        core: String,
        /// The silent member.
        missing: NodeId,
    },
    /// Every member of the core answers the leader again (the silent one
    /// came back, or a replacement was promoted and the silent one
    /// removed).
    RedundancyRestored {
        /// The core.
        core: String,
        /// How long it ran without redundancy, by the leader's clock (ms).
        lost_ms: u64,
    },
    /// The leader's replacement policy ([`NodeConfig::replace`](crate::NodeConfig::replace))
    /// started replacing a member that was silent for `replace_after` with a
    /// spare: the spare joins as a learner and is promoted once it has
    /// connected and caught up.
    ReplacementStarted {
        /// The silent member.
        dead: NodeId,
        /// The spare taking its place.
        spare: NodeId,
    },
    /// DR auto-sync: this member's log moved to a new replication state
    /// (every member reports each state id once, when the record reaches
    /// its log; the leader when it appends it). See
    /// [`ReplicationState`](crate::replication::ReplicationState).
    ReplicationChanged {
        /// The new state.
        state: crate::replication::ReplicationState,
        /// Its id (larger than every earlier one).
        state_id: u64,
        /// The state it follows.
        previous: crate::replication::ReplicationState,
        /// The log index of its record (the fork point for the state an
        /// activation starts its epoch in).
        index: u64,
    },
}

#[cfg(test)]
mod tests;

/// Serializes a value as its [`Display`](fmt::Display) text.
fn as_text<T: fmt::Display, S: serde::Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

/// JSON of `v`; serializing these types cannot fail (no maps, no
/// non-string keys), but should it, the error is reported as JSON too.
pub(crate) fn json_of<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|e| {
        let msg = serde_json::Value::String(e.to_string());
        format!("{{\"type\":\"unserializable\",\"error\":{msg}}}")
    })
}

impl Event {
    /// The stable JSON form (see the module docs), one line.
    pub fn to_json(&self) -> String {
        json_of(self)
    }
}

impl fmt::Display for LeadershipCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Elected => f.write_str("elected"),
            Self::PairFailover { from } => {
                write!(
                    f,
                    "pair failover: the standby replaced its silent primary {from}"
                )
            }
            Self::Takeover { rank } => write!(f, "takeover by the survivable core of rank {rank}"),
            Self::Transfer => f.write_str("leadership transferred here"),
            Self::LastResort => f.write_str(
                "witness leading as the last resort, briefly, to hand leadership on \
                 to the best survivable core (expected on a WAN cut)",
            ),
        }
    }
}

fn leader_text(l: Option<NodeId>) -> String {
    l.map_or_else(|| "no leader known".into(), |l| format!("leader {l}"))
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::LeaderChanged { term, leader } => {
                write!(f, "{} at term {term}", leader_text(*leader))
            }
            Self::BecameLeader { term, cause } => {
                write!(f, "became leader at term {term}: {cause}")
            }
            Self::SteppedDown { term } => write!(f, "stepped down after leading term {term}"),
            Self::FailoverStarted { primary, silent_ms } => write!(
                f,
                "pair failover: primary {primary} silent for {silent_ms} ms, the standby campaigns"
            ),
            Self::TakeoverStarted { rank, leaderless_ms } => write!(
                f,
                "takeover: no leader for {leaderless_ms} ms, the survivable core of rank {rank} campaigns"
            ),
            Self::LastResortCampaign { leaderless_ms } => write!(
                f,
                "no leader for {leaderless_ms} ms: the witness campaigns as the last resort, \
                 to hold leadership briefly and hand it on to the best survivable core \
                 (expected on a WAN cut, not an alarm)"
            ),
            Self::HandBackAttempt {
                attempt,
                target,
                lag,
            } => write!(
                f,
                "hand-back attempt {attempt} to {target} (it lags {lag} entries)"
            ),
            Self::HandBackFailed { attempt, target } => {
                write!(f, "hand-back attempt {attempt} to {target} did not land")
            }
            Self::HandBackCompleted { target, attempts } => {
                write!(f, "hand-back to {target} completed in {attempts} attempt(s)")
            }
            Self::HandBackAbandoned { target, attempts } => write!(
                f,
                "hand-back to {target} abandoned after {attempts} attempts: retried once its \
                 contact is interrupted and restored, or on an operator's hand-back"
            ),
            Self::MemberAdded { id } => write!(f, "member {id} added as a learner"),
            Self::MemberPromoted { id } => write!(f, "member {id} promoted to voter"),
            Self::MemberRemoved { id } => write!(f, "member {id} removed"),
            Self::TopologyChanged { version, moved } => {
                write!(f, "topology version {version} applied")?;
                if !moved.is_empty() {
                    let ids: Vec<String> = moved.iter().map(ToString::to_string).collect();
                    write!(f, "; new address for {}", ids.join(", "))?;
                }
                Ok(())
            }
            Self::Removed => f.write_str("this member was removed from the configuration"),
            Self::Drained => f.write_str(
                "drained for maintenance: never campaigns nor takes leadership, stays a replica",
            ),
            Self::Undrained => f.write_str("undrained: campaigns and takes leadership again"),
            Self::TransferStarted { target } => {
                write!(f, "leader transfer to {target} started")
            }
            Self::TransferFailed { target } => write!(
                f,
                "leader transfer to {target} did not land (aborted by raft): still leading"
            ),
            Self::RetentionWarning { .. }
            | Self::RetainedDropped { .. }
            | Self::RedundancyLost { .. }
            | Self::RedundancyRestored { .. }
            | Self::ReplacementStarted { .. }
            | Self::ReplicationChanged { .. } => self.fmt_long_running(f),
            Self::Activated { .. }
            | Self::EpochFenced { .. }
            | Self::FenceLifted { .. }
            | Self::Reconciled { .. }
            | Self::ReconcileFailed { .. }
            | Self::JoinedEpoch { .. } => self.fmt_epochs(f),
        }
    }
}

impl Event {
    /// [`Display`](fmt::Display) of the events of a cluster that runs for
    /// long: retention during WAN cuts, redundancy and replacement.
    fn fmt_long_running(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::RetentionWarning {
                entries,
                bytes,
                max_entries,
                max_bytes,
                percent,
            } => {
                let bound = |v: &Option<u64>| v.map_or_else(|| "none".into(), |v| v.to_string());
                write!(
                    f,
                    "retained log at {percent}% of its bound: {entries} entries (bound {}), \
                     {bytes} bytes (bound {}); at the bound, entries the survivable site has \
                     not received are dropped: end the WAN cut or raise the bound",
                    bound(max_entries),
                    bound(max_bytes)
                )
            }
            Self::RetainedDropped {
                from_index,
                to_index,
                entries,
            } => write!(
                f,
                "retention bound reached: dropped {entries} entries ({from_index}..={to_index}) \
                 the survivable site has not received; the reunion will count them as \
                 compacted, not reconcile them"
            ),
            Self::RedundancyLost { core, missing } => write!(
                f,
                "{core} running without a standby: {missing} does not answer"
            ),
            Self::RedundancyRestored { core, lost_ms } => write!(
                f,
                "{core} redundant again after {lost_ms} ms without a standby"
            ),
            Self::ReplacementStarted { dead, spare } => write!(
                f,
                "replacing {dead} with the spare {spare} (silent past replace_after): \
                 promoted once it has connected and caught up"
            ),
            Self::ReplicationChanged {
                state,
                state_id,
                previous,
                index,
            } => {
                use crate::replication::ReplicationState::*;
                let means = match state {
                    Sync => "commits need both sites; losing the main site costs nothing",
                    AsyncWait => {
                        "the survivable site is silent; commits still need it while \
                                  every main-site member learns they soon will not"
                    }
                    Async => {
                        "commits need the main site only; losing it costs what the \
                              survivable site has not received"
                    }
                    SyncRecover => "the survivable site is back and catching up",
                };
                write!(
                    f,
                    "replication {previous} -> {state} (state id {state_id}, index {index}): {means}"
                )
            }
            // The other variants are written by `fmt`.
            other => write!(f, "{other:?}"),
        }
    }

    /// [`Display`](fmt::Display) of the epoch events.
    fn fmt_epochs(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Activated {
                epoch,
                fork_index,
                fork_term,
                rpo_entries,
                rpo_ms,
                silent_ms,
                rpo_proven,
            } => {
                write!(
                    f,
                    "activated epoch {epoch} from index {fork_index} (term {fork_term}) after \
                     the main site was silent {silent_ms} ms; "
                )?;
                if *rpo_proven {
                    write!(f, "nothing lost (RPO {rpo_entries} entries, {rpo_ms} ms, proven: both sites held every commit)")
                } else {
                    write!(
                        f,
                        "loss known now: {rpo_entries} entries, at least {rpo_ms} ms"
                    )
                }
            }
            Self::EpochFenced { ours, newer } => write!(
                f,
                "epoch {ours} met the newer epoch {newer}: fenced, no more proposals here"
            ),
            Self::FenceLifted {
                ours,
                claimed,
                by,
                fenced_ms,
            } => write!(
                f,
                "alarm: {by} claimed epoch {claimed} but no notice of it came in {fenced_ms} ms: \
                 fence lifted, epoch {ours} takes proposals again; check {by}"
            ),
            Self::Reconciled {
                from,
                from_index,
                to_index,
                ranges,
                epoch,
                index,
                divergent,
                commands,
                compacted,
            } => {
                let ranges: Vec<String> = ranges.iter().map(ToString::to_string).collect();
                write!(
                    f,
                    "reconciled epoch {from} indexes {from_index}..={to_index} into {epoch} at \
                     index {index}: {divergent} divergent, {commands} applied, {compacted} \
                     compacted [{}]",
                    ranges.join(" ")
                )
            }
            Self::ReconcileFailed {
                from,
                attempt,
                failure,
                retry_in_ms,
            } => write!(
                f,
                "reconciliation of epoch {from} failed (attempt {attempt}): {failure}; \
                 retried in {retry_in_ms} ms"
            ),
            Self::JoinedEpoch { epoch } => {
                write!(f, "joined epoch {epoch}; catching up from its leader")
            }
            // The other variants are written by `fmt`.
            other => write!(f, "{other:?}"),
        }
    }
}
