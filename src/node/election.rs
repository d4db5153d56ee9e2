//! Who campaigns, and when (raft never campaigns on its own here).
//!
//! - The standby of the leader's pair takes over as soon as the primary has
//!   been silent for [`Timers::failover`](crate::policy::Timers::failover):
//!   it runs a transfer-style campaign (no pre-vote, bypassing the vote
//!   lease of remote followers), so it needs one WAN round trip for votes,
//!   not a WAN-sized election timeout plus a pre-vote round. Only with a
//!   log known to match the leader's in this term (an append taken, not
//!   behind its commit, not catching up): a hopeless campaign would still
//!   depose a primary that was only slow.
//! - Other main-core members campaign after one to two election timeouts
//!   without a leader (pre-vote, check-quorum).
//! - A rank-`r` survivable core campaigns only after
//!   `survivable_after + (r-1)·rank_step` without a leader; its standby one
//!   election timeout later, so a pair never splits the vote. It steps up
//!   sooner (failover time + an election timeout, staggered) when a more
//!   preferred candidate proves it cannot win.
//! - A witness campaigns only after every survivable core had its chance,
//!   and hands leadership on at once (see `handback`).
//! - A drained member never campaigns (see `drain`).
//! - After a long leaderless spell a node lowers its own raft priority to 0
//!   so a priority/log-length deadlock resolves (see
//!   [`manual::raft_rs`](crate::manual::raft_rs#the-priority-deadlock)).
//!
//! The pair standby's probe before it deposes its primary, and the fast
//! path when the leader's process is gone (a connection to it refused):
//! see [`probe`](super::probe).

use raft::StateRole;

use super::probe::FailoverProbe;
use super::{Node, NodeId};
use crate::events::{Event, LeadershipCause};
use crate::policy::{QuorumMode, TickTimers};
use crate::state_machine::StateMachine;
use crate::storage::LogStore;
use crate::topology::{Member, Role};

/// Role and leader tracking, and the campaign schedule: what decides who
/// campaigns, and when.
#[derive(Debug)]
pub(super) struct Election {
    /// raft's role, as last reported by a `Ready`.
    pub(super) role: StateRole,
    /// The leader known now.
    pub(super) leader: Option<NodeId>,
    /// The last leader known (kept after it is lost).
    pub(super) last_leader: Option<NodeId>,
    /// Elapsed ticks without a leader (0 while leading or following one).
    pub(super) since_leader: usize,
    /// The leader was heard since the last tick.
    pub(super) heard_since_tick: bool,
    /// The last tick came late and silence was not judged on it.
    pub(super) judging_deferred: bool,
    /// Leaderless ticks after which the next campaign starts.
    pub(super) next_campaign: usize,
    /// The term of the last fast pair failover started here (one per term).
    pub(super) fast_failover_term: u64,
    /// The standby declined a fast failover in this silence of its
    /// primary because its log was catching up (logged once; cleared by
    /// the next contact with the leader, so a later silence is judged
    /// afresh).
    pub(super) failover_declined: bool,
    /// raft priority lowered to 0 to break a priority deadlock.
    pub(super) priority_lowered: bool,
    /// Campaigns started in this leaderless spell (events go out for the first only).
    pub(super) spell_campaigns: u32,
    /// Why the campaign under way started (reported when it wins).
    pub(super) pending_cause: Option<LeadershipCause>,
    /// Became leader and has not yet re-probed its followers.
    pub(super) fresh_leader: bool,
    /// When this member last found itself behind the leader's commit.
    pub(super) catching_up_at: Option<u64>,
    /// The last term in which an append from its leader was taken and left
    /// this member's log matching the leader's up to its commit index:
    /// only then is a fast pair failover worth its term bump (a member
    /// that has heard nothing but heartbeats, e.g. just after a restart,
    /// would lose the vote after deposing a live primary).
    pub(super) synced_term: u64,
    /// The fast failover's probe under way, if any (see
    /// [`FailoverProbe`]).
    pub(super) probe: Option<FailoverProbe>,
    /// A probe was sent in this silence of the primary (one per silence;
    /// cleared when the leader is heard).
    pub(super) probed: bool,
    /// Campaign within this many ticks, whatever the usual schedule says
    /// (set when a more preferred candidate proved it cannot win, or when
    /// this leader was deposed with no successor).
    pub(super) step_up: Option<usize>,
    /// The leader followed, reported gone (a connection to it refused)
    /// since its last message here; cleared when a leader is heard or
    /// another is followed (see [`probe`](super::probe)).
    pub(super) gone: Option<NodeId>,
}

impl Default for Election {
    fn default() -> Self {
        Self {
            role: StateRole::Follower,
            leader: None,
            last_leader: None,
            since_leader: 0,
            heard_since_tick: false,
            judging_deferred: false,
            next_campaign: 0,
            fast_failover_term: 0,
            failover_declined: false,
            priority_lowered: false,
            spell_campaigns: 0,
            pending_cause: None,
            fresh_leader: false,
            catching_up_at: None,
            synced_term: 0,
            probe: None,
            probed: false,
            step_up: None,
            gone: None,
        }
    }
}

/// This member's log against its leader's, for the fast failover.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct LogSync {
    /// The current raft term.
    pub(super) term: u64,
    /// This log's last index.
    pub(super) last_index: u64,
    /// The highest commit index the leader reported.
    pub(super) leader_commit: u64,
}

/// What the pair standby does about its primary's silence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Failover {
    /// No fast failover: no leader, not this core's, not silent long
    /// enough, or one was already run in this term.
    NotNow,
    /// The primary is silent but this log is catching up: leave the
    /// silence to an ordinary election.
    Decline(NodeId),
    /// Silent long enough to ask whether this standby could win (see
    /// [`FailoverProbe`]); it takes over once it could and the primary has
    /// been silent for the failover time.
    Start(NodeId),
}

/// Leaderless ticks a member in `role` waits before its first campaign,
/// and whether random jitter (up to one election timeout) is added.
/// `my_core_led`: the last leader known was this member's core partner.
pub(super) fn campaign_wait(
    role: &Role,
    my_core_led: bool,
    mode: QuorumMode,
    t: &TickTimers,
    max_rank: u32,
) -> (usize, bool) {
    match *role {
        // The primary first: its standby waits half an election timeout more.
        Role::MainCore { position, .. } => (t.main_campaign_after(position), true),
        // A core that was leading re-elects within itself quickly, whichever
        // site it is in: the wait for the main site is already over.
        Role::Survivable { position, .. } if my_core_led => (t.main_campaign_after(position), true),
        // Survivable cores and witnesses are staggered by rank and position
        // instead of jittered.
        Role::Survivable { rank, position, .. } => {
            (t.survivable_campaign_after(rank, position), false)
        }
        Role::Witness if mode.forks_epochs() => (t.tie_breaker_after(), false),
        Role::Witness => (t.witness_after(max_rank), false),
    }
}

/// Leaderless ticks after which a member lowers its own raft priority to 0
/// so a priority/log-length deadlock resolves: every survivable core and
/// the witness had their chance, and four election timeouts more passed.
pub(super) fn deadlock_after(t: &TickTimers, max_rank: u32) -> usize {
    t.witness_after(max_rank) + 4 * t.election
}

/// Silent ticks after which the standby of a leader reported gone takes
/// over (its probe won): more than a heartbeat interval, so a leader whose
/// messages still reach this member is never taken for gone, and never
/// more than the failover time.
pub(super) fn gone_failover_after(t: &TickTimers) -> usize {
    (t.heartbeat + 1).min(t.failover)
}

/// Why a campaign by a member in `role` runs.
pub(super) fn campaign_cause(role: Option<&Role>) -> LeadershipCause {
    match role {
        Some(Role::Survivable { rank, .. }) => LeadershipCause::Takeover { rank: *rank },
        Some(Role::Witness) => LeadershipCause::LastResort,
        _ => LeadershipCause::Elected,
    }
}

/// Within how many ticks `me` campaigns after a vote request from `them`
/// whose log ends at `theirs` (term, index) while ours ends at `ours`:
/// `None` unless `them` is preferred, its log is behind ours, this member
/// does not lead and is a survivable member or a witness. See
/// [`Node::note_vote_request`] for why.
#[allow(clippy::too_many_arguments)]
pub(super) fn step_up_within(
    me: &Member,
    them: &Member,
    leading: bool,
    ours: (u64, u64),
    theirs: (u64, u64),
    since_leader: usize,
    t: &TickTimers,
    max_rank: u32,
) -> Option<usize> {
    if them.preference() >= me.preference() || leading {
        return None;
    }
    let ((our_term, our_index), (log_term, index)) = (ours, theirs);
    let behind = log_term < our_term || (log_term == our_term && index < our_index);
    if !behind {
        return None;
    }
    let quarter = t.election / 4;
    // Leaderless here for `survivable_after` already: no live leader
    // this member could hear is left to restand, so only the stagger
    // remains (the takeover is under way and the stale candidate has
    // just shown it cannot finish it).
    let deposed_restands = if since_leader >= t.survivable_after {
        0
    } else {
        t.failover + t.election
    };
    match me.role {
        Role::Survivable { rank, position, .. } => {
            Some(deposed_restands + quarter * (position + 2 * (rank as usize - 1)))
        }
        Role::Witness => Some(deposed_restands + quarter * (2 * max_rank as usize + 1)),
        Role::MainCore { .. } => None,
    }
}

impl Election {
    /// `periods` ticks of wall time elapsed (`late`: more than a heartbeat
    /// interval since the last tick); `leading`: this member leads. Counts
    /// the silence, and says whether silence may be judged on this tick.
    ///
    /// A leader heard since the last tick counts as heard within the last
    /// period, however late this tick is: what this member took in after
    /// its own stall says the leader was alive meanwhile. A late tick
    /// defers judging to the next one (whatever that one's lateness), so
    /// what peers sent during the gap can still arrive first; a silence
    /// is never judged more than one tick late for it.
    pub(super) fn elapse(&mut self, periods: u64, leading: bool, late: bool) -> bool {
        let periods = usize::try_from(periods).unwrap_or(usize::MAX);
        if !leading {
            self.since_leader = if std::mem::take(&mut self.heard_since_tick) {
                1
            } else {
                self.since_leader.saturating_add(periods)
            };
        }
        self.heard_since_tick = false;
        if late && !self.judging_deferred {
            self.judging_deferred = true;
            return false;
        }
        self.judging_deferred = false;
        true
    }

    /// The pair standby's verdict on its leader's silence: `me` is this
    /// member, `same_core` whether the leader is its core partner.
    /// Only with a log known to match the leader's in this term (an
    /// append taken, not behind its commit, not catching up within the
    /// last election timeout): a hopeless campaign would still depose a
    /// primary that was only slow.
    pub(super) fn failover(
        &self,
        me: NodeId,
        same_core: bool,
        log: LogSync,
        tick_no: u64,
        t: &TickTimers,
    ) -> Failover {
        let Some(leader) = self.leader else {
            return Failover::NotNow;
        };
        let election = t.election as u64;
        let gone = self.gone == Some(leader);
        // Behind what the leader said it had committed, recently catching
        // up, or not yet known to match the leader's log in this term (only
        // heartbeats so far): such a log would lose the election. The
        // recent catch-up only guards a live leader (see `probe`).
        let behind = log.last_index < log.leader_commit || self.synced_term != log.term;
        let catching_up = behind
            || !gone
                && self
                    .catching_up_at
                    .is_some_and(|at| tick_no.saturating_sub(at) < election);
        // Gone: probing deposes nobody, so it starts at once.
        let probe_after = if gone { 1 } else { t.failover_probe_after() };
        if leader == me
            || self.fast_failover_term == log.term
            || self.since_leader < probe_after
            || !same_core
        {
            return Failover::NotNow;
        }
        if catching_up {
            Failover::Decline(leader)
        } else {
            Failover::Start(leader)
        }
    }

    /// Silent ticks after which the campaign follows a won probe against
    /// `primary`: the failover time, or [`gone_failover_after`] once it
    /// was reported gone.
    pub(super) fn failover_after(&self, primary: NodeId, t: &TickTimers) -> usize {
        if self.gone == Some(primary) {
            gone_failover_after(t)
        } else {
            t.failover
        }
    }

    /// A connection to `peer` was refused after its connection to this
    /// member ended: recorded when `peer` is the leader followed (and this
    /// member does not lead). Whether it was recorded.
    pub(super) fn refused(&mut self, peer: NodeId) -> bool {
        if self.leader != Some(peer) || self.role == StateRole::Leader || self.gone == Some(peer) {
            return false;
        }
        self.gone = Some(peer);
        true
    }

    /// Whether the priority should be lowered now to break a deadlock.
    pub(super) fn lowers_priority(&self, deadlock_after: usize) -> bool {
        self.since_leader >= deadlock_after && !self.priority_lowered
    }

    /// Whether the next campaign is due, pulling it forward first to a
    /// pending step-up's deadline (consumed).
    pub(super) fn campaign_due(&mut self) -> bool {
        if let Some(within) = self.step_up.take() {
            self.next_campaign = self.next_campaign.min(self.since_leader + within);
        }
        self.since_leader >= self.next_campaign
    }

    /// Counts a campaign of this leaderless spell; whether it is the first
    /// (only the first is reported as an event).
    pub(super) fn count_campaign(&mut self) -> bool {
        self.spell_campaigns += 1;
        self.spell_campaigns == 1
    }

    /// This member won an election: the cause of the campaign that won
    /// (an ordinary election when none was recorded, e.g. raft's own).
    pub(super) fn gained(&mut self) -> LeadershipCause {
        self.since_leader = 0;
        self.fresh_leader = true;
        self.pending_cause
            .take()
            .unwrap_or(LeadershipCause::Elected)
    }

    /// This member stopped leading. Deposed with no `successor` known and
    /// no hand-back `handing_over` (a failover that may fail): as the
    /// holder of the freshest log, it stands again within `failover` ticks.
    pub(super) fn deposed(&mut self, successor: bool, handing_over: bool, failover: usize) {
        if !successor && !handing_over {
            self.step_up = Some(failover);
        }
    }

    /// raft's role is `role` now. A follower forgets the cause of its
    /// campaign; candidates keep theirs until they win or fall back.
    pub(super) fn settle_role(&mut self, role: StateRole) {
        if role == StateRole::Follower {
            self.pending_cause = None;
        }
        self.role = role;
    }

    /// raft reports `leader`: whether it changed (then it is recorded, and
    /// remembered as the last leader known if there is one).
    pub(super) fn leader_seen(&mut self, leader: Option<NodeId>) -> bool {
        if leader == self.leader {
            return false;
        }
        self.leader = leader;
        self.gone = None;
        if leader.is_some() {
            self.last_leader = leader;
        }
        true
    }

    /// The leader was heard: the leaderless spell is over (the next
    /// campaign is scheduled by the caller). Returns whether the priority
    /// had been lowered and must be restored.
    pub(super) fn heard_leader(&mut self) -> bool {
        self.since_leader = 0;
        self.heard_since_tick = true;
        self.probe = None;
        self.probed = false;
        self.failover_declined = false;
        self.spell_campaigns = 0;
        self.step_up = None;
        self.gone = None;
        std::mem::take(&mut self.priority_lowered)
    }
}

impl<M: StateMachine, S: LogStore> Node<M, S> {
    /// Leaderless ticks after which this node starts its next campaign.
    pub(super) fn campaign_threshold(&mut self) -> usize {
        let t = self.ticks;
        let max_rank = self.cfg.topology.max_rank();
        let Some(me) = self.my_member() else {
            return usize::MAX;
        };
        let my_core_led = self.election.last_leader.is_some_and(|l| self.same_core(l));
        let (base, jitter) = campaign_wait(
            &me.role,
            my_core_led,
            self.cfg.topology.mode(),
            &t,
            max_rank,
        );
        // Such elections spread over one election timeout.
        let spread = if jitter {
            t.main_campaign_jitter() as u64
        } else {
            0
        };
        base + self.rng.below(spread) as usize
    }

    pub(super) fn drive_election(&mut self) {
        if self.election.role == StateRole::Leader
            || self.membership.removed
            || !self.raw.raft.promotable()
            || self.fenced()
            || self.ep.joining
            || self.drain.drained
        {
            return;
        }
        if self.try_pair_failover() {
            return;
        }
        if self
            .election
            .lowers_priority(deadlock_after(&self.ticks, self.cfg.topology.max_rank()))
        {
            slog::warn!(self.logger, "long without a leader: lowering own priority to break a priority deadlock";
                "leaderless_ms" => self.ticks.ms(self.election.since_leader));
            self.election.priority_lowered = true;
            self.raw.set_priority(0);
        }
        if !self.election.campaign_due() {
            return;
        }
        let leaderless_ms = self.ticks.ms(self.election.since_leader);
        // One event per leaderless spell; retries only go to the log.
        let first = self.election.count_campaign();
        let cause = campaign_cause(self.my_member().map(|m| &m.role));
        if first {
            match cause {
                LeadershipCause::Takeover { rank } => self.emit(Event::TakeoverStarted {
                    rank,
                    leaderless_ms,
                }),
                LeadershipCause::LastResort => {
                    self.emit(Event::LastResortCampaign { leaderless_ms })
                }
                _ => {}
            }
        }
        slog::debug!(self.logger, "campaigning"; "attempt" => self.election.spell_campaigns,
            "leaderless_ms" => leaderless_ms);
        self.election.pending_cause = Some(cause);
        let _ = self.raw.campaign();
        // Next attempt one to two election timeouts from now if this one fails.
        let e = self.ticks.election;
        self.election.next_campaign =
            self.election.since_leader + e + self.rng.below(e as u64) as usize;
    }

    /// The pair standby's fast takeover from a silent primary.
    pub(super) fn try_pair_failover(&mut self) -> bool {
        let log = LogSync {
            term: self.raw.raft.term,
            last_index: self.raw.raft.raft_log.last_index(),
            leader_commit: self.ep.leader_commit,
        };
        let same_core = self.election.leader.is_some_and(|l| self.same_core(l));
        let verdict = self
            .election
            .failover(self.id, same_core, log, self.tick_no, &self.ticks);
        let leader = match verdict {
            Failover::NotNow => return false,
            Failover::Decline(leader) => {
                // A lagging log would lose the vote after deposing a live
                // leader with its higher term: leave this silence to an
                // ordinary election. Not the whole term: the silence may be
                // a false alarm of the catch-up itself (a restarted member
                // busy applying its log), and once the leader is heard
                // again and this log matches, the next silence gets a fast
                // failover.
                if !self.election.failover_declined {
                    self.election.failover_declined = true;
                    self.counters.campaigns_suppressed += 1;
                    slog::info!(self.logger, "primary silent while catching up: no fast failover";
                        "primary" => leader.0);
                }
                return false;
            }
            Failover::Start(leader) => leader,
        };
        if !self.election.probed {
            self.start_failover_probe(leader, log.term);
            return true;
        }
        self.conclude_failover_probe()
    }

    /// A candidate more preferred than this member whose log is behind ours
    /// cannot win (we, and everyone as fresh as we are, refuse it): step up
    /// soon instead of waiting out `survivable_after`, staggered by rank
    /// and position so the best-ranked fresh member goes first. Soon, not
    /// at once: the candidate may have deposed a live leader (a standby
    /// that lost sight of its primary for a moment), which holds the
    /// freshest log and stands again after the failover time; it gets a
    /// whole election timeout beyond that to win before this site tries.
    /// A member already leaderless for `survivable_after` skips that wait
    /// (the witness that alone holds the newest entries when Denver is cut
    /// off bridges a WAN round trip and an election timeout sooner).
    pub(super) fn note_vote_request(&mut self, from: NodeId, log_term: u64, index: u64) {
        let (Some(me), Some(them)) = (self.my_member(), self.membership.members.get(&from)) else {
            return;
        };
        let log = &self.raw.raft.raft_log;
        let within = step_up_within(
            me,
            &them.member,
            self.election.role == StateRole::Leader,
            (log.last_term(), log.last_index()),
            (log_term, index),
            self.election.since_leader,
            &self.ticks,
            self.cfg.topology.max_rank(),
        );
        let Some(within) = within else {
            return;
        };
        slog::info!(self.logger, "a preferred candidate's log is behind ours: stepping up";
            "candidate" => from.0, "within_ms" => self.ticks.ms(within));
        self.election.step_up = Some(within);
    }

    pub(super) fn same_core(&self, other: NodeId) -> bool {
        let mine = self.my_member().and_then(Member::core);
        let theirs = self
            .membership
            .members
            .get(&other)
            .and_then(|s| s.member.core());
        mine.is_some() && mine == theirs
    }

    /// A connection to `peer` was refused after a connection with it ended
    /// (see [`Node::peer_connection_refused`] and [`probe`](super::probe)).
    pub(super) fn note_refused(&mut self, peer: NodeId) {
        if self.election.refused(peer) {
            slog::info!(self.logger, "the leader's process is gone (its connection closed, a dial to it refused)";
                "leader" => peer.0, "silent_ms" => self.ticks.ms(self.election.since_leader));
        } else {
            slog::info!(self.logger, "a peer's process is gone; nothing to do (not the leader followed, or already reported)";
                "peer" => peer.0, "leader" => ?self.election.leader.map(|l| l.0),
                "role" => ?self.election.role);
        }
    }

    /// The leader was heard: the leaderless spell is over.
    pub(super) fn leader_contact(&mut self) {
        let restore_priority = self.election.heard_leader();
        self.election.next_campaign = self.campaign_threshold();
        if restore_priority {
            let p = self.own_priority();
            self.raw.set_priority(p);
        }
    }
}

#[cfg(test)]
#[path = "election_tests.rs"]
mod tests;
