//! Rendering the survivability report as an aligned table.

use std::fmt;

use super::SurvivabilityReport;
use crate::policy::{HandBackPolicy, QuorumMode};

impl fmt::Display for SurvivabilityReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = match self.mode {
            QuorumMode::Witness => "witness mode",
            QuorumMode::MainSite => "main-site mode",
            QuorumMode::DrAutoSync => "DR auto-sync mode",
        };
        writeln!(
            f,
            "Survivability ({mode}: {} voters, majority {}; LAN RTT {} ms, WAN RTT {} ms)",
            self.voters,
            self.voters / 2 + 1,
            self.latency.lan_rtt.as_millis(),
            self.latency.wan_rtt.as_millis()
        )?;
        let pairs = self.latency.pairs();
        if !pairs.is_empty() {
            writeln!(f, "WAN between sites: {}", pairs.join(", "))?;
        }
        let header = [
            "failure",
            "down",
            "cut off",
            "leader afterwards",
            "how",
            "committed data",
            "takeover",
        ];
        let rows: Vec<[String; 7]> = self
            .scenarios
            .iter()
            .map(|s| {
                let mut leader = match (s.leader, &s.leader_site) {
                    (Some(l), Some(site)) => format!("{} ({site})", self.names(&[l])),
                    _ => "none".to_string(),
                };
                if let Some(e) = s.epoch_leader {
                    leader.push_str(&format!(" + {} (new epoch)", self.names(&[e])));
                }
                let dash = |v: String| if v.is_empty() { "-".to_string() } else { v };
                [
                    s.failure.to_string(),
                    dash(self.names(&s.down)),
                    dash(self.names(&s.cut_off)),
                    leader,
                    s.how.to_string(),
                    s.committed.to_string(),
                    s.takeover
                        .map_or("-".to_string(), |d| format!("{} ms", d.as_millis())),
                ]
            })
            .collect();
        let mut widths = header.map(str::len);
        for r in &rows {
            for (w, cell) in widths.iter_mut().zip(r) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |f: &mut fmt::Formatter<'_>, cells: &[&str]| -> fmt::Result {
            let last = cells.len() - 1;
            for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
                if i == last {
                    writeln!(f, "{cell}")?;
                } else {
                    write!(f, "{cell:<w$}  ")?;
                }
            }
            Ok(())
        };
        line(f, &header)?;
        let rule: Vec<String> = widths.iter().map(|&w| "-".repeat(w)).collect();
        line(f, &rule.iter().map(String::as_str).collect::<Vec<_>>())?;
        for r in &rows {
            line(f, &r.iter().map(String::as_str).collect::<Vec<_>>())?;
        }
        let back = match &self.hand_back {
            HandBackPolicy::Immediate => "as soon as it is caught up".to_string(),
            HandBackPolicy::AfterStable(d) => {
                format!("once caught up and reachable for {} ms", d.as_millis())
            }
            HandBackPolicy::Window { start, end } => {
                format!("once caught up, between {start} and {end} UTC")
            }
            HandBackPolicy::Manual => "when an operator calls Node::hand_back".to_string(),
        };
        write!(
            f,
            "Takeover: from the failure to the first commit under the new leader. \
             Leadership returns to the main site {back}."
        )
    }
}
