//! DR auto-sync mode: the rainy day with RPO 0.
//!
//! The same two data centres as main-site mode, but all five members vote
//! (`topology::denver_paris_dr`): Denver's CM01a, CM01b and the
//! tie-breaker TB, Paris's CM02a and CM02b. While Paris answers, the
//! leader keeps the cluster in `Sync`: raft's group commit makes every
//! commit wait for a member of each site, so a commit costs about one WAN
//! round trip and losing Denver loses nothing. Two runs, each from a fresh
//! cluster in `Sync`: the rainy day (four steps) and a WAN cut (three).
//!
//! - `sync` (`sync_before_cut` in the second run): steady state; commit
//!   latency at the leader ≤ 1 WAN RTT + 2 LAN RTT (p99), the leader's
//!   RPO 0, proven.
//! - `main_site_lost`: Denver's whole site fails in `Sync`. Paris
//!   activates from its whole log with RPO 0 proven (its lease ran), and
//!   the example counts it: every proposal acknowledged before the loss is
//!   applied exactly once at Paris's leader, and no command twice at any
//!   Paris member.
//! - `main_site_returns`: Denver restarts and joins Paris's epoch; there
//!   is nothing to reconcile (it never committed without Paris).
//! - `hand_back`: control comes home to Denver after the stability window.
//! - `wan_cut`: the WAN fails. Denver's leader waits `sync_wait`, announces
//!   `AsyncWait` inside Denver, then goes `Async`: Denver commits at LAN
//!   cost (p99 ≤ 2 LAN RTT) and its RPO grows; the move to `Async` comes
//!   ≤ `sync_wait` + 1 WAN RTT after the cut. Paris cannot tell the cut
//!   from Denver's loss: it activates after `survivable_after` (shorter
//!   than `sync_wait`, so with RPO 0 proven), and serves its users too.
//! - `wan_heal`: the WAN heals; Paris's epoch takes in Denver's `Async`
//!   commits (the reconcile hook), control comes home after the stability
//!   window, and the leader goes `SyncRecover` while Paris catches up,
//!   then `Sync` with RPO 0.
//!
//! Every step reports the leader's `replication_state`, `state_id` and
//! what losing Denver would cost now (`rpo_entries`, `rpo_ms`: the
//! leader's `main_site_loss`, `null` when the leader cannot tell).

use std::collections::BTreeSet;
use std::time::Duration;

use survivable_core::replication::{Replication, ReplicationState, SiteLossCost};
use survivable_core::sim::Sim;
use survivable_core::topology::{denver_paris_dr, NodeId};
use survivable_core::Event;

use crate::{
    finish, hand_back_attempt, hand_back_figures, json_num, json_str, name, print, start,
    story_with, Args, CallTable, Checks, Report, Workload,
};

const MODE: &str = "dr-auto-sync";

/// Jitter allowance: up to 200 µs on each one-way trip, a handful of trips.
const JITTER_MS: u64 = 1;

/// Commit latencies (µs) of proposals made at `nodes` since `since_us`.
fn latencies(sim: &Sim<CallTable>, nodes: &[NodeId], since_us: u64) -> Vec<u64> {
    sim.commits()
        .iter()
        .filter(|c| c.proposed_us >= since_us && nodes.contains(&c.node))
        .filter(|c| c.outcome.result.is_ok())
        .map(|c| c.done_us - c.proposed_us)
        .collect()
}

/// Percentile `p` (0–100) of `v`, in µs (`None` when empty).
fn percentile_us(v: &mut [u64], p: usize) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    Some(v[((v.len() - 1) * p).div_ceil(100)])
}

fn ms3(us: Option<u64>) -> String {
    us.map_or("null".into(), |us| format!("{:.3}", us as f64 / 1000.0))
}

/// The leader's replication view (`None` without a leader).
fn leader_view(sim: &Sim<CallTable>) -> Option<Replication> {
    sim.leader()
        .and_then(|l| sim.node(l))
        .and_then(|n| n.status().replication)
}

/// Adds the fields every step reports from `view` (the leader's): the
/// replication state, its id, and what losing the main site costs now
/// (null when unknown).
fn replication_fields(view: Option<Replication>, r: &mut Report) -> SiteLossCost {
    let loss = view.map_or(SiteLossCost::UNKNOWN, |v| v.main_site_loss);
    r.extra.push((
        "replication_state",
        view.map_or("null".into(), |v| json_str(v.state.name())),
    ));
    r.extra
        .push(("state_id", json_num(view.map(|v| v.state_id))));
    r.extra.push(("rpo_entries", json_num(loss.entries)));
    r.extra.push(("rpo_ms", json_num(loss.ms)));
    r.extra.push(("rpo_proven", loss.proven.to_string()));
    loss
}

/// The Denver–Paris round trip this run has: `--site-rtt`'s when it names
/// the pair, else `--wan-rtt-ms` (every bound follows the real one).
fn rtt_ms(args: &Args) -> u64 {
    let pair = |x: &str, y: &str| matches!((x, y), ("denver", "paris") | ("paris", "denver"));
    (args.site_rtt.iter())
        .rfind(|(x, y, _)| pair(x, y))
        .map_or(args.wan_rtt_ms, |(_, _, ms)| *ms)
}

/// Checks that the leader reports `Sync`.
fn leader_in_sync(sim: &Sim<CallTable>, c: &mut Checks, step: &str) {
    let state = leader_view(sim).map(|v| v.state);
    c.check(
        step,
        "the leader is in Sync",
        state == Some(ReplicationState::Sync),
        format!("{state:?}"),
    );
}

fn epoch_of_leader(sim: &Sim<CallTable>) -> String {
    sim.leader()
        .and_then(|l| sim.node(l))
        .map_or("null".into(), |n| json_str(&n.epoch().to_string()))
}

/// When the leader of the time (by `BecameLeader`) first recorded `state`
/// at or after `since_us`.
fn entered(sim: &Sim<CallTable>, state: ReplicationState, since_us: u64) -> Option<u64> {
    let mut leader = None;
    for (t, id, e) in sim.events() {
        match e {
            Event::BecameLeader { .. } => leader = Some(*id),
            Event::ReplicationChanged { state: s, .. }
                if *t >= since_us && *s == state && leader == Some(*id) =>
            {
                return Some(*t)
            }
            _ => {}
        }
    }
    None
}

/// When member `id` first recorded `state` at or after `since_us`.
fn entered_at(
    sim: &Sim<CallTable>,
    id: NodeId,
    state: ReplicationState,
    since_us: u64,
) -> Option<u64> {
    sim.events().iter().find_map(|(t, n, e)| match e {
        Event::ReplicationChanged { state: s, .. } if *t >= since_us && *n == id && *s == state => {
            Some(*t)
        }
        _ => None,
    })
}

/// Member `id`'s replication moves since `since_us`, narrated (they are
/// the old epoch's once a newer one has a leader, so `narrate` skips them).
fn moves_of(sim: &Sim<CallTable>, id: NodeId, since_us: u64) -> Vec<(u64, String)> {
    (sim.events().iter())
        .filter(|(t, n, _)| *t >= since_us && *n == id)
        .filter_map(|(t, _, e)| match e {
            Event::ReplicationChanged {
                state,
                state_id,
                previous,
                ..
            } => Some((
                *t,
                format!(
                    "{} (old epoch): replication {previous} -> {state} (state id {state_id})",
                    name(sim, id)
                ),
            )),
            _ => None,
        })
        .collect()
}

/// The first activation at or after `since_us`: when (µs), RPO entries and
/// ms, whether RPO 0 was proven.
fn activation(sim: &Sim<CallTable>, since_us: u64) -> Option<(u64, u64, u64, bool)> {
    sim.events().iter().find_map(|(t, _, e)| match e {
        Event::Activated {
            rpo_entries,
            rpo_ms,
            rpo_proven,
            ..
        } if *t >= since_us => Some((*t, *rpo_entries, *rpo_ms, *rpo_proven)),
        _ => None,
    })
}

/// Divergent and re-applied commands reconciled since `since_us`.
fn reconciled(sim: &Sim<CallTable>, since_us: u64) -> (u64, u64) {
    let mut records = std::collections::BTreeMap::new();
    for (t, _, e) in sim.events() {
        if let Event::Reconciled {
            epoch,
            index,
            divergent,
            commands,
            ..
        } = e
        {
            if *t >= since_us {
                records.insert((*epoch, *index), (*divergent, *commands));
            }
        }
    }
    (records.values()).fold((0, 0), |(d, c), (dv, cm)| (d + dv, c + cm))
}

/// Commands applied more than once at any running member of `nodes`.
fn applied_twice(sim: &Sim<CallTable>, nodes: &[NodeId]) -> usize {
    (nodes.iter())
        .filter_map(|&id| sim.node(id))
        .map(|n| {
            let t = n.state_machine();
            t.applies.values().filter(|&&k| k > 1).count()
        })
        .sum()
}

/// A DR run: the simulator, the users' calls and the checks.
struct Run<'a> {
    sim: Sim<CallTable>,
    w: Workload,
    c: Checks,
    args: &'a Args,
}

/// Runs the DR auto-sync steps, the rainy day and then the WAN cut on a
/// fresh cluster (so each starts from `Sync` under Denver, whatever the
/// other did); whether each behaved as designed.
pub(crate) fn run(args: &Args) -> bool {
    let title = "DR auto-sync mode: two data centres, RPO 0 while they talk";
    let Some(mut day) = Run::new(title, args) else {
        return false;
    };
    day.sync("sync");
    let lost_at = day.main_site_lost();
    let back = day.main_site_returns(lost_at);
    day.hand_back(back);
    let drawn = crate::write_svg(args, crate::Mode::DrAutoSync, &day.sim, &day.w);
    let day_ok = day.c.finish(&day.sim.violations());
    if !args.json {
        println!("\n");
    }
    let Some(mut cut) = Run::new("DR auto-sync mode: a WAN cut", args) else {
        return false;
    };
    cut.sync("sync_before_cut");
    cut.wan_cut();
    cut.wan_heal();
    let cut_ok = cut.c.finish(&cut.sim.violations());
    day_ok && cut_ok && drawn
}

impl<'a> Run<'a> {
    fn new(title: &str, args: &'a Args) -> Option<Self> {
        let sim = start(title, denver_paris_dr(), CallTable::default(), args)?;
        Some(Self {
            sim,
            w: Workload::new(args.seed, true),
            c: Checks::new(MODE),
            args,
        })
    }
}

impl Run<'_> {
    fn sync_wait_ms(&self) -> u64 {
        self.sim.topology().timers().sync_wait.as_millis() as u64
    }

    /// sync: commits wait for Paris; about one WAN round trip each.
    /// Latency is measured from a second after the first commit: the first
    /// leader's first commits wait for Paris to accept it, over the WAN.
    fn sync(&mut self, step: &'static str) {
        let Self { sim, w, c, args } = self;
        let start = sim.now_us();
        w.run(sim, Duration::from_secs(1));
        while sim.first_commit_after(0, 0).is_none() && sim.now_us() < 10_000_000 {
            w.run(sim, Duration::from_millis(100));
        }
        let settled = sim.first_commit_after(0, 0).unwrap_or(0) + 1_000_000;
        w.run(
            sim,
            Duration::from_micros(settled.saturating_sub(sim.now_us())),
        );
        let since = sim.now_us();
        w.run(sim, Duration::from_secs(4));
        let at_leader: Vec<NodeId> = sim.leader().into_iter().collect();
        let mut lat = latencies(sim, &at_leader, since);
        let (p50, p99) = (percentile_us(&mut lat, 50), percentile_us(&mut lat, 99));
        let mut r = finish(sim, w, step, "steady Sync", &w.up.clone(), None, start);
        r.extra.push(("epoch", epoch_of_leader(sim)));
        let loss = replication_fields(leader_view(sim), &mut r);
        r.extra.push(("commit_p50_ms", ms3(p50)));
        r.extra.push(("commit_p99_ms", ms3(p99)));
        c.leads(&r, sim, "denver");
        leader_in_sync(sim, c, r.step);
        c.check(
            r.step,
            "rpo_entries == 0, proven",
            loss == SiteLossCost::ZERO,
            format!("{loss:?}"),
        );
        // A commit needs Paris's ack: the leader's append crosses the WAN
        // and the ack comes back (1 WAN RTT); a proposal at the leader adds
        // no hop, its partner's ack overlaps. Two LAN RTT and 1 ms of jitter
        // cover the leader's own ticks of local work.
        let bound_us = (rtt_ms(args) + 2 + JITTER_MS) * 1000;
        c.check(
            r.step,
            "commit p99 at the leader ≤ 1 WAN RTT + 2 LAN RTT (+ jitter)",
            p99.is_some_and(|p| p <= bound_us),
            format!("{} ms, bound {} ms", ms3(p99), bound_us / 1000),
        );
        c.nothing_lost(&r);
        print(sim, MODE, &r, args.json);
    }

    /// main_site_lost: Denver fails in Sync; Paris activates with RPO 0,
    /// proven, and holds every acknowledged proposal, applied once.
    /// Returns when Denver was lost (µs).
    fn main_site_lost(&mut self) -> u64 {
        let sync_wait = self.sync_wait_ms();
        let Self { sim, w, c, args } = self;
        let before = w.up.clone();
        let lost_at = sim.now_us();
        let state_at_loss = leader_view(sim).map(|v| v.state);
        sim.crash_site("denver");
        let bound = activation_bound_ms(sim, args);
        w.run(sim, Duration::from_millis(args.survivable_after_ms + 3_000));
        let act = activation(sim, lost_at);
        let mut r = finish(
            sim,
            w,
            "main_site_lost",
            "rainy day: Denver lost",
            &before,
            None,
            lost_at,
        );
        r.extra.push(("epoch", epoch_of_leader(sim)));
        replication_fields(leader_view(sim), &mut r);
        let activation_ms = act.map(|a| (a.0 - lost_at) / 1000);
        r.takeover_ms = activation_ms;
        r.extra.push((
            "state_at_loss",
            state_at_loss.map_or("null".into(), |s| json_str(s.name())),
        ));
        r.extra.push(("activation_ms", json_num(activation_ms)));
        r.extra
            .push(("activation_rpo_entries", json_num(act.map(|a| a.1))));
        r.extra
            .push(("activation_rpo_ms", json_num(act.map(|a| a.2))));
        r.extra.push((
            "activation_rpo_proven",
            act.is_some_and(|a| a.3).to_string(),
        ));
        c.at_most(
            r.step,
            "activation ≤ its path (see activation_bound_ms)",
            activation_ms,
            bound,
        );
        c.check(
            r.step,
            "the activation proves RPO 0",
            act.is_some_and(|a| a.1 == 0 && a.3),
            format!("{act:?} (at, entries, ms, proven); sync_wait {sync_wait} ms"),
        );
        let (acked, missing) = acknowledged_before(sim, w, lost_at);
        r.extra
            .push(("acknowledged_before_loss", acked.to_string()));
        r.extra.push(("acknowledged_lost", missing.to_string()));
        c.check(
            r.step,
            "every proposal acknowledged before the loss applied once at Paris's leader",
            missing == 0,
            format!("{missing} of {acked} missing or applied twice"),
        );
        let twice = applied_twice(sim, &sim.site_members("paris"));
        c.check(
            r.step,
            "no command applied twice at a Paris member",
            twice == 0,
            format!("{twice} applied twice"),
        );
        c.leads(&r, sim, "paris");
        c.nothing_lost(&r);
        print(sim, MODE, &r, args.json);
        lost_at
    }

    /// main_site_returns: Denver restarts; it joins Paris's epoch with
    /// nothing to reconcile. Returns when it restarted (µs).
    fn main_site_returns(&mut self, lost_at: u64) -> u64 {
        let Self { sim, w, c, args } = self;
        let before = w.up.clone();
        let back = sim.now_us();
        for id in sim.site_members("denver") {
            sim.restart(id);
        }
        run_until_one_epoch(sim, w, Duration::from_secs(20));
        // In one epoch (checked every 200 ms of the run).
        let joined_ms = (sim.now_us() - back) / 1000;
        w.run(sim, Duration::from_secs(1));
        let (divergent, applied) = reconciled(sim, lost_at);
        let mut r = finish(
            sim,
            w,
            "main_site_returns",
            "rainy day: Denver back",
            &before,
            None,
            back,
        );
        r.extra.push(("epoch", epoch_of_leader(sim)));
        replication_fields(leader_view(sim), &mut r);
        r.extra.push(("reunion_ms", joined_ms.to_string()));
        r.extra.push(("divergent_entries", divergent.to_string()));
        r.extra.push(("reconciled_entries", applied.to_string()));
        c.check(
            r.step,
            "nothing to reconcile (Denver committed nothing without Paris)",
            divergent == 0 && applied == 0,
            format!("{divergent} divergent, {applied} re-applied"),
        );
        let twice = applied_twice(sim, &sim.members());
        c.check(
            r.step,
            "no command applied twice at any member",
            twice == 0,
            format!("{twice} applied twice"),
        );
        c.no_call_dropped(&r);
        c.nothing_lost(&r);
        print(sim, MODE, &r, args.json);
        back
    }

    /// hand_back: control returns to Denver after the stability window.
    fn hand_back(&mut self, back: u64) {
        let Self { sim, w, c, args } = self;
        let before = w.up.clone();
        let since = sim.now_us();
        let failed_before = w.failed;
        w.probe = true;
        w.run(sim, Duration::from_millis(args.stable_ms + 4_000));
        w.probe = false;
        w.run(sim, Duration::from_secs(2));
        let handed_at = hand_back_attempt(sim, since);
        let mut r = finish(sim, w, "hand_back", "rainy day: home", &before, None, since);
        r.extra.push(("epoch", epoch_of_leader(sim)));
        replication_fields(leader_view(sim), &mut r);
        hand_back_figures(sim, &mut r, handed_at, back, w.failed - failed_before);
        let voters: Vec<String> = (sim.leader().and_then(|l| sim.node(l)))
            .map(|n| {
                n.voters()
                    .iter()
                    .map(|&v| json_str(&name(sim, v)))
                    .collect()
            })
            .unwrap_or_default();
        r.extra.push(("voters", format!("[{}]", voters.join(","))));
        c.leads(&r, sim, "denver");
        leader_in_sync(sim, c, r.step);
        c.no_call_dropped(&r);
        c.nothing_lost(&r);
        print(sim, MODE, &r, args.json);
    }
}

impl Run<'_> {
    /// wan_cut: Paris falls silent. Denver's leader waits `sync_wait`,
    /// announces `AsyncWait` inside Denver, then goes `Async` and commits
    /// at LAN cost while what a loss of Denver would cost grows. Paris,
    /// without a leader for `survivable_after`, activates meanwhile.
    fn wan_cut(&mut self) {
        let sync_wait = self.sync_wait_ms();
        let Self { sim, w, c, args } = self;
        let before = w.up.clone();
        let cut = sim.now_us();
        let denver = sim.leader();
        sim.partition_sites(&["denver"], &["paris"]);
        w.run(sim, Duration::from_millis(sync_wait + 1_000));
        let view = |sim: &Sim<CallTable>| denver.and_then(|d| sim.node(d)?.status().replication);
        let early = view(sim).map_or(SiteLossCost::UNKNOWN, |v| v.main_site_loss);
        let since = sim.now_us();
        w.run(sim, Duration::from_secs(2));
        let async_at = denver.and_then(|d| entered_at(sim, d, ReplicationState::Async, cut));
        let mut lat = latencies(sim, &denver.into_iter().collect::<Vec<_>>(), since);
        let (p50, p99) = (percentile_us(&mut lat, 50), percentile_us(&mut lat, 99));
        let mut r = finish(sim, w, "wan_cut", "WAN cut: Async", &before, None, cut);
        // Paris's new leader narrates its epoch; Denver's leader of the
        // old one goes on committing there, and its moves are the step's.
        let mut faults = vec![(cut, "the WAN between Denver and Paris fails".to_string())];
        faults.extend(denver.map(|d| moves_of(sim, d, cut)).unwrap_or_default());
        r.story = story_with(sim, cut, &faults);
        r.extra.push(("epoch", epoch_of_leader(sim)));
        let loss = replication_fields(view(sim), &mut r);
        // Paris leads its own epoch by now: the replication fields are those
        // of Denver's leader, which still leads the old one.
        let of = denver.map_or("null".into(), |d| json_str(&name(sim, d)));
        r.extra.push(("replication_of", of));
        let to_async = async_at.map(|t| (t - cut) / 1000);
        r.extra.push(("wan_loss_to_async_ms", json_num(to_async)));
        r.extra.push(("async_commit_p50_ms", ms3(p50)));
        r.extra.push(("async_commit_p99_ms", ms3(p99)));
        r.extra
            .push(("rpo_entries_2s_earlier", json_num(early.entries)));
        let paris = activation(sim, cut);
        r.extra.push((
            "paris_activation_ms",
            json_num(paris.map(|a| (a.0 - cut) / 1000)),
        ));
        r.extra
            .push(("paris_rpo_proven", paris.is_some_and(|a| a.3).to_string()));
        // The leader heard Paris last at the cut at the latest; it moves
        // once silent for sync_wait (+ 1 tick, counted in whole ticks),
        // then once its Denver partners hold the AsyncWait record (a LAN
        // round trip and a tick): inside the WAN round trip allowed.
        c.at_most(
            r.step,
            "WAN loss -> Async ≤ sync_wait + 1 WAN RTT",
            to_async,
            sync_wait + rtt_ms(args),
        );
        // In Async a commit needs only Denver's majority: the LAN round
        // trip to a partner, plus one for the proposer's local work.
        c.check(
            r.step,
            "Async commit p99 at Denver's leader ≤ 2 LAN RTT (+ jitter)",
            p99.is_some_and(|p| p <= (2 + JITTER_MS) * 1000),
            format!("{} ms", ms3(p99)),
        );
        c.check(
            r.step,
            "the RPO grows while Paris is cut off",
            loss.entries.unwrap_or(0) > early.entries.unwrap_or(0),
            format!("{:?} then {:?}", early.entries, loss.entries),
        );
        c.nothing_lost(&r);
        print(sim, MODE, &r, args.json);
    }

    /// wan_heal: Paris is back; control is (or comes back) with Denver,
    /// `SyncRecover` while Paris catches up, then `Sync`.
    fn wan_heal(&mut self) {
        let Self { sim, w, c, args } = self;
        let before = w.up.clone();
        let healed = sim.now_us();
        sim.heal();
        w.run(sim, Duration::from_millis(args.stable_ms + 6_000));
        let heal_line = (healed, "the WAN heals".to_string());
        let recover = entered(sim, ReplicationState::SyncRecover, healed);
        let sync = entered(sim, ReplicationState::Sync, healed);
        let (divergent, applied) = reconciled(sim, healed);
        let mut r = finish(
            sim,
            w,
            "wan_heal",
            "WAN healed: Sync",
            &before,
            None,
            healed,
        );
        r.story = story_with(sim, healed, &[heal_line]);
        r.extra.push(("epoch", epoch_of_leader(sim)));
        let loss = replication_fields(leader_view(sim), &mut r);
        let since = |t: Option<u64>| t.map(|t| (t - healed) / 1000);
        r.extra
            .push(("heal_to_sync_recover_ms", json_num(since(recover))));
        r.extra.push(("heal_to_sync_ms", json_num(since(sync))));
        r.extra.push(("divergent_entries", divergent.to_string()));
        r.extra.push(("reconciled_entries", applied.to_string()));
        c.check(
            r.step,
            "SyncRecover, then Sync",
            recover.zip(sync).is_some_and(|(a, b)| a <= b),
            format!("{recover:?}, {sync:?}"),
        );
        c.check(
            r.step,
            "rpo_entries == 0, proven",
            loss == SiteLossCost::ZERO,
            format!("{loss:?}"),
        );
        c.leads(&r, sim, "denver");
        c.no_call_dropped(&r);
        c.nothing_lost(&r);
        print(sim, MODE, &r, args.json);
    }
}

/// The longest a proven activation takes after Denver's loss, in ms.
///
/// The leader's last message reaches Paris at most half a WAN round trip
/// after the loss; CM02a prepares `survivable_after` later, CM02b (second
/// in the core) an election timeout after that. CM02a probes its partner
/// every half election timeout, learns it prepared a LAN round trip later,
/// and forks on its next tick, once its tail is applied (another tick).
/// Plus the jitter allowance.
fn activation_bound_ms(sim: &Sim<CallTable>, args: &Args) -> u64 {
    let t = sim.topology();
    let election = t.timers().election.as_millis() as u64;
    let tick = t.ticks().tick_ms;
    rtt_ms(args) / 2 + args.survivable_after_ms + election * 3 / 2 + 1 + 2 * tick + JITTER_MS
}

/// Proposals acknowledged before `lost_at`, and how many of them Paris's
/// leader has not applied exactly once.
fn acknowledged_before(sim: &Sim<CallTable>, w: &Workload, lost_at: u64) -> (usize, usize) {
    let applies = sim
        .leader()
        .and_then(|l| sim.node(l))
        .map(|n| n.state_machine().applies.clone())
        .unwrap_or_default();
    let acked: Vec<&String> = (sim.commits().iter())
        .filter(|c| c.done_us < lost_at && c.outcome.result.is_ok())
        .filter_map(|c| w.commands.get(&c.id))
        .collect();
    let missing = (acked.iter())
        .filter(|cmd| applies.get(cmd.as_str()) != Some(&1))
        .count();
    (acked.len(), missing)
}

/// Runs until every member is in one epoch, or `limit`.
fn run_until_one_epoch(sim: &mut Sim<CallTable>, w: &mut Workload, limit: Duration) {
    let end = sim.now_ms() + limit.as_millis() as u64;
    while sim.now_ms() < end {
        w.run(sim, Duration::from_millis(200));
        let epochs: BTreeSet<_> = (sim.members().into_iter())
            .filter_map(|id| sim.node(id).map(|n| n.epoch()))
            .collect();
        if epochs.len() == 1 {
            return;
        }
    }
}
