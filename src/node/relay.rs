//! The lost leader's log tail, relayed to a candidate that cannot win
//! without it.
//!
//! Under load the followers of a leader hold different tails of its log
//! when it is cut off: the member nearest the leader has the most. When the
//! survivable core's candidate asks that member (the witness, say) for its
//! pre-vote, raft refuses it, because the candidate's log is behind; the
//! member would then have to lead itself and hand on, several WAN round
//! trips later. Instead, right after raft's refusal, the member sends the
//! candidate the missing tail **as the lost leader's own append**: a raft
//! `MsgAppend` from that leader, in its term, after the candidate's last
//! entry, with the relayer's commit index. The candidate takes it and
//! campaigns again at once, now as up to date as the relayer, and wins in
//! the usual rounds: one round trip to the relayer more than with an
//! up-to-date log, instead of a witness's election and hand-over.
//!
//! # Why this is safe
//!
//! The relayer sends only when its last entry has its current term `T`
//! and the candidate is in term `T` too (a pre-vote asks for `T + 1`).
//! An entry of term `T` is made by the leader of `T` alone, and by raft's
//! log matching a log holding it is identical to that leader's log up to
//! it; the leader never drops its own entries. So the relayed entries,
//! from the candidate's last entry (which the relayer holds with the same
//! term) to the relayer's last, are a piece of the leader's log, exactly
//! what the leader could have sent: a delayed copy of its own append. The
//! commit index is one the relayer learned from a leader. Votes are still
//! granted only to up-to-date logs; raft's safety argument is unchanged.
//!
//! # How it travels
//!
//! The relay is an ordinary raft envelope from the relayer whose raft
//! message names the leader as sender and carries [`RELAY_CONTEXT`] as its
//! context (raft ignores an append's context); the receiving node checks
//! it here instead of refusing it as spoofed. It leaves right after raft's
//! refusal of the same pre-vote, on the same link: the candidate counts
//! the refusal in its current pre-vote round, then the relay restarts the
//! round, so a stale refusal never outvotes a later grant. The relayer
//! does not step up against the candidate it refused (`election` has a
//! member more up to date than a preferred candidate campaign soon): the
//! candidate is behind no more, and a campaign of its own would split the
//! vote.
//!
//! # What the candidate does
//!
//! Only a pre-candidate of the relay's term takes it (raft makes it a
//! follower of the leader and appends), or the pair standby probing its
//! primary reported gone, as raft's follower of it (see `probe`, "A
//! refused probe and the dying leader's last append"; it probes again
//! instead). A pre-candidate campaigns again at once, its
//! retry one to two election timeouts from then, as after any campaign
//! (an earlier retry would abandon the vote the relay made winnable). The
//! driver's leaderless clock is **not** reset: a relay is not contact with
//! a leader (the step bypasses `note_contact`), and the new campaign
//! leaves raft without a leader before the next `Ready`, so no leader
//! change is reported either.

use raft::eraftpb::{Entry, Message, MessageType};
use raft::StateRole;

use super::election::campaign_cause;
use super::Node;
use crate::error::StepError;
use crate::state_machine::StateMachine;
use crate::storage::LogStore;
use crate::topology::{NodeId, Role};
use crate::wire::Envelope;

/// The context of a relayed append (raft leaves an append's context unread).
pub(super) const RELAY_CONTEXT: &[u8] = b"relayed-append";

/// The most a relay carries, in bytes of entries: what raft puts in one
/// append (`max_size_per_msg`). A candidate further behind gets the rest
/// from the next refusal.
const RELAY_MAX_BYTES: u64 = 1 << 20;

/// A pre-vote request, as the relayer saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct PreVote {
    /// The candidate.
    pub(super) from: u64,
    /// The term it asks for (its own term + 1).
    pub(super) term: u64,
    /// Its last entry's index.
    pub(super) index: u64,
    /// Its last entry's term.
    pub(super) log_term: u64,
}

/// The relayer's state the decision needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Relayer {
    /// This member.
    pub(super) me: u64,
    /// raft's role.
    pub(super) role: StateRole,
    /// raft's term.
    pub(super) term: u64,
    /// The leader of this term, as raft or the driver last knew it (0: none).
    pub(super) leader: u64,
    /// This log's last entry (index, term).
    pub(super) last: (u64, u64),
    /// Whether this log holds the candidate's last entry with its term.
    pub(super) holds_candidate_last: bool,
    /// Whether raft refused this pre-vote.
    pub(super) refused: bool,
    /// The longest tail relayed. A member that could lead itself relays at
    /// most `HandBack::max_lag_entries` (the same freshness notion): a cut
    /// leaves only what was in flight missing; a candidate further behind
    /// was cut off for a while before, and a fresher rank should lead
    /// instead (a stale rank 1 yields to rank 2). A witness in a topology
    /// with a single survivable rank relays everything: the alternative is
    /// its own last-resort bridge.
    pub(super) max_tail: u64,
}

/// Whether to relay, and then the leader to name: only a follower whose
/// raft refused the pre-vote of a candidate in its own term, whose log
/// ends in that term (so all of it is the leader's) beyond the candidate's
/// last entry, which it holds.
pub(super) fn relay_as(r: &Relayer, v: &PreVote) -> Option<u64> {
    let useful = r.refused
        && r.role == StateRole::Follower
        && v.term == r.term + 1
        && r.last.1 == r.term
        && r.last.0 > v.index
        && r.last.0 - v.index <= r.max_tail
        && r.holds_candidate_last;
    let named = r.leader != 0 && r.leader != v.from && r.leader != r.me;
    (useful && named).then_some(r.leader)
}

/// Whether `msg` is a relayed append (checked in full by [`takes_relay`]).
pub(super) fn is_relayed(msg: &Message) -> bool {
    msg.get_msg_type() == MessageType::MsgAppend && msg.context.as_ref() == RELAY_CONTEXT
}

/// Why a candidate refuses a relayed append, or `None` to take it: only as
/// a pre-candidate of the append's term, from a voter, entries contiguous
/// after the point named, in terms from that point's to the append's.
pub(super) fn takes_relay(
    role: StateRole,
    term: u64,
    relayer_votes: bool,
    msg: &Message,
) -> Option<&'static str> {
    if !relayer_votes {
        return Some("a relayed append from a member that does not vote");
    }
    if role != StateRole::PreCandidate || msg.term != term {
        return Some("a relayed append outside a pre-vote of its term");
    }
    relay_shape(msg)
}

/// Why a relayed append is malformed, or `None`: entries, contiguous after
/// the point named, in terms from that point's to the append's. Whoever
/// takes a relay checks this besides its own reasons.
pub(super) fn relay_shape(msg: &Message) -> Option<&'static str> {
    if msg.entries.is_empty() {
        return Some("a relayed append without entries");
    }
    let mut prev = (msg.index, msg.log_term);
    for e in msg.entries.iter() {
        if e.index != prev.0 + 1 || e.term < prev.1 || e.term > msg.term {
            return Some("a relayed append whose entries do not follow its point");
        }
        prev = (e.index, e.term);
    }
    None
}

impl<M: StateMachine, S: LogStore> Node<M, S> {
    /// Right after raft stepped the pre-vote `v`: if raft refused it and
    /// this log holds the leader's entries the candidate lacks, sends the
    /// refusal and then the relay (see the module docs).
    pub(super) fn relay_tail(&mut self, v: PreVote) {
        let refusal = self.raw.raft.msgs.iter().position(|m| {
            m.to == v.from && m.get_msg_type() == MessageType::MsgRequestPreVoteResponse && m.reject
        });
        let log = &self.raw.raft.raft_log;
        let r = Relayer {
            me: self.id.0,
            role: self.raw.raft.state,
            term: self.raw.raft.term,
            leader: match self.raw.raft.leader_id {
                0 => self.election.last_leader.map_or(0, |l| l.0),
                l => l,
            },
            last: (log.last_index(), log.last_term()),
            holds_candidate_last: log.match_term(v.index, v.log_term),
            refused: refusal.is_some(),
            // A witness never leads but as the last resort: with a single
            // survivable rank there is no fresher rank to yield to, and it
            // relays however much the candidate lacks. Otherwise (and for
            // a member that could lead itself) only what a cut leaves in
            // flight: a stale rank 1 yields to a fresher rank 2.
            max_tail: if self.cfg.topology.max_rank() <= 1
                && (self.my_member()).is_some_and(|m| matches!(m.role, Role::Witness))
            {
                u64::MAX
            } else {
                self.cfg.topology.hand_back().max_lag_entries
            },
        };
        let (Some(leader), Some(at)) = (relay_as(&r, &v), refusal) else {
            return;
        };
        let ctx = raft::GetEntriesContext::empty(false);
        let Ok(mut entries) = log.entries(v.index + 1, RELAY_MAX_BYTES, ctx) else {
            // Compacted away: the candidate needs the leader's snapshot.
            return;
        };
        entries.retain(|e| e.index <= r.last.0);
        let mut append = Message::default();
        append.set_msg_type(MessageType::MsgAppend);
        append.from = leader;
        append.to = v.from;
        append.term = r.term;
        append.index = v.index;
        append.log_term = v.log_term;
        append.commit = log.committed;
        append.context = RELAY_CONTEXT.to_vec().into();
        let count = entries.len();
        append.set_entries(entries.into());
        // The refusal first, on the same link (see the module docs); it
        // depends on nothing this member writes.
        let refusal = self.raw.raft.msgs.remove(at);
        let (cluster, epoch) = (self.cfg.topology.cluster_id(), self.epoch());
        self.outbox
            .push_back(Envelope::wrap(cluster, epoch, &refusal));
        let mut env = Envelope::wrap(cluster, epoch, &append);
        env.from = self.id.0;
        self.outbox.push_back(env);
        // The candidate refused for being behind is behind no more: this
        // member does not step up against it (a campaign of its own now
        // would split the vote the relay made winnable).
        self.election.step_up = None;
        slog::info!(self.logger, "relaying the lost leader's log tail to a candidate behind it";
            "candidate" => v.from, "leader" => leader, "entries" => count,
            "after_index" => v.index);
    }

    /// Steps a relayed append into raft, as the lost leader's own append
    /// arriving late, when it fits this log: its point is held and it
    /// rewrites nothing committed. Returns whether it fit (raft's usual
    /// consistency check then decides what is appended).
    pub(super) fn append_relayed(&mut self, msg: Message) -> bool {
        let log = &self.raw.raft.raft_log;
        let fits = log.match_term(msg.index, msg.log_term) && msg.index >= log.committed;
        if fits {
            if let Err(e) = self.raw.step(msg) {
                slog::warn!(self.logger, "a relayed append failed"; "error" => %e);
            }
        }
        fits
    }

    /// A relayed append from `relayer`: taken by a pre-candidate of its
    /// term, which then campaigns again at once (see the module docs).
    pub(super) fn take_relay(&mut self, relayer: NodeId, msg: Message) -> Result<(), StepError> {
        if self.probe_relay_due(relayer, &msg) {
            // The pair standby's failover probe takes it as a follower.
            self.take_probe_relay(relayer, msg);
            return Ok(());
        }
        let refused = takes_relay(
            self.raw.raft.state,
            self.raw.raft.term,
            self.is_in_conf(relayer),
            &msg,
        )
        .or_else(|| {
            (!self.membership.members.contains_key(&NodeId(msg.from)))
                .then_some("a relayed append naming an unknown leader")
        });
        if let Some(reason) = refused {
            let e = StepError::Refused {
                from: relayer.0,
                reason: reason.into(),
            };
            self.counters.count(&e);
            return Err(e);
        }
        self.note_heard(relayer);
        let last_before = self.raw.raft.raft_log.last_index();
        let cause = self.election.pending_cause.take();
        let last = msg.entries.last().map_or(0, Entry::get_index);
        if self.append_relayed(msg) {
            slog::info!(self.logger, "took the lost leader's log tail from a voter: campaigning again";
                "relayer" => relayer.0, "from_index" => last_before,
                "to_index" => self.raw.raft.raft_log.last_index(), "relayed_to" => last);
        }
        // Campaign again whether or not the entries were new: the relay
        // follows its sender's refusal, which the round under way has
        // counted; a fresh round lets that voter's next answer count.
        self.election.pending_cause =
            cause.or_else(|| Some(campaign_cause(self.my_member().map(|m| &m.role))));
        let _ = self.raw.campaign();
        // A new campaign, so its retry is due one to two election timeouts
        // from now, as after any campaign: the one before may have been
        // due while this one's vote is still on its way.
        let e = self.ticks.election;
        self.election.next_campaign =
            self.election.since_leader + e + self.rng.below(e as u64) as usize;
        self.dirty = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use raft::eraftpb::{ConfState, Entry, Message, MessageType};
    use raft::storage::MemStorage;
    use raft::{RawNode, StateRole};

    use super::*;

    const CANDIDATE: u64 = 3;
    const LEADER: u64 = 1;

    fn pre_vote() -> PreVote {
        PreVote {
            from: CANDIDATE,
            term: 6,
            index: 100,
            log_term: 5,
        }
    }

    /// A witness that lost leader 1 of term 5 and holds its entries to 104.
    fn witness() -> Relayer {
        Relayer {
            me: 5,
            role: StateRole::Follower,
            term: 5,
            leader: LEADER,
            last: (104, 5),
            holds_candidate_last: true,
            refused: true,
            max_tail: 64,
        }
    }

    #[test]
    fn a_refusing_follower_ahead_in_the_leaders_term_relays_as_that_leader() {
        assert_eq!(relay_as(&witness(), &pre_vote()), Some(LEADER));
    }

    #[test]
    fn nothing_is_relayed_that_the_leader_might_not_hold() {
        let v = pre_vote();
        let cases = [
            // raft granted it (or ignored it inside its lease).
            Relayer {
                refused: false,
                ..witness()
            },
            // The last entry is of an older term: its tail may be a stale
            // leader's, overwritten since.
            Relayer {
                last: (104, 4),
                ..witness()
            },
            // Not ahead of the candidate.
            Relayer {
                last: (100, 5),
                ..witness()
            },
            // The candidate's last entry is not ours: their logs diverge.
            Relayer {
                holds_candidate_last: false,
                ..witness()
            },
            // The candidate is further behind than a cut leaves in flight.
            Relayer {
                last: (100 + 65, 5),
                max_tail: 64,
                ..witness()
            },
            // In a newer term than the candidate's: its append would be stale.
            Relayer {
                term: 6,
                last: (104, 6),
                ..witness()
            },
            // No leader to name, or the leader is the candidate or us.
            Relayer {
                leader: 0,
                ..witness()
            },
            Relayer {
                leader: CANDIDATE,
                ..witness()
            },
            Relayer {
                leader: 5,
                ..witness()
            },
            // Campaigning itself.
            Relayer {
                role: StateRole::PreCandidate,
                ..witness()
            },
        ];
        for r in cases {
            assert_eq!(relay_as(&r, &v), None, "{r:?}");
        }
    }

    fn relayed(index: u64, log_term: u64, entries: &[(u64, u64)]) -> Message {
        let mut m = Message::default();
        m.set_msg_type(MessageType::MsgAppend);
        m.from = LEADER;
        m.to = CANDIDATE;
        m.term = 5;
        m.index = index;
        m.log_term = log_term;
        m.context = RELAY_CONTEXT.to_vec().into();
        let entries: Vec<Entry> = entries
            .iter()
            .map(|&(index, term)| Entry {
                index,
                term,
                ..Default::default()
            })
            .collect();
        m.set_entries(entries.into());
        m
    }

    #[test]
    fn a_pre_candidate_takes_a_well_formed_relay_of_its_term_from_a_voter() {
        let m = relayed(100, 4, &[(101, 4), (102, 5)]);
        assert!(is_relayed(&m));
        assert_eq!(takes_relay(StateRole::PreCandidate, 5, true, &m), None);
    }

    #[test]
    fn a_relay_is_refused_outside_a_pre_vote_of_its_term_or_malformed() {
        let good = relayed(100, 4, &[(101, 4), (102, 5)]);
        assert!(takes_relay(StateRole::PreCandidate, 5, false, &good).is_some());
        for role in [StateRole::Follower, StateRole::Candidate, StateRole::Leader] {
            assert!(takes_relay(role, 5, true, &good).is_some(), "{role:?}");
        }
        assert!(takes_relay(StateRole::PreCandidate, 6, true, &good).is_some());
        for bad in [
            relayed(100, 4, &[]),
            relayed(100, 4, &[(102, 5)]),
            relayed(100, 4, &[(101, 5), (102, 4)]),
            relayed(100, 4, &[(101, 3)]),
            relayed(100, 4, &[(101, 6)]),
        ] {
            assert!(
                takes_relay(StateRole::PreCandidate, 5, true, &bad).is_some(),
                "{:?}",
                bad.entries
            );
        }
        let mut plain = good.clone();
        plain.context = Vec::new().into();
        assert!(!is_relayed(&plain));
    }

    /// raft-rs 0.7 itself: a pre-candidate that takes an append of its own
    /// term becomes the sender's follower with the entries, and a campaign
    /// right after asks for pre-votes with the new last entry.
    #[test]
    fn raft_lets_a_pre_candidate_take_the_relay_and_campaign_with_it() {
        let storage = MemStorage::new_with_conf_state(ConfState::from((vec![1, 2, 3], vec![])));
        let cfg = raft::Config {
            id: CANDIDATE,
            pre_vote: true,
            check_quorum: true,
            ..Default::default()
        };
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let mut raw = RawNode::new(&cfg, storage, &logger).unwrap();
        raw.raft.become_follower(5, LEADER);
        raw.raft.raft_log.append(&[Entry {
            index: 1,
            term: 5,
            ..Default::default()
        }]);
        raw.campaign().unwrap();
        assert_eq!(raw.raft.state, StateRole::PreCandidate);
        raw.raft.msgs.clear();

        let mut m = relayed(1, 5, &[(2, 5), (3, 5)]);
        m.commit = 2;
        assert_eq!(takes_relay(raw.raft.state, raw.raft.term, true, &m), None);
        raw.step(m).unwrap();
        assert_eq!(raw.raft.state, StateRole::Follower);
        assert_eq!(raw.raft.leader_id, LEADER);
        assert_eq!(raw.raft.term, 5);
        assert_eq!(raw.raft.raft_log.last_index(), 3);
        assert_eq!(raw.raft.raft_log.committed, 2);
        raw.raft.msgs.clear();

        raw.campaign().unwrap();
        assert_eq!(raw.raft.state, StateRole::PreCandidate);
        assert_eq!(raw.raft.leader_id, 0, "no leader reported after the relay");
        let asks: Vec<&Message> = raw
            .raft
            .msgs
            .iter()
            .filter(|m| m.get_msg_type() == MessageType::MsgRequestPreVote)
            .collect();
        assert_eq!(asks.len(), 2);
        assert!(asks
            .iter()
            .all(|m| m.index == 3 && m.log_term == 5 && m.term == 6));
    }
}
