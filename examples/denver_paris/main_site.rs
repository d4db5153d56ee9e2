//! Main-site mode: the paper's rainy day, with only two data centres.
//!
//! Denver holds the voting majority (CM01a, CM01b and the tie-breaker TB
//! on a third host), so a commit costs a LAN round trip; Paris's CM02a and
//! CM02b replicate as learners. Six steps: normal operation, a WAN cut
//! (Paris activates its own epoch after `survivable_after`, both sides
//! serve their users), the heal (Denver's divergent calls are reconciled
//! into Paris's epoch), hand-back, the loss of the whole Denver site while
//! the WAN is degraded (the loss is at most the replication lag) and
//! Denver's return with its stale tail, which is reconciled.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use survivable_core::node::EpochId;
use survivable_core::sim::Sim;
use survivable_core::topology::{denver_paris_two_site, Failure, NodeId};
use survivable_core::Event;

use crate::bounds::Bounds;
use crate::{
    finish, hand_back_attempt, hand_back_figures, json_num, print, start, Args, CallTable, Checks,
    Report, Workload,
};

const MODE: &str = "main-site";
const CM02A: NodeId = NodeId(3);

/// Percentile `p` (0–100) of `v`, in ms with µs precision.
fn percentile_ms(v: &mut [u64], p: usize) -> String {
    if v.is_empty() {
        return "null".into();
    }
    v.sort_unstable();
    let i = ((v.len() - 1) * p).div_ceil(100);
    format!("{:.3}", v[i] as f64 / 1000.0)
}

/// Commit latencies (µs) of proposals made at `nodes` since `since_us`.
fn latencies(sim: &Sim<CallTable>, nodes: &[NodeId], since_us: u64) -> Vec<u64> {
    sim.commits()
        .iter()
        .filter(|c| c.proposed_us >= since_us && nodes.contains(&c.node))
        .filter(|c| c.outcome.result.is_ok())
        .map(|c| c.done_us - c.proposed_us)
        .collect()
}

/// Acknowledged proposals since `since_us`, per epoch.
fn acks_by_epoch(sim: &Sim<CallTable>, since_us: u64) -> Vec<(EpochId, usize)> {
    let mut by: std::collections::BTreeMap<EpochId, usize> = Default::default();
    for c in sim.commits().iter().filter(|c| c.done_us >= since_us) {
        if let Ok(a) = &c.outcome.result {
            *by.entry(a.epoch).or_default() += 1;
        }
    }
    by.into_iter().collect()
}

/// An activation: when (µs), the epoch, its RPO in entries and in ms.
#[derive(Clone, Copy)]
struct Activation {
    at_us: u64,
    rpo_entries: u64,
    rpo_ms: u64,
}

/// The first `Activated` at or after `since_us`.
fn activation(sim: &Sim<CallTable>, since_us: u64) -> Option<Activation> {
    sim.events().iter().find_map(|(t, _, e)| match e {
        Event::Activated {
            rpo_entries,
            rpo_ms,
            ..
        } if *t >= since_us => Some(Activation {
            at_us: *t,
            rpo_entries: *rpo_entries,
            rpo_ms: *rpo_ms,
        }),
        _ => None,
    })
}

/// Records the activation's figures on `r` and checks them: activation
/// ≤ `survivable_after` + 2 WAN RTT after `fault_us`, RPO ≤ the lag.
/// The rest of an activation step, after its fault at `fault_us`: runs
/// `survivable_after` + 3 s, then reports the activation (epoch, time,
/// RPO) and checks it against its bounds.
#[allow(clippy::too_many_arguments)]
fn activation_step(
    sim: &mut Sim<CallTable>,
    w: &mut Workload,
    c: &mut Checks,
    args: &Args,
    (step, figure, failure): (&'static str, &'static str, Failure),
    before: &BTreeSet<u64>,
    fault_us: u64,
    lag: u64,
) -> (Report, Option<Activation>) {
    // Detection (survivable_after, plus the old leader's last message
    // still in flight when a site dies) and the new epoch's rounds inside
    // Paris: the report's figure for the failure.
    let bound = Bounds::new(sim, args).takeover_ms(&failure).unwrap_or(0);
    w.run(sim, Duration::from_millis(args.survivable_after_ms + 3_000));
    let act = activation(sim, fault_us);
    let mut r = finish(sim, w, step, figure, before, None, fault_us);
    r.extra.push(("epoch", epoch_of_leader(sim)));
    activation_figures(c, &mut r, act, (fault_us, lag), bound);
    (r, act)
}

fn activation_figures(
    c: &mut Checks,
    r: &mut Report,
    act: Option<Activation>,
    (fault_us, lag): (u64, u64),
    bound: u64,
) {
    let activation_ms = act.map(|a| (a.at_us - fault_us) / 1000);
    r.takeover_ms = activation_ms;
    r.extra.push(("activation_ms", json_num(activation_ms)));
    r.extra
        .push(("rpo_entries", json_num(act.map(|a| a.rpo_entries))));
    r.extra.push(("rpo_ms", json_num(act.map(|a| a.rpo_ms))));
    c.at_most(
        r.step,
        "activation ≤ the report's figure + 1 tick",
        activation_ms,
        bound,
    );
    c.check(
        r.step,
        "rpo_entries ≤ the replication lag at the fault",
        act.is_some_and(|a| a.rpo_entries <= lag),
        format!("{:?} entries, lag {lag}", act.map(|a| a.rpo_entries)),
    );
}

/// One reconciliation record: the older epoch's entries taken in (first
/// and last index), its divergent commands and those applied.
#[derive(Clone, Copy)]
struct Taken {
    from_index: u64,
    to_index: u64,
    divergent: u64,
    commands: u64,
}

/// The reconciliations recorded since `since_us`, each record once though
/// every member of the epoch reports it.
fn reconciliations(sim: &Sim<CallTable>, since_us: u64) -> Vec<Taken> {
    let mut records = std::collections::BTreeMap::new();
    for (t, _, e) in sim.events() {
        if let Event::Reconciled {
            epoch,
            index,
            from_index,
            to_index,
            divergent,
            commands,
            ..
        } = e
        {
            if *t >= since_us {
                let taken = Taken {
                    from_index: *from_index,
                    to_index: *to_index,
                    divergent: *divergent,
                    commands: *commands,
                };
                records.insert((*epoch, *index), taken);
            }
        }
    }
    records.into_values().collect()
}

/// Divergent and re-applied commands reconciled since `since_us`.
fn reconciled(sim: &Sim<CallTable>, since_us: u64) -> (u64, u64) {
    reconciliations(sim, since_us)
        .iter()
        .fold((0, 0), |(d, c), r| (d + r.divergent, c + r.commands))
}

/// Entries of older epochs taken in by reconciliations since `since_us`,
/// split at `split`: how many had an index up to it, and how many after.
fn taken_in(sim: &Sim<CallTable>, since_us: u64, split: u64) -> (u64, u64) {
    reconciliations(sim, since_us)
        .iter()
        .filter(|r| r.to_index >= r.from_index)
        .fold((0, 0), |(upto, after), r| {
            let all = r.to_index - r.from_index + 1;
            let held = (r.to_index.min(split) + 1).saturating_sub(r.from_index);
            (upto + held, after + (all - held))
        })
}

/// Runs until every member is in the newest epoch and nothing is being
/// reconciled, or `limit`.
fn run_until_reunited(sim: &mut Sim<CallTable>, w: &mut Workload, limit: Duration) {
    let end = sim.now_ms() + limit.as_millis() as u64;
    while sim.now_ms() < end {
        w.run(sim, Duration::from_millis(200));
        let epochs: BTreeSet<EpochId> = sim
            .members()
            .into_iter()
            .filter_map(|id| sim.node(id).map(|n| n.epoch()))
            .collect();
        if epochs.len() == 1 {
            return;
        }
    }
}

fn epoch_of_leader(sim: &Sim<CallTable>) -> String {
    sim.leader()
        .and_then(|l| sim.node(l))
        .map_or("null".into(), |n| format!("\"{}\"", n.epoch()))
}

/// The hook's narration lines written since the last call.
fn hook_lines(log: &Mutex<Vec<String>>, r: &mut Report) {
    for line in log.lock().expect("hook log").drain(..) {
        r.story.push(format!("  {:>11}  {line}", ""));
    }
}

/// Paris's replication lag: entries committed at the leader that CM02a has
/// not applied.
fn lag(sim: &Sim<CallTable>) -> u64 {
    let commit = sim
        .leader()
        .and_then(|l| sim.node(l))
        .map_or(0, |n| n.status().commit);
    commit.saturating_sub(sim.node(CM02A).map_or(0, |n| n.status().applied))
}

/// A main-site run: the simulator, the users' calls, the checks and the
/// reconcile hook's log, shared by its steps.
struct Run<'a> {
    sim: Sim<CallTable>,
    w: Workload,
    c: Checks,
    args: &'a Args,
    log: Arc<Mutex<Vec<String>>>,
}

/// The loss of Denver, as `main_site_returns` needs it: when, the
/// activation it caused, and the last index Denver's members held then.
struct Loss {
    at_us: u64,
    act: Option<Activation>,
    denver_last: u64,
}

/// Runs the six main-site steps; whether each behaved as designed.
pub(crate) fn run(args: &Args) -> bool {
    let table = CallTable::default();
    let log = table.hook_log.clone();
    let title = "main-site mode: two data centres, the rainy day";
    let Some(sim) = start(title, denver_paris_two_site(), table, args) else {
        return false;
    };
    let mut run = Run {
        sim,
        w: Workload::new(args.seed, true),
        c: Checks::new("main-site"),
        args,
        log,
    };
    run.normal();
    run.wan_partition();
    let healed = run.reunion();
    run.hand_back(healed);
    let loss = run.main_site_lost();
    run.main_site_returns(&loss);
    let drawn = crate::write_svg(args, crate::Mode::MainSite, &run.sim, &run.w);
    run.c.finish(&run.sim.violations()) && drawn
}

impl Run<'_> {
    /// normal: Denver commits on its own majority; Paris follows. Latency
    /// is measured after the first election and a second of warm-up.
    fn normal(&mut self) {
        let Self {
            sim, w, c, args, ..
        } = self;
        let start = sim.now_us();
        w.run(sim, Duration::from_secs(1));
        let since = sim.now_us();
        w.run(sim, Duration::from_secs(4));
        let leader = sim.leader();
        let denver = sim.site_members("denver");
        let mut at_leader = latencies(sim, &leader.into_iter().collect::<Vec<_>>(), since);
        let mut in_denver = latencies(sim, &denver, since);
        let mut in_paris = latencies(sim, &sim.site_members("paris"), since);
        let mut r = finish(
            sim,
            w,
            "normal",
            "rainy day: before",
            &w.up.clone(),
            None,
            start,
        );
        r.extra.push(("epoch", epoch_of_leader(sim)));
        r.extra
            .push(("commit_p50_ms", percentile_ms(&mut at_leader, 50)));
        r.extra
            .push(("commit_p99_ms", percentile_ms(&mut at_leader, 99)));
        r.extra
            .push(("denver_commit_p99_ms", percentile_ms(&mut in_denver, 99)));
        r.extra
            .push(("paris_commit_p50_ms", percentile_ms(&mut in_paris, 50)));
        r.extra.push(("paris_lag_entries", lag(sim).to_string()));
        c.leads(&r, sim, "denver");
        // ≤ 2 LAN round trips (1 ms each) at the leader: the WAN is not waited for.
        let p99 = percentile_ms(&mut at_leader, 99);
        c.check(
            r.step,
            "commit p99 at Denver's leader ≤ 2 LAN RTT",
            p99.parse::<f64>().is_ok_and(|ms| ms <= 2.0),
            format!("{p99} ms, bound 2 ms"),
        );
        c.nothing_lost(&r);
        print(sim, MODE, &r, args.json);
    }

    /// wan_partition: Paris activates its own epoch; both sides serve.
    fn wan_partition(&mut self) {
        let Self {
            sim, w, c, args, ..
        } = self;
        let before = w.up.clone();
        let cut = sim.now_us();
        let lag_at_cut = lag(sim);
        sim.partition_sites(&["denver"], &["paris"]);
        let (mut r, _) = activation_step(
            sim,
            w,
            c,
            args,
            (
                "wan_partition",
                "rainy day: cut off",
                Failure::Partition {
                    side_a: vec!["denver".into()],
                    side_b: vec!["paris".into()],
                },
            ),
            &before,
            cut,
            lag_at_cut,
        );
        r.extra.push(("lag_at_cut_entries", lag_at_cut.to_string()));
        let served = acks_by_epoch(
            sim,
            cut + (args.survivable_after_ms + 2 * args.wan_rtt_ms) * 1000,
        );
        r.extra.push((
            "epochs_serving",
            served.iter().filter(|(_, n)| *n > 0).count().to_string(),
        ));
        for (e, n) in &served {
            r.story.push(format!(
                "  {:>11}  epoch {e} acknowledged {n} call command(s) in the last part of the cut",
                ""
            ));
        }
        let serving = served.iter().filter(|(_, n)| *n > 0).count();
        c.check(
            r.step,
            "both epochs serve",
            serving == 2,
            format!("{serving} serving"),
        );
        c.nothing_lost(&r);
        print(sim, MODE, &r, args.json);
    }

    /// reunion: the WAN heals; Denver's divergent calls are reconciled.
    /// Returns when the WAN healed (µs).
    fn reunion(&mut self) -> u64 {
        let Self {
            sim,
            w,
            c,
            args,
            log,
        } = self;
        let before = w.up.clone();
        let healed = sim.now_us();
        sim.heal();
        run_until_reunited(sim, w, Duration::from_secs(20));
        w.run(sim, Duration::from_secs(1));
        let (divergent, applied) = reconciled(sim, healed);
        let mut r = finish(
            sim,
            w,
            "reunion",
            "rainy day: healed",
            &before,
            None,
            healed,
        );
        hook_lines(log, &mut r);
        r.extra.push(("epoch", epoch_of_leader(sim)));
        r.extra
            .push(("reunion_ms", ((sim.now_us() - healed) / 1000).to_string()));
        r.extra.push(("divergent_entries", divergent.to_string()));
        r.extra.push(("reconciled_entries", applied.to_string()));
        c.no_call_dropped(&r);
        c.check(
            r.step,
            "Denver's divergent calls reach the hook",
            divergent > 0,
            format!("{divergent} divergent"),
        );
        c.nothing_lost(&r);
        print(sim, MODE, &r, args.json);
        healed
    }

    /// hand_back: control returns to Denver after the stability window
    /// (counted from `healed`, when the WAN healed).
    fn hand_back(&mut self, healed: u64) {
        let Self {
            sim, w, c, args, ..
        } = self;
        let before = w.up.clone();
        let since = sim.now_us();
        let failed_before = w.failed;
        w.probe = true;
        w.run(sim, Duration::from_millis(args.stable_ms + 4_000));
        w.probe = false;
        let handed_at = hand_back_attempt(sim, since);
        let mut r = finish(sim, w, "hand_back", "rainy day: home", &before, None, since);
        r.extra.push(("epoch", epoch_of_leader(sim)));
        let outage = hand_back_figures(sim, &mut r, handed_at, healed, w.failed - failed_before);
        c.at_most(
            r.step,
            "write outage ≤ 2 WAN RTT + 2 LAN RTT + 2 ticks",
            outage,
            Bounds::new(sim, args).hand_back_outage_ms("paris", "denver"),
        );
        c.leads(&r, sim, "denver");
        c.no_call_dropped(&r);
        c.nothing_lost(&r);
        print(sim, MODE, &r, args.json);
    }

    /// main_site_lost: the WAN to Paris degrades (80 % loss from Denver)
    /// and a second later Denver's whole site fails. Paris activates and
    /// loses at most what had not reached it: the replication lag.
    fn main_site_lost(&mut self) -> Loss {
        let Self {
            sim, w, c, args, ..
        } = self;
        let paris = sim.site_members("paris");
        for &d in &sim.site_members("denver") {
            for &p in &paris {
                sim.set_link_loss(d, p, 0.8);
            }
        }
        w.run(sim, Duration::from_secs(1));
        let before = w.up.clone();
        let lost_at = sim.now_us();
        let lag_at_loss = lag(sim);
        let denver_last = sim
            .site_members("denver")
            .into_iter()
            .filter_map(|id| sim.node(id).map(|n| n.status().last_index))
            .max()
            .unwrap_or(0);
        sim.crash_site("denver");
        sim.restore_links();
        let (mut r, act) = activation_step(
            sim,
            w,
            c,
            args,
            (
                "main_site_lost",
                "rainy day: Denver lost",
                Failure::Site {
                    site: "denver".into(),
                },
            ),
            &before,
            lost_at,
            lag_at_loss,
        );
        r.extra
            .push(("lag_at_loss_entries", lag_at_loss.to_string()));
        c.leads(&r, sim, "paris");
        c.nothing_lost(&r);
        print(sim, MODE, &r, args.json);
        Loss {
            at_us: lost_at,
            act,
            denver_last,
        }
    }

    /// main_site_returns: Denver restarts with its stale tail; it is
    /// reconciled, Denver joins Paris's epoch, and control goes home.
    fn main_site_returns(&mut self, loss: &Loss) {
        let Self {
            sim,
            w,
            c,
            args,
            log,
        } = self;
        let before = w.up.clone();
        let back = sim.now_us();
        for id in sim.site_members("denver") {
            sim.restart(id);
        }
        run_until_reunited(sim, w, Duration::from_secs(20));
        w.run(sim, Duration::from_millis(args.stable_ms + 4_000));
        sim.run_until_converged(Duration::from_secs(10));
        sim.check_converged();
        // Since the loss: CM02b may have held entries CM02a lacked, reconciled
        // as soon as it met CM02a's epoch.
        let (divergent, applied) = reconciled(sim, loss.at_us);
        // Denver's old epoch taken in: the tail it held at the loss, and what
        // its restarted members accepted before they met Paris's epoch (they
        // cannot know of it sooner: with the WAN down they serve Denver's
        // users). Every entry committed past the fork must be in the former.
        let (held_at_loss, after_restart) = taken_in(sim, loss.at_us, loss.denver_last);
        let mut r = finish(
            sim,
            w,
            "main_site_returns",
            "rainy day: Denver back",
            &before,
            None,
            back,
        );
        hook_lines(log, &mut r);
        r.extra.push(("epoch", epoch_of_leader(sim)));
        r.extra.push(("divergent_entries", divergent.to_string()));
        r.extra.push(("reconciled_entries", applied.to_string()));
        r.extra
            .push(("taken_in_held_at_loss", held_at_loss.to_string()));
        r.extra
            .push(("taken_in_after_restart", after_restart.to_string()));
        c.leads(&r, sim, "denver");
        c.no_call_dropped(&r);
        let rpo = loss.act.map_or(0, |a| a.rpo_entries);
        c.check(
            r.step,
            "every entry committed past the fork is taken in",
            held_at_loss >= rpo,
            format!(
                "{held_at_loss} taken in from the tail held at the loss, {rpo} committed past the fork"
            ),
        );
        c.nothing_lost(&r);
        print(sim, MODE, &r, args.json);
    }
}
