//! A snapshot of a node's state for operators and dashboards.
//!
//! [`Status`] prints as one human line (`n1 denver leader term 5 epoch e1
//! commit 1891 applied 1891 ...`) and serializes (field names as in Rust,
//! ids as in [`NodeId`]'s and [`EpochId`](crate::EpochId)'s JSON, the role
//! as a lowercase string) with [`Status::to_json`].

use std::fmt;

use raft::StateRole;
use serde::Serialize;

use super::Node;
use crate::error::StepError;
use crate::state_machine::StateMachine;
use crate::storage::LogStore;
use crate::topology::NodeId;

/// A node's role. Displays and serializes as `leader`, `follower`,
/// `candidate`, `pre-candidate`, `learner` or `removed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
    /// The recovery point in entries: what this member would lose if its
    /// leader (in main-site mode, the main site) were lost now and it
    /// activated from its own log. The highest commit index the leader
    /// reported to it, minus its own last index (0 at the leader, and
    /// while it holds everything reported). At a survivable-site member
    /// this is the figure [`Event::Activated`](crate::Event::Activated)
    /// would report as `rpo_entries`.
    pub rpo_entries: u64,
    /// The recovery point in time, in ms: for how long the leader had been
    /// committing entries this member lacks, as last heard: from the first
    /// report of a commit beyond its last index to the last message heard
    /// from the leader (0 when `rpo_entries` is 0). The figure
    /// [`Event::Activated`](crate::Event::Activated) would report as
    /// `rpo_ms`, with the same limits: a lower bound, at tick precision,
    /// blind to the one-way delay of the reports.
    pub rpo_ms: u64,
    /// Drained for maintenance ([`Node::drain`](crate::Node::drain)): it
    /// never campaigns nor takes leadership, and stays a replica.
    pub drained: bool,
    /// The duplicated cores running without one of their members, as the
    /// leader sees them (leader only; empty elsewhere and while every core
    /// is whole): which member is silent and since when. Printed as
    /// `degraded [CM01 running without a standby since <ms> ms (n1 silent)]`.
    pub redundancy: Vec<super::Degraded>,
    /// The log this member holds above its compaction point (see
    /// [`Retained`]).
    pub retained: Retained,
    /// DR auto-sync mode: the replication state, its id, and what losing
    /// each site would cost now (`None` in the other modes).
    pub replication: Option<crate::replication::Replication>,
}

/// The log a member holds above its compaction point: what it costs on
/// disk, and how much of it is there only because a survivable member has
/// not committed it (main-site mode; a WAN cut makes it grow with the
/// write rate until the reunion).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Retained {
    /// Log entries held (first index to last index).
    pub entries: u64,
    /// Their encoded size, in bytes.
    pub bytes: u64,
    /// Of those, the entries compaction would have dropped by now but
    /// keeps because a survivable member has not committed them (0 in
    /// witness mode or when every survivable member is up to date).
    pub held_back: u64,
}

/// Counts of input the node refused (nothing counted here but
/// `relays_dropped` and `proposals_dropped` reached raft), and of
/// campaigns it suppressed (`campaigns_suppressed`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
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
    /// Envelopes from members removed from the cluster (removed or
    /// replaced; [`StepError::RemovedSender`]).
    pub removed_sender: u64,
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
    /// Spurious campaigns suppressed (not refused input, not counted in
    /// [`rejected`](Self::rejected)): a pair standby whose primary went
    /// silent ran no fast failover, because its log was catching up
    /// (counted once per silence) or because a quorum refused its probe
    /// (a quorum holds a newer log, so it could not win): a campaign then
    /// would depose a primary that may be only slow, for nothing.
    pub campaigns_suppressed: u64,
    /// Main-site mode: log entries a survivable member had not committed
    /// that this member dropped at its retention bound
    /// ([`NodeConfig::retain_max_entries`](super::NodeConfig::retain_max_entries),
    /// [`Event::RetainedDropped`](crate::Event::RetainedDropped)): the
    /// reunion reports them as compacted instead of reconciling them.
    pub retained_dropped: u64,
}

impl Counters {
    pub(super) fn count(&mut self, e: &StepError) {
        let c = match e {
            StepError::Wire(_) | StepError::MalformedControl { .. } => &mut self.malformed,
            StepError::UnsupportedVersion { .. } => &mut self.unsupported_version,
            StepError::WrongCluster { .. } => &mut self.wrong_cluster,
            StepError::WrongRecipient { .. } => &mut self.wrong_recipient,
            StepError::UnknownSender { .. } => &mut self.unknown_sender,
            StepError::RemovedSender { .. } => &mut self.removed_sender,
            StepError::Spoofed { .. } => &mut self.spoofed,
            StepError::OtherEpoch { .. } | StepError::EpochInWitnessMode { .. } => {
                &mut self.other_epoch
            }
            StepError::Refused { .. } => &mut self.refused,
        };
        *c += 1;
    }

    /// The refused envelopes by reason, as the metrics label them: one
    /// pair per counter that [`rejected`](Self::rejected) sums.
    pub fn rejected_by_reason(&self) -> [(&'static str, u64); 9] {
        [
            ("malformed", self.malformed),
            ("unsupported_version", self.unsupported_version),
            ("wrong_cluster", self.wrong_cluster),
            ("wrong_recipient", self.wrong_recipient),
            ("unknown_sender", self.unknown_sender),
            ("removed_sender", self.removed_sender),
            ("spoofed", self.spoofed),
            ("other_epoch", self.other_epoch),
            ("refused_by_raft", self.refused),
        ]
    }

    /// All refused envelopes.
    pub fn rejected(&self) -> u64 {
        self.malformed
            + self.unsupported_version
            + self.wrong_cluster
            + self.wrong_recipient
            + self.unknown_sender
            + self.removed_sender
            + self.spoofed
            + self.other_epoch
            + self.refused
    }
}

impl NodeRole {
    /// The lowercase name (as displayed and serialized).
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Leader => "leader",
            Self::Follower => "follower",
            Self::Candidate => "candidate",
            Self::PreCandidate => "pre-candidate",
            Self::Learner => "learner",
            Self::Removed => "removed",
        }
    }
}

impl fmt::Display for NodeRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for PeerStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = if self.reachable { "up" } else { "unreachable" };
        write!(
            f,
            "{} match {} lag {} {state}",
            self.id, self.matched, self.lag
        )
    }
}

impl Status {
    /// The stable JSON form (see the module docs), one line.
    pub fn to_json(&self) -> String {
        crate::events::json_of(self)
    }
}

/// `n1 denver leader term 5 epoch e1 leader n1 commit 1891 applied 1891
/// log 1..=1891 peers [n2 match 1891 lag 0 up, ...]` (peers on a leader
/// only).
impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let leader = self
            .leader
            .map_or_else(|| "no leader known".to_string(), |l| format!("leader {l}"));
        write!(
            f,
            "{} {} {} term {} epoch {} {leader} commit {} applied {} log {}..={}",
            self.id,
            self.site,
            self.role,
            self.term,
            self.epoch,
            self.commit,
            self.applied,
            self.first_index,
            self.last_index
        )?;
        if !self.peers.is_empty() {
            let peers: Vec<String> = self.peers.iter().map(ToString::to_string).collect();
            write!(f, " peers [{}]", peers.join(", "))?;
        }
        let r = &self.retained;
        if r.held_back > 0 {
            write!(
                f,
                " holding {} entries ({} bytes), {} of them for survivable members",
                r.entries, r.bytes, r.held_back
            )?;
        }
        if !self.redundancy.is_empty() {
            let lost: Vec<String> = self.redundancy.iter().map(ToString::to_string).collect();
            write!(f, " degraded [{}]", lost.join(", "))?;
        }
        if let Some(r) = &self.replication {
            let cost = |c: &crate::replication::SiteLossCost| match (c.entries, c.ms) {
                (Some(0), _) if c.proven => "0 (proven)".to_string(),
                (Some(n), Some(ms)) => format!("{n} entries, {ms} ms"),
                _ => "unknown here".to_string(),
            };
            write!(
                f,
                " replication {} (state id {}) main-site loss {} survivable-site loss {}",
                r.state,
                r.state_id,
                cost(&r.main_site_loss),
                cost(&r.survivable_site_loss)
            )?;
        }
        Ok(())
    }
}

impl Counters {
    /// The stable JSON form: every counter by its field name.
    pub fn to_json(&self) -> String {
        crate::events::json_of(self)
    }
}

/// `rejected 3 (malformed 1, spoofed 2), duplicates dropped 0, ...`: the
/// refused envelopes with the non-zero reasons, then the other counts.
impl fmt::Display for Counters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let reasons = [
            ("malformed", self.malformed),
            ("unsupported version", self.unsupported_version),
            ("wrong cluster", self.wrong_cluster),
            ("wrong recipient", self.wrong_recipient),
            ("unknown sender", self.unknown_sender),
            ("removed sender", self.removed_sender),
            ("spoofed", self.spoofed),
            ("other epoch", self.other_epoch),
            ("refused by raft", self.refused),
        ];
        let nonzero: Vec<String> = reasons
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(what, n)| format!("{what} {n}"))
            .collect();
        write!(f, "rejected {}", self.rejected())?;
        if !nonzero.is_empty() {
            write!(f, " ({})", nonzero.join(", "))?;
        }
        write!(
            f,
            ", duplicates dropped {}, malformed entries {}, reconcile failures {}, \
             relays dropped {}, proposals dropped {}",
            self.duplicates_dropped,
            self.malformed_entries,
            self.reconcile_failures,
            self.relays_dropped,
            self.proposals_dropped
        )?;
        if self.retained_dropped > 0 {
            write!(f, ", retained entries dropped {}", self.retained_dropped)?;
        }
        Ok(())
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
        let (rpo_entries, rpo_ms) = if self.election.role == StateRole::Leader {
            (0, 0)
        } else {
            let entries = self.ep.leader_commit.saturating_sub(last_index);
            let ms = if entries == 0 {
                0
            } else {
                self.ep.rpo_ms(last_index)
            };
            (entries, ms)
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
            rpo_entries,
            rpo_ms,
            drained: self.drain.drained,
            retained: {
                let (entries, bytes, held_back) = self.retained_now();
                Retained {
                    entries,
                    bytes,
                    held_back,
                }
            },
            redundancy: self.redundancy(),
            replication: self.replication_status(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::FIRST_EPOCH;

    fn status() -> Status {
        Status {
            id: NodeId(1),
            site: "denver".into(),
            role: NodeRole::Leader,
            leader: Some(NodeId(1)),
            epoch: FIRST_EPOCH,
            term: 5,
            commit: 1891,
            applied: 1890,
            first_index: 1500,
            last_index: 1891,
            peers: vec![PeerStatus {
                id: NodeId(2),
                matched: 1889,
                lag: 2,
                reachable: true,
            }],
            rpo_entries: 0,
            rpo_ms: 0,
            drained: false,
            retained: Retained::default(),
            replication: None,
            redundancy: Vec::new(),
        }
    }

    #[test]
    fn status_prints_one_line_and_stable_json() {
        let mut s = status();
        assert_eq!(
            s.to_string(),
            "n1 denver leader term 5 epoch e1 leader n1 commit 1891 applied 1890 \
             log 1500..=1891 peers [n2 match 1889 lag 2 up]"
        );
        let json: serde_json::Value = serde_json::from_str(&s.to_json()).unwrap();
        assert_eq!(json["id"], 1);
        assert_eq!(json["role"], "leader");
        assert_eq!(json["leader"], 1);
        assert_eq!(json["epoch"]["name"], "e1");
        assert_eq!(json["peers"][0]["id"], 2);
        assert_eq!(json["peers"][0]["reachable"], true);
        s.role = NodeRole::PreCandidate;
        s.leader = None;
        s.peers.clear();
        assert_eq!(
            s.to_string(),
            "n1 denver pre-candidate term 5 epoch e1 no leader known commit 1891 \
             applied 1890 log 1500..=1891"
        );
        let json: serde_json::Value = serde_json::from_str(&s.to_json()).unwrap();
        assert_eq!(json["role"], "pre-candidate");
        assert!(json["leader"].is_null());
    }

    #[test]
    fn roles_and_counters_print_plainly() {
        let roles = [
            (NodeRole::Leader, "leader"),
            (NodeRole::Follower, "follower"),
            (NodeRole::Candidate, "candidate"),
            (NodeRole::PreCandidate, "pre-candidate"),
            (NodeRole::Learner, "learner"),
            (NodeRole::Removed, "removed"),
        ];
        for (role, name) in roles {
            assert_eq!(role.to_string(), name);
            assert_eq!(serde_json::to_string(&role).unwrap(), format!("\"{name}\""));
        }
        let c = Counters {
            malformed: 1,
            spoofed: 2,
            ..Counters::default()
        };
        assert_eq!(
            c.to_string(),
            "rejected 3 (malformed 1, spoofed 2), duplicates dropped 0, malformed entries 0, \
             reconcile failures 0, relays dropped 0, proposals dropped 0"
        );
        let json: serde_json::Value = serde_json::from_str(&c.to_json()).unwrap();
        assert_eq!(json["spoofed"], 2);
        assert_eq!(json["wrong_cluster"], 0);
    }

    #[test]
    fn a_removed_senders_envelopes_are_counted_as_such() {
        let mut c = Counters::default();
        c.count(&StepError::RemovedSender { from: 7 });
        c.count(&StepError::RemovedSender { from: 7 });
        c.count(&StepError::UnknownSender { from: 9 });
        assert_eq!(
            (c.removed_sender, c.unknown_sender, c.rejected()),
            (2, 1, 3)
        );
        let by_reason: Vec<_> = (c.rejected_by_reason().into_iter())
            .filter(|(_, n)| *n > 0)
            .collect();
        assert_eq!(
            by_reason,
            vec![("unknown_sender", 1), ("removed_sender", 2)]
        );
        assert!(c.to_string().contains("removed sender 2"), "{c}");
    }
}
