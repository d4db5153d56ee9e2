//! The threaded runtime: one thread owns a [`Node`], ticks it on the real
//! clock, steps what the [transport](crate::transport) receives, carries
//! out the [`Handle`]'s requests, and hands the node's outputs on: envelopes
//! to the transport, results to the proposers, events to the event stream,
//! a fresh [`Status`] to readers. The node persists inside (its storage
//! writes happen before any message that depends on them is handed out).
//!
//! Everything that arrives while the thread is busy is taken as one batch
//! (up to [`RuntimeConfig::batch`] items) before the node is polled, so
//! concurrent proposers share one storage write and one replication round.

mod handle;
mod member;

use std::collections::HashMap;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{select, Receiver, Sender};
use parking_lot::RwLock;
use slog::Logger;

pub use handle::{Handle, Pending};
pub use member::{start_member, Member, MemberConfig, StartError};

use crate::error::{HandBackError, MembershipError, ProposeError};
use crate::events::Event;
use crate::node::{Applied, Node, ProposalId, ReadId, Status};
use crate::state_machine::StateMachine;
use crate::storage::LogStore;
use crate::topology::{MemberSpec, NodeId};
use crate::transport::Transport;
use crate::wire::Envelope;

/// How the runtime thread runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// Tick period; use the topology's [`Timers::tick`](crate::policy::Timers::tick).
    pub tick: Duration,
    /// Inputs taken per batch at most. Defaults to 1024.
    pub batch: usize,
    /// Events buffered for the reader of [`Handle::events`]; when it falls
    /// behind, newer events are dropped and counted. Defaults to 4096.
    pub event_queue: usize,
    /// A pass of the thread taking longer than this, or ticks further apart
    /// than this, is logged as a warning (with what it was doing): a leader
    /// silent for its standby's failover time is replaced, so a stall here
    /// explains a failover nobody asked for. Defaults to 50 ms.
    pub warn_stall: Duration,
}

impl RuntimeConfig {
    /// The defaults, ticking every `tick`.
    pub fn new(tick: Duration) -> Self {
        Self {
            tick,
            batch: 1024,
            event_queue: 4096,
            warn_stall: Duration::from_millis(50),
        }
    }
}

/// The channel a transport delivers inbound envelopes on. Bounded: a node
/// that falls behind slows its senders down through TCP.
pub fn inbound_channel() -> (Sender<Envelope>, Receiver<Envelope>) {
    crossbeam_channel::bounded(16 << 10)
}

type Reply<T> = Sender<T>;

pub(crate) enum Command {
    Propose(Vec<u8>, Reply<Result<Applied, ProposeError>>),
    Read(Reply<Result<u64, ProposeError>>),
    HandBack(Reply<Result<(), HandBackError>>),
    Replace(NodeId, MemberSpec, Reply<Result<(), MembershipError>>),
    Shutdown,
}

/// Starts the runtime thread for `node`, sending through `transport` and
/// receiving from `inbound` (give the transport the matching sender, see
/// [`inbound_channel`]).
pub fn spawn<M, S, T>(
    node: Node<M, S>,
    transport: T,
    inbound: Receiver<Envelope>,
    cfg: RuntimeConfig,
    logger: Logger,
) -> Handle
where
    M: StateMachine + Send + 'static,
    S: LogStore + Send + 'static,
    T: Transport,
{
    let (commands, command_rx) = crossbeam_channel::unbounded();
    let (events_tx, events) = crossbeam_channel::bounded(cfg.event_queue.max(1));
    let status = Arc::new(RwLock::new(node.status()));
    let shared = status.clone();
    let thread = thread::Builder::new()
        .name(format!("sc-node-{}", node.id().0))
        .spawn(move || {
            let mut r = Loop {
                node,
                transport,
                events: events_tx,
                status: shared,
                waiting: HashMap::new(),
                reads: HashMap::new(),
                logger,
                events_dropped: 0,
            };
            r.run(&inbound, &command_rx, &cfg);
        })
        .expect("spawning the node thread");
    Handle::new(commands, events, status, thread)
}

struct Loop<M: StateMachine, S: LogStore, T> {
    node: Node<M, S>,
    transport: T,
    events: Sender<Event>,
    status: Arc<RwLock<Status>>,
    waiting: HashMap<ProposalId, Reply<Result<Applied, ProposeError>>>,
    reads: HashMap<ReadId, Reply<Result<u64, ProposeError>>>,
    logger: Logger,
    events_dropped: u64,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl<M: StateMachine, S: LogStore, T: Transport> Loop<M, S, T> {
    fn run(
        &mut self,
        inbound: &Receiver<Envelope>,
        commands: &Receiver<Command>,
        cfg: &RuntimeConfig,
    ) {
        let ticker = crossbeam_channel::tick(cfg.tick);
        let batch = cfg.batch.max(1);
        let mut last_tick = Instant::now();
        loop {
            let (what, took, inputs) = select! {
                recv(inbound) -> env => {
                    let start = Instant::now();
                    let mut n = 0;
                    if let Ok(env) = env {
                        let _ = self.node.step(env);
                        n = 1;
                        for env in inbound.try_iter().take(batch) {
                            let _ = self.node.step(env);
                            n += 1;
                        }
                    }
                    ("messages", start, n)
                }
                recv(commands) -> cmd => {
                    let start = Instant::now();
                    let Ok(cmd) = cmd else { break };
                    if !self.command(cmd) {
                        break;
                    }
                    let mut stop = false;
                    let mut n = 1;
                    for cmd in commands.try_iter().take(batch) {
                        n += 1;
                        if !self.command(cmd) {
                            stop = true;
                            break;
                        }
                    }
                    if stop {
                        self.flush();
                        break;
                    }
                    ("requests", start, n)
                }
                recv(ticker) -> _ => {
                    let start = Instant::now();
                    let gap = start.duration_since(last_tick);
                    last_tick = start;
                    if gap >= cfg.warn_stall {
                        slog::warn!(self.logger, "node thread stalled: no tick for a while (starved of CPU or blocked); a leader this silent may be replaced by its standby";
                            "gap_ms" => gap.as_millis() as u64);
                    }
                    // What arrived while the thread was busy goes first, so
                    // a late tick never makes a live leader look silent.
                    let mut n = 0;
                    for env in inbound.try_iter().take(batch) {
                        let _ = self.node.step(env);
                        n += 1;
                    }
                    self.node.tick(now_ms());
                    ("tick", start, n)
                }
            };
            self.flush();
            let took = took.elapsed();
            if took >= cfg.warn_stall {
                slog::warn!(self.logger, "slow pass of the node thread (storage writes, applying, or CPU starvation)";
                    "ms" => took.as_millis() as u64, "handling" => what, "inputs" => inputs);
            }
            if let Some(f) = self.node.fatal() {
                slog::crit!(self.logger, "node stopped"; "reason" => %f);
                break;
            }
        }
        for (_, reply) in self.waiting.drain() {
            let _ = reply.send(Err(ProposeError::Stopped));
        }
        for (_, reply) in self.reads.drain() {
            let _ = reply.send(Err(ProposeError::Stopped));
        }
        *self.status.write() = self.node.status();
    }

    /// Carries out one request; `false` to stop.
    fn command(&mut self, cmd: Command) -> bool {
        match cmd {
            Command::Propose(data, reply) => match self.node.propose(data) {
                Ok(id) => {
                    self.waiting.insert(id, reply);
                }
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            },
            Command::Read(reply) => match self.node.read() {
                Ok(id) => {
                    self.reads.insert(id, reply);
                }
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            },
            Command::HandBack(reply) => {
                let _ = reply.send(self.node.hand_back());
            }
            Command::Replace(dead, new, reply) => {
                let _ = reply.send(self.node.replace_member(dead, new));
            }
            Command::Shutdown => return false,
        }
        true
    }

    /// Hands the node's outputs on.
    fn flush(&mut self) {
        while let Some(env) = self.node.poll_transmit() {
            self.transport.send(env);
        }
        while let Some(o) = self.node.poll_outcome() {
            if let Some(reply) = self.waiting.remove(&o.id) {
                let _ = reply.send(o.result);
            }
        }
        while let Some(r) = self.node.poll_read() {
            if let Some(reply) = self.reads.remove(&r.id) {
                let _ = reply.send(Ok(r.index));
            }
        }
        while let Some(e) = self.node.poll_event() {
            if self.events.try_send(e).is_err() {
                self.events_dropped += 1;
                if self.events_dropped.is_power_of_two() {
                    slog::warn!(self.logger, "event reader falls behind; events dropped";
                        "dropped" => self.events_dropped);
                }
            }
        }
        *self.status.write() = self.node.status();
    }
}
