//! Who campaigns, and when: exact outputs of the election decisions.

use super::*;
use raft::eraftpb::{Message, MessageType};

use crate::node::probe::probe_takes_relay;
use crate::node::testkit::{main_core, survivable, timers, witness};
use crate::topology::NodeId;

const PRIMARY: NodeId = NodeId(1);
const STANDBY: NodeId = NodeId(2);

/// A standby following its primary, silent for `silent` ticks, whose log
/// took the primary's append in term 5.
fn standby_following(silent: usize) -> Election {
    Election {
        leader: Some(PRIMARY),
        since_leader: silent,
        synced_term: 5,
        ..Election::default()
    }
}

fn synced_log() -> LogSync {
    LogSync {
        term: 5,
        last_index: 100,
        leader_commit: 100,
    }
}

#[test]
fn main_core_primary_campaigns_first_with_jitter_and_standby_half_a_timeout_later() {
    let t = timers();
    let mode = QuorumMode::MainSite;
    assert_eq!(
        campaign_wait(&main_core(1, 0).role, false, mode, &t, 2),
        (20, true)
    );
    assert_eq!(
        campaign_wait(&main_core(2, 1).role, false, mode, &t, 2),
        (30, true)
    );
}

#[test]
fn survivable_core_waits_survivable_after_staggered_by_rank_and_position() {
    let t = timers();
    let mode = QuorumMode::MainSite;
    let wait =
        |rank, position| campaign_wait(&survivable(9, rank, position).role, false, mode, &t, 2);
    assert_eq!(wait(1, 0), (200, false));
    assert_eq!(wait(1, 1), (220, false));
    assert_eq!(wait(2, 0), (250, false));
    assert_eq!(wait(2, 1), (270, false));
}

#[test]
fn survivable_core_that_led_last_re_elects_like_a_main_core() {
    let t = timers();
    let role = survivable(3, 1, 1).role;
    assert_eq!(
        campaign_wait(&role, true, QuorumMode::MainSite, &t, 2),
        (30, true)
    );
}

#[test]
fn witness_waits_for_every_survivable_core_but_a_tie_breaker_only_for_the_main_core() {
    let t = timers();
    let role = witness(5).role;
    // survivable_campaign_after(2, 1) + 2 election timeouts = 270 + 40.
    assert_eq!(
        campaign_wait(&role, false, QuorumMode::Witness, &t, 2),
        (310, false)
    );
    // main_campaign_after(1) + jitter + one election timeout = 30 + 10 + 20.
    assert_eq!(
        campaign_wait(&role, false, QuorumMode::MainSite, &t, 2),
        (60, false)
    );
}

#[test]
fn standby_fails_over_after_the_failover_silence_only() {
    let t = timers();
    let e = standby_following(4);
    assert_eq!(
        e.failover(STANDBY, true, synced_log(), 100, &t),
        Failover::NotNow
    );
    let e = standby_following(5);
    assert_eq!(
        e.failover(STANDBY, true, synced_log(), 100, &t),
        Failover::Start(PRIMARY)
    );
}

#[test]
fn standby_campaigns_after_failover_silence_only_when_synced() {
    let t = timers();
    // Only heartbeats in this term: the log is not known to match.
    let mut e = standby_following(10);
    e.synced_term = 4;
    assert_eq!(
        e.failover(STANDBY, true, synced_log(), 100, &t),
        Failover::Decline(PRIMARY)
    );
    // Behind what the leader reported committed.
    let e = standby_following(10);
    let behind = LogSync {
        last_index: 99,
        ..synced_log()
    };
    assert_eq!(
        e.failover(STANDBY, true, behind, 100, &t),
        Failover::Decline(PRIMARY)
    );
    // Caught up, but was catching up less than an election timeout ago.
    let mut e = standby_following(10);
    e.catching_up_at = Some(81);
    assert_eq!(
        e.failover(STANDBY, true, synced_log(), 100, &t),
        Failover::Decline(PRIMARY)
    );
    e.catching_up_at = Some(80);
    assert_eq!(
        e.failover(STANDBY, true, synced_log(), 100, &t),
        Failover::Start(PRIMARY)
    );
}

#[test]
fn no_fast_failover_from_another_core_from_itself_or_twice_in_a_term() {
    let t = timers();
    let e = standby_following(10);
    assert_eq!(
        e.failover(STANDBY, false, synced_log(), 100, &t),
        Failover::NotNow,
        "the leader is not this member's partner"
    );
    assert_eq!(
        e.failover(PRIMARY, true, synced_log(), 100, &t),
        Failover::NotNow,
        "this member leads"
    );
    let mut e = standby_following(10);
    e.fast_failover_term = 5;
    assert_eq!(
        e.failover(STANDBY, true, synced_log(), 100, &t),
        Failover::NotNow,
        "one fast failover per term"
    );
    let e = Election {
        since_leader: 10,
        ..Election::default()
    };
    assert_eq!(
        e.failover(STANDBY, true, synced_log(), 100, &t),
        Failover::NotNow,
        "no leader known"
    );
}

#[test]
fn step_up_pulls_the_next_campaign_forward_once() {
    let mut e = Election {
        since_leader: 50,
        next_campaign: 200,
        step_up: Some(30),
        ..Election::default()
    };
    assert!(!e.campaign_due());
    assert_eq!(e.next_campaign, 80);
    assert_eq!(e.step_up, None);
    e.since_leader = 80;
    assert!(e.campaign_due());
    // A later step-up never pushes the campaign back.
    e.step_up = Some(500);
    assert!(e.campaign_due());
    assert_eq!(e.next_campaign, 80);
}

#[test]
fn priority_is_lowered_once_after_the_deadlock_wait() {
    let t = timers();
    let after = deadlock_after(&t, 2);
    assert_eq!(after, 310 + 80);
    let mut e = Election {
        since_leader: after - 1,
        ..Election::default()
    };
    assert!(!e.lowers_priority(after));
    e.since_leader = after;
    assert!(e.lowers_priority(after));
    e.priority_lowered = true;
    assert!(!e.lowers_priority(after));
    // Hearing the leader ends the spell and asks for the priority back.
    assert!(e.heard_leader());
    assert!(!e.priority_lowered);
    assert_eq!(e.since_leader, 0);
    assert!(!e.heard_leader());
}

#[test]
fn only_the_first_campaign_of_a_spell_is_reported_and_its_cause_follows_the_role() {
    let mut e = Election::default();
    assert!(e.count_campaign());
    assert!(!e.count_campaign());
    let _ = e.heard_leader();
    assert!(e.count_campaign());
    assert_eq!(
        campaign_cause(Some(&survivable(3, 2, 0).role)),
        LeadershipCause::Takeover { rank: 2 }
    );
    assert_eq!(
        campaign_cause(Some(&witness(5).role)),
        LeadershipCause::LastResort
    );
    assert_eq!(
        campaign_cause(Some(&main_core(1, 0).role)),
        LeadershipCause::Elected
    );
    assert_eq!(campaign_cause(None), LeadershipCause::Elected);
}

#[test]
fn survivable_member_steps_up_when_a_preferred_candidate_is_behind() {
    let t = timers();
    let me = survivable(3, 1, 1);
    let them = main_core(2, 1);
    let step = |ours, theirs, since| step_up_within(&me, &them, false, ours, theirs, since, &t, 2);
    // Behind by term, then by index: failover + election + quarter * position.
    assert_eq!(step((5, 100), (4, 200), 10), Some(5 + 20 + 5));
    assert_eq!(step((5, 100), (5, 99), 10), Some(30));
    // Leaderless for survivable_after already: only the stagger.
    assert_eq!(step((5, 100), (5, 99), 200), Some(5));
    // As fresh as ours: it can win, no step-up.
    assert_eq!(step((5, 100), (5, 100), 10), None);
    assert_eq!(step((5, 100), (6, 1), 10), None);
}

#[test]
fn no_step_up_for_a_less_preferred_candidate_a_leader_or_a_main_core_member() {
    let t = timers();
    let (ours, theirs) = ((5, 100), (4, 1));
    let rank2 = survivable(7, 2, 0);
    let rank1 = survivable(3, 1, 0);
    assert_eq!(
        step_up_within(&rank1, &rank2, false, ours, theirs, 0, &t, 2),
        None
    );
    assert_eq!(
        step_up_within(&rank2, &rank1, true, ours, theirs, 0, &t, 2),
        None
    );
    assert_eq!(
        step_up_within(
            &main_core(2, 1),
            &main_core(1, 0),
            false,
            ours,
            theirs,
            0,
            &t,
            2
        ),
        None,
        "same preference"
    );
    // A rank-2 primary: quarter * 2 * (rank - 1) after the restand wait.
    assert_eq!(
        step_up_within(&rank2, &rank1, false, ours, theirs, 0, &t, 2),
        Some(25 + 10)
    );
    // A witness goes after every survivable core's stagger.
    assert_eq!(
        step_up_within(&witness(5), &rank2, false, ours, theirs, 0, &t, 2),
        Some(25 + 5 * 5)
    );
}

/// Feeds ticks at the wall-clock times `times` (ms) to a standby whose
/// primary was heard just before the first of them, as the node's `tick`
/// does: the time of the tick on which a silence of `after` ticks is first
/// judged (a fast failover, a campaign, a takeover).
fn judged_at(times: impl IntoIterator<Item = u64>, after: usize) -> Option<u64> {
    let t = timers();
    let mut clock = crate::node::control::TickClock::default();
    let mut e = standby_following(0);
    e.heard_since_tick = true;
    for now in times {
        let periods = clock.advance(now, t.tick_ms);
        if periods == 0 {
            continue;
        }
        let judge = e.elapse(periods, false, periods > t.heartbeat as u64);
        if judge && e.since_leader >= after {
            return Some(now);
        }
    }
    None
}

#[test]
fn the_clock_counts_whole_periods_of_wall_time_and_carries_the_rest() {
    let mut c = crate::node::control::TickClock::default();
    assert_eq!(c.advance(1_000, 10), 1, "the first tick counts one");
    assert_eq!(c.advance(1_010, 10), 1);
    assert_eq!(c.advance(1_019, 10), 0, "early within a period: nothing");
    assert_eq!(c.advance(1_021, 10), 1, "the 9 ms carried over");
    assert_eq!(c.advance(1_075, 10), 5, "a late tick counts every period");
    assert_eq!(c.advance(1_080, 10), 1);
    assert_eq!(c.advance(500, 10), 1, "a clock stepped back counts one");
    assert_eq!(c.advance(510, 10), 1, "and counts on from there");
}

#[test]
fn timers_fire_on_elapsed_time_whatever_ticks_were_lost() {
    let t = timers();
    // On time (every 10 ms): the failover (5 ticks) is judged at 40 ms,
    // the first tick that counted the contact being the one at 0.
    assert_eq!(judged_at((0..).step_by(10), t.failover), Some(40));
    // Every other tick lost (starved): still 40 ms. Counting calls, it
    // took 80 ms.
    assert_eq!(judged_at((0..).step_by(20), t.failover), Some(40));
    // survivable_after (200 ticks, 2 s) with every other tick lost: on
    // time (the first tick at or after 1,990 ms, the silence counting from
    // the period before the tick at 0), where counting calls took 4 s.
    assert_eq!(
        judged_at((0..).step_by(20), t.survivable_after),
        Some(2_000)
    );
    // Two ticks of each three lost: every tick is 3 periods late, so
    // judging waits for the next one, which decides whatever its own
    // lateness: 2,040 ms (one late tick more), not the 6,000 ms of six
    // hundred calls.
    assert_eq!(
        judged_at((0..).step_by(30), t.survivable_after),
        Some(2_040)
    );
    // One stretch lost, 10 ms to 45 ms: the late tick at 45 ms (5 ticks
    // elapsed) defers judging to the next, at 50 ms; counting calls, 60 ms.
    let times = [0, 10, 45, 50, 60, 70];
    assert_eq!(judged_at(times, t.failover), Some(50));
}

#[test]
fn a_leader_heard_after_this_members_own_stall_was_not_silent() {
    let t = timers();
    let mut clock = crate::node::control::TickClock::default();
    let mut e = standby_following(0);
    assert!(e.elapse(clock.advance(0, t.tick_ms), false, false));
    assert_eq!(e.since_leader, 1);
    // This member stalls for 300 ms; the primary's heartbeats queued
    // meanwhile are taken in first, then the late tick comes.
    let _ = e.heard_leader();
    let periods = clock.advance(300, t.tick_ms);
    assert_eq!(periods, 30);
    assert!(
        !e.elapse(periods, false, true),
        "a late tick judges nothing"
    );
    assert_eq!(e.since_leader, 1, "heard within the last period");
    assert!(e.elapse(clock.advance(310, t.tick_ms), false, false));
    assert_eq!(e.since_leader, 2);
    // Nothing taken in before the next late tick (a transport thread
    // starved too): the silence is counted, but judged only on the next
    // tick, after what arrived in between.
    let periods = clock.advance(610, t.tick_ms);
    assert!(!e.elapse(periods, false, true));
    assert_eq!(e.since_leader, 32);
    let _ = e.heard_leader();
    assert!(e.elapse(clock.advance(620, t.tick_ms), false, false));
    assert_eq!(e.since_leader, 1);
    assert_eq!(
        e.failover(STANDBY, true, synced_log(), 62, &t),
        Failover::NotNow
    );
}

#[test]
fn a_gone_leader_is_probed_at_once_and_taken_over_after_a_heartbeat_of_silence() {
    let t = timers();
    // Not reported: the probe waits for two missed heartbeats and a tick.
    let e = standby_following(1);
    assert_eq!(
        e.failover(STANDBY, true, synced_log(), 100, &t),
        Failover::NotNow
    );
    assert_eq!(e.failover_after(PRIMARY, &t), 5);
    // Reported gone: probed from the first silent tick, campaign after a
    // heartbeat interval and a tick (3), not the failover time (5).
    let mut e = standby_following(1);
    assert!(e.refused(PRIMARY));
    assert_eq!(
        e.failover(STANDBY, true, synced_log(), 100, &t),
        Failover::Start(PRIMARY)
    );
    assert_eq!(e.failover_after(PRIMARY, &t), 3);
    assert_eq!(e.failover_after(NodeId(3), &t), 5, "only for the one gone");
    // Not in the very tick the leader was last heard.
    let mut e = standby_following(0);
    assert!(e.refused(PRIMARY));
    assert_eq!(
        e.failover(STANDBY, true, synced_log(), 100, &t),
        Failover::NotNow
    );
}

#[test]
fn gone_never_shortens_more_than_the_failover_time_allows() {
    let t = TickTimers {
        failover: 2,
        ..timers()
    };
    assert_eq!(gone_failover_after(&t), 2);
    assert_eq!(gone_failover_after(&timers()), 3);
}

#[test]
fn gone_waives_the_recent_catch_up_caution_but_not_a_log_behind() {
    let t = timers();
    let mut e = standby_following(10);
    e.catching_up_at = Some(95);
    assert_eq!(
        e.failover(STANDBY, true, synced_log(), 100, &t),
        Failover::Decline(PRIMARY)
    );
    assert!(e.refused(PRIMARY));
    assert_eq!(
        e.failover(STANDBY, true, synced_log(), 100, &t),
        Failover::Start(PRIMARY)
    );
    let behind = LogSync {
        last_index: 99,
        ..synced_log()
    };
    assert_eq!(
        e.failover(STANDBY, true, behind, 100, &t),
        Failover::Decline(PRIMARY)
    );
    e.synced_term = 4;
    assert_eq!(
        e.failover(STANDBY, true, synced_log(), 100, &t),
        Failover::Decline(PRIMARY),
        "only heartbeats in this term"
    );
}

#[test]
fn a_refusal_counts_only_for_the_leader_followed_and_only_until_it_is_heard() {
    let t = timers();
    let mut e = standby_following(2);
    assert!(!e.refused(NodeId(3)), "not the leader");
    assert_eq!(e.gone, None);
    assert!(e.refused(PRIMARY));
    assert!(!e.refused(PRIMARY), "recorded once");
    // The leader heard after the report (a message that was on its way, or
    // a flapping connection whose redial was refused for a moment): the
    // report is void, and the usual silence applies again.
    e.heard_leader();
    assert_eq!(e.gone, None);
    e.since_leader = 2;
    assert_eq!(
        e.failover(STANDBY, true, synced_log(), 100, &t),
        Failover::NotNow
    );
    // Another leader followed: void too.
    assert!(e.refused(PRIMARY));
    assert!(e.leader_seen(Some(NodeId(3))));
    assert_eq!(e.gone, None);
    assert!(e.leader_seen(None));
    assert!(!e.refused(PRIMARY), "no leader followed");
    // A leader is never told its own process is gone.
    let mut e = Election {
        role: StateRole::Leader,
        leader: Some(STANDBY),
        ..Election::default()
    };
    assert!(!e.refused(STANDBY));
}

#[test]
fn a_gone_leader_of_another_core_changes_nothing() {
    let t = timers();
    let mut e = standby_following(3);
    assert!(e.refused(PRIMARY));
    assert_eq!(
        e.failover(STANDBY, false, synced_log(), 100, &t),
        Failover::NotNow
    );
}

/// The relayed tail of `PRIMARY`'s term-5 log after entry 100 (term 5).
fn relay_of_primary(entries: &[(u64, u64)]) -> Message {
    let mut m = Message::default();
    m.set_msg_type(MessageType::MsgAppend);
    m.from = PRIMARY.0;
    m.to = STANDBY.0;
    m.term = 5;
    m.index = 100;
    m.log_term = 5;
    m.context = crate::node::relay::RELAY_CONTEXT.to_vec().into();
    let entries: Vec<raft::eraftpb::Entry> = entries
        .iter()
        .map(|&(index, term)| raft::eraftpb::Entry {
            index,
            term,
            ..Default::default()
        })
        .collect();
    m.set_entries(entries.into());
    m
}

/// A standby that probed its primary, reported gone, in term 5.
fn probing_gone_standby() -> Election {
    let mut e = standby_following(2);
    assert!(e.refused(PRIMARY));
    e.probed = true;
    e
}

#[test]
fn a_probing_standby_takes_the_gone_primarys_relayed_tail_as_its_follower() {
    let e = probing_gone_standby();
    let m = relay_of_primary(&[(101, 5), (102, 5)]);
    assert_eq!(
        probe_takes_relay(&e, StateRole::Follower, 5, true, &m),
        None
    );
}

#[test]
fn a_relayed_tail_is_refused_outside_a_probe_of_a_gone_primary() {
    let m = relay_of_primary(&[(101, 5)]);
    let refused =
        |e: &Election, role, term, votes| probe_takes_relay(e, role, term, votes, &m).is_some();
    let probing = probing_gone_standby();
    // No probe sent in this silence.
    let mut e = probing_gone_standby();
    e.probed = false;
    assert!(refused(&e, StateRole::Follower, 5, true));
    // The primary not reported gone (a stall, a one-way cut): as before.
    let mut e = probing_gone_standby();
    e.gone = None;
    assert!(refused(&e, StateRole::Follower, 5, true));
    // Following another leader than the one the relay names.
    let mut e = probing_gone_standby();
    e.leader = Some(NodeId(3));
    assert!(refused(&e, StateRole::Follower, 5, true));
    // A fast failover already run in this term.
    let mut e = probing_gone_standby();
    e.fast_failover_term = 5;
    assert!(refused(&e, StateRole::Follower, 5, true));
    // Not raft's follower any more (a campaign of its own under way).
    for role in [
        StateRole::PreCandidate,
        StateRole::Candidate,
        StateRole::Leader,
    ] {
        assert!(refused(&probing, role, 5, true), "{role:?}");
    }
    // Another term than the relay's, or a relayer that does not vote.
    assert!(refused(&probing, StateRole::Follower, 6, true));
    assert!(refused(&probing, StateRole::Follower, 5, false));
}

#[test]
fn a_malformed_relay_is_refused_by_the_probing_standby_too() {
    let e = probing_gone_standby();
    for bad in [
        relay_of_primary(&[]),
        relay_of_primary(&[(102, 5)]),
        relay_of_primary(&[(101, 4)]),
        relay_of_primary(&[(101, 6)]),
    ] {
        assert!(
            probe_takes_relay(&e, StateRole::Follower, 5, true, &bad).is_some(),
            "{:?}",
            bad.entries
        );
    }
}
