//! Behaviour 3, the replicated topology after a replacement: the
//! promotion that makes a replacement a voter and removes the dead member
//! carries the next topology version, so on every member (a restarted one
//! included) the topology names the replacement in the dead member's slot
//! exactly when raft's configuration does. The dead member's id is
//! remembered: it is never given to a new member, and a dead member that
//! comes back is not heard.

use std::time::Duration;

use survivable_core::node::{ReplacePolicy, TopologyChangeError};
use survivable_core::sim::{KvStore, Sim};
use survivable_core::topology::{
    Appliance, Member, MemberSpec, NodeId, TopologyChange, TopologyError, Witness,
};
use survivable_core::MembershipError;

use crate::support::*;

const NEW: NodeId = NodeId(8);

fn spec(id: NodeId, host: &str) -> MemberSpec {
    MemberSpec {
        id,
        name: format!("spare-{}", id.0),
        host: host.into(),
        appliance: Appliance::Virtual,
    }
}

/// Runs load until the leader's voters hold `new` and not `dead`.
fn until_promoted(sim: &mut Sim<KvStore>, load: &mut Load, dead: NodeId, new: NodeId) {
    for _ in 0..50 {
        load.run(sim, Duration::from_millis(100));
        let v = sim.leader().map(|l| sim.node(l).unwrap().voters());
        if v.is_some_and(|v| v.contains(&new) && !v.contains(&dead)) {
            return;
        }
    }
    panic!(
        "{new} never replaced {dead}; trace:\n{}",
        sim.trace().join("\n")
    );
}

/// The operator replaces the dead CM01a by `NEW` (on esxi-4) at the
/// leader CM01b, starts `NEW` empty and runs load until it is promoted.
fn replace_primary(sim: &mut Sim<KvStore>, load: &mut Load) {
    let new = spec(NEW, "esxi-4");
    let member = sim
        .node(CM01B)
        .unwrap()
        .replacement_member(CM01A, new.clone());
    sim.node_mut(CM01B)
        .unwrap()
        .replace_member(CM01A, new)
        .unwrap();
    sim.flush(CM01B);
    sim.add_member(member.unwrap());
    until_promoted(sim, load, CM01A, NEW);
}

/// On every live member: its topology's voters and learners are raft's
/// configuration, `new` holds `dead`'s slot (site and role as the initial
/// topology gave `dead`), `dead` is gone and remembered, every member is
/// at the same topology version; and every member applied each proposal
/// once (each sets its own key, so a command applied twice or lost shows
/// as a count that differs from the keys held).
fn assert_coherent(sim: &Sim<KvStore>, dead: NodeId, new: NodeId) {
    let slot = sim.topology().member(dead).unwrap().clone();
    let mut versions = Vec::new();
    let mut keys = Vec::new();
    for id in sim.members().into_iter().filter(|&id| sim.is_up(id)) {
        let n = sim.node(id).unwrap();
        let t = n.topology();
        let (mut voters, mut learners) = (t.voters(), t.learners());
        voters.sort_unstable();
        learners.sort_unstable();
        assert_eq!(voters, n.voters(), "voters at {id}");
        assert_eq!(learners, n.learners(), "learners at {id}");
        assert!(n.outgoing_voters().is_empty(), "joint at {id}");
        assert!(
            t.member(dead).is_none() && t.is_removed(dead),
            "{dead} at {id}"
        );
        let m = t
            .member(new)
            .unwrap_or_else(|| panic!("{new} missing at {id}"));
        assert_eq!((&m.site, &m.role), (&slot.site, &slot.role), "slot at {id}");
        versions.push(t.version());
        let kv = n.state_machine();
        assert_eq!(kv.applied, kv.map.len() as u64, "applies at {id}");
        keys.push(kv.map.len());
    }
    assert!(
        versions.iter().all(|&v| v == versions[0] && v >= 1),
        "{versions:?}"
    );
    assert!(keys.iter().all(|&k| k == keys[0]), "keys held {keys:?}");
}

#[test]
fn an_operator_replacement_moves_the_topology_with_the_configuration() {
    let mut sim = started(&denver_paris(), 6);
    let mut load = Load::new(&["denver", "paris"], Duration::from_millis(5));
    load.run(&mut sim, Duration::from_secs(1));
    sim.crash_host("esxi-1");
    load.run(&mut sim, Duration::from_secs(1));
    assert_eq!(sim.leader(), Some(CM01B));
    let before = sim.node(CM02A).unwrap().topology().version();
    replace_primary(&mut sim, &mut load);
    load.run(&mut sim, Duration::from_secs(1));
    settle(&mut sim);
    assert_coherent(&sim, CM01A, NEW);
    assert_eq!(sim.node(CM02A).unwrap().topology().version(), before + 1);
    assert_acknowledged_applied(&sim, &load, NEW);

    // A member restarted from its storage replays the same entry.
    sim.crash(CM02A);
    load.run(&mut sim, Duration::from_millis(500));
    sim.restart(CM02A);
    load.run(&mut sim, Duration::from_secs(1));
    settle(&mut sim);
    assert_coherent(&sim, CM01A, NEW);
    assert_acknowledged_applied(&sim, &load, CM02A);
    assert_clean(&mut sim);
}

#[test]
fn a_replacement_given_an_address_carries_it_into_the_topology() {
    const AT: &str = "10.0.0.8:7008";
    let mut sim = started(&denver_paris(), 7);
    let mut load = Load::new(&["denver", "paris"], Duration::from_millis(5));
    load.run(&mut sim, Duration::from_secs(1));
    sim.crash_host("esxi-1");
    load.run(&mut sim, Duration::from_secs(1));
    assert_eq!(sim.leader(), Some(CM01B));
    let new = spec(NEW, "esxi-4");
    let leader = sim.node_mut(CM01B).unwrap();
    for blank in ["", "  "] {
        let err = leader.replace_member_at(CM01A, new.clone(), Some(blank.into()));
        let want = MembershipError::Topology(TopologyError::EmptyAddress { id: NEW });
        assert_eq!(err, Err(want), "{blank:?}");
    }
    let member = leader.replacement_member(CM01A, new.clone());
    leader
        .replace_member_at(CM01A, new, Some(AT.into()))
        .unwrap();
    sim.flush(CM01B);
    sim.add_member(member.unwrap());
    // Once the learner is added, every member knows its address before
    // the topology names it.
    for _ in 0..100 {
        if sim.node(CM02A).unwrap().learners().contains(&NEW) {
            break;
        }
        load.run(&mut sim, Duration::from_millis(5));
    }
    let follower = sim.node(CM02A).unwrap();
    assert!(follower.learners().contains(&NEW), "learner never added");
    assert!(follower.topology().member(NEW).is_none());
    assert_eq!(follower.member_address(NEW), Some(AT));
    until_promoted(&mut sim, &mut load, CM01A, NEW);
    load.run(&mut sim, Duration::from_secs(1));
    settle(&mut sim);
    assert_coherent(&sim, CM01A, NEW);
    for id in sim.members().into_iter().filter(|&id| sim.is_up(id)) {
        let n = sim.node(id).unwrap();
        assert_eq!(n.topology().address(NEW), Some(AT), "at {id}");
        assert_eq!(n.member_address(CM01A), None, "at {id}");
    }
    assert_acknowledged_applied(&sim, &load, NEW);
    assert_clean(&mut sim);
}

#[test]
fn a_removed_id_is_never_reused_and_a_removed_member_is_not_heard() {
    let mut sim = started(&denver_paris(), 16);
    let mut load = Load::new(&["denver", "paris"], Duration::from_millis(5));
    sim.crash_host("esxi-1");
    load.run(&mut sim, Duration::from_secs(1));
    replace_primary(&mut sim, &mut load);
    settle(&mut sim);

    // The dead member's id, for a replacement or through a topology change.
    let leader = sim.node_mut(CM01B).unwrap();
    let err = leader.replace_member(NEW, spec(CM01A, "esxi-5"));
    assert_eq!(err, Err(MembershipError::IdRemoved(CM01A)));
    assert!(err.unwrap_err().to_string().contains("pick a new id"));
    let witness = TopologyChange::AddWitness {
        witness: Witness {
            site: "paris".into(),
            member: spec(CM01A, "esxi-9"),
        },
        address: None,
    };
    assert_eq!(
        leader.change_topology(&witness),
        Err(TopologyChangeError::Invalid(TopologyError::IdRemoved {
            id: CM01A
        }))
    );

    // The dead member comes back (its disk intact): it campaigns, and is
    // not heard. Leadership and the configuration stay as they are.
    let term_before = term(&sim);
    sim.restart(CM01A);
    load.run(&mut sim, Duration::from_secs(2));
    let dropped: u64 = [CM01B, NEW, CM02A, CM02B, W1]
        .iter()
        .map(|&id| sim.node(id).unwrap().counters().removed_sender)
        .sum();
    assert!(dropped > 0, "trace:\n{}", sim.trace().join("\n"));
    assert_eq!(sim.leader(), Some(CM01B));
    assert_eq!(term(&sim), term_before);
    sim.crash(CM01A);
    settle(&mut sim);
    assert_coherent(&sim, CM01A, NEW);
    assert_acknowledged_applied(&sim, &load, NEW);
    assert_clean(&mut sim);
}

#[test]
fn a_policy_replacement_moves_the_topology_with_the_configuration() {
    let mut sim = Sim::builder(build(&denver_paris()))
        .seed(11)
        .node_config(|c| {
            c.replace = Some(ReplacePolicy {
                after: Duration::from_secs(2),
                spares: vec![spec(CM01A, "esxi-5"), spec(NEW, "esxi-4")],
                addresses: [(NEW, "10.0.0.8:7008".to_string())].into(),
            });
        })
        .build(|_| KvStore::default());
    assert!(sim.run_until(Duration::from_secs(3), |s| s.leader() == Some(CM01A)));
    let mut load = Load::new(&["denver", "paris"], Duration::from_millis(5));
    load.run(&mut sim, Duration::from_secs(1));
    sim.crash_host("esxi-3");
    // CM01b's host is gone; the policy picks the first spare whose id is
    // free (not CM01a's, in use), and the spare is started.
    let member = sim
        .node(CM01A)
        .unwrap()
        .replacement_member(CM01B, spec(NEW, "esxi-4"));
    sim.add_member(member.unwrap());
    until_promoted(&mut sim, &mut load, CM01B, NEW);
    load.run(&mut sim, Duration::from_secs(1));
    settle(&mut sim);
    assert_coherent(&sim, CM01B, NEW);
    // The spare's address, from the policy, is in every topology.
    for id in sim.members().into_iter().filter(|&id| sim.is_up(id)) {
        let t = sim.node(id).unwrap().topology().clone();
        assert_eq!(t.address(NEW), Some("10.0.0.8:7008"), "at {id}");
    }
    assert_acknowledged_applied(&sim, &load, NEW);
    assert_clean(&mut sim);
}

#[test]
fn a_member_restored_from_a_snapshot_has_the_replacement_in_its_topology() {
    let mut sim = Sim::builder(build(&denver_paris()))
        .seed(21)
        .node_config(|c| {
            c.snapshot_every = 64;
            c.keep_entries = 16;
        })
        .build(|_| KvStore::default());
    assert!(sim.run_until(Duration::from_secs(3), |s| s.leader() == Some(CM01A)));
    let mut load = Load::new(&["denver", "paris"], Duration::from_millis(5));
    load.run(&mut sim, Duration::from_secs(1));
    // CM02a is down through the whole replacement.
    let had = sim.node(CM02A).unwrap().status().last_index;
    sim.crash(CM02A);
    sim.crash_host("esxi-1");
    load.run(&mut sim, Duration::from_secs(1));
    replace_primary(&mut sim, &mut load);
    load.run(&mut sim, Duration::from_secs(2));
    sim.restart(CM02A);
    load.run(&mut sim, Duration::from_secs(1));
    settle(&mut sim);
    // Its log now starts past what it had: it was sent a snapshot.
    let first = sim.node(CM02A).unwrap().status().first_index;
    assert!(first > had + 1, "first index {first}, had {had}");
    assert_coherent(&sim, CM01A, NEW);
    assert_acknowledged_applied(&sim, &load, CM02A);
    assert_clean(&mut sim);
}

#[test]
fn a_replacement_waits_for_an_unapplied_topology_version() {
    let mut sim = started(&denver_paris(), 26);
    sim.crash_host("esxi-1");
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.leader(), Some(CM01B));
    let leader = sim.node_mut(CM01B).unwrap();
    // A version that moves nobody: a normal entry, not a raft conf change.
    let address = TopologyChange::SetAddress {
        id: W1,
        address: "10.0.9.1:7000".into(),
    };
    let version = leader.change_topology(&address).unwrap();
    let err = leader.replace_member(CM01A, spec(NEW, "esxi-4"));
    assert_eq!(err, Err(MembershipError::UnderWay));
    assert!(err
        .unwrap_err()
        .to_string()
        .contains("wait until it is applied"));
    // Once applied, the replacement starts, and a topology change waits
    // for it in turn.
    sim.run_for(Duration::from_millis(500));
    let leader = sim.node_mut(CM01B).unwrap();
    assert_eq!(leader.topology().version(), version);
    leader.replace_member(CM01A, spec(NEW, "esxi-4")).unwrap();
    let again = TopologyChange::SetAddress {
        id: W1,
        address: "10.0.9.2:7000".into(),
    };
    assert_eq!(
        leader.change_topology(&again),
        Err(TopologyChangeError::UnderWay)
    );
    sim.run_for(Duration::from_secs(1));
    assert_clean(&mut sim);
}

/// A spare started from its own member file does not know which slot it
/// will take: it starts joining with a provisional description (the main
/// core's standby slot). Taking the primary's slot, it ends up described
/// as the primary everywhere, itself included.
#[test]
fn a_spare_started_with_a_provisional_slot_takes_the_one_it_replaces() {
    let mut sim = started(&denver_paris(), 21);
    let mut load = Load::new(&["denver", "paris"], Duration::from_millis(5));
    load.run(&mut sim, Duration::from_secs(1));
    sim.crash_host("esxi-1");
    load.run(&mut sim, Duration::from_secs(1));
    assert_eq!(sim.leader(), Some(CM01B));
    let new = spec(NEW, "esxi-4");
    let standby = sim.topology().member(CM01B).unwrap().clone();
    let provisional = Member {
        spec: new.clone(),
        site: standby.site.clone(),
        role: standby.role.clone(),
    };
    sim.node_mut(CM01B)
        .unwrap()
        .replace_member(CM01A, new)
        .unwrap();
    sim.flush(CM01B);
    sim.add_member(provisional);
    until_promoted(&mut sim, &mut load, CM01A, NEW);
    load.run(&mut sim, Duration::from_secs(1));
    settle(&mut sim);
    assert_coherent(&sim, CM01A, NEW);
    assert_acknowledged_applied(&sim, &load, NEW);
    assert_clean(&mut sim);
}
