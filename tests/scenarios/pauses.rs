//! Stop-the-world pauses (garbage collection, a stalled disk, SIGSTOP):
//! a primary that freezes longer than the failover time is replaced by its
//! standby; one that freezes briefly costs little; nothing committed is
//! lost either way.

use std::time::Duration;

use crate::support::*;

fn pause_primary(ms: u64, seed: u64) -> (u64, usize) {
    let mut sim = started(&denver_paris(), seed);
    let mut load = Load::new(&["denver", "paris"], Duration::from_millis(2));
    load.run(&mut sim, Duration::from_secs(1));
    let t0 = sim.now_us();
    sim.pause(CM01A);
    load.run(&mut sim, Duration::from_millis(ms));
    sim.resume(CM01A);
    load.run(&mut sim, Duration::from_secs(3));
    settle(&mut sim);
    let outage = sim
        .longest_commit_gap(t0.saturating_sub(50_000), t0 + 3_000_000)
        .unwrap_or(u64::MAX)
        / 1000;
    let moves = leaders_since(&sim, t0).len();
    assert!(sim.commits().iter().all(|c| c.outcome.result.is_ok()));
    assert_acknowledged_applied(&sim, &load, CM02A);
    assert_clean(&mut sim);
    (outage, moves)
}

#[test]
fn a_short_pause_moves_nothing() {
    for seed in 1..=3 {
        let (_, moves) = pause_primary(20, seed);
        assert_eq!(moves, 0);
    }
}

#[test]
fn a_long_pause_fails_over_once() {
    for seed in 1..=3 {
        for ms in [50, 150, 1_000] {
            let (outage, moves) = pause_primary(ms, seed);
            assert_eq!(moves, 1, "pause {ms} ms, seed {seed}");
            assert!(
                outage <= 300,
                "pause {ms} ms, seed {seed}: outage {outage} ms"
            );
        }
    }
}
