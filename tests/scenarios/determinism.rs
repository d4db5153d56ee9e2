//! Determinism: a simulator run is a pure function of its seed and the
//! calls made, down to the byte.

use std::time::Duration;

use survivable_core::sim::{KvStore, Sim};

use crate::support::*;

fn eventful_run(seed: u64) -> (Vec<String>, Vec<String>) {
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
    (sim.trace().to_vec(), commits)
}

#[test]
fn the_same_seed_gives_the_same_run() {
    let (trace_a, commits_a) = eventful_run(42);
    let (trace_b, commits_b) = eventful_run(42);
    assert!(trace_a.len() > 10);
    assert_eq!(trace_a, trace_b);
    assert_eq!(commits_a, commits_b);
}

#[test]
fn another_seed_gives_another_run() {
    let (trace_a, _) = eventful_run(42);
    let (trace_b, _) = eventful_run(43);
    assert_ne!(trace_a, trace_b);
}
