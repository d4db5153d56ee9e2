//! `node bench` failover: the Denver/Paris cluster as five processes on
//! loopback (mutual TLS, raft-engine with fsync), at the library's
//! **default timers** (`Timers::default()`: the JSON says which), under a
//! proposal every 2 ms spread over the members.
//!
//! - **Trials** (`--trials N`, in pairs): the leader's process is killed
//!   with SIGKILL and the time to the first commit under a new term is
//!   measured. Then the killed member is restarted and, as soon as it has
//!   caught up, the leader is killed again: the standby taking over is now
//!   the member just restarted ("after restart", reported apart). Then it
//!   too is restarted, caught up, and the cluster left alone for 1.5 s
//!   before the next normal trial.
//! - **Leadership changes nobody caused**: every `became_leader` between a
//!   trial's settling and the next kill is counted (`unprovoked`), and the
//!   run ends with `--load-secs S` (default 10) of saturation (64
//!   proposals outstanding, spread over every member) in which every
//!   leadership change and pair failover started is counted. The target
//!   is zero of each.
//! - **How each failover was detected**: the standby's `failover_started`
//!   event gives the silence it acted on; below the failover time it acted
//!   on its leader's process being gone (connection closed, dial refused),
//!   not on the timer (`fast`).
//!
//! A trial's start waits (the workload running, up to 5 s) for a leader
//! known to every status poll: a leadership change caught in the middle by
//! the status poll is no reason to give up (the old bench did: "trial 8:
//! no leader", a stall-driven pair failover under its 30 ms failover
//! timer, seen between two members' status lines); it is counted instead.

use std::time::Duration;

use survivable_core::policy::Timers;

use crate::launcher::{event_of, Cluster};

/// The kill-to-commit times of one kind of trial, and how the failovers in
/// them were detected.
#[derive(Default)]
struct Trials {
    ms: Vec<u64>,
    /// Failovers started on a silence below the failover time.
    fast: usize,
    /// Failovers started on the timer.
    timer: usize,
    /// Per trial: the kill's wall-clock time (ms since the epoch, as in the
    /// members' logs), the member killed, how long its process took to
    /// die (SIGKILL to reaped), the time taken, and who became
    /// leader and why (`<member>:<cause>`), with the silences any
    /// `failover_started` acted on: what names a slow trial's cause.
    how: Vec<String>,
}

impl Trials {
    fn json(&self, kind: &str, t: &Timers, extra: &str) -> String {
        let mut v = self.ms.clone();
        v.sort_unstable();
        let p = |q: f64| {
            let i = ((v.len() as f64 - 1.0) * q).round() as usize;
            v.get(i.min(v.len().saturating_sub(1)))
                .copied()
                .unwrap_or(0)
        };
        let all: Vec<String> = self.ms.iter().map(u64::to_string).collect();
        format!(
            "{{\"bench\":\"{kind}\",\"trials\":{},\"median_ms\":{},\"p99_ms\":{},\"max_ms\":{},\"detected_fast\":{},\"detected_by_timer\":{},{},\"storage\":\"raft-engine, fsync\",\"transport\":\"mutual tls, loopback\",\"all_ms\":[{}],\"how\":{:?}{extra}}}",
            v.len(),
            p(0.5),
            p(0.99),
            v.last().copied().unwrap_or(0),
            self.fast,
            self.timer,
            timers_json(t),
            all.join(","),
            self.how,
        )
    }
}

fn timers_json(t: &Timers) -> String {
    format!(
        "\"tick_ms\":{},\"heartbeat_ms\":{},\"failover_ms\":{},\"election_ms\":{}",
        t.tick.as_millis(),
        t.heartbeat.as_millis(),
        t.failover.as_millis(),
        t.election.as_millis()
    )
}

/// What the members said since the last call: each `became_leader` as
/// `<member>:<cause>`, and the silence each `failover_started` acted on
/// (ms).
fn drain_events(c: &mut Cluster) -> (Vec<String>, Vec<u64>) {
    let (mut leaders, mut silences) = (Vec::new(), Vec::new());
    for (_, id, line) in c.tap.as_mut().map(std::mem::take).unwrap_or_default() {
        let Some((kind, _)) = event_of(&line) else {
            continue;
        };
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if kind == "became_leader" {
            let cause = v["event"]["cause"]["type"].as_str().unwrap_or("?");
            leaders.push(format!("{}:{cause}", crate::jepsen::name(id)));
        } else if kind == "failover_started" {
            silences.extend(v["event"]["silent_ms"].as_u64());
        }
    }
    (leaders, silences)
}

/// Waits (the workload running) up to 5 s for a leader.
fn await_leader(c: &mut Cluster, trial: usize) -> Result<u64, String> {
    for _ in 0..100 {
        if let Some(l) = c.leader() {
            return Ok(l);
        }
        c.run_for(Duration::from_millis(50));
    }
    Err(format!(
        "trial {trial}: no leader for 5 s (members' logs in {})",
        c.dir.display()
    ))
}

/// Kills the leader; the time to the first commit under a new term (the
/// workload running, up to 3 s), then restarts it and waits until it has
/// caught up (up to 5 s). Returns the time and the member killed.
fn kill_leader(
    c: &mut Cluster,
    trial: usize,
    t: &Timers,
    into: &mut Trials,
) -> Result<u64, String> {
    let leader = await_leader(c, trial)?;
    let (t0, term) = (c.now_ms(), c.term());
    drain_events(c);
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    // SIGKILL, then reaped: how long the process took to die. Its sockets
    // close (the sign the standby's fast failover waits for) only as its
    // last thread leaves the kernel, e.g. after a disk write under way.
    let killed = std::time::Instant::now();
    c.kill9(leader);
    let dying = killed.elapsed().as_millis();
    let mut took = None;
    for _ in 0..60 {
        c.run_for(Duration::from_millis(50));
        took = c.first_ack_after(t0, term);
        if took.is_some() {
            break;
        }
    }
    let took = took.ok_or(format!(
        "trial {trial}: no commit within 3 s of killing {leader}"
    ))?;
    into.ms.push(took);
    let (leaders, silences) = drain_events(c);
    into.how.push(format!(
        "trial {trial} killed {} at {wall} (dead after {dying} ms): {took} ms, {leaders:?}, silences {silences:?}",
        crate::jepsen::name(leader)
    ));
    // The member's log is replaced when it is started again: keep this
    // life's (with `--keep`, the evidence for a slow trial).
    let log = c.dir.join(format!("n{leader}.log"));
    let _ = std::fs::rename(&log, c.dir.join(format!("n{leader}.trial{trial}.log")));
    for s in silences {
        if u128::from(s) < t.failover.as_millis() {
            into.fast += 1;
        } else {
            into.timer += 1;
        }
    }
    c.spawn(leader)?;
    for _ in 0..50 {
        c.run_for(Duration::from_millis(100));
        let head = c.leader().and_then(|l| c.applied(l)).unwrap_or(u64::MAX);
        if c.applied(leader).is_some_and(|a| a + 10 >= head) {
            return Ok(leader);
        }
    }
    Err(format!("trial {trial}: member {leader} did not catch up"))
}

/// Runs the failover trials (`trials`, rounded up to pairs) and the
/// saturation; prints one JSON line (or text) for each.
pub(crate) fn run(trials: usize, json: bool, keep: bool, args: &[String]) -> Result<(), String> {
    let load_secs = args
        .iter()
        .position(|a| a == "--load-secs")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(10u64);
    let t = Timers::default();
    let mut c = Cluster::start(true, "", &[])?;
    c.keep = keep;
    c.every = Duration::from_millis(2);
    c.tap = Some(Vec::new());
    c.run_for(Duration::from_secs(2));
    drain_events(&mut c); // the first election
    let (mut normal, mut after) = (Trials::default(), Trials::default());
    let mut unprovoked = Vec::new();
    for pair in 0..trials.div_ceil(2) {
        await_leader(&mut c, 2 * pair)?;
        unprovoked.extend(drain_events(&mut c).0);
        kill_leader(&mut c, 2 * pair, &t, &mut normal)?;
        // Right after the restarted member caught up: it is the standby.
        kill_leader(&mut c, 2 * pair + 1, &t, &mut after)?;
        drain_events(&mut c);
        c.run_for(Duration::from_millis(1_500));
    }
    unprovoked.extend(drain_events(&mut c).0);
    let load = crate::soak::saturate(&mut c, Duration::from_secs(load_secs));
    let note = format!(
        ",\"unprovoked_leader_changes\":{},\"unprovoked\":{unprovoked:?}",
        unprovoked.len()
    );
    if json {
        println!("{}", normal.json("failover", &t, &note));
        println!("{}", after.json("failover_after_restart", &t, ""));
        println!(
            "{{\"bench\":\"failover_load_alone\",\"secs\":{load_secs},\"leadership_changes\":{},\"changes\":{:?},\"pair_failovers_started\":{},\"failover_silences_ms\":{:?},\"commits_per_s\":{:.0},\"outstanding\":64,{}}}",
            load.leaders,
            load.changes,
            load.failovers,
            load.silences,
            load.commits as f64 / load_secs as f64,
            timers_json(&t)
        );
    } else {
        println!("failover at default timers (kill -9 of the leader -> first commit under the new leader)");
        for (what, r) in [("steady", &normal), ("right after a restart", &after)] {
            println!(
                "  {what}: {}",
                r.json("", &t, "").trim_start_matches("{\"bench\":\"\",")
            );
        }
        println!("  leadership changes nobody caused between trials: {unprovoked:?}; under {load_secs} s of saturation: {} {:?} (pair failovers started: {}, {:.0} commits/s)",
            load.leaders, load.changes, load.failovers, load.commits as f64 / load_secs as f64);
    }
    Ok(())
}
