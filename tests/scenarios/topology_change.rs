//! Membership as replicated state: the topology is versioned and carried
//! in the log, changed at runtime by the leader (raft's joint consensus
//! moves the voters), and applied at every member in log order.

use std::collections::BTreeMap;
use std::time::Duration;

use survivable_core::node::TopologyChangeError;
use survivable_core::sim::scenarios::ranked::{self, SiteLost};
use survivable_core::sim::{KvStore, Sim};
use survivable_core::topology::Appliance::Virtual;
use survivable_core::topology::{Core, NodeId, Topology, TopologyChange, TopologyError, Witness};
use survivable_core::Event;

use crate::support::*;

const CM03B: NodeId = NodeId(7);
const W2: NodeId = NodeId(9);

fn london() -> Core {
    Core::new("cm03", "london")
        .member(6, "CM03a", "lon-1", Virtual)
        .member(7, "CM03b", "lon-2", Virtual)
}

/// Proposes `change` at the leader and returns the topology it makes.
fn change(sim: &mut Sim<KvStore>, change: TopologyChange) -> Topology {
    let leader = sim.leader().expect("a leader");
    let next = (sim.node(leader).unwrap().topology().apply(&change)).expect("a valid change");
    let version = sim
        .node_mut(leader)
        .unwrap()
        .change_topology(&change)
        .unwrap_or_else(|e| panic!("{change:?} refused: {e}"));
    sim.flush(leader);
    assert_eq!(version, next.version());
    next
}

/// Runs `load` until every live member of `topology` holds it (a change
/// commits within a WAN round trip and applies everywhere within another,
/// a new member catches up from one snapshot: 10 s, far above, only
/// bounds a hang).
fn until_everywhere(sim: &mut Sim<KvStore>, load: &mut Load, topology: &Topology) {
    let version = topology.version();
    for _ in 0..100 {
        load.run(sim, Duration::from_millis(100));
        let all = (topology.members().keys().copied())
            .filter(|&id| sim.is_up(id))
            .all(|id| {
                sim.node(id)
                    .is_some_and(|n| n.topology().version() == version)
            });
        if all {
            return;
        }
    }
    panic!(
        "topology {version} not applied everywhere; trace:\n{}",
        sim.trace().join("\n")
    );
}

/// Starts the members `ids` of `topology` as new, empty members.
fn start_new(sim: &mut Sim<KvStore>, topology: &Topology, ids: &[NodeId]) {
    for &id in ids {
        let member = topology.member(id).expect("in the new topology").clone();
        sim.add_member(member);
    }
}

#[test]
fn a_survivable_core_is_added_at_runtime_and_its_members_become_voters() {
    let mut sim = started(&denver_paris(), 21);
    let mut load = Load::new(&["denver", "paris"], Duration::from_millis(10));
    load.run(&mut sim, Duration::from_secs(1));
    let t0 = sim.now_us();
    let t1 = change(
        &mut sim,
        TopologyChange::AddSite {
            name: "london".into(),
        },
    );
    until_everywhere(&mut sim, &mut load, &t1);
    let add = TopologyChange::AddSurvivableCore {
        rank: 2,
        core: london(),
        addresses: BTreeMap::new(),
    };
    // The report of the new topology, before proposing.
    let preview = sim.node(CM01A).unwrap().topology().preview(&add).unwrap();
    assert_eq!(preview.voters, 7);
    let t2 = change(&mut sim, add);
    assert_eq!((t1.version(), t2.version()), (1, 2));
    start_new(&mut sim, &t2, &[CM03A, CM03B]);
    until_everywhere(&mut sim, &mut load, &t2);
    for id in sim.members() {
        let n = sim.node(id).unwrap();
        assert_eq!(n.voters().len(), 7, "voters at {id}");
        assert_eq!(n.topology().max_rank(), 2, "ranks at {id}");
        assert_eq!(n.topology().survivability().voters, 7);
    }
    // Every member said so, in log order: version 1 then 2.
    let seen: Vec<u64> = events_since(&sim, t0, |e| matches!(e, Event::TopologyChanged { .. }))
        .filter(|(_, id, _)| *id == CM01B)
        .map(|(_, _, e)| match e {
            Event::TopologyChanged { version, .. } => *version,
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(seen, vec![1, 2]);
    load.run(&mut sim, Duration::from_secs(1));
    settle(&mut sim);
    assert_acknowledged_applied(&sim, &load, CM03A);
    assert_acknowledged_applied(&sim, &load, CM03B);
    assert_clean(&mut sim);
}

#[test]
fn a_rank_change_decides_which_core_takes_over() {
    let mut sim = started(&with_london(), 22);
    let mut load = Load::new(&["denver", "london"], Duration::from_millis(10));
    load.run(&mut sim, Duration::from_secs(1));
    let t = change(
        &mut sim,
        TopologyChange::SetRank {
            core: "cm03".into(),
            rank: 1,
        },
    );
    until_everywhere(&mut sim, &mut load, &t);
    assert_eq!(
        sim.node(CM02A)
            .unwrap()
            .topology()
            .member(CM02A)
            .unwrap()
            .preference(),
        2
    );
    // Denver is lost: London, now rank 1, takes over; before the change
    // Paris did (ranked.rs, rank_one_takes_over_and_rank_two_stays_put).
    let plan = SiteLost {
        site: "denver".into(),
        heal: false,
        run_for: Duration::from_secs(6),
    };
    let out = ranked::site_lost(&mut sim, &plan, |s, d| load.run(s, d));
    assert_eq!(out.takeover.leader_at_end, Some(CM03A));
    settle(&mut sim);
    assert_acknowledged_applied(&sim, &load, CM02A);
    assert_clean(&mut sim);
}

#[test]
fn a_witness_is_removed_and_another_added() {
    let mut sim = started(&denver_paris(), 23);
    let mut load = Load::new(&["denver", "paris"], Duration::from_millis(10));
    load.run(&mut sim, Duration::from_secs(1));
    let t1 = change(&mut sim, TopologyChange::RemoveMember { id: W1 });
    until_everywhere(&mut sim, &mut load, &t1);
    assert_eq!(
        sim.node(CM01A).unwrap().voters(),
        vec![CM01A, CM01B, CM02A, CM02B]
    );
    let t2 = change(
        &mut sim,
        TopologyChange::AddWitness {
            witness: Witness::new(9, "W2", "kansas", "wit-2"),
            address: None,
        },
    );
    start_new(&mut sim, &t2, &[W2]);
    until_everywhere(&mut sim, &mut load, &t2);
    assert_eq!(
        sim.node(CM02B).unwrap().voters(),
        vec![CM01A, CM01B, CM02A, CM02B, W2]
    );
    load.run(&mut sim, Duration::from_secs(1));
    settle(&mut sim);
    assert_acknowledged_applied(&sim, &load, W2);
    assert_clean(&mut sim);
}

#[test]
fn invalid_changes_are_refused_with_a_reason_and_nothing_is_proposed() {
    let mut sim = started(&with_london(), 24);
    sim.run_for(Duration::from_secs(1));
    let last = sim.node(CM01A).unwrap().status().last_index;
    let leader = sim.node_mut(CM01A).unwrap();
    let same_host = TopologyChange::ReplaceMember {
        old: CM01B,
        new: survivable_core::topology::MemberSpec {
            id: NodeId(8),
            name: "CM01c".into(),
            host: "esxi-1".into(),
            appliance: Virtual,
        },
        address: None,
    };
    assert!(matches!(
        leader.change_topology(&same_host),
        Err(TopologyChangeError::Invalid(TopologyError::PairSharesHost { host, .. })) if host == "esxi-1"
    ));
    let gap = TopologyChange::SetRank {
        core: "cm03".into(),
        rank: 3,
    };
    assert_eq!(
        leader.change_topology(&gap),
        Err(TopologyChangeError::Invalid(TopologyError::RankGap {
            core: "cm03".into(),
            rank: 3,
            max: 2
        }))
    );
    assert_eq!(
        leader.change_topology(&TopologyChange::RemoveMember { id: CM01A }),
        Err(TopologyChangeError::Invalid(TopologyError::NotAPair {
            core: "cm01".into(),
            count: 1
        }))
    );
    let rank = TopologyChange::SetRank {
        core: "cm03".into(),
        rank: 1,
    };
    assert_eq!(
        sim.node_mut(CM02A).unwrap().change_topology(&rank),
        Err(TopologyChangeError::NotLeader {
            leader: Some(CM01A)
        })
    );
    sim.flush(CM01A);
    sim.run_for(Duration::from_secs(1));
    // Nothing entered the log (the leader appends nothing when idle) and
    // the topology is the one built.
    assert_eq!(sim.node(CM01A).unwrap().status().last_index, last);
    assert_eq!(sim.node(CM02A).unwrap().topology().version(), 0);
    // One change at a time: a second one while the first is in flight.
    let leader = sim.node_mut(CM01A).unwrap();
    assert_eq!(leader.change_topology(&rank), Ok(1));
    assert_eq!(
        leader.change_topology(&TopologyChange::SetRank {
            core: "cm03".into(),
            rank: 2
        }),
        Err(TopologyChangeError::UnderWay)
    );
}

#[test]
fn a_leader_change_in_the_middle_of_a_joint_change_completes_it() {
    let mut sim = started(&denver_paris(), 25);
    let mut load = Load::new(&["denver", "paris"], Duration::from_millis(10));
    load.run(&mut sim, Duration::from_secs(1));
    let t1 = change(
        &mut sim,
        TopologyChange::AddSite {
            name: "london".into(),
        },
    );
    until_everywhere(&mut sim, &mut load, &t1);
    // Two voters at once: raft enters a joint configuration.
    let t2 = change(
        &mut sim,
        TopologyChange::AddSurvivableCore {
            rank: 2,
            core: london(),
            addresses: BTreeMap::new(),
        },
    );
    start_new(&mut sim, &t2, &[CM03A, CM03B]);
    // The leader dies as soon as the joint configuration is applied at
    // its standby, before it can lead the cluster out of it.
    let joint = sim.run_until(Duration::from_secs(2), |s| {
        s.node(CM01B)
            .is_some_and(|n| n.topology().version() == t2.version())
    });
    assert!(joint, "trace:\n{}", sim.trace().join("\n"));
    assert_eq!(
        sim.node(CM01B).unwrap().outgoing_voters(),
        vec![CM01A, CM01B, CM02A, CM02B, W1],
        "joint at the standby when the leader dies"
    );
    sim.crash(CM01A);
    until_everywhere(&mut sim, &mut load, &t2);
    // The new leader leaves the joint configuration: every live member
    // ends with the seven voters and nobody outgoing.
    let done = {
        let mut ok = false;
        for _ in 0..100 {
            load.run(&mut sim, Duration::from_millis(100));
            ok = (sim.members().into_iter())
                .filter(|&id| sim.is_up(id))
                .all(|id| {
                    let n = sim.node(id).unwrap();
                    n.voters().len() == 7 && n.outgoing_voters().is_empty()
                });
            if ok {
                break;
            }
        }
        ok
    };
    assert!(
        done,
        "joint configuration never left; trace:\n{}",
        sim.trace().join("\n")
    );
    assert_eq!(sim.leader(), Some(CM01B));
    settle(&mut sim);
    assert_acknowledged_applied(&sim, &load, CM03A);
    assert_clean(&mut sim);
}

#[test]
fn a_member_restarted_from_a_snapshot_has_the_topology() {
    let mut b = denver_paris();
    b.address(4, "paris-2:7000");
    let mut sim = Sim::builder(build(&b))
        .seed(26)
        .node_config(|c| {
            c.snapshot_every = 50;
            c.keep_entries = 10;
        })
        .build(|_| KvStore::default());
    assert!(sim.run_until(Duration::from_secs(3), |s| s.leader() == Some(CM01A)));
    let mut load = Load::new(&["denver", "paris"], Duration::from_millis(10));
    load.run(&mut sim, Duration::from_millis(500));
    let moved = TopologyChange::SetAddress {
        id: CM02B,
        address: "paris-2b:7000".into(),
    };
    let t1 = change(&mut sim, moved);
    let at = sim.node(CM01A).unwrap().status().last_index;
    until_everywhere(&mut sim, &mut load, &t1);
    // Well past the change's entry: at 10 ms a proposal, 3 s is 300
    // entries, six snapshots of 50, the log kept from 10 behind the last.
    load.run(&mut sim, Duration::from_secs(3));
    let first = sim.node(CM02B).unwrap().status().first_index;
    assert!(first > at, "compacted from {first}, change at {at}");
    sim.crash(CM02B);
    sim.restart(CM02B);
    let n = sim.node(CM02B).expect("restarted");
    assert_eq!(n.topology().version(), 1, "from the snapshot");
    assert_eq!(n.topology().address(CM02B), Some("paris-2b:7000"));
    load.run(&mut sim, Duration::from_secs(1));
    settle(&mut sim);
    assert_acknowledged_applied(&sim, &load, CM02B);
    assert_clean(&mut sim);
}
