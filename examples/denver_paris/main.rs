//! The white paper's Denver/Paris scenarios, narrated, in both quorum
//! modes, and with a second, rank-2 survivable core.
//!
//! Denver runs the duplicated core CM01a/CM01b, Paris the rank-1
//! survivable core CM02a/CM02b. Users in both sites set up and tear down
//! calls; each call is a proposal. Each section prints its survivability
//! report, then its steps, each with its virtual time, leader, takeover
//! time and what happened to the calls. `--mode` picks the sections:
//! `witness`, `main-site`, `dr-auto-sync`, `ranked`, `both` (witness and
//! main-site) or `all` (the default: witness, main-site and ranked).
//!
//! - **Witness mode** (Figures 3–8, `witness.rs`): a witness in a third
//!   site breaks ties; every commit is on a majority that spans two sites,
//!   so nothing committed is ever lost. Steps `normal`,
//!   `duplication_failover`, `standby_restored`, `wan_partition`,
//!   `split_brain` (Denver's side of that cut, `split_brain.rs`),
//!   `hand_back` and `no_flapping` (`no_flapping.rs`).
//! - **Main-site mode** (the rainy day, `main_site.rs`): only two data
//!   centres; Denver holds the voting majority (the pair and a tie-breaker),
//!   Paris replicates as learners. Cut off, Paris activates an epoch of its
//!   own and both sides serve their users; when they meet, Denver's
//!   divergent calls are reconciled into Paris's epoch, and control goes
//!   home.
//! - **DR auto-sync mode** (`dr.rs`): the same two sites, all five
//!   members voters (`topology::denver_paris_dr`). While Paris answers,
//!   every commit needs both sites (RPO 0, about one WAN round trip);
//!   Denver lost then costs nothing, proven. A WAN cut moves Denver to
//!   `Async` after `sync_wait` (commits at LAN cost, the RPO grows); Paris
//!   activates meanwhile, so the heal reconciles Denver's `Async` commits,
//!   and once control is home the leader goes `SyncRecover`, then `Sync`.
//! - **Ranked survivable cores** (`ranked.rs`): witness mode with London
//!   as the rank-2 core (`topology::denver_paris_london`). Denver lost:
//!   Paris takes over, London never campaigns; Paris stale and Denver
//!   lost: London takes over; Paris caught up: control goes to the better
//!   rank.
//!
//! The exit code enforces the issues' figures and the design's behaviours
//! (CI runs this example); each one missed is named on stderr. Every bound
//! is derived from what its path needs, for the run's latencies
//! (`--wan-rtt-ms`, and `--site-rtt` for an uneven layout), so it holds for
//! any WAN from 10 to 300 ms and any seed (`bounds.rs` says how). Every
//! step loses no committed entry, and:
//!
//! - witness mode: duplication failover and geo takeover within the
//!   survivability report's figure for that failure (+ 1 tick and jitter);
//!   during the cut the isolated old leader steps down within 2 election
//!   timeouts, commits nothing, stops growing its log, and Denver
//!   acknowledges nothing past the commit index it had at the cut; at most
//!   one leader per term; hand-back write outage ≤ 2 WAN RTT + 2 LAN RTT +
//!   2 ticks with no failed proposal, every proposal held at Denver
//!   acknowledged after the heal; a WAN flapping faster than the stability
//!   window: no hand-back attempt while it flaps, leadership moves exactly
//!   twice (to Paris, and home once the link was steady for the window);
//! - main-site mode: commit p99 at Denver's leader ≤ 2 LAN RTT; activation
//!   within the report's figure (+ 1 tick); RPO (entries) ≤ the
//!   replication lag at the fault; hand-back write outage as in witness
//!   mode;
//! - DR auto-sync mode: commit p99 at the leader ≤ 1 WAN RTT + 2 LAN RTT
//!   in `Sync`, ≤ 2 LAN RTT in `Async`; Denver lost in `Sync`: Paris
//!   activates within its path's time with RPO 0 proven, every proposal
//!   acknowledged before the loss applied exactly once at Paris's leader;
//!   Denver's return reconciles nothing; control comes home in `Sync`; WAN
//!   cut to `Async` ≤ `sync_wait` + 1 WAN RTT, the RPO growing; after the
//!   heal `SyncRecover`, then `Sync` with RPO 0 under Denver;
//! - ranked cores: Denver lost, Paris takes over as rank 1 within the
//!   survivability report's figure and London never campaigns; Paris
//!   stale and Denver lost, London takes over (`Takeover { rank: 2 }`)
//!   with no call dropped; Paris leads again only after the window.
//!
//! Takeovers and outages are measured with a probe proposed at every tick
//! at each site during the step, so a figure is the path's, not the calls'
//! 20 ms spacing.
//!
//! ```text
//! cargo run --release --example denver_paris
//! cargo run --release --example denver_paris -- --json
//! cargo run --release --example denver_paris -- --mode ranked --seed 3
//! cargo run --release --example denver_paris -- --mode main-site --seed 7 --wan-rtt-ms 120 --survivable-after-ms 3000
//! cargo run --release --example denver_paris -- --mode witness --site-rtt denver-kansas=40,paris-kansas=60
//! cargo run --release --example denver_paris -- --mode witness --svg timeline.svg
//! ```
//!
//! `--svg FILE` also draws each section's run as a timeline
//! (`survivable_core::timeline`): a lane per member coloured by role,
//! the faults, takeovers and hand-backs, the write outages and the calls
//! up over time. With one section (`--mode witness`, `main-site` or
//! `ranked`) it is written to FILE; with several, each to FILE with the
//! section's name before the extension (`timeline-witness.svg`, ...).

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;
use std::time::Duration;

use std::sync::{Arc, Mutex};

use survivable_core::events::LeadershipCause;
use survivable_core::node::ProposalId;
use survivable_core::policy::{HandBack, HandBackPolicy, Timers};
use survivable_core::sim::{Commit, Sim};
use survivable_core::timeline::Timeline;
use survivable_core::topology::{NodeId, TopologyBuilder};
use survivable_core::{Event, ReconcileError, Reconciliation, RestoreError, StateMachine};

mod bounds;
mod dr;
mod main_site;
mod no_flapping;
mod ranked;
mod split_brain;
mod witness;

/// The call controller's replicated state: the active calls.
#[derive(Debug, Default, Clone)]
struct CallTable {
    active: BTreeSet<u64>,
    /// What the reconcile hook saw and did, for the narration (shared by
    /// every member's table; only a leader runs the hook).
    hook_log: Arc<Mutex<Vec<String>>>,
    /// How many times this member applied each command (DR auto-sync mode
    /// checks every acknowledged command was applied exactly once: a set
    /// of calls would hide a double apply). Not in the snapshot.
    applies: BTreeMap<String, u32>,
}

impl StateMachine for CallTable {
    fn apply(&mut self, _index: u64, command: &[u8]) -> Vec<u8> {
        let text = String::from_utf8_lossy(command);
        *self.applies.entry(text.to_string()).or_default() += 1;
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
            // A write-outage probe (see `Workload::probe`): changes nothing.
            Some(("probe", _)) => {}
            _ => return b"unknown command".to_vec(),
        }
        b"ok".to_vec()
    }

    fn snapshot(&self) -> Vec<u8> {
        self.active.iter().flat_map(|id| id.to_le_bytes()).collect()
    }

    /// Main-site mode, when the epochs meet: the calls the losing side
    /// handled after the fork. A call both set up and torn down there is
    /// over, so nothing is re-proposed for it; every other command is
    /// re-proposed in order (a set-up re-creates the call, a tear-down of a
    /// call set up before the fork ends it here too).
    fn reconcile(&self, divergent: &Reconciliation<'_>) -> Result<Vec<Vec<u8>>, ReconcileError> {
        let parse = |c: &[u8]| -> Option<(bool, u64)> {
            let text = std::str::from_utf8(c).ok()?;
            let (verb, id) = text.split_once(' ')?;
            if verb != "setup" && verb != "teardown" {
                return None; // a probe: nothing to reconcile
            }
            Some((verb == "setup", id.parse().ok()?))
        };
        let commands: Vec<Option<(bool, u64)>> = divergent
            .entries
            .iter()
            .map(|e| parse(&e.command))
            .collect();
        let set_up: BTreeSet<u64> = commands
            .iter()
            .flatten()
            .filter(|c| c.0)
            .map(|c| c.1)
            .collect();
        let over: BTreeSet<u64> = commands
            .iter()
            .flatten()
            .filter(|c| !c.0 && set_up.contains(&c.1))
            .map(|c| c.1)
            .collect();
        let keep: Vec<Vec<u8>> = divergent
            .entries
            .iter()
            .zip(&commands)
            .filter(|(_, c)| c.is_none_or(|(_, id)| !over.contains(&id)))
            .map(|(e, _)| e.command.clone())
            .collect();
        if !divergent.entries.is_empty() || divergent.compacted > 0 {
            let first = divergent.entries.first().map_or(0, |e| e.index);
            let last = divergent.entries.last().map_or(0, |e| e.index);
            self.hook_log.lock().expect("hook log").push(format!(
                "hook: {} divergent command(s) from epoch {} (entries {first}–{last}, {} compacted): \
                 {} set-up(s), {} tear-down(s); {} call(s) began and ended there (dropped); \
                 re-proposes {}",
                divergent.entries.len(),
                divergent.from,
                divergent.compacted,
                set_up.len(),
                commands.iter().flatten().filter(|c| !c.0).count(),
                over.len(),
                keep.len()
            ));
        }
        Ok(keep)
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

/// The sections, in the order they run.
const SECTIONS: [Mode; 4] = [
    Mode::Witness,
    Mode::MainSite,
    Mode::DrAutoSync,
    Mode::Ranked,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Witness,
    MainSite,
    DrAutoSync,
    Ranked,
    /// Witness and main-site modes.
    Both,
    /// Every mode and the ranked cores.
    All,
}

impl Mode {
    /// Whether `--mode self` runs `section` (one of [`SECTIONS`]).
    fn runs(self, section: Self) -> bool {
        match self {
            Self::All => true,
            Self::Both => section == Self::Witness || section == Self::MainSite,
            _ => self == section,
        }
    }
}

struct Args {
    mode: Mode,
    seed: u64,
    wan_rtt_ms: u64,
    survivable_after_ms: u64,
    stable_ms: u64,
    /// `--site-rtt a-b=ms,...`: round trips between given pairs of sites
    /// (both directions), overriding `wan_rtt_ms` for them.
    site_rtt: Vec<(String, String, u64)>,
    json: bool,
    /// `--svg FILE`: where to draw the timeline (see the module docs).
    svg: Option<String>,
}

/// Parses `--site-rtt`'s `a-b=ms[,c-d=ms...]`.
fn parse_site_rtt(v: &str) -> Result<Vec<(String, String, u64)>, String> {
    v.split(',')
        .map(|pair| {
            let bad = || format!("--site-rtt wants site-site=ms[,site-site=ms...], not {pair:?}");
            let (sites, ms) = pair.split_once('=').ok_or_else(bad)?;
            let (a, b) = sites.split_once('-').ok_or_else(bad)?;
            let ms = ms.parse().map_err(|_| bad())?;
            Ok((a.to_string(), b.to_string(), ms))
        })
        .collect()
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        mode: Mode::All,
        seed: 2026,
        wan_rtt_ms: 80,
        survivable_after_ms: 2000,
        stable_ms: 5000,
        site_rtt: Vec::new(),
        json: false,
        svg: None,
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
            "--svg" => {
                a.svg = Some(it.next().ok_or("--svg needs a file to write the timeline to")?);
            }
            "--mode" => {
                a.mode = match it.next().as_deref() {
                    Some("witness") => Mode::Witness,
                    Some("main-site") => Mode::MainSite,
                    Some("dr-auto-sync") => Mode::DrAutoSync,
                    Some("ranked") => Mode::Ranked,
                    Some("both") => Mode::Both,
                    Some("all") => Mode::All,
                    other => {
                        return Err(format!(
                            "--mode needs witness, main-site, dr-auto-sync, ranked, both or all, not {other:?}"
                        ))
                    }
                }
            }
            "--seed" => a.seed = num("--seed")?,
            "--wan-rtt-ms" => a.wan_rtt_ms = num("--wan-rtt-ms")?,
            "--survivable-after-ms" => a.survivable_after_ms = num("--survivable-after-ms")?,
            "--stable-ms" => a.stable_ms = num("--stable-ms")?,
            "--site-rtt" => {
                a.site_rtt = parse_site_rtt(&it.next().unwrap_or_default())?;
            }
            "-h" | "--help" => {
                return Err(
                    "usage: denver_paris [--mode witness|main-site|dr-auto-sync|ranked|both|all] [--json] [--seed N] \
                            [--wan-rtt-ms N] [--site-rtt a-b=N,...] [--survivable-after-ms N] [--stable-ms N] [--svg FILE]"
                        .into(),
                )
            }
            other => return Err(format!("unknown flag {other:?}; see --help")),
        }
    }
    Ok(a)
}

/// Starts a mode's run: `layout` with the run's timers and hand-back
/// stability window, its title and survivability report printed (unless
/// `--json`), and a simulator whose members start from `table`.
///
/// The election timeout is 2.5 times the worst round trip between two
/// sites (`--wan-rtt-ms` or a `--site-rtt` override, whichever is longer),
/// and at least the default 200 ms: at the default 10 ms heartbeat that
/// is at least the two round trips and two heartbeat intervals
/// `min_election_for_rtt` asks for (2.5 round trips cover them from a
/// 40 ms round trip up, 200 ms below). The layout is told the WAN (`TopologyBuilder::wan`), so a
/// timeout too short for it is refused with what to set.
fn start(
    title: &str,
    layout: TopologyBuilder,
    table: CallTable,
    a: &Args,
) -> Option<Sim<CallTable>> {
    let worst_rtt_ms = (a.site_rtt.iter().map(|(_, _, ms)| *ms)).fold(a.wan_rtt_ms, u64::max);
    let timers = Timers {
        election: Duration::from_millis((worst_rtt_ms * 5 / 2).max(200)),
        survivable_after: Duration::from_millis(a.survivable_after_ms),
        ..Timers::default()
    };
    let mut layout = layout;
    layout.wan(bounds::latency(a));
    layout.timers(timers).hand_back(HandBack {
        policy: HandBackPolicy::AfterStable(Duration::from_millis(a.stable_ms)),
        ..HandBack::default()
    });
    let topology = match layout.build() {
        Ok(t) => t.shared(),
        Err(e) => {
            eprintln!("invalid topology: {e}");
            return None;
        }
    };
    if !a.json {
        println!(
            "Denver/Paris control plane, {title} (seed {}, WAN RTT {} ms, LAN RTT 1 ms)\n",
            a.seed, a.wan_rtt_ms
        );
        for (x, y, ms) in &a.site_rtt {
            println!("  {x}–{y} RTT {ms} ms");
        }
        let report = topology.survivability_with(bounds::latency(a));
        println!("{report}");
    }
    let mut b = Sim::builder(topology);
    b.seed(a.seed).wan_rtt(Duration::from_millis(a.wan_rtt_ms));
    for (x, y, ms) in &a.site_rtt {
        b.site_rtt(x, y, Duration::from_millis(*ms));
    }
    Some(b.build(move |_| table.clone()))
}

/// Users in Denver and Paris making calls: a call is set up, lasts a
/// while, and is torn down. Each user proposes at a member of its own
/// site (which forwards to the leader, or queues while there is none);
/// with its whole site down, a user re-homes to the other site.
struct Workload {
    /// Main-site mode: any running member of the site takes calls (Paris's
    /// are learners); witness mode: only the configuration's voters.
    any_member: bool,
    /// The sites whose users make calls (Denver and Paris unless
    /// [`sites`](Self::sites) says otherwise).
    sites: Vec<&'static str>,
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
    /// The command of every proposal taken (calls and probes), to check
    /// what was acknowledged against what members applied.
    commands: BTreeMap<ProposalId, String>,
    seen_commits: usize,
    /// While set, a probe is also proposed at every tick (5 ms) at a member
    /// of each of `sites`, so the longest gap between acknowledgements
    /// measures a write outage rather than the calls' own 20 ms spacing.
    probe: bool,
    /// Probes in flight (a failed one counts in `failed`).
    probes: BTreeSet<ProposalId>,
    probes_sent: u64,
    /// (virtual ms, calls up) after every 20 ms of [`run`](Self::run):
    /// the timeline's calls chart.
    calls_up: Vec<(u64, u64)>,
}

impl Workload {
    fn new(seed: u64, any_member: bool) -> Self {
        Self {
            any_member,
            sites: vec!["denver", "paris"],
            next_call: 1,
            rng: seed | 1,
            proposed: BTreeMap::new(),
            ending: BTreeMap::new(),
            up: BTreeSet::new(),
            failed: 0,
            commands: BTreeMap::new(),
            seen_commits: 0,
            probe: false,
            probes: BTreeSet::new(),
            probes_sent: 0,
            calls_up: Vec::new(),
        }
    }

    /// Users in `sites` make the calls; one whose site is down re-homes to
    /// the first other site in the list with a member up.
    fn sites(mut self, sites: &[&'static str]) -> Self {
        self.sites = sites.to_vec();
        self
    }

    fn rand(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    fn entry_point(&mut self, sim: &Sim<CallTable>) -> Option<NodeId> {
        let r = self.rand() as usize;
        let home = self.sites[r % self.sites.len()];
        let nodes = self.members_taking_calls(sim, home);
        if nodes.is_empty() {
            return None;
        }
        let pick = self.rand() as usize % nodes.len();
        Some(nodes[pick])
    }

    /// The members of `home` that take users' proposals, or of the first
    /// other site of `sites` with one up when `home` has none.
    fn members_taking_calls(&self, sim: &Sim<CallTable>, home: &str) -> Vec<NodeId> {
        let voters_up = |site: &str| -> Vec<NodeId> {
            sim.site_members(site)
                .into_iter()
                .filter(|&id| {
                    sim.node(id)
                        .is_some_and(|n| self.any_member || n.voters().contains(&id))
                })
                .collect()
        };
        let nodes = voters_up(home);
        if !nodes.is_empty() {
            return nodes;
        }
        (self.sites.iter().filter(|&&s| s != home))
            .map(|s| voters_up(s))
            .find(|n| !n.is_empty())
            .unwrap_or_default()
    }

    fn propose(&mut self, sim: &mut Sim<CallTable>, call: u64, setup: bool) {
        let Some(at) = self.entry_point(sim) else {
            self.failed += 1;
            return;
        };
        let cmd = format!("{} {call}", if setup { "setup" } else { "teardown" });
        match sim.propose(at, cmd.clone().into_bytes()) {
            Ok(id) => {
                self.commands.insert(id, cmd);
                self.proposed.insert(id, (call, setup));
            }
            Err(_) => self.failed += 1,
        }
    }

    /// Runs `d` of virtual time with a new call every 20 ms.
    fn run(&mut self, sim: &mut Sim<CallTable>, d: Duration) {
        self.run_watching(sim, d, |_| {});
    }

    /// [`run`](Self::run), with `watch` called every 20 ms (it only looks:
    /// the run is the same as without it).
    fn run_watching(
        &mut self,
        sim: &mut Sim<CallTable>,
        d: Duration,
        mut watch: impl FnMut(&Sim<CallTable>),
    ) {
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
            if self.probe {
                for _ in 0..4 {
                    self.propose_probes(sim);
                    sim.run_for(Duration::from_millis(5));
                }
            } else {
                sim.run_for(Duration::from_millis(20));
            }
            self.collect(sim);
            self.calls_up.push((sim.now_ms(), self.up.len() as u64));
            watch(sim);
        }
    }

    /// One probe at a member of each site (see [`probe`](Self::probe)).
    fn propose_probes(&mut self, sim: &mut Sim<CallTable>) {
        for site in self.sites.clone() {
            // Round robin over the site's members: the calls' random
            // choices are left as they were.
            let nodes = self.members_taking_calls(sim, site);
            let Some(&at) = nodes.get(self.probes_sent as usize % nodes.len().max(1)) else {
                self.failed += 1;
                continue;
            };
            self.probes_sent += 1;
            let cmd = format!("probe {}", self.probes_sent);
            match sim.propose(at, cmd.clone().into_bytes()) {
                Ok(id) => {
                    self.commands.insert(id, cmd);
                    self.probes.insert(id);
                }
                Err(_) => self.failed += 1,
            }
        }
    }

    fn collect(&mut self, sim: &Sim<CallTable>) {
        let fresh: Vec<Commit> = sim.commits()[self.seen_commits..].to_vec();
        self.seen_commits = sim.commits().len();
        for c in fresh {
            if self.probes.remove(&c.id) {
                self.failed += u64::from(c.outcome.result.is_err());
                continue;
            }
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

/// The design's figures and expectations, checked step by step: the run
/// exits non-zero, naming each one missed, if any is (CI runs this
/// example).
pub(crate) struct Checks {
    mode: &'static str,
    missed: Vec<String>,
}

impl Checks {
    pub(crate) fn new(mode: &'static str) -> Self {
        Self {
            mode,
            missed: Vec::new(),
        }
    }

    /// Records whether `what` held at `step`; `detail` says what was measured.
    pub(crate) fn check(&mut self, step: &str, what: &str, held: bool, detail: String) {
        if !held {
            self.missed
                .push(format!("{}/{step}: {what} (measured: {detail})", self.mode));
        }
    }

    /// The figure every step must reach: no committed entry lost.
    pub(crate) fn nothing_lost(&mut self, r: &Report) {
        self.check(
            r.step,
            "committed_lost == 0",
            r.committed_lost == 0,
            format!("committed_lost = {}", r.committed_lost),
        );
    }

    /// A figure measured in ms (`None`: never happened) within `bound` ms.
    pub(crate) fn at_most(&mut self, step: &str, what: &str, measured: Option<u64>, bound: u64) {
        let held = measured.is_some_and(|m| m <= bound);
        self.check(
            step,
            what,
            held,
            format!("{measured:?} ms, bound {bound} ms"),
        );
    }

    /// The step ended with a member of site `want` leading.
    pub(crate) fn leads(&mut self, r: &Report, sim: &Sim<CallTable>, want: &str) {
        let site = r.leader.map(|l| sim.site_of(l).to_string());
        let what = format!("{}{} leads", want[..1].to_uppercase(), &want[1..]);
        let held = site.as_deref() == Some(want);
        self.check(r.step, &what, held, format!("{site:?}"));
    }

    /// No call was dropped at this step.
    pub(crate) fn no_call_dropped(&mut self, r: &Report) {
        self.check(
            r.step,
            "no call dropped",
            r.calls_dropped == 0,
            format!("{} dropped", r.calls_dropped),
        );
    }

    /// Election safety so far: at most one member became leader of any
    /// term (from the leadership events) and the invariant checker saw no
    /// two leaders of one (epoch, term). Returns the figures for the step:
    /// the most leaders a term had, and the terms that had one.
    pub(crate) fn one_leader_per_term(
        &mut self,
        step: &str,
        sim: &Sim<CallTable>,
    ) -> (usize, usize) {
        let (most, terms) = leaders_per_term(sim);
        self.check(
            step,
            "at most one leader per term",
            most <= 1,
            format!("{most} leaders in one term"),
        );
        let two: Vec<_> = (sim.violations().into_iter())
            .filter(|v| matches!(v, survivable_core::sim::Violation::TwoLeaders { .. }))
            .collect();
        self.check(
            step,
            "no two leaders of one (epoch, term) (invariant checker)",
            two.is_empty(),
            format!("{two:?}"),
        );
        (most, terms)
    }

    /// Records the invariant checker's verdict on the whole run, prints
    /// what was missed (on stderr); whether everything held.
    pub(crate) fn finish(mut self, violations: &[survivable_core::sim::Violation]) -> bool {
        self.check(
            "end",
            "no invariant violated",
            violations.is_empty(),
            format!("{violations:?}"),
        );
        for m in &self.missed {
            eprintln!("figure not reached: {m}");
        }
        self.missed.is_empty()
    }
}

/// One narrated step.
pub(crate) struct Report {
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

/// Acknowledged entries of the leader's epoch missing from (or different
/// in) its state, plus whatever the invariant checker found (in main-site
/// mode, an older epoch's acknowledged entries must be in the final
/// history or reported exactly once by reconciliation).
fn committed_lost(sim: &Sim<CallTable>) -> usize {
    let Some(l) = sim.leader().and_then(|l| sim.node(l)) else {
        return 0;
    };
    sim.commits()
        .iter()
        .filter_map(|c| c.outcome.result.as_ref().ok())
        .filter(|a| a.epoch == l.epoch() && a.index > l.applied_index())
        .count()
        + sim.violations().len()
}

/// When the first hand-back was attempted at or after `since_us`.
fn hand_back_attempt(sim: &Sim<CallTable>, since_us: u64) -> Option<u64> {
    sim.events()
        .iter()
        .find(|(t, _, e)| *t >= since_us && matches!(e, Event::HandBackAttempt { .. }))
        .map(|(t, _, _)| *t)
}

/// A hand-back's figures, the same in every mode: `stable_wait_ms` (from
/// `wait_from_us` to the attempt at `handed_at`), `write_outage_ms` (the
/// longest gap between commits from 0.5 s before the attempt to 2 s after)
/// and `failed_proposals`. Returns the outage in ms.
fn hand_back_figures(
    sim: &Sim<CallTable>,
    r: &mut Report,
    handed_at: Option<u64>,
    wait_from_us: u64,
    failed: u64,
) -> Option<u64> {
    let outage = handed_at
        .and_then(|t0| sim.longest_commit_gap(t0.saturating_sub(500_000), t0 + 2_000_000))
        .map(|us| us / 1000);
    r.extra.push((
        "stable_wait_ms",
        json_num(handed_at.map(|t| (t - wait_from_us) / 1000)),
    ));
    r.extra.push(("write_outage_ms", json_num(outage)));
    r.extra.push(("failed_proposals", failed.to_string()));
    outage
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

/// Whether `id` was the (newest) leader at `t_us`, by the leadership
/// events so far: membership changes are narrated once, by the leader.
fn led_at(sim: &Sim<CallTable>, id: NodeId, t_us: u64) -> bool {
    sim.events()
        .iter()
        .take_while(|(t, _, _)| *t <= t_us)
        .filter(|(_, _, e)| matches!(e, Event::BecameLeader { .. }))
        .last()
        .is_some_and(|(_, l, _)| *l == id)
}

fn narrate(sim: &Sim<CallTable>, t_us: u64, id: NodeId, e: &Event) -> Option<String> {
    let who = name(sim, id);
    let main_site = sim.topology().mode() == survivable_core::policy::QuorumMode::MainSite;
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
        Event::MemberAdded { id: m } if led_at(sim, id, t_us) => {
            format!(
                "{} is a learner: it replicates and catches up",
                name(sim, *m)
            )
        }
        Event::MemberPromoted { id: m } if led_at(sim, id, t_us) && main_site => {
            format!("{} becomes a voter again", name(sim, *m))
        }
        Event::MemberPromoted { id: m } if led_at(sim, id, t_us) => {
            format!("{} becomes a voter: the new standby", name(sim, *m))
        }
        Event::MemberRemoved { id: m } if led_at(sim, id, t_us) => {
            format!("{} is removed from the configuration", name(sim, *m))
        }
        _ => narrate_epochs(sim, t_us, id, &who, e)?,
    };
    Some(line(t_us, &what))
}

/// [`narrate`]'s epochs and replication states: activations, fences,
/// reconciliations, joins and DR auto-sync's state moves.
fn narrate_epochs(
    sim: &Sim<CallTable>,
    t_us: u64,
    id: NodeId,
    who: &str,
    e: &Event,
) -> Option<String> {
    Some(match e {
        Event::Activated {
            epoch,
            fork_index,
            rpo_entries,
            rpo_ms,
            silent_ms,
            rpo_proven: true,
            ..
        } => format!(
            "{who} heard nothing from the main site for {silent_ms} ms: activates epoch {epoch} \
             from its whole log (index {fork_index}) with RPO 0 proven: its lease ran and every \
             commit needed Paris ({rpo_entries} entries reported past the fork, {rpo_ms} ms)"
        ),
        Event::Activated {
            epoch,
            fork_index,
            rpo_entries,
            rpo_ms,
            silent_ms,
            ..
        } => format!(
            "{who} heard nothing from the main site for {silent_ms} ms: activates epoch {epoch} \
             from index {fork_index} ({rpo_entries} entries the old leader had committed are not \
             here yet; it had been committing past the fork for {rpo_ms} ms)"
        ),
        Event::ReplicationChanged {
            state,
            state_id,
            previous,
            index,
        } if led_at(sim, id, t_us) => format!(
            "{who}: replication {previous} -> {state} (state id {state_id}, record at index {index})"
        ),
        Event::EpochFenced { ours, newer } => {
            format!("{who} (epoch {ours}) meets epoch {newer}: takes no more proposals")
        }
        Event::Reconciled {
            from,
            from_index,
            to_index,
            divergent,
            commands,
            compacted,
            ..
        } if Some(id) == sim.leader() => format!(
            "{who} takes in epoch {from}'s entries {from_index}–{to_index}: {divergent} divergent \
             call command(s), {compacted} compacted; applies {commands}"
        ),
        Event::ReconcileFailed {
            from,
            attempt,
            failure,
            retry_in_ms,
        } => {
            format!(
                "{who}: reconciling epoch {from} failed (attempt {attempt}: {failure}); \
                 retried in {retry_in_ms} ms"
            )
        }
        Event::JoinedEpoch { epoch } => {
            format!("{who} leaves its old epoch and joins epoch {epoch} from a snapshot")
        }
        _ => return None,
    })
}

/// The narration of the events since `since_us`, with `faults` (what the
/// example did, and when) merged in by time, each before the events of its
/// instant.
fn story_with(sim: &Sim<CallTable>, since_us: u64, faults: &[(u64, String)]) -> Vec<String> {
    let mut timed: Vec<(u64, usize, String)> = (faults.iter())
        .map(|(t, what)| (*t, 0, line(*t, what)))
        .collect();
    timed.extend(
        (sim.events().iter())
            .filter(|(t, _, _)| *t >= since_us)
            .filter_map(|(t, id, e)| Some((*t, 1, narrate(sim, *t, *id, e)?))),
    );
    timed.sort_by_key(|(t, order, _)| (*t, *order));
    timed.into_iter().map(|(_, _, l)| l).collect()
}

/// A narrated line: virtual time, then what happened.
fn line(t_us: u64, what: &str) -> String {
    format!("  {:>9.3} s  {what}", t_us as f64 / 1e6)
}

fn json_num(v: Option<u64>) -> String {
    v.map_or("null".into(), |v| v.to_string())
}

/// A JSON string (the example's names and causes need no escaping but
/// quotes and backslashes).
fn json_str(v: &str) -> String {
    format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Every `BecameLeader` at or after `from_us`: when (µs), who, why.
fn leaders_since(sim: &Sim<CallTable>, from_us: u64) -> Vec<(u64, NodeId, LeadershipCause)> {
    sim.events()
        .iter()
        .filter(|(t, _, _)| *t >= from_us)
        .filter_map(|(t, id, e)| match e {
            Event::BecameLeader { cause, .. } => Some((*t, *id, cause.clone())),
            _ => None,
        })
        .collect()
}

/// The most members that became leader of one term, over the whole run
/// (witness mode has a single epoch, so a term names a leadership), and
/// how many terms had a leader.
fn leaders_per_term(sim: &Sim<CallTable>) -> (usize, usize) {
    let mut by_term: BTreeMap<u64, BTreeSet<NodeId>> = BTreeMap::new();
    for (_, id, e) in sim.events() {
        if let Event::BecameLeader { term, .. } = e {
            by_term.entry(*term).or_default().insert(*id);
        }
    }
    let most = by_term.values().map(BTreeSet::len).max().unwrap_or(0);
    (most, by_term.len())
}

fn print(sim: &Sim<CallTable>, mode: &str, r: &Report, json: bool) {
    let (site, node) = match r.leader {
        Some(l) => (sim.site_of(l).to_string(), name(sim, l)),
        None => ("none".into(), "none".into()),
    };
    if json {
        let mut line = format!(
            "{{\"mode\":\"{mode}\",\"step\":\"{}\",\"t_ms\":{},\"leader_site\":\"{site}\",\"leader_node\":\"{node}\",\"takeover_ms\":{},\"calls_active\":{},\"calls_preserved\":{},\"calls_dropped\":{},\"committed_lost\":{}",
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

/// With `--svg`, draws section `mode`'s run (`sim`, the calls `w` kept
/// up) as a timeline into its file (see the module docs). Returns whether
/// that worked (true without `--svg`).
fn write_svg(args: &Args, mode: Mode, sim: &Sim<CallTable>, w: &Workload) -> bool {
    let Some(file) = &args.svg else {
        return true;
    };
    let name = match mode {
        Mode::Witness => "witness",
        Mode::MainSite => "main-site",
        Mode::DrAutoSync => "dr-auto-sync",
        _ => "ranked",
    };
    let several = SECTIONS.iter().filter(|&&m| args.mode.runs(m)).count() > 1;
    let path = if several {
        let p = std::path::Path::new(file);
        let stem = p
            .file_stem()
            .map_or("timeline".into(), |s| s.to_string_lossy());
        let ext = p.extension().map_or("svg".into(), |e| e.to_string_lossy());
        p.with_file_name(format!("{stem}-{name}.{ext}"))
    } else {
        file.into()
    };
    let mut t = Timeline::from_sim(sim);
    t.title(format!(
        "Denver/Paris, {name} mode: who led when (seed {}, WAN RTT {} ms)",
        args.seed, args.wan_rtt_ms
    ));
    for &(at, up) in &w.calls_up {
        t.calls(at, up);
    }
    match std::fs::write(&path, t.render()) {
        Ok(()) => {
            eprintln!("timeline of the {name} run written to {}", path.display());
            true
        }
        Err(e) => {
            eprintln!("cannot write the timeline to {}: {e}", path.display());
            false
        }
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
    let mut ok = true;
    let mut first = true;
    for section in SECTIONS {
        if !args.mode.runs(section) {
            continue;
        }
        if !first && !args.json {
            println!("\n");
        }
        first = false;
        ok &= match section {
            Mode::Witness => witness::run(&args),
            Mode::MainSite => main_site::run(&args),
            Mode::DrAutoSync => dr::run(&args),
            _ => ranked::run(&args),
        };
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "a step did not reach the design's figures (seed {}); replay with the same flags",
            args.seed
        );
        ExitCode::FAILURE
    }
}
