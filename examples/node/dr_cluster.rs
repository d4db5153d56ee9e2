//! `node cluster --mode dr-auto-sync`: DR auto-sync (two sites, TB the
//! tie-breaker on Denver's LAN, all five members voters) as five processes
//! through the relay, under the call workload: steady `Sync`, a WAN cut
//! (Denver's leader goes `Async`), its heal (`Sync` again), then Denver lost
//! in `Sync` (Paris activates, every acknowledged call kept).
//!
//! Each step prints one line like the witness run's, with the replication
//! fields Denver's (or, at the end, Paris's) leader reports in its
//! `status` (`Status::replication`): `replication_state`, `state_id`, and
//! what a loss of the main site would cost now (`rpo_entries`, `rpo_ms`,
//! `rpo_proven`). Times are taken where the launcher sees the members'
//! events, so they include a pipe hop (well under a millisecond).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use super::{dump_logs, event_of, wan_timers, Cluster, Mode, STABLE_MS, SURVIVABLE_AFTER_MS};

/// `Timers::sync_wait`'s default (the member files leave it alone).
const SYNC_WAIT_MS: u64 = 4_000;

/// `node cluster --mode dr-auto-sync` (see `launcher::run`).
pub(super) fn run(
    json: bool,
    keep: bool,
    wan: &[(String, String, Duration)],
    svg: Option<&str>,
) -> Result<(), String> {
    if svg.is_some() {
        return Err(
            "--svg draws the witness run only; leave it out with --mode dr-auto-sync".into(),
        );
    }
    if let Some((a, b, _)) = wan.iter().find(|(a, b, _)| a == "kansas" || b == "kansas") {
        return Err(format!(
            "--wan {a}-{b}: DR auto-sync has two sites, denver and paris; give denver-paris=RTT only"
        ));
    }
    // As the witness run: a 100 ms failover detection (see `run`).
    let timers = wan_timers(wan, "failover_ms = 100");
    let mut c = Cluster::start_in(Mode::DrAutoSync, json, &timers, wan)?;
    c.keep = keep;
    if !json {
        println!(
            "DR auto-sync: five processes on 127.0.0.1 (TB on Denver's LAN), mutual TLS, the WAN through a relay ({} ms round trip), data and certificates in {}",
            wan_rtt_ms(wan),
            c.dir.display()
        );
    }
    if steps(&mut c, wan) {
        return Ok(());
    }
    dump_logs(&c);
    Err("a DR auto-sync step did not behave as designed (member logs above)".into())
}

/// The WAN round trip between Denver and Paris of `wan`, in ms.
fn wan_rtt_ms(wan: &[(String, String, Duration)]) -> u64 {
    let one_way = |a: &str, b: &str| {
        (wan.iter())
            .rfind(|(x, y, _)| x == a && y == b)
            .map_or(Duration::ZERO, |(_, _, d)| *d)
    };
    (one_way("denver", "paris") + one_way("paris", "denver")).as_millis() as u64
}

/// The `p`th percentile (nearest rank) of `v`, in ms with µs precision.
fn percentile_ms(v: &mut [u64], p: usize) -> Option<f64> {
    v.sort_unstable();
    let rank = (v.len() * p).div_ceil(100).max(1);
    v.get(rank - 1).map(|&us| us as f64 / 1000.0)
}

fn ms_json(v: Option<f64>) -> String {
    v.map_or("null".into(), |ms| format!("{ms:.3}"))
}

/// The JSON text of `v`, `null` when absent.
fn json(v: &serde_json::Value) -> String {
    if v.is_null() {
        "null".into()
    } else {
        v.to_string()
    }
}

impl Cluster {
    /// The commit latencies (µs) of the proposals made at member `at` and
    /// acknowledged from `since_ms` (ms since start) on.
    fn latencies_at(&self, at: u64, since_ms: u64) -> Vec<u64> {
        (self.latencies.iter())
            .filter(|(t, m, _)| *t >= since_ms && *m == at)
            .map(|(.., us)| *us)
            .collect()
    }

    /// The leader's replication fields, as the report's extra pairs.
    fn replication_fields(&self) -> Vec<(&'static str, String)> {
        let r = (self.leader())
            .and_then(|l| self.replication.get(&l))
            .cloned()
            .unwrap_or_default();
        let loss = &r["main_site_loss"];
        vec![
            ("replication_state", json(&r["state"])),
            ("state_id", json(&r["state_id"])),
            ("rpo_entries", json(&loss["entries"])),
            ("rpo_ms", json(&loss["ms"])),
            ("rpo_proven", json(&loss["proven"])),
        ]
    }

    /// The leader's replication state (`sync`, `async`, ...), if known.
    fn leader_state(&self) -> Option<String> {
        let l = self.leader()?;
        let s = self.replication.get(&l)?["state"].as_str()?;
        Some(s.to_string())
    }

    /// The events seen since `since` (kind, member, ms after `since`, the
    /// event's JSON).
    fn events_since(&self, since: Instant) -> Vec<(String, u64, u64, serde_json::Value)> {
        let tap = self.tap.as_deref().unwrap_or_default();
        (tap.iter())
            .filter(|(t, _, line)| *t >= since && line.contains("\"event\":"))
            .filter_map(|(t, id, line)| {
                let (kind, _) = event_of(line)?;
                let v: serde_json::Value = serde_json::from_str(line).ok()?;
                let ms = t.duration_since(since).as_millis() as u64;
                Some((kind, *id, ms, v["event"].clone()))
            })
            .collect()
    }

    /// When (ms after `since`) a Denver member first announced `state`.
    fn entered(&self, state: &str, since: Instant) -> Option<u64> {
        (self.events_since(since).into_iter())
            .find(|(kind, id, _, e)| {
                kind == "replication_changed" && self.site(*id) == "denver" && e["state"] == state
            })
            .map(|(_, _, ms, _)| ms)
    }

    /// A Paris member's activation since `since`: (ms after it, event).
    fn activation(&self, since: Instant) -> Option<(u64, serde_json::Value)> {
        (self.events_since(since).into_iter())
            .find(|(kind, id, ..)| kind == "activated" && self.site(*id) == "paris")
            .map(|(_, _, ms, e)| (ms, e))
    }
}

/// The DR auto-sync story over `wan`; whether every step behaved.
fn steps(c: &mut Cluster, wan: &[(String, String, Duration)]) -> bool {
    // Every output line is kept: the steps read events out of it.
    c.tap = Some(Vec::new());
    let rtt = wan_rtt_ms(wan);
    let mut ok = true;
    ok &= sync(c, rtt);
    let cut = Instant::now();
    ok &= wan_cut(c);
    ok &= heal(c, cut);
    ok &= denver_lost(c);
    ok
}

fn leads_in(c: &Cluster, site: &str) -> bool {
    c.leader().is_some_and(|l| c.site(l) == site)
}

/// sync: Denver leads in `Sync`; commit latency at the leader over 6 s of
/// the workload, from a second after the first commit (the first commits
/// wait for Paris to accept the first leader).
fn sync(c: &mut Cluster, rtt: u64) -> bool {
    c.run_for(Duration::from_secs(3));
    c.await_leader();
    let since = c.now_ms();
    c.run_for(Duration::from_secs(6));
    c.await_leader();
    let mut lat = c
        .leader()
        .map_or_else(Vec::new, |l| c.latencies_at(l, since));
    let (p50, p99) = (percentile_ms(&mut lat, 50), percentile_ms(&mut lat, 99));
    let mut extra = c.replication_fields();
    extra.push(("commits", lat.len().to_string()));
    extra.push(("commit_p50_ms", ms_json(p50)));
    extra.push(("commit_p99_ms", ms_json(p99)));
    let state = c.leader_state();
    let lost = c.report("sync", None, &BTreeSet::new(), &extra);
    // A commit in Sync needs a Paris member's ack: the leader's append
    // crosses the WAN and the ack comes back, one round trip at least.
    let waits_for_paris = p50.is_some_and(|p| p >= rtt as f64);
    leads_in(c, "denver") && state.as_deref() == Some("sync") && waits_for_paris && lost == 0
}

/// wan_cut: the relay cuts Denver from Paris (connections stay open, bytes
/// are held). The workload's clients are Denver's (Paris's cannot reach
/// the leader); Paris, leaderless for `survivable_after`, activates an
/// epoch of its own (it cannot tell the cut from Denver's loss).
fn wan_cut(c: &mut Cluster) -> bool {
    let before = c.up.clone();
    let t0 = Instant::now();
    c.relay.cut_both("denver", "paris");
    c.isolated.insert("paris");
    c.run_for(Duration::from_millis(SYNC_WAIT_MS + 1_000));
    let to_async = c.entered("async", t0);
    let since = c.now_ms();
    c.run_for(Duration::from_secs(3));
    c.await_leader();
    let mut lat = c
        .leader()
        .map_or_else(Vec::new, |l| c.latencies_at(l, since));
    let (p50, p99) = (percentile_ms(&mut lat, 50), percentile_ms(&mut lat, 99));
    let paris = c.activation(t0);
    let mut extra = c.replication_fields();
    extra.push((
        "to_async_ms",
        to_async.map_or("null".into(), |t| t.to_string()),
    ));
    extra.push(("commits", lat.len().to_string()));
    extra.push(("commit_p50_ms", ms_json(p50)));
    extra.push(("commit_p99_ms", ms_json(p99)));
    let act_ms = paris.as_ref().map(|p| p.0);
    extra.push((
        "paris_activated_ms",
        act_ms.map_or("null".into(), |t| t.to_string()),
    ));
    let proven = paris.as_ref().map(|p| json(&p.1["rpo_proven"]));
    extra.push(("paris_rpo_proven", proven.unwrap_or("null".into())));
    let state = c.leader_state();
    let lost = c.report("wan_cut", None, &before, &extra);
    leads_in(c, "denver") && state.as_deref() == Some("async") && lost == 0
}

/// heal: the WAN is back (held bytes delivered). If Paris activated during
/// the cut, Denver's `Async` commits are reconciled into Paris's epoch and
/// control comes home once stable; then `SyncRecover` and `Sync`.
///
/// The workload's clients stay Denver's until Paris's epoch has taken
/// all of Denver's commits in (Denver's pair joined it; the
/// reconciliation comes in chunks, a `reconciled` event each): the
/// example's key-value store reconciles by
/// re-applying every divergent command, so a tear-down made in Paris's
/// epoch before that, of a call set up in Denver's `Async` branch, would
/// find no call and the re-applied set-up would bring it back (an
/// application's reconcile hook decides such cases; see `CallTable` in
/// the `denver_paris` example). `cut`: when the WAN was cut.
fn heal(c: &mut Cluster, cut: Instant) -> bool {
    let before = c.up.clone();
    let (t0, start_ms, failed) = (Instant::now(), c.now_ms(), c.failed);
    c.relay.heal_all();
    let synced = |c: &Cluster| leads_in(c, "denver") && c.leader_state().as_deref() == Some("sync");
    let merged = |c: &Cluster| {
        let joined: BTreeSet<u64> = (c.events_since(t0).iter())
            .filter(|(kind, ..)| kind == "joined_epoch")
            .map(|(_, id, ..)| *id)
            .collect();
        c.activation(cut).is_none() || [1, 2].iter().all(|id| joined.contains(id))
    };
    while !synced(c) && c.now_ms() < start_ms + 3 * STABLE_MS + 10_000 {
        if merged(c) {
            c.isolated.clear();
        }
        c.run_for(Duration::from_millis(100));
    }
    c.isolated.clear();
    let home_sync = synced(c).then(|| c.now_ms() - start_ms);
    let events = c.events_since(t0);
    let reconciled = |k: &str| -> u64 {
        (events.iter())
            .filter(|(kind, ..)| kind == "reconciled")
            .filter_map(|(.., e)| e[k].as_u64())
            .sum()
    };
    let (divergent, commands) = (reconciled("divergent"), reconciled("commands"));
    let back = (events.iter())
        .find(|(kind, id, _, e)| {
            kind == "replication_changed" && c.site(*id) == "denver" && e["state"] == "sync"
        })
        .map(|(_, _, ms, _)| *ms);
    c.run_for(Duration::from_secs(2));
    c.await_leader();
    let mut extra = c.replication_fields();
    extra.push(("sync_ms", back.map_or("null".into(), |t| t.to_string())));
    extra.push((
        "home_in_sync_ms",
        home_sync.map_or("null".into(), |t| t.to_string()),
    ));
    extra.push(("reconciled_divergent", divergent.to_string()));
    extra.push(("reconciled_commands", commands.to_string()));
    // Proposals refused at Denver's members while fenced (their epoch
    // met Paris's) and before they joined it.
    extra.push(("failed_proposals", (c.failed - failed).to_string()));
    let lost = c.report("heal", None, &before, &extra);
    synced(c) && lost == 0
}

/// denver_lost: in `Sync`, CM01a, CM01b and TB are killed with SIGKILL;
/// a Paris member activates an epoch of its own from its whole log (RPO 0,
/// proven) and holds every acknowledged call.
fn denver_lost(c: &mut Cluster) -> bool {
    let before = c.up.clone();
    let state_at_loss = c.leader_state();
    let t0 = Instant::now();
    for id in [1, 2, 5] {
        c.kill9(id);
    }
    c.isolated.insert("denver");
    c.run_for(Duration::from_millis(SURVIVABLE_AFTER_MS + 3_000));
    c.await_leader();
    let act = c.activation(t0);
    let field = |k: &str| act.as_ref().map_or("null".into(), |a| json(&a.1[k]));
    let mut extra = c.replication_fields();
    extra.push(("state_at_loss", json(&state_at_loss.clone().into())));
    let act_ms = act.as_ref().map(|a| a.0);
    extra.push((
        "activated_ms",
        act_ms.map_or("null".into(), |t| t.to_string()),
    ));
    extra.push(("activation_rpo_entries", field("rpo_entries")));
    extra.push(("activation_rpo_proven", field("rpo_proven")));
    let proven = act.as_ref().is_some_and(|a| a.1["rpo_proven"] == true);
    let lost = c.report("denver_lost", None, &before, &extra);
    state_at_loss.as_deref() == Some("sync") && leads_in(c, "paris") && proven && lost == 0
}
