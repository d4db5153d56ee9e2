//! Maintenance: draining a member (leadership moves off it, it never
//! campaigns again, it stays a replica), undraining it, and an operator's
//! leader transfer to a named member, with refusals for bad targets.
//! Applies are counted per proposal id by the simulator's checker
//! ([`assert_clean`]: no proposal applied twice anywhere), not read off
//! the key-value state.

use std::time::Duration;

use survivable_core::node::ProposalId;
use survivable_core::sim::{KvStore, Sim};
use survivable_core::topology::{denver_paris_two_site, NodeId};
use survivable_core::{DrainError, Event, TransferError};

use crate::support::*;

/// Default timers: 5 ms ticks, 200 ms election timeout, 2 s survivable_after.
const TICK_MS: u64 = 5;
const ELECTION_MS: u64 = 200;
const SURVIVABLE_AFTER_MS: u64 = 2_000;
/// The simulator's default LAN round trip.
const LAN_RTT_MS: u64 = 1;

/// What a leader transfer to an up-to-date member of the leader's LAN
/// needs, in ms: the target's acknowledgement of the last entry (one LAN
/// round, or none when everything is already on its way), then its
/// campaign's votes: in witness mode a quorum of the five voters includes
/// at least one member across the WAN (Kansas or Paris), one WAN round
/// trip (in main-site mode every voter is in Denver: a LAN round); plus a
/// tick at each of the two steps for the node to act.
const TRANSFER_BOUND_MS: u64 = LAN_RTT_MS + WAN_RTT_MS + 2 * TICK_MS;

/// Runs an operator call at `at` and sends what it produced.
fn operate<R>(
    sim: &mut Sim<KvStore>,
    at: NodeId,
    call: impl FnOnce(&mut survivable_core::Node<survivable_core::sim::Observed<KvStore>>) -> R,
) -> R {
    let r = call(sim.node_mut(at).expect("member is up"));
    sim.flush(at);
    r
}

/// Proposes `n` commands at `at`, a tick apart, returning their ids.
fn propose_at(sim: &mut Sim<KvStore>, at: NodeId, tag: &str, n: u32) -> Vec<ProposalId> {
    let mut ids = Vec::new();
    for i in 0..n {
        let cmd = format!("set {tag}{i} {i}").into_bytes();
        ids.push(sim.propose(at, cmd).expect("a drained member forwards"));
        sim.run_for(Duration::from_millis(TICK_MS));
    }
    ids
}

fn acknowledged(sim: &Sim<KvStore>, ids: &[ProposalId]) -> bool {
    ids.iter().all(|id| {
        sim.commits()
            .iter()
            .any(|c| c.id == *id && c.outcome.result.is_ok())
    })
}

/// Drains the leader CM01a under load and waits for CM01b to lead;
/// returns the load and the time of the drain (µs).
fn drain_the_leader(sim: &mut Sim<KvStore>, load: &mut Load) -> u64 {
    load.run(sim, Duration::from_millis(500));
    assert_eq!(sim.leader(), Some(CM01A));
    let t0 = sim.now_us();
    operate(sim, CM01A, |n| n.drain()).unwrap();
    let moved = sim.run_until(Duration::from_millis(TRANSFER_BOUND_MS), |s| {
        s.leader() == Some(CM01B)
    });
    let took_ms = (sim.now_us() - t0) / 1000;
    println!(
        "drain: leadership moved CM01a -> CM01b in {took_ms} ms (bound {TRANSFER_BOUND_MS} ms)"
    );
    assert!(
        moved,
        "leadership did not move to the partner within {TRANSFER_BOUND_MS} ms; trace:\n{}",
        sim.trace().join("\n")
    );
    assert!(sim.node(CM01A).unwrap().status().drained);
    assert!(events_since(sim, t0, |e| matches!(e, Event::Drained)).any(|(_, id, _)| *id == CM01A));
    t0
}

#[test]
fn a_drained_leader_hands_to_its_partner_and_never_leads_again_even_alone_in_its_site() {
    for seed in 1..=3 {
        let mut sim = started(&denver_paris(), seed);
        let mut load = Load::new(&["denver", "paris"], Duration::from_millis(20));
        let t0 = drain_the_leader(&mut sim, &mut load);
        // Proposals made at the drained member are forwarded and applied.
        let at_drained = propose_at(&mut sim, CM01A, "drained", 20);
        load.run(&mut sim, Duration::from_secs(2));
        assert!(acknowledged(&sim, &at_drained), "seed {seed}");

        // Kill the new leader: CM01a is the only core member left in
        // Denver, yet it must not take over. What happens instead: the
        // five voters keep a quorum (CM01a votes), and Paris's rank-1 core
        // takes over after survivable_after; hand-back never picks CM01a.
        let killed = sim.now_us();
        sim.crash(CM01B);
        // survivable_after, then an election: pre-vote and vote, a WAN
        // round each, retried within two election timeouts if split.
        let bound = Duration::from_millis(SURVIVABLE_AFTER_MS + 2 * ELECTION_MS + 2 * WAN_RTT_MS);
        let paris = sim.run_until(bound, |s| {
            s.leader().is_some_and(|l| s.site_of(l) == "paris")
        });
        assert!(
            paris,
            "seed {seed}: Paris did not take over; trace:\n{}",
            sim.trace().join("\n")
        );
        println!(
            "seed {seed}: CM01b killed, CM02x led after {} ms",
            (sim.now_us() - killed) / 1000
        );
        // A long run with faults: proposals everywhere, the drained
        // member's included, a Paris failover and a WAN cut.
        let more = propose_at(&mut sim, CM01A, "alone", 10);
        load.run(&mut sim, Duration::from_secs(5));
        let paris_leader = sim.leader().unwrap();
        sim.crash(paris_leader);
        load.run(&mut sim, Duration::from_secs(3));
        sim.partition_sites(&["denver"], &["paris", "kansas"]);
        load.run(&mut sim, Duration::from_secs(3));
        sim.heal();
        sim.restart(paris_leader);
        load.run(&mut sim, Duration::from_secs(10));
        assert!(acknowledged(&sim, &more), "seed {seed}");
        let led: Vec<_> = leaders_since(&sim, t0);
        assert!(
            led.iter().all(|&(_, id)| id != CM01A),
            "seed {seed}: the drained member led: {led:?}"
        );
        let offered = events_since(
            &sim,
            t0,
            |e| matches!(e, Event::HandBackAttempt { target, .. } | Event::TransferStarted { target } if *target == CM01A),
        );
        assert_eq!(
            offered.count(),
            0,
            "seed {seed}: leadership offered to CM01a"
        );
        assert!(events_since(&sim, t0, |e| matches!(
            e,
            Event::TakeoverStarted { .. }
                | Event::FailoverStarted { .. }
                | Event::LastResortCampaign { .. }
        ))
        .all(|(_, id, _)| *id != CM01A));

        // Undrained, it takes leadership again when handed it.
        sim.restart(CM01B);
        settle(&mut sim);
        operate(&mut sim, CM01A, |n| n.undrain()).unwrap();
        assert_eq!(
            operate(&mut sim, CM01A, |n| n.undrain()),
            Err(DrainError::NotDrained)
        );
        sim.run_for(Duration::from_millis(WAN_RTT_MS));
        let leader = sim.leader().unwrap();
        if leader != CM01A {
            operate(&mut sim, leader, |n| n.transfer_leader(CM01A)).unwrap();
        }
        let back = sim.run_until(Duration::from_millis(ELECTION_MS), |s| {
            s.leader() == Some(CM01A)
        });
        assert!(back, "seed {seed}: CM01a did not lead again once undrained");
        settle(&mut sim);
        assert_clean(&mut sim);
        assert_acknowledged_applied(&sim, &load, CM01A);
    }
}

#[test]
fn in_main_site_mode_the_tie_breaker_leads_instead_of_a_drained_member() {
    // Denver holds the voters: CM01a, CM01b and the tie-breaker TB (id 5).
    let mut sim = started(&denver_paris_two_site(), 7);
    let mut load = Load::new(&["denver"], Duration::from_millis(20));
    let t0 = drain_the_leader(&mut sim, &mut load);
    sim.crash(CM01B);
    // What happens instead of CM01a taking over: the tie-breaker leads as
    // the last resort, and keeps leading (it cannot hand on to a drained
    // member); the main site keeps its majority, so Paris does not fork.
    let tb = NodeId(5);
    let led = sim.run_until(Duration::from_millis(SURVIVABLE_AFTER_MS), |s| {
        s.leader() == Some(tb)
    });
    assert!(
        led,
        "the tie-breaker did not lead; trace:\n{}",
        sim.trace().join("\n")
    );
    let ids = propose_at(&mut sim, CM01A, "tb", 10);
    load.run(&mut sim, Duration::from_secs(6));
    assert!(acknowledged(&sim, &ids));
    assert_eq!(sim.leader(), Some(tb));
    assert!(leaders_since(&sim, t0).iter().all(|&(_, id)| id != CM01A));
    assert!(
        events_since(&sim, t0, |e| matches!(e, Event::Activated { .. }))
            .next()
            .is_none()
    );
    sim.restart(CM01B);
    load.run(&mut sim, Duration::from_secs(3));
    assert_eq!(
        sim.leader(),
        Some(CM01B),
        "the tie-breaker hands on to CM01b"
    );
    settle(&mut sim);
    assert_clean(&mut sim);
    assert_acknowledged_applied(&sim, &load, CM01A);
}

#[test]
fn transfer_leader_moves_leadership_to_the_named_member_and_refuses_bad_targets() {
    let mut sim = started(&denver_paris(), 3);
    let mut load = Load::new(&["denver", "paris"], Duration::from_millis(20));
    load.run(&mut sim, Duration::from_millis(500));
    let t0 = sim.now_us();
    operate(&mut sim, CM01A, |n| n.transfer_leader(CM01B)).unwrap();
    assert!(
        sim.run_until(Duration::from_millis(TRANSFER_BOUND_MS), |s| s.leader()
            == Some(CM01B)),
        "transfer did not land within {TRANSFER_BOUND_MS} ms"
    );
    println!("transfer CM01a -> CM01b: {} ms", (sim.now_us() - t0) / 1000);
    assert!(events_since(
        &sim,
        t0,
        |e| matches!(e, Event::TransferStarted { target } if *target == CM01B)
    )
    .any(|(_, id, _)| *id == CM01A));

    // CM01a learns who leads from CM01b's first append: half a LAN round.
    sim.run_for(Duration::from_millis(LAN_RTT_MS + TICK_MS));
    // Refusals, each naming what is wrong; nothing changes.
    let at_follower = operate(&mut sim, CM01A, |n| n.transfer_leader(CM02A)).unwrap_err();
    assert_eq!(
        at_follower,
        TransferError::NotLeader {
            leader: Some(CM01B)
        }
    );
    assert_eq!(
        at_follower.to_string(),
        "this member does not lead; ask the leader n2"
    );
    let refused = |sim: &mut Sim<KvStore>, to: NodeId| {
        let r = operate(sim, CM01B, |n| n.transfer_leader(to));
        r.expect_err(&format!("a transfer to {to} must be refused"))
    };
    assert_eq!(
        refused(&mut sim, CM01B),
        TransferError::AlreadyLeader(CM01B)
    );
    assert_eq!(refused(&mut sim, W1), TransferError::Witness(W1));
    assert_eq!(
        refused(&mut sim, NodeId(42)),
        TransferError::UnknownMember(NodeId(42))
    );
    operate(&mut sim, CM02A, |n| n.drain()).unwrap();
    // The drain notice crosses the WAN: one way, half a round trip.
    sim.run_for(Duration::from_millis(WAN_RTT_MS));
    assert_eq!(refused(&mut sim, CM02A), TransferError::Drained(CM02A));
    sim.crash(CM02B);
    // Its last answer may still be on the WAN when it dies (half a round
    // trip); unreachable once an election timeout has passed since, on
    // the leader's tick.
    sim.run_for(Duration::from_millis(
        ELECTION_MS + WAN_RTT_MS / 2 + 2 * TICK_MS,
    ));
    assert_eq!(refused(&mut sim, CM02B), TransferError::Unreachable(CM02B));
    assert_eq!(sim.leader(), Some(CM01B));

    // To Paris's undrained member once CM02a is undrained and CM02b back.
    operate(&mut sim, CM02A, |n| n.undrain()).unwrap();
    sim.restart(CM02B);
    load.run(&mut sim, Duration::from_secs(1));
    operate(&mut sim, CM01B, |n| n.transfer_leader(CM02A)).unwrap();
    assert!(
        sim.run_until(Duration::from_millis(TRANSFER_BOUND_MS + WAN_RTT_MS), |s| s
            .leader()
            == Some(CM02A))
    );
    load.run(&mut sim, Duration::from_secs(1));
    settle(&mut sim);
    assert_clean(&mut sim);
    assert_acknowledged_applied(&sim, &load, CM01A);
}
