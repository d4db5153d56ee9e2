//! Linearizable reads through raft's read index (the safe variant: the
//! leader confirms it still leads with a quorum round before answering, so
//! a deposed leader can never serve a stale read).
//!
//! [`Node::read`] asks for a read point; once this member has applied up to
//! the index the leader answered, [`Node::poll_read`] reports it ready and
//! the caller reads its state machine right then. raft drops read requests
//! silently (no leader, a new leader that has not committed in its term, a
//! term change): a request with no answer is asked again each election
//! timeout, under a fresh context, until it is answered or the member stops.
//! The first answer to any of its attempts is taken (a round trip to the
//! leader may be longer than an election timeout over a long WAN).

use std::collections::{BTreeMap, VecDeque};

use raft::ReadState;

use super::Node;
use crate::error::ProposeError;
use crate::state_machine::StateMachine;
use crate::storage::LogStore;
use crate::topology::NodeId;

/// Identifies one read request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReadId {
    /// The member it was made at.
    pub node: NodeId,
    /// That member's start count.
    pub boot: u64,
    /// Sequence number within that start.
    pub seq: u64,
}

/// A read request's result, drained with [`Node::poll_read`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct ReadOutcome {
    /// Which read.
    pub id: ReadId,
    /// The index this member has applied up to (or past) now: its state
    /// machine reflects every write acknowledged before the read was made.
    /// Read it before feeding the node anything else.
    pub index: u64,
}

#[derive(Debug, Default)]
struct Pending {
    attempt: u64,
    /// (term, tick) of the last request to raft.
    asked: Option<(u64, u64)>,
    /// The read index the leader answered.
    index: Option<u64>,
    /// The first attempt whose answer counts: those made before raft was
    /// restarted ([`Reads::reset`]) belong to a log that is gone.
    first_valid: u64,
}

/// Reads made at this member and not answered yet.
#[derive(Debug, Default)]
pub(crate) struct Reads {
    next_seq: u64,
    pending: BTreeMap<u64, Pending>,
    /// Answers not yet drained by [`Node::poll_read`].
    pub(crate) outcomes: VecDeque<ReadOutcome>,
}

fn ctx(seq: u64, attempt: u64) -> Vec<u8> {
    let mut v = seq.to_be_bytes().to_vec();
    v.extend_from_slice(&attempt.to_be_bytes());
    v
}

impl Reads {
    /// Forgets raft's side of every waiting read (raft was restarted): each
    /// is asked again, the answers already received are dropped.
    pub(crate) fn reset(&mut self) {
        for p in self.pending.values_mut() {
            p.asked = None;
            p.index = None;
            p.first_valid = p.attempt + 1;
        }
    }
}

impl<M: StateMachine, S: LogStore> Node<M, S> {
    /// Records a read request ([`Node::read`]).
    pub(super) fn new_read(&mut self) -> Result<ReadId, ProposeError> {
        self.intake().read(self.reads.pending.len())?;
        let seq = self.reads.next_seq;
        self.reads.next_seq += 1;
        self.reads.pending.insert(seq, Pending::default());
        self.dirty = true;
        Ok(ReadId {
            node: self.id,
            boot: self.boot,
            seq,
        })
    }

    /// Asks raft for the read index of every read not yet answered (again,
    /// under a fresh context, when the last request went unanswered for an
    /// election timeout or the term changed).
    pub(super) fn submit_reads(&mut self) {
        if self.election.leader.is_none() || self.fenced() || self.ep.joining {
            return;
        }
        let (term, now) = (self.raw.raft.term, self.tick_no);
        let retry = self.ticks.election as u64;
        let due: Vec<u64> = self
            .reads
            .pending
            .iter()
            .filter(|(_, p)| p.index.is_none())
            .filter(|(_, p)| {
                p.asked
                    .is_none_or(|(t, at)| t != term || now.saturating_sub(at) >= retry)
            })
            .map(|(&seq, _)| seq)
            .collect();
        for seq in due {
            let Some(p) = self.reads.pending.get_mut(&seq) else {
                continue;
            };
            p.attempt += 1;
            p.asked = Some((term, now));
            let c = ctx(seq, p.attempt);
            self.raw.read_index(c);
        }
    }

    /// Takes raft's answers (from a `Ready`).
    pub(super) fn on_read_states(&mut self, states: Vec<ReadState>) {
        for rs in states {
            let Some((seq, attempt)) = rs.request_ctx.split_at_checked(8).and_then(|(a, b)| {
                Some((
                    u64::from_be_bytes(a.try_into().ok()?),
                    u64::from_be_bytes(b.try_into().ok()?),
                ))
            }) else {
                continue;
            };
            // Any attempt's answer will do, a late one too: every attempt
            // was made after the read was, and the leader confirmed it led
            // after receiving it. Taking only the latest attempt's answer
            // starves a read whose round trip (the WAN to the leader, its
            // quorum round, back) is longer than the retry interval: each
            // answer would arrive just after the next attempt replaced it.
            if let Some(p) = self.reads.pending.get_mut(&seq).filter(|p| {
                p.index.is_none() && (p.first_valid.max(1)..=p.attempt).contains(&attempt)
            }) {
                p.index = Some(rs.index);
            }
        }
    }

    /// Reports the reads whose index is applied here.
    pub(super) fn finish_reads(&mut self) {
        let applied = self.applied;
        let done: Vec<(u64, u64)> = self
            .reads
            .pending
            .iter()
            .filter_map(|(&seq, p)| p.index.filter(|&i| i <= applied).map(|_| (seq, applied)))
            .collect();
        for (seq, index) in done {
            self.reads.pending.remove(&seq);
            self.reads.outcomes.push_back(ReadOutcome {
                id: ReadId {
                    node: self.id,
                    boot: self.boot,
                    seq,
                },
                index,
            });
        }
    }
}
