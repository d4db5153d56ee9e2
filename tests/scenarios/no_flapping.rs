//! Behaviour 7, no flapping: a WAN link that flaps faster than the
//! stability window never moves leadership back and forth; control goes
//! home once, after the link has been steady for the whole window.

use std::time::Duration;

use survivable_core::policy::HandBackPolicy;
use survivable_core::sim::scenarios::no_flapping::{self, NoFlapping};
use survivable_core::sim::scenarios::SiteCut;

use crate::support::*;

const STABLE: Duration = Duration::from_secs(5);

fn flapping(up: Duration, down: Duration, cycles: u64, seed: u64) {
    let mut b = denver_paris();
    b.hand_back(hand_back(HandBackPolicy::AfterStable(STABLE)));
    let mut sim = started(&b, seed);
    let mut load = Load::new(&["denver", "paris"], Duration::from_millis(10));
    load.run(&mut sim, Duration::from_secs(1));
    let plan = NoFlapping {
        cut: SiteCut::new(&["denver"], &["paris", "kansas"]),
        cut_for: Duration::from_secs(3),
        up,
        down,
        flaps: cycles,
        steady_for: STABLE + Duration::from_secs(2),
    };
    let out = no_flapping::run(&mut sim, &plan, |s, d| load.run(s, d));
    assert_eq!(out.leader_after_cut, Some(CM02A));
    assert_eq!(
        out.hand_back_attempts_while_flapping, 0,
        "a hand-back started while the link flapped"
    );
    assert_eq!(out.leader_at_steady, Some(CM02A));
    // Exactly two moves: the takeover, and one hand-back after the window.
    let moves = &out.moves;
    assert_eq!(moves.len(), 2, "{moves:?}");
    assert_eq!(moves[0].1, CM02A);
    assert_eq!(moves[1].1, CM01A);
    assert!(moves[1].0 >= out.steady_at_us + STABLE.as_micros() as u64);
    settle(&mut sim);
    assert!(sim.commits().iter().all(|c| c.outcome.result.is_ok()));
    assert_clean(&mut sim);
}

#[test]
fn a_slowly_flapping_wan_never_moves_leadership() {
    // Up 3 s, down 1 s: shorter than the 5 s window every time.
    flapping(Duration::from_secs(3), Duration::from_secs(1), 5, 1);
}

#[test]
fn a_fast_flapping_wan_never_moves_leadership() {
    // Up 400 ms, down 100 ms, for 20 s.
    flapping(
        Duration::from_millis(400),
        Duration::from_millis(100),
        40,
        2,
    );
}
