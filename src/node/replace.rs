//! Redundancy watch and automatic replacement (like VMware HA).
//!
//! The leader watches every member of a duplicated core: one silent for
//! an election timeout leaves its core running without a standby (or
//! without its primary, which is then the leader's partner no more); that
//! is reported as [`Event::RedundancyLost`] and in
//! [`Status::redundancy`](super::Status::redundancy), and once every member
//! of the core answers again (the silent one came back, or a replacement
//! was promoted and it was removed) as [`Event::RedundancyRestored`]. Only
//! the leader hears every member, so only it reports; a new leader starts
//! its own watch and reports what it finds.
//!
//! With a [`ReplacePolicy`] ([`NodeConfig::replace`](super::NodeConfig::replace),
//! off by default) the leader replaces a core member silent for
//! [`ReplacePolicy::after`] by the first spare that the operator command
//! ([`Node::replace_member`](super::Node::replace_member)) would accept
//! (an id in use, a shared host or mixed appliances rule a spare out),
//! once per silent member, one replacement at a time. The spare must be
//! running as a joining member ([`NodeConfig::joining`](super::NodeConfig::joining))
//! reachable at its address: it joins as a learner, catches up from
//! empty, and is promoted only once it has connected and caught up.
//! Choose `after` well above any outage a member comes back from by
//! itself (a reboot, a host maintenance): a replaced member is out of the
//! configuration for good.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use serde::Serialize;

use super::Node;
use crate::events::Event;
use crate::state_machine::StateMachine;
use crate::storage::LogStore;
use crate::topology::{MemberSpec, NodeId};

/// The leader's automatic replacement policy: a core voter silent for
/// [`after`](Self::after) is replaced by the first spare the checks of
/// [`Node::replace_member`](super::Node::replace_member) accept, once per
/// member, one replacement at a time ([`Event::ReplacementStarted`]). Set
/// it in [`NodeConfig::replace`](super::NodeConfig::replace); off by default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplacePolicy {
    /// How long a core member must have been silent (unreachable from the
    /// leader) before it is replaced.
    pub after: Duration,
    /// The spare members, in order of preference: each one's id, name,
    /// host and appliance. A spare takes the replaced member's site and
    /// role.
    pub spares: Vec<MemberSpec>,
    /// Each spare's address (`ip:port`), by id: the replacement carries it
    /// ([`Node::replace_member_at`](super::Node::replace_member_at)), so
    /// members that do not list the spare in their peers reach it too,
    /// and the promotion writes it into the topology. A spare without one
    /// is reached only where the peers list it. The `[replace]` table of
    /// the configuration file fills it from each spare's `addr`.
    pub addresses: BTreeMap<NodeId, String>,
}

/// A duplicated core running without one of its members, as the leader
/// sees it. Displays as `CM01 running without a standby since 1700000 ms
/// (n1 silent)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Degraded {
    /// The core's name.
    pub core: String,
    /// Its members that do not answer the leader.
    pub missing: Vec<NodeId>,
    /// Since when, by the leader's clock (the `now_ms` given to
    /// [`Node::tick`](super::Node::tick)): the last time the first missing
    /// member was heard, or the start of the leadership if never.
    pub since_ms: u64,
}

impl fmt::Display for Degraded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let missing: Vec<String> = self.missing.iter().map(ToString::to_string).collect();
        write!(
            f,
            "{} running without a standby since {} ms ({} silent)",
            self.core,
            self.since_ms,
            missing.join(", ")
        )
    }
}

/// The leader's redundancy watch.
#[derive(Debug, Default)]
pub(super) struct Watch {
    /// The term this watch belongs to (a new leadership starts over).
    term: u64,
    /// Tick at which that leadership was first watched.
    leading_since: u64,
    /// The cores running without redundancy.
    pub(super) lost: BTreeMap<String, Degraded>,
    /// Members already replaced by the policy (each only once).
    tried: BTreeSet<NodeId>,
}

/// One watched member: its core and how long it has been silent (ticks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Watched {
    pub(super) id: NodeId,
    pub(super) core: String,
    pub(super) silent: u64,
    /// A voter (only voters can be replaced).
    pub(super) voter: bool,
}

/// The silent members of each core: silent for more than `limit` ticks.
pub(super) fn silent_by_core(watched: &[Watched], limit: u64) -> BTreeMap<String, Vec<&Watched>> {
    let mut out: BTreeMap<String, Vec<&Watched>> = BTreeMap::new();
    for w in watched.iter().filter(|w| w.silent > limit) {
        out.entry(w.core.clone()).or_default().push(w);
    }
    out
}

/// The policy's decision: the first silent voter (by id) silent for at
/// least `after_ticks`, not replaced before, with the first spare `fits`
/// accepts for it. Nothing while another replacement runs (`busy`).
pub(super) fn choose_spare<'a>(
    spares: &'a [MemberSpec],
    after_ticks: u64,
    watched: &[Watched],
    tried: &BTreeSet<NodeId>,
    busy: bool,
    fits: impl Fn(NodeId, &MemberSpec) -> bool,
) -> Option<(NodeId, &'a MemberSpec)> {
    if busy {
        return None;
    }
    let mut dead: Vec<NodeId> = watched
        .iter()
        .filter(|w| w.voter && w.silent >= after_ticks && !tried.contains(&w.id))
        .map(|w| w.id)
        .collect();
    dead.sort();
    dead.into_iter()
        .find_map(|d| spares.iter().find(|s| fits(d, s)).map(|s| (d, s)))
}

impl<M: StateMachine, S: LogStore> Node<M, S> {
    /// The members of duplicated cores other than this leader, each with
    /// its silence in ticks (measured from the start of this leadership
    /// for one never heard). Pending replacements are left out: the member
    /// they replace still counts.
    fn watched(&self) -> Vec<Watched> {
        let since = self.membership.watch.leading_since;
        let conf = &self.membership.conf;
        let in_conf = |id: NodeId| conf.voters.contains(&id.0) || conf.learners.contains(&id.0);
        let size = |core: &str| {
            self.membership
                .members
                .values()
                .filter(|s| s.replaces.is_none() && s.member.core() == Some(core))
                .count()
        };
        self.membership
            .members
            .values()
            .filter(|s| s.replaces.is_none() && s.member.id() != self.id)
            .filter(|s| in_conf(s.member.id()))
            .filter_map(|s| {
                let core = s.member.core()?;
                (size(core) > 1).then(|| {
                    let heard = self.contact.last_heard.get(&s.member.id()).copied();
                    let from = heard.unwrap_or(since).max(since);
                    Watched {
                        id: s.member.id(),
                        core: core.to_string(),
                        silent: self.tick_no.saturating_sub(from),
                        voter: conf.voters.contains(&s.member.id().0),
                    }
                })
            })
            .collect()
    }

    /// Leader duty each tick: report cores losing and regaining
    /// redundancy, and apply the replacement policy.
    pub(super) fn watch_redundancy(&mut self) {
        let term = self.raw.raft.term;
        if self.membership.watch.term != term {
            let w = &mut self.membership.watch;
            w.term = term;
            w.leading_since = self.tick_no;
            w.lost.clear();
        }
        let watched = self.watched();
        let tick_ms = self.ticks.tick_ms;
        let now = self.now_ms;
        let silent = silent_by_core(&watched, self.ticks.election as u64);
        let mut events = Vec::new();
        let lost = &mut self.membership.watch.lost;
        let restored: Vec<String> = lost
            .keys()
            .filter(|c| !silent.contains_key(*c))
            .cloned()
            .collect();
        for core in restored {
            if let Some(d) = lost.remove(&core) {
                let lost_ms = now.saturating_sub(d.since_ms);
                events.push(Event::RedundancyRestored { core, lost_ms });
            }
        }
        for (core, ws) in silent {
            let ids: Vec<NodeId> = ws.iter().map(|w| w.id).collect();
            let longest = ws.iter().map(|w| w.silent).max().unwrap_or(0);
            let since_ms = now.saturating_sub(longest.saturating_mul(tick_ms));
            let d = lost.entry(core.clone()).or_insert_with(|| Degraded {
                core: core.clone(),
                missing: Vec::new(),
                since_ms,
            });
            for w in ws {
                if !d.missing.contains(&w.id) {
                    d.missing.push(w.id);
                    events.push(Event::RedundancyLost {
                        core: core.clone(),
                        missing: w.id,
                    });
                }
            }
            // One that answers again while another stays silent.
            d.missing.retain(|id| ids.contains(id));
        }
        for e in events {
            self.emit(e);
        }
        self.apply_replace_policy(&watched);
    }

    /// Starts the replacement [`choose_spare`] picks, if any.
    fn apply_replace_policy(&mut self, watched: &[Watched]) {
        let Some(policy) = self.cfg.replace.clone() else {
            return;
        };
        let tick_ms = self.ticks.tick_ms.max(1);
        let after_ticks = (policy.after.as_millis() as u64).div_ceil(tick_ms);
        let busy = self.topology_under_way()
            || self
                .membership
                .members
                .values()
                .any(|s| s.replaces.is_some());
        let fits = |dead: NodeId, spare: &MemberSpec| {
            let free = !self.membership.members.contains_key(&spare.id)
                && self.cfg.topology.member(spare.id).is_none()
                && !self.cfg.topology.is_removed(spare.id);
            free && self
                .membership
                .replacement(dead, spare.clone())
                .is_some_and(|m| self.membership.check_partners(dead, &m).is_ok())
        };
        let tried = &self.membership.watch.tried;
        let Some((dead, spare)) =
            choose_spare(&policy.spares, after_ticks, watched, tried, busy, fits)
        else {
            return;
        };
        let spare = spare.clone();
        let address = policy.addresses.get(&spare.id).cloned();
        match self.start_replacement(dead, spare.clone(), address) {
            Ok(()) => {
                self.membership.watch.tried.insert(dead);
                self.emit(Event::ReplacementStarted {
                    dead,
                    spare: spare.id,
                });
            }
            Err(err) => {
                slog::warn!(self.logger, "automatic replacement not started";
                    "dead" => %dead, "spare" => %spare.id, "reason" => %err);
            }
        }
    }

    /// [`Status::redundancy`](super::Status::redundancy): the leader's
    /// degraded cores (empty elsewhere).
    pub(super) fn redundancy(&self) -> Vec<Degraded> {
        if self.election.role != raft::StateRole::Leader
            || self.membership.watch.term != self.raw.raft.term
        {
            return Vec::new();
        }
        self.membership.watch.lost.values().cloned().collect()
    }
}

#[cfg(test)]
#[path = "replace_tests.rs"]
mod tests;
