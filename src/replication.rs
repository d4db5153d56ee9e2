//! DR auto-sync ([`QuorumMode::DrAutoSync`](crate::policy::QuorumMode::DrAutoSync)):
//! the replication states, what each one proves, and what a site's loss
//! would cost right now.
//!
//! # The model
//!
//! Two sites: the main site holds the duplicated core and a tie-breaker,
//! the survivable site a duplicated core; all five are voters, so the main
//! site alone is a majority. The leader (in the main site) moves the
//! cluster between four states. Each move is a log record with a new,
//! larger *state id*, so every member learns the states from its log, in
//! order, and a new leader starts from the last one it holds.
//!
//! | state | commits need | a loss of the main site costs |
//! |---|---|---|
//! | [`Sync`](ReplicationState::Sync) | a majority of the voters *and* a member of each site (raft's group commit) | nothing (proven, see below) |
//! | [`AsyncWait`](ReplicationState::AsyncWait) | the same: the survivable site has been silent for `sync_wait`, and the leader is making sure every main-site member knows it is about to stop waiting | nothing, as in `Sync` |
//! | [`Async`](ReplicationState::Async) | a majority (the main site alone, at LAN cost) | what the survivable site has not received, counted by the leader |
//! | [`SyncRecover`](ReplicationState::SyncRecover) | a majority, while the survivable site catches up | as in `Async` |
//!
//! ## Why group commit is the rule
//!
//! raft-rs can require a commit to span groups of voters
//! (`enable_group_commit`, `assign_commit_groups`): the commit index is the
//! largest index held by a majority of the voters that includes members of
//! two groups. With the main site as group 1 and the survivable site as
//! group 2, an entry commits only once at least one survivable member holds
//! it. That is the rule this mode uses, rather than one in the driver,
//! because the commit index is raft's own: followers learn it from the
//! leader, elections are unchanged (plain majority), a new leader applies
//! the same rule from its first tick, and turning it off commits what was
//! waiting at once. It differs from "a majority of the main site and one
//! survivable member" only when the leader's two main-site partners are
//! both behind and both survivable members hold the entry: a commit that a
//! double failure in the main site could not lose either (the leader holds
//! it).
//!
//! ## Leaving `Sync` without lying
//!
//! The survivable site cannot be told that the main site stopped waiting
//! for it (it is unreachable: that is why). So the claim "RPO 0" at a
//! survivable member rests on a lease, not on a message:
//!
//! * The leader never commits without the survivable site sooner than
//!   `sync_wait` after the last message it had from that site, and a new
//!   leader counts from an election timeout after it took over (an old
//!   leader that has not noticed yet answers for at most that long,
//!   check-quorum deposes it).
//! * A survivable member pings the leader; the leader's answer echoes the
//!   ping's send time and says whether it is in `Sync` or `AsyncWait`. A
//!   ping the leader answered was received after it was sent, so the
//!   leader cannot stop waiting before `send time + sync_wait`: the member
//!   holds a *lease* until then (less 1% for clock rates and two ticks).
//! * A survivable member that activates while its lease runs, whose log's
//!   last state record is `Sync` or `AsyncWait`, and whose core partner has
//!   stopped acknowledging (it *prepared*) with a log no longer than its
//!   own, holds every entry the main site ever committed: each commit
//!   needed one of the two, and neither acknowledged anything after
//!   answering. It reports RPO 0, proven.
//! * Otherwise it reports the known RPO, unproven.
//!
//! Either way it forks at its applied index, as main-site mode does, and
//! carries the tail of its log beyond it (what the leader had not reported
//! committed yet) into the new epoch: the tail's commands are proposed
//! again there under their own proposal ids, so each is applied once. The
//! tail cannot simply join the fork's prefix: entries the old epoch had
//! not committed may be overwritten there later (a WAN cut and a new
//! leader there, not a loss), and a reunion takes everything below a fork
//! point for common history; carried, the old epoch's own copies beyond
//! the fork are reconciled at the reunion like any divergent entries, and
//! skipped where they were applied already.
//!
//! What rests on clocks and what does not: every entry committed in `Sync`
//! or `AsyncWait` is on a survivable member (group commit), and the fork
//! takes the longest log of the prepared core, so it holds every such
//! entry whatever the clocks do. Only the claim that the main site had
//! committed nothing *else* by the time of the fork (no `Async` commit yet)
//! rests on the lease, and so on the two hosts' clocks running at rates
//! within 1% of each other (quartz and NTP slewing stay far below; a host
//! whose monotonic clock runs off by more, as the simulator's clock-skew
//! faults make it, may claim a proof it does not have).
//!
//! `AsyncWait` is announced through the log before the leader turns group
//! commit off: the leader appends the record (it cannot commit without the
//! survivable site) and waits until every main-site voter it heard from in
//! the last election timeout holds it, so no main-site member that is in
//! touch still reports `Sync` while commits stop waiting.

use std::fmt;

/// The replication state of a DR auto-sync cluster (see the [module docs](self)).
/// Its JSON is its [`name`](Self::name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplicationState {
    /// Commits need both sites: a main-site loss costs nothing.
    #[default]
    Sync,
    /// The survivable site has been silent for `sync_wait`; commits still
    /// need it while every main-site member learns that they will not.
    AsyncWait,
    /// Commits need the main site only; a main-site loss costs what the
    /// survivable site has not received.
    Async,
    /// The survivable site is back and catching up; commits still need the
    /// main site only.
    SyncRecover,
}

impl ReplicationState {
    /// Whether commits in this state need a member of each site (group
    /// commit on).
    pub fn needs_both_sites(self) -> bool {
        matches!(self, Self::Sync | Self::AsyncWait)
    }

    /// The name used in reports and JSON: `sync`, `async_wait`, `async`,
    /// `sync_recover`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sync => "sync",
            Self::AsyncWait => "async_wait",
            Self::Async => "async",
            Self::SyncRecover => "sync_recover",
        }
    }

    /// The number stored in log records and metrics (0 to 3).
    pub fn code(self) -> u32 {
        match self {
            Self::Sync => 0,
            Self::AsyncWait => 1,
            Self::Async => 2,
            Self::SyncRecover => 3,
        }
    }

    /// The state with [`code`](Self::code) `c`, if any.
    pub fn from_code(c: u32) -> Option<Self> {
        Some(match c {
            0 => Self::Sync,
            1 => Self::AsyncWait,
            2 => Self::Async,
            3 => Self::SyncRecover,
            _ => return None,
        })
    }
}

impl fmt::Display for ReplicationState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What losing a site would cost right now, as far as this member can tell.
///
/// `entries == Some(0)` only with `proven`: a zero this member could not
/// prove is reported as `None` (unknown).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct SiteLossCost {
    /// Committed entries the other site would not have; `None` when this
    /// member cannot tell (it is not the leader and holds no lease).
    pub entries: Option<u64>,
    /// For how long the oldest of those entries has been committed, in ms
    /// (`Some(0)` with `entries == Some(0)`).
    pub ms: Option<u64>,
    /// The figure is proven (group commit, or a running lease), not an
    /// estimate.
    pub proven: bool,
}

impl SiteLossCost {
    /// Nothing lost, proven.
    pub const ZERO: Self = Self {
        entries: Some(0),
        ms: Some(0),
        proven: true,
    };

    /// Unknown at this member.
    pub const UNKNOWN: Self = Self {
        entries: None,
        ms: None,
        proven: false,
    };

    /// A measured loss (by the leader, which sees the survivable site's
    /// progress): `entries` committed beyond it, the oldest `ms` ago. A
    /// measured 0 is proven.
    pub fn measured(entries: u64, ms: u64) -> Self {
        Self {
            entries: Some(entries),
            ms: Some(if entries == 0 { 0 } else { ms }),
            proven: true,
        }
    }
}

/// A member's view of DR auto-sync replication
/// ([`Status::replication`](crate::node::Status::replication)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Replication {
    /// The state this member's log says (its last state record, committed
    /// or not: an appended `AsyncWait` already means commits may soon stop
    /// waiting).
    pub state: ReplicationState,
    /// The id of that state (0: the first `Sync`, before any record; an
    /// epoch forked by a takeover starts at [`first_state_id`]).
    pub state_id: u64,
    /// What losing the main site would cost now.
    pub main_site_loss: SiteLossCost,
    /// What losing the survivable site would cost now (0, proven, at a
    /// main-site leader: it holds every committed entry).
    pub survivable_site_loss: SiteLossCost,
    /// A survivable member: for how much longer, in ms, its lease proves
    /// that the leader commits nothing without its site (0: no lease).
    pub lease_ms: u64,
}

/// State ids an epoch may give before the next epoch's start: a fork
/// cannot know the ids its older epoch gave after the sites parted, so an
/// epoch of generation `n > 1` (see
/// [`EpochId::generation`](crate::node::EpochId::generation)) starts at
/// `n` × 10⁹ + 1 (the first epoch at 0), above any the older one reached.
pub const STATE_IDS_PER_EPOCH: u64 = 1_000_000_000;

/// The first state id of an epoch of generation `epoch` (see [`STATE_IDS_PER_EPOCH`]).
pub fn first_state_id(epoch: u64) -> u64 {
    if epoch <= 1 {
        0
    } else {
        epoch.saturating_mul(STATE_IDS_PER_EPOCH) + 1
    }
}

/// A leader's next move, from what it sees (see [`next_move`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Move {
    /// Nothing to do.
    Stay,
    /// Append a record of this state (group commit as the state says).
    Enter(ReplicationState),
}

/// What the leader sees when it decides (see [`next_move`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Seen {
    /// The state of the leader's last state record.
    pub state: ReplicationState,
    /// That record is committed (or there is none: the initial `Sync`).
    pub committed: bool,
    /// Ticks since the survivable site was last heard, counted from no
    /// earlier than an election timeout after this leader took over.
    pub silent: usize,
    /// Every main-site voter heard within an election timeout holds the
    /// last record (`AsyncWait`: the announcement is out).
    pub announced: bool,
    /// A survivable voter holds the last record and was heard within the
    /// contact gap (`SyncRecover`: caught up; `Async`: back).
    pub caught_up: bool,
}

/// The leader's next move (`sync_wait` in ticks). Pure: unit-tested below.
///
/// * `Sync` → `AsyncWait` once the survivable site was silent `sync_wait`.
/// * `AsyncWait` → `Sync` if it spoke again; → `Async` once the record is
///   announced (and still silent).
/// * `Async` → `SyncRecover` once a survivable voter is in touch and holds
///   the `Async` record.
/// * `SyncRecover` → `Async` if the site went silent again; → `Sync` once a
///   survivable voter holds the `SyncRecover` record (everything before it).
///
/// A record not yet committed holds every move but `AsyncWait`'s (its
/// record commits only when group commit is off, or the site is back).
pub(crate) fn next_move(s: Seen, sync_wait: usize) -> Move {
    use ReplicationState::*;
    let silent = s.silent >= sync_wait;
    match s.state {
        Sync if s.committed && silent => Move::Enter(AsyncWait),
        AsyncWait if !silent => Move::Enter(Sync),
        AsyncWait if s.announced => Move::Enter(Async),
        Async if s.committed && !silent && s.caught_up => Move::Enter(SyncRecover),
        SyncRecover if s.committed && silent => Move::Enter(Async),
        SyncRecover if s.committed && s.caught_up => Move::Enter(Sync),
        _ => Move::Stay,
    }
}

/// The end of a survivable member's lease, in its own ms: `sent_ms` (when
/// it sent a ping the leader answered from a group-commit state) plus
/// `sync_wait_ms`, less 1% (clock rates of two hosts differ by far less)
/// and two ticks (the leader counts silence in whole ticks).
pub(crate) fn lease_end(sent_ms: u64, sync_wait_ms: u64, tick_ms: u64) -> u64 {
    (sent_ms + sync_wait_ms).saturating_sub(sync_wait_ms / 100 + 2 * tick_ms)
}

#[cfg(test)]
mod tests {
    use super::ReplicationState::*;
    use super::*;

    fn seen(state: ReplicationState) -> Seen {
        Seen {
            state,
            committed: true,
            silent: 0,
            announced: false,
            caught_up: false,
        }
    }

    #[test]
    fn sync_waits_out_sync_wait_before_announcing() {
        let s = seen(Sync);
        assert_eq!(next_move(Seen { silent: 99, ..s }, 100), Move::Stay);
        assert_eq!(
            next_move(Seen { silent: 100, ..s }, 100),
            Move::Enter(AsyncWait)
        );
        // An uncommitted Sync record (just recovered) holds the move.
        let pending = Seen {
            silent: 100,
            committed: false,
            ..s
        };
        assert_eq!(next_move(pending, 100), Move::Stay);
    }

    #[test]
    fn async_wait_goes_async_only_once_announced_and_back_to_sync_if_heard() {
        let s = Seen {
            silent: 100,
            committed: false,
            ..seen(AsyncWait)
        };
        assert_eq!(next_move(s, 100), Move::Stay);
        assert_eq!(
            next_move(
                Seen {
                    announced: true,
                    ..s
                },
                100
            ),
            Move::Enter(Async)
        );
        assert_eq!(next_move(Seen { silent: 3, ..s }, 100), Move::Enter(Sync));
    }

    #[test]
    fn recovery_needs_contact_and_the_record_held() {
        let s = seen(Async);
        assert_eq!(next_move(s, 100), Move::Stay);
        let back = Seen {
            caught_up: true,
            ..s
        };
        assert_eq!(next_move(back, 100), Move::Enter(SyncRecover));
        let r = seen(SyncRecover);
        assert_eq!(next_move(r, 100), Move::Stay);
        assert_eq!(
            next_move(
                Seen {
                    caught_up: true,
                    ..r
                },
                100
            ),
            Move::Enter(Sync)
        );
        assert_eq!(
            next_move(
                Seen {
                    silent: 100,
                    caught_up: true,
                    ..r
                },
                100
            ),
            Move::Enter(Async)
        );
    }

    #[test]
    fn lease_ends_before_the_leader_may_stop_waiting() {
        // 4 s wait, 5 ms ticks: 40 ms for clock rates, 10 ms for ticks.
        assert_eq!(lease_end(1_000, 4_000, 5), 4_950);
        assert_eq!(lease_end(0, 0, 5), 0);
    }

    #[test]
    fn codes_round_trip_and_only_zero_is_proven_zero() {
        for s in [Sync, AsyncWait, Async, SyncRecover] {
            assert_eq!(ReplicationState::from_code(s.code()), Some(s));
        }
        assert_eq!(ReplicationState::from_code(4), None);
        assert!(SiteLossCost::measured(0, 500).proven);
        assert_eq!(SiteLossCost::measured(0, 500).ms, Some(0));
        assert_eq!(SiteLossCost::UNKNOWN.entries, None);
    }
}
