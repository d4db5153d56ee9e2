//! `node cluster --svg FILE`: the run drawn as a timeline
//! (`survivable_core::timeline`): one lane per member, coloured by what
//! the members report and what the launcher did to them.
//!
//! - Roles: from the members' `status` replies, polled every 100 ms
//!   (leader, learner, follower), so a change shows within 100 ms; a
//!   member whose process is not running is down; a running member of a
//!   site the relay cuts off, or a stopped process, is cut off (unless it
//!   leads).
//! - Faults: the launcher's own (the kill, the restart, the cut, the heal).
//! - Markers: the members' leadership and hand-back events, from their
//!   output lines (matched on the event's name in either spelling, so the
//!   line format may change around it).
//! - Write outages: from the first leader on, every span with no leader
//!   that is running and not cut off.
//! - Calls: the calls up, as acknowledged to the workload.

use std::collections::BTreeMap;

use survivable_core::timeline::{LaneState, MarkerKind, Timeline};
use survivable_core::topology::{denver_paris, NodeId};

use super::{Cluster, NAMES};

/// The picture being recorded, and what it last showed.
pub(crate) struct Picture {
    t: Timeline,
    shown: BTreeMap<u64, LaneState>,
    led: bool,
    outage_from: Option<u64>,
}

impl Picture {
    /// An empty picture of the Denver/Paris cluster's five members.
    pub(crate) fn new() -> Result<Self, String> {
        let topology = denver_paris().build().map_err(|e| e.to_string())?;
        let mut t = Timeline::new(&topology);
        t.title("node cluster: five processes on 127.0.0.1, who led when");
        Ok(Self {
            t,
            shown: BTreeMap::new(),
            led: false,
            outage_from: None,
        })
    }
}

/// Member `id`'s name.
fn name(id: u64) -> &'static str {
    NAMES.iter().find(|n| n.0 == id).map_or("?", |n| n.1)
}

/// The marker for an event line of member `id`, if it is one worth one:
/// the event's name is matched without case, underscores or spaces, so
/// both `BecameLeader { .. cause: PairFailover .. }` and
/// `{"type":"became_leader",.."cause":{"type":"pair_failover"..` match.
fn marker(id: u64, line: &str) -> Option<(MarkerKind, String)> {
    let flat: String = line
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    if !flat.contains("event") {
        return None;
    }
    let who = name(id);
    if flat.contains("becameleader") {
        if flat.contains("pairfailover") {
            return Some((
                MarkerKind::Failover,
                format!("{who} takes over (pair failover)"),
            ));
        }
        if flat.contains("takeover") {
            return Some((MarkerKind::Takeover, format!("{who} takes over")));
        }
        if flat.contains("lastresort") {
            return Some((MarkerKind::Note, format!("{who} leads (last resort)")));
        }
        return None;
    }
    if flat.contains("handbackcompleted") {
        return Some((MarkerKind::HandBack, format!("{who} hands control back")));
    }
    if flat.contains("activated") {
        return Some((MarkerKind::Takeover, format!("{who} activates an epoch")));
    }
    None
}

impl Cluster {
    /// Records what changed since the last call: roles, events, outages,
    /// the calls up. Nothing without `--svg`.
    pub(crate) fn sample_timeline(&mut self) {
        let Some(mut p) = self.timeline.take() else {
            return;
        };
        let now = self.now_ms();
        for (at, id, line) in self.tap.as_mut().map(std::mem::take).unwrap_or_default() {
            if let Some((kind, label)) = marker(id, &line) {
                let t = at.saturating_duration_since(self.started).as_millis() as u64;
                p.t.marker(t, kind, label);
            }
        }
        let mut writable = false;
        for (id, ..) in NAMES {
            let leads = self
                .statuses
                .get(&id)
                .is_some_and(|s| s.0.eq_ignore_ascii_case("leader"));
            let state = if !self.runs(id) {
                LaneState::Down
            } else if leads {
                LaneState::Leader
            } else if !self.serving(id) {
                LaneState::CutOff
            } else if self
                .statuses
                .get(&id)
                .is_some_and(|s| s.0.eq_ignore_ascii_case("learner"))
            {
                LaneState::Learner
            } else {
                LaneState::Follower
            };
            writable |= leads && self.serving(id);
            if p.shown.insert(id, state) != Some(state) {
                // Every member of NAMES has a lane.
                let _ = p.t.role(now, NodeId(id), state);
            }
        }
        p.led |= writable;
        match p.outage_from {
            Some(from) if writable => {
                let _ = p.t.outage(from, now);
                p.outage_from = None;
            }
            None if p.led && !writable => p.outage_from = Some(now),
            _ => {}
        }
        p.t.calls(now, self.up.len() as u64);
        self.timeline = Some(p);
    }

    /// Records a fault the launcher caused, hitting `ids` (none: all; one:
    /// its name follows `label`).
    pub(crate) fn timeline_fault(&mut self, label: &str, ids: &[u64]) {
        let now = self.now_ms();
        if let Some(p) = self.timeline.as_mut() {
            let label = match ids {
                [one] => format!("{label} {}", name(*one)),
                _ => label.to_string(),
            };
            let ids: Vec<NodeId> = ids.iter().map(|&i| NodeId(i)).collect();
            let _ = p.t.fault(now, label, &ids);
        }
    }

    /// Writes the picture to `path` (nothing without `--svg`).
    pub(crate) fn write_timeline(&mut self, path: &str) -> Result<(), String> {
        self.sample_timeline();
        let Some(mut p) = self.timeline.take() else {
            return Ok(());
        };
        let now = self.now_ms();
        if let Some(from) = p.outage_from {
            let _ = p.t.outage(from, now);
        }
        let _ = p.t.until(now);
        std::fs::write(path, p.t.render())
            .map_err(|e| format!("cannot write the timeline to {path}: {e}"))?;
        eprintln!("timeline written to {path}");
        Ok(())
    }
}
