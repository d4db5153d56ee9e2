//! Hand-back under a steady load over a long WAN: the freshness gate must
//! open although more than `max_lag_entries` are always in flight, and the
//! write outage stays within what the transfer's path needs.

use std::time::Duration;

use survivable_core::events::Event;
use survivable_core::policy::{HandBackPolicy, Timers};
use survivable_core::topology::denver_paris;

use crate::support::*;

/// Witness mode with a WAN round trip of `rtt_ms` and a 2 s stability
/// window; the election timeout covers the WAN round trip (2.5 of them).
fn run(rtt_ms: u64, seed: u64) {
    let mut b = denver_paris();
    b.timers(Timers {
        election: Duration::from_millis((rtt_ms * 5 / 2).max(200)),
        ..Timers::default()
    })
    .hand_back(hand_back(HandBackPolicy::AfterStable(Duration::from_secs(
        2,
    ))));
    let mut sim = started_over(&b, seed, Duration::from_millis(rtt_ms));
    // 400 proposals/s from Denver and Paris: 80 in flight at 200 ms, 120 at
    // 300 ms, beyond the default max_lag_entries (64).
    let mut load = Load::new(&["denver", "paris"], Duration::from_micros(2_500));
    load.run(&mut sim, Duration::from_secs(1));
    sim.partition_sites(&["denver"], &["paris", "kansas"]);
    load.run(&mut sim, Duration::from_secs(4));
    let what = format!("rtt {rtt_ms} ms, seed {seed}");
    assert_eq!(
        sim.site_of(sim.leader().expect("Paris leads")),
        "paris",
        "{what}"
    );
    let healed = sim.now_us();
    sim.heal();
    load.run(&mut sim, Duration::from_secs(5));
    let attempt = (sim.events().iter())
        .find(|(t, _, e)| *t >= healed && matches!(e, Event::HandBackAttempt { .. }))
        .map(|(t, _, _)| *t);
    let attempt = attempt.unwrap_or_else(|| panic!("{what}: no hand-back attempt under load"));
    assert_eq!(sim.site_of(sim.leader().unwrap()), "denver", "{what}");
    // From the attempt: TimeoutNow (half a round trip), votes and the first
    // commit (a round trip each to Denver's nearest remote voter) is 2.5
    // round trips; the old leader's entries in flight keep committing for
    // at least half a round trip after the attempt. Plus a LAN round trip
    // on each side, a tick of proposal spacing and a tick for the transfer.
    let gap = sim
        .longest_commit_gap(attempt.saturating_sub(500_000), attempt + 2_000_000)
        .expect("commits around the hand-back");
    let bound_us = (2 * rtt_ms + 2 + 2 * 5) * 1000;
    assert!(
        gap <= bound_us,
        "{what}: write outage {gap} µs > {bound_us} µs"
    );
    settle(&mut sim);
    assert_acknowledged_applied(&sim, &load, sim.leader().unwrap());
    assert_clean(&mut sim);
}

#[test]
fn hand_back_happens_under_steady_load_over_a_200_ms_wan() {
    run(200, 1);
}

#[test]
fn hand_back_happens_under_steady_load_over_a_300_ms_wan() {
    run(300, 2);
}
