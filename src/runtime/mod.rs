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
mod peers;
mod snapshots;

use std::any::Any;
use std::collections::HashMap;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{select, Receiver, Sender};
use parking_lot::{Mutex, RwLock};
use slog::Logger;

use handle::Completer;
pub use handle::{Handle, Pending};
pub use member::{
    start_member, start_member_with_storage, Member, MemberConfig, NodeSettings, OperatorSettings,
    RuntimeSettings, StartError,
};

use crate::error::{
    ActivateError, DrainError, HandBackError, MembershipError, ProposeError, TransferError,
};
use crate::events::Event;
use crate::node::{Applied, Counters, Node, ProposalId, ReadId, Status};
use crate::state_machine::StateMachine;
use crate::storage::LogStore;
use crate::topology::{MemberSpec, NodeId};
use crate::transport::{Inbound, Transport};
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
    /// Whether the thread keeps the member's [metrics](crate::metrics)
    /// up to date ([`Handle::metrics`] encodes them; with `false` it gives
    /// an empty string). Defaults to `true`; has no effect without the
    /// `metrics` feature.
    pub metrics: bool,
    /// Whether a leader's appends leave before its own storage write
    /// rather than after it (see [`Node::set_early_sink`]): the write and
    /// the followers' round trip overlap. Defaults to `true`.
    pub early_send: bool,
}

impl RuntimeConfig {
    /// The defaults, ticking every `tick`.
    pub fn new(tick: Duration) -> Self {
        Self {
            tick,
            batch: 1024,
            event_queue: 4096,
            warn_stall: Duration::from_millis(50),
            metrics: true,
            early_send: true,
        }
    }
}

/// The channel a transport delivers inbound envelopes on. Bounded in
/// count, and in bytes by the transport
/// ([`Limits::inbound_bytes`](crate::transport::Limits::inbound_bytes)):
/// each [`Inbound`] holds its bytes until the node thread takes it. A
/// node that falls behind slows its senders down through TCP.
pub fn inbound_channel() -> (Sender<Inbound>, Receiver<Inbound>) {
    crossbeam_channel::bounded(16 << 10)
}

type Reply<T> = Sender<T>;

/// A query of the state machine, run on the node thread: given the state
/// machine and its type's name, or why there is none to give.
pub(crate) type QueryJob = Box<dyn FnOnce(Result<(&dyn Any, &'static str), ProposeError>) + Send>;

/// How the thread stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shutdown {
    /// Drain first if leading, and wait (bounded) for another leader and
    /// for this member's proposals.
    Graceful,
    /// At once.
    Now,
}

pub(crate) enum Command {
    Propose(Vec<u8>, Completer<Applied>),
    Read(Completer<u64>),
    Query(QueryJob),
    ReadQuery(QueryJob),
    HandBack(Reply<Result<(), HandBackError>>),
    Transfer(NodeId, Reply<Result<(), TransferError>>),
    Drain(bool, Reply<Result<(), DrainError>>),
    Activate(Reply<Result<(), ActivateError>>),
    Replace(
        NodeId,
        MemberSpec,
        Option<String>,
        Reply<Result<(), MembershipError>>,
    ),
    ChangeTopology(
        crate::topology::TopologyChange,
        Reply<Result<u64, crate::node::TopologyChangeError>>,
    ),
    Topology(Reply<Option<Arc<crate::topology::Topology>>>),
    Shutdown(Shutdown),
}

/// Starts the runtime thread for `node`, sending through `transport` and
/// receiving from `inbound` (give the transport the matching sender, see
/// [`inbound_channel`]).
pub fn spawn<M, S, T, I>(
    node: Node<M, S>,
    transport: T,
    inbound: Receiver<I>,
    cfg: RuntimeConfig,
    logger: Logger,
) -> Handle
where
    M: StateMachine + Send + 'static,
    S: LogStore + Send + 'static,
    T: Transport,
    I: Into<Envelope> + Send + 'static,
{
    let (commands, command_rx) = crossbeam_channel::unbounded();
    let (events_tx, events) = crossbeam_channel::bounded(cfg.event_queue.max(1));
    let status = Arc::new(RwLock::new(node.status()));
    let counters = Arc::new(RwLock::new(node.counters().clone()));
    let (shared_status, shared_counters) = (status.clone(), counters.clone());
    #[cfg(feature = "metrics")]
    let recorder = cfg.metrics.then(|| {
        let m = crate::metrics::Metrics::new(node.id(), node.topology());
        node.log_store().observe_syncs(m.fsync_observer());
        crate::metrics::Recorder::new(m)
    });
    #[cfg(feature = "metrics")]
    let metrics_text = recorder.as_ref().map(|r| {
        let m = r.metrics().clone();
        Arc::new(move || m.encode()) as MetricsText
    });
    #[cfg(not(feature = "metrics"))]
    let metrics_text = None;
    let thread = thread::Builder::new()
        .name(format!("sc-node-{}", node.id().0))
        .spawn(move || {
            let mut node = node;
            let transport = Arc::new(Mutex::new(transport));
            if cfg.early_send {
                node.set_early_sink(early_sink(transport.clone()));
            }
            // Snapshots are taken and installed on a worker thread; without
            // one (the OS refused a thread) the node does them itself.
            let snapshots = snapshots::Worker::start(node.id().0).ok();
            if snapshots.is_some() {
                node.offload_snapshots();
            }
            let configured = transport.lock().configured_peers();
            let peers = peers::Following {
                given: configured.clone().unwrap_or_default(),
                configured,
            };
            let mut r = Loop {
                node,
                snapshots,
                peers,
                transport,
                events: events_tx,
                status: shared_status,
                counters: shared_counters,
                waiting: HashMap::new(),
                reads: HashMap::new(),
                read_queries: HashMap::new(),
                stopping: None,
                logger,
                events_dropped: 0,
                refused: 0,
                #[cfg(feature = "metrics")]
                metrics: recorder,
            };
            r.run(&inbound, &command_rx, &cfg);
            // The transport's readers may be blocked handing an envelope to
            // the full inbound channel: close it first, so they return,
            // then stop the transport (which waits for them).
            drop(inbound);
            drop(r);
        })
        .expect("spawning the node thread");
    Handle::new(commands, events, status, counters, thread).with_metrics(metrics_text)
}

/// Sends through `transport` what the node lets go before a storage write,
/// to the peers the transport knows (see [`Transport::reaches`]).
fn early_sink<T: Transport>(transport: Arc<Mutex<T>>) -> crate::node::EarlySink {
    Box::new(move |env: Envelope| {
        let t = transport.lock();
        if !t.reaches(NodeId(env.to)) {
            return Some(env);
        }
        t.send(env);
        None
    })
}

/// Encodes a member's metrics (see [`Handle::metrics`]).
pub(crate) type MetricsText = Arc<dyn Fn() -> String + Send + Sync>;

struct Loop<M: StateMachine, S: LogStore, T> {
    node: Node<M, S>,
    /// Runs the node's snapshot jobs.
    snapshots: Option<snapshots::Worker>,
    /// The transport's peers as the topology has them.
    peers: peers::Following,
    /// Shared with the node's early sink (same thread; never contended).
    transport: Arc<Mutex<T>>,
    events: Sender<Event>,
    status: Arc<RwLock<Status>>,
    counters: Arc<RwLock<Counters>>,
    waiting: HashMap<ProposalId, Completer<Applied>>,
    reads: HashMap<ReadId, Completer<u64>>,
    /// Queries waiting for their read point.
    read_queries: HashMap<ReadId, QueryJob>,
    /// A graceful stop under way: whether this member led when it was
    /// asked, and until when it waits at most.
    stopping: Option<(bool, Instant)>,
    logger: Logger,
    events_dropped: u64,
    /// Envelopes the node refused since the start.
    refused: u64,
    /// Keeps the member's metrics ([`RuntimeConfig::metrics`]).
    #[cfg(feature = "metrics")]
    metrics: Option<crate::metrics::Recorder>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl<M: StateMachine + 'static, S: LogStore, T: Transport> Loop<M, S, T> {
    fn run<I: Into<Envelope>>(
        &mut self,
        inbound: &Receiver<I>,
        commands: &Receiver<Command>,
        cfg: &RuntimeConfig,
    ) {
        let ticker = crossbeam_channel::tick(cfg.tick);
        let batch = cfg.batch.max(1);
        let mut last_tick = Instant::now();
        let snapshots_done = match &self.snapshots {
            Some(w) => w.results(),
            None => crossbeam_channel::never(),
        };
        loop {
            let (what, took, inputs) = select! {
                recv(snapshots_done) -> done => {
                    let start = Instant::now();
                    if let Ok(done) = done {
                        self.node.snapshot_done(done);
                    }
                    ("snapshot result", start, 1)
                }
                recv(inbound) -> env => {
                    let start = Instant::now();
                    let mut n = 0;
                    if let Ok(env) = env {
                        self.step(env);
                        n = 1;
                        for env in inbound.try_iter().take(batch) {
                            self.step(env);
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
                        self.step(env);
                        n += 1;
                    }
                    self.tick();
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
            if self.stop_due() {
                break;
            }
        }
        for (_, reply) in self.waiting.drain() {
            reply.complete(Err(ProposeError::Stopped));
        }
        for (_, reply) in self.reads.drain() {
            reply.complete(Err(ProposeError::Stopped));
        }
        for (_, job) in self.read_queries.drain() {
            job(Err(ProposeError::Stopped));
        }
        self.publish();
    }

    /// Ticks the node, after telling it of the peers whose process the
    /// transport found gone (a connection with them ended, their address
    /// refused a dial): after what arrived from them, which the caller
    /// stepped first (a report from this member's own connection to them
    /// may still precede their last message: that message clears it, see
    /// the node's `probe` module).
    fn tick(&mut self) {
        // Taken before the node runs: its early sink takes the lock too.
        let refused = self.transport.lock().refused_peers();
        for peer in refused {
            self.node.peer_connection_refused(peer);
        }
        self.node.tick(now_ms());
    }

    /// Steps an inbound envelope. A refusal is counted by the node (see
    /// [`Handle::counters`]) and logged here, the first and then every
    /// power of two, so a flood cannot flood the log too.
    fn step(&mut self, env: impl Into<Envelope>) {
        let env = env.into(); // an `Inbound` gives its bytes back here
        let from = env.from;
        if let Err(e) = self.node.step(env) {
            self.refused += 1;
            if self.refused.is_power_of_two() {
                slog::warn!(self.logger, "refused an envelope (logged the first time, then at every power of two; see Handle::counters)";
                    "from" => from, "reason" => %e, "refused" => self.refused);
            }
        }
    }

    /// Makes the node's status and counters readable by the handle.
    fn publish(&mut self) {
        let status = self.node.status();
        #[cfg(feature = "metrics")]
        self.record(&status);
        *self.status.write() = status;
        *self.counters.write() = self.node.counters().clone();
    }

    /// Updates the metrics from the status, and every
    /// [`SLOW_EVERY`](crate::metrics::SLOW_EVERY) from the node's and the
    /// transport's counters.
    #[cfg(feature = "metrics")]
    fn record(&mut self, status: &Status) {
        let Some(m) = &mut self.metrics else { return };
        m.status(status);
        if m.slow_due() {
            m.counters(self.node.counters());
            let transport = self.transport.lock();
            if let Some(t) = transport.stats() {
                m.refused_connections(&t.refused_by_reason());
            }
            m.connections(|peer| transport.connected(peer));
        }
    }

    /// Carries out one request; `false` to stop.
    fn command(&mut self, cmd: Command) -> bool {
        match cmd {
            Command::Propose(data, reply) => match self.node.propose(data) {
                Ok(id) => {
                    #[cfg(feature = "metrics")]
                    if let Some(m) = &mut self.metrics {
                        m.proposed(id);
                    }
                    self.waiting.insert(id, reply);
                }
                Err(e) => reply.complete(Err(e)),
            },
            Command::Read(reply) => match self.node.read() {
                Ok(id) => {
                    self.reads.insert(id, reply);
                }
                Err(e) => reply.complete(Err(e)),
            },
            Command::Query(job) => {
                job(Ok((self.node.state_machine(), std::any::type_name::<M>())));
            }
            Command::ReadQuery(job) => match self.node.read() {
                Ok(id) => {
                    self.read_queries.insert(id, job);
                }
                Err(e) => job(Err(e)),
            },
            Command::HandBack(reply) => {
                let _ = reply.send(self.node.hand_back());
            }
            Command::Transfer(to, reply) => {
                let _ = reply.send(self.node.transfer_leader(to));
            }
            Command::Drain(drained, reply) => {
                let r = if drained {
                    self.node.drain()
                } else {
                    self.node.undrain()
                };
                // Read-your-writes: the status the handle serves shows the
                // new drained flag before the caller hears the answer.
                self.publish();
                let _ = reply.send(r);
            }
            Command::Activate(reply) => {
                let _ = reply.send(self.node.activate());
            }
            Command::Replace(dead, new, address, reply) => {
                let _ = reply.send(self.node.replace_member_at(dead, new, address));
            }
            Command::ChangeTopology(change, reply) => {
                let _ = reply.send(self.node.change_topology(&change));
            }
            Command::Topology(reply) => {
                let _ = reply.send(Some(Arc::new(self.node.topology().clone())));
            }
            Command::Shutdown(Shutdown::Now) => return false,
            Command::Shutdown(Shutdown::Graceful) => self.begin_stop(),
        }
        true
    }

    /// A graceful stop: a leader drains (moving leadership away); then
    /// the thread runs on until [`stop_due`](Self::stop_due).
    fn begin_stop(&mut self) {
        if self.stopping.is_some() {
            return;
        }
        let leading = self.node.is_leader();
        let others = self.node.voters().iter().any(|&v| v != self.node.id());
        if leading && others {
            // Already drained is fine: leadership is moving away already.
            let _ = self.node.drain();
        }
        // raft aborts a transfer that has not landed within an election
        // timeout; a second one covers the new leader's election and the
        // application of what was proposed here.
        let bound = self.node.topology().timers().election * 2;
        slog::info!(self.logger, "stopping gracefully"; "leading" => leading,
            "bound_ms" => bound.as_millis() as u64);
        self.stopping = Some((leading && others, Instant::now() + bound));
    }

    /// Whether a graceful stop may end now: another member leads (if this
    /// one led) and this member's proposals are done, or the bound passed.
    fn stop_due(&self) -> bool {
        let Some((handing_over, until)) = self.stopping else {
            return false;
        };
        let handed = !handing_over
            || (!self.node.is_leader() && self.node.leader().is_some_and(|l| l != self.node.id()));
        (handed && self.waiting.is_empty()) || Instant::now() >= until
    }

    /// Hands the node's outputs on.
    fn flush(&mut self) {
        self.follow_peers();
        while let Some(env) = self.node.poll_transmit() {
            self.transport.lock().send(env);
        }
        if let Some(w) = &self.snapshots {
            while let Some(job) = self.node.poll_snapshot_job() {
                w.submit(job);
            }
        }
        while let Some(o) = self.node.poll_outcome() {
            #[cfg(feature = "metrics")]
            if let Some(m) = &mut self.metrics {
                m.proposal_done(o.id, o.result.is_ok());
            }
            if let Some(reply) = self.waiting.remove(&o.id) {
                reply.complete(o.result);
            }
        }
        while let Some(r) = self.node.poll_read() {
            if let Some(reply) = self.reads.remove(&r.id) {
                reply.complete(Ok(r.index));
            } else if let Some(job) = self.read_queries.remove(&r.id) {
                // Answered: this member has applied up to the read point.
                job(Ok((self.node.state_machine(), std::any::type_name::<M>())));
            }
        }
        while let Some(e) = self.node.poll_event() {
            #[cfg(feature = "metrics")]
            if let Some(m) = &mut self.metrics {
                m.event(&e);
            }
            if self.events.try_send(e).is_err() {
                self.events_dropped += 1;
                if self.events_dropped.is_power_of_two() {
                    slog::warn!(self.logger, "event reader falls behind; events dropped";
                        "dropped" => self.events_dropped);
                }
            }
        }
        self.publish();
    }
}

// The tests run a node with the simulator's `KvStore`.
#[cfg(all(test, feature = "sim"))]
mod tests {
    use super::*;
    use crate::sim::KvStore;
    use crate::storage::MemStorage;
    use crate::topology::denver_paris;
    use crate::wire::PROTOCOL_VERSION;
    use crate::NodeConfig;
    use std::sync::Mutex;
    use std::thread::JoinHandle;

    /// Keeps the warning lines a runtime logs.
    #[derive(Clone, Default)]
    struct Warnings(Arc<Mutex<Vec<String>>>);

    impl slog::Drain for Warnings {
        type Ok = ();
        type Err = slog::Never;
        fn log(&self, r: &slog::Record<'_>, _: &slog::OwnedKVList) -> Result<(), slog::Never> {
            if r.level().is_at_least(slog::Level::Warning) {
                if let Ok(mut lines) = self.0.lock() {
                    lines.push(r.msg().to_string());
                }
            }
            Ok(())
        }
    }

    /// An envelope CM01a refuses: it is for another cluster.
    fn foreign() -> Envelope {
        Envelope {
            version: PROTOCOL_VERSION,
            cluster_id: 999,
            from: 2,
            to: 1,
            ..Envelope::default()
        }
    }

    /// A transport whose reader thread delivers foreign envelopes as fast
    /// as the inbound channel takes them, and which waits for that thread
    /// when dropped, as a real transport waits for its readers.
    struct Flooding(Option<JoinHandle<()>>);

    impl Flooding {
        fn start(inbound: Sender<Envelope>) -> Self {
            Self(Some(thread::spawn(move || {
                while inbound.send(foreign()).is_ok() {}
            })))
        }
    }

    impl Transport for Flooding {
        fn send(&self, _: Envelope) -> bool {
            true
        }
    }

    impl Drop for Flooding {
        fn drop(&mut self) {
            if let Some(t) = self.0.take() {
                let _ = t.join();
            }
        }
    }

    fn run(logger: Logger) -> Handle {
        let topology = denver_paris().build().unwrap().shared();
        let cfg = NodeConfig::new(NodeId(1), topology.clone());
        let node = Node::new(cfg, MemStorage::new(), KvStore::default()).unwrap();
        let (tx, rx) = crossbeam_channel::bounded(4);
        let rt = RuntimeConfig::new(topology.timers().tick);
        spawn(node, Flooding::start(tx), rx, rt, logger)
    }

    /// A reader blocked on the full inbound channel must not keep the
    /// runtime from stopping: the channel is closed before the transport
    /// waits for its readers.
    #[test]
    fn shutdown_returns_while_a_reader_is_blocked_on_a_full_channel() {
        let handle = run(Logger::root(slog::Discard, slog::o!()));
        let (done, finished) = crossbeam_channel::bounded(1);
        thread::spawn(move || {
            handle.shutdown();
            let _ = done.send(());
        });
        // Not a time measured: a bound on a hang (it returns in milliseconds).
        assert!(
            finished.recv_timeout(Duration::from_secs(60)).is_ok(),
            "shutdown hung"
        );
    }

    /// Refused envelopes are counted where the handle reads them, and
    /// logged the first time and then at every power of two.
    #[test]
    fn refusals_are_counted_and_logged_sparingly() {
        let warnings = Warnings::default();
        let logger = Logger::root(slog::Fuse(warnings.clone()), slog::o!());
        let handle = run(logger);
        let start = Instant::now();
        while handle.counters().wrong_cluster < 1000 {
            assert!(start.elapsed() < Duration::from_secs(60), "not counted");
            thread::sleep(Duration::from_millis(5));
        }
        handle.shutdown();
        let counted = handle.counters().wrong_cluster;
        let logged = warnings
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.starts_with("refused an envelope"))
            .count();
        // 1, 2, 4, ... up to the count.
        assert_eq!(logged as u32, counted.ilog2() + 1, "{counted} refused");
        assert_eq!(handle.counters().rejected(), counted);
    }
}
