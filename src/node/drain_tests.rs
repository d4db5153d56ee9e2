//! Maintenance decisions: who can take leadership, where a drained leader
//! moves it, and that a drained member never campaigns.

use raft::eraftpb::{Message, MessageType};

use super::*;
use crate::error::ActivateError;
use crate::ids::FIRST_EPOCH;
use crate::node::testkit::timers;
use crate::node::{NodeConfig, NodeRole};
use crate::state_machine::RestoreError;
use crate::storage::MemStorage;
use crate::topology::{denver_paris, denver_paris_two_site, TopologyBuilder};
use crate::wire::Envelope;

const LEADER: NodeId = NodeId(1);
const PARTNER: NodeId = NodeId(2);

fn gate() -> Freshness {
    Freshness {
        last: 100,
        max_lag: 10,
        settled: 0,
        tick_no: 1000,
        election: 20,
    }
}

/// A reachable, up-to-date voter of another core.
fn peer(id: u64, preference: u32) -> Peer {
    Peer {
        id: NodeId(id),
        same_core: false,
        preference,
        position: 0,
        voter: true,
        witness: false,
        drained: false,
        heard: Some(995),
        matched: 100,
    }
}

#[test]
fn a_transfer_goes_only_to_a_reachable_fresh_undrained_core_voter() {
    let g = gate();
    let ok = peer(2, 0);
    assert_eq!(transfer_check(ok.id, Some(&ok), &g), Ok(()));
    assert_eq!(
        transfer_check(NodeId(9), None, &g),
        Err(TransferError::UnknownMember(NodeId(9)))
    );
    let refused = |p: Peer| transfer_check(p.id, Some(&p), &g);
    assert_eq!(
        refused(Peer { voter: false, ..ok }),
        Err(TransferError::NotAVoter(ok.id))
    );
    assert_eq!(
        refused(Peer {
            witness: true,
            ..ok
        }),
        Err(TransferError::Witness(ok.id))
    );
    assert_eq!(
        refused(Peer {
            drained: true,
            ..ok
        }),
        Err(TransferError::Drained(ok.id))
    );
    // Heard 21 ticks ago, one more than an election timeout.
    assert_eq!(
        refused(Peer {
            heard: Some(979),
            ..ok
        }),
        Err(TransferError::Unreachable(ok.id))
    );
    assert_eq!(
        refused(Peer { heard: None, ..ok }),
        Err(TransferError::Unreachable(ok.id))
    );
    assert_eq!(
        refused(Peer { matched: 89, ..ok }),
        Err(TransferError::TooFarBehind {
            target: ok.id,
            lag: 11,
            max: 10
        })
    );
    // At the allowed lag, or holding what the leader had half an election
    // timeout ago, it catches up within the transfer's election timeout.
    assert_eq!(refused(Peer { matched: 90, ..ok }), Ok(()));
    let settled = Freshness { settled: 80, ..g };
    assert_eq!(
        transfer_check(ok.id, Some(&Peer { matched: 85, ..ok }), &settled),
        Ok(())
    );
}

#[test]
fn a_drained_leader_hands_to_its_partner_first_then_by_preference() {
    let g = gate();
    let partner = Peer {
        same_core: true,
        preference: 1,
        ..peer(2, 1)
    };
    let paris = peer(3, 0);
    let paris_b = Peer {
        position: 1,
        ..peer(4, 0)
    };
    assert_eq!(drain_target(&[paris, partner, paris_b], &g), Some(PARTNER));
    // The partner drained or unreachable: the most preferred, then position.
    let drained = Peer {
        drained: true,
        ..partner
    };
    assert_eq!(drain_target(&[paris_b, drained, paris], &g), Some(paris.id));
    let lost = Peer {
        heard: None,
        ..partner
    };
    assert_eq!(drain_target(&[paris_b, lost], &g), Some(paris_b.id));
    // Nobody can take it: the drained leader keeps leading.
    let witness = Peer {
        witness: true,
        ..peer(5, 0)
    };
    assert_eq!(drain_target(&[drained, witness], &g), None);
}

#[test]
fn drain_notices_repeat_every_election_timeout_and_hold_three() {
    let t = timers();
    let mut s = DrainState::default();
    assert!(!s.notice_due(0, 20), "not drained: nothing to tell");
    s.drained = true;
    assert!(s.notice_due(100, 20));
    assert!(!s.notice_due(119, 20));
    assert!(s.notice_due(120, 20));
    let holds = notice_holds(&t);
    assert_eq!(holds, 60);
    s.note_peer(PARTNER, true, 100);
    assert!(s.peer_drained(PARTNER, 160, holds));
    assert!(!s.peer_drained(PARTNER, 161, holds), "three notices lost");
    s.note_peer(PARTNER, true, 150);
    s.note_peer(PARTNER, false, 151);
    assert!(!s.peer_drained(PARTNER, 152, holds), "undrained at once");
}

/// A state machine that counts what it applies.
#[derive(Default)]
struct Count(u64);

impl StateMachine for Count {
    fn apply(&mut self, _: u64, _: &[u8]) -> Vec<u8> {
        self.0 += 1;
        Vec::new()
    }
    fn snapshot(&self) -> Vec<u8> {
        self.0.to_le_bytes().to_vec()
    }
    fn restore(&mut self, s: &[u8]) -> Result<(), RestoreError> {
        let b: [u8; 8] = s.try_into().unwrap_or_default();
        self.0 = u64::from_le_bytes(b);
        Ok(())
    }
}

fn alone(b: &TopologyBuilder, id: NodeId) -> Node<Count> {
    let topology = b.build().unwrap().shared();
    Node::new(NodeConfig::new(id, topology), MemStorage::new(), Count(0)).unwrap()
}

/// The raft message type an envelope carries (`None` for control).
fn kind(env: &Envelope) -> Option<MessageType> {
    use protobuf::Message as _;
    if env.raft.is_empty() {
        return None;
    }
    Message::parse_from_bytes(&env.raft)
        .ok()
        .map(|m| m.get_msg_type())
}

/// What a node alone sends and reports over `ms` of ticks.
fn run_alone(node: &mut Node<Count>, ms: u64) -> (Vec<MessageType>, Vec<Event>) {
    let (mut sent, mut events) = (Vec::new(), Vec::new());
    let tick = node.ticks.tick_ms;
    let mut now = 1_000;
    while now < 1_000 + ms {
        node.tick(now);
        while let Some(env) = node.poll_transmit() {
            if let Some(k) = kind(&env) {
                sent.push(k);
            }
        }
        while let Some(e) = node.poll_event() {
            events.push(e);
        }
        now += tick;
    }
    (sent, events)
}

fn campaigned(sent: &[MessageType]) -> bool {
    sent.iter().any(|k| {
        matches!(
            k,
            MessageType::MsgRequestPreVote | MessageType::MsgRequestVote
        )
    })
}

#[test]
fn a_drained_member_never_campaigns_however_long_without_a_leader() {
    // Long enough for the main core's election, the deadlock breaker and
    // every survivable rank: twice the witness's wait plus the breaker's.
    let long = |n: &Node<Count>| {
        let t = n.ticks;
        2 * t.ms(deadlock_after_ticks(&t))
    };
    let mut control = alone(&denver_paris(), LEADER);
    let ms = long(&control);
    let (sent, _) = run_alone(&mut control, ms);
    assert!(campaigned(&sent), "the control campaigns");

    let mut drained = alone(&denver_paris(), LEADER);
    drained.drain().unwrap();
    assert_eq!(drained.drain(), Err(DrainError::AlreadyDrained));
    assert!(drained.status().drained);
    let (sent, events) = run_alone(&mut drained, ms);
    assert!(!campaigned(&sent), "a drained member campaigned: {sent:?}");
    assert!(events.iter().all(|e| !matches!(
        e,
        Event::TakeoverStarted { .. }
            | Event::LastResortCampaign { .. }
            | Event::BecameLeader { .. }
    )));
    assert_eq!(drained.raw.raft.priority, 0, "votes for equal logs");

    // Undrained, it campaigns again.
    drained.undrain().unwrap();
    assert_eq!(drained.undrain(), Err(DrainError::NotDrained));
    let (sent, _) = run_alone(&mut drained, ms);
    assert!(campaigned(&sent));
}

fn deadlock_after_ticks(t: &TickTimers) -> usize {
    super::super::election::deadlock_after(t, 2)
}

#[test]
fn a_drained_survivable_member_never_activates_an_epoch() {
    const CM02A: NodeId = NodeId(3);
    let mut control = alone(&denver_paris_two_site(), CM02A);
    let ms = 3 * control.ticks.ms(control.ticks.survivable_after);
    let (_, events) = run_alone(&mut control, ms);
    assert!(
        events.iter().any(|e| matches!(e, Event::Activated { .. })),
        "the control activates alone after survivable_after"
    );

    let mut drained = alone(&denver_paris_two_site(), CM02A);
    drained.drain().unwrap();
    let (_, events) = run_alone(&mut drained, ms);
    assert!(
        events.iter().all(|e| !matches!(e, Event::Activated { .. })),
        "{events:?}"
    );
    assert_eq!(drained.activate(), Err(ActivateError::Drained));
    assert_eq!(drained.epoch(), FIRST_EPOCH);
}

/// A `MsgTimeoutNow` from the leader (a transfer or hand-back to this
/// member), as its envelope.
fn timeout_now(to: &Node<Count>) -> Envelope {
    let mut m = Message::default();
    m.set_msg_type(MessageType::MsgTimeoutNow);
    m.from = LEADER.0;
    m.to = to.id.0;
    m.term = to.term();
    Envelope::wrap(to.topology().cluster_id(), FIRST_EPOCH, &m)
}

#[test]
fn a_drained_member_refuses_leadership_handed_to_it() {
    let mut control = alone(&denver_paris(), PARTNER);
    control.step(timeout_now(&control)).unwrap();
    let (sent, _) = run_alone(&mut control, 5);
    assert!(sent.contains(&MessageType::MsgRequestVote), "{sent:?}");

    let mut drained = alone(&denver_paris(), PARTNER);
    drained.drain().unwrap();
    let _ = run_alone(&mut drained, 5);
    drained.step(timeout_now(&drained)).unwrap();
    let mut told = false;
    while let Some(env) = drained.poll_transmit() {
        assert_ne!(kind(&env), Some(MessageType::MsgRequestVote));
        told |= env.to == LEADER.0 && !env.control.is_empty();
    }
    assert!(told, "the leader is told this member is drained");
    assert_eq!(drained.status().role, NodeRole::Follower);
}

#[test]
fn only_the_leader_transfers_and_says_who_leads() {
    let mut n = alone(&denver_paris(), PARTNER);
    let e = n.transfer_leader(LEADER).unwrap_err();
    assert_eq!(e, TransferError::NotLeader { leader: None });
    let text = e.to_string();
    assert!(text.contains("no leader is known"), "{text}");
    let named = TransferError::NotLeader {
        leader: Some(LEADER),
    };
    assert_eq!(
        named.to_string(),
        "this member does not lead; ask the leader n1"
    );
}
