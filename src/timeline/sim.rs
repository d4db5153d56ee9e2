//! A simulator run as a timeline: roles from the members' events, faults
//! from the run's trace, write outages from the acknowledged proposals.

use std::collections::{BTreeMap, BTreeSet};

use super::{LaneState, MarkerKind, Timeline};
use crate::events::{Event, LeadershipCause};
use crate::sim::Sim;
use crate::state_machine::StateMachine;
use crate::topology::NodeId;

/// What the trace says happened (one line of [`Sim::trace`]).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Traced {
    /// A member (re)started: its incarnation.
    Start(NodeId, u64),
    /// A member could not start.
    FailedStart(NodeId),
    Crash(NodeId),
    Pause(NodeId),
    Resume(NodeId),
    /// A member's clock skew, the rest of the line (`150%`).
    Skew(NodeId, String),
    Partition(Vec<NodeId>, Vec<NodeId>),
    Heal(Vec<NodeId>, Vec<NodeId>),
    HealAll,
    /// An event line: the next of [`Sim::events`].
    Event,
}

/// A member id as the trace prints it (`n3`, or `3`).
fn node(token: &str) -> Option<NodeId> {
    token
        .strip_prefix('n')
        .unwrap_or(token)
        .parse()
        .ok()
        .map(NodeId)
}

/// The member ids in a printed list (`[n1, n2]`, `[NodeId(1), NodeId(2)]`):
/// every run of digits.
fn ids(list: &str) -> Vec<NodeId> {
    list.split(|c: char| !c.is_ascii_digit())
        .filter_map(|d| d.parse().ok())
        .map(NodeId)
        .collect()
}

/// One trace line: its time (µs) and what it says, if it is one of ours.
fn parse(line: &str) -> Option<(u64, Traced)> {
    let (t, rest) = line.split_once(' ')?;
    let t: u64 = t.parse().ok()?;
    if let Some(sides) = rest.strip_prefix("partition ") {
        let (a, b) = sides.split_once(" | ")?;
        return Some((t, Traced::Partition(ids(a), ids(b))));
    }
    if rest == "heal all" {
        return Some((t, Traced::HealAll));
    }
    if let Some(sides) = rest.strip_prefix("heal ") {
        let (a, b) = sides.split_once(" | ")?;
        return Some((t, Traced::Heal(ids(a), ids(b))));
    }
    let (who, what) = rest.split_once(' ')?;
    let id = node(who)?;
    let verb = what.split(' ').next().unwrap_or("");
    let item = match verb {
        "start" => {
            let n = what.trim_start_matches("start #").parse().unwrap_or(1);
            Traced::Start(id, n)
        }
        "failed" => Traced::FailedStart(id),
        "crash" => Traced::Crash(id),
        "pause" => Traced::Pause(id),
        "resume" => Traced::Resume(id),
        "skew" => Traced::Skew(id, what.trim_start_matches("skew ").to_string()),
        v if v.starts_with('e') => Traced::Event,
        _ => return None,
    };
    Some((t, item))
}

/// One member as the timeline tracks it.
#[derive(Debug, Clone, Copy, Default)]
struct Member {
    up: bool,
    leader: bool,
    learner: bool,
    paused: bool,
}

/// The run so far, member by member, and the links cut.
struct Watch<'a, M> {
    sim: &'a Sim<M>,
    members: BTreeMap<NodeId, Member>,
    blocked: BTreeSet<(NodeId, NodeId)>,
    shown: BTreeMap<NodeId, LaneState>,
    /// Reconciliations already marked: (epoch, index) of the record.
    reconciled: BTreeSet<String>,
    /// Whether a member has led yet (the start-up election is no outage).
    led: bool,
    /// When the write outage going on started.
    outage_from: Option<u64>,
}

impl<M: StateMachine> Watch<'_, M> {
    fn name(&self, id: NodeId) -> String {
        self.sim
            .member(id)
            .map_or_else(|| id.to_string(), |m| m.spec.name.clone())
    }

    /// Names for a group: its sites when it is whole sites, else its members.
    fn group(&self, ids: &[NodeId]) -> String {
        let sites: BTreeSet<&str> = ids.iter().map(|&id| self.sim.site_of(id)).collect();
        let whole = sites
            .iter()
            .all(|s| self.sim.site_members(s).iter().all(|m| ids.contains(m)));
        if whole {
            let order = self.sim.topology().sites().iter().map(|s| s.name.as_str());
            let names: Vec<&str> = order.filter(|s| sites.contains(s)).collect();
            names.join(", ")
        } else {
            let names: Vec<String> = ids.iter().map(|&id| self.name(id)).collect();
            names.join(", ")
        }
    }

    /// Whether a running member reaches no majority of the running
    /// members.
    fn cut_off(&self, id: NodeId) -> bool {
        let running: Vec<NodeId> = (self.members.iter())
            .filter(|(_, m)| m.up)
            .map(|(&o, _)| o)
            .collect();
        let reach = (running.iter())
            .filter(|&&o| o == id || !self.blocked.contains(&(id, o)))
            .count();
        reach * 2 <= running.len()
    }

    /// Whether a leader takes writes: one runs, is not paused and reaches
    /// a majority.
    fn writable(&self) -> bool {
        (self.members.iter()).any(|(&id, m)| m.up && m.leader && !m.paused && !self.cut_off(id))
    }

    fn state(&self, id: NodeId) -> LaneState {
        let m = self.members.get(&id).copied().unwrap_or_default();
        match m {
            Member { up: false, .. } => LaneState::Down,
            Member { leader: true, .. } => LaneState::Leader,
            _ if m.paused || self.cut_off(id) => LaneState::CutOff,
            Member { learner: true, .. } => LaneState::Learner,
            _ => LaneState::Follower,
        }
    }

    /// Records every lane whose state changed at `t_ms`, and the start or
    /// end of a write outage.
    fn refresh(&mut self, t: &mut Timeline, t_ms: u64) {
        let writable = self.writable();
        self.led |= writable;
        match self.outage_from {
            Some(from) if writable => {
                // `from` is never after `t_ms`: the trace is in time order.
                let _ = t.outage(from, t_ms);
                self.outage_from = None;
            }
            None if self.led && !writable => self.outage_from = Some(t_ms),
            _ => {}
        }
        let ids: Vec<NodeId> = self.members.keys().copied().collect();
        for id in ids {
            let now = self.state(id);
            if self.shown.get(&id) != Some(&now) {
                self.shown.insert(id, now);
                // Every member has a lane (see `from_sim`).
                let _ = t.role(t_ms, id, now);
            }
        }
    }

    fn member(&mut self, id: NodeId) -> &mut Member {
        self.members.entry(id).or_default()
    }

    /// Applies a trace line's fault; returns its label and the members hit.
    fn fault(&mut self, item: &Traced) -> Option<(String, Vec<NodeId>)> {
        let one =
            |w: &Self, verb: &str, id: NodeId| Some((format!("{verb} {}", w.name(id)), vec![id]));
        match item {
            Traced::Start(id, n) => {
                // A first start is a learner where the topology says so,
                // or when it joins later (it is not in the topology).
                let topology = self.sim.topology();
                let first = topology.learners().contains(id) || topology.member(*id).is_none();
                let m = self.member(*id);
                *m = Member {
                    up: true,
                    learner: if *n == 1 { first } else { m.learner },
                    ..Member::default()
                };
                (*n > 1).then(|| one(self, "restart", *id)).flatten()
            }
            Traced::FailedStart(id) | Traced::Crash(id) => {
                *self.member(*id) = Member {
                    learner: self.members.get(id).is_some_and(|m| m.learner),
                    ..Member::default()
                };
                one(self, "crash", *id)
            }
            Traced::Pause(id) => {
                self.member(*id).paused = true;
                one(self, "pause", *id)
            }
            Traced::Resume(id) => {
                self.member(*id).paused = false;
                one(self, "resume", *id)
            }
            Traced::Skew(id, pct) => one(self, &format!("skew {pct}"), *id),
            Traced::Partition(a, b) | Traced::Heal(a, b) => {
                let cut = matches!(item, Traced::Partition(..));
                for &x in a {
                    for &y in b {
                        for pair in [(x, y), (y, x)] {
                            if cut {
                                self.blocked.insert(pair);
                            } else {
                                self.blocked.remove(&pair);
                            }
                        }
                    }
                }
                let verb = if cut { "cut" } else { "heal" };
                let label = format!("{verb} {} | {}", self.group(a), self.group(b));
                Some((label, a.iter().chain(b).copied().collect()))
            }
            Traced::HealAll => {
                self.blocked.clear();
                Some(("heal".to_string(), Vec::new()))
            }
            Traced::Event => None,
        }
    }

    /// Applies an event of member `id`; returns a marker for it, if any.
    fn event(&mut self, id: NodeId, e: &Event) -> Option<(MarkerKind, String)> {
        let name = self.name(id);
        match e {
            Event::BecameLeader { cause, .. } => {
                self.member(id).leader = true;
                match cause {
                    LeadershipCause::PairFailover { from } => Some((
                        MarkerKind::Failover,
                        format!("{name} takes over from {}", self.name(*from)),
                    )),
                    LeadershipCause::Takeover { rank } => Some((
                        MarkerKind::Takeover,
                        format!("{name} takes over (rank {rank})"),
                    )),
                    LeadershipCause::LastResort => {
                        Some((MarkerKind::Note, format!("{name} leads (last resort)")))
                    }
                    _ => None,
                }
            }
            Event::SteppedDown { .. } | Event::EpochFenced { .. } => {
                self.member(id).leader = false;
                None
            }
            Event::JoinedEpoch { .. } => {
                let m = self.member(id);
                (m.leader, m.learner) = (false, true);
                None
            }
            Event::Activated { epoch, .. } => {
                let core = self
                    .sim
                    .member(id)
                    .and_then(|m| m.core().map(str::to_string));
                for (other, m) in self.members.iter_mut() {
                    let same = self.sim.member(*other).and_then(|m| m.core());
                    if *other == id || (core.is_some() && same == core.as_deref()) {
                        m.learner = false;
                    }
                }
                Some((MarkerKind::Takeover, format!("{name} activates {epoch}")))
            }
            Event::MemberAdded { id: m } => {
                self.member(*m).learner = true;
                None
            }
            Event::MemberPromoted { id: m } => {
                self.member(*m).learner = false;
                None
            }
            Event::HandBackCompleted { target, .. } => Some((
                MarkerKind::HandBack,
                format!("hand-back to {}", self.name(*target)),
            )),
            Event::HandBackAbandoned { target, .. } => Some((
                MarkerKind::Note,
                format!("hand-back to {} abandoned", self.name(*target)),
            )),
            Event::Reconciled {
                from, epoch, index, ..
            } if self.reconciled.insert(format!("{epoch}@{index}")) => {
                Some((MarkerKind::Note, format!("{from} reconciled")))
            }
            _ => None,
        }
    }
}

impl Timeline {
    /// A simulator run so far, as a timeline (titled with nothing; see
    /// [`title`](Self::title)): a lane per member ever started (members
    /// added later too), coloured from the members' events (leader from
    /// [`Event::BecameLeader`] until it steps down, is fenced or crashes;
    /// learner from the topology's learners, [`Event::MemberAdded`] and
    /// [`Event::JoinedEpoch`], until promoted or activated), faults from
    /// the trace (each crash, restart, pause, cut and heal; a member is
    /// cut off while the cuts leave it no majority of the running
    /// members), a marker per pair failover, takeover, activation,
    /// hand-back and reconciliation, and the write outages: from the first
    /// leader on, every span in which no running leader reached a majority
    /// of the running members (a leader cut off from it commits nothing).
    /// The calls chart is the caller's
    /// ([`calls`](Self::calls)): the simulator does not know what the
    /// state machine counts.
    pub fn from_sim<M: StateMachine>(sim: &Sim<M>) -> Self {
        let mut t = Self::new(sim.topology());
        for id in sim.members() {
            if let Some(m) = sim.member(id).filter(|_| !t.lanes().contains(&id)) {
                t.add_lane(m);
            }
        }
        let mut w = Watch {
            sim,
            members: BTreeMap::new(),
            blocked: BTreeSet::new(),
            shown: BTreeMap::new(),
            reconciled: BTreeSet::new(),
            led: false,
            outage_from: None,
        };
        let mut events = sim.events().iter();
        for line in sim.trace() {
            let Some((t_us, item)) = parse(line) else {
                continue;
            };
            let t_ms = t_us / 1000;
            if item == Traced::Event {
                let Some((_, id, e)) = events.next() else {
                    continue;
                };
                if let Some((kind, label)) = w.event(*id, e) {
                    t.marker(t_ms, kind, label);
                }
            } else if let Some((label, hit)) = w.fault(&item) {
                // Every member hit has a lane (see above).
                let _ = t.fault(t_ms, label, &hit);
            }
            w.refresh(&mut t, t_ms);
        }
        let end = sim.now_ms().max(t.latest_ms());
        if let Some(from) = w.outage_from {
            let _ = t.outage(from, end);
        }
        let _ = t.until(end);
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_lines_parse_in_either_id_format() {
        assert_eq!(parse("12 n3 crash"), Some((12, Traced::Crash(NodeId(3)))));
        assert_eq!(parse("12 3 crash"), Some((12, Traced::Crash(NodeId(3)))));
        assert_eq!(
            parse("0 n1 start #2"),
            Some((0, Traced::Start(NodeId(1), 2)))
        );
        assert_eq!(
            parse("5 partition [NodeId(1), NodeId(2)] | [NodeId(3)]"),
            Some((
                5,
                Traced::Partition(vec![NodeId(1), NodeId(2)], vec![NodeId(3)])
            ))
        );
        assert_eq!(
            parse("5 heal [n1] | [n3, n4]"),
            Some((5, Traced::Heal(vec![NodeId(1)], vec![NodeId(3), NodeId(4)])))
        );
        assert_eq!(parse("9 heal all"), Some((9, Traced::HealAll)));
        assert_eq!(
            parse("9 n2 ee2/n3 t4 SteppedDown"),
            Some((9, Traced::Event))
        );
        assert_eq!(parse("9 links restored"), None);
        assert_eq!(parse("garbage"), None);
    }
}
