//! Stop-the-world pauses (garbage collection, a stalled disk, SIGSTOP):
//! a primary that freezes longer than the failover time is replaced by its
//! standby; one that freezes briefly costs little; nothing committed is
//! lost either way.

use std::time::Duration;

use survivable_core::policy::Timers;
use survivable_core::topology::NodeId;

use crate::duplication_failover::failover_budget_ms;
use crate::support::*;

/// Load at every site, `who` frozen for `ms`, then three seconds more: the
/// longest commit gap around the pause (ms) and the leadership changes.
fn pause(who: &[NodeId], ms: u64, seed: u64) -> (u64, usize) {
    let mut sim = started(&denver_paris(), seed);
    let mut load = Load::new(&["denver", "paris", "kansas"], Duration::from_millis(2));
    load.run(&mut sim, Duration::from_secs(1));
    let t0 = sim.now_us();
    for &id in who {
        sim.pause(id);
    }
    load.run(&mut sim, Duration::from_millis(ms));
    for &id in who {
        sim.resume(id);
    }
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

/// The longest pause of the primary that its standby must sit out: the
/// standby hears a heartbeat at most a heartbeat interval before the
/// freeze and the first one after it a tick after (the resumed primary's
/// first tick sends one at once), so it sees at most the pause + a
/// heartbeat interval + a tick + the LAN, and it fails over only after
/// the failover time: 100 - 10 - 5 - 1 = 84 ms at the defaults.
fn longest_harmless_pause_ms() -> u64 {
    let t = Timers::default().to_ticks().expect("default timers");
    t.ms(t.failover) - t.ms(t.heartbeat) - t.tick_ms - 1
}

#[test]
fn a_primary_pause_shorter_than_the_failover_time_moves_nothing() {
    let longest = longest_harmless_pause_ms();
    for seed in 1..=3 {
        for ms in [20, 50, longest] {
            let (_, moves) = pause(&[CM01A], ms, seed);
            assert_eq!(moves, 0, "pause {ms} ms, seed {seed}");
        }
    }
}

/// A standby that was frozen itself takes in what its primary sent
/// meanwhile before it judges the primary's silence: its own pause, of
/// any length, moves nothing. Nor does a pause of the whole pair (a
/// host-wide stall): the primary's heartbeats resume with it.
#[test]
fn a_pause_of_the_standby_or_of_both_moves_nothing() {
    for seed in 1..=3 {
        for ms in [50, 150, 250] {
            for who in [&[CM01B][..], &[CM01A, CM01B][..]] {
                let (_, moves) = pause(who, ms, seed);
                assert_eq!(moves, 0, "pause of {who:?} for {ms} ms, seed {seed}");
            }
        }
    }
}

/// A primary frozen past the failover time is indistinguishable from a
/// dead one: its standby (caught up, so the probe is granted) takes over
/// once, within the budget of a real failover plus the heartbeat interval
/// the silence may have started before the freeze.
#[test]
fn a_long_pause_fails_over_once() {
    let t = Timers::default().to_ticks().expect("default timers");
    let bound = failover_budget_ms() + t.ms(t.heartbeat);
    for seed in 1..=3 {
        for ms in [150, 250, 1_000] {
            let (outage, moves) = pause(&[CM01A], ms, seed);
            assert_eq!(moves, 1, "pause {ms} ms, seed {seed}");
            assert!(
                outage <= bound,
                "pause {ms} ms, seed {seed}: outage {outage} ms > {bound} ms"
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
