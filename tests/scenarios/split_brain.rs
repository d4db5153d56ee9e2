//! Behaviour 5, split-brain prevention: two leaders of one epoch never
//! commit; an isolated old leader stops accepting proposals.

use std::time::Duration;

use survivable_core::sim::scenarios::split_brain::{self, Cut, SplitBrain};

use crate::support::*;

#[test]
fn an_isolated_leader_stops_committing_and_steps_down() {
    let mut sim = started(&denver_paris(), 3);
    let mut load = Load::new(&["denver"], Duration::from_millis(10));
    load.run(&mut sim, Duration::from_secs(1));
    settle(&mut sim);
    let acked_before = sim.commits().len();
    let election_ms = sim.topology().timers().election.as_millis() as u64;

    // Proposals at the isolated leader itself (50, one every 10 ms), then
    // up to 2 election timeouts for it to step down, then 1 s more.
    let plan = SplitBrain {
        cut: Cut::Member(CM01A),
        run_for: Duration::from_millis(500 + 2 * election_ms + 1000),
    };
    let mut proposed = 0;
    let out = split_brain::run(&mut sim, &plan, |s, d, watch| {
        let end = s.now_us() + d.as_micros() as u64;
        while s.now_us() < end {
            if proposed < 50 {
                let _ = s.propose(CM01A, format!("set iso{proposed} x").into_bytes());
                proposed += 1;
            }
            s.run_for(Duration::from_millis(10));
            watch(s);
        }
    });
    assert_eq!(out.old_leader, Some(CM01A));
    // It commits nothing more, and it stops leading within 2 election
    // timeouts of its last proposal.
    assert_eq!(out.commit_growth, Some(0));
    let stepped = out.stepped_down_at_us;
    assert!(
        stepped.is_some_and(|t| t <= out.cut_at_us + (500 + 2 * election_ms) * 1000),
        "the isolated leader kept leading"
    );
    assert!(out.stepped_down_after_ms().unwrap() <= 2 * election_ms + 500);
    // Meanwhile its standby leads the majority and commits.
    assert_eq!(out.leader_at_end, Some(CM01B));
    assert_eq!(
        sim.commits().len(),
        acked_before,
        "nothing of the isolated proposals acknowledged yet"
    );

    // Heal: the 50 proposals made at the old leader are applied once each.
    sim.heal();
    sim.run_for(Duration::from_secs(3));
    let kv = sim.node(CM01B).unwrap().state_machine();
    assert!((0..50).all(|i| kv.map.contains_key(&format!("iso{i}"))));
    assert_eq!(sim.commits().len(), acked_before + 50);
    assert_clean(&mut sim);
}

#[test]
fn a_symmetric_split_never_yields_two_leaders() {
    // Denver+Kansas against Paris, then Paris+Kansas against Denver, then
    // the witness alone: at every moment at most one leader per term.
    let mut sim = started(&denver_paris(), 8);
    let mut load = Load::new(&["denver", "paris"], Duration::from_millis(10));
    for (a, b) in [
        (vec!["denver", "kansas"], vec!["paris"]),
        (vec!["denver"], vec!["paris", "kansas"]),
        (vec!["kansas"], vec!["denver", "paris"]),
    ] {
        sim.partition_sites(&a, &b);
        load.run(&mut sim, Duration::from_secs(4));
        sim.heal();
        load.run(&mut sim, Duration::from_secs(1));
    }
    sim.run_for(Duration::from_secs(10));
    assert_clean(&mut sim);
    assert!(sim.commits().iter().all(|c| c.outcome.result.is_ok()));
}
