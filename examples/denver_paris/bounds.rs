//! The bounds the example enforces, each derived from what its path
//! physically needs: the detection time the timers set, each round trip
//! the path crosses (per pair of sites, so an uneven layout gets its own
//! bounds), and the ticks on which timers fire.
//!
//! Takeovers are checked against the survivability report's row for the
//! failure: the report models the path (detection, the election round to
//! the farthest voter the candidate needs, the first commit's round) with
//! the run's latencies, and the scenario tests check every row against the
//! simulator. Its times are nominal; the simulator's may be later by one
//! tick (a timer fires on the first tick after it is due) and by the
//! link jitter of each one-way trip on the path (at most 200 µs each, a
//! few trips: 1 ms covers them).

use std::time::Duration;

use survivable_core::sim::Sim;
use survivable_core::topology::{Failure, Latency, SurvivabilityReport};

use crate::{Args, CallTable};

/// Jitter allowance: the simulator adds up to 200 µs to each one-way
/// trip; a takeover crosses at most five of them.
const JITTER_MS: u64 = 1;

/// The run's latencies: 1 ms LAN, `--wan-rtt-ms` between sites, and the
/// `--site-rtt` overrides.
pub(crate) fn latency(args: &Args) -> Latency {
    let mut l = Latency::new(
        Duration::from_millis(1),
        Duration::from_millis(args.wan_rtt_ms),
    );
    for (a, b, ms) in &args.site_rtt {
        l = l.with_site_rtt(a, b, Duration::from_millis(*ms));
    }
    l
}

/// Bounds for one run of a mode.
pub(crate) struct Bounds {
    report: SurvivabilityReport,
    latency: Latency,
    tick_ms: u64,
}

impl Bounds {
    pub(crate) fn new(sim: &Sim<CallTable>, args: &Args) -> Self {
        let latency = latency(args);
        Self {
            report: sim.topology().survivability_with(latency.clone()),
            latency,
            tick_ms: sim.topology().ticks().tick_ms,
        }
    }

    /// Round trip between members of sites `a` and `b`, in ms.
    pub(crate) fn rtt_ms(&self, a: &str, b: &str) -> u64 {
        self.latency.rtt(a, b).as_millis() as u64
    }

    /// A takeover after `failure`: the report's figure plus one tick and
    /// the jitter allowance. `None` when the report has no takeover time
    /// for it (no row, or nothing moves).
    pub(crate) fn takeover_ms(&self, failure: &Failure) -> Option<u64> {
        let row = self.report.scenario(failure)?;
        row.takeover
            .map(|d| d.as_millis() as u64 + self.tick_ms + JITTER_MS)
    }

    /// The longest gap between acknowledgements while control moves from
    /// a leader in site `from` to a member of site `to` (a hand-back),
    /// measured with a probe proposed at every tick at each site.
    ///
    /// The old leader stops taking proposals when it starts the transfer;
    /// the target learns it should campaign half a round trip later, wins
    /// its votes one round trip to its nearest remote voter after that, and
    /// commits one more such round trip later: 2.5 round trips after the
    /// attempt. The probes the old leader appended just before the attempt
    /// still commit for at least half a round trip after it (its nearest
    /// remote voter is at least that far), which takes half a round trip
    /// off the gap: 2 round trips (the farther of the two pairs involved),
    /// plus a LAN round trip on each side (the proposer's hop to its leader
    /// and the leader's own pair), plus two ticks (the probe spacing, and
    /// the tick on which the transfer is decided), plus jitter.
    pub(crate) fn hand_back_outage_ms(&self, from: &str, to: &str) -> u64 {
        let nearest_remote = |site: &str| {
            self.report_sites()
                .into_iter()
                .filter(|s| s != site)
                .map(|s| self.rtt_ms(site, &s))
                .min()
                .unwrap_or(0)
        };
        let wan = self
            .rtt_ms(from, to)
            .max(nearest_remote(to))
            .max(nearest_remote(from));
        2 * wan + 2 * self.rtt_ms(to, to) + 2 * self.tick_ms + JITTER_MS
    }

    fn report_sites(&self) -> Vec<String> {
        let mut sites: Vec<String> = Vec::new();
        for row in &self.report.scenarios {
            if let Failure::Site { site } = &row.failure {
                sites.push(site.clone());
            }
        }
        sites
    }
}
