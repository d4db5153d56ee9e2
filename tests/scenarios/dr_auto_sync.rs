//! DR auto-sync mode (`survivable_core::replication`): commits on both
//! sites while they talk, on Denver alone once Paris was silent for
//! `sync_wait`, and Paris taking over with RPO 0 proven when Denver is lost
//! in `Sync`.

use std::time::Duration;

use survivable_core::replication::ReplicationState;
use survivable_core::sim::{KvStore, Sim};
use survivable_core::topology::{denver_paris_dr, NodeId};
use survivable_core::Event;

use crate::support::*;

fn dr(seed: u64) -> Sim<KvStore> {
    let seed = std::env::var("SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(seed);
    let rtt: u64 = std::env::var("WAN")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(80);
    let mut b = denver_paris_dr();
    b.timers(survivable_core::policy::Timers {
        election: Duration::from_millis((rtt * 5 / 2).max(200)),
        ..Default::default()
    });
    let mut sim = Sim::builder(build(&b))
        .seed(seed)
        .wan_rtt(Duration::from_millis(rtt))
        .build(|_| KvStore::default());
    assert!(sim.run_until(Duration::from_secs(6), |s| s.leader() == Some(CM01A)));
    sim
}

fn state(sim: &Sim<KvStore>, id: NodeId) -> (ReplicationState, u64) {
    let r = sim.node(id).unwrap().status().replication.expect("DR mode");
    (r.state, r.state_id)
}

fn show(sim: &Sim<KvStore>) {
    for (at, id, e) in sim.events() {
        if matches!(
            e,
            Event::ReplicationChanged { .. }
                | Event::Activated { .. }
                | Event::LeaderChanged { .. }
                | Event::HandBackCompleted { .. }
                | Event::JoinedEpoch { .. }
        ) {
            println!("{at} {id} {e}");
        }
    }
}

#[test]
fn scratch_cut_heal_home() {
    let mut sim = dr(1);
    let mut load = Load::new(&["denver"], Duration::from_millis(20));
    load.run(&mut sim, Duration::from_secs(2));
    assert_eq!(state(&sim, CM01A).0, ReplicationState::Sync);
    sim.partition_sites(&["denver"], &["paris"]);
    load.run(&mut sim, Duration::from_secs(6));
    sim.heal();
    load.run(&mut sim, Duration::from_secs(30));
    show(&sim);
    for id in sim.members() {
        println!("{}", sim.node(id).unwrap().status());
    }
    settle(&mut sim);
    assert_clean(&mut sim);
}

#[test]
fn scratch_denver_lost_in_sync() {
    let mut sim = dr(2);
    let mut load = Load::new(&["denver", "paris"], Duration::from_millis(2));
    load.run(&mut sim, Duration::from_secs(2));
    sim.crash_site("denver");
    let mut paris = Load::new(&["paris"], Duration::from_millis(5));
    paris.run(&mut sim, Duration::from_secs(4));
    show(&sim);
    assert_acknowledged_applied(&sim, &load, CM02A);
    for id in [CM01A, CM01B, NodeId(5)] {
        sim.restart(id);
    }
    paris.run(&mut sim, Duration::from_secs(30));
    show(&sim);
    for id in sim.members() {
        println!("{}", sim.node(id).unwrap().status());
    }
    settle(&mut sim);
    assert_clean(&mut sim);
}

#[test]
fn scratch_standby_cut_alone() {
    let mut sim = dr(3);
    let mut load = Load::new(&["denver", "paris"], Duration::from_millis(5));
    load.run(&mut sim, Duration::from_secs(1));
    sim.partition(&[CM02B], &[CM01A, CM01B, NodeId(5)]);
    load.run(&mut sim, Duration::from_secs(8));
    show(&sim);
    assert!(!sim
        .events()
        .iter()
        .any(|(_, _, e)| matches!(e, Event::Activated { .. })));
    assert_eq!(state(&sim, CM01A).0, ReplicationState::Sync);
    sim.heal();
    settle(&mut sim);
    assert_clean(&mut sim);
}

#[test]
fn scratch_manual_activation_takes_the_whole_log() {
    let mut sim = dr(4);
    let mut load = Load::new(&["denver", "paris"], Duration::from_millis(2));
    load.run(&mut sim, Duration::from_secs(2));
    sim.crash_site("denver");
    sim.run_for(Duration::from_millis(500));
    sim.node_mut(CM02A)
        .unwrap()
        .activate()
        .expect("Denver is gone");
    let mut paris = Load::new(&["paris"], Duration::from_millis(5));
    paris.run(&mut sim, Duration::from_secs(1));
    show(&sim);
    assert_acknowledged_applied(&sim, &load, CM02A);
    assert_acknowledged_applied(&sim, &paris, CM02A);
}
