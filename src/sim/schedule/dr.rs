//! DR auto-sync schedules: a [`Schedule`] of the faults that matter to
//! the two sites (WAN cuts and heals, the loss and return of a site,
//! member crashes, process kills, restarts and isolations) over an uneven WAN, one
//! latency per direction. Printed on one line (`wan=40ms/120ms; seed=…;
//! +…`) and parsed back, generated from bytes (fuzzer or quickcheck), and
//! played by [`DrSchedule::run`] under the invariant checker, which in
//! this mode also holds every proven takeover to the proposals
//! acknowledged at RPO 0 ([`Sim::check_rpo_zero_kept`](crate::sim::Sim::check_rpo_zero_kept)).
//!
//! ```
//! use survivable_core::sim::DrSchedule;
//! let s: DrSchedule = "wan=30ms/120ms; seed=7; +1500ms partition denver|paris; +5000ms heal"
//!     .parse()
//!     .unwrap();
//! assert_eq!((s.main_to_other_ms, s.other_to_main_ms), (30, 120));
//! assert_eq!(s.to_string().parse::<DrSchedule>().unwrap(), s);
//! ```

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use arbitrary::Unstructured;

use super::{Fault, RunOptions, RunReport, Schedule, ScheduleError, Step};
use crate::topology::{Latency, NodeId, Topology};

/// The one-way WAN latencies a generated schedule uses, per direction, in
/// ms: round trips of 10 to 300 ms, uneven.
pub const DR_ONE_WAY_MS: std::ops::RangeInclusive<u64> = 5..=150;
/// At most this many faults per generated schedule.
const MAX_STEPS: usize = 8;
/// At most this long between two generated faults, in ms.
const MAX_WAIT_MS: u64 = 3_000;

/// A DR schedule: the WAN's one-way latency each way between the main
/// site and the other site, and the faults: WAN cuts and heals, a site
/// lost and back, member crashes, process kills, restarts and isolations.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct DrSchedule {
    /// One-way latency from the main site to the other site, in ms.
    pub main_to_other_ms: u64,
    /// One-way latency from the other site to the main site, in ms.
    pub other_to_main_ms: u64,
    /// The faults, and the simulator's seed.
    pub schedule: Schedule,
}

impl fmt::Display for DrSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "wan={}ms/{}ms; {}",
            self.main_to_other_ms, self.other_to_main_ms, self.schedule
        )
    }
}

/// `Debug` prints the replayable line, as [`Schedule`]'s does.
impl fmt::Debug for DrSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for DrSchedule {
    type Err = ScheduleError;

    /// `wan=<ms>ms/<ms>ms; ` then a [`Schedule`] line.
    fn from_str(s: &str) -> Result<Self, ScheduleError> {
        let bad = || ScheduleError::BadLatency(s.chars().take(40).collect());
        let (head, rest) = s.split_once(';').ok_or_else(bad)?;
        let (a, b) = head
            .trim()
            .strip_prefix("wan=")
            .and_then(|w| w.split_once('/'))
            .ok_or_else(bad)?;
        let ms = |v: &str| {
            let v: u64 = v.trim().strip_suffix("ms")?.parse().ok()?;
            (v <= super::MAX_RTT_MS).then_some(v)
        };
        Ok(Self {
            main_to_other_ms: ms(a).ok_or_else(bad)?,
            other_to_main_ms: ms(b).ok_or_else(bad)?,
            schedule: rest.parse()?,
        })
    }
}

/// The other site of a two-site topology (the first site that is not the
/// main one; the main site itself if there is none).
fn other_site(t: &Topology) -> String {
    let main = t.main_site();
    t.sites()
        .iter()
        .map(|s| s.name.clone())
        .find(|s| s != main)
        .unwrap_or_else(|| main.to_string())
}

/// One generated fault: WAN cuts and heals most, then site losses and
/// member crashes (silent, or a process killed on a live host).
fn dr_fault(
    u: &mut Unstructured<'_>,
    main: &str,
    other: &str,
    nodes: &[NodeId],
) -> arbitrary::Result<Fault> {
    let n = nodes[u.choose_index(nodes.len())?];
    Ok(match u.int_in_range(0..=12u8)? {
        0..=2 => Fault::Partition(vec![main.into()], vec![other.into()]),
        3 | 4 => Fault::Heal,
        5 => Fault::CrashSite(main.into()),
        6 => Fault::RestartSite(main.into()),
        7 => Fault::CrashSite(other.into()),
        8 => Fault::RestartSite(other.into()),
        9 => Fault::Crash(n),
        10 => Fault::Kill(n),
        11 => Fault::Restart(n),
        _ => Fault::Isolate(n),
    })
}

impl DrSchedule {
    /// A DR schedule from bytes, naming only `topology`'s members and its
    /// main and other site. Any bytes give one (short input, a short one).
    ///
    /// # Errors
    /// Only what [`Unstructured`] reports for malformed use.
    pub fn arbitrary_for(u: &mut Unstructured<'_>, topology: &Topology) -> arbitrary::Result<Self> {
        let main_to_other_ms = u.int_in_range(DR_ONE_WAY_MS)?;
        let other_to_main_ms = u.int_in_range(DR_ONE_WAY_MS)?;
        let seed = u.arbitrary()?;
        let (main, other) = (topology.main_site().to_string(), other_site(topology));
        let nodes: Vec<NodeId> = topology.members().keys().copied().collect();
        let mut steps = Vec::new();
        for _ in 0..u.int_in_range(0..=MAX_STEPS)? {
            let after_ms = u.int_in_range(0..=MAX_WAIT_MS)?;
            let fault = dr_fault(u, &main, &other, &nodes)?;
            steps.push(Step { after_ms, fault });
        }
        Ok(Self {
            main_to_other_ms,
            other_to_main_ms,
            schedule: Schedule { seed, steps },
        })
    }

    /// `opts` with this schedule's WAN: `opts.latency`'s LAN, and the two
    /// one-way latencies between the main and the other site.
    pub fn options(&self, topology: &Topology, opts: &RunOptions) -> RunOptions {
        let (main, other) = (topology.main_site().to_string(), other_site(topology));
        let ms = Duration::from_millis;
        let latency = Latency::new(
            opts.latency.lan_rtt,
            ms(self.main_to_other_ms + self.other_to_main_ms),
        )
        .with_link_latency(&main, &other, ms(self.main_to_other_ms))
        .with_link_latency(&other, &main, ms(self.other_to_main_ms));
        RunOptions {
            latency,
            ..opts.clone()
        }
    }

    /// Plays the schedule ([`Schedule::run`]) over this WAN.
    ///
    /// # Errors
    /// [`ScheduleError`] when the schedule does not validate against the
    /// topology, or a latency is above [`MAX_RTT_MS`](super::MAX_RTT_MS).
    pub fn run(
        &self,
        topology: Arc<Topology>,
        opts: &RunOptions,
    ) -> Result<RunReport, ScheduleError> {
        let too_slow = self.main_to_other_ms.max(self.other_to_main_ms);
        if too_slow > super::MAX_RTT_MS {
            return Err(ScheduleError::BadLatency(format!("{too_slow}ms")));
        }
        let opts = self.options(&topology, opts);
        self.schedule.run(topology, &opts)
    }

    /// Shrinks the faults (as [`Schedule`]'s quickcheck shrinking does),
    /// then each latency toward 40 ms.
    pub fn shrunk(&self) -> Vec<Self> {
        let mut out: Vec<Self> = quickcheck::Arbitrary::shrink(&self.schedule)
            .map(|schedule| Self {
                schedule,
                ..self.clone()
            })
            .collect();
        let toward = |v: u64| match v.cmp(&40) {
            std::cmp::Ordering::Equal => None,
            std::cmp::Ordering::Greater => Some(40 + (v - 40) / 2),
            std::cmp::Ordering::Less => Some(40 - (40 - v) / 2),
        };
        if let Some(v) = toward(self.main_to_other_ms) {
            out.push(Self {
                main_to_other_ms: v,
                ..self.clone()
            });
        }
        if let Some(v) = toward(self.other_to_main_ms) {
            out.push(Self {
                other_to_main_ms: v,
                ..self.clone()
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_print_and_parse_back_and_bad_heads_are_typed() {
        let s: DrSchedule = "wan=5ms/150ms; seed=3; +10ms crash-site denver"
            .parse()
            .unwrap();
        assert_eq!(s.schedule.steps.len(), 1);
        assert_eq!(s.to_string().parse::<DrSchedule>(), Ok(s));
        for bad in [
            "seed=3",
            "wan=5/150ms; seed=3",
            "wan=5ms-150ms; seed=3",
            "wan=99999999ms/1ms; seed=1",
        ] {
            assert!(
                matches!(bad.parse::<DrSchedule>(), Err(ScheduleError::BadLatency(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            "wan=5ms/5ms; seed=x".parse::<DrSchedule>(),
            Err(ScheduleError::BadSeed(_))
        ));
    }

    #[test]
    fn generated_schedules_validate_and_stay_in_range() {
        let t = crate::topology::denver_paris_dr().build().unwrap();
        for k in 0..64u8 {
            let bytes: Vec<u8> = (0..200u16)
                .map(|i| (i as u8).wrapping_mul(31).wrapping_add(k))
                .collect();
            let s = DrSchedule::arbitrary_for(&mut Unstructured::new(&bytes), &t).unwrap();
            assert!(DR_ONE_WAY_MS.contains(&s.main_to_other_ms));
            assert!(DR_ONE_WAY_MS.contains(&s.other_to_main_ms));
            assert_eq!(s.schedule.validate(&t), Ok(()));
            assert_eq!(s.to_string().parse::<DrSchedule>(), Ok(s.clone()));
            let o = s.options(&t, &RunOptions::default());
            assert_eq!(
                o.latency.one_way("denver", "paris"),
                Duration::from_millis(s.main_to_other_ms)
            );
            assert_eq!(
                o.latency.one_way("paris", "denver"),
                Duration::from_millis(s.other_to_main_ms)
            );
        }
    }
}
