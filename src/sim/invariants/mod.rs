//! The invariant checker: one file per invariant, shared by the simulator,
//! the scenario tests, the properties, the fuzz targets and the example.
//! [`manual::invariants`](crate::manual::invariants) says what each one
//! checks, precisely, and why.
//!
//! The [`Sim`](super::Sim) feeds a [`Checker`] as the run goes (every
//! apply, every new leader) so the safety invariants are checked after
//! every step; the end-of-run invariants (log matching, convergence, no
//! acknowledged entry lost, leadership back home) are checked when a test
//! asks: [`Sim::check_converged`](super::Sim::check_converged),
//! [`Sim::check_log_matching`](super::Sim::check_log_matching) and
//! [`Sim::check_main_site_leads`](super::Sim::check_main_site_leads).

mod applied_once;
mod convergence;
mod election_safety;
mod handback_liveness;
mod log_matching;
mod loss_reported_once;
mod no_committed_loss;
mod state_machine_safety;
mod sync_acked_kept;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::ids::{EpochId, ProposalId};
use crate::topology::NodeId;

pub(crate) use applied_once::{check as applied_once, ApplyCounts};
pub(crate) use convergence::check as convergence;
pub(crate) use handback_liveness::check as handback_liveness;
pub(crate) use log_matching::check as log_matching;
pub(crate) use loss_reported_once::{check as loss_reported_once, survived, Report};
pub(crate) use no_committed_loss::check as no_committed_loss;
pub(crate) use sync_acked_kept::{check as sync_acked_kept, ProvenFork};

/// One broken invariant.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Violation {
    /// Two leaders in one (epoch, term) (election safety).
    TwoLeaders {
        /// Epoch.
        epoch: EpochId,
        /// Term.
        term: u64,
        /// First leader seen.
        first: NodeId,
        /// Second leader seen.
        second: NodeId,
    },
    /// Two members applied different commands at one index (state machine
    /// safety: a committed entry was lost or replaced).
    Diverged {
        /// The index.
        index: u64,
        /// Who applied it first.
        first: NodeId,
        /// Who applied something else.
        second: NodeId,
    },
    /// Two logs hold entries with the same index and term but different
    /// contents, or different histories before them (log matching).
    LogMismatch {
        /// The index.
        index: u64,
        /// One member.
        first: NodeId,
        /// The other.
        second: NodeId,
    },
    /// An acknowledged proposal is missing from a member's final state:
    /// the member has not applied its index, or what was applied at that
    /// index is not the acknowledged command.
    AckedLost {
        /// Index it was acknowledged at.
        index: u64,
        /// The member missing it.
        node: NodeId,
    },
    /// A proposal acknowledged in an epoch that lost the reunion, after
    /// the surviving epoch forked, was never shown to the application by a
    /// reconciliation (silent loss).
    AckedUnreported {
        /// The older epoch.
        epoch: EpochId,
        /// Its index there.
        index: u64,
    },
    /// A divergent entry was shown to the application by more than one
    /// reconciliation (it may have been applied twice).
    ReportedTwice {
        /// The older epoch.
        epoch: EpochId,
        /// Its index there.
        index: u64,
        /// How many reconciled ranges hold it.
        ranges: usize,
    },
    /// An acknowledged proposal of an epoch that lost the reunion survived
    /// in the final history (before the surviving epoch forked) and was
    /// also shown to the application by a reconciliation: it may have
    /// been applied twice.
    KeptAndReported {
        /// The older epoch.
        epoch: EpochId,
        /// Its index there.
        index: u64,
        /// How many reconciled ranges hold it besides.
        ranges: usize,
    },
    /// A proposal acknowledged in an epoch that lost the reunion, after
    /// the surviving epoch forked, reached the reconciliation only as a
    /// count of compacted entries: its command is gone (acknowledged, then
    /// lost).
    AckedCompacted {
        /// The older epoch.
        epoch: EpochId,
        /// Its index there.
        index: u64,
    },
    /// A member's state holds a proposal's command applied more often than
    /// it was proposed (once, for a command proposed once): applied twice.
    AppliedTwice {
        /// The member.
        node: NodeId,
        /// The proposal (the first one, if its command was proposed more
        /// than once).
        proposal: ProposalId,
        /// How many times its state holds it applied.
        applies: u64,
    },
    /// A member applied a command nobody proposed and no reconciliation
    /// hook returned.
    Phantom {
        /// The member.
        node: NodeId,
        /// [`digest`] of the command.
        digest: u64,
    },
    /// After the faults healed, members did not converge.
    NotConverged {
        /// Applied index per live voter.
        applied: Vec<(NodeId, u64)>,
    },
    /// DR auto-sync: a proposal acknowledged while its epoch's leader was
    /// in `Sync` or `AsyncWait` (commits needed both sites: RPO 0) is not in
    /// the history of an epoch a survivable member activated with
    /// `rpo_proven`.
    SyncAckedLost {
        /// The epoch that acknowledged it.
        epoch: EpochId,
        /// Its index there.
        index: u64,
        /// The epoch activated with RPO 0 proven that does not hold it.
        fork: EpochId,
    },
    /// After healing, the main site did not lead again in time.
    MainSiteNotLeading {
        /// Who leads, if anyone.
        leader: Option<NodeId>,
    },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TwoLeaders {
                epoch,
                term,
                first,
                second,
            } => write!(
                f,
                "election safety: {first} and {second} both led epoch {epoch} term {term}"
            ),
            Self::Diverged {
                index,
                first,
                second,
            } => write!(
                f,
                "state machine safety: {first} and {second} applied different entries at {index}"
            ),
            Self::LogMismatch {
                index,
                first,
                second,
            } => write!(
                f,
                "log matching: {first} and {second} disagree at {index} under the same term"
            ),
            Self::AckedLost { index, node } => {
                write!(
                    f,
                    "committed entry lost: the command acknowledged at index {index} is not applied at {node} (missing, or another command is there)"
                )
            }
            Self::AckedUnreported { epoch, index } => write!(
                f,
                "silent loss: index {index} acknowledged in epoch {epoch} is neither in the surviving history nor reconciled"
            ),
            Self::ReportedTwice {
                epoch,
                index,
                ranges,
            } => write!(
                f,
                "reconciled twice: index {index} of epoch {epoch} is in {ranges} reconciled ranges"
            ),
            Self::KeptAndReported {
                epoch,
                index,
                ranges,
            } => write!(
                f,
                "applied twice: index {index} acknowledged in epoch {epoch} survived in the final history and is also in {ranges} reconciled range(s)"
            ),
            Self::AckedCompacted { epoch, index } => write!(
                f,
                "compacted away: index {index} acknowledged in epoch {epoch} reached the reconciliation only as a compacted count"
            ),
            Self::AppliedTwice {
                node,
                proposal,
                applies,
            } => write!(
                f,
                "applied twice: {node}'s state holds proposal {proposal:?} applied {applies} times"
            ),
            Self::Phantom { node, digest } => write!(
                f,
                "phantom: {node} applied a command (digest {digest:#x}) nobody proposed"
            ),
            Self::NotConverged { applied } => {
                write!(f, "not converged after heal: applied {applied:?}")
            }
            Self::SyncAckedLost { epoch, index, fork } => write!(
                f,
                "lost at RPO 0: index {index} acknowledged in epoch {epoch} while commits needed both sites is not in epoch {fork}, activated with RPO 0 proven"
            ),
            Self::MainSiteNotLeading { leader } => {
                write!(
                    f,
                    "hand-back liveness: the main site does not lead (leader {leader:?})"
                )
            }
        }
    }
}

/// What one replica holds, for the end-of-run checks.
#[derive(Debug, Clone)]
pub struct Replica {
    /// The member.
    pub id: NodeId,
    /// Its epoch (logs of different epochs are not compared).
    pub epoch: EpochId,
    /// Whether it is running and a voter (it must have converged).
    pub live_voter: bool,
    /// Its applied index.
    pub applied: u64,
    /// Its log: (index, term, digest of the entry's bytes), ascending.
    pub log: Vec<(u64, u64, u64)>,
}

/// An acknowledged proposal, for the loss checks: where it was applied
/// and, when the simulator saw it proposed, the digest of its command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ack {
    /// The epoch that appended it.
    pub epoch: EpochId,
    /// Its index there.
    pub index: u64,
    /// [`digest`] of the command; `None` when it was proposed around the
    /// simulator (then only the index is checked).
    pub digest: Option<u64>,
}

impl Ack {
    /// Whether what `checker` saw applied at this index in `epoch` is the
    /// acknowledged command (with no digest: whether anything was). A
    /// reconciliation applies several commands at its record's index, and
    /// a proposal re-applied by one is acknowledged at that index: any of
    /// them may be the acknowledged one.
    pub(crate) fn applied_as_acknowledged(&self, checker: &Checker, epoch: EpochId) -> bool {
        let mut applied = checker.applied_digests(epoch, self.index).peekable();
        match self.digest {
            Some(acked) => applied.any(|d| d == acked),
            None => applied.peek().is_some(),
        }
    }
}

/// The checker's record of a run. The simulator owns one.
#[derive(Debug, Default)]
pub struct Checker {
    /// (epoch, index, nth command at that index) -> (digest, first member
    /// to apply it)
    applied: BTreeMap<(EpochId, u64, u64), (u64, NodeId)>,
    leaders: BTreeMap<(EpochId, u64), NodeId>,
    diverged: BTreeSet<(EpochId, u64, u64)>,
    violations: Vec<Violation>,
    /// Per member, a running digest of everything it applied, in order.
    sequences: BTreeMap<NodeId, u64>,
    /// Per member, how often each command is applied in its state.
    pub(crate) counts: ApplyCounts,
}

impl Checker {
    /// Records an apply in `epoch` (checks state machine safety).
    pub fn on_apply(&mut self, node: NodeId, epoch: EpochId, index: u64, digest: u64) {
        self.on_apply_at(node, (epoch, index, 0), digest);
    }

    /// Records the `n`th command applied at one index (a reconciliation
    /// applies several at its entry's index), as `(epoch, index, n)`.
    pub fn on_apply_at(&mut self, node: NodeId, at: (EpochId, u64, u64), digest: u64) {
        let (epoch, index, nth) = at;
        let seq = self.sequences.entry(node).or_insert(DIGEST_START);
        for word in [epoch.number, epoch.founder.0, index, nth, digest] {
            *seq = fold_word(*seq, word);
        }
        let v =
            state_machine_safety::check(&mut self.applied, &mut self.diverged, node, at, digest);
        self.violations.extend(v);
    }

    /// Records a new leader (checks election safety).
    pub fn on_leader(&mut self, node: NodeId, epoch: EpochId, term: u64) {
        let v = election_safety::check(&mut self.leaders, node, epoch, term);
        self.violations.extend(v);
    }

    /// Records violations found by an end-of-run check.
    pub fn record(&mut self, found: &[Violation]) {
        self.violations.extend_from_slice(found);
    }

    /// Every violation so far.
    pub fn violations(&self) -> &[Violation] {
        &self.violations
    }

    /// The digest applied at `index` in `epoch` (by whoever applied it
    /// first; the first command when a reconciliation applied several
    /// there).
    pub fn applied_digest(&self, epoch: EpochId, index: u64) -> Option<u64> {
        self.applied.get(&(epoch, index, 0)).map(|(d, _)| *d)
    }

    /// Every command's digest applied at `index` in `epoch`, in order (one,
    /// or each command a reconciliation applied at its record's index).
    pub fn applied_digests(&self, epoch: EpochId, index: u64) -> impl Iterator<Item = u64> + '_ {
        self.applied
            .range((epoch, index, 0)..=(epoch, index, u64::MAX))
            .map(|(_, (d, _))| *d)
    }

    /// Per member, a digest of the sequence of commands it applied (epoch,
    /// index and command of each, in order, across restarts): equal
    /// sequences give equal digests.
    pub fn applied_sequences(&self) -> &BTreeMap<NodeId, u64> {
        &self.sequences
    }
}

/// Where every digest starts (an arbitrary odd constant).
pub(crate) const DIGEST_START: u64 = 0xcbf2_9ce4_8422_2325;

/// Folds one 64-bit word into the digest `h`: xor, multiply by an odd
/// constant, xor-shift. Each step is a bijection of the digest for a
/// given word, so two sequences of words that differ only in one word
/// always digest differently.
#[inline]
pub(crate) fn fold_word(h: u64, word: u64) -> u64 {
    let x = (h ^ word).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    x ^ (x >> 29)
}

/// Folds `bytes` into the digest `h` a word at a time: each 8 bytes as a
/// little-endian word, the last few zero-padded to a word, then their
/// length (so trailing zero bytes count). The same on every platform.
pub(crate) fn fold_bytes(h: u64, bytes: &[u8]) -> u64 {
    let mut chunks = bytes.chunks_exact(8);
    let mut h = h;
    for c in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(c);
        h = fold_word(h, u64::from_le_bytes(word));
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut word = [0u8; 8];
        word[..rest.len()].copy_from_slice(rest);
        h = fold_word(h, u64::from_le_bytes(word));
    }
    fold_word(h, bytes.len() as u64)
}

/// A digest of bytes to compare what members applied: the bytes folded a
/// word at a time (8 bytes, little-endian, the last zero-padded, then the
/// length; each word xored in, multiplied by an odd constant and
/// xor-shifted), the same on every run, platform and toolchain.
pub fn digest(bytes: &[u8]) -> u64 {
    fold_bytes(DIGEST_START, bytes)
}

#[cfg(test)]
mod digest_tests {
    use super::*;

    #[test]
    fn every_byte_and_the_length_count() {
        let base = digest(b"set k1 1");
        assert_ne!(base, digest(b"set k1 2"));
        assert_ne!(base, digest(b"set k1 1\0"), "a trailing zero byte counts");
        assert_ne!(digest(b""), digest(b"\0"));
        assert_ne!(digest(b"0123456789"), digest(b"0123456788"));
        // Fixed little-endian words: the same on every platform.
        assert_eq!(digest(b"set k1 1"), digest(b"set k1 1"));
        let word = fold_word(fold_word(DIGEST_START, u64::from_le_bytes(*b"set k1 1")), 8);
        assert_eq!(base, word);
        // Pinned values (worked out by hand from the definition), so a
        // change of the function, or of its byte order on another
        // platform, cannot pass unnoticed.
        assert_eq!(base, 0x255c_8609_6319_8e1e);
        assert_eq!(digest(b"0123456789"), 0xea81_7537_9b9b_0da4);
    }
}
