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

const TB: NodeId = NodeId(5);

fn dr(seed: u64) -> Sim<KvStore> {
    let mut sim = Sim::builder(build(&denver_paris_dr()))
        .seed(seed)
        .build(|_| KvStore::default());
    assert!(sim.run_until(Duration::from_secs(3), |s| s.leader() == Some(CM01A)));
    sim
}

fn state(sim: &Sim<KvStore>, id: NodeId) -> (ReplicationState, u64) {
    let r = sim.node(id).unwrap().status().replication.expect("DR mode");
    (r.state, r.state_id)
}

#[test]
fn scratch_sync_async_and_back() {
    let mut sim = dr(1);
    let mut load = Load::new(&["denver"], Duration::from_millis(20));
    load.run(&mut sim, Duration::from_secs(2));
    println!("{:?}", sim.node(CM01A).unwrap().status());
    assert_eq!(state(&sim, CM01A).0, ReplicationState::Sync);
    println!("{}", sim.node(CM02A).unwrap().status());
    println!("{:?}", sim.node(CM02A).unwrap().status().replication);
    sim.partition_sites(&["denver"], &["paris"]);
    load.run(&mut sim, Duration::from_secs(6));
    println!("{}", sim.node(CM01A).unwrap().status());
    for (at, id, e) in sim.events() {
        if matches!(
            e,
            Event::ReplicationChanged { .. } | Event::Activated { .. }
        ) {
            println!("{at} {id} {e}");
        }
    }
    sim.heal();
    load.run(&mut sim, Duration::from_secs(8));
    println!("{}", sim.node(CM01A).unwrap().status());
    for (at, id, e) in sim.events() {
        if matches!(
            e,
            Event::ReplicationChanged { .. }
                | Event::Activated { .. }
                | Event::LeaderChanged { .. }
        ) {
            println!("{at} {id} {e}");
        }
    }
    let _ = TB;
}
