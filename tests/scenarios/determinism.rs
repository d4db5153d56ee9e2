//! Determinism: a simulator run is a pure function of its seed and the
//! calls made, down to the byte.

use std::time::Duration;

use survivable_core::sim::{KvStore, Sim};

use crate::support::*;

/// The trace, the commits and the run's digest (every delivered envelope's
/// bytes and every member's applied sequence).
fn eventful_run(seed: u64) -> (Vec<String>, Vec<String>, u64) {
    let mut sim = Sim::builder(build(&denver_paris()))
        .seed(seed)
        .jitter(Duration::from_millis(2))
        .loss(0.01)
        .build(|_| KvStore::default());
    let mut load = Load::new(&["denver", "paris"], Duration::from_millis(7));
    load.run(&mut sim, Duration::from_secs(2));
    sim.crash_host("esxi-1");
    load.run(&mut sim, Duration::from_secs(1));
    sim.partition_sites(&["denver"], &["paris", "kansas"]);
    load.run(&mut sim, Duration::from_secs(4));
    sim.restart(CM01A);
    sim.heal();
    load.run(&mut sim, Duration::from_secs(8));
    let commits = sim.commits().iter().map(|c| format!("{c:?}")).collect();
    (sim.trace().to_vec(), commits, sim.run_digest())
}

#[test]
fn the_same_seed_gives_the_same_run() {
    let (trace_a, commits_a, digest_a) = eventful_run(42);
    let (trace_b, commits_b, digest_b) = eventful_run(42);
    assert!(trace_a.len() > 10);
    assert_eq!(trace_a, trace_b);
    assert_eq!(commits_a, commits_b);
    assert_eq!(
        digest_a, digest_b,
        "the same bytes were delivered and applied"
    );
}

#[test]
fn another_seed_gives_another_run() {
    let (trace_a, _, digest_a) = eventful_run(42);
    let (trace_b, _, digest_b) = eventful_run(43);
    assert_ne!(trace_a, trace_b);
    assert_ne!(digest_a, digest_b);
}

#[test]
fn the_run_digest_sees_every_delivered_byte() {
    // Same seed, one extra proposal: the traces of faults and leaders can
    // agree while the bytes on the wire and the applied sequences differ.
    let run = |extra: bool| {
        let mut sim = Sim::builder(build(&denver_paris()))
            .seed(7)
            .build(|_| KvStore::default());
        sim.run_for(Duration::from_secs(1));
        let leader = sim.leader().expect("a leader");
        let before = sim.run_digest();
        if extra {
            sim.propose(leader, b"set x 1".to_vec()).expect("accepted");
        }
        sim.run_for(Duration::from_secs(1));
        (before, sim.run_digest())
    };
    let (before_a, after_a) = run(false);
    let (before_b, after_b) = run(true);
    assert_eq!(before_a, before_b);
    assert_ne!(after_a, after_b);
    assert_ne!(before_a, after_a, "heartbeats were delivered");
}

#[test]
fn delivered_counts_what_reaches_a_member() {
    let mut sim = Sim::builder(build(&denver_paris()))
        .seed(11)
        .build(|_| KvStore::default());
    sim.run_for(Duration::from_secs(1));
    let leader = sim.leader().expect("a leader");
    let followers = sim.members().len() as u64 - 1;
    let heartbeat_ms = sim.topology().timers().heartbeat.as_millis() as u64;
    let before = sim.delivered();
    sim.run_for(Duration::from_secs(1));
    // At least a heartbeat and its response per follower and interval.
    let quiet_second = sim.delivered() - before;
    assert!(
        quiet_second >= 2 * followers * (1000 / heartbeat_ms),
        "{quiet_second} envelopes in a second"
    );
    for id in sim.members() {
        if id != leader {
            sim.crash(id);
        }
    }
    // What was in flight towards the leader lands (the longest one-way
    // latency is well under 100 ms); then nothing reaches anyone.
    sim.run_for(Duration::from_millis(100));
    let alone = sim.delivered();
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.delivered(), alone, "nothing reaches a crashed member");
}
