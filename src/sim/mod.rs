//! A deterministic simulator that drives real [`Node`]s: virtual clock,
//! per-link latency (LAN and WAN presets, per site pair and direction), jitter, loss, partitions of any
//! node sets or whole sites, crash and restart.
//!
//! A run is a pure function of the seed and the calls made: the same seed
//! and schedule give the same run, event for event ([`Sim::trace`]).
//!
//! ```
//! use std::time::Duration;
//! use survivable_core::sim::{Sim, KvStore};
//! # use survivable_core::topology::{Appliance::Virtual, Core, Site, SurvivableCore, Topology, Witness};
//! # let topology = Topology::builder(7)
//! #     .site(Site::main("denver")).site(Site::backup("paris")).site(Site::backup("kansas"))
//! #     .core(Core::new("cm01", "denver").member(1, "CM01a", "esxi-1", Virtual).member(2, "CM01b", "esxi-3", Virtual))
//! #     .survivable_core(SurvivableCore::new(1, Core::new("cm02", "paris").member(3, "CM02a", "esxi-5", Virtual).member(4, "CM02b", "esxi-7", Virtual)))
//! #     .witness(Witness::new(5, "W1", "kansas", "wit-1"))
//! #     .build().unwrap().shared();
//! let mut sim = Sim::builder(topology).seed(42).build(|_| KvStore::default());
//! sim.run_for(Duration::from_secs(1));
//! let leader = sim.leader().expect("the main core's primary leads");
//! assert_eq!(sim.site_of(leader), "denver");
//! sim.crash_host("esxi-1");
//! sim.run_for(Duration::from_secs(1));
//! assert_eq!(sim.site_of(sim.leader().unwrap()), "denver"); // the standby took over
//! assert!(sim.violations().is_empty());
//! ```

mod checks;
mod dr;
mod epochs;
mod faults;
pub mod invariants;
mod kv;
pub mod linearizability;

mod measure;
mod network;
mod observe;
mod queue;
pub mod scenarios;
mod schedule;
mod snapshots;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use slog::{o, Logger};

pub use invariants::{Checker, Violation};
pub use kv::KvStore;
pub use network::LinkState;
pub use observe::Observed;
pub use schedule::{
    DrSchedule, Fault, LinearOptions, LinearReport, RunOptions, RunReport, Schedule, ScheduleError,
    Step, DR_ONE_WAY_MS, MAX_RTT_MS, MAX_WAIT_MS, RATE_PER_S, SKEW_PERCENT,
};

use self::network::Network;
use self::queue::Queue;
use crate::error::ProposeError;
use crate::events::Event;
use crate::node::{Node, NodeConfig, ProposalId, ProposalOutcome};
use crate::rng::SplitMix64;
use crate::state_machine::StateMachine;
use crate::storage::MemStorage;
use crate::topology::{Member, NodeId, Topology};

/// 2026-01-01T00:00:00Z: where virtual wall-clock time starts by default.
pub const DEFAULT_START_UNIX_MS: u64 = 1_767_225_600_000;

/// Configures a [`Sim`].
#[derive(Clone)]
pub struct SimBuilder {
    topology: Arc<Topology>,
    seed: u64,
    lan_rtt: Duration,
    wan_rtt: Duration,
    /// One-way latency between sites, per direction, overriding `wan_rtt / 2`.
    site_one_way: BTreeMap<(String, String), Duration>,
    jitter: Duration,
    loss: f64,
    start_unix_ms: u64,
    logger: Logger,
    tune: Option<Tune>,
    snapshot_time: snapshots::SnapshotTime,
}

/// A caller's adjustment of every member's configuration.
type Tune = Arc<dyn Fn(&mut NodeConfig)>;

impl SimBuilder {
    /// Adjusts every member's [`NodeConfig`] before it starts (e.g. snapshot
    /// frequency, proposal limits, forwarding). Defaults to none.
    pub fn node_config(&mut self, tune: impl Fn(&mut NodeConfig) + 'static) -> &mut Self {
        self.tune = Some(Arc::new(tune));
        self
    }

    /// The seed of every random choice (jitter, loss, election jitter). Defaults to 0.
    pub fn seed(&mut self, seed: u64) -> &mut Self {
        self.seed = seed;
        self
    }

    /// Round trip between members of one site. Defaults to 1 ms.
    pub fn lan_rtt(&mut self, rtt: Duration) -> &mut Self {
        self.lan_rtt = rtt;
        self
    }

    /// Round trip between sites. Defaults to 80 ms.
    pub fn wan_rtt(&mut self, rtt: Duration) -> &mut Self {
        self.wan_rtt = rtt;
        self
    }

    /// Round trip between two given sites, overriding [`wan_rtt`](Self::wan_rtt):
    /// half of it each way.
    pub fn site_rtt(&mut self, a: &str, b: &str, rtt: Duration) -> &mut Self {
        self.link_latency(a, b, rtt / 2).link_latency(b, a, rtt / 2)
    }

    /// One-way latency from site `from` to site `to` (that direction only),
    /// overriding [`wan_rtt`](Self::wan_rtt) and [`site_rtt`](Self::site_rtt)
    /// for it: real WAN paths are often uneven.
    pub fn link_latency(&mut self, from: &str, to: &str, one_way: Duration) -> &mut Self {
        self.site_one_way
            .insert((from.to_string(), to.to_string()), one_way);
        self
    }

    /// Every latency of a survivability report's [`Latency`]: its LAN and
    /// WAN round trips and each per-site, per-direction override, so a
    /// simulation runs on the network the report assumes.
    ///
    /// [`Latency`]: crate::topology::Latency
    pub fn latency(&mut self, latency: &crate::topology::Latency) -> &mut Self {
        self.lan_rtt = latency.lan_rtt;
        self.wan_rtt = latency.wan_rtt;
        for ((from, to), one_way) in latency.overrides() {
            self.link_latency(from, to, one_way);
        }
        self
    }

    /// Extra one-way delay, uniform in `0..=jitter`. Defaults to 200 µs.
    pub fn jitter(&mut self, jitter: Duration) -> &mut Self {
        self.jitter = jitter;
        self
    }

    /// Probability that any message is lost. Defaults to 0.
    pub fn loss(&mut self, p: f64) -> &mut Self {
        self.loss = p.clamp(0.0, 1.0);
        self
    }

    /// Virtual wall-clock time at the start, in ms since the UNIX epoch
    /// (matters for hand-back windows). Defaults to [`DEFAULT_START_UNIX_MS`].
    pub fn start_unix_ms(&mut self, ms: u64) -> &mut Self {
        self.start_unix_ms = ms;
        self
    }

    /// Where nodes log. Defaults to discarding.
    pub fn logger(&mut self, logger: Logger) -> &mut Self {
        self.logger = logger;
        self
    }

    /// Builds the simulator and starts every member of the topology;
    /// `make` creates a fresh state machine for a member (also on restart).
    pub fn build<M, F>(&self, make: F) -> Sim<M>
    where
        M: StateMachine,
        F: FnMut(NodeId) -> M + 'static,
    {
        let mut sim = Sim {
            cfg: self.clone(),
            now_us: 0,
            queue: Queue::default(),
            slots: BTreeMap::new(),
            network: Network {
                jitter_us: micros(self.jitter),
                loss: self.loss,
                ..Network::default()
            },
            rng: SplitMix64::new(self.seed),
            make: Box::new(make),
            obs: Arc::new(Mutex::new(Checker::default())),
            events: Vec::new(),
            outcomes: Vec::new(),
            submitted: BTreeMap::new(),
            commands: BTreeMap::new(),
            wire_digest: invariants::DIGEST_START,
            delivered: 0,
            reads: Vec::new(),
            reads_asked: BTreeMap::new(),
            trace: Vec::new(),
            tick_us: self.topology.ticks().tick_ms * 1000,
            snapshot_jobs: BTreeMap::new(),
            snapshot_seq: 0,
            dr: dr::DrRecord::default(),
            drained: Vec::new(),
        };
        let members: Vec<Member> = self.topology.members().values().cloned().collect();
        for m in members {
            sim.start_member(m, false);
        }
        sim
    }
}

struct Slot<M> {
    node: Option<Node<Observed<M>>>,
    storage: MemStorage,
    member: Member,
    joining: bool,
    incarnation: u64,
    /// Frozen (a stop-the-world pause): no ticks, deliveries held.
    paused: bool,
    held: Vec<(NodeId, Vec<u8>)>,
    /// Its tick period in percent of the configured one (clock skew).
    tick_percent: u64,
    /// Its own clock (µs) and the simulated time of that reading: it runs
    /// at 100/`tick_percent` of the simulated rate.
    clock: Option<(u64, u64)>,
    /// Its epoch when it was last drained.
    epoch: crate::node::EpochId,
}

#[derive(Debug, PartialEq, Eq)]
enum Scheduled {
    Tick {
        node: NodeId,
        incarnation: u64,
    },
    Deliver {
        from: NodeId,
        to: NodeId,
        bytes: Vec<u8>,
    },
    SnapshotDone {
        node: NodeId,
        incarnation: u64,
        job: u64,
    },
    /// `to`'s transport found `peer`'s process gone (see [`Sim::kill`]):
    /// due if both are still the incarnations they were then.
    Refused {
        to: NodeId,
        to_incarnation: u64,
        peer: NodeId,
        peer_incarnation: u64,
    },
}

/// A proposal's life as the simulator saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    /// Where it was proposed.
    pub node: NodeId,
    /// Its id.
    pub id: ProposalId,
    /// When it was proposed (virtual µs).
    pub proposed_us: u64,
    /// When its outcome reached the proposer (virtual µs).
    pub done_us: u64,
    /// The outcome.
    pub outcome: ProposalOutcome,
}

/// A read the simulator saw answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadDone {
    /// Where it was made.
    pub node: NodeId,
    /// Its id.
    pub id: crate::node::ReadId,
    /// When it was made (virtual µs).
    pub requested_us: u64,
    /// When it was answered (virtual µs).
    pub done_us: u64,
    /// The index the member had applied when it answered.
    pub index: u64,
}

/// The simulated cluster. See the [module docs](self).
pub struct Sim<M> {
    cfg: SimBuilder,
    now_us: u64,
    queue: Queue<Scheduled>,
    slots: BTreeMap<NodeId, Slot<M>>,
    network: Network,
    rng: SplitMix64,
    make: Box<dyn FnMut(NodeId) -> M>,
    obs: Arc<Mutex<Checker>>,
    events: Vec<(u64, NodeId, Event)>,
    outcomes: Vec<Commit>,
    submitted: BTreeMap<ProposalId, u64>,
    /// Digest of every proposed command, by proposal (kept for the loss
    /// checks: an acknowledgement must name the command applied).
    commands: BTreeMap<ProposalId, u64>,
    /// Digest of every envelope delivered, with its time and receiver.
    wire_digest: u64,
    /// Envelopes delivered (see [`Sim::delivered`]).
    delivered: u64,
    reads: Vec<ReadDone>,
    reads_asked: BTreeMap<crate::node::ReadId, u64>,
    trace: Vec<String>,
    tick_us: u64,
    /// Snapshot jobs under way, by number: their results, handed back
    /// when the modelled time is up.
    snapshot_jobs: BTreeMap<u64, crate::node::SnapshotDone>,
    snapshot_seq: u64,
    /// DR auto-sync: commit states and proven activations.
    dr: dr::DrRecord,
    /// Events drained from a node, kept empty between drains (its
    /// capacity is reused).
    drained: Vec<Event>,
}

impl Sim<()> {
    /// Starts configuring a simulator for `topology`.
    pub fn builder(topology: Arc<Topology>) -> SimBuilder {
        SimBuilder {
            topology,
            seed: 0,
            lan_rtt: Duration::from_millis(1),
            wan_rtt: Duration::from_millis(80),
            site_one_way: BTreeMap::new(),
            jitter: Duration::from_micros(200),
            loss: 0.0,
            start_unix_ms: DEFAULT_START_UNIX_MS,
            logger: Logger::root(slog::Discard, o!()),
            tune: None,
            snapshot_time: snapshots::SnapshotTime::default(),
        }
    }
}

impl<M: StateMachine> Sim<M> {
    fn start_member(&mut self, member: Member, joining: bool) {
        let id = member.id();
        let storage = MemStorage::new();
        self.slots.insert(
            id,
            Slot {
                node: None,
                storage,
                member,
                joining,
                incarnation: 0,
                paused: false,
                tick_percent: 100,
                clock: None,
                held: Vec::new(),
                epoch: crate::ids::FIRST_EPOCH,
            },
        );
        self.refresh_links();
        self.boot(id);
    }

    fn refresh_links(&mut self) {
        let members: Vec<(NodeId, String)> = self
            .slots
            .iter()
            .map(|(&id, s)| (id, s.member.site.clone()))
            .collect();
        for (a, sa) in &members {
            for (b, sb) in &members {
                let one_way = if sa == sb {
                    micros(self.cfg.lan_rtt) / 2
                } else {
                    self.cfg
                        .site_one_way
                        .get(&(sa.clone(), sb.clone()))
                        .map_or(micros(self.cfg.wan_rtt) / 2, |&d| micros(d))
                };
                self.network.one_way_us.entry((*a, *b)).or_insert(one_way);
            }
        }
    }

    fn boot(&mut self, id: NodeId) {
        let Some(slot) = self.slots.get_mut(&id) else {
            return;
        };
        slot.incarnation += 1;
        let incarnation = slot.incarnation;
        let mut cfg = NodeConfig::new(id, self.cfg.topology.clone());
        cfg.logger = self.cfg.logger.clone();
        cfg.seed = self.cfg.seed ^ (incarnation << 32);
        if slot.joining {
            cfg.joining = Some(slot.member.clone());
        }
        if let Some(tune) = &self.cfg.tune {
            tune(&mut cfg);
        }
        let sm = Observed::new((self.make)(id), id, self.obs.clone());
        let slot = self.slots.get_mut(&id).expect("slot exists");
        match Node::new(cfg, slot.storage.clone(), sm) {
            Ok(mut node) => {
                node.offload_snapshots();
                slot.epoch = node.epoch();
                slot.node = Some(node);
            }
            Err(e) => {
                self.trace
                    .push(format!("{} {id} failed to start: {e}", self.now_us));
                return;
            }
        }
        self.trace
            .push(format!("{} {id} start #{incarnation}", self.now_us));
        // Each member ticks at its own phase inside the tick period.
        let phase = self.rng.below(self.tick_us);
        self.schedule(
            self.now_us + phase,
            Scheduled::Tick {
                node: id,
                incarnation,
            },
        );
        self.drain(id);
    }

    fn schedule(&mut self, at_us: u64, what: Scheduled) {
        self.queue.push(at_us, what);
    }

    /// Runs the next scheduled event. Returns `false` when nothing is scheduled.
    pub fn step(&mut self) -> bool {
        let Some((at, what)) = self.queue.pop() else {
            return false;
        };
        self.now_us = self.now_us.max(at);
        match what {
            Scheduled::Tick { node, incarnation } => {
                let Some(slot) = self.slots.get_mut(&node) else {
                    return true;
                };
                if slot.incarnation != incarnation {
                    return true;
                }
                // The member's clock runs at its skewed rate (skew 150: a
                // third slower), as a host clock would.
                let (local, at) = slot.clock.unwrap_or((self.now_us, self.now_us));
                let local = local + (self.now_us - at) * 100 / slot.tick_percent.max(1);
                slot.clock = Some((local, self.now_us));
                let now_ms = self.cfg.start_unix_ms + local / 1000;
                let period = self.tick_us * slot.tick_percent / 100;
                if slot.paused {
                    let next = self.now_us.saturating_add(period.max(1));
                    self.schedule(next, Scheduled::Tick { node, incarnation });
                    return true;
                }
                if let Some(n) = slot.node.as_mut() {
                    n.tick(now_ms);
                    let next = self.now_us.saturating_add(period.max(1));
                    self.schedule(next, Scheduled::Tick { node, incarnation });
                    self.drain(node);
                }
            }
            Scheduled::Deliver { from, to, bytes } => {
                if self.network.state(from, to) == LinkState::Partitioned {
                    return true;
                }
                if let Some(slot) = self.slots.get_mut(&to).filter(|s| s.paused) {
                    slot.held.push((from, bytes));
                    return true;
                }
                self.deliver(to, &bytes);
            }
            Scheduled::SnapshotDone {
                node,
                incarnation,
                job,
            } => self.snapshot_job_due(node, incarnation, job),
            Scheduled::Refused {
                to,
                to_incarnation,
                peer,
                peer_incarnation,
            } => self.refusal_due(to, to_incarnation, peer, peer_incarnation),
        }
        true
    }

    fn deliver(&mut self, to: NodeId, bytes: &[u8]) {
        let Ok(env) = crate::wire::Envelope::from_bytes(bytes) else {
            return;
        };
        let Some(n) = self.slots.get_mut(&to).and_then(|s| s.node.as_mut()) else {
            return;
        };
        let mut h = self.wire_digest;
        for word in [self.now_us, to.0] {
            h = invariants::fold_word(h, word);
        }
        self.wire_digest = invariants::fold_bytes(h, bytes);
        self.delivered += 1;
        let _ = n.step(env);
        self.drain(to);
    }

    /// Moves a node's outputs into the network and the records. Nothing
    /// is allocated for outputs a node does not have (the common case for
    /// events, outcomes and reads); envelopes go into the network as they
    /// are polled, in the order the node sends them.
    fn drain(&mut self, id: NodeId) {
        let Some(slot) = self.slots.get_mut(&id) else {
            return;
        };
        let Some(node) = slot.node.as_mut() else {
            return;
        };
        while let Some(env) = node.poll_transmit() {
            self.network
                .send(&mut self.rng, &mut self.queue, self.now_us, id, env);
        }
        let mut events = std::mem::take(&mut self.drained);
        events.extend(std::iter::from_fn(|| node.poll_event()));
        while let Some(o) = node.poll_outcome() {
            let proposed_us = self.submitted.remove(&o.id).unwrap_or(self.now_us);
            self.outcomes.push(Commit {
                node: id,
                id: o.id,
                proposed_us,
                done_us: self.now_us,
                outcome: o,
            });
        }
        while let Some(r) = node.poll_read() {
            let requested_us = self.reads_asked.remove(&r.id).unwrap_or(self.now_us);
            self.reads.push(ReadDone {
                node: id,
                id: r.id,
                requested_us,
                done_us: self.now_us,
                index: r.index,
            });
        }
        let (epoch, term) = (node.epoch(), node.term());
        let before = std::mem::replace(&mut slot.epoch, epoch);
        if !events.is_empty() {
            self.record_events(id, (before, epoch, term), &mut events);
        }
        self.drained = events;
        self.take_snapshot_jobs(id);
        self.note_dr_leader(id);
    }

    /// Records the events drained from `id`, which was in epoch `before`
    /// when the input arrived and is in `epoch` at `term` now, and empties
    /// `events`.
    fn record_events(
        &mut self,
        id: NodeId,
        (before, epoch, term): (crate::node::EpochId, crate::node::EpochId, u64),
        events: &mut Vec<Event>,
    ) {
        // Each event in the epoch it happened in (one input can elect the
        // node and then move it to another epoch).
        let epochs = epochs::of_events(before, epoch, events);
        self.dr.note_events(before, events, &epochs);
        for (e, epoch) in events.drain(..).zip(epochs) {
            if let Event::BecameLeader { term, .. } = &e {
                self.obs.lock().on_leader(id, epoch, *term);
            }
            self.trace
                .push(format!("{} {id} e{epoch} t{term} {e:?}", self.now_us));
            self.events.push((self.now_us, id, e));
        }
    }

    /// Runs for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        let until = self.now_us.saturating_add(micros(d));
        self.run_until_us(until);
    }

    fn run_until_us(&mut self, until: u64) {
        while let Some(at) = self.queue.next_at() {
            if at > until {
                break;
            }
            self.step();
        }
        self.now_us = self.now_us.max(until);
    }

    /// Runs until `pred` holds (checked after every event) or `limit` of
    /// virtual time passes. Returns whether `pred` held.
    pub fn run_until(&mut self, limit: Duration, mut pred: impl FnMut(&Self) -> bool) -> bool {
        let until = self.now_us.saturating_add(micros(limit));
        loop {
            if pred(self) {
                return true;
            }
            match self.queue.next_at() {
                Some(at) if at <= until => {
                    self.step();
                }
                _ => {
                    self.now_us = self.now_us.max(until);
                    return pred(self);
                }
            }
        }
    }

    /// Virtual time since the start, in µs.
    pub fn now_us(&self) -> u64 {
        self.now_us
    }

    /// Virtual time since the start, in ms.
    pub fn now_ms(&self) -> u64 {
        self.now_us / 1000
    }

    /// The topology.
    pub fn topology(&self) -> &Topology {
        &self.cfg.topology
    }

    /// A running node.
    pub fn node(&self, id: NodeId) -> Option<&Node<Observed<M>>> {
        self.slots.get(&id)?.node.as_ref()
    }

    /// A running node, mutably (for operator calls such as `hand_back`).
    /// Call [`Sim::flush`] afterwards so its outputs are sent.
    pub fn node_mut(&mut self, id: NodeId) -> Option<&mut Node<Observed<M>>> {
        self.slots.get_mut(&id)?.node.as_mut()
    }

    /// Sends a node's pending outputs into the network.
    pub fn flush(&mut self, id: NodeId) {
        self.drain(id);
    }

    /// Every member ever started, live or not.
    pub fn members(&self) -> Vec<NodeId> {
        self.slots.keys().copied().collect()
    }

    /// Whether a member is running.
    pub fn is_up(&self, id: NodeId) -> bool {
        self.node(id).is_some()
    }

    /// The site of a member.
    pub fn site_of(&self, id: NodeId) -> &str {
        self.slots.get(&id).map_or("", |s| s.member.site.as_str())
    }

    /// The member description.
    pub fn member(&self, id: NodeId) -> Option<&Member> {
        self.slots.get(&id).map(|s| &s.member)
    }

    /// The running leader of the newest epoch with the highest term, if
    /// any (a stale one may not have noticed it was deposed).
    pub fn leader(&self) -> Option<NodeId> {
        let mut best: Option<(NodeId, crate::node::EpochId, u64)> = None;
        for (&id, s) in &self.slots {
            let Some(n) = s.node.as_ref().filter(|n| n.is_leader()) else {
                continue;
            };
            let (epoch, term) = (n.epoch(), n.term());
            let better = best
                .is_none_or(|(_, e, t)| crate::ids::newer(epoch, e) || (epoch == e && term > t));
            if better {
                best = Some((id, epoch, term));
            }
        }
        best.map(|(id, _, _)| id)
    }

    /// Proposes at a member.
    ///
    /// # Errors
    /// [`ProposeError`] from the node; `NotLeader { leader: None }` if the
    /// member is down or paused.
    pub fn propose(&mut self, at: NodeId, command: Vec<u8>) -> Result<ProposalId, ProposeError> {
        let live = self.slots.get_mut(&at).filter(|s| !s.paused);
        let Some(n) = live.and_then(|s| s.node.as_mut()) else {
            return Err(ProposeError::NotLeader { leader: None });
        };
        let digest = invariants::digest(&command);
        let id = n.propose(command)?;
        self.submitted.insert(id, self.now_us);
        self.commands.insert(id, digest);
        self.drain(at);
        Ok(id)
    }

    /// Asks a member for a linearizable read point (see [`Node::read`]);
    /// the answer shows in [`reads`](Self::reads), and the member's state
    /// machine may be read as soon as it does.
    ///
    /// # Errors
    /// [`ProposeError`] from the node; `NotLeader { leader: None }` if the
    /// member is down or paused.
    pub fn read(&mut self, at: NodeId) -> Result<crate::node::ReadId, ProposeError> {
        let live = self.slots.get_mut(&at).filter(|s| !s.paused);
        let Some(n) = live.and_then(|s| s.node.as_mut()) else {
            return Err(ProposeError::NotLeader { leader: None });
        };
        let id = n.read()?;
        self.reads_asked.insert(id, self.now_us);
        self.drain(at);
        Ok(id)
    }

    /// Every answered read, in the order they were answered.
    pub fn reads(&self) -> &[ReadDone] {
        &self.reads
    }

    /// Every event of every node, with its virtual time (µs).
    pub fn events(&self) -> &[(u64, NodeId, Event)] {
        &self.events
    }

    /// Every proposal outcome, in the order they reached their proposers.
    pub fn commits(&self) -> &[Commit] {
        &self.outcomes
    }

    /// One line per start, crash, partition, heal and event: identical for
    /// identical seeds and schedules.
    pub fn trace(&self) -> &[String] {
        &self.trace
    }

    /// Envelopes handed to members so far: every raft and control message
    /// (and fragment) that crossed the network, not those lost, cut, or
    /// addressed to a crashed member. The traffic a run
    /// made, e.g. to compare with another driver of raft.
    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    /// Digest of a command, as recorded per applied index.
    pub fn digest(command: &[u8]) -> u64 {
        invariants::digest(command)
    }

    /// A digest of the whole run so far: the bytes of every envelope
    /// delivered (with its time and receiver) and every member's sequence
    /// of applied commands. Two runs with the same seed and the same calls
    /// give the same digest, byte for byte.
    ///
    /// The digest is folded a 64-bit word at a time, never byte by byte:
    /// each word is xored in, multiplied by an odd constant and
    /// xor-shifted; bytes are read as fixed little-endian words (the last
    /// few zero-padded) followed by their length, so it is the same on
    /// every platform and toolchain. Per delivered envelope it folds the
    /// delivery time, the receiver and the envelope's bytes; then each
    /// member's id and the digest of its applied sequence (epoch, index,
    /// position and command digest of every apply, the same way).
    pub fn run_digest(&self) -> u64 {
        let mut h = invariants::fold_word(invariants::DIGEST_START, self.wire_digest);
        for (node, seq) in self.obs.lock().applied_sequences() {
            h = invariants::fold_word(h, node.0);
            h = invariants::fold_word(h, *seq);
        }
        h
    }
}

/// A duration in whole microseconds, saturating (a `Duration` can hold
/// more than `u64` microseconds).
pub(crate) fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}
