//! Fault schedules: a seed plus timed faults (crash, restart, partition,
//! heal), printable on one line and parsed back from it, and a runner that
//! plays one against a cluster under a steady load and checks the DESIGN §6
//! invariants. A failing property prints the schedule; pasting that line
//! into [`Schedule::from_str`](std::str::FromStr) replays the exact run.
//!
//! ```
//! use survivable_core::sim::Schedule;
//! let s: Schedule = "seed=7; +1500ms crash n1; +800ms partition denver|paris+kansas; +3000ms heal"
//!     .parse()
//!     .unwrap();
//! assert_eq!(s.steps.len(), 3);
//! assert_eq!(s.to_string().parse::<Schedule>().unwrap(), s);
//! ```

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;

use super::{KvStore, Sim, Violation};
use crate::topology::{NodeId, Topology};

/// One fault.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Crash a member (volatile state lost, storage kept).
    Crash(NodeId),
    /// Restart a crashed member from its storage.
    Restart(NodeId),
    /// Crash every member of a site.
    CrashSite(String),
    /// Restart every crashed member of a site.
    RestartSite(String),
    /// Cut one member off from everyone.
    Isolate(NodeId),
    /// Cut the links between two groups of sites.
    Partition(Vec<String>, Vec<String>),
    /// Restore every link.
    Heal,
}

/// A fault after a wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Virtual milliseconds to run before the fault.
    pub after_ms: u64,
    /// The fault.
    pub fault: Fault,
}

/// A seed and a list of timed faults.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Schedule {
    /// The simulator's seed.
    pub seed: u64,
    /// Faults, in order.
    pub steps: Vec<Step>,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Crash(n) => write!(f, "crash {n}"),
            Self::Restart(n) => write!(f, "restart {n}"),
            Self::CrashSite(s) => write!(f, "crash-site {s}"),
            Self::RestartSite(s) => write!(f, "restart-site {s}"),
            Self::Isolate(n) => write!(f, "isolate {n}"),
            Self::Partition(a, b) => write!(f, "partition {}|{}", a.join("+"), b.join("+")),
            Self::Heal => f.write_str("heal"),
        }
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "seed={}", self.seed)?;
        for s in &self.steps {
            write!(f, "; +{}ms {}", s.after_ms, s.fault)?;
        }
        Ok(())
    }
}

/// A schedule line that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ScheduleError {
    /// The line does not start with `seed=N`.
    #[error("a schedule starts with seed=<u64>, got {0:?}")]
    BadSeed(String),
    /// A step is not `+<ms>ms <fault>`.
    #[error("step {index} ({text:?}) is not `+<ms>ms <fault>`")]
    BadStep {
        /// Position of the step, from 1.
        index: usize,
        /// Its text.
        text: String,
    },
    /// A fault word or its argument is not understood.
    #[error("step {index}: unknown fault {text:?}; expected crash nN, restart nN, crash-site S, restart-site S, isolate nN, partition A+B|C, heal")]
    BadFault {
        /// Position of the step, from 1.
        index: usize,
        /// Its text.
        text: String,
    },
}

fn node(s: &str) -> Option<NodeId> {
    s.strip_prefix('n')?.parse().ok().map(NodeId)
}

fn sites(s: &str) -> Option<Vec<String>> {
    let v: Vec<String> = s.split('+').map(str::trim).map(String::from).collect();
    (!v.iter().any(String::is_empty)).then_some(v)
}

impl FromStr for Fault {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        let (word, arg) = s.split_once(' ').map_or((s, ""), |(w, a)| (w, a.trim()));
        match word {
            "crash" => node(arg).map(Self::Crash),
            "restart" => node(arg).map(Self::Restart),
            "isolate" => node(arg).map(Self::Isolate),
            "crash-site" if !arg.is_empty() => Some(Self::CrashSite(arg.into())),
            "restart-site" if !arg.is_empty() => Some(Self::RestartSite(arg.into())),
            "partition" => {
                let (a, b) = arg.split_once('|').ok_or(())?;
                Some(Self::Partition(sites(a).ok_or(())?, sites(b).ok_or(())?))
            }
            "heal" if arg.is_empty() => Some(Self::Heal),
            _ => None,
        }
        .ok_or(())
    }
}

impl FromStr for Schedule {
    type Err = ScheduleError;

    fn from_str(s: &str) -> Result<Self, ScheduleError> {
        let mut parts = s.split(';').map(str::trim);
        let head = parts.next().unwrap_or_default();
        let seed = head
            .strip_prefix("seed=")
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| ScheduleError::BadSeed(head.to_string()))?;
        let mut steps = Vec::new();
        for (i, text) in parts.filter(|p| !p.is_empty()).enumerate() {
            let index = i + 1;
            let bad = || ScheduleError::BadStep {
                index,
                text: text.to_string(),
            };
            let (wait, fault) = text.split_once(' ').ok_or_else(bad)?;
            let after_ms = wait
                .strip_prefix('+')
                .and_then(|w| w.strip_suffix("ms"))
                .and_then(|w| w.parse().ok())
                .ok_or_else(bad)?;
            let fault = fault.trim().parse().map_err(|()| ScheduleError::BadFault {
                index,
                text: fault.trim().to_string(),
            })?;
            steps.push(Step { after_ms, fault });
        }
        Ok(Self { seed, steps })
    }
}

/// How [`Schedule::run`] drives the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOptions {
    /// A proposal every this long, at live voters in turn. Defaults to 20 ms.
    pub propose_every: Duration,
    /// After the last fault everything is healed and restarted; the main
    /// site must lead again within this bound. Defaults to 15 s.
    pub main_site_within: Duration,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            propose_every: Duration::from_millis(20),
            main_site_within: Duration::from_secs(15),
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
    /// Virtual milliseconds from the final heal to the main site leading.
    pub main_site_after_ms: Option<u64>,
    /// The simulator's trace.
    pub trace: Vec<String>,
}

impl Schedule {
    /// Plays the schedule against `topology` under a steady `set` load,
    /// then heals every link, restarts every member and checks DESIGN §6:
    /// election safety and no divergence throughout, then convergence,
    /// every acknowledged proposal applied, and the main site leading again
    /// within [`RunOptions::main_site_within`].
    pub fn run(&self, topology: Arc<Topology>, opts: &RunOptions) -> RunReport {
        let main = topology.main_site().to_string();
        let mut sim = Sim::builder(topology)
            .seed(self.seed)
            .build(|_| KvStore::default());
        let mut load = Load::default();
        let every = opts.propose_every.max(Duration::from_millis(1));
        for step in &self.steps {
            load.run(&mut sim, Duration::from_millis(step.after_ms), every);
            apply(&mut sim, &step.fault);
        }
        load.run(&mut sim, every, every);
        sim.heal();
        for id in sim.members() {
            sim.restart(id);
        }
        let healed = sim.now_us();
        let limit = sim.now_us() + opts.main_site_within.as_micros() as u64;
        let mut main_site_after_ms = None;
        while sim.now_us() < limit {
            load.run(&mut sim, every, every);
            if sim.leader().is_some_and(|l| sim.site_of(l) == main) {
                main_site_after_ms = Some((sim.now_us() - healed) / 1000);
                break;
            }
        }
        // Let every waiting proposal land, then check the end state.
        sim.run_for(Duration::from_secs(3));
        sim.check_converged();
        let mut violations = sim.violations();
        let settled_in_main = sim.leader().is_some_and(|l| sim.site_of(l) == main);
        if main_site_after_ms.is_none() || !settled_in_main {
            violations.push(Violation::MainSiteNotLeading {
                leader: sim.leader(),
            });
        }
        RunReport {
            violations,
            acknowledged: sim
                .commits()
                .iter()
                .filter(|c| c.outcome.result.is_ok())
                .count(),
            proposed: load.proposed,
            main_site_after_ms,
            trace: sim.trace().to_vec(),
        }
    }
}

fn apply(sim: &mut Sim<KvStore>, fault: &Fault) {
    match fault {
        Fault::Crash(n) => sim.crash(*n),
        Fault::Restart(n) => sim.restart(*n),
        Fault::CrashSite(s) => sim.crash_site(s),
        Fault::RestartSite(s) => {
            for id in sim.site_members(s) {
                sim.restart(id);
            }
        }
        Fault::Isolate(n) => sim.isolate(*n),
        Fault::Partition(a, b) => {
            let a: Vec<&str> = a.iter().map(String::as_str).collect();
            let b: Vec<&str> = b.iter().map(String::as_str).collect();
            sim.partition_sites(&a, &b);
        }
        Fault::Heal => sim.heal(),
    }
}

#[derive(Default)]
struct Load {
    next: u64,
    proposed: usize,
}

impl Load {
    fn run(&mut self, sim: &mut Sim<KvStore>, d: Duration, every: Duration) {
        let end = sim.now_us() + d.as_micros() as u64;
        while sim.now_us() < end {
            let live: Vec<NodeId> = sim
                .members()
                .into_iter()
                .filter(|&id| sim.node(id).is_some_and(|n| n.voters().contains(&id)))
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
            sim.run_for(every.min(left));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_and_parses_back() {
        let s = Schedule {
            seed: 9,
            steps: vec![
                Step {
                    after_ms: 10,
                    fault: Fault::Crash(NodeId(1)),
                },
                Step {
                    after_ms: 0,
                    fault: Fault::Partition(vec!["a".into()], vec!["b".into(), "c".into()]),
                },
                Step {
                    after_ms: 5,
                    fault: Fault::RestartSite("a".into()),
                },
                Step {
                    after_ms: 5,
                    fault: Fault::Heal,
                },
            ],
        };
        let line = s.to_string();
        assert_eq!(
            line,
            "seed=9; +10ms crash n1; +0ms partition a|b+c; +5ms restart-site a; +5ms heal"
        );
        assert_eq!(line.parse::<Schedule>(), Ok(s));
    }

    #[test]
    fn bad_lines_are_typed_errors() {
        assert!(matches!(
            "seed=x".parse::<Schedule>(),
            Err(ScheduleError::BadSeed(_))
        ));
        assert!(matches!(
            "seed=1; 10ms crash n1".parse::<Schedule>(),
            Err(ScheduleError::BadStep { index: 1, .. })
        ));
        assert!(matches!(
            "seed=1; +10ms heal; +5ms explode n1".parse::<Schedule>(),
            Err(ScheduleError::BadFault { index: 2, .. })
        ));
        assert!(matches!(
            "seed=1; +10ms partition a|".parse::<Schedule>(),
            Err(ScheduleError::BadFault { .. })
        ));
        assert_eq!("seed=3".parse::<Schedule>().unwrap().steps.len(), 0);
    }
}
