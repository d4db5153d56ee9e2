//! The white paper's Denver/Paris scenarios (Figures 3–8), narrated.
//!
//! Denver runs the duplicated core CM01a/CM01b, Paris the rank-1
//! survivable core CM02a/CM02b, and a witness in a third site breaks ties
//! (witness mode: every commit is on a majority that spans two sites, so
//! nothing committed is ever lost). Users in both sites set up and tear
//! down calls; each call is a proposal. The run prints the survivability
//! report, then five steps, each with its virtual time, leader, takeover
//! time and what happened to the calls.
//!
//! ```text
//! cargo run --release --example denver_paris
//! cargo run --release --example denver_paris -- --json
//! cargo run --release --example denver_paris -- --seed 7 --wan-rtt-ms 120 --survivable-after-ms 3000
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;
use std::time::Duration;

use survivable_core::node::ProposalId;
use survivable_core::policy::{HandBack, HandBackPolicy, Timers};
use survivable_core::sim::{Commit, Sim};
use survivable_core::topology::{
    denver_paris, Appliance::Virtual, Latency, MemberSpec, NodeId, Topology,
};
use survivable_core::{Event, RestoreError, StateMachine};

/// The call controller's replicated state: the active calls.
#[derive(Debug, Default, Clone)]
struct CallTable {
    active: BTreeSet<u64>,
}

impl StateMachine for CallTable {
    fn apply(&mut self, _index: u64, command: &[u8]) -> Vec<u8> {
        let text = String::from_utf8_lossy(command);
        match text.split_once(' ') {
            Some(("setup", id)) => {
                if let Ok(id) = id.parse() {
                    self.active.insert(id);
                }
            }
            Some(("teardown", id)) => {
                if let Ok(id) = id.parse::<u64>() {
                    self.active.remove(&id);
                }
            }
            _ => return b"unknown command".to_vec(),
        }
        b"ok".to_vec()
    }

    fn snapshot(&self) -> Vec<u8> {
        self.active.iter().flat_map(|id| id.to_le_bytes()).collect()
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), RestoreError> {
        if snapshot.len() % 8 != 0 {
            return Err(RestoreError {
                reason: format!("{} bytes is not a list of call ids", snapshot.len()),
            });
        }
        self.active = snapshot
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect();
        Ok(())
    }
}

struct Args {
    seed: u64,
    wan_rtt_ms: u64,
    survivable_after_ms: u64,
    stable_ms: u64,
    json: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        seed: 2026,
        wan_rtt_ms: 80,
        survivable_after_ms: 2000,
        stable_ms: 5000,
        json: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut num = |name: &str| -> Result<u64, String> {
            it.next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{name} needs a whole number"))
        };
        match flag.as_str() {
            "--json" => a.json = true,
            "--seed" => a.seed = num("--seed")?,
            "--wan-rtt-ms" => a.wan_rtt_ms = num("--wan-rtt-ms")?,
            "--survivable-after-ms" => a.survivable_after_ms = num("--survivable-after-ms")?,
            "--stable-ms" => a.stable_ms = num("--stable-ms")?,
            "-h" | "--help" => {
                return Err("usage: denver_paris [--json] [--seed N] [--wan-rtt-ms N] \
                            [--survivable-after-ms N] [--stable-ms N]"
                    .into())
            }
            other => return Err(format!("unknown flag {other:?}; see --help")),
        }
    }
    Ok(a)
}

fn topology(a: &Args) -> Result<Topology, String> {
    let timers = Timers {
        // The election timeout must cover the WAN round trip with margin.
        election: Duration::from_millis((a.wan_rtt_ms * 5 / 2).max(200)),
        survivable_after: Duration::from_millis(a.survivable_after_ms),
        ..Timers::default()
    };
    denver_paris()
        .timers(timers)
        .hand_back(HandBack {
            policy: HandBackPolicy::AfterStable(Duration::from_millis(a.stable_ms)),
            ..HandBack::default()
        })
        .build()
        .map_err(|e| e.to_string())
}

/// Users in Denver and Paris making calls: a call is set up, lasts a
/// while, and is torn down. Each user proposes at a member of its own
/// site (which forwards to the leader, or queues while there is none);
/// with its whole site down, a user re-homes to the other site.
struct Workload {
    next_call: u64,
    rng: u64,
    /// What each proposal was: (call, is_setup).
    proposed: BTreeMap<ProposalId, (u64, bool)>,
    /// Acknowledged calls still up, by planned tear-down time.
    ending: BTreeMap<u64, Vec<u64>>,
    /// Calls whose set-up was acknowledged and whose tear-down was not yet proposed.
    up: BTreeSet<u64>,
    /// Proposals refused or failed.
    failed: u64,
    seen_commits: usize,
}

impl Workload {
    fn new(seed: u64) -> Self {
        Self {
            next_call: 1,
            rng: seed | 1,
            proposed: BTreeMap::new(),
            ending: BTreeMap::new(),
            up: BTreeSet::new(),
            failed: 0,
            seen_commits: 0,
        }
    }

    fn rand(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    fn entry_point(&mut self, sim: &Sim<CallTable>) -> Option<NodeId> {
        let home = if self.rand() % 2 == 0 {
            "denver"
        } else {
            "paris"
        };
        let voters_up = |site: &str| -> Vec<NodeId> {
            sim.site_members(site)
                .into_iter()
                .filter(|&id| sim.node(id).is_some_and(|n| n.voters().contains(&id)))
                .collect()
        };
        let mut nodes = voters_up(home);
        if nodes.is_empty() {
            nodes = voters_up(if home == "denver" { "paris" } else { "denver" });
        }
        if nodes.is_empty() {
            return None;
        }
        let pick = self.rand() as usize % nodes.len();
        Some(nodes[pick])
    }

    fn propose(&mut self, sim: &mut Sim<CallTable>, call: u64, setup: bool) {
        let Some(at) = self.entry_point(sim) else {
            self.failed += 1;
            return;
        };
        let cmd = if setup { "setup" } else { "teardown" };
        match sim.propose(at, format!("{cmd} {call}").into_bytes()) {
            Ok(id) => {
                self.proposed.insert(id, (call, setup));
            }
            Err(_) => self.failed += 1,
        }
    }

    /// Runs `d` of virtual time with a new call every 20 ms.
    fn run(&mut self, sim: &mut Sim<CallTable>, d: Duration) {
        let end = sim.now_ms() + d.as_millis() as u64;
        while sim.now_ms() < end {
            let call = self.next_call;
            self.next_call += 1;
            self.propose(sim, call, true);
            let now = sim.now_ms();
            let due: Vec<u64> = self
                .ending
                .range(..=now)
                .flat_map(|(_, v)| v.clone())
                .collect();
            self.ending.retain(|&t, _| t > now);
            for call in due {
                self.up.remove(&call);
                self.propose(sim, call, false);
            }
            sim.run_for(Duration::from_millis(20));
            self.collect(sim);
        }
    }

    fn collect(&mut self, sim: &Sim<CallTable>) {
        let fresh: Vec<Commit> = sim.commits()[self.seen_commits..].to_vec();
        self.seen_commits = sim.commits().len();
        for c in fresh {
            let Some((call, setup)) = self.proposed.remove(&c.id) else {
                continue;
            };
            match c.outcome.result {
                Ok(_) if setup => {
                    self.up.insert(call);
                    let hold = 2_000 + self.rand() % 18_000;
                    self.ending
                        .entry(sim.now_ms() + hold)
                        .or_default()
                        .push(call);
                }
                Ok(_) => {}
                Err(_) => self.failed += 1,
            }
        }
    }
}

/// One narrated step.
struct Report {
    step: &'static str,
    figure: &'static str,
    t_ms: u64,
    leader: Option<NodeId>,
    takeover_ms: Option<u64>,
    calls_active: usize,
    calls_preserved: usize,
    calls_dropped: usize,
    committed_lost: usize,
    extra: Vec<(&'static str, String)>,
    story: Vec<String>,
}

fn leader_term(sim: &Sim<CallTable>) -> Option<(NodeId, u64)> {
    let l = sim.leader()?;
    Some((l, sim.node(l)?.term()))
}

/// Milliseconds from `from_us` to the first commit in a term above `term`
/// (the first commit under a new leader).
fn first_commit_in_term(sim: &Sim<CallTable>, from_us: u64, term: u64) -> Option<u64> {
    sim.first_commit_after(from_us, term).map(|us| us / 1000)
}

/// Acknowledged entries missing from (or different in) the leader's state.
fn committed_lost(sim: &Sim<CallTable>) -> usize {
    let Some(l) = sim.leader().and_then(|l| sim.node(l)) else {
        return 0;
    };
    sim.commits()
        .iter()
        .filter_map(|c| c.outcome.result.as_ref().ok())
        .filter(|a| a.index > l.applied_index())
        .count()
        + sim.violations().len()
}

fn finish(
    sim: &Sim<CallTable>,
    w: &Workload,
    step: &'static str,
    figure: &'static str,
    before: &BTreeSet<u64>,
    takeover_ms: Option<u64>,
    since_us: u64,
) -> Report {
    let leader = sim.leader();
    let active: BTreeSet<u64> = leader
        .and_then(|l| sim.node(l))
        .map(|n| n.state_machine().active.clone())
        .unwrap_or_default();
    // Calls acknowledged up before the step, and not torn down since.
    let still_wanted: BTreeSet<u64> = before.intersection(&w.up).copied().collect();
    let preserved = still_wanted.intersection(&active).count();
    let story = sim
        .events()
        .iter()
        .filter(|(t, _, _)| *t >= since_us)
        .filter_map(|(t, id, e)| narrate(sim, *t, *id, e))
        .collect();
    Report {
        step,
        figure,
        t_ms: sim.now_ms(),
        leader,
        takeover_ms,
        calls_active: active.len(),
        calls_preserved: preserved,
        calls_dropped: still_wanted.len() - preserved,
        committed_lost: committed_lost(sim),
        extra: Vec::new(),
        story,
    }
}

fn name(sim: &Sim<CallTable>, id: NodeId) -> String {
    sim.member(id)
        .map_or(id.to_string(), |m| m.spec.name.clone())
}

fn narrate(sim: &Sim<CallTable>, t_us: u64, id: NodeId, e: &Event) -> Option<String> {
    let who = name(sim, id);
    let what = match e {
        Event::BecameLeader { term, cause } => format!("{who} leads (term {term}, {cause:?})"),
        Event::FailoverStarted { primary, silent_ms } => format!(
            "{who} has not heard its primary {} for {silent_ms} ms: takes over",
            name(sim, *primary)
        ),
        Event::TakeoverStarted {
            rank,
            leaderless_ms,
        } => format!(
            "{who} (survivable core, rank {rank}) saw no leader for {leaderless_ms} ms: campaigns"
        ),
        Event::SteppedDown { term } => format!("{who} steps down (term {term})"),
        Event::HandBackAttempt {
            attempt,
            target,
            lag,
        } => {
            format!(
                "{who} hands control back to {} (attempt {attempt}, {lag} entries behind)",
                name(sim, *target)
            )
        }
        Event::HandBackFailed { attempt, target } => {
            format!(
                "{who}: hand-back attempt {attempt} to {} did not land",
                name(sim, *target)
            )
        }
        Event::HandBackCompleted { target, attempts } => {
            format!(
                "{who}: control is back with {} after {attempts} attempt(s)",
                name(sim, *target)
            )
        }
        Event::MemberAdded { id: m } if id == sim.leader()? => {
            format!("{} joins as a learner and catches up", name(sim, *m))
        }
        Event::MemberPromoted { id: m } if id == sim.leader()? => {
            format!("{} becomes a voter: the new standby", name(sim, *m))
        }
        Event::MemberRemoved { id: m } if id == sim.leader()? => {
            format!("{} is removed from the configuration", name(sim, *m))
        }
        _ => return None,
    };
    Some(format!("  {:>9.3} s  {what}", t_us as f64 / 1e6))
}

fn json_num(v: Option<u64>) -> String {
    v.map_or("null".into(), |v| v.to_string())
}

fn print(sim: &Sim<CallTable>, r: &Report, json: bool) {
    let (site, node) = match r.leader {
        Some(l) => (sim.site_of(l).to_string(), name(sim, l)),
        None => ("none".into(), "none".into()),
    };
    if json {
        let mut line = format!(
            "{{\"step\":\"{}\",\"t_ms\":{},\"leader_site\":\"{site}\",\"leader_node\":\"{node}\",\"takeover_ms\":{},\"calls_active\":{},\"calls_preserved\":{},\"calls_dropped\":{},\"committed_lost\":{}",
            r.step,
            r.t_ms,
            json_num(r.takeover_ms),
            r.calls_active,
            r.calls_preserved,
            r.calls_dropped,
            r.committed_lost
        );
        for (k, v) in &r.extra {
            line.push_str(&format!(",\"{k}\":{v}"));
        }
        line.push('}');
        println!("{line}");
        return;
    }
    println!(
        "\n== {} ({}) at {:.3} s",
        r.step,
        r.figure,
        r.t_ms as f64 / 1000.0
    );
    for l in &r.story {
        println!("{l}");
    }
    let takeover = r.takeover_ms.map_or("-".into(), |t| format!("{t} ms"));
    println!(
        "  leader {node} ({site}); takeover {takeover}; calls active {}, preserved {}, dropped {}; committed entries lost {}",
        r.calls_active, r.calls_preserved, r.calls_dropped, r.committed_lost
    );
    for (k, v) in &r.extra {
        println!("  {k} = {v}");
    }
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let topology = match topology(&args) {
        Ok(t) => t.shared(),
        Err(e) => {
            eprintln!("invalid topology: {e}");
            return ExitCode::from(2);
        }
    };
    if !args.json {
        println!(
            "Denver/Paris control plane, witness mode (seed {}, WAN RTT {} ms, LAN RTT 1 ms)\n",
            args.seed, args.wan_rtt_ms
        );
    }
    let report = topology.survivability_with(Latency::new(
        Duration::from_millis(1),
        Duration::from_millis(args.wan_rtt_ms),
    ));
    if !args.json {
        println!("{report}");
    }
    let mut sim = Sim::builder(topology)
        .seed(args.seed)
        .wan_rtt(Duration::from_millis(args.wan_rtt_ms))
        .build(|_| CallTable::default());
    let mut w = Workload::new(args.seed);
    let mut ok = true;

    // normal (Fig. 7)
    let since = sim.now_us();
    w.run(&mut sim, Duration::from_secs(5));
    let r = finish(&sim, &w, "normal", "Fig. 7", &w.up.clone(), None, since);
    ok &= r.leader.is_some_and(|l| sim.site_of(l) == "denver");
    print(&sim, &r, args.json);

    // duplication_failover (Fig. 3-4): CM01a's host fails.
    let before = w.up.clone();
    let since = sim.now_us();
    let term = leader_term(&sim).map_or(0, |(_, t)| t);
    sim.crash_host("esxi-1");
    w.run(&mut sim, Duration::from_secs(3));
    let takeover = first_commit_in_term(&sim, since, term);
    let r = finish(
        &sim,
        &w,
        "duplication_failover",
        "Fig. 3-4",
        &before,
        takeover,
        since,
    );
    ok &= r.leader == Some(NodeId(2)) && r.calls_dropped == 0;
    print(&sim, &r, args.json);

    // standby_restored (Fig. 5): a replacement CM01c on another host.
    let before = w.up.clone();
    let since = sim.now_us();
    let spec = MemberSpec {
        id: NodeId(6),
        name: "CM01c".into(),
        host: "esxi-4".into(),
        appliance: Virtual,
    };
    let leader = sim.leader().unwrap_or(NodeId(2));
    let member = sim
        .node(leader)
        .and_then(|n| n.replacement_member(NodeId(1), spec.clone()));
    let replaced = sim
        .node_mut(leader)
        .map(|n| n.replace_member(NodeId(1), spec));
    sim.flush(leader);
    if let (Some(member), Some(Ok(()))) = (member, &replaced) {
        sim.add_member(member.clone());
    } else {
        eprintln!("replacement refused: {replaced:?}");
        ok = false;
    }
    let mut restored_ms = None;
    for _ in 0..100 {
        w.run(&mut sim, Duration::from_millis(100));
        let voters = sim.node(leader).map(|n| n.voters()).unwrap_or_default();
        if voters.contains(&NodeId(6)) && !voters.contains(&NodeId(1)) {
            restored_ms = Some((sim.now_us() - since) / 1000);
            break;
        }
    }
    w.run(&mut sim, Duration::from_secs(1));
    let mut r = finish(&sim, &w, "standby_restored", "Fig. 5", &before, None, since);
    r.extra
        .push(("redundancy_restored_ms", json_num(restored_ms)));
    ok &= restored_ms.is_some();
    print(&sim, &r, args.json);

    // wan_partition (Fig. 8): Denver is cut off; Paris takes over.
    let before = w.up.clone();
    let since = sim.now_us();
    let term = leader_term(&sim).map_or(0, |(_, t)| t);
    sim.partition_sites(&["denver"], &["paris", "kansas"]);
    w.run(
        &mut sim,
        Duration::from_millis(args.survivable_after_ms + 3_000),
    );
    let takeover = first_commit_in_term(&sim, since, term);
    let r = finish(
        &sim,
        &w,
        "wan_partition",
        "Fig. 8",
        &before,
        takeover,
        since,
    );
    ok &= r.leader.is_some_and(|l| sim.site_of(l) == "paris") && r.committed_lost == 0;
    print(&sim, &r, args.json);

    // hand_back: the WAN heals; control returns to Denver.
    let before = w.up.clone();
    let since = sim.now_us();
    let term = leader_term(&sim).map_or(0, |(_, t)| t);
    sim.heal();
    let failed_before = w.failed;
    w.run(&mut sim, Duration::from_millis(args.stable_ms + 4_000));
    // The hand-back's own "takeover": from its first attempt to the first
    // commit under the main site's leader.
    let handed_at = sim
        .events()
        .iter()
        .find(|(t, _, e)| *t >= since && matches!(e, Event::HandBackAttempt { .. }))
        .map(|(t, _, _)| *t);
    let takeover = handed_at.and_then(|t0| first_commit_in_term(&sim, t0, term));
    let mut r = finish(
        &sim,
        &w,
        "hand_back",
        "design card",
        &before,
        takeover,
        since,
    );
    // Longest gap between commits from 0.5 s before the hand-back to 2 s after.
    let outage = handed_at
        .and_then(|t0| sim.longest_commit_gap(t0.saturating_sub(500_000), t0 + 2_000_000))
        .map(|us| us / 1000);
    r.extra.push((
        "stable_wait_ms",
        json_num(handed_at.map(|t| (t - since) / 1000)),
    ));
    r.extra.push(("write_outage_ms", json_num(outage)));
    r.extra
        .push(("failed_proposals", (w.failed - failed_before).to_string()));
    ok &= r.leader.is_some_and(|l| sim.site_of(l) == "denver") && w.failed == failed_before;
    print(&sim, &r, args.json);

    let violations = sim.violations();
    if !violations.is_empty() {
        eprintln!("invariant violations: {violations:?}");
        ok = false;
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "a step did not behave as the design requires (seed {})",
            args.seed
        );
        ExitCode::FAILURE
    }
}
