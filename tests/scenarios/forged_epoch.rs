//! One envelope claiming a newer epoch, sent by a holder of a member's
//! key, must not silence the cluster: in witness mode (no epochs) it is
//! refused with a typed error; in main-site mode the fence it sets is
//! lifted, with an alarm, when no notice of that epoch (the start of a
//! real reunion) follows, and the proposals that waited are answered.

use std::time::Duration;

use raft::eraftpb::{Message, MessageType};
use survivable_core::ids::{EpochId, EpochRecord};
use survivable_core::policy::Timers;
use survivable_core::sim::{KvStore, Sim};
use survivable_core::topology::{denver_paris_two_site, NodeId};
use survivable_core::wire::Envelope;
use survivable_core::{Event, StepError};

use crate::support::*;

/// A heartbeat from `from` to `to` claiming `epoch`.
fn forged(from: NodeId, to: NodeId, term: u64, epoch: EpochId) -> Envelope {
    let mut m = Message::default();
    m.set_msg_type(MessageType::MsgHeartbeat);
    m.from = from.0;
    m.to = to.0;
    m.term = term;
    Envelope {
        epoch: epoch.number,
        epoch_founder: epoch.founder.0,
        ..envelope(&m)
    }
}

/// Every proposal the load made was acknowledged (by proposal id).
fn assert_every_proposal_acknowledged(sim: &Sim<KvStore>, load: &Load) {
    let ok: std::collections::BTreeSet<_> = sim
        .commits()
        .iter()
        .filter(|c| c.outcome.result.is_ok())
        .map(|c| c.id)
        .collect();
    let waiting: Vec<_> = load.proposed.keys().filter(|id| !ok.contains(id)).collect();
    assert_eq!(waiting, Vec::<&_>::new(), "proposals never acknowledged");
    assert_eq!(load.refused, 0);
}

fn count(sim: &Sim<KvStore>, t0: u64, pred: impl Fn(&Event) -> bool + 'static) -> usize {
    events_since(sim, t0, pred).count()
}

/// The epoch Paris's primary would found.
fn paris_epoch() -> EpochId {
    EpochId::fork(&[EpochRecord::FIRST], CM02A, 1, 0)
}

#[test]
fn witness_mode_refuses_an_epoch_claim_and_keeps_serving() {
    for seed in 1..=3 {
        let mut sim = started(&denver_paris(), seed);
        let mut load = Load::new(&["denver", "paris"], Duration::from_millis(5));
        load.run(&mut sim, Duration::from_secs(1));
        let t0 = sim.now_us();
        let term = sim.node(CM01A).unwrap().term();
        let before = sim.node(CM01A).unwrap().counters().other_epoch;
        let err = sim
            .node_mut(CM01A)
            .unwrap()
            .step(forged(CM02A, CM01A, term, paris_epoch()))
            .expect_err("refused");
        assert!(
            matches!(err, StepError::EpochInWitnessMode { from: 3, got } if got == paris_epoch()),
            "{err:?}"
        );
        assert_eq!(sim.node(CM01A).unwrap().counters().other_epoch, before + 1);
        load.run(&mut sim, Duration::from_secs(2));
        settle(&mut sim);
        assert_eq!(
            count(&sim, t0, |e| matches!(e, Event::EpochFenced { .. })),
            0
        );
        assert_eq!(leaders_since(&sim, t0), [], "seed {seed}");
        // The write outage is no longer than under the plain load: a few
        // WAN commit round trips at most, nothing like a fence.
        let gap = sim.longest_commit_gap(t0, t0 + 2_000_000).unwrap() / 1000;
        assert!(gap <= 2 * WAN_RTT_MS, "seed {seed}: outage {gap} ms");
        assert_every_proposal_acknowledged(&sim, &load);
        assert_acknowledged_applied(&sim, &load, CM02A);
        assert_clean(&mut sim);
    }
}

#[test]
fn main_site_mode_lifts_a_fence_no_reunion_follows_and_answers_what_waited() {
    let t = Timers::default().to_ticks().expect("default timers");
    // The fence holds four election timeouts (the first ask for the
    // claimed epoch's notice and three re-asks, each answered within a
    // round trip by a real newer epoch); it is lifted on a tick, the
    // waiting proposals go out on the next, and commit in a LAN round trip
    // (1 ms); the gap also spans the load's interval (5 ms) before the
    // forgery.
    let bound = t.ms(4 * t.election) + 2 * t.tick_ms + 1 + 5;
    for seed in 1..=3 {
        let mut sim = Sim::builder(build(&denver_paris_two_site()))
            .seed(seed)
            .build(|_| KvStore::default());
        assert!(sim.run_until(Duration::from_secs(3), |s| s.leader() == Some(CM01A)));
        let mut load = Load::new(&["denver"], Duration::from_millis(5));
        load.run(&mut sim, Duration::from_secs(1));
        let t0 = sim.now_us();
        let term = sim.node(CM01A).unwrap().term();
        let claim = forged(CM02A, CM01A, term, paris_epoch());
        let _ = sim.node_mut(CM01A).unwrap().step(claim.clone());
        load.run(&mut sim, Duration::from_secs(2));
        assert_eq!(
            count(&sim, t0, |e| matches!(e, Event::EpochFenced { .. })),
            1
        );
        let lifted: Vec<_> = events_since(&sim, t0, |e| matches!(e, Event::FenceLifted { .. }))
            .map(|(at, id, e)| (*at, *id, e.clone()))
            .collect();
        assert_eq!(lifted.len(), 1, "seed {seed}: {lifted:?}");
        let (at, id, Event::FenceLifted { claimed, by, .. }) = &lifted[0] else {
            unreachable!()
        };
        assert_eq!((*id, *claimed, *by), (CM01A, paris_epoch(), CM02A));
        assert!((at - t0) / 1000 <= t.ms(4 * t.election) + t.tick_ms);
        let gap = sim.longest_commit_gap(t0, t0 + 2_000_000).unwrap() / 1000;
        assert!(gap <= bound, "seed {seed}: outage {gap} ms > {bound} ms");
        // The same claim again fences nothing: it was refuted.
        let t1 = sim.now_us();
        let _ = sim.node_mut(CM01A).unwrap().step(claim);
        load.run(&mut sim, Duration::from_secs(1));
        settle(&mut sim);
        assert_eq!(
            count(&sim, t1, |e| matches!(e, Event::EpochFenced { .. })),
            0
        );
        let gap = sim.longest_commit_gap(t1, t1 + 1_000_000).unwrap() / 1000;
        assert!(
            gap <= 20,
            "seed {seed}: outage {gap} ms after a refuted claim"
        );
        assert_eq!(leaders_since(&sim, t0), [], "seed {seed}");
        assert_every_proposal_acknowledged(&sim, &load);
        assert_acknowledged_applied(&sim, &load, CM01B);
        assert_clean(&mut sim);
    }
}
