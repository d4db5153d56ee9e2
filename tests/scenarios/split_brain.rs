//! Behaviour 5, split-brain prevention: two leaders of one epoch never
//! commit; an isolated old leader stops accepting proposals.

use std::time::Duration;

use survivable_core::node::NodeRole;

use crate::support::*;

#[test]
fn an_isolated_leader_stops_committing_and_steps_down() {
    let mut sim = started(&denver_paris(), 3);
    let mut load = Load::new(&["denver"], Duration::from_millis(10));
    load.run(&mut sim, Duration::from_secs(1));
    settle(&mut sim);
    let acked_before = sim.commits().len();
    let election_ms = sim.topology().timers().election.as_millis() as u64;

    sim.isolate(CM01A);
    let t0 = sim.now_us();
    let before = sim.node(CM01A).unwrap().status().commit;
    // Proposals at the isolated leader itself.
    for i in 0..50 {
        let _ = sim.propose(CM01A, format!("set iso{i} x").into_bytes());
        sim.run_for(Duration::from_millis(10));
    }
    // It commits nothing more, and it stops leading within 2 election timeouts.
    assert_eq!(sim.node(CM01A).unwrap().status().commit, before);
    let stepped = sim.run_until(Duration::from_millis(2 * election_ms), |s| {
        s.node(CM01A).unwrap().status().role != NodeRole::Leader
    });
    assert!(stepped, "the isolated leader kept leading");
    assert!((sim.now_us() - t0) / 1000 <= 2 * election_ms + 500);
    // Meanwhile its standby leads the majority and commits.
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.leader(), Some(CM01B));
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
