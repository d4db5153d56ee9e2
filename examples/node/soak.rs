//! `node bench --soak S` and `node bench --figures`: five processes over
//! the relay (by default the uneven WAN Denver–Paris 80 ms, Denver–Kansas
//! 40 ms, Paris–Kansas 60 ms round trips; `--wan` as for `node cluster`)
//! at default timers, load at every member.
//!
//! - soak: as many proposals as the members take (a fixed number
//!   outstanding, spread over every member) for S seconds, counting
//!   leadership changes (`became_leader` events after the first leader) and
//!   campaigns started (pair failovers, takeovers); the target is zero.
//! - figures: a pair failover (kill -9 of the leader) normally and right
//!   after the killed member's partner was restarted; a WAN cut of Denver →
//!   the first commit in Paris; the hand-back's write outage after the heal.
//!
//! Each prints one JSON object.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::launcher::{field, parse_wan, site_of, Cluster, NAMES};

/// Load: proposals at every member, `outstanding` at most at a time.
struct Load {
    t0: Instant,
    outstanding: usize,
    next: u64,
    waiting: BTreeMap<String, (u64, Instant)>,
    /// (when, member, term) of every acknowledged proposal.
    acks: Vec<(Instant, u64, u64)>,
    failed: u64,
    /// (when, member, event) of every event line.
    events: Vec<(Instant, u64, String)>,
}

impl Load {
    fn new(outstanding: usize) -> Self {
        Self {
            t0: Instant::now(),
            outstanding,
            next: 0,
            waiting: BTreeMap::new(),
            acks: Vec::new(),
            failed: 0,
            events: Vec::new(),
        }
    }

    /// Runs the load for `d`.
    fn run(&mut self, c: &mut Cluster, d: Duration) {
        let end = Instant::now() + d;
        let mut polled = Instant::now();
        while Instant::now() < end {
            // Proposals at a member that cannot answer (stopped, cut off)
            // are given up after 3 s so they do not hold the load back.
            let now = Instant::now();
            let stale: Vec<String> = self
                .waiting
                .iter()
                .filter(|(_, (m, at))| !c.runs(*m) || now - *at > Duration::from_secs(3))
                .map(|(t, _)| t.clone())
                .collect();
            for t in stale {
                self.waiting.remove(&t);
                self.failed += 1;
            }
            while self.waiting.len() < self.outstanding {
                let member = NAMES[(self.next % 5) as usize].0;
                let tag = format!("s{}", self.next);
                self.next += 1;
                c.send(member, &format!("propose {tag} set s{} v", self.next));
                self.waiting.insert(tag, (member, Instant::now()));
            }
            if polled.elapsed() >= Duration::from_millis(100) {
                polled = Instant::now();
                for (id, ..) in NAMES {
                    c.send(id, "status");
                }
            }
            c.wait_until(Duration::from_millis(2), |_, _, _| false);
            for (at, id, line) in c.tap.as_mut().map(std::mem::take).unwrap_or_default() {
                self.take(at, id, &line);
            }
        }
    }

    fn take(&mut self, at: Instant, id: u64, line: &str) {
        // An event line: kept as `<type> [<cause type>]`.
        let json: Option<serde_json::Value> = serde_json::from_str(line).ok();
        if let Some(e) = json.as_ref().map(|v| &v["event"]).filter(|e| e.is_object()) {
            let kind = e["type"].as_str().unwrap_or("?");
            let cause = e["cause"]["type"].as_str().unwrap_or("");
            let mut text = format!("{kind} {cause}").trim_end().to_string();
            if let Some(ms) = e["silent_ms"].as_u64() {
                text.push_str(&format!(" silent_ms={ms}"));
            }
            self.events.push((at, id, text));
            return;
        }
        if field(line, "reply") != Some("propose") {
            return;
        }
        let Some(tag) = field(line, "tag") else {
            return;
        };
        if self.waiting.remove(tag).is_none() {
            return;
        }
        if field(line, "ok") == Some("true") {
            let term = field(line, "term")
                .and_then(|t| t.parse().ok())
                .unwrap_or(0);
            self.acks.push((at, id, term));
        } else {
            self.failed += 1;
        }
    }

    /// Milliseconds from `t0` to the first acknowledgement after it with a
    /// term above `term` at a member for which `at` holds.
    fn first_ack(&self, t0: Instant, term: u64, at: impl Fn(u64) -> bool) -> Option<u64> {
        self.acks
            .iter()
            .find(|(t, m, tm)| *t >= t0 && *tm > term && at(*m))
            .map(|(t, ..)| (*t - t0).as_millis() as u64)
    }

    /// The highest term acknowledged so far.
    fn term(&self) -> u64 {
        self.acks.iter().map(|a| a.2).max().unwrap_or(0)
    }

    fn count(&self, from: Instant, what: &str) -> usize {
        self.events
            .iter()
            .filter(|(t, _, e)| *t >= from && e.starts_with(what))
            .count()
    }
}

fn start(wan: &str) -> Result<Cluster, String> {
    let wan = parse_wan(wan)?;
    let mut c = Cluster::start(true, &crate::launcher::wan_timers(&wan, ""), &wan)?;
    c.tap = Some(Vec::new());
    Ok(c)
}

/// `node bench --soak S`: saturation at default timers for S seconds.
pub(crate) fn soak(secs: u64, wan: &str, keep: bool) -> Result<(), String> {
    let mut c = start(wan)?;
    c.keep = keep;
    let mut load = Load::new(64);
    load.run(&mut c, Duration::from_secs(3));
    if c.leader().is_none() {
        return Err("no leader after 3 s".into());
    }
    let from = Instant::now();
    let acks_before = load.acks.len();
    load.run(&mut c, Duration::from_secs(secs));
    let commits = load.acks.len() - acks_before;
    let leaders = load.count(from, "became_leader");
    let (failovers, takeovers) = (
        load.count(from, "failover_started"),
        load.count(from, "takeover_started"),
    );
    let causes: BTreeMap<String, usize> = load
        .events
        .iter()
        .filter(|(t, _, e)| *t >= from && e.starts_with("became_leader"))
        .fold(BTreeMap::new(), |mut m, (_, id, e)| {
            let cause = e.split(' ').nth(1).unwrap_or("?");
            *m.entry(format!("{}:{cause}", crate::jepsen::name(*id)))
                .or_default() += 1;
            m
        });
    let causes: Vec<String> = causes.iter().map(|(k, n)| format!("\"{k}\":{n}")).collect();
    println!(
        "{{\"bench\":\"soak\",\"duration_s\":{secs},\"leadership_changes\":{leaders},\"by_member_and_cause\":{{{}}},\"pair_failovers_started\":{failovers},\"takeovers_started\":{takeovers},\"commits\":{commits},\"commits_per_s\":{:.0},\"failed_or_unanswered\":{},\"outstanding\":64,\"timers\":\"default\",\"wan\":\"{wan}\"}}",
        causes.join(","),
        commits as f64 / secs as f64,
        load.failed
    );
    Ok(())
}

/// What [`saturate`] counted.
pub(crate) struct Saturated {
    /// `became_leader` events.
    pub(crate) leaders: usize,
    /// Pair failovers started.
    pub(crate) failovers: usize,
    /// Proposals acknowledged.
    pub(crate) commits: usize,
    /// The silence (ms) each pair failover started on.
    pub(crate) silences: Vec<u64>,
    /// Each leadership change: `<member>:<cause>`.
    pub(crate) changes: Vec<String>,
}

/// Saturates the running cluster `c` (64 proposals outstanding, spread
/// over every member) for `d`, counting leadership changes: the load-alone
/// part of `node bench`'s failover (`c.tap` must be set).
pub(crate) fn saturate(c: &mut Cluster, d: Duration) -> Saturated {
    let mut load = Load::new(64);
    load.run(c, d);
    Saturated {
        leaders: load.count(load.t0, "became_leader"),
        failovers: load.count(load.t0, "failover_started"),
        silences: (load.events.iter())
            .filter(|(t, _, e)| *t >= load.t0 && e.starts_with("failover_started"))
            .filter_map(|(_, _, e)| e.rsplit_once("silent_ms=")?.1.parse().ok())
            .collect(),
        commits: load.acks.len(),
        changes: (load.events.iter())
            .filter(|(t, _, e)| *t >= load.t0 && e.starts_with("became_leader"))
            .map(|(_, id, e)| {
                let cause = e.split(' ').nth(1).unwrap_or("?");
                format!("{}:{cause}", crate::jepsen::name(*id))
            })
            .collect(),
    }
}

/// Kills the leader and returns the time to the first commit under a new
/// term, restarting the killed member afterwards. `restart_partner`: kill
/// the partner first, restart it, then kill the leader right after.
fn pair_failover(c: &mut Cluster, load: &mut Load, restart_partner: bool) -> Result<u64, String> {
    let leader = c.leader().ok_or("no leader")?;
    if restart_partner {
        let partner = NAMES
            .iter()
            .find(|n| n.0 != leader && site_of(n.0) == site_of(leader))
            .map(|n| n.0)
            .ok_or("no partner")?;
        c.kill9(partner);
        load.run(c, Duration::from_millis(500));
        c.spawn(partner)?;
        load.run(c, Duration::from_millis(300));
    }
    let (t0, term) = (Instant::now(), load.term());
    c.kill9(leader);
    load.run(c, Duration::from_secs(3));
    let took = load.first_ack(t0, term, |_| true);
    c.spawn(leader)?;
    load.run(c, Duration::from_secs(3));
    took.ok_or_else(|| format!("no commit within 3 s of killing {leader}"))
}

/// `node bench --figures`: the figures of the closing note, `trials` each.
pub(crate) fn figures(trials: usize, wan: &str, keep: bool) -> Result<(), String> {
    let mut c = start(wan)?;
    c.keep = keep;
    let mut load = Load::new(16);
    load.run(&mut c, Duration::from_secs(3));
    let (mut normal, mut after_restart) = (Vec::new(), Vec::new());
    for _ in 0..trials {
        normal.push(pair_failover(&mut c, &mut load, false)?);
        after_restart.push(pair_failover(&mut c, &mut load, true)?);
    }
    // The WAN cuts Denver off; Paris takes over.
    let (t0, term) = (Instant::now(), load.term());
    for other in ["paris", "kansas"] {
        c.relay.cut_both("denver", other);
    }
    load.run(&mut c, Duration::from_secs(5));
    let paris = load.first_ack(t0, term, |m| site_of(m) == "paris");
    // The heal; hand-back once Denver has been in contact long enough.
    let (healed, acks_before) = (Instant::now(), load.acks.len());
    c.relay.heal_all();
    load.run(&mut c, Duration::from_secs(8));
    let home = load
        .events
        .iter()
        .find(|(t, m, e)| *t >= healed && site_of(*m) == "denver" && e.starts_with("became_leader"))
        .map(|e| e.0);
    let outage = home.map(|h| {
        let times: Vec<Instant> = load.acks[acks_before..]
            .iter()
            .map(|a| a.0)
            .filter(|t| *t + Duration::from_secs(1) >= h && *t <= h + Duration::from_secs(1))
            .collect();
        times
            .windows(2)
            .map(|w| (w[1] - w[0]).as_millis() as u64)
            .max()
            .unwrap_or(0)
    });
    let list = |v: &[u64]| v.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
    let opt = |v: Option<u64>| v.map_or("null".into(), |v| v.to_string());
    println!(
        "{{\"bench\":\"figures\",\"wan\":\"{wan}\",\"timers\":\"default\",\"pair_failover_ms\":[{}],\"pair_failover_after_restart_ms\":[{}],\"wan_cut_to_paris_commit_ms\":{},\"hand_back_write_outage_ms\":{},\"hand_back_after_heal_ms\":{},\"failed_or_unanswered\":{},\"elapsed_s\":{}}}",
        list(&normal),
        list(&after_restart),
        opt(paris),
        opt(outage),
        opt(home.map(|h| (h - healed).as_millis() as u64)),
        load.failed,
        load.t0.elapsed().as_secs()
    );
    Ok(())
}
