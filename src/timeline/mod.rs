//! A picture of who led when: an SVG timeline of a cluster's run.
//!
//! One lane per member, grouped by site (the main site first, as the
//! [`Topology`] lists the sites; in a site the main core, then the
//! survivable cores by rank, then witnesses), each lane coloured over time
//! by the member's [`LaneState`]: leader, follower, learner, down or cut
//! off. On top of the lanes: the faults (crash, restart, cut, heal: a red
//! line across the lanes they hit), the takeovers, pair failovers and
//! hand-backs (a marker and its label), and the write outages (shaded
//! spans when no leader accepted writes). Under the lanes, a small line
//! chart of the calls (or any count of the application's) active over
//! time; under it, the time axis in seconds.
//!
//! The picture is recorded, then rendered: feed a [`Timeline`] what
//! happened, in any order, with the recorder calls ([`role`],
//! [`fault`], [`marker`], [`outage`], [`calls`]) and call [`render`] for
//! the SVG document. A lane is blank before its first state and keeps its
//! last state up to the end of the picture ([`until`], or the latest time
//! recorded). `Timeline::from_sim` (with the `sim` feature) records a
//! whole simulator run: roles from its events, faults from its trace,
//! outages where no running leader reached a majority.
//!
//! ```
//! use survivable_core::timeline::{LaneState, MarkerKind, Timeline};
//! use survivable_core::topology::{denver_paris, NodeId};
//!
//! let topology = denver_paris().build()?;
//! let mut t = Timeline::new(&topology);
//! for id in topology.members().keys() {
//!     t.role(0, *id, LaneState::Follower)?;
//! }
//! t.role(300, NodeId(1), LaneState::Leader)?;
//! t.fault(5_000, "crash CM01a", &[NodeId(1)])?;
//! t.role(5_000, NodeId(1), LaneState::Down)?;
//! t.role(5_190, NodeId(2), LaneState::Leader)?;
//! t.marker(5_190, MarkerKind::Failover, "CM01b takes over");
//! t.outage(5_000, 5_190)?;
//! t.calls(5_000, 42);
//! t.until(8_000)?;
//! let svg = t.render();
//! assert!(svg.starts_with("<svg"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [`role`]: Timeline::role
//! [`fault`]: Timeline::fault
//! [`marker`]: Timeline::marker
//! [`outage`]: Timeline::outage
//! [`calls`]: Timeline::calls
//! [`render`]: Timeline::render
//! [`until`]: Timeline::until

mod layout;
mod render;
#[cfg(feature = "sim")]
mod sim;

use std::collections::BTreeMap;
use std::fmt;

pub use layout::{label_rows, nice_step, Layout, LABEL_ROWS};

use crate::topology::{NodeId, Topology};

/// What a member is at a moment, as its lane shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LaneState {
    /// It leads (accepts writes, if not cut off from a majority).
    Leader,
    /// It runs and follows a leader (or waits for one) as a voter.
    Follower,
    /// It runs and replicates without a vote (a raft learner: the
    /// survivable cores in main-site mode, a member catching up).
    Learner,
    /// It is not running (crashed, killed, not yet restarted).
    Down,
    /// It runs but cannot reach a majority of the members (partitioned or
    /// paused), and does not lead.
    CutOff,
}

impl LaneState {
    /// Every state, in the order the legend shows them.
    pub const ALL: [Self; 5] = [
        Self::Leader,
        Self::Follower,
        Self::Learner,
        Self::CutOff,
        Self::Down,
    ];

    /// The lane's fill colour for this state, as `#rrggbb`.
    pub fn colour(self) -> &'static str {
        match self {
            Self::Leader => "#1a9641",
            Self::Follower => "#92c5de",
            Self::Learner => "#c2a5cf",
            Self::Down => "#404040",
            Self::CutOff => "#fdae61",
        }
    }

    /// The colour as red, green and blue bytes (for checking a rendering).
    pub fn rgb(self) -> [u8; 3] {
        hex_rgb(self.colour())
    }
}

impl fmt::Display for LaneState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Leader => "leader",
            Self::Follower => "follower",
            Self::Learner => "learner",
            Self::Down => "down",
            Self::CutOff => "cut off",
        })
    }
}

/// A `#rrggbb` colour as bytes (black for anything else).
fn hex_rgb(hex: &str) -> [u8; 3] {
    let byte = |i: usize| {
        hex.get(1 + 2 * i..3 + 2 * i)
            .and_then(|h| u8::from_str_radix(h, 16).ok())
            .unwrap_or(0)
    };
    [byte(0), byte(1), byte(2)]
}

/// What a [`marker`](Timeline::marker) marks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum MarkerKind {
    /// The standby of a duplicated pair took over from its primary.
    Failover,
    /// A survivable core took over (or activated an epoch of its own).
    Takeover,
    /// Leadership went back to the main site.
    HandBack,
    /// Anything else worth a label (a reconciliation, a witness leading as
    /// the last resort).
    Note,
}

impl MarkerKind {
    /// The marker's colour, as `#rrggbb`.
    pub fn colour(self) -> &'static str {
        match self {
            Self::Failover => "#2b83ba",
            Self::Takeover => "#7b3294",
            Self::HandBack => "#008837",
            Self::Note => "#636363",
        }
    }

    /// The colour as red, green and blue bytes.
    pub fn rgb(self) -> [u8; 3] {
        hex_rgb(self.colour())
    }
}

/// The colour of a fault's line, as `#rrggbb`.
pub const FAULT_COLOUR: &str = "#d7191c";
/// The colour of a write outage's shading, as `#rrggbb` (drawn at
/// [`OUTAGE_OPACITY`]).
pub const OUTAGE_COLOUR: &str = "#d7191c";
/// The opacity of a write outage's shading.
pub const OUTAGE_OPACITY: f64 = 0.18;
/// The colour of the calls line chart, as `#rrggbb`.
pub const CALLS_COLOUR: &str = "#2c7bb6";

/// A recorder input the timeline cannot draw.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TimelineError {
    /// The member is not in the topology the timeline was made for.
    #[error("member {0} is not in the topology: the timeline has a lane only for the topology's members (record roles of those, or make the timeline from the topology that has it)")]
    UnknownMember(NodeId),
    /// A span ends before it starts.
    #[error("the span {from_ms}..{to_ms} ms ends before it starts: give the earlier time first")]
    Backwards {
        /// Its start (ms).
        from_ms: u64,
        /// Its end (ms).
        to_ms: u64,
    },
}

/// A fault: when, what, and the members it hit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FaultMark {
    pub(crate) t_ms: u64,
    pub(crate) label: String,
    pub(crate) members: Vec<NodeId>,
}

/// A marker: when, what kind, its label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mark {
    pub(crate) t_ms: u64,
    pub(crate) kind: MarkerKind,
    pub(crate) label: String,
}

/// A lane: a member, its name, its site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Lane {
    pub(crate) id: NodeId,
    pub(crate) name: String,
    pub(crate) site: String,
}

/// A recorded run, rendered as an SVG timeline. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct Timeline {
    title: String,
    width: u32,
    lanes: Vec<Lane>,
    /// Per member: (time, sequence, state), the sequence keeping the
    /// recording order among equal times.
    states: BTreeMap<NodeId, Vec<(u64, u64, LaneState)>>,
    faults: Vec<FaultMark>,
    marks: Vec<Mark>,
    outages: Vec<(u64, u64)>,
    calls: Vec<(u64, u64)>,
    until_ms: Option<u64>,
    seq: u64,
}

/// The default width of the picture, in pixels.
pub const DEFAULT_WIDTH: u32 = 1200;

impl Timeline {
    /// An empty timeline with a lane for each member of `topology`.
    pub fn new(topology: &Topology) -> Self {
        let mut lanes = Vec::new();
        for site in topology.sites() {
            let mut here: Vec<_> = topology
                .members()
                .values()
                .filter(|m| m.site == site.name)
                .collect();
            here.sort_by_key(|m| (m.preference(), m.position(), m.id()));
            lanes.extend(here.into_iter().map(|m| Lane {
                id: m.id(),
                name: m.spec.name.clone(),
                site: site.name.clone(),
            }));
        }
        Self {
            title: String::new(),
            width: DEFAULT_WIDTH,
            lanes,
            states: BTreeMap::new(),
            faults: Vec::new(),
            marks: Vec::new(),
            outages: Vec::new(),
            calls: Vec::new(),
            until_ms: None,
            seq: 0,
        }
    }

    /// Adds a lane for a member the topology does not name (one that
    /// joined later), after the last lane of its site (or at the bottom).
    #[cfg(feature = "sim")]
    pub(crate) fn add_lane(&mut self, member: &crate::topology::Member) {
        let at = (self.lanes.iter())
            .rposition(|l| l.site == member.site)
            .map_or(self.lanes.len(), |i| i + 1);
        self.lanes.insert(
            at,
            Lane {
                id: member.id(),
                name: member.spec.name.clone(),
                site: member.site.clone(),
            },
        );
    }

    /// Sets the title printed above the lanes (none by default).
    pub fn title(&mut self, title: impl Into<String>) -> &mut Self {
        self.title = title.into();
        self
    }

    /// Sets the picture's width in pixels ([`DEFAULT_WIDTH`] by default;
    /// at least 400, so the labels fit).
    pub fn width(&mut self, px: u32) -> &mut Self {
        self.width = px.max(400);
        self
    }

    fn known(&self, id: NodeId) -> Result<(), TimelineError> {
        if self.lanes.iter().any(|l| l.id == id) {
            Ok(())
        } else {
            Err(TimelineError::UnknownMember(id))
        }
    }

    /// From `t_ms` on, member `id` is in `state` (until its next state).
    /// At equal times the later call wins.
    ///
    /// # Errors
    /// [`TimelineError::UnknownMember`] if `id` has no lane.
    pub fn role(&mut self, t_ms: u64, id: NodeId, state: LaneState) -> Result<(), TimelineError> {
        self.known(id)?;
        self.seq += 1;
        self.states
            .entry(id)
            .or_default()
            .push((t_ms, self.seq, state));
        Ok(())
    }

    /// A fault at `t_ms` (a crash, a restart, a cut, a heal: `label` says
    /// which) that hit `members` (a red line across their lanes; none: a
    /// line across every lane).
    ///
    /// # Errors
    /// [`TimelineError::UnknownMember`] if a member has no lane; nothing is
    /// recorded then.
    pub fn fault(
        &mut self,
        t_ms: u64,
        label: impl Into<String>,
        members: &[NodeId],
    ) -> Result<(), TimelineError> {
        for &id in members {
            self.known(id)?;
        }
        self.faults.push(FaultMark {
            t_ms,
            label: label.into(),
            members: members.to_vec(),
        });
        Ok(())
    }

    /// A takeover, failover, hand-back or note at `t_ms`, with its label.
    pub fn marker(&mut self, t_ms: u64, kind: MarkerKind, label: impl Into<String>) {
        self.marks.push(Mark {
            t_ms,
            kind,
            label: label.into(),
        });
    }

    /// A write outage: no leader accepted writes from `from_ms` to `to_ms`.
    ///
    /// # Errors
    /// [`TimelineError::Backwards`] if `to_ms < from_ms`.
    pub fn outage(&mut self, from_ms: u64, to_ms: u64) -> Result<(), TimelineError> {
        if to_ms < from_ms {
            return Err(TimelineError::Backwards { from_ms, to_ms });
        }
        self.outages.push((from_ms, to_ms));
        Ok(())
    }

    /// From `t_ms` on, `active` calls are up (the line chart under the
    /// lanes; until the next sample).
    pub fn calls(&mut self, t_ms: u64, active: u64) {
        self.calls.push((t_ms, active));
    }

    /// The picture ends at `t_ms`: every lane keeps its last state up to
    /// it. Without it, the picture ends at the latest time recorded.
    ///
    /// # Errors
    /// [`TimelineError::Backwards`] if something was recorded after `t_ms`.
    pub fn until(&mut self, t_ms: u64) -> Result<(), TimelineError> {
        let latest = self.latest_ms();
        if latest > t_ms {
            return Err(TimelineError::Backwards {
                from_ms: latest,
                to_ms: t_ms,
            });
        }
        self.until_ms = Some(t_ms);
        Ok(())
    }

    /// Every time recorded (ms): states, faults, markers, both ends of
    /// each outage, call counts.
    fn times(&self) -> impl Iterator<Item = u64> + '_ {
        let states = self.states.values().flatten().map(|s| s.0);
        let faults = self.faults.iter().map(|f| f.t_ms);
        let marks = self.marks.iter().map(|m| m.t_ms);
        let outages = self.outages.iter().flat_map(|o| [o.0, o.1]);
        let calls = self.calls.iter().map(|c| c.0);
        states
            .chain(faults)
            .chain(marks)
            .chain(outages)
            .chain(calls)
    }

    /// The latest time recorded (ms).
    fn latest_ms(&self) -> u64 {
        self.times().max().unwrap_or(0)
    }

    /// The member ids, lane by lane, top to bottom.
    pub fn lanes(&self) -> Vec<NodeId> {
        self.lanes.iter().map(|l| l.id).collect()
    }

    /// Member `id`'s lane as spans: (from ms, to ms, state), in time
    /// order, adjacent spans of one state merged, the last one ending at
    /// the end of the picture. Empty for a member with no state recorded
    /// (or no lane).
    pub fn spans(&self, id: NodeId) -> Vec<(u64, u64, LaneState)> {
        let end = self.end_ms();
        let mut states = self.states.get(&id).cloned().unwrap_or_default();
        states.sort();
        let mut out: Vec<(u64, u64, LaneState)> = Vec::new();
        for (i, &(t, _, state)) in states.iter().enumerate() {
            let to = states.get(i + 1).map_or(end, |n| n.0);
            match out.last_mut() {
                Some(last) if last.2 == state => last.1 = to,
                // A state replaced at the same instant draws nothing.
                Some(last) if last.0 == t => *last = (t, to, state),
                _ => out.push((t, to, state)),
            }
        }
        out.retain(|s| s.1 > s.0 || s.1 == end);
        out
    }

    /// The write outages recorded: (from ms, to ms).
    pub fn outages(&self) -> &[(u64, u64)] {
        &self.outages
    }

    /// Where the picture starts (ms): the earliest time recorded, or 0.
    pub fn start_ms(&self) -> u64 {
        self.times().min().unwrap_or(0)
    }

    /// Where the picture ends (ms): [`until`](Self::until)'s time, or the
    /// latest time recorded; always after [`start_ms`](Self::start_ms).
    pub fn end_ms(&self) -> u64 {
        let end = self.until_ms.unwrap_or_else(|| self.latest_ms());
        end.max(self.start_ms() + 1)
    }

    /// Where everything is drawn: lane rows, the time scale, the chart.
    pub fn layout(&self) -> Layout {
        let sites: Vec<&str> = self.lanes.iter().map(|l| l.site.as_str()).collect();
        Layout::new(
            f64::from(self.width),
            (self.start_ms(), self.end_ms()),
            &sites,
            self.placed_labels().1,
            !self.title.is_empty(),
        )
    }

    /// Every label above the lanes (the faults', then the markers', in
    /// recording order): its extent (start, end x) and its row (`None`:
    /// no room), and the number of rows used.
    pub(crate) fn placed_labels(&self) -> (Vec<(f64, f64)>, usize, Vec<Option<usize>>) {
        // Rows do not move x: a layout without lanes gives the labels' x.
        let scale = Layout::new(
            f64::from(self.width),
            (self.start_ms(), self.end_ms()),
            &[],
            0,
            false,
        );
        let faults = self
            .faults
            .iter()
            .map(|f| (f.t_ms, f.label.chars().count()));
        let marks = self.marks.iter().map(|m| (m.t_ms, m.label.chars().count()));
        let extents: Vec<(f64, f64)> = faults
            .chain(marks)
            .map(|(t, chars)| {
                let (left, right) = (scale.plot_left(), scale.plot_right());
                layout::label_extent(scale.x(t), layout::label_width(chars), left, right)
            })
            .collect();
        let (rows, used) = label_rows(&extents, LABEL_ROWS);
        (extents, used, rows)
    }

    /// The SVG document.
    pub fn render(&self) -> String {
        render::render(self)
    }
}

#[cfg(test)]
mod tests;
