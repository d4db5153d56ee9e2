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

/// A standby just back from a crash knows its leader from the first
/// heartbeat, well before its log has caught up. If the primary freezes
/// then, the standby's fast failover would be hopeless (everyone refuses
/// its stale log) yet depose the primary with its higher term and hand
/// the election to Paris: it must leave a short freeze alone.
#[test]
fn a_standby_still_catching_up_does_not_depose_a_frozen_primary() {
    for seed in 1..=3 {
        let mut sim = started(&denver_paris(), seed);
        let mut load = Load::new(&["denver", "paris"], Duration::from_millis(2));
        load.run(&mut sim, Duration::from_secs(1));
        sim.crash(CM01B);
        load.run(&mut sim, Duration::from_secs(1));
        sim.restart(CM01B);
        let knows_leader = sim.run_until(Duration::from_secs(1), |s| {
            s.node(CM01B)
                .is_some_and(|n| n.status().leader == Some(CM01A))
        });
        assert!(knows_leader, "seed {seed}");
        let (behind, commit) = {
            let n = sim.node(CM01B).expect("restarted");
            let l = sim.node(CM01A).expect("up");
            (n.status().commit, l.status().commit)
        };
        assert!(
            behind < commit,
            "seed {seed}: the standby caught up already"
        );
        let t0 = sim.now_us();
        sim.pause(CM01A);
        load.run(&mut sim, Duration::from_millis(150));
        sim.resume(CM01A);
        load.run(&mut sim, Duration::from_secs(2));
        settle(&mut sim);
        assert_eq!(leaders_since(&sim, t0), [], "seed {seed}");
        assert_acknowledged_applied(&sim, &load, CM01B);
        assert_clean(&mut sim);
    }
}
