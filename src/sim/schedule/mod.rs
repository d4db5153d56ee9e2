//! Fault schedules: a seed plus timed faults (crash, kill, restart, pause,
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
//!                    +10ms loss n3 n5 20%; +500ms split n1+n5|n2+n3+n4; +3000ms heal".parse().unwrap();
//! assert_eq!(s.steps.len(), 5);
//! assert_eq!(s.to_string().parse::<Schedule>().unwrap(), s);
//! ```

mod dr;
mod generate;
mod linear;
mod run;

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

pub use dr::{DrSchedule, DR_ONE_WAY_MS};
pub use linear::{LinearOptions, LinearReport};
pub use run::{RunOptions, RunReport};

use crate::topology::{NodeId, Topology};

/// One fault.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Crash a member (volatile state lost, storage kept; its peers see
    /// only silence).
    Crash(NodeId),
    /// Kill a member's process on a host that stays up: a crash whose
    /// peers' dials are refused ([`Sim::kill`](super::Sim::kill)).
    Kill(NodeId),
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
    /// Cut the links between two groups of members (any members, of any
    /// sites; members on neither side keep every link).
    Split(Vec<NodeId>, Vec<NodeId>),
    /// Restore every link.
    Heal,
    /// Set the round trip between two members, in milliseconds (at most
    /// [`MAX_RTT_MS`]).
    Delay(NodeId, NodeId, u64),
    /// Set the loss of the link from one member to another, in percent
    /// (at most 100).
    Loss(NodeId, NodeId, u8),
    /// Make a member's clock tick at this percentage of the tick period
    /// (within [`SKEW_PERCENT`]).
    Skew(NodeId, u64),
    /// Make proposals at this many per second from now on (within
    /// [`RATE_PER_S`]).
    Rate(u64),
}

/// The longest wait before a fault: one virtual day.
pub const MAX_WAIT_MS: u64 = 86_400_000;
/// The longest round trip a `delay` fault sets: one minute.
pub const MAX_RTT_MS: u64 = 60_000;
/// The clock skews a `skew` fault sets, in percent of the tick period.
pub const SKEW_PERCENT: std::ops::RangeInclusive<u64> = 10..=1000;
/// The proposal rates a `rate` fault sets, per second.
pub const RATE_PER_S: std::ops::RangeInclusive<u64> = 1..=10_000;

/// A fault after a wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Virtual milliseconds to run before the fault (at most
    /// [`MAX_WAIT_MS`]).
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
            Self::Kill(n) => write!(f, "kill {n}"),
            Self::Restart(n) => write!(f, "restart {n}"),
            Self::CrashSite(s) => write!(f, "crash-site {s}"),
            Self::RestartSite(s) => write!(f, "restart-site {s}"),
            Self::Pause(n) => write!(f, "pause {n}"),
            Self::Resume(n) => write!(f, "resume {n}"),
            Self::Isolate(n) => write!(f, "isolate {n}"),
            Self::Partition(a, b) => write!(f, "partition {}|{}", a.join("+"), b.join("+")),
            Self::Split(a, b) => {
                let side = |s: &[NodeId]| {
                    s.iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("+")
                };
                write!(f, "split {}|{}", side(a), side(b))
            }
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
    #[error("step {index}: cannot read fault {text:?}; expected one of crash nN, kill nN, restart nN, crash-site S, restart-site S, pause nN, resume nN, isolate nN, partition A+B|C, split nA+nB|nC, heal, delay nA nB Xms, loss nA nB P%, skew nN P%, rate R/s")]
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
    /// A wait or a fault's number is outside what a schedule allows.
    #[error("step {index}: {what} {value} is outside {min}..={max}; use a value in that range")]
    OutOfRange {
        /// Position of the step, from 1.
        index: usize,
        /// What the number is (`wait ms`, `delay ms`, `loss %`, `skew %`, `rate /s`).
        what: &'static str,
        /// The number given.
        value: u64,
        /// The smallest allowed.
        min: u64,
        /// The largest allowed.
        max: u64,
    },
    /// A partition or split names a member or site on both sides.
    #[error("step {index}: {name} is on both sides of the cut; put it on one side only")]
    OnBothSides {
        /// Position of the step, from 1.
        index: usize,
        /// The member (`nN`) or site.
        name: String,
    },
    /// A DR schedule line does not start with `wan=<ms>ms/<ms>ms;`, or a
    /// latency is above [`MAX_RTT_MS`].
    #[error("a DR schedule starts with wan=<ms>ms/<ms>ms; (one way, main site to other site and back, each at most {MAX_RTT_MS} ms), got {0:?}")]
    BadLatency(String),
    /// A partition or split has nothing on one side.
    #[error(
        "step {index}: one side of the cut is empty; name at least one member or site on each side"
    )]
    EmptySide {
        /// Position of the step, from 1.
        index: usize,
    },
}

fn node(s: &str) -> Option<NodeId> {
    s.strip_prefix('n')?.parse().ok().map(NodeId)
}

fn sites(s: &str) -> Option<Vec<String>> {
    let v: Vec<String> = s.split('+').map(str::trim).map(String::from).collect();
    (!v.iter().any(String::is_empty)).then_some(v)
}

fn nodes(s: &str) -> Option<Vec<NodeId>> {
    s.split('+').map(|n| node(n.trim())).collect()
}

fn link(arg: &str) -> Option<(NodeId, NodeId, &str)> {
    let mut it = arg.split_whitespace();
    let (a, b, v) = (node(it.next()?)?, node(it.next()?)?, it.next()?);
    it.next().is_none().then_some((a, b, v))
}

/// A number of a step, checked against its range.
struct Bound {
    what: &'static str,
    min: u64,
    max: u64,
}

const WAIT: Bound = Bound {
    what: "wait ms",
    min: 0,
    max: MAX_WAIT_MS,
};
const RTT: Bound = Bound {
    what: "delay ms",
    min: 0,
    max: MAX_RTT_MS,
};
const LOSS: Bound = Bound {
    what: "loss %",
    min: 0,
    max: 100,
};
const SKEW: Bound = Bound {
    what: "skew %",
    min: *SKEW_PERCENT.start(),
    max: *SKEW_PERCENT.end(),
};
const RATE: Bound = Bound {
    what: "rate /s",
    min: *RATE_PER_S.start(),
    max: *RATE_PER_S.end(),
};

impl Bound {
    fn check(&self, index: usize, value: u64) -> Result<u64, ScheduleError> {
        if (self.min..=self.max).contains(&value) {
            Ok(value)
        } else {
            Err(ScheduleError::OutOfRange {
                index,
                what: self.what,
                value,
                min: self.min,
                max: self.max,
            })
        }
    }
}

/// Reads the fault of step `index`: [`ScheduleError::BadFault`] when its
/// words do not read, [`ScheduleError::OutOfRange`] when a number is
/// outside its range.
fn parse_fault(s: &str, index: usize) -> Result<Fault, ScheduleError> {
    let bad = || ScheduleError::BadFault {
        index,
        text: s.to_string(),
    };
    let (word, arg) = s.split_once(' ').map_or((s, ""), |(w, a)| (w, a.trim()));
    let number = |v: Option<&str>| v.and_then(|v| v.parse::<u64>().ok()).ok_or_else(bad);
    let pct = |v: &str| number(v.strip_suffix('%'));
    let one = |f: fn(NodeId) -> Fault| node(arg).map(f).ok_or_else(bad);
    match word {
        "crash" => one(Fault::Crash),
        "kill" => one(Fault::Kill),
        "restart" => one(Fault::Restart),
        "pause" => one(Fault::Pause),
        "resume" => one(Fault::Resume),
        "isolate" => one(Fault::Isolate),
        "crash-site" if !arg.is_empty() => Ok(Fault::CrashSite(arg.into())),
        "restart-site" if !arg.is_empty() => Ok(Fault::RestartSite(arg.into())),
        "partition" => {
            let (a, b) = arg.split_once('|').ok_or_else(bad)?;
            Ok(Fault::Partition(
                sites(a).ok_or_else(bad)?,
                sites(b).ok_or_else(bad)?,
            ))
        }
        "split" => {
            let (a, b) = arg.split_once('|').ok_or_else(bad)?;
            Ok(Fault::Split(
                nodes(a).ok_or_else(bad)?,
                nodes(b).ok_or_else(bad)?,
            ))
        }
        "heal" if arg.is_empty() => Ok(Fault::Heal),
        "delay" => {
            let (a, b, v) = link(arg).ok_or_else(bad)?;
            let ms = RTT.check(index, number(v.strip_suffix("ms"))?)?;
            Ok(Fault::Delay(a, b, ms))
        }
        "loss" => {
            let (a, b, v) = link(arg).ok_or_else(bad)?;
            let p = LOSS.check(index, pct(v)?)?;
            Ok(Fault::Loss(a, b, u8::try_from(p).map_err(|_| bad())?))
        }
        "skew" => {
            let (n, v) = arg.split_once(' ').ok_or_else(bad)?;
            let n = node(n).ok_or_else(bad)?;
            Ok(Fault::Skew(n, SKEW.check(index, pct(v.trim())?)?))
        }
        "rate" => {
            let r = number(arg.strip_suffix("/s"))?;
            Ok(Fault::Rate(RATE.check(index, r)?))
        }
        _ => Err(bad()),
    }
}

/// One fault as printed in a schedule line (`crash n1`, `split n1|n2+n3`,
/// ...). `Err(())` when it does not read or a number is out of range;
/// parse a whole [`Schedule`] for a typed error.
impl FromStr for Fault {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        parse_fault(s, 1).map_err(|_| ())
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
            let after_ms = WAIT.check(index, after_ms)?;
            let fault = parse_fault(fault.trim(), index)?;
            steps.push(Step { after_ms, fault });
        }
        Ok(Self { seed, steps })
    }
}

/// Checks the two sides of a cut: neither empty, nothing on both.
fn check_sides<T: PartialEq + fmt::Display>(
    index: usize,
    a: &[T],
    b: &[T],
) -> Result<(), ScheduleError> {
    if a.is_empty() || b.is_empty() {
        return Err(ScheduleError::EmptySide { index });
    }
    match a.iter().find(|x| b.contains(x)) {
        Some(x) => Err(ScheduleError::OnBothSides {
            index,
            name: x.to_string(),
        }),
        None => Ok(()),
    }
}

impl Schedule {
    /// Checks the schedule can be played against `topology` and printed
    /// and read back: every member and site it names exists, every wait
    /// and number is within the range the parser accepts, and every cut
    /// has something on each side and nothing on both.
    ///
    /// # Errors
    /// [`ScheduleError::UnknownNode`], [`ScheduleError::UnknownSite`],
    /// [`ScheduleError::OutOfRange`], [`ScheduleError::EmptySide`] or
    /// [`ScheduleError::OnBothSides`], for the first step at fault.
    pub fn validate(&self, topology: &Topology) -> Result<(), ScheduleError> {
        for (i, step) in self.steps.iter().enumerate() {
            let index = i + 1;
            WAIT.check(index, step.after_ms)?;
            let (nodes, site_names): (Vec<NodeId>, Vec<&String>) = match &step.fault {
                Fault::Crash(n)
                | Fault::Kill(n)
                | Fault::Restart(n)
                | Fault::Pause(n)
                | Fault::Resume(n)
                | Fault::Isolate(n) => (vec![*n], vec![]),
                Fault::Skew(n, p) => {
                    SKEW.check(index, *p)?;
                    (vec![*n], vec![])
                }
                Fault::Delay(a, b, ms) => {
                    RTT.check(index, *ms)?;
                    (vec![*a, *b], vec![])
                }
                Fault::Loss(a, b, p) => {
                    LOSS.check(index, u64::from(*p))?;
                    (vec![*a, *b], vec![])
                }
                Fault::CrashSite(s) | Fault::RestartSite(s) => (vec![], vec![s]),
                Fault::Partition(a, b) => {
                    check_sides(index, a, b)?;
                    (vec![], a.iter().chain(b).collect())
                }
                Fault::Split(a, b) => {
                    check_sides(index, a, b)?;
                    (a.iter().chain(b).copied().collect(), vec![])
                }
                Fault::Rate(r) => {
                    RATE.check(index, *r)?;
                    (vec![], vec![])
                }
                Fault::Heal => (vec![], vec![]),
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
                    +2ms skew n4 150%; +7ms rate 200/s; +4ms split n1+n5|n2+n3+n4; +5ms heal; \
                    +6ms kill n2";
        let s: Schedule = line.parse().unwrap();
        assert_eq!(s.steps.len(), 12);
        assert_eq!(s.steps[11].fault, Fault::Kill(NodeId(2)));
        assert_eq!(
            s.steps[9].fault,
            Fault::Split(
                vec![NodeId(1), NodeId(5)],
                vec![NodeId(2), NodeId(3), NodeId(4)]
            )
        );
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
            "+1ms delay n1 120ms",
            "+1ms rate fast",
            "+1ms split n1+n2",
            "+1ms split n1|",
            "+1ms split n1+|n2",
            "+1ms split n1|denver",
            "+1ms delay n1 n2 18446744073709551616ms",
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
    fn numbers_out_of_range_are_typed_errors_not_overflows() {
        let range = |line: &str| match line.parse::<Schedule>() {
            Err(ScheduleError::OutOfRange { what, value, .. }) => Some((what, value)),
            _ => None,
        };
        assert_eq!(
            range("seed=1; +18446744073709551615ms heal"),
            Some(("wait ms", u64::MAX))
        );
        assert_eq!(
            range("seed=1; +86400001ms heal"),
            Some(("wait ms", MAX_WAIT_MS + 1))
        );
        assert_eq!(
            range("seed=1; +0ms delay n1 n2 18446744073709551615ms"),
            Some(("delay ms", u64::MAX))
        );
        assert_eq!(range("seed=1; +1ms loss n1 n2 101%"), Some(("loss %", 101)));
        assert_eq!(range("seed=1; +1ms skew n1 5%"), Some(("skew %", 5)));
        assert_eq!(range("seed=1; +1ms skew n1 1001%"), Some(("skew %", 1001)));
        assert_eq!(range("seed=1; +1ms rate 0/s"), Some(("rate /s", 0)));
        assert_eq!(
            range("seed=1; +1ms rate 10001/s"),
            Some(("rate /s", 10_001))
        );
        // A wait that does not fit a u64 at all does not read.
        assert!(matches!(
            "seed=1; +18446744073709551616ms heal".parse::<Schedule>(),
            Err(ScheduleError::BadStep { index: 1, .. })
        ));
        let edges = "seed=1; +86400000ms delay n1 n2 60000ms; +0ms loss n1 n2 100%; \
                     +0ms skew n1 10%; +0ms skew n1 1000%; +0ms rate 1/s; +0ms rate 10000/s";
        let s: Schedule = edges.parse().unwrap();
        assert_eq!(s.to_string().parse::<Schedule>(), Ok(s));
    }

    #[test]
    fn validate_enforces_the_parser_ranges() {
        let t = crate::topology::denver_paris().build().unwrap();
        let one = |after_ms, fault| Schedule {
            seed: 1,
            steps: vec![Step { after_ms, fault }],
        };
        let what = |s: Schedule| match s.validate(&t) {
            Err(ScheduleError::OutOfRange { index: 1, what, .. }) => Some(what),
            _ => None,
        };
        assert_eq!(what(one(u64::MAX, Fault::Heal)), Some("wait ms"));
        assert_eq!(
            what(one(0, Fault::Delay(NodeId(1), NodeId(2), u64::MAX))),
            Some("delay ms")
        );
        assert_eq!(
            what(one(0, Fault::Loss(NodeId(1), NodeId(2), 101))),
            Some("loss %")
        );
        assert_eq!(what(one(0, Fault::Skew(NodeId(1), 5))), Some("skew %"));
        assert_eq!(what(one(0, Fault::Rate(0))), Some("rate /s"));
        // What validate accepts prints a line that reads back.
        let ok = one(MAX_WAIT_MS, Fault::Skew(NodeId(1), 1000));
        assert_eq!(ok.validate(&t), Ok(()));
        assert_eq!(ok.to_string().parse::<Schedule>(), Ok(ok));
        // A run refuses it before simulating anything.
        let huge = one(u64::MAX, Fault::Heal);
        assert!(matches!(
            huge.run(
                crate::topology::denver_paris().build().unwrap().shared(),
                &RunOptions::default()
            ),
            Err(ScheduleError::OutOfRange { .. })
        ));
    }

    #[test]
    fn splits_must_name_members_on_two_disjoint_sides() {
        let t = crate::topology::denver_paris().build().unwrap();
        let split = |a: &[u64], b: &[u64]| {
            Schedule {
                seed: 1,
                steps: vec![Step {
                    after_ms: 0,
                    fault: Fault::Split(
                        a.iter().copied().map(NodeId).collect(),
                        b.iter().copied().map(NodeId).collect(),
                    ),
                }],
            }
            .validate(&t)
        };
        assert_eq!(split(&[1, 5], &[2, 3, 4]), Ok(()));
        assert_eq!(
            split(&[1, 9], &[2]),
            Err(ScheduleError::UnknownNode {
                index: 1,
                node: NodeId(9)
            })
        );
        assert_eq!(
            split(&[1, 2], &[2, 3]),
            Err(ScheduleError::OnBothSides {
                index: 1,
                name: "n2".into()
            })
        );
        assert_eq!(split(&[], &[2]), Err(ScheduleError::EmptySide { index: 1 }));
        let both: Schedule = "seed=1; +0ms partition denver|paris+denver"
            .parse()
            .unwrap();
        assert!(matches!(
            both.validate(&t),
            Err(ScheduleError::OnBothSides { .. })
        ));
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
