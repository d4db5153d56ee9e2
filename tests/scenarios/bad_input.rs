//! Bad input (see `survivable_core::manual::model#also-checked`): wrong
//! cluster, unknown sender, stale epoch, malformed bytes, misaddressed or
//! spoofed envelopes and bad proposals are refused with a typed error and a
//! counter, and change nothing.

use std::time::Duration;

use raft::eraftpb::{Entry, EntryType, Message, MessageType};
use survivable_core::node::{EpochId, ProposalId};
use survivable_core::sim::KvStore;
use survivable_core::storage::MemStorage;
use survivable_core::topology::NodeId;
use survivable_core::wire::{Envelope, WireError, MAX_FRAME_LEN, PROTOCOL_VERSION};
use survivable_core::{Fatal, Node, NodeConfig, ProposeError, StepError};

use crate::support::*;

fn heartbeat(from: NodeId, to: NodeId, term: u64) -> Envelope {
    let mut m = Message::default();
    m.set_msg_type(MessageType::MsgHeartbeat);
    m.from = from.0;
    m.to = to.0;
    m.term = term;
    envelope(&m)
}

#[test]
fn refused_envelopes_change_nothing_and_are_counted() {
    let mut sim = started(&denver_paris(), 1);
    sim.run_for(Duration::from_millis(500));
    let term = sim.node(CM01B).unwrap().term();
    // A higher term would depose the leader if it got through.
    let good = heartbeat(CM01A, CM01B, term + 5);
    type Expect = fn(&StepError) -> bool;
    let cases: Vec<(Envelope, Expect)> = vec![
        (
            Envelope {
                cluster_id: 9,
                ..good.clone()
            },
            |e| {
                matches!(
                    e,
                    StepError::WrongCluster {
                        got: 9,
                        expected: 2026,
                        ..
                    }
                )
            },
        ),
        (
            Envelope {
                version: PROTOCOL_VERSION + 1,
                ..good.clone()
            },
            |e| matches!(e, StepError::UnsupportedVersion { .. }),
        ),
        (
            Envelope {
                to: CM02A.0,
                ..good.clone()
            },
            |e| matches!(e, StepError::WrongRecipient { .. }),
        ),
        (
            Envelope {
                from: 77,
                ..heartbeat(NodeId(77), CM01B, term + 5)
            },
            |e| matches!(e, StepError::UnknownSender { from: 77 }),
        ),
        (
            Envelope {
                epoch: 0,
                ..good.clone()
            },
            |e| {
                // Witness mode has no epochs: any other epoch is refused
                // as such (it was `OtherEpoch` before epoch claims were
                // refused in this mode).
                matches!(
                    e,
                    StepError::EpochInWitnessMode {
                        got: EpochId { number: 0, .. },
                        from: 1,
                    }
                )
            },
        ),
        (
            Envelope {
                from: W1.0,
                ..good.clone()
            },
            |e| matches!(e, StepError::Spoofed { .. }),
        ),
        (
            Envelope {
                raft: vec![0x0a, 0xff, 0xff],
                ..good.clone()
            },
            |e| matches!(e, StepError::Wire(WireError::MalformedRaft { .. })),
        ),
    ];
    let before = sim.node(CM01B).unwrap().status();
    for (i, (env, expected)) in cases.into_iter().enumerate() {
        let node = sim.node_mut(CM01B).unwrap();
        let err = node.step(env).expect_err("refused");
        assert!(expected(&err), "case {i}: {err:?}");
        assert!(!err.to_string().is_empty());
        assert_eq!(node.counters().rejected(), i as u64 + 1);
        assert_eq!(node.status(), before, "case {i} changed the node");
    }
    let c = sim.node(CM01B).unwrap().counters().clone();
    assert_eq!(
        (
            c.wrong_cluster,
            c.unsupported_version,
            c.wrong_recipient,
            c.unknown_sender,
            c.other_epoch,
            c.spoofed,
            c.malformed
        ),
        (1, 1, 1, 1, 1, 1, 1)
    );
    sim.flush(CM01B);
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.leader(), Some(CM01A), "nothing reached raft");
    assert_clean(&mut sim);
}

#[test]
fn garbage_bytes_are_typed_errors() {
    assert!(matches!(
        Envelope::from_bytes(&[0xff; 7]),
        Err(WireError::MalformedEnvelope(_))
    ));
    assert!(matches!(
        Envelope::from_bytes(&vec![0; MAX_FRAME_LEN + 1]),
        Err(WireError::FrameTooLarge { .. })
    ));
    // Truncated real envelopes never panic.
    let bytes = heartbeat(CM01A, CM01B, 3).to_bytes();
    for n in 0..bytes.len() {
        let _ = Envelope::from_bytes(&bytes[..n]).and_then(|e| e.raft_message().map(|_| ()));
    }
}

#[test]
fn bad_proposals_are_refused_up_front() {
    let topology = build(&denver_paris());
    let mut cfg = NodeConfig::new(CM01B, topology.clone());
    cfg.forward_proposals = false;
    cfg.max_pending = 2;
    cfg.max_command_len = 16;
    let mut node = Node::new(cfg, MemStorage::new(), KvStore::default()).unwrap();
    assert_eq!(
        node.propose(vec![0; 17]),
        Err(ProposeError::TooLarge { len: 17, max: 16 })
    );
    // Before any election the leader is unknown (see the next test for a
    // follower that knows it).
    assert_eq!(
        node.propose(b"x".to_vec()),
        Err(ProposeError::NotLeader { leader: None })
    );

    // Forwarding on (the default), a full queue is refused.
    let mut cfg = NodeConfig::new(CM01B, topology.clone());
    cfg.max_pending = 2;
    let mut node = Node::new(cfg, MemStorage::new(), KvStore::default()).unwrap();
    let a: ProposalId = node.propose(b"set a 1".to_vec()).unwrap();
    let b = node.propose(b"set b 1".to_vec()).unwrap();
    assert_ne!(a, b);
    assert_eq!(
        node.propose(b"set c 1".to_vec()),
        Err(ProposeError::QueueFull {
            pending: 2,
            limit: 2
        })
    );
    // A node that is not in the topology does not start.
    let err = Node::new(
        NodeConfig::new(NodeId(99), topology),
        MemStorage::new(),
        KvStore::default(),
    )
    .err()
    .unwrap();
    assert_eq!(err, Fatal::UnknownNode(NodeId(99)));
}

#[test]
fn a_follower_without_forwarding_names_the_leader() {
    let topology = build(&denver_paris());
    let mut sim = survivable_core::sim::Sim::builder(topology)
        .seed(3)
        .node_config(|c| c.forward_proposals = false)
        .build(|_| KvStore::default());
    assert!(sim.run_until(Duration::from_secs(3), |s| s.leader() == Some(CM01A)));
    sim.run_for(Duration::from_millis(200));
    assert_eq!(
        sim.propose(CM02A, b"set a 1".to_vec()),
        Err(ProposeError::NotLeader {
            leader: Some(CM01A)
        })
    );
    assert!(sim.propose(CM01A, b"set a 1".to_vec()).is_ok());
}

/// A forwarded proposal from `from` to `to` carrying `entries`.
fn forwarded_proposal(from: NodeId, to: NodeId, term: u64, entries: Vec<Entry>) -> Envelope {
    let mut m = Message::default();
    m.set_msg_type(MessageType::MsgPropose);
    m.from = from.0;
    m.to = to.0;
    m.term = term;
    m.entries = entries.into();
    envelope(&m)
}

#[test]
fn a_forwarded_proposal_that_is_no_command_is_refused_not_a_crash() {
    let mut sim = started(&denver_paris(), 4);
    sim.run_for(Duration::from_millis(300));
    let term = sim.node(CM01A).unwrap().term();
    let conf_change = Entry {
        entry_type: EntryType::EntryConfChangeV2,
        ..Entry::default()
    };
    // raft aborts the process on an empty proposal; a configuration change
    // is the leader's alone.
    for entries in [Vec::new(), vec![conf_change]] {
        let before = sim.node(CM01A).unwrap().status();
        let node = sim.node_mut(CM01A).unwrap();
        let err = node
            .step(forwarded_proposal(CM01B, CM01A, term, entries))
            .unwrap_err();
        assert!(
            matches!(&err, StepError::Refused { from: 2, reason } if reason.contains("command")),
            "{err}"
        );
        assert_eq!(node.status(), before);
    }
    assert_eq!(sim.node(CM01A).unwrap().counters().refused, 2);
    sim.flush(CM01A);
    sim.run_for(Duration::from_millis(300));
    assert_eq!(sim.leader(), Some(CM01A));
    assert_clean(&mut sim);
}

#[test]
fn proposals_raft_drops_during_a_transfer_are_not_bad_input() {
    let mut b = denver_paris();
    b.hand_back(hand_back(
        survivable_core::policy::HandBackPolicy::Immediate,
    ));
    let mut sim = started(&b, 5);
    sim.partition_sites(&["denver"], &["paris", "kansas"]);
    sim.run_for(Duration::from_secs(3));
    assert_eq!(sim.leader(), Some(CM02A));
    sim.heal();
    let healed = sim.now_us();
    let attempt = sim.run_until(Duration::from_secs(2), |s| {
        events_since(s, healed, |e| {
            matches!(e, survivable_core::Event::HandBackAttempt { .. })
        })
        .next()
        .is_some()
    });
    assert!(attempt);
    // The transfer is under way: raft drops a forwarded proposal, whose
    // proposer re-submits it to the next leader.
    let term = sim.node(CM02A).unwrap().term();
    let cmd = Entry {
        data: b"set x 1".to_vec().into(),
        ..Entry::default()
    };
    let node = sim.node_mut(CM02A).unwrap();
    node.step(forwarded_proposal(CM02B, CM02A, term, vec![cmd]))
        .expect("not refused");
    let c = node.counters();
    assert_eq!((c.proposals_dropped, c.refused, c.rejected()), (1, 0, 0));
    sim.flush(CM02A);
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.leader(), Some(CM01A));
    assert_clean(&mut sim);
}
