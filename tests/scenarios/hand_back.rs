//! Behaviour 6, hand-back (the design card: "hands back control when Denver
//! returns"): once the main site is back, caught up and stable per policy,
//! leadership moves to its preferred member; proposals in flight during the
//! move are queued and retried, never failed.

use std::time::Duration;

use survivable_core::policy::{HandBack, HandBackPolicy, TimeOfDay};
use survivable_core::sim::{KvStore, Sim};
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
    assert!(
        matches!(
            events[2],
            Event::HandBackAttempt {
                attempt: 2,
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
                attempts: 2
            }
        ),
        "{events:?}"
    );
    assert_eq!(sim.leader(), Some(CM01B));
    settle(&mut sim);
    assert!(sim.commits().iter().all(|c| c.outcome.result.is_ok()));
    assert_clean(&mut sim);
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
    let events = attempt_events(&sim, healed);
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
