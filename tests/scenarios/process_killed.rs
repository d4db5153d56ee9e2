//! A primary's *process* killed on a host that stays up (`kill -9`): its
//! peers' dials to it are refused, which the simulator reports to them as
//! the TCP runtime does ([`Sim::kill`]), and its standby fails over without
//! waiting out the failover time. A silent crash (a host gone, a link
//! hanging) gives no such sign and the timer applies.

use std::time::Duration;

use survivable_core::policy::Timers;
use survivable_core::sim::{KvStore, Sim};
use survivable_core::topology::NodeId;
use survivable_core::Event;

use crate::support::*;

/// A WAN short enough (20 ms round trip) that the failover probe's round
/// trip to the voters of Paris and Kansas does not hide the difference.
const WAN_MS: u64 = 20;

/// Load on CM01a, leading, then `fault` to it; returns the silence the
/// standby's `FailoverStarted` reports, after checking that it leads and
/// that every acknowledged proposal survived.
fn fail_primary(seed: u64, fault: impl FnOnce(&mut Sim<KvStore>)) -> (u64, Sim<KvStore>) {
    let mut sim = started_over(&denver_paris(), seed, Duration::from_millis(WAN_MS));
    let mut load = Load::new(&["denver", "paris"], Duration::from_millis(5));
    load.run(&mut sim, Duration::from_secs(2));
    let t0 = sim.now_us();
    fault(&mut sim);
    load.run(&mut sim, Duration::from_secs(2));
    settle(&mut sim);
    assert_eq!(sim.leader(), Some(CM01B), "seed {seed}");
    let started = events_since(&sim, t0, |e| matches!(e, Event::FailoverStarted { .. }))
        .find(|(_, id, _)| *id == CM01B)
        .expect("the standby's FailoverStarted");
    let Event::FailoverStarted { silent_ms, .. } = started.2 else {
        unreachable!()
    };
    assert_eq!(load.refused, 0);
    assert!(sim.commits().iter().all(|c| c.outcome.result.is_ok()));
    assert_acknowledged_applied(&sim, &load, CM01B);
    assert_clean(&mut sim);
    (silent_ms, sim)
}

/// Whether `to` was told that `peer`'s process is gone.
fn told(sim: &Sim<KvStore>, to: NodeId, peer: NodeId) -> bool {
    let line = format!(" {to} refused {peer}");
    sim.trace().iter().any(|l| l.ends_with(&line))
}

#[test]
fn a_killed_primary_is_replaced_before_the_failover_time() {
    let t = Timers::default().to_ticks().expect("default timers");
    // The standby campaigns after at most: the primary's silence before
    // the kill (a heartbeat interval), the report (the connection's end,
    // half a LAN round trip, then a refused dial, a whole one: 2 ms), the
    // probe's WAN round trip, and the tick each step is noticed on.
    let bound = t.ms(t.heartbeat) + 2 + WAN_MS + 2 * t.tick_ms;
    assert!(bound < t.ms(t.failover));
    for seed in 1..=5 {
        let (silent_ms, sim) = fail_primary(seed, |s| s.kill(CM01A));
        assert!(told(&sim, CM01B, CM01A), "seed {seed}");
        println!("seed {seed}: killed primary, the standby acted after {silent_ms} ms of silence");
        assert!(
            silent_ms <= bound,
            "seed {seed}: the standby waited {silent_ms} ms (bound {bound})"
        );
    }
}

#[test]
fn a_silent_crash_waits_out_the_failover_time() {
    let t = Timers::default().to_ticks().expect("default timers");
    for seed in 1..=3 {
        let (silent_ms, sim) = fail_primary(seed, |s| s.crash(CM01A));
        assert!(!told(&sim, CM01B, CM01A), "seed {seed}");
        println!("seed {seed}: crashed primary, the standby acted after {silent_ms} ms of silence");
        assert!(
            silent_ms >= t.ms(t.failover),
            "seed {seed}: the standby acted after {silent_ms} ms without a sign"
        );
    }
}

#[test]
fn no_report_crosses_a_lossy_or_cut_link_or_outlives_a_restart() {
    // Loss on the way back from the standby: its dial might not be
    // answered, so nothing is reported to it (the timer applies).
    let (_, sim) = fail_primary(1, |s| {
        s.set_link_loss(CM01B, CM01A, 0.1);
        s.kill(CM01A);
    });
    assert!(!told(&sim, CM01B, CM01A));
    // The rest of Denver's peers heard it over their clean links.
    assert!(told(&sim, W1, CM01A));
    // Cut between the kill and the report.
    let (_, sim) = fail_primary(2, |s| {
        s.kill(CM01A);
        s.partition(&[CM01A], &[CM01B]);
    });
    assert!(!told(&sim, CM01B, CM01A));
    // Killed and restarted at once: the dial finds it listening.
    let mut sim = started(&denver_paris(), 3);
    sim.kill(CM02A);
    sim.restart(CM02A);
    sim.run_for(Duration::from_secs(1));
    assert!(!sim.trace().iter().any(|l| l.contains(" refused ")));
    // A host that went away leaves no kernel to refuse a dial.
    sim.crash_host("esxi-5");
    sim.run_for(Duration::from_secs(1));
    assert!(!sim.trace().iter().any(|l| l.contains(" refused ")));
}
