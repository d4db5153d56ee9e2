//! Behaviour 6, hand-back (the design card: "hands back control when Denver
//! returns"): once the main site is back, caught up and stable per policy,
//! leadership moves to its preferred member; proposals in flight during the
//! move are queued and retried, never failed.

use std::time::Duration;

use survivable_core::policy::{HandBack, HandBackPolicy, TimeOfDay};
use survivable_core::sim::{KvStore, Sim};
use survivable_core::topology::{denver_paris_two_site, NodeId};
use survivable_core::{Event, HandBackError};

use crate::support::*;

/// Denver is cut off, Paris takes over, the WAN heals. Returns the heal time.
fn paris_leads_then_heal(hb: HandBack, seed: u64) -> (Sim<KvStore>, Load, u64) {
    let mut b = denver_paris();
    b.hand_back(hb);
    let mut sim = Sim::builder(build(&b))
        .seed(seed)
        .build(|_| KvStore::default());
    assert!(sim.run_until(Duration::from_secs(3), |s| s.leader() == Some(CM01A)));
    let mut load = Load::new(&["denver", "paris"], Duration::from_millis(5));
    load.run(&mut sim, Duration::from_secs(1));
    sim.partition_sites(&["denver"], &["paris", "kansas"]);
    load.run(&mut sim, Duration::from_secs(3));
    assert_eq!(sim.leader(), Some(CM02A));
    sim.heal();
    let healed = sim.now_us();
    (sim, load, healed)
}

fn attempts_since(sim: &Sim<KvStore>, t0: u64) -> Vec<(u64, Event)> {
    events_since(sim, t0, |e| {
        matches!(
            e,
            Event::HandBackAttempt { .. }
                | Event::HandBackFailed { .. }
                | Event::HandBackCompleted { .. }
                | Event::HandBackAbandoned { .. }
        )
    })
    .map(|(t, _, e)| (*t, e.clone()))
    .collect()
}

fn attempt_events(sim: &Sim<KvStore>, t0: u64) -> Vec<Event> {
    attempts_since(sim, t0)
        .into_iter()
        .map(|(_, e)| e)
        .collect()
}

/// Runs until the first hand-back attempt after `t0` (at most 2 s).
fn run_until_first_attempt(sim: &mut Sim<KvStore>, t0: u64) {
    let seen = sim.run_until(Duration::from_secs(2), |s| {
        s.events()
            .iter()
            .any(|(t, _, e)| *t >= t0 && matches!(e, Event::HandBackAttempt { .. }))
    });
    assert!(seen, "no hand-back attempt");
}

/// The longest stretch without any commit in `[from, to]` µs, in ms.
fn write_outage_ms(sim: &Sim<KvStore>, from: u64, to: u64) -> u64 {
    sim.longest_commit_gap(from, to)
        .map_or(u64::MAX, |us| us / 1000)
}

#[test]
fn after_stable_waits_then_hands_back_without_failing_a_proposal() {
    let stable = Duration::from_secs(5);
    for seed in 1..=3 {
        let (mut sim, mut load, healed) =
            paris_leads_then_heal(hand_back(HandBackPolicy::AfterStable(stable)), seed);
        load.run(&mut sim, stable - Duration::from_millis(100));
        assert!(
            attempts_since(&sim, healed).is_empty(),
            "handed back before the window"
        );
        assert_eq!(sim.leader(), Some(CM02A));
        load.run(&mut sim, Duration::from_secs(2));
        assert_eq!(sim.leader(), Some(CM01A), "seed {seed}");
        let events = attempts_since(&sim, healed);
        let Event::HandBackAttempt {
            attempt: 1,
            target,
            lag,
        } = &events[0].1
        else {
            panic!("{events:?}")
        };
        assert_eq!(*target, CM01A);
        assert!(*lag <= HandBack::default().max_lag_entries);
        assert!(matches!(
            events.last().unwrap().1,
            Event::HandBackCompleted {
                target: CM01A,
                attempts: 1
            }
        ));
        let started = events[0].0;
        assert!(started >= healed + stable.as_micros() as u64);
        // Writes pause for at most 2 WAN round trips, and nothing fails.
        let outage = write_outage_ms(&sim, started - 100_000, started + 1_000_000);
        assert!(
            outage <= 2 * WAN_RTT_MS,
            "seed {seed}: write outage {outage} ms"
        );
        settle(&mut sim);
        assert_eq!(load.refused, 0);
        assert!(sim.commits().iter().all(|c| c.outcome.result.is_ok()));
        assert_eq!(sim.commits().len(), load.proposed.len());
        assert_acknowledged_applied(&sim, &load, CM01A);
        assert_clean(&mut sim);
    }
}

#[test]
fn immediate_hands_back_as_soon_as_denver_is_caught_up() {
    let (mut sim, mut load, healed) =
        paris_leads_then_heal(hand_back(HandBackPolicy::Immediate), 4);
    load.run(&mut sim, Duration::from_secs(1));
    assert_eq!(sim.leader(), Some(CM01A));
    let first = attempts_since(&sim, healed)[0].0;
    assert!(
        first - healed <= 500_000,
        "took {} ms",
        (first - healed) / 1000
    );
    settle(&mut sim);
    assert!(sim.commits().iter().all(|c| c.outcome.result.is_ok()));
    assert_clean(&mut sim);
}

#[test]
fn window_hands_back_only_inside_the_window() {
    // Virtual time starts at 00:00:00 UTC; the window opens at 00:01.
    let policy = HandBackPolicy::Window {
        start: TimeOfDay::hm(0, 1),
        end: TimeOfDay::hm(0, 30),
    };
    let (mut sim, mut load, healed) = paris_leads_then_heal(hand_back(policy), 5);
    load.run(&mut sim, Duration::from_secs(50));
    assert!(sim.now_ms() < 60_000);
    assert!(attempts_since(&sim, healed).is_empty());
    assert_eq!(sim.leader(), Some(CM02A));
    load.run(&mut sim, Duration::from_secs(12));
    assert_eq!(sim.leader(), Some(CM01A));
    let first = attempts_since(&sim, healed)[0].0;
    assert!(first >= 60_000_000, "attempt at {} ms", first / 1000);
    settle(&mut sim);
    assert_clean(&mut sim);
}

#[test]
fn manual_waits_for_the_operator() {
    let (mut sim, mut load, healed) = paris_leads_then_heal(hand_back(HandBackPolicy::Manual), 6);
    load.run(&mut sim, Duration::from_secs(20));
    assert!(attempts_since(&sim, healed).is_empty());
    assert_eq!(sim.leader(), Some(CM02A));
    // Asked at a follower: the error names the leader.
    assert_eq!(
        sim.node_mut(CM01A).unwrap().hand_back(),
        Err(HandBackError::NotLeader {
            leader: Some(CM02A)
        })
    );
    sim.node_mut(CM02A).unwrap().hand_back().unwrap();
    sim.flush(CM02A);
    load.run(&mut sim, Duration::from_secs(1));
    assert_eq!(sim.leader(), Some(CM01A));
    // The main site's leader has nothing to hand back.
    assert_eq!(
        sim.node_mut(CM01A).unwrap().hand_back(),
        Err(HandBackError::AlreadyPreferred)
    );
    settle(&mut sim);
    assert!(sim.commits().iter().all(|c| c.outcome.result.is_ok()));
    assert_clean(&mut sim);
}

#[test]
fn a_failed_transfer_is_retried_and_every_attempt_reported() {
    let (mut sim, mut load, healed) =
        paris_leads_then_heal(hand_back(HandBackPolicy::Immediate), 7);
    // The target dies the moment the first attempt starts.
    run_until_first_attempt(&mut sim, healed);
    sim.crash(CM01A);
    load.run(&mut sim, Duration::from_secs(3));
    let events = attempt_events(&sim, healed);
    assert!(
        matches!(
            events[0],
            Event::HandBackAttempt {
                attempt: 1,
                target: CM01A,
                ..
            }
        ),
        "{events:?}"
    );
    assert!(
        matches!(
            events[1],
            Event::HandBackFailed {
                attempt: 1,
                target: CM01A
            }
        ),
        "{events:?}"
    );
    // Attempts are counted per target: CM01b's is its first.
    assert!(
        matches!(
            events[2],
            Event::HandBackAttempt {
                attempt: 1,
                target: CM01B,
                ..
            }
        ),
        "{events:?}"
    );
    assert!(
        matches!(
            events[3],
            Event::HandBackCompleted {
                target: CM01B,
                attempts: 1
            }
        ),
        "{events:?}"
    );
    assert_eq!(sim.leader(), Some(CM01B));
    settle(&mut sim);
    assert!(sim.commits().iter().all(|c| c.outcome.result.is_ok()));
    assert_clean(&mut sim);
}

/// Since `t0`: one hand-back attempt at CM01a, failed, then abandoned at
/// the limit of one.
fn assert_one_attempt_failed_and_abandoned(sim: &Sim<KvStore>, t0: u64) {
    let events = attempt_events(sim, t0);
    assert!(
        matches!(
            events.as_slice(),
            [
                Event::HandBackAttempt {
                    attempt: 1,
                    target: CM01A,
                    ..
                },
                Event::HandBackFailed {
                    attempt: 1,
                    target: CM01A
                },
                Event::HandBackAbandoned {
                    target: CM01A,
                    attempts: 1
                },
            ]
        ),
        "{events:?}"
    );
}

#[test]
fn the_attempt_limit_abandons_until_contact_is_restored() {
    let hb = HandBack {
        policy: HandBackPolicy::Immediate,
        max_attempts: Some(1),
        ..HandBack::default()
    };
    let (mut sim, mut load, healed) = paris_leads_then_heal(hb, 8);
    // Only CM01a can take control back; it is cut off the moment it is asked.
    sim.crash(CM01B);
    run_until_first_attempt(&mut sim, healed);
    sim.isolate(CM01A);
    load.run(&mut sim, Duration::from_secs(2));
    assert_one_attempt_failed_and_abandoned(&sim, healed);
    assert_eq!(sim.leader(), Some(CM02A));
    // Contact with CM01a is restored: that re-arms the hand-back.
    let t1 = sim.now_us();
    sim.heal();
    load.run(&mut sim, Duration::from_secs(2));
    assert_eq!(sim.leader(), Some(CM01A));
    let events = attempt_events(&sim, t1);
    assert!(
        matches!(
            events.as_slice(),
            [
                Event::HandBackAttempt {
                    attempt: 1,
                    target: CM01A,
                    ..
                },
                Event::HandBackCompleted {
                    target: CM01A,
                    attempts: 1
                },
            ]
        ),
        "{events:?}"
    );
    settle(&mut sim);
    assert_clean(&mut sim);
}

/// The target takes the transfer and campaigns, deposing the leader, but
/// its votes are lost: someone else leads. That attempt failed too, and
/// counts toward the limit however leadership comes back.
#[test]
fn a_campaign_lost_after_the_leader_stepped_down_counts_toward_the_limit() {
    let hb = HandBack {
        policy: HandBackPolicy::Immediate,
        max_attempts: Some(1),
        ..HandBack::default()
    };
    let (mut sim, mut load, healed) = paris_leads_then_heal(hb, 10);
    // Only CM01a can take control back.
    sim.crash(CM01B);
    run_until_first_attempt(&mut sim, healed);
    // From now on CM01a reaches only CM02a, the leader it deposes: its
    // campaign gets two of the five votes and fails.
    for to in [CM02B, W1] {
        sim.set_link_loss(CM01A, to, 1.0);
    }
    load.run(&mut sim, Duration::from_secs(3));
    assert!(
        events_since(&sim, healed, |e| matches!(e, Event::SteppedDown { .. }))
            .any(|(_, id, _)| *id == CM02A),
        "CM02a stepped down for CM01a's campaign"
    );
    assert_eq!(sim.leader(), Some(CM02A), "CM02a leads again");
    assert_one_attempt_failed_and_abandoned(&sim, healed);
    // The limit holds while CM01a stays in contact (its election's silence
    // is no interruption); an operator can still ask.
    sim.restore_links();
    load.run(&mut sim, Duration::from_secs(2));
    assert_eq!(attempt_events(&sim, healed).len(), 3);
    assert_eq!(sim.leader(), Some(CM02A));
    let asked = sim.now_us();
    sim.node_mut(CM02A).unwrap().hand_back().unwrap();
    sim.flush(CM02A);
    load.run(&mut sim, Duration::from_secs(1));
    assert_eq!(sim.leader(), Some(CM01A));
    assert!(
        matches!(
            attempt_events(&sim, asked).as_slice(),
            [
                Event::HandBackAttempt {
                    attempt: 2,
                    target: CM01A,
                    ..
                },
                Event::HandBackCompleted {
                    target: CM01A,
                    attempts: 2
                },
            ]
        ),
        "{:?}",
        attempt_events(&sim, asked)
    );
    settle(&mut sim);
    assert!(sim.commits().iter().all(|c| c.outcome.result.is_ok()));
    assert_clean(&mut sim);
}

#[test]
fn the_freshness_gate_holds_back_a_lagging_main_site() {
    let max_lag = 20;
    let hb = HandBack {
        policy: HandBackPolicy::Immediate,
        max_lag_entries: max_lag,
        ..HandBack::default()
    };
    let (mut sim, _, healed) = paris_leads_then_heal(hb, 9);
    // A slower WAN to Denver (160 ms round trip) under a heavy load (one
    // proposal a millisecond): Denver lags by over 100 entries all along.
    for d in [CM01A, CM01B] {
        for p in [CM02A, CM02B, W1] {
            sim.set_link_rtt(d, p, Duration::from_millis(160));
        }
    }
    let mut heavy = Load::new(&["paris"], Duration::from_millis(1));
    heavy.run(&mut sim, Duration::from_secs(5));
    let attempts: Vec<(u64, Event)> = attempts_since(&sim, healed);
    assert!(attempts.is_empty(), "{attempts:?}");
    assert_eq!(sim.leader(), Some(CM02A));
    // The load stops: Denver catches up and control goes back.
    sim.run_for(Duration::from_secs(3));
    assert!(
        sim.leader().is_some_and(|l| sim.site_of(l) == "denver"),
        "{}",
        sim.trace()
            .iter()
            .rev()
            .take(30)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    for (_, e) in attempts_since(&sim, healed) {
        if let Event::HandBackAttempt { lag, .. } = e {
            assert!(lag <= max_lag);
        }
    }
    settle(&mut sim);
    assert_clean(&mut sim);
}

/// Main-site mode: Denver is cut off and Paris activates an epoch of its
/// own; the WAN heals, Denver's epoch is reconciled into Paris's and
/// Denver's members rejoin it as learners. Returns the heal time.
fn paris_epoch_then_heal(policy: HandBackPolicy, seed: u64) -> (Sim<KvStore>, Load, u64) {
    let mut b = denver_paris_two_site();
    b.hand_back(hand_back(policy));
    let mut sim = Sim::builder(build(&b))
        .seed(seed)
        .build(|_| KvStore::default());
    assert!(sim.run_until(Duration::from_secs(3), |s| s.leader() == Some(CM01A)));
    let mut load = Load::new(&["denver", "paris"], Duration::from_millis(10));
    load.run(&mut sim, Duration::from_secs(1));
    sim.partition_sites(&["denver"], &["paris"]);
    load.run(&mut sim, Duration::from_secs(3));
    assert_eq!(sim.leader(), Some(CM02A));
    sim.heal();
    let healed = sim.now_us();
    (sim, load, healed)
}

const DENVER_VOTERS: [NodeId; 3] = [CM01A, CM01B, W1];

/// Whether control is home: a member of Denver's core leads, with all of
/// Denver's voters (one that rejoined after control came home included)
/// and Paris learning.
fn home(sim: &Sim<KvStore>) -> bool {
    sim.leader()
        .filter(|&l| l == CM01A || l == CM01B)
        .and_then(|l| sim.node(l))
        .is_some_and(|n| n.voters() == DENVER_VOTERS && n.learners() == [CM02A, CM02B])
}

/// Runs the load until control is home, at most `limit`; whether it came.
fn run_until_home(sim: &mut Sim<KvStore>, load: &mut Load, limit: Duration) -> bool {
    let end = sim.now_us() + limit.as_micros() as u64;
    while sim.now_us() < end {
        if home(sim) {
            return true;
        }
        load.run(sim, Duration::from_millis(100));
    }
    home(sim)
}

/// When Denver's members were made voters again since `t0` (µs), if they were.
fn denver_promoted_at(sim: &Sim<KvStore>, t0: u64) -> Option<u64> {
    events_since(sim, t0, |e| matches!(e, Event::MemberPromoted { .. }))
        .find(|(_, _, e)| matches!(e, Event::MemberPromoted { id } if DENVER_VOTERS.contains(id)))
        .map(|(t, _, _)| *t)
}

/// Control stays with Paris, though Denver's members rejoined its epoch.
fn assert_paris_keeps_control(sim: &Sim<KvStore>, healed: u64) {
    assert_eq!(sim.leader(), Some(CM02A));
    assert_eq!(denver_promoted_at(sim, healed), None);
    assert!(attempts_since(sim, healed).is_empty());
    let paris = sim.node(CM02A).unwrap();
    for id in DENVER_VOTERS {
        assert!(paris.learners().contains(&id), "{id} rejoined as a learner");
        assert_eq!(sim.node(id).unwrap().epoch(), paris.epoch());
    }
}

fn assert_home_and_clean(sim: &mut Sim<KvStore>, load: &Load) {
    settle(sim);
    assert!(home(sim));
    assert_eq!(load.refused, 0);
    assert!(sim.commits().iter().all(|c| c.outcome.result.is_ok()));
    assert_acknowledged_applied(sim, load, CM01A);
    assert_acknowledged_applied(sim, load, CM02B);
    assert_clean(sim);
}

#[test]
fn main_site_mode_immediate_hands_back_as_soon_as_denver_rejoined() {
    let (mut sim, mut load, healed) = paris_epoch_then_heal(HandBackPolicy::Immediate, 11);
    assert!(run_until_home(&mut sim, &mut load, Duration::from_secs(10)));
    let promoted = denver_promoted_at(&sim, healed).expect("Denver made voters again");
    let first = attempts_since(&sim, healed)[0].0;
    assert!(first >= promoted);
    // No stability wait: well under the default five seconds.
    assert!(
        first - healed < 3_000_000,
        "first attempt {} ms after the heal",
        (first - healed) / 1000
    );
    assert_home_and_clean(&mut sim, &load);
}

#[test]
fn main_site_mode_window_hands_back_only_inside_the_window() {
    // Virtual time starts at 00:00:00 UTC; the window opens at 00:01.
    let policy = HandBackPolicy::Window {
        start: TimeOfDay::hm(0, 1),
        end: TimeOfDay::hm(0, 30),
    };
    let (mut sim, mut load, healed) = paris_epoch_then_heal(policy, 12);
    load.run(&mut sim, Duration::from_secs(50));
    assert!(sim.now_ms() < 60_000);
    assert_paris_keeps_control(&sim, healed);
    assert!(run_until_home(&mut sim, &mut load, Duration::from_secs(15)));
    let promoted = denver_promoted_at(&sim, healed).expect("Denver made voters again");
    assert!(promoted >= 60_000_000, "promoted at {} ms", promoted / 1000);
    assert!(attempts_since(&sim, healed)[0].0 >= 60_000_000);
    assert_home_and_clean(&mut sim, &load);
}

#[test]
fn main_site_mode_manual_waits_for_the_operator() {
    let (mut sim, mut load, healed) = paris_epoch_then_heal(HandBackPolicy::Manual, 13);
    load.run(&mut sim, Duration::from_secs(20));
    assert_paris_keeps_control(&sim, healed);
    // Asked at a rejoined Denver member: the error names the leader.
    assert_eq!(
        sim.node_mut(CM01A).unwrap().hand_back(),
        Err(HandBackError::NotLeader {
            leader: Some(CM02A)
        })
    );
    let asked = sim.now_us();
    sim.node_mut(CM02A).unwrap().hand_back().unwrap();
    sim.flush(CM02A);
    assert!(run_until_home(&mut sim, &mut load, Duration::from_secs(3)));
    assert!(denver_promoted_at(&sim, healed).is_some_and(|t| t >= asked));
    assert!(matches!(
        attempt_events(&sim, asked).last(),
        Some(Event::HandBackCompleted { target: CM01A, .. })
    ));
    assert_eq!(
        sim.node_mut(CM01A).unwrap().hand_back(),
        Err(HandBackError::AlreadyPreferred)
    );
    assert_home_and_clean(&mut sim, &load);
}
