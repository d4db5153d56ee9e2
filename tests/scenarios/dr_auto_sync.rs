//! DR auto-sync mode (`survivable_core::replication`), while Denver leads:
//! commits on both sites in `Sync` (raft's group commit), a WAN cut
//! through `AsyncWait` to `Async` (Denver alone, at LAN cost), the heal
//! through `SyncRecover` back to `Sync`, a Paris member cut off alone, and
//! proposals made in Paris. Denver's loss in each state is in
//! `dr_takeover.rs`. Run with `--nocapture` for the per-seed figures.

use std::time::Duration;

use survivable_core::policy::Timers;
use survivable_core::replication::{ReplicationState, SiteLossCost};
use survivable_core::sim::{KvStore, Sim};
use survivable_core::topology::{denver_paris_dr, NodeId};
use survivable_core::Event;

use crate::support::*;

pub(crate) const TB: NodeId = NodeId(5);
pub(crate) const ALL: [NodeId; 5] = [CM01A, CM01B, TB, CM02A, CM02B];
/// The simulator's LAN round trip and tick, in µs.
pub(crate) const LAN_RTT_US: u64 = 1_000;
pub(crate) const TICK_US: u64 = 5_000;
/// The simulator's jitter (≤ 200 µs one way), for a round trip.
pub(crate) const JITTER_RTT_US: u64 = 400;

/// The DR reference layout with `timers`, run until CM01a leads. Timers
/// whose `sync_wait` cannot prove a takeover's RPO 0 (the tests that let
/// Denver go `Async` before Paris takes over) need
/// `allow_unproven_takeover`: the builder refuses them otherwise.
pub(crate) fn dr_with(timers: Timers, seed: u64) -> Sim<KvStore> {
    let mut b = denver_paris_dr();
    b.timers(timers).allow_unproven_takeover(true);
    let mut sim = Sim::builder(build(&b))
        .seed(seed)
        .build(|_| KvStore::default());
    let led = sim.run_until(Duration::from_secs(3), |s| s.leader() == Some(CM01A));
    assert!(led, "seed {seed}: CM01a never led");
    sim
}

/// Timers under which Paris does not take over during a WAN cut of a few
/// seconds (`survivable_after` 30 s), to see Denver's moves alone.
pub(crate) fn patient() -> Timers {
    Timers {
        survivable_after: Duration::from_secs(30),
        ..Timers::default()
    }
}

/// A member's replication state and state id.
pub(crate) fn state(sim: &Sim<KvStore>, id: NodeId) -> (ReplicationState, u64) {
    let r = sim.node(id).unwrap().status().replication.expect("DR mode");
    (r.state, r.state_id)
}

/// The highest index CM01a (leading) knows a Paris member holds.
pub(crate) fn paris_matched(sim: &Sim<KvStore>) -> u64 {
    let s = sim.node(CM01A).unwrap().status();
    (s.peers.iter())
        .filter(|p| p.id == CM02A || p.id == CM02B)
        .map(|p| p.matched)
        .max()
        .unwrap_or(0)
}

/// Commit latencies (µs) of proposals made at `node` within `[from, to)`.
pub(crate) fn latencies(sim: &Sim<KvStore>, node: NodeId, from_us: u64, to_us: u64) -> Vec<u64> {
    let mut v: Vec<u64> = (sim.commits().iter())
        .filter(|c| c.node == node && c.outcome.result.is_ok())
        .filter(|c| (from_us..to_us).contains(&c.proposed_us))
        .map(|c| c.done_us - c.proposed_us)
        .collect();
    v.sort_unstable();
    v
}

/// The `p`th percentile of sorted `v`.
pub(crate) fn pct(v: &[u64], p: usize) -> u64 {
    v[(v.len() * p / 100).min(v.len() - 1)]
}

/// Every `ReplicationChanged` of `id` since `t0`: (time µs, state, id).
pub(crate) fn moves(sim: &Sim<KvStore>, id: NodeId, t0: u64) -> Vec<(u64, ReplicationState, u64)> {
    events_since(sim, t0, |e| matches!(e, Event::ReplicationChanged { .. }))
        .filter(|(_, n, _)| *n == id)
        .map(|(t, _, e)| match e {
            Event::ReplicationChanged {
                state, state_id, ..
            } => (*t, *state, *state_id),
            _ => unreachable!(),
        })
        .collect()
}

#[test]
fn sync_commits_wait_for_paris_and_every_member_agrees() {
    for seed in 1..=3 {
        let mut sim = dr_with(Timers::default(), seed);
        settle(&mut sim);
        let mut load = Load::new(&["denver"], Duration::from_millis(20));
        let t0 = sim.now_us();
        // Group commit, checked every 5 ms: nothing is committed that no
        // Paris member holds.
        for _ in 0..400 {
            load.run(&mut sim, Duration::from_millis(5));
            let commit = sim.node(CM01A).unwrap().status().commit;
            let paris = paris_matched(&sim);
            assert!(
                commit <= paris,
                "seed {seed}: commit {commit} > Paris {paris}"
            );
        }
        settle(&mut sim);
        let lat = latencies(&sim, CM01A, t0, sim.now_us());
        assert!(
            lat.len() > 20,
            "seed {seed}: {} commits at CM01a",
            lat.len()
        );
        // At least the WAN round trip: the entry must reach Paris and its
        // acknowledgement come back. At most that, plus two LAN round trips
        // (Denver's majority, and a proposal forwarded to the leader), a
        // tick (an append held for the next tick) and the jitter of both
        // round trips: WAN RTT + 2 LAN RTT + a tick + jitter.
        let wan = WAN_RTT_MS * 1000;
        let most = wan + 2 * LAN_RTT_US + TICK_US + 2 * JITTER_RTT_US;
        assert!(lat[0] >= wan, "seed {seed}: a Sync commit in {} µs", lat[0]);
        assert!(
            pct(&lat, 99) <= most,
            "seed {seed}: p99 {} µs > {most}",
            pct(&lat, 99)
        );
        println!(
            "seed {seed}: Sync commit at the leader p50 {} µs p99 {} µs max {} µs ({} commits)",
            pct(&lat, 50),
            pct(&lat, 99),
            lat[lat.len() - 1],
            lat.len()
        );
        for id in ALL {
            assert_eq!(
                state(&sim, id),
                (ReplicationState::Sync, 0),
                "seed {seed}: {id}"
            );
        }
        let r = sim.node(CM01A).unwrap().status().replication.unwrap();
        assert_eq!(r.main_site_loss, SiteLossCost::ZERO, "seed {seed}");
        assert_acknowledged_applied(&sim, &load, CM02A);
        assert_clean(&mut sim);
    }
}

/// A WAN cut under load until the leader is in `Async`; returns the sim,
/// the load, the cut's time and the highest index Paris held.
pub(crate) fn cut_until_async(seed: u64, timers: Timers) -> (Sim<KvStore>, Load, u64, u64) {
    let mut sim = dr_with(timers.clone(), seed);
    let mut load = Load::new(&["denver"], Duration::from_millis(20));
    load.run(&mut sim, Duration::from_secs(1));
    let t0 = sim.now_us();
    sim.partition_sites(&["denver"], &["paris"]);
    let paris = paris_matched(&sim);
    let limit = t0 + timers.sync_wait.as_micros() as u64 + 1_000_000;
    while state(&sim, CM01A).0 != ReplicationState::Async {
        assert!(
            sim.now_us() < limit,
            "seed {seed}: not Async 1 s after sync_wait"
        );
        load.run(&mut sim, Duration::from_millis(5));
    }
    (sim, load, t0, paris)
}

#[test]
fn a_wan_cut_goes_async_wait_then_async_and_commits_cost_the_lan() {
    for seed in 1..=3 {
        let timers = patient();
        let (mut sim, mut load, t0, paris) = cut_until_async(seed, timers.clone());
        load.run(&mut sim, Duration::from_secs(2));
        let leader = moves(&sim, CM01A, t0);
        let states: Vec<ReplicationState> = leader.iter().map(|m| m.1).collect();
        assert_eq!(
            states,
            [ReplicationState::AsyncWait, ReplicationState::Async]
        );
        let (wait_at, async_at) = (leader[0].0, leader[1].0);
        // Silence is counted from the last message Paris got through (a
        // heartbeat response at most 10 ms before the cut, in flight ones
        // are dropped), in whole ticks: AsyncWait no sooner than sync_wait
        // less a heartbeat, a tick and the jitter. Async once Denver's two
        // other voters hold that record (a LAN round trip), on the next
        // tick: no later than sync_wait + 2 ticks + a LAN round trip + jitter.
        let wait_us = timers.sync_wait.as_micros() as u64;
        assert!(
            wait_at - t0 >= wait_us - 10_000 - TICK_US - JITTER_RTT_US,
            "seed {seed}"
        );
        let most = wait_us + 2 * TICK_US + LAN_RTT_US + JITTER_RTT_US;
        assert!(
            async_at - t0 <= most,
            "seed {seed}: Async {} µs after the cut",
            async_at - t0
        );
        // Every Denver member knew of AsyncWait before anything Paris does
        // not hold was acknowledged.
        let first_alone = (sim.commits().iter())
            .filter(|c| c.outcome.result.as_ref().is_ok_and(|a| a.index > paris))
            .map(|c| c.done_us)
            .min()
            .expect("commits without Paris");
        for id in [CM01A, CM01B, TB] {
            let m = moves(&sim, id, t0);
            assert_eq!(m[0].1, ReplicationState::AsyncWait, "seed {seed}: {id}");
            assert!(
                m[0].0 < first_alone,
                "seed {seed}: {id} learned AsyncWait late"
            );
        }
        // In Async a commit costs Denver's LAN only.
        let lat = latencies(&sim, CM01A, async_at + TICK_US, sim.now_us());
        let most = 2 * LAN_RTT_US;
        assert!(
            pct(&lat, 99) <= most,
            "seed {seed}: Async p99 {} µs",
            pct(&lat, 99)
        );
        let s = sim.node(CM01A).unwrap().status();
        let r = s.replication.unwrap();
        assert_eq!(
            r.main_site_loss.entries,
            Some(s.commit - paris_matched(&sim))
        );
        assert!(r.main_site_loss.entries > Some(0), "seed {seed}");
        println!(
            "seed {seed}: WAN cut -> AsyncWait {} ms, -> Async {} ms; Async commit p50 {} µs p99 {} µs; main-site loss {:?} entries",
            (wait_at - t0) / 1000,
            (async_at - t0) / 1000,
            pct(&lat, 50),
            pct(&lat, 99),
            r.main_site_loss.entries
        );
        assert!(
            events_since(&sim, 0, |e| matches!(e, Event::Activated { .. }))
                .next()
                .is_none()
        );
        assert_acknowledged_applied(&sim, &load, CM01B);
    }
}

#[test]
fn the_heal_goes_sync_recover_then_sync_and_every_member_sees_the_same_moves() {
    for seed in 1..=3 {
        let (mut sim, mut load, t0, _) = cut_until_async(seed, patient());
        load.run(&mut sim, Duration::from_secs(1));
        let healed = sim.now_us();
        sim.heal();
        let synced = sim.run_until(Duration::from_secs(5), |s| state(s, CM01A).0 == Sync);
        assert!(synced, "seed {seed}: not back in Sync 5 s after the heal");
        load.run(&mut sim, Duration::from_secs(1));
        settle(&mut sim);
        let leader = moves(&sim, CM01A, t0);
        use ReplicationState::*;
        let states: Vec<ReplicationState> = leader.iter().map(|m| m.1).collect();
        assert_eq!(states, [AsyncWait, Async, SyncRecover, Sync], "seed {seed}");
        let seq = |id| -> Vec<(ReplicationState, u64)> {
            moves(&sim, id, 0).iter().map(|m| (m.1, m.2)).collect()
        };
        let ids: Vec<u64> = seq(CM01A).iter().map(|m| m.1).collect();
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "seed {seed}: ids {ids:?}"
        );
        for id in ALL {
            assert_eq!(seq(id), seq(CM01A), "seed {seed}: {id} saw other moves");
            assert_eq!(state(&sim, id), (Sync, 4), "seed {seed}: {id}");
        }
        println!(
            "seed {seed}: heal -> SyncRecover {} ms, -> Sync {} ms",
            (leader[2].0 - healed) / 1000,
            (leader[3].0 - healed) / 1000
        );
        let r = sim.node(CM01A).unwrap().status().replication.unwrap();
        assert_eq!(r.main_site_loss, SiteLossCost::ZERO, "seed {seed}");
        assert_acknowledged_applied(&sim, &load, CM02A);
        assert_acknowledged_applied(&sim, &load, CM02B);
        assert_clean(&mut sim);
    }
}

#[test]
fn the_paris_standby_cut_off_alone_leaves_sync_to_cm02a() {
    for seed in 1..=3 {
        let mut sim = dr_with(Timers::default(), seed);
        let mut load = Load::new(&["denver"], Duration::from_millis(20));
        load.run(&mut sim, Duration::from_secs(1));
        let t0 = sim.now_us();
        sim.isolate(CM02B);
        // Longer than sync_wait: CM02a alone keeps the site heard.
        load.run(&mut sim, Duration::from_secs(6));
        assert!(moves(&sim, CM01A, t0).is_empty(), "seed {seed}: left Sync");
        let lat = latencies(&sim, CM01A, t0, sim.now_us());
        // As in Sync with both: CM02a's acknowledgement suffices.
        let most = WAN_RTT_MS * 1000 + 2 * LAN_RTT_US + TICK_US + 2 * JITTER_RTT_US;
        assert!(
            pct(&lat, 99) <= most,
            "seed {seed}: p99 {} µs",
            pct(&lat, 99)
        );
        let s = sim.node(CM01A).unwrap().status();
        assert!(s.commit <= paris_matched(&sim), "seed {seed}: {s:?}");
        sim.heal();
        settle(&mut sim);
        assert_acknowledged_applied(&sim, &load, CM02A);
        assert_acknowledged_applied(&sim, &load, CM02B);
        assert_clean(&mut sim);
    }
}

/// Core bug: CM02b cut off from everyone (its partner and Denver are
/// fine, Denver leads in Sync with CM02a) activates an epoch of its own
/// alone after `survivable_after` (unproven), and when the cut heals that
/// epoch, being newer, fences the healthy cluster: every member joins it
/// and what Denver committed meanwhile is reconciled rather than kept.
/// Replay: seed 1, `sim.isolate(CM02B)` 1 s after CM01a leads, 6 s of load.
#[test]
#[ignore = "known limitation, as in main-site mode: a survivable member cut off from every other member cannot tell that from their loss, activates, and when healed its newer epoch takes the cluster over (the main site's commits are reconciled, none lost)"]
fn a_paris_member_cut_off_alone_does_not_take_over() {
    for seed in 1..=3 {
        let mut sim = dr_with(Timers::default(), seed);
        let mut load = Load::new(&["denver"], Duration::from_millis(20));
        load.run(&mut sim, Duration::from_secs(1));
        let t0 = sim.now_us();
        sim.isolate(CM02B);
        load.run(&mut sim, Duration::from_secs(6));
        let took = events_since(&sim, t0, |e| matches!(e, Event::Activated { .. })).next();
        assert!(took.is_none(), "seed {seed}: {took:?}");
        sim.heal();
        settle(&mut sim);
        assert_eq!(sim.leader(), Some(CM01A), "seed {seed}");
        assert_clean(&mut sim);
    }
}

#[test]
fn proposals_made_in_paris_during_sync_are_forwarded_and_applied_once() {
    for seed in 1..=3 {
        let mut sim = dr_with(Timers::default(), seed);
        let mut load = Load::new(&["paris"], Duration::from_millis(10));
        load.run(&mut sim, Duration::from_secs(2));
        settle(&mut sim);
        let acked = (sim.commits().iter())
            .filter(|c| c.outcome.result.is_ok() && load.proposed.contains_key(&c.id))
            .count();
        assert!(
            acked * 10 >= load.proposed.len() * 9,
            "seed {seed}: {acked} acknowledged"
        );
        for id in ALL {
            assert_acknowledged_applied(&sim, &load, id);
        }
        // assert_clean counts applies per proposal on every member.
        assert_clean(&mut sim);
    }
}
