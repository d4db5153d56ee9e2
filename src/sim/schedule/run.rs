//! Playing a schedule: a steady load, the faults in order, then everything
//! healed and restarted and the end-of-run invariants checked.

use std::sync::Arc;
use std::time::Duration;

use super::{Fault, Schedule, ScheduleError};
use crate::sim::{KvStore, Sim, Violation};
use crate::topology::{Latency, NodeId, Topology};

/// How [`Schedule::run`] drives the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOptions {
    /// Proposals per second at the start (a `rate` fault changes it),
    /// made at live voters in turn. Defaults to 50.
    pub proposals_per_s: u64,
    /// After the last fault everything is healed and restarted; the main
    /// site must lead again within this bound. Defaults to 15 s.
    pub main_site_within: Duration,
    /// The network's round trips: LAN, WAN and per-direction overrides
    /// between sites. Defaults to the simulator's (1 ms LAN, 80 ms WAN).
    pub latency: Latency,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            proposals_per_s: 50,
            main_site_within: Duration::from_secs(15),
            latency: Latency::default(),
        }
    }
}

/// What a run found.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// Every broken invariant.
    pub violations: Vec<Violation>,
    /// Proposals acknowledged.
    pub acknowledged: usize,
    /// Proposals made.
    pub proposed: usize,
    /// Proposals acknowledged while commits needed both sites (DR
    /// auto-sync's `Sync` and `AsyncWait`; 0 in the other modes).
    pub acknowledged_at_rpo_zero: usize,
    /// Virtual milliseconds from the final heal to the main site leading.
    pub main_site_after_ms: Option<u64>,
    /// Virtual milliseconds simulated.
    pub virtual_ms: u64,
    /// The simulator's trace.
    pub trace: Vec<String>,
    /// Every running member's status at the end.
    pub status: Vec<crate::node::Status>,
}

impl Schedule {
    /// Plays the schedule against `topology` under a steady `set` load,
    /// then heals every link (latency and loss back to normal), restarts,
    /// resumes and un-skews every member and checks the invariants
    /// ([`manual::invariants`](crate::manual::invariants)) with the
    /// [invariant checker](crate::sim::invariants):
    /// election safety and state machine safety throughout, then the main
    /// site leading again within [`RunOptions::main_site_within`],
    /// convergence, every acknowledged proposal applied, and log matching.
    ///
    /// # Errors
    /// [`ScheduleError`] when the schedule does not
    /// [validate](Schedule::validate) against the topology; nothing is run.
    pub fn run(
        &self,
        topology: Arc<Topology>,
        opts: &RunOptions,
    ) -> Result<RunReport, ScheduleError> {
        self.validate(&topology)?;
        let mut sim = Sim::builder(topology)
            .seed(self.seed)
            .latency(&opts.latency)
            .build(|_| KvStore::default());
        let mut load = Load {
            next: 0,
            proposed: 0,
            every: every(opts.proposals_per_s),
        };
        for step in &self.steps {
            load.run(&mut sim, Duration::from_millis(step.after_ms));
            if let Fault::Rate(r) = step.fault {
                load.every = every(r);
            }
            apply(&mut sim, &step.fault);
        }
        load.run(&mut sim, Duration::from_millis(20));
        recover_all(&mut sim);
        let healed = sim.now_us();
        let home = sim.check_main_site_leads(opts.main_site_within);
        let main_site_after_ms = home.is_none().then(|| (sim.now_us() - healed) / 1000);
        // Let every waiting proposal land (a long outage under a heavy load
        // leaves a backlog), then check the end state.
        load.run(&mut sim, Duration::from_millis(500));
        sim.run_until_converged(Duration::from_secs(30));
        sim.check_converged();
        if home.is_none() {
            // It must lead after settling too. Settling can depose it (a
            // member that campaigned alone comes back with a higher term);
            // leadership must then come home again, within the same bound.
            let main = sim.topology().main_site().to_string();
            if sim.leader().is_none_or(|l| sim.site_of(l) != main) {
                sim.check_main_site_leads(opts.main_site_within);
                sim.run_until_converged(Duration::from_secs(30));
                sim.check_converged();
            }
        }
        Ok(RunReport {
            violations: sim.violations(),
            acknowledged: sim
                .commits()
                .iter()
                .filter(|c| c.outcome.result.is_ok())
                .count(),
            proposed: load.proposed,
            acknowledged_at_rpo_zero: sim.acknowledged_at_rpo_zero(),
            main_site_after_ms,
            virtual_ms: sim.now_ms(),
            trace: sim.trace().to_vec(),
            status: sim
                .members()
                .into_iter()
                .filter_map(|id| sim.node(id).map(|n| n.status()))
                .collect(),
        })
    }
}

fn every(per_s: u64) -> Duration {
    Duration::from_micros(1_000_000 / per_s.clamp(1, 10_000))
}

/// The end of every schedule: every link healed and back to its latency
/// and loss, every member resumed, restarted and un-skewed.
pub(super) fn recover_all(sim: &mut Sim<KvStore>) {
    sim.heal();
    sim.restore_links();
    for id in sim.members() {
        sim.resume(id);
        sim.restart(id);
        sim.set_tick_skew(id, 100);
    }
}

pub(super) fn apply(sim: &mut Sim<KvStore>, fault: &Fault) {
    match fault {
        Fault::Crash(n) => sim.crash(*n),
        Fault::Kill(n) => sim.kill(*n),
        Fault::Restart(n) => sim.restart(*n),
        Fault::CrashSite(s) => sim.crash_site(s),
        Fault::RestartSite(s) => {
            for id in sim.site_members(s) {
                sim.restart(id);
            }
        }
        Fault::Pause(n) => sim.pause(*n),
        Fault::Resume(n) => sim.resume(*n),
        Fault::Isolate(n) => sim.isolate(*n),
        Fault::Partition(a, b) => {
            let a: Vec<&str> = a.iter().map(String::as_str).collect();
            let b: Vec<&str> = b.iter().map(String::as_str).collect();
            sim.partition_sites(&a, &b);
        }
        Fault::Split(a, b) => sim.partition(a, b),
        Fault::Heal => sim.heal(),
        Fault::Delay(a, b, ms) => sim.set_link_rtt(*a, *b, Duration::from_millis(*ms)),
        Fault::Loss(a, b, p) => sim.set_link_loss(*a, *b, f64::from(*p) / 100.0),
        Fault::Skew(n, p) => sim.set_tick_skew(*n, *p),
        Fault::Rate(_) => {}
    }
}

/// Proposals every `every`, at every running member in turn, whatever
/// its kind (primary, standby, survivable member or learner, witness,
/// tie-breaker): each forwards to its leader, and a learner's proposal may
/// be applied by one epoch and re-submitted in another, which is what the
/// apply counts check. The turn follows the proposal number, so a run
/// stays a function of its seed and schedule.
struct Load {
    next: u64,
    proposed: usize,
    every: Duration,
}

impl Load {
    fn run(&mut self, sim: &mut Sim<KvStore>, d: Duration) {
        let end = sim.now_us().saturating_add(crate::sim::micros(d));
        while sim.now_us() < end {
            let live: Vec<NodeId> = sim
                .members()
                .into_iter()
                .filter(|&id| sim.is_up(id))
                .collect();
            if !live.is_empty() {
                let at = live[(self.next as usize) % live.len()];
                let cmd = format!("set k{} {}", self.next, self.next);
                self.next += 1;
                if sim.propose(at, cmd.into_bytes()).is_ok() {
                    self.proposed += 1;
                }
            }
            let left = Duration::from_micros(end - sim.now_us());
            sim.run_for(self.every.min(left));
        }
    }
}
