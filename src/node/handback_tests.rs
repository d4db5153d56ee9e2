//! When a hand-back is attempted, waits, or is abandoned; and to whom.

use std::time::Duration;

use super::*;

const T: NodeId = NodeId(1);
const OTHER: NodeId = NodeId(2);
const ME: NodeId = NodeId(5);
const HOUR_MS: u64 = 3_600_000;

#[test]
fn after_stable_policy_waits_for_the_stability_window() {
    let policy = HandBackPolicy::AfterStable(Duration::from_secs(10));
    assert!(!policy_allows(&policy, false, 9_999, 0));
    assert!(policy_allows(&policy, false, 10_000, 0));
    assert!(policy_allows(&policy, true, 0, 0), "an operator asked");
}

#[test]
fn window_policy_follows_the_wall_clock_and_may_wrap_midnight() {
    let night = HandBackPolicy::Window {
        start: TimeOfDay::hm(22, 0),
        end: TimeOfDay::hm(2, 0),
    };
    assert!(policy_allows(&night, false, 0, 23 * HOUR_MS));
    assert!(policy_allows(&night, false, 0, HOUR_MS));
    assert!(!policy_allows(&night, false, 0, 2 * HOUR_MS));
    assert!(!policy_allows(&night, false, 0, 12 * HOUR_MS));
}

#[test]
fn manual_policy_hands_back_only_when_forced_and_immediate_always() {
    assert!(!policy_allows(&HandBackPolicy::Manual, false, u64::MAX, 0));
    assert!(policy_allows(&HandBackPolicy::Manual, true, 0, 0));
    assert!(policy_allows(&HandBackPolicy::Immediate, false, 0, 0));
}

#[test]
fn attempts_are_counted_per_target_and_wait_for_the_retry_time() {
    let mut hb = HandBackState::default();
    assert_eq!(hb.next(T, 10, 100, true), Attempt::Start(1));
    assert_eq!(hb.in_flight, Some(T));
    hb.in_flight = None;
    assert!(!hb.failed(1, 100, 50, Some(3)));
    assert_eq!(hb.next(T, 10, 149, true), Attempt::Wait);
    assert_eq!(hb.next(T, 10, 150, false), Attempt::Wait, "policy says no");
    assert_eq!(hb.next(T, 10, 150, true), Attempt::Start(2));
}

#[test]
fn hand_back_is_abandoned_at_the_limit_until_contact_restarts() {
    let mut hb = HandBackState::default();
    assert_eq!(hb.next(T, 10, 100, true), Attempt::Start(1));
    assert!(!hb.failed(1, 100, 5, Some(2)));
    assert_eq!(hb.next(T, 10, 105, true), Attempt::Start(2));
    assert!(hb.failed(2, 105, 5, Some(2)), "the limit is hit");
    assert_eq!(hb.next(T, 10, 200, true), Attempt::Abandoned);
    // Contact with the target restarted: counted afresh.
    assert_eq!(hb.next(T, 190, 200, true), Attempt::Start(1));
}

#[test]
fn another_target_starts_the_count_over_and_an_operator_lifts_the_limit() {
    let mut hb = HandBackState::default();
    assert_eq!(hb.next(T, 10, 100, true), Attempt::Start(1));
    assert!(hb.failed(1, 100, 5, Some(1)));
    assert_eq!(hb.next(T, 10, 110, true), Attempt::Abandoned);
    assert_eq!(hb.next(OTHER, 10, 110, true), Attempt::Start(1));
    assert!(hb.failed(1, 110, 500, Some(1)));
    hb.ask();
    assert!(hb.manual);
    assert_eq!(hb.next(OTHER, 10, 111, true), Attempt::Start(2));
}

#[test]
fn hand_back_landing_on_its_target_completes_it() {
    let mut hb = HandBackState {
        handed: Some((T, 3)),
        manual: true,
        ..HandBackState::default()
    };
    assert_eq!(hb.landed(None, ME, 100, 20), Landed::NotYet);
    assert_eq!(
        hb.landed(Some(T), ME, 100, 20),
        Landed::Completed {
            target: T,
            attempts: 3
        }
    );
    assert!(!hb.manual);
    assert_eq!(hb.landed(Some(T), ME, 100, 20), Landed::NotYet, "once");
}

#[test]
fn winning_back_the_leadership_fails_the_attempt_but_keeps_the_count() {
    let mut hb = HandBackState {
        handed: Some((T, 1)),
        manual: true,
        attempts: 1,
        counted: Some((T, 10)),
        ..HandBackState::default()
    };
    assert_eq!(
        hb.landed(Some(ME), ME, 100, 20),
        Landed::Failed {
            target: T,
            attempt: 1
        }
    );
    assert!(hb.manual, "still asked for");
    assert_eq!(hb.rebase_until, Some(140));
    // The target's contact restarted during the failed election: rebased,
    // not counted afresh.
    assert_eq!(hb.next(T, 130, 140, true), Attempt::Start(2));
    // After the rebase window, a restart counts afresh again.
    hb.in_flight = None;
    assert_eq!(hb.next(T, 150, 141, true), Attempt::Start(1));
}

#[test]
fn another_member_winning_fails_the_attempt_and_drops_the_operator_request() {
    let mut hb = HandBackState {
        handed: Some((T, 2)),
        manual: true,
        ..HandBackState::default()
    };
    assert_eq!(
        hb.landed(Some(OTHER), ME, 100, 20),
        Landed::Failed {
            target: T,
            attempt: 2
        }
    );
    assert!(!hb.manual);
    assert_eq!(hb.rebase_until, None);
}

fn candidate(id: u64, preference: u32, position: usize, matched: u64) -> Candidate {
    Candidate {
        id: NodeId(id),
        preference,
        position,
        heard: 95,
        since: 40,
        matched,
    }
}

const GATE: Freshness = Freshness {
    last: 100,
    max_lag: 10,
    settled: 0,
    tick_no: 100,
    election: 20,
};

#[test]
fn target_is_the_most_preferred_fresh_reachable_voter() {
    let all = [
        candidate(3, 1, 0, 100),
        candidate(2, 0, 1, 95),
        candidate(1, 0, 0, 89),
    ];
    // The main primary lags 11 > 10: its standby, 5 behind, in contact 60 ticks.
    assert_eq!(
        pick_target(1, all.into_iter(), GATE),
        Some((NodeId(2), 60, 5))
    );
    let mut fresh = all;
    fresh[2].matched = 90;
    assert_eq!(
        pick_target(1, fresh.into_iter(), GATE),
        Some((NodeId(1), 60, 10))
    );
    // Silent for more than an election timeout: not a target.
    fresh[2].heard = 79;
    fresh[1].heard = 80;
    assert_eq!(
        pick_target(1, fresh.into_iter(), GATE),
        Some((NodeId(2), 60, 5))
    );
}

#[test]
fn no_target_for_the_main_core_or_among_less_preferred_voters() {
    let all = [candidate(3, 1, 0, 100), candidate(7, 2, 0, 100)];
    assert_eq!(pick_target(0, all.into_iter(), GATE), None);
    assert_eq!(pick_target(1, all.into_iter(), GATE), None);
    assert_eq!(
        pick_target(u32::MAX, all.into_iter(), GATE),
        Some((NodeId(3), 60, 0)),
        "a witness hands to any core"
    );
}

#[test]
fn a_member_holding_what_the_leader_had_half_an_election_ago_is_fresh() {
    // 400 proposals/s over a 200 ms round trip: 80 entries in flight.
    let gate = Freshness {
        last: 180,
        settled: 120,
        ..GATE
    };
    assert!(!gate.fresh(100), "behind what the leader had then");
    assert!(gate.fresh(120), "holds all but what is in flight");
    assert!(gate.fresh(175), "within max_lag");
    let no_history = Freshness { settled: 0, ..gate };
    assert!(
        !no_history.fresh(120),
        "no history: the count alone decides"
    );
}

#[test]
fn index_history_answers_as_of_a_past_tick_and_keeps_only_what_it_needs() {
    let mut h = IndexHistory::default();
    for tick in 1..=50 {
        h.note(tick, tick * 10, 20);
    }
    assert_eq!(h.as_of(30), 300);
    assert_eq!(h.as_of(49), 490);
    assert_eq!(h.as_of(10), 0, "pruned: older than the look back");
    assert!(h.samples.len() <= 22);
    h.note(50, 999, 20);
    assert_eq!(
        h.as_of(50),
        999,
        "a second note in one tick replaces the first"
    );
    h.clear();
    assert_eq!(h.as_of(50), 0);
}
