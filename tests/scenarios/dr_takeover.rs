//! DR auto-sync mode (`survivable_core::replication`): Denver lost in each
//! replication state, and Paris taking over. Lost in `Sync`, Paris
//! activates with RPO 0 proven and holds every acknowledged proposal; lost
//! in `AsyncWait`, `Async` or `SyncRecover`, it activates with what it has,
//! and still holds everything acknowledged in `Sync`. Run with
//! `--nocapture` for the per-seed figures.

use std::time::Duration;

use survivable_core::node::{EpochId, ProposalId, FIRST_EPOCH};
use survivable_core::policy::Timers;
use survivable_core::replication::ReplicationState;
use survivable_core::sim::{KvStore, Sim};
use survivable_core::topology::NodeId;
use survivable_core::Event;

use crate::dr_auto_sync::*;
use crate::support::*;

/// The first activation since `t0`.
struct Activation {
    at_us: u64,
    by: NodeId,
    #[allow(dead_code)] // printed in failures
    epoch: EpochId,
    fork_index: u64,
    rpo_entries: u64,
    proven: bool,
}

fn activation(sim: &Sim<KvStore>, t0: u64) -> Activation {
    let (at_us, by, e) = events_since(sim, t0, |e| matches!(e, Event::Activated { .. }))
        .next()
        .expect("Paris activated")
        .clone();
    let Event::Activated {
        epoch,
        fork_index,
        rpo_entries,
        rpo_proven,
        ..
    } = e
    else {
        unreachable!()
    };
    Activation {
        at_us,
        by,
        epoch,
        fork_index,
        rpo_entries,
        proven: rpo_proven,
    }
}

/// Proposals acknowledged (anywhere) before `t_us`.
fn acked_before(sim: &Sim<KvStore>, t_us: u64) -> Vec<ProposalId> {
    (sim.commits().iter())
        .filter(|c| c.outcome.result.is_ok() && c.done_us < t_us)
        .map(|c| c.id)
        .collect()
}

/// Every proposal in `ids` was acknowledged in the first epoch, and the
/// activating member applied it: below the fork, or beyond it carried into
/// the new epoch (the checker's apply counts, per proposal, run in
/// `assert_clean`).
fn all_kept(sim: &Sim<KvStore>, ids: &[ProposalId], a: &Activation, what: &str) {
    assert!(!ids.is_empty(), "{what}: nothing acknowledged");
    for c in sim.commits().iter().filter(|c| ids.contains(&c.id)) {
        let ack = c.outcome.result.as_ref().unwrap();
        assert_eq!(ack.epoch, FIRST_EPOCH, "{what}");
    }
    let lost = sim.check_acknowledged_at(a.by, ids);
    assert!(lost.is_empty(), "{what}: {lost:?}");
    assert!(sim.check_rpo_zero_kept().is_empty(), "{what}");
}

#[test]
fn denver_lost_in_sync_under_load_at_every_member_loses_nothing_proven() {
    for seed in 1..=3 {
        let mut sim = dr_with(Timers::default(), seed);
        // Proposals at CM01a, CM02a, CM01b, CM02b, TB, ... in turn.
        let mut load = Load::new(&["denver", "paris"], Duration::from_millis(2));
        load.run(&mut sim, Duration::from_secs(1));
        let kinds: std::collections::BTreeSet<NodeId> =
            sim.commits().iter().map(|c| c.node).collect();
        assert_eq!(kinds.len(), 5, "seed {seed}: proposals at {kinds:?}");
        let t0 = sim.now_us();
        let before = acked_before(&sim, t0);
        sim.crash_site("denver");
        let mut paris = Load::new(&["paris"], Duration::from_millis(5));
        paris.run(&mut sim, Duration::from_secs(4));
        let a = activation(&sim, t0);
        assert!(a.proven, "seed {seed}: not proven");
        assert_eq!((a.by, a.rpo_entries), (CM02A, 0), "seed {seed}");
        let took = (a.at_us - t0) / 1000;
        // survivable_after (2 s) after the last message from Denver (in
        // flight up to a WAN one-way after the loss); CM02b prepares an
        // election timeout (200 ms) later, CM02a hears it within a LAN
        // round trip and a tick, and forks on its next tick.
        assert!(
            (2_000..=2_000 + 40 + 200 + 1 + 10).contains(&took),
            "seed {seed}: {took} ms"
        );
        all_kept(&sim, &before, &a, &format!("seed {seed}"));
        let at_paris: Vec<ProposalId> = acked_before(&sim, u64::MAX);
        assert!(at_paris.len() > before.len(), "seed {seed}: Paris serves");
        assert_acknowledged_applied(&sim, &paris, CM02B);
        println!(
            "seed {seed}: Denver lost in Sync: Paris activated after {took} ms, proven, {} entries lost of {} acknowledged",
            a.rpo_entries,
            before.len()
        );
        assert_clean(&mut sim);
    }
}

/// Timers under which Denver goes Async during a cut before Paris takes
/// over (`sync_wait` 2 s, `survivable_after` 5 s): Paris's lease has run
/// out when it activates.
fn async_first() -> Timers {
    Timers {
        sync_wait: Duration::from_secs(2),
        survivable_after: Duration::from_secs(5),
        ..Timers::default()
    }
}

/// A WAN cut, the leader driven into `target`, then Denver lost.
fn lose_denver_in(target: ReplicationState, seed: u64) {
    let (mut sim, mut load, t_cut, paris_held) = match target {
        ReplicationState::AsyncWait => {
            let mut sim = dr_with(async_first(), seed);
            let mut load = Load::new(&["denver"], Duration::from_millis(20));
            load.run(&mut sim, Duration::from_secs(1));
            let t = sim.now_us();
            sim.partition_sites(&["denver"], &["paris"]);
            let held = paris_matched(&sim);
            let waited = sim.run_until(Duration::from_secs(3), |s| {
                state(s, CM01A).0 == ReplicationState::AsyncWait
            });
            assert!(waited, "seed {seed}: no AsyncWait");
            (sim, load, t, held)
        }
        _ => cut_until_async(seed, async_first()),
    };
    if target != ReplicationState::AsyncWait {
        // AsyncWait lasts a LAN round trip: Denver is lost inside it.
        load.run(&mut sim, Duration::from_millis(500));
    }
    if target == ReplicationState::SyncRecover {
        sim.heal();
        let back = sim.run_until(Duration::from_secs(3), |s| {
            state(s, CM01A).0 == ReplicationState::SyncRecover
        });
        assert!(back, "seed {seed}: no SyncRecover");
    }
    let (state_now, _) = state(&sim, CM01A);
    assert_eq!(state_now, target, "seed {seed}");
    let leader = sim.node(CM01A).unwrap().status();
    let beyond = leader.replication.unwrap().main_site_loss.entries.unwrap();
    let in_sync = acked_before(&sim, t_cut);
    let t0 = sim.now_us();
    sim.crash_site("denver");
    sim.heal();
    let mut paris = Load::new(&["paris"], Duration::from_millis(5));
    paris.run(&mut sim, Duration::from_secs(8));
    let a = activation(&sim, t0);
    let what = format!("seed {seed}, Denver lost in {target}");
    if target != ReplicationState::AsyncWait {
        assert!(!a.proven, "{what}: proven");
    }
    all_kept(&sim, &in_sync, &a, &what);
    // What Paris lacks of Denver's acknowledged commits (below its fork,
    // or carried beyond it): no more than the leader's measure.
    let acked = acked_before(&sim, t0);
    let lacks = sim.check_acknowledged_at(a.by, &acked).len() as u64;
    assert!(
        lacks <= beyond,
        "{what}: Paris lacks {lacks}, the leader counted {beyond}"
    );
    // Paris reports what it was told: nothing of what Denver committed
    // after the cut (the full figure comes at reunion).
    assert!(a.rpo_entries <= lacks, "{what}");
    println!(
        "{what}: activated by {} after {} ms, proven {}, rpo_entries {}, Denver committed {} beyond Paris (held {} at the cut, forked at {})",
        a.by,
        (a.at_us - t0) / 1000,
        a.proven,
        a.rpo_entries,
        lacks,
        paris_held,
        a.fork_index
    );
    assert_acknowledged_applied(&sim, &paris, a.by);
    assert!(
        sim.violations().is_empty(),
        "{what}: {:?}",
        sim.violations()
    );
    // Denver comes back: what it committed alone is reconciled into
    // Paris's epoch, nothing vanishes.
    for id in [CM01A, CM01B, TB] {
        sim.restart(id);
    }
    sim.run_for(Duration::from_secs(10));
    assert_acknowledged_applied(&sim, &load, a.by);
}

#[test]
fn denver_lost_in_async_wait_keeps_what_sync_acknowledged() {
    for seed in 1..=3 {
        lose_denver_in(ReplicationState::AsyncWait, seed);
    }
}

#[test]
fn denver_lost_in_async_is_unproven_and_keeps_what_sync_acknowledged() {
    for seed in 1..=3 {
        lose_denver_in(ReplicationState::Async, seed);
    }
}

#[test]
fn denver_lost_in_sync_recover_is_unproven_and_keeps_what_sync_acknowledged() {
    for seed in 1..=3 {
        lose_denver_in(ReplicationState::SyncRecover, seed);
    }
}

#[test]
fn cm02a_crashed_then_denver_lost_cm02b_activates_unproven_with_everything() {
    for seed in 1..=3 {
        let mut sim = dr_with(Timers::default(), seed);
        let mut load = Load::new(&["denver"], Duration::from_millis(5));
        load.run(&mut sim, Duration::from_secs(1));
        sim.crash(CM02A);
        // Every commit now needs CM02b.
        load.run(&mut sim, Duration::from_secs(1));
        let t0 = sim.now_us();
        let before = acked_before(&sim, t0);
        sim.crash_site("denver");
        let mut paris = Load::new(&["paris"], Duration::from_millis(5));
        paris.run(&mut sim, Duration::from_secs(5));
        let a = activation(&sim, t0);
        // Its partner never answered prepared: the log it has cannot be
        // proven the longest.
        assert_eq!((a.by, a.proven), (CM02B, false), "seed {seed}");
        all_kept(&sim, &before, &a, &format!("seed {seed}"));
        println!(
            "seed {seed}: CM02a down, Denver lost: CM02b activated after {} ms, unproven, rpo_entries {}",
            (a.at_us - t0) / 1000,
            a.rpo_entries
        );
        assert_acknowledged_applied(&sim, &paris, CM02B);
    }
}

#[test]
fn the_paris_member_with_the_longer_log_takes_over_proven() {
    for seed in 1..=3 {
        let mut sim = dr_with(Timers::default(), seed);
        // CM02a hears the leader 200 ms late: its log trails CM02b's.
        sim.set_link_rtt(CM01A, CM02A, Duration::from_millis(400));
        sim.set_link_rtt(CM01B, CM02A, Duration::from_millis(400));
        sim.set_link_rtt(TB, CM02A, Duration::from_millis(400));
        let mut load = Load::new(&["denver"], Duration::from_millis(5));
        load.run(&mut sim, Duration::from_secs(2));
        let t0 = sim.now_us();
        let before = acked_before(&sim, t0);
        let last = |id| sim.node(id).unwrap().status().last_index;
        let (a_log, b_log) = (last(CM02A), last(CM02B));
        assert!(
            b_log > a_log,
            "seed {seed}: CM02b {b_log} not ahead of CM02a {a_log}"
        );
        sim.crash_site("denver");
        // What was in flight is lost with the site.
        sim.partition_sites(&["denver"], &["paris"]);
        let mut paris = Load::new(&["paris"], Duration::from_millis(5));
        paris.run(&mut sim, Duration::from_secs(5));
        let a = activation(&sim, t0);
        all_kept(&sim, &before, &a, &format!("seed {seed}"));
        // Whoever forks holds the longer log: its applied index (the fork
        // and the carried tail, applied again in the new epoch) reaches
        // past CM02b's log end, and `all_kept` above found every
        // acknowledged proposal there.
        let applied = sim.node(a.by).unwrap().applied_index();
        assert!(
            applied >= b_log,
            "seed {seed}: {} applied {applied}, CM02b's log ended at {b_log}",
            a.by
        );
        assert!(a.proven, "seed {seed}");
        println!(
            "seed {seed}: CM02b ahead ({b_log} vs {a_log}): {} activated after {} ms, proven, fork {}",
            a.by,
            (a.at_us - t0) / 1000,
            a.fork_index
        );
        assert_acknowledged_applied(&sim, &paris, CM02A);
        assert_clean(&mut sim);
    }
}
