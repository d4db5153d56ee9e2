//! Behaviour 3, redundancy restored (paper Fig. 5): after the primary's
//! host died, a replacement member on another host joins as a learner,
//! catches up, becomes the new standby, and the dead member is removed.

use std::time::Duration;

use survivable_core::node::NodeRole;
use survivable_core::sim::{KvStore, Sim};
use survivable_core::topology::{Appliance, MemberSpec, NodeId};
use survivable_core::{Event, MembershipError};

use crate::support::*;

const CM01C: NodeId = NodeId(8);

fn spec(id: NodeId, host: &str, appliance: Appliance) -> MemberSpec {
    MemberSpec {
        id,
        name: format!("CM01-{}", id.0),
        host: host.into(),
        appliance,
    }
}

#[test]
fn a_replacement_becomes_the_new_standby() {
    let mut sim = started(&denver_paris(), 6);
    let mut load = Load::new(&["denver", "paris"], Duration::from_millis(5));
    load.run(&mut sim, Duration::from_secs(1));
    sim.crash_host("esxi-1");
    load.run(&mut sim, Duration::from_secs(1));
    assert_eq!(sim.leader(), Some(CM01B));

    let new = spec(CM01C, "esxi-4", Appliance::Virtual);
    let member = sim
        .node(CM01B)
        .unwrap()
        .replacement_member(CM01A, new.clone())
        .unwrap();
    assert_eq!(member.site, "denver");
    sim.node_mut(CM01B)
        .unwrap()
        .replace_member(CM01A, new)
        .unwrap();
    sim.flush(CM01B);
    sim.add_member(member);
    let t0 = sim.now_us();
    let restored = {
        let mut done = false;
        for _ in 0..50 {
            load.run(&mut sim, Duration::from_millis(100));
            let voters = sim.node(CM01B).unwrap().voters();
            if voters.contains(&CM01C) && !voters.contains(&CM01A) {
                done = true;
                break;
            }
        }
        done
    };
    assert!(restored, "trace:\n{}", sim.trace().join("\n"));
    // Learner first, then voter, and the dead member removed.
    let order: Vec<&Event> = events_since(&sim, t0, |e| {
        matches!(
            e,
            Event::MemberAdded { .. } | Event::MemberPromoted { .. } | Event::MemberRemoved { .. }
        )
    })
    .filter(|(_, id, _)| *id == CM01B)
    .map(|(_, _, e)| e)
    .collect();
    assert_eq!(
        order,
        vec![
            &Event::MemberAdded { id: CM01C },
            &Event::MemberPromoted { id: CM01C },
            &Event::MemberRemoved { id: CM01A },
        ]
    );
    load.run(&mut sim, Duration::from_secs(1));
    settle(&mut sim);
    assert_eq!(sim.node(CM01C).unwrap().status().role, NodeRole::Follower);
    assert_acknowledged_applied(&sim, &load, CM01C);
    assert_clean(&mut sim);

    // The replacement is a real standby: the next primary failure moves
    // leadership to it, fast.
    let t1 = sim.now_us();
    let old_term = term(&sim);
    sim.crash_host("esxi-3");
    load.run(&mut sim, Duration::from_secs(2));
    settle(&mut sim);
    assert_eq!(sim.leader(), Some(CM01C));
    let took = first_commit_after(&sim, t1, old_term).unwrap();
    let budget = crate::duplication_failover::failover_budget_ms();
    assert!(took <= budget, "second failover took {took} ms");
    assert_acknowledged_applied(&sim, &load, CM01C);
    assert_clean(&mut sim);
}

#[test]
fn bad_replacements_are_refused_with_a_reason() {
    let mut sim = started(&denver_paris(), 7);
    sim.crash_host("esxi-1");
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.leader(), Some(CM01B));
    let leader = sim.node_mut(CM01B).unwrap();
    // On the surviving partner's host: anti-affinity.
    assert_eq!(
        leader.replace_member(CM01A, spec(CM01C, "esxi-3", Appliance::Virtual)),
        Err(MembershipError::SharesHost {
            new: CM01C,
            partner: CM01B,
            host: "esxi-3".into()
        })
    );
    // A dedicated server next to a virtual partner.
    assert_eq!(
        leader.replace_member(CM01A, spec(CM01C, "esxi-4", Appliance::Dedicated)),
        Err(MembershipError::MixesAppliances {
            new: CM01C,
            partner: CM01B
        })
    );
    // Reusing an id, replacing a non-member, replacing the leader itself.
    assert_eq!(
        leader.replace_member(CM01A, spec(W1, "esxi-4", Appliance::Virtual)),
        Err(MembershipError::IdInUse(W1))
    );
    assert_eq!(
        leader.replace_member(NodeId(42), spec(CM01C, "esxi-4", Appliance::Virtual)),
        Err(MembershipError::NotAVoter(NodeId(42)))
    );
    assert_eq!(
        leader.replace_member(CM01B, spec(CM01C, "esxi-4", Appliance::Virtual)),
        Err(MembershipError::IsLeader(CM01B))
    );
    let err = leader
        .replace_member(CM01A, spec(CM01C, "esxi-3", Appliance::Virtual))
        .unwrap_err();
    assert!(err.to_string().contains("pick another host"));
    // At a follower: the error names the leader.
    let follower = sim.node_mut(CM02A).unwrap();
    assert_eq!(
        follower.replace_member(CM01A, spec(CM01C, "esxi-4", Appliance::Virtual)),
        Err(MembershipError::NotLeader {
            leader: Some(CM01B)
        })
    );
    // Nothing changed.
    assert_eq!(sim.node(CM01B).unwrap().voters().len(), 5);
    sim.run_for(Duration::from_secs(1));
    assert_clean(&mut sim);
}

/// Voters as the leader `at` applies them.
fn voters(sim: &Sim<KvStore>, at: NodeId) -> Vec<NodeId> {
    sim.node(at).unwrap().voters()
}

#[test]
fn a_replacement_is_promoted_only_once_it_has_connected() {
    let mut sim = started(&denver_paris(), 8);
    // A young log (no load yet): a few entries, so "within
    // max_lag_entries of the last index" holds for a member that has none.
    sim.run_for(Duration::from_secs(1));
    sim.crash_host("esxi-1");
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.leader(), Some(CM01B));
    let new = spec(CM01C, "esxi-4", Appliance::Virtual);
    let member = sim
        .node(CM01B)
        .unwrap()
        .replacement_member(CM01A, new.clone())
        .unwrap();
    sim.node_mut(CM01B)
        .unwrap()
        .replace_member(CM01A, new)
        .unwrap();
    sim.flush(CM01B);
    let t0 = sim.now_us();

    // Never started: the leader never hears from it. Three seconds is
    // many times what a promotion takes once the replacement is there (the
    // learner's configuration change commits in one RTT, the promotion
    // waits one election timeout, 200 ms, after it): nothing may happen.
    sim.run_for(Duration::from_secs(3));
    let v = voters(&sim, CM01B);
    assert!(v.contains(&CM01A) && !v.contains(&CM01C), "voters {v:?}");

    // Started but cut off from everyone: still not heard, not caught up.
    sim.add_member(member);
    sim.isolate(CM01C);
    let mut load = Load::new(&["denver", "paris"], Duration::from_millis(5));
    load.run(&mut sim, Duration::from_secs(3));
    let v = voters(&sim, CM01B);
    assert!(v.contains(&CM01A) && !v.contains(&CM01C), "voters {v:?}");
    let promoted = events_since(&sim, t0, |e| matches!(e, Event::MemberPromoted { .. })).count();
    assert_eq!(promoted, 0, "trace:\n{}", sim.trace().join("\n"));

    // Connected: it catches up and is promoted; the dead member goes. The
    // bound: one election timeout (200 ms) between configuration changes,
    // twice (the learner's own change was long committed, so one wait for
    // the promotion and one to leave the joint configuration), plus the
    // catch-up of 3 s of load at one append per RTT: 5 s is ample.
    sim.heal();
    let mut restored = false;
    for _ in 0..50 {
        load.run(&mut sim, Duration::from_millis(100));
        let v = voters(&sim, CM01B);
        if v.contains(&CM01C) && !v.contains(&CM01A) {
            restored = true;
            break;
        }
    }
    assert!(restored, "trace:\n{}", sim.trace().join("\n"));
    load.run(&mut sim, Duration::from_secs(1));
    settle(&mut sim);
    assert_acknowledged_applied(&sim, &load, CM01C);
    assert_clean(&mut sim);
}
