//! The fault verbs: crash and restart, pause and resume, partitions and
//! heals, link latency, loss and clock skew.

use std::time::Duration;

use super::{LinkState, Sim};
use crate::state_machine::StateMachine;
use crate::topology::{Failure, Member, NodeId};

impl<M: StateMachine> Sim<M> {
    /// Crashes a member: its volatile state is lost; what it wrote to its
    /// storage (everything, in this simulator: each write is durable
    /// before any message depending on it leaves) survives for a restart.
    /// Its peers get no sign of it but its silence, as when its host goes
    /// away or its link hangs half-open; [`kill`](Self::kill) is a process
    /// dying on a host that stays up.
    pub fn crash(&mut self, id: NodeId) {
        self.stop(id, "crash");
    }

    /// Kills a member's process on a host that stays up (`kill -9`, an
    /// out-of-memory kill): lost as in a [`crash`](Self::crash), but its
    /// peers are told, as the TCP runtime tells them. The host's kernel
    /// ends the process's connections (after what it had sent); a peer's
    /// transport then dials its address and is refused. So every member up
    /// at the other end of a clean link (both directions open, no loss)
    /// gets [`Node::peer_connection_refused`](crate::Node::peer_connection_refused)
    /// one latency of the link from the killed member, after its last
    /// message there, plus a round trip later; not if by then that member
    /// crashed, restarted or is paused, the killed one restarted, or the
    /// link was cut. Over a lossy or cut link nothing is reported (the dial
    /// would wait or time out), and the failover timer applies.
    pub fn kill(&mut self, id: NodeId) {
        if !self.stop(id, "kill") {
            return;
        }
        let killed = self.slots[&id].incarnation;
        let mut due = Vec::new();
        for (&to, s) in &self.slots {
            let net = &self.network;
            if to == id || s.node.is_none() || !net.clean(id, to) {
                continue;
            }
            // The end of the connection follows the last message on it
            // (links are FIFO); the dial takes a round trip.
            let last = net.last_delivery.get(&(id, to)).copied();
            let ended = (self.now_us + net.one_way(id, to)).max(last.unwrap_or(0));
            let at = ended + net.one_way(to, id) + net.one_way(id, to);
            due.push((at, to, s.incarnation));
        }
        for (at, to, to_incarnation) in due {
            self.schedule(
                at,
                super::Scheduled::Refused {
                    to,
                    to_incarnation,
                    peer: id,
                    peer_incarnation: killed,
                },
            );
        }
    }

    /// Takes a member down (`verb` for the trace); whether it was up.
    fn stop(&mut self, id: NodeId, verb: &str) -> bool {
        let Some(s) = self.slots.get_mut(&id) else {
            return false;
        };
        s.paused = false;
        s.held.clear();
        if s.node.take().is_none() {
            return false;
        }
        s.incarnation += 1;
        self.trace.push(format!("{} {id} {verb}", self.now_us));
        true
    }

    /// A refusal scheduled by [`kill`](Self::kill) falls due.
    pub(super) fn refusal_due(&mut self, to: NodeId, to_inc: u64, peer: NodeId, peer_inc: u64) {
        let gone =
            (self.slots.get(&peer)).is_some_and(|s| s.node.is_none() && s.incarnation == peer_inc);
        if !gone || !self.network.clean(peer, to) {
            return;
        }
        let Some(s) = self
            .slots
            .get_mut(&to)
            .filter(|s| s.incarnation == to_inc && !s.paused)
        else {
            return;
        };
        let Some(node) = s.node.as_mut() else {
            return;
        };
        node.peer_connection_refused(peer);
        self.trace
            .push(format!("{} {to} refused {peer}", self.now_us));
        self.drain(to);
    }

    /// Freezes a member, as a long garbage-collection pause, a stalled disk
    /// or `SIGSTOP` would: it neither ticks nor reads; what is sent to it
    /// waits and is delivered, in order, on [`resume`](Self::resume).
    pub fn pause(&mut self, id: NodeId) {
        if let Some(s) = self.slots.get_mut(&id).filter(|s| s.node.is_some()) {
            s.paused = true;
            self.trace.push(format!("{} {id} pause", self.now_us));
        }
    }

    /// Ends a [`pause`](Self::pause): the member takes in everything held.
    pub fn resume(&mut self, id: NodeId) {
        let Some(s) = self.slots.get_mut(&id).filter(|s| s.paused) else {
            return;
        };
        s.paused = false;
        let held = std::mem::take(&mut s.held);
        self.trace.push(format!("{} {id} resume", self.now_us));
        for (from, bytes) in held {
            if self.network.state(from, id) != LinkState::Partitioned {
                self.deliver(id, &bytes);
            }
        }
    }

    /// Skews a member's clock: it ticks every `percent`% of the tick period
    /// (150 runs its timers a third slower, 50 twice as fast). 100 undoes it.
    pub fn set_tick_skew(&mut self, id: NodeId, percent: u64) {
        if let Some(s) = self.slots.get_mut(&id) {
            s.tick_percent = percent.clamp(10, 1000);
            self.trace
                .push(format!("{} {id} skew {percent}%", self.now_us));
        }
    }

    /// Crashes every member on a host.
    pub fn crash_host(&mut self, host: &str) {
        let ids: Vec<NodeId> = self
            .slots
            .iter()
            .filter(|(_, s)| s.member.spec.host == host)
            .map(|(&id, _)| id)
            .collect();
        for id in ids {
            self.crash(id);
        }
    }

    /// Crashes every member of a site.
    pub fn crash_site(&mut self, site: &str) {
        for id in self.site_members(site) {
            self.crash(id);
        }
    }

    /// Restarts a crashed member from its storage.
    pub fn restart(&mut self, id: NodeId) {
        if self.slots.get(&id).is_some_and(|s| s.node.is_none()) {
            self.boot(id);
        }
    }

    /// Starts a new member that joins the running cluster (a replacement:
    /// see [`Node::replace_member`](crate::Node::replace_member)). It starts empty and catches up.
    pub fn add_member(&mut self, member: Member) {
        self.start_member(member, true);
    }

    /// Members of a site.
    pub fn site_members(&self, site: &str) -> Vec<NodeId> {
        self.slots
            .iter()
            .filter(|(_, s)| s.member.site == site)
            .map(|(&id, _)| id)
            .collect()
    }

    /// Injects one of the failures of the [survivability
    /// report](crate::topology::SurvivabilityReport): crashes the host's,
    /// core's or site's members, or partitions the groups of sites. So
    /// each row of the report can be checked against what really happens.
    pub fn inject(&mut self, failure: &Failure) {
        match failure {
            Failure::Host { host } => self.crash_host(host),
            Failure::Core { core } => {
                let ids: Vec<NodeId> = self
                    .slots
                    .iter()
                    .filter(|(_, s)| s.member.core() == Some(core.as_str()))
                    .map(|(&id, _)| id)
                    .collect();
                for id in ids {
                    self.crash(id);
                }
            }
            Failure::Site { site } => self.crash_site(site),
            Failure::Partition { side_a, side_b } => {
                let a: Vec<&str> = side_a.iter().map(String::as_str).collect();
                let b: Vec<&str> = side_b.iter().map(String::as_str).collect();
                self.partition_sites(&a, &b);
            }
            Failure::HostDuringPartition { host, .. } => {
                if let Some(partition) = failure.before() {
                    self.inject(&partition);
                }
                self.crash_host(host);
            }
            Failure::AllApart => {
                let sites: Vec<String> = self
                    .topology()
                    .sites
                    .iter()
                    .map(|s| s.name.clone())
                    .collect();
                for (i, a) in sites.iter().enumerate() {
                    for b in &sites[i + 1..] {
                        self.partition_sites(&[a.as_str()], &[b.as_str()]);
                    }
                }
            }
        }
    }

    /// Cuts every link between the two groups, both ways.
    pub fn partition(&mut self, a: &[NodeId], b: &[NodeId]) {
        self.trace
            .push(format!("{} partition {a:?} | {b:?}", self.now_us));
        self.network.block(a, b);
    }

    /// Cuts every link between two groups of sites.
    pub fn partition_sites(&mut self, a: &[&str], b: &[&str]) {
        let ga: Vec<NodeId> = a.iter().flat_map(|s| self.site_members(s)).collect();
        let gb: Vec<NodeId> = b.iter().flat_map(|s| self.site_members(s)).collect();
        self.partition(&ga, &gb);
    }

    /// Cuts a member off from everyone.
    pub fn isolate(&mut self, id: NodeId) {
        let others: Vec<NodeId> = self.members().into_iter().filter(|&o| o != id).collect();
        self.partition(&[id], &others);
    }

    /// Cuts a site off from every other site.
    pub fn isolate_site(&mut self, site: &str) {
        let inside = self.site_members(site);
        let outside: Vec<NodeId> = self
            .members()
            .into_iter()
            .filter(|id| !inside.contains(id))
            .collect();
        self.partition(&inside, &outside);
    }

    /// Restores the links between two groups.
    pub fn heal_between(&mut self, a: &[NodeId], b: &[NodeId]) {
        self.trace
            .push(format!("{} heal {a:?} | {b:?}", self.now_us));
        self.network.unblock(a, b);
    }

    /// Restores every link.
    pub fn heal(&mut self) {
        self.trace.push(format!("{} heal all", self.now_us));
        self.network.blocked.clear();
    }

    /// Undoes every [`set_link_loss`](Self::set_link_loss),
    /// [`set_link_rtt`](Self::set_link_rtt) and
    /// [`set_link_latency`](Self::set_link_latency): links get the builder's
    /// latency and loss again (partitions stay; see [`heal`](Self::heal)).
    pub fn restore_links(&mut self) {
        self.trace.push(format!("{} links restored", self.now_us));
        self.network.link_loss.clear();
        self.network.one_way_us.clear();
        self.refresh_links();
    }

    /// The state of the link `from → to`.
    pub fn link(&self, from: NodeId, to: NodeId) -> LinkState {
        self.network.state(from, to)
    }

    /// Sets the loss probability of the link `from → to` (one direction).
    pub fn set_link_loss(&mut self, from: NodeId, to: NodeId, p: f64) {
        self.network.link_loss.insert((from, to), p.clamp(0.0, 1.0));
    }

    /// Sets the one-way latency of the link `from → to` (that direction
    /// only), until [`restore_links`](Self::restore_links).
    pub fn set_link_latency(&mut self, from: NodeId, to: NodeId, one_way: Duration) {
        self.network
            .one_way_us
            .insert((from, to), super::micros(one_way));
    }

    /// Sets the round trip between two members (both directions).
    pub fn set_link_rtt(&mut self, a: NodeId, b: NodeId, rtt: Duration) {
        let one_way = super::micros(rtt) / 2;
        self.network.one_way_us.insert((a, b), one_way);
        self.network.one_way_us.insert((b, a), one_way);
    }
}
