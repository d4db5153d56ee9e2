//! Behaviour 3 without an operator (paper Fig. 5, like VMware HA): the
//! leader's replacement policy replaces a core member silent for
//! `replace_after` with the first spare the anti-affinity rules allow;
//! the spare starts empty, catches up, and is promoted once connected.
//! The leader reports the core's redundancy lost and restored.

use std::time::Duration;

use survivable_core::node::ReplacePolicy;
use survivable_core::sim::{KvStore, Sim};
use survivable_core::topology::{Appliance, MemberSpec, NodeId};
use survivable_core::Event;

use crate::support::*;

const SPARE: NodeId = NodeId(9);
const AFTER: Duration = Duration::from_secs(3);

fn spare(id: NodeId, host: &str) -> MemberSpec {
    MemberSpec {
        id,
        name: format!("spare-{}", id.0),
        host: host.into(),
        appliance: Appliance::Virtual,
    }
}

/// First time (µs) `at` reported an event matching `pred` since `t0`.
fn first(sim: &Sim<KvStore>, t0: u64, at: NodeId, pred: impl Fn(&Event) -> bool) -> Option<u64> {
    events_since(sim, t0, pred)
        .find(|(_, id, _)| *id == at)
        .map(|(t, _, _)| *t)
}

#[test]
fn a_silent_member_is_replaced_by_the_first_spare_that_fits() {
    let topology = build(&denver_paris());
    let mut sim = Sim::builder(topology)
        .seed(11)
        .node_config(|c| {
            c.replace = Some(ReplacePolicy {
                after: AFTER,
                // The first spare is on the surviving partner's host: the
                // anti-affinity rules rule it out.
                spares: vec![spare(NodeId(10), "esxi-3"), spare(SPARE, "esxi-4")],
                addresses: Default::default(),
            });
        })
        .build(|_| KvStore::default());
    let led = sim.run_until(Duration::from_secs(3), |s| s.leader() == Some(CM01A));
    assert!(led, "trace:\n{}", sim.trace().join("\n"));
    let mut load = Load::new(&["denver", "paris"], Duration::from_millis(5));
    load.run(&mut sim, Duration::from_secs(1));
    // Nothing is lost while every member answers.
    let lost = |e: &Event| matches!(e, Event::RedundancyLost { .. });
    assert_eq!(events_since(&sim, 0, lost).count(), 0);

    let t_crash = sim.now_us();
    sim.crash_host("esxi-1");
    load.run(&mut sim, Duration::from_secs(1));
    assert_eq!(sim.leader(), Some(CM01B));
    let lost_at = first(&sim, t_crash, CM01B, |e| {
        *e == Event::RedundancyLost {
            core: "cm01".into(),
            missing: CM01A,
        }
    });
    assert!(lost_at.is_some(), "trace:\n{}", sim.trace().join("\n"));
    let status = sim.node(CM01B).unwrap().status();
    assert_eq!(status.redundancy.len(), 1, "{status}");
    assert_eq!(status.redundancy[0].missing, vec![CM01A]);
    assert!(status
        .to_string()
        .contains("cm01 running without a standby since"));

    // The spare is not started yet: the policy adds it, and waits.
    let started = |e: &Event| matches!(e, Event::ReplacementStarted { .. });
    sim.run_until(AFTER * 2, |s| first(s, t_crash, CM01B, started).is_some());
    let (t, _, e) = events_since(&sim, t_crash, started).next().unwrap().clone();
    assert_eq!(
        e,
        Event::ReplacementStarted {
            dead: CM01A,
            spare: SPARE
        }
    );
    // A new leader counts a member's silence from the start of its
    // leadership at the earliest (as a follower it did not hear the other
    // followers), and checks every tick (5 ms).
    let t_lead = first(&sim, t_crash, CM01B, |e| {
        matches!(e, Event::BecameLeader { .. })
    })
    .unwrap();
    let after_ms = (t - t_lead) / 1000;
    let after = AFTER.as_millis() as u64;
    assert!(
        (after..=after + 5).contains(&after_ms),
        "replacement started {after_ms} ms after CM01b took over"
    );

    // The spare boots empty, catches up, and takes CM01a's place.
    let member = sim
        .node(CM01B)
        .unwrap()
        .replacement_member(CM01A, spare(SPARE, "esxi-4"))
        .unwrap();
    assert_eq!(member.site, "denver");
    sim.add_member(member);
    // Two configuration changes an election timeout (200 ms) apart, the
    // catch-up of ~4 s of load at one append per RTT: 5 s is ample.
    let mut restored = false;
    for _ in 0..50 {
        load.run(&mut sim, Duration::from_millis(100));
        let v = sim.node(CM01B).unwrap().voters();
        if v.contains(&SPARE) && !v.contains(&CM01A) {
            restored = true;
            break;
        }
    }
    assert!(restored, "trace:\n{}", sim.trace().join("\n"));
    load.run(&mut sim, Duration::from_secs(1));
    settle(&mut sim);
    let back = events_since(
        &sim,
        t_crash,
        |e| matches!(e, Event::RedundancyRestored { core, .. } if core == "cm01"),
    )
    .find(|(_, id, _)| *id == CM01B);
    assert!(back.is_some(), "trace:\n{}", sim.trace().join("\n"));
    assert!(sim.node(CM01B).unwrap().status().redundancy.is_empty());
    // Once per member: no second replacement.
    assert_eq!(events_since(&sim, t_crash, started).count(), 1);
    assert_acknowledged_applied(&sim, &load, SPARE);
    assert_clean(&mut sim);
}

#[test]
fn without_a_policy_nothing_is_replaced_but_the_loss_is_reported() {
    let mut sim = started(&denver_paris(), 12);
    let t_crash = sim.now_us();
    sim.crash_host("esxi-1");
    sim.run_for(Duration::from_secs(1) + AFTER);
    assert_eq!(sim.leader(), Some(CM01B));
    let started = |e: &Event| matches!(e, Event::ReplacementStarted { .. });
    assert_eq!(events_since(&sim, 0, started).count(), 0);
    assert!(sim.node(CM01B).unwrap().voters().contains(&CM01A));
    let status = sim.node(CM01B).unwrap().status();
    assert_eq!(status.redundancy[0].core, "cm01");
    // The follower does not report it: only the leader hears every member.
    assert!(sim.node(CM02A).unwrap().status().redundancy.is_empty());
    // CM01a comes back: redundancy restored, with how long it was lost.
    let t_restart = sim.now_us();
    sim.restart(CM01A);
    sim.run_for(Duration::from_secs(2));
    let back: Vec<&(u64, NodeId, Event)> =
        events_since(&sim, 0, |e| matches!(e, Event::RedundancyRestored { .. })).collect();
    assert_eq!(back.len(), 1, "{back:?}");
    let (t_back, _, Event::RedundancyRestored { lost_ms, .. }) = back[0] else {
        unreachable!()
    };
    // Lost since CM01b took over (it counts silence from then: see the
    // test above) until CM01a answered after its restart, to the tick.
    let t_lead = first(&sim, t_crash, CM01B, |e| {
        matches!(e, Event::BecameLeader { .. })
    })
    .unwrap();
    let down_ms = (t_restart - t_lead) / 1000;
    let until_back_ms = (t_back - t_lead) / 1000;
    assert!(
        (down_ms..=until_back_ms + 5).contains(lost_ms),
        "{lost_ms} ms, down {down_ms} ms, back after {until_back_ms} ms"
    );
    assert_clean(&mut sim);
}
