//! Fault schedules: a seed plus timed faults (crash, restart, pause,
//! partition, heal, link delay and loss, clock skew, proposal rate),
//! printed on one line and parsed back from it, generated from fuzzer bytes
//! ([`arbitrary::Arbitrary`]) or by quickcheck (with shrinking), and played
//! against a cluster by [`Schedule::run`] under the [invariant
//! checker](super::invariants). A failing property prints the schedule;
//! pasting that line into [`str::parse`] replays the exact run.
//!
//! ```
//! use survivable_core::sim::Schedule;
//! let s: Schedule = "seed=7; +1500ms crash n1; +800ms partition denver|paris+kansas; \
//!                    +10ms loss n3 n5 20%; +3000ms heal".parse().unwrap();
//! assert_eq!(s.steps.len(), 4);
//! assert_eq!(s.to_string().parse::<Schedule>().unwrap(), s);
//! ```

mod generate;
mod linear;
mod run;

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

pub use linear::{LinearOptions, LinearReport};
pub use run::{RunOptions, RunReport};

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
    /// Freeze a member (stop-the-world pause).
    Pause(NodeId),
    /// Unfreeze a member.
    Resume(NodeId),
    /// Cut one member off from everyone.
    Isolate(NodeId),
    /// Cut the links between two groups of sites.
    Partition(Vec<String>, Vec<String>),
    /// Restore every link.
    Heal,
    /// Set the round trip between two members, in milliseconds.
    Delay(NodeId, NodeId, u64),
    /// Set the loss of the link from one member to another, in percent.
    Loss(NodeId, NodeId, u8),
    /// Make a member's clock tick at this percentage of the tick period.
    Skew(NodeId, u64),
    /// Make proposals at this many per second from now on.
    Rate(u64),
}

/// A fault after a wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Virtual milliseconds to run before the fault.
    pub after_ms: u64,
    /// The fault.
    pub fault: Fault,
}

/// A seed and a list of timed faults. `Debug` prints the same replayable
/// line as `Display`, so a failing property shows something to paste.
#[derive(Clone, PartialEq, Eq, Default)]
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
            Self::Pause(n) => write!(f, "pause {n}"),
            Self::Resume(n) => write!(f, "resume {n}"),
            Self::Isolate(n) => write!(f, "isolate {n}"),
            Self::Partition(a, b) => write!(f, "partition {}|{}", a.join("+"), b.join("+")),
            Self::Heal => f.write_str("heal"),
            Self::Delay(a, b, ms) => write!(f, "delay {a} {b} {ms}ms"),
            Self::Loss(a, b, p) => write!(f, "loss {a} {b} {p}%"),
            Self::Skew(n, p) => write!(f, "skew {n} {p}%"),
            Self::Rate(r) => write!(f, "rate {r}/s"),
        }
    }
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
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

/// A schedule line that does not parse, or names what the topology lacks.
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
    /// A fault word or its arguments are not understood.
    #[error("step {index}: cannot read fault {text:?}; expected one of crash nN, restart nN, crash-site S, restart-site S, pause nN, resume nN, isolate nN, partition A+B|C, heal, delay nA nB Xms, loss nA nB P%, skew nN P%, rate R/s")]
    BadFault {
        /// Position of the step, from 1.
        index: usize,
        /// Its text.
        text: String,
    },
    /// A step names a member the topology does not have.
    #[error("step {index}: {node} is not a member of the topology")]
    UnknownNode {
        /// Position of the step, from 1.
        index: usize,
        /// The member.
        node: NodeId,
    },
    /// A step names a site the topology does not have.
    #[error("step {index}: site {site:?} is not in the topology")]
    UnknownSite {
        /// Position of the step, from 1.
        index: usize,
        /// The site.
        site: String,
    },
}

fn node(s: &str) -> Option<NodeId> {
    s.strip_prefix('n')?.parse().ok().map(NodeId)
}

fn sites(s: &str) -> Option<Vec<String>> {
    let v: Vec<String> = s.split('+').map(str::trim).map(String::from).collect();
    (!v.iter().any(String::is_empty)).then_some(v)
}

fn link(arg: &str) -> Option<(NodeId, NodeId, &str)> {
    let mut it = arg.split_whitespace();
    let (a, b, v) = (node(it.next()?)?, node(it.next()?)?, it.next()?);
    it.next().is_none().then_some((a, b, v))
}

impl FromStr for Fault {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        let (word, arg) = s.split_once(' ').map_or((s, ""), |(w, a)| (w, a.trim()));
        let pct = |v: &str| v.strip_suffix('%')?.parse::<u64>().ok();
        match word {
            "crash" => node(arg).map(Self::Crash),
            "restart" => node(arg).map(Self::Restart),
            "pause" => node(arg).map(Self::Pause),
            "resume" => node(arg).map(Self::Resume),
            "isolate" => node(arg).map(Self::Isolate),
            "crash-site" if !arg.is_empty() => Some(Self::CrashSite(arg.into())),
            "restart-site" if !arg.is_empty() => Some(Self::RestartSite(arg.into())),
            "partition" => {
                let (a, b) = arg.split_once('|').ok_or(())?;
                Some(Self::Partition(sites(a).ok_or(())?, sites(b).ok_or(())?))
            }
            "heal" if arg.is_empty() => Some(Self::Heal),
            "delay" => link(arg).and_then(|(a, b, v)| {
                let ms = v.strip_suffix("ms")?.parse().ok()?;
                Some(Self::Delay(a, b, ms))
            }),
            "loss" => link(arg).and_then(|(a, b, v)| {
                let p = pct(v).filter(|p| *p <= 100)?;
                Some(Self::Loss(a, b, p as u8))
            }),
            "skew" => arg.split_once(' ').and_then(|(n, v)| {
                let p = pct(v.trim()).filter(|p| (10..=1000).contains(p))?;
                Some(Self::Skew(node(n)?, p))
            }),
            "rate" => arg
                .strip_suffix("/s")
                .and_then(|r| r.parse().ok())
                .map(Self::Rate),
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

impl Schedule {
    /// Checks every member and site the schedule names exists in `topology`.
    ///
    /// # Errors
    /// [`ScheduleError::UnknownNode`] or [`ScheduleError::UnknownSite`].
    pub fn validate(&self, topology: &Topology) -> Result<(), ScheduleError> {
        for (i, step) in self.steps.iter().enumerate() {
            let index = i + 1;
            let (nodes, site_names): (Vec<NodeId>, Vec<&String>) = match &step.fault {
                Fault::Crash(n)
                | Fault::Restart(n)
                | Fault::Pause(n)
                | Fault::Resume(n)
                | Fault::Isolate(n)
                | Fault::Skew(n, _) => (vec![*n], vec![]),
                Fault::Delay(a, b, _) | Fault::Loss(a, b, _) => (vec![*a, *b], vec![]),
                Fault::CrashSite(s) | Fault::RestartSite(s) => (vec![], vec![s]),
                Fault::Partition(a, b) => (vec![], a.iter().chain(b).collect()),
                Fault::Heal | Fault::Rate(_) => (vec![], vec![]),
            };
            if let Some(&node) = nodes.iter().find(|n| topology.member(**n).is_none()) {
                return Err(ScheduleError::UnknownNode { index, node });
            }
            let known = |s: &&String| topology.sites().iter().any(|x| &x.name == *s);
            if let Some(site) = site_names.into_iter().find(|s| !known(s)) {
                return Err(ScheduleError::UnknownSite {
                    index,
                    site: site.clone(),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_and_parses_back_every_fault() {
        let line = "seed=9; +10ms crash n1; +0ms partition a|b+c; +5ms restart-site a; \
                    +5ms pause n2; +1ms resume n2; +3ms delay n1 n3 120ms; +3ms loss n3 n1 25%; \
                    +2ms skew n4 150%; +7ms rate 200/s; +5ms heal";
        let s: Schedule = line.parse().unwrap();
        assert_eq!(s.steps.len(), 10);
        assert_eq!(s.to_string(), line.replace("  ", ""));
        assert_eq!(s.to_string().parse::<Schedule>(), Ok(s));
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
        for bad in [
            "+5ms explode n1",
            "+10ms partition a|",
            "+1ms loss n1 n2 101%",
            "+1ms skew n1 5%",
            "+1ms delay n1 120ms",
            "+1ms rate fast",
        ] {
            let line = format!("seed=1; +10ms heal; {bad}");
            assert!(
                matches!(
                    line.parse::<Schedule>(),
                    Err(ScheduleError::BadFault { index: 2, .. })
                ),
                "{bad}"
            );
        }
        assert_eq!("seed=3".parse::<Schedule>().unwrap().steps.len(), 0);
    }

    #[test]
    fn unknown_members_and_sites_are_refused() {
        let t = crate::topology::denver_paris().build().unwrap();
        let ok: Schedule = "seed=1; +1ms crash n5; +1ms partition denver|paris"
            .parse()
            .unwrap();
        assert_eq!(ok.validate(&t), Ok(()));
        let s: Schedule = "seed=1; +1ms heal; +1ms crash n9".parse().unwrap();
        assert_eq!(
            s.validate(&t),
            Err(ScheduleError::UnknownNode {
                index: 2,
                node: NodeId(9)
            })
        );
        let s: Schedule = "seed=1; +1ms partition denver|tokyo".parse().unwrap();
        assert!(matches!(
            s.validate(&t),
            Err(ScheduleError::UnknownSite { index: 1, .. })
        ));
    }
}
