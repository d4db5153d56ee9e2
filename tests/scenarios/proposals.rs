//! Proposals: applied at most once and always answered, whatever the
//! proposer missed.

use std::time::Duration;

use raft::eraftpb::{Entry, Message, MessageType};

use crate::support::*;

#[test]
fn a_proposer_that_catches_up_from_a_snapshot_still_gets_every_answer() {
    let mut sim = started(&denver_paris(), 31);
    // CM02a hears almost nothing from the leader but keeps proposing; the
    // leader compacts its log meanwhile, so CM02a comes back by snapshot.
    sim.set_link_loss(CM01A, CM02A, 0.97);
    let mut load = Load::new(&["paris"], Duration::from_millis(2));
    load.run(&mut sim, Duration::from_secs(6));
    sim.restore_links();
    load.run(&mut sim, Duration::from_millis(200));
    assert!(
        sim.run_until_converged(Duration::from_secs(10)),
        "still pending"
    );
    let at_cm02a =
        |sim: &survivable_core::sim::Sim<_>| sim.node(CM02A).unwrap().counters().duplicates_dropped;
    let dups = at_cm02a(&sim);
    sim.run_for(Duration::from_secs(2));
    assert_eq!(
        at_cm02a(&sim),
        dups,
        "retries went on after everything was answered"
    );
    assert_eq!(
        sim.commits().len(),
        load.proposed.len(),
        "every proposal answered"
    );
    let unseen = sim
        .commits()
        .iter()
        .filter(|c| {
            c.outcome
                .result
                .as_ref()
                .is_ok_and(|a| a.response.is_none())
        })
        .count();
    assert!(unseen > 0, "the scenario did not make CM02a miss applies");
    assert_acknowledged_applied(&sim, &load, CM01A);
    assert_clean(&mut sim);
}

/// A proposal another member forwarded to a member that is not the leader
/// (it stopped leading while the request was on its way): raft would relay
/// it on under the first sender's name, which the leader refuses as spoofed
/// (a TCP transport even closes the connection). It is dropped and counted
/// instead; its sender re-submits once it learns the leader.
#[test]
fn a_forwarded_proposal_is_not_relayed_under_another_name() {
    let mut sim = started(&denver_paris(), 1);
    sim.run_for(Duration::from_millis(500));
    assert_eq!(sim.leader(), Some(CM01A));
    let mut m = Message::default();
    m.set_msg_type(MessageType::MsgPropose);
    m.from = CM02B.0;
    m.to = CM01B.0;
    m.mut_entries().push(Entry {
        data: b"set call-1 up".to_vec().into(),
        ..Entry::default()
    });
    let node = sim.node_mut(CM01B).unwrap();
    node.step(envelope(&m))
        .expect("a member's request is taken");
    let mut sent = Vec::new();
    while let Some(env) = node.poll_transmit() {
        sent.push(env);
    }
    for env in &sent {
        let inner = env.raft_message().expect("a raft message").from;
        assert_eq!((env.from, inner), (CM01B.0, CM01B.0), "{env:?}");
    }
    assert_eq!(node.counters().relays_dropped, 1);
    assert_eq!(node.counters().rejected(), 0);
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.leader(), Some(CM01A));
    assert_clean(&mut sim);
}
