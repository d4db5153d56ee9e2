//! A topology change through a runtime member's `Handle`, over real TCP
//! loopback: the leader proposes it, every member applies it in log order
//! and says so on its event channel; a follower refuses it with the
//! leader's id, and an invalid change is refused with the reason.

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use support::{partner, Cluster, Options, CM01B};
use survivable_core::node::TopologyChangeError;
use survivable_core::topology::{NodeId, TopologyChange, TopologyError};
use survivable_core::Event;

const W1: NodeId = NodeId(5);

#[test]
fn a_topology_change_through_the_handle_reaches_every_member() {
    let c = Cluster::with(Options {
        tls: false,
        ..Options::default()
    });
    c.settled(CM01B);
    // The follower asked must know the leader to name it: the leader's
    // partner, once it follows (the first member that is not the leader
    // could be one that has not heard from it yet).
    let leader = c.denver_leader_settled();
    let follower = partner(leader);
    let events: Vec<_> = c.members.values().map(|m| m.handle.events()).collect();
    let change = TopologyChange::SetAddress {
        id: W1,
        address: "10.0.0.5:7000".into(),
    };
    assert_eq!(
        c.members[&follower].handle.change_topology(change.clone()),
        Err(TopologyChangeError::NotLeader {
            leader: Some(leader)
        })
    );
    let gap = TopologyChange::SetRank {
        core: "cm02".into(),
        rank: 2,
    };
    assert!(matches!(
        c.members[&leader].handle.change_topology(gap),
        Err(TopologyChangeError::Invalid(TopologyError::RankGap {
            max: 1,
            ..
        }))
    ));
    assert_eq!(c.members[&leader].handle.change_topology(change), Ok(1));
    // Every member applies version 1 and names the member that moved. A
    // commit takes one loopback round trip and the followers learn it on
    // the next heartbeat; 20 s only bounds a hang on a loaded machine.
    let start = Instant::now();
    let mut seen = BTreeSet::new();
    while seen.len() < events.len() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "applied at {seen:?} only"
        );
        for (i, rx) in events.iter().enumerate() {
            while let Ok(e) = rx.try_recv() {
                if let Event::TopologyChanged { version, moved } = e {
                    assert_eq!((version, moved), (1, vec![W1]));
                    seen.insert(i);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
