//! Timers and hand-back policy: how fast failure is detected, when a
//! survivable core may take over, and when control returns to the main site.

use std::time::Duration;

use thiserror::Error;

/// Which quorum layout the topology uses (see the manual's model, "Quorum modes", and the crate docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum QuorumMode {
    /// Three sites, RPO = 0: every member of every core is a voter, plus a
    /// light witness in a third site, so every commit carries a WAN
    /// acknowledgement and no committed entry is ever lost.
    #[default]
    Witness,
    /// Two sites, the paper's model: the main site holds the voting
    /// majority (its duplicated core plus a local tie-breaker on a third
    /// host), so commits cost a LAN round trip; survivable cores replicate
    /// asynchronously as learners. A survivable core cut off from the main
    /// site for `survivable_after` activates a new, fenced epoch of its own;
    /// what the main site committed but never shipped is the RPO, counted,
    /// reported and reconciled when the sites meet again.
    MainSite,
    /// Two sites, RPO 0 while they can talk: every member of the main
    /// site's duplicated core and tie-breaker and of the survivable core is
    /// a voter (the main site alone is a majority), and while the sites
    /// talk an entry commits only once it is on a majority of the voters
    /// *and* on at least one member of each site (raft's group commit). A
    /// survivable site silent for [`Timers::sync_wait`] moves the cluster,
    /// through announced and replicated states, to committing on the main
    /// site alone; when it is back it is caught up and the cluster commits
    /// on both again. Losing the main site while both sites held every
    /// commit costs nothing: the survivable core activates a fenced epoch
    /// from the log it has, with RPO 0 proven. See
    /// [`ReplicationState`](crate::replication::ReplicationState) for the
    /// states and what each proves.
    DrAutoSync,
}

impl QuorumMode {
    /// Whether a survivable core forks a new, fenced epoch when the main
    /// site is lost (main-site and DR auto-sync modes), rather than being
    /// elected within the one epoch (witness mode).
    pub fn forks_epochs(self) -> bool {
        matches!(self, Self::MainSite | Self::DrAutoSync)
    }

    /// Whether survivable cores' members vote in the first epoch (witness
    /// and DR auto-sync modes); in main-site mode they are learners.
    pub fn survivors_vote(self) -> bool {
        matches!(self, Self::Witness | Self::DrAutoSync)
    }

    /// The name used in member files and reports: `witness`, `main-site`
    /// or `dr-auto-sync`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Witness => "witness",
            Self::MainSite => "main-site",
            Self::DrAutoSync => "dr-auto-sync",
        }
    }
}

/// The clock of the cluster, in ticks of the node driver.
///
/// Every duration is converted to whole ticks when the topology is built;
/// the conversion rounds up so a timer never fires early.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timers {
    /// How often the embedding runtime calls [`Node::tick`](crate::Node::tick). Defaults to 5 ms.
    pub tick: Duration,
    /// Interval between leader heartbeats. Defaults to 10 ms: the pair
    /// standby needs frequent proof of life from its primary.
    pub heartbeat: Duration,
    /// Raft's election timeout: the check-quorum window of a leader and the
    /// lease during which followers ignore vote requests. Must be at least
    /// two round trips of the worst pair of sites plus two heartbeats
    /// ([`min_election_for_rtt`](crate::topology::min_election_for_rtt)
    /// derives it; `TopologyBuilder::wan` makes `build` check it): a
    /// hand-back's leader transfer, aborted by raft after one election
    /// timeout, needs that long over the WAN. Defaults to 200 ms, enough for
    /// round trips up to 90 ms at the default heartbeat.
    pub election: Duration,
    /// How long the standby of a duplicated pair waits without hearing from
    /// its primary before it takes over. Defaults to 100 ms.
    ///
    /// Before it takes over, the standby asks every voter for a pre-vote
    /// with raft's transfer context (after two missed heartbeats and a
    /// tick, 25 ms at the defaults): that deposes nobody, and it campaigns
    /// only once a quorum granted, so a standby whose log is behind (which
    /// would lose the vote after deposing a live primary with its higher
    /// term) leaves the primary alone. A standby that was stalled itself
    /// takes in what arrived meanwhile before it judges the silence (see
    /// [`Node::tick`](crate::Node::tick)).
    ///
    /// The trade-off is the primary's own stalls: a primary frozen (CPU
    /// starvation, GC, a stalled disk) for longer than this minus a
    /// heartbeat interval and a tick cannot be told from a dead one, and
    /// its caught-up standby takes over. At 30 ms, five processes
    /// saturating a two-core host moved leadership one to four times a
    /// minute (stalls of ~50 ms); 100 ms sits out stalls up to 84 ms. It
    /// costs a real death little: in witness mode the probe's round trip
    /// to a quorum (a WAN one) runs inside the 100 ms at WAN round trips
    /// up to 75 ms, and a primary's death costs about 270 ms to the first
    /// commit at an 80 ms WAN round trip (it was about 190 ms at 30 ms
    /// without the probe, which alone costs the WAN round trip); in
    /// main-site mode (a LAN quorum) about 107 ms instead of 35 ms.
    /// Stalls longer than the election timeout cannot be covered (the
    /// failover time must stay below it).
    ///
    /// A dead primary need not cost the whole failover time: when its
    /// process is gone and its host still up, its connection to the
    /// standby ends and a dial to it is refused, and a standby told so
    /// ([`Node::peer_connection_refused`](crate::Node::peer_connection_refused);
    /// the TCP runtime does it) takes over once the primary has been silent
    /// for a heartbeat interval and a tick. Nothing else shortens the wait:
    /// a stall, a flapping link or a host gone without a reset leaves the
    /// failover time as it is.
    pub failover: Duration,
    /// How long a rank-1 survivable core waits without any leader before it
    /// takes over. Defaults to 2 s (the paper's default is minutes).
    ///
    /// **Witness mode**: its primary campaigns after this long without a
    /// leader (its standby an election timeout later). It campaigns
    /// *sooner* — the failover time plus one election timeout, staggered by
    /// rank and position — once a more preferred candidate (a main-site
    /// member) asked for its vote with a log proven behind its own: such a
    /// candidate cannot win (this member, and every member as fresh,
    /// refuses it), so waiting out `survivable_after` would only prolong
    /// the outage. The extra election timeout lets a leader that candidate
    /// deposed, which holds the freshest log, stand again first.
    ///
    /// **Main-site mode**: its primary, a learner, activates a new epoch
    /// (see [`Node::activate`](crate::Node::activate)) after this long
    /// without hearing a leader, *unless* it can still reach a majority of
    /// its epoch's voters (heard within an election timeout) or a
    /// better-ranked survivable member. Reaching a minority of the main
    /// site's voters — say only the tie-breaker on its third host — does
    /// not hold activation back: those members cannot elect or sustain a
    /// leader without the others, so waiting would keep the users this
    /// core can reach without service, and would save nothing. Whatever
    /// majority the main site may still hold on its side of the cut goes on
    /// serving its own users, as in any WAN cut in this mode; when the
    /// sides meet, the older epoch's divergent entries are reconciled.
    pub survivable_after: Duration,
    /// Extra wait per rank below 1: a rank-`r` survivable core campaigns after
    /// `survivable_after + (r - 1) * rank_step`. Defaults to 1 s.
    pub rank_step: Duration,
    /// DR auto-sync mode: how long the leader goes on without any message
    /// from a survivable-site member before it stops waiting for that site
    /// (through [`AsyncWait`](crate::replication::ReplicationState::AsyncWait)
    /// to [`Async`](crate::replication::ReplicationState::Async)). Commits
    /// stall for this long when the WAN is cut. Defaults to 4 s.
    ///
    /// It is also the lease on which a survivable member's claim of RPO 0
    /// rests: the leader never commits without that site sooner than
    /// `sync_wait` after the last message it had from it, so a survivable
    /// member that activates within `sync_wait` (less a 1% clock-rate
    /// allowance and two ticks) of sending a message the leader confirmed
    /// knows nothing was committed without it. Keep it above
    /// `survivable_after` plus an election timeout (the survivable
    /// standby's stagger) plus two WAN round trips, or a takeover after the
    /// main site's loss is reported with an unproven RPO.
    pub sync_wait: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Self {
            tick: Duration::from_millis(5),
            heartbeat: Duration::from_millis(10),
            election: Duration::from_millis(200),
            failover: Duration::from_millis(100),
            survivable_after: Duration::from_secs(2),
            rank_step: Duration::from_secs(1),
            sync_wait: Duration::from_secs(4),
        }
    }
}

/// [`Timers`] converted to ticks, checked for consistency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TickTimers {
    /// Tick length in milliseconds.
    pub tick_ms: u64,
    /// Heartbeat interval in ticks.
    pub heartbeat: usize,
    /// Election timeout (check-quorum window, vote lease) in ticks.
    pub election: usize,
    /// Pair failover detection in ticks.
    pub failover: usize,
    /// `survivable_after` in ticks.
    pub survivable_after: usize,
    /// `rank_step` in ticks.
    pub rank_step: usize,
    /// `sync_wait` in ticks.
    pub sync_wait: usize,
}

impl TickTimers {
    /// Ticks a main-core member waits without a leader before its first
    /// ordinary (pre-vote) campaign, before up to [`main_campaign_jitter`](Self::main_campaign_jitter)
    /// of random spread: the primary (`position` 0) first, its standby half
    /// an election timeout later.
    pub fn main_campaign_after(&self, position: usize) -> usize {
        self.election + position * self.election / 2
    }

    /// Silence from a member longer than this (a quarter of the election
    /// timeout, at least three heartbeats) interrupts contact with it: a
    /// hand-back's stability window starts over, so a link that drops out
    /// for a few hundred milliseconds at a time never counts as stable.
    pub fn contact_gap(&self) -> usize {
        (self.election / 4).max(3 * self.heartbeat)
    }

    /// The random spread added to a main-core member's campaign time.
    pub fn main_campaign_jitter(&self) -> usize {
        self.election / 2
    }

    /// Ticks a member of survivable core `rank` waits without a leader before it
    /// campaigns; `position` is its place in its pair (the standby waits one
    /// election timeout longer so the pair never splits the vote).
    pub fn survivable_campaign_after(&self, rank: u32, position: usize) -> usize {
        self.survivable_after
            + (rank.saturating_sub(1) as usize) * self.rank_step
            + position * self.election
    }

    /// Ticks a main-site tie-breaker (main-site mode) waits without a
    /// leader before it campaigns as the last resort: after both members of
    /// the main core had their chance.
    pub fn tie_breaker_after(&self) -> usize {
        self.main_campaign_after(1) + self.main_campaign_jitter() + self.election
    }

    /// Ticks a witness waits without a leader before it campaigns as the last
    /// resort: after every survivable core of `max_rank` had its chance.
    pub fn witness_after(&self, max_rank: u32) -> usize {
        self.survivable_campaign_after(max_rank.max(1), 1) + 2 * self.election
    }

    /// Ticks of silence after which the pair standby asks the voters
    /// whether it could win a failover (a pre-vote with the transfer
    /// context, which deposes nobody): two heartbeats missed and a tick,
    /// at most the failover time. Asking this early lets the answers,
    /// which need a round trip to a quorum of the voters (a WAN one in
    /// witness mode), come in while the failover time runs out.
    pub fn failover_probe_after(&self) -> usize {
        (2 * self.heartbeat + 1).min(self.failover)
    }

    /// Converts ticks to milliseconds.
    pub fn ms(&self, ticks: usize) -> u64 {
        ticks as u64 * self.tick_ms
    }
}

/// An invalid [`Timers`] or [`HandBack`] value.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The tick is zero or not a whole number of milliseconds.
    #[error("tick must be a whole, non-zero number of milliseconds, got {tick:?}")]
    BadTick {
        /// The configured tick.
        tick: Duration,
    },
    /// The heartbeat interval is not shorter than the election timeout.
    #[error("heartbeat ({heartbeat:?}) must be shorter than the election timeout ({election:?}); raise `election` or lower `heartbeat`")]
    HeartbeatNotBelowElection {
        /// The heartbeat interval.
        heartbeat: Duration,
        /// The election timeout.
        election: Duration,
    },
    /// Failover detection must see at least two heartbeats go missing.
    #[error("failover ({failover:?}) must be at least twice the heartbeat ({heartbeat:?}) and below the election timeout ({election:?})")]
    FailoverOutOfRange {
        /// The failover detection time.
        failover: Duration,
        /// The heartbeat interval.
        heartbeat: Duration,
        /// The election timeout.
        election: Duration,
    },
    /// `survivable_after` must let the main site try its own elections first.
    #[error("survivable_after ({survivable_after:?}) must be at least twice the election timeout ({election:?}) so the main site can fail over first")]
    SurvivableTooEarly {
        /// The configured `survivable_after`.
        survivable_after: Duration,
        /// The election timeout.
        election: Duration,
    },
    /// A hand-back window with equal start and end.
    #[error("hand-back window {start} - {end} is empty; give different start and end times")]
    EmptyWindow {
        /// Window start.
        start: TimeOfDay,
        /// Window end.
        end: TimeOfDay,
    },
}

fn whole_ticks(d: Duration, tick_ms: u64) -> usize {
    let ms = d.as_millis() as u64;
    ms.div_ceil(tick_ms) as usize
}

impl Timers {
    /// Checks the timers and converts them to ticks.
    ///
    /// # Errors
    /// A [`PolicyError`] naming the inconsistent values.
    pub fn to_ticks(&self) -> Result<TickTimers, PolicyError> {
        let tick_ms = self.tick.as_millis() as u64;
        if tick_ms == 0 || Duration::from_millis(tick_ms) != self.tick {
            return Err(PolicyError::BadTick { tick: self.tick });
        }
        let t = TickTimers {
            tick_ms,
            heartbeat: whole_ticks(self.heartbeat, tick_ms).max(1),
            election: whole_ticks(self.election, tick_ms),
            failover: whole_ticks(self.failover, tick_ms),
            survivable_after: whole_ticks(self.survivable_after, tick_ms),
            rank_step: whole_ticks(self.rank_step, tick_ms),
            sync_wait: whole_ticks(self.sync_wait, tick_ms),
        };
        if t.election <= t.heartbeat {
            return Err(PolicyError::HeartbeatNotBelowElection {
                heartbeat: self.heartbeat,
                election: self.election,
            });
        }
        if t.failover < 2 * t.heartbeat || t.failover >= t.election {
            return Err(PolicyError::FailoverOutOfRange {
                failover: self.failover,
                heartbeat: self.heartbeat,
                election: self.election,
            });
        }
        if t.survivable_after < 2 * t.election {
            return Err(PolicyError::SurvivableTooEarly {
                survivable_after: self.survivable_after,
                election: self.election,
            });
        }
        Ok(t)
    }
}

/// A time of day (UTC), for hand-back windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TimeOfDay {
    /// Minutes since midnight, 0..1440.
    minutes: u32,
}

impl TimeOfDay {
    /// `hour:minute`, clamped into a day.
    pub fn hm(hour: u32, minute: u32) -> Self {
        Self {
            minutes: (hour.min(23) * 60 + minute.min(59)) % 1440,
        }
    }

    /// The time of day of a wall-clock instant given in milliseconds since the UNIX epoch.
    pub fn of_unix_ms(ms: u64) -> Self {
        Self {
            minutes: ((ms / 60_000) % 1440) as u32,
        }
    }

    /// Whether `self` lies in the window `[start, end)`; a window may wrap midnight.
    pub fn within(self, start: Self, end: Self) -> bool {
        if start <= end {
            start <= self && self < end
        } else {
            self >= start || self < end
        }
    }
}

impl std::fmt::Display for TimeOfDay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:02}:{:02}", self.minutes / 60, self.minutes % 60)
    }
}

/// When leadership returns to a more preferred site (the main site first,
/// then survivable cores by rank) once that site is reachable again.
///
/// Whatever the policy, hand-back never starts while the preferred member
/// lags the leader by more than [`HandBack::max_lag_entries`] (the freshness
/// gate, like MongoDB's priority takeover).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandBackPolicy {
    /// As soon as the preferred member is reachable and caught up.
    Immediate,
    /// Once the preferred member has been continuously reachable and caught
    /// up for this long. A link that flaps faster never moves leadership.
    AfterStable(Duration),
    /// Only inside a daily window (UTC), e.g. a maintenance window.
    Window {
        /// Window start (inclusive).
        start: TimeOfDay,
        /// Window end (exclusive); may be earlier than `start` to wrap midnight.
        end: TimeOfDay,
    },
    /// Only when an operator calls [`Node::hand_back`](crate::Node::hand_back).
    Manual,
}

/// Hand-back policy plus its gates and retry rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandBack {
    /// When to hand back. Defaults to `AfterStable(5 s)`.
    pub policy: HandBackPolicy,
    /// The freshness gate: the preferred member may lag the leader by at
    /// most this many entries when a hand-back starts. Defaults to 64.
    pub max_lag_entries: u64,
    /// Attempts at one target before giving up (`None`: retry until it
    /// lands or the policy stops allowing it). Defaults to `None`. An
    /// attempt fails when raft aborts the transfer or when the target's
    /// campaign loses (the leader stepped down and someone else leads);
    /// the count survives the leader losing and regaining leadership, and
    /// starts over for another target or when contact with the target is
    /// interrupted and restored. Once abandoned, an operator's
    /// [`Node::hand_back`](crate::Node::hand_back) still makes one more
    /// attempt.
    pub max_attempts: Option<u32>,
    /// Wait between a failed attempt and the next. Defaults to 250 ms.
    pub retry_after: Duration,
}

impl Default for HandBack {
    fn default() -> Self {
        Self {
            policy: HandBackPolicy::AfterStable(Duration::from_secs(5)),
            max_lag_entries: 64,
            max_attempts: None,
            retry_after: Duration::from_millis(250),
        }
    }
}

impl HandBack {
    /// Checks the policy.
    ///
    /// # Errors
    /// [`PolicyError::EmptyWindow`] for a window that is empty.
    pub fn validate(&self) -> Result<(), PolicyError> {
        if let HandBackPolicy::Window { start, end } = self.policy {
            if start == end {
                return Err(PolicyError::EmptyWindow { start, end });
            }
        }
        Ok(())
    }
}

/// A stable 64-bit digest: FNV-1a over a canonical encoding written out
/// field by field (numbers as 8 little-endian bytes, strings and lists
/// length-first), so two builds, or two releases of Rust, give the same
/// value for the same settings (std's `DefaultHasher` promises neither).
/// Not a defence against anyone forging a collision: members compare
/// fingerprints to catch misconfiguration, and are authenticated apart.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Digest(u64);

impl Digest {
    /// A digest of the section `name` (so equal contents of different
    /// sections never digest alike).
    pub(crate) fn new(name: &str) -> Self {
        Self(0xcbf2_9ce4_8422_2325).str(name)
    }

    fn bytes(mut self, bytes: &[u8]) -> Self {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
        self
    }

    /// Adds a number.
    pub(crate) fn u64(self, v: u64) -> Self {
        self.bytes(&v.to_le_bytes())
    }

    /// Adds a string, its length first.
    pub(crate) fn str(self, s: &str) -> Self {
        self.u64(s.len() as u64).bytes(s.as_bytes())
    }

    /// Adds a duration, in nanoseconds.
    pub(crate) fn duration(self, d: Duration) -> Self {
        self.u64(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    }

    /// The digest.
    pub(crate) fn finish(self) -> u64 {
        self.0
    }
}

impl Timers {
    /// A stable digest of every timer (see
    /// [`Topology::fingerprint`](crate::topology::Topology::fingerprint)):
    /// members whose timers differ refuse each other, since a standby
    /// judging its primary by another heartbeat, or two survivable members
    /// waiting different times, break the guarantees the timers give.
    pub fn fingerprint(&self) -> u64 {
        // Destructured so that a new timer cannot be left out unnoticed.
        let Self {
            tick,
            heartbeat,
            election,
            failover,
            survivable_after,
            rank_step,
            sync_wait,
        } = self;
        let d = [
            tick,
            heartbeat,
            election,
            failover,
            survivable_after,
            rank_step,
        ]
        .into_iter()
        .fold(Digest::new("timers"), |d, t| d.duration(*t));
        // Folded in only when set: the digest of every topology written
        // before `sync_wait` existed stays what it was, so members of an
        // older build still accept this one's hello.
        if *sync_wait == Self::default().sync_wait {
            d.finish()
        } else {
            d.duration(*sync_wait).finish()
        }
    }
}

impl HandBack {
    /// A stable digest of the hand-back policy and its gates (see
    /// [`Topology::fingerprint`](crate::topology::Topology::fingerprint)).
    pub fn fingerprint(&self) -> u64 {
        let Self {
            policy,
            max_lag_entries,
            max_attempts,
            retry_after,
        } = self;
        let d = Digest::new("hand-back");
        let d = match policy {
            HandBackPolicy::Immediate => d.u64(0),
            HandBackPolicy::AfterStable(t) => d.u64(1).duration(*t),
            HandBackPolicy::Window { start, end } => d
                .u64(2)
                .u64(u64::from(start.minutes))
                .u64(u64::from(end.minutes)),
            HandBackPolicy::Manual => d.u64(3),
        };
        let attempts = max_attempts.map_or(0, |n| u64::from(n) + 1);
        d.u64(*max_lag_entries)
            .u64(attempts)
            .duration(*retry_after)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let t = Timers::default().to_ticks().unwrap();
        assert_eq!(t.tick_ms, 5);
        assert_eq!(t.heartbeat, 2);
        assert_eq!(t.election, 40);
        assert_eq!(t.failover, 20);
        assert_eq!(t.failover_probe_after(), 5);
        assert_eq!(t.survivable_after, 400);
        assert!(t.witness_after(1) > t.survivable_campaign_after(1, 1));
    }

    #[test]
    fn rejects_inconsistent_timers() {
        let bad = Timers {
            heartbeat: Duration::from_millis(300),
            ..Timers::default()
        };
        assert!(matches!(
            bad.to_ticks(),
            Err(PolicyError::HeartbeatNotBelowElection { .. })
        ));
        let bad = Timers {
            failover: Duration::from_millis(10),
            ..Timers::default()
        };
        assert!(matches!(
            bad.to_ticks(),
            Err(PolicyError::FailoverOutOfRange { .. })
        ));
        let bad = Timers {
            survivable_after: Duration::from_millis(100),
            ..Timers::default()
        };
        assert!(matches!(
            bad.to_ticks(),
            Err(PolicyError::SurvivableTooEarly { .. })
        ));
        let bad = Timers {
            tick: Duration::from_micros(1500),
            ..Timers::default()
        };
        assert!(matches!(bad.to_ticks(), Err(PolicyError::BadTick { .. })));
    }

    #[test]
    fn windows_wrap_midnight() {
        let (s, e) = (TimeOfDay::hm(22, 0), TimeOfDay::hm(2, 0));
        assert!(TimeOfDay::hm(23, 30).within(s, e));
        assert!(TimeOfDay::hm(1, 0).within(s, e));
        assert!(!TimeOfDay::hm(12, 0).within(s, e));
        assert!(TimeOfDay::hm(12, 0).within(e, s));
        let hb = HandBack {
            policy: HandBackPolicy::Window { start: s, end: s },
            ..HandBack::default()
        };
        assert!(matches!(
            hb.validate(),
            Err(PolicyError::EmptyWindow { .. })
        ));
    }
}
