//! One member over TCP with durable storage, assembled in one call.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use slog::{o, Logger};
use thiserror::Error;

use super::{inbound_channel, spawn, Handle, RuntimeConfig};
use crate::error::Fatal;
use crate::node::{Node, NodeConfig};
use crate::state_machine::StateMachine;
use crate::storage::{DurableStorage, LogStore, StoreError};
use crate::topology::{self, NodeId, Topology};
use crate::transport::{
    Limits, StatsHandle, TcpConfig, TcpTransport, TransportError, TransportSecurity,
};
use crate::wire::ProtocolRange;

/// Everything one member needs to run over TCP.
#[derive(Debug, Clone)]
pub struct MemberConfig {
    /// The cluster's topology (the same at every member).
    pub topology: Arc<Topology>,
    /// This member.
    pub id: NodeId,
    /// Where it listens.
    pub listen: SocketAddr,
    /// Where every other member listens: every other member of the
    /// topology, and no one else unless listed in `replacements`. These
    /// are exactly the members whose certificates the transport accepts at
    /// start; then the peers follow the replicated topology (members added,
    /// removed, or moved to a new `ip:port`: see the README, "Changing the
    /// topology at runtime").
    pub peers: BTreeMap<NodeId, SocketAddr>,
    /// Its data directory (created if missing; must be its own), where
    /// [`start_member`] keeps its raft log ([`DurableStorage`]). Not used
    /// by [`start_member_with_storage`], which is given its storage.
    pub data_dir: PathBuf,
    /// For a replacement joining a running cluster: its description (see
    /// [`Node::replacement_member`]).
    pub joining: Option<topology::Member>,
    /// Members that joined after the topology was written (replacements
    /// started with [`MemberConfig::joining`], see
    /// [`Handle::replace_member`](super::Handle::replace_member)): the
    /// only ids `peers` may list that the topology does not. Empty by
    /// default.
    pub replacements: BTreeSet<NodeId>,
    /// How it authenticates the other members: mutual TLS (see
    /// [`TransportSecurity`]), or plaintext on loopback for tests.
    pub security: TransportSecurity,
    /// Its transport's limits and deadlines.
    pub limits: Limits,
    /// The protocol versions it speaks ([`TcpConfig::protocol`]): every
    /// version this build speaks by default. Lower the maximum to keep a
    /// newly upgraded member talking as the old build until every member
    /// runs the new one (see [`wire::version`](crate::wire::version)).
    pub protocol: ProtocolRange,
    /// Its operator endpoint, if it has one (see [`OperatorSettings`]).
    /// `None` by default.
    pub operator: Option<OperatorSettings>,
    /// The node's own settings (proposal queue, command size, snapshots
    /// and compaction, jitter seed). The timers and the hand-back policy
    /// are the cluster's, in the [`Topology`].
    pub node: NodeSettings,
    /// How its runtime thread batches work and reports stalls (the tick is
    /// the topology's [`Timers::tick`](crate::policy::Timers::tick)).
    pub runtime: RuntimeSettings,
}

/// The settings of a member's [`Node`] that are its own rather than the
/// cluster's: the fields of [`NodeConfig`] that [`start_member`] does not
/// derive from the [`MemberConfig`] itself. Each field documents its
/// default, the same as [`NodeConfig::new`]'s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSettings {
    /// Whether a follower forwards proposals to the leader (and queues them
    /// while there is none) instead of refusing them with
    /// [`ProposeError::NotLeader`](crate::error::ProposeError::NotLeader).
    /// Defaults to `true`.
    pub forward_proposals: bool,
    /// Proposals allowed to wait at once. Defaults to 4096.
    pub max_pending: usize,
    /// Largest command accepted, in bytes. Defaults to 1 MiB. Keep it
    /// below the transport's [`Limits::max_message`].
    pub max_command_len: usize,
    /// Take a snapshot and compact the log every this many applied
    /// entries, once they also hold as many bytes as the last snapshot
    /// (see [`NodeConfig::snapshot_every`](crate::NodeConfig::snapshot_every)).
    /// Defaults to 1024.
    pub snapshot_every: u64,
    /// Entries kept behind a snapshot for followers that lag a little
    /// (raise it when followers often fall behind by more and receive
    /// whole snapshots instead). Defaults to 256.
    pub keep_entries: u64,
    /// Seeds the node's jitter. Defaults to `None`: the member's id.
    pub seed: Option<u64>,
    /// [`NodeConfig::retain_max_entries`]. Defaults to `None`.
    pub retain_max_entries: Option<u64>,
    /// [`NodeConfig::retain_max_bytes`]. Defaults to `None`.
    pub retain_max_bytes: Option<u64>,
    /// [`NodeConfig::retain_warn_percent`]. Defaults to 80.
    pub retain_warn_percent: u8,
    /// The leader's automatic replacement policy (`[replace]`). Defaults
    /// to `None`: off.
    pub replace: Option<crate::node::ReplacePolicy>,
}

impl Default for NodeSettings {
    fn default() -> Self {
        Self {
            forward_proposals: true,
            max_pending: 4096,
            max_command_len: 1 << 20,
            snapshot_every: 1024,
            keep_entries: 256,
            seed: None,
            retain_max_entries: None,
            retain_max_bytes: None,
            retain_warn_percent: 80,
            replace: None,
        }
    }
}

impl NodeSettings {
    /// Sets these on `cfg` (the seed defaulting to `cfg.id`).
    pub fn apply_to(&self, cfg: &mut NodeConfig) {
        cfg.forward_proposals = self.forward_proposals;
        cfg.max_pending = self.max_pending;
        cfg.max_command_len = self.max_command_len;
        cfg.snapshot_every = self.snapshot_every;
        cfg.keep_entries = self.keep_entries;
        cfg.retain_max_entries = self.retain_max_entries;
        cfg.retain_max_bytes = self.retain_max_bytes;
        cfg.retain_warn_percent = self.retain_warn_percent;
        cfg.seed = self.seed.unwrap_or(cfg.id.0);
        cfg.replace = self.replace.clone();
    }
}

/// Where and how the member's operator endpoint runs (feature
/// `operator`: see the `operator` module; `node run` starts it from the
/// member file's `[operator]` table). The library does not start it by
/// itself: the service calls `operator::serve_member`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorSettings {
    /// Where it listens. Off loopback it requires `tls`.
    pub listen: SocketAddr,
    /// Mutual TLS with the member's own transport files (the cluster CA,
    /// its certificate and key): clients must present an operator
    /// certificate of the cluster CA.
    pub tls: bool,
    /// For how long after start `/health` answers 200 without a known
    /// leader. Defaults to 10 s.
    pub startup_grace: Duration,
    /// Threads answering requests. Defaults to 2.
    pub threads: usize,
}

impl OperatorSettings {
    /// Plain HTTP on `listen` (a loopback address), the defaults otherwise.
    pub fn new(listen: SocketAddr) -> Self {
        Self {
            listen,
            tls: false,
            startup_grace: Duration::from_secs(10),
            threads: 2,
        }
    }
}

/// The settings of a member's runtime thread ([`RuntimeConfig`] without
/// the tick, which is the topology's). Each field documents its default,
/// the same as [`RuntimeConfig::new`]'s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeSettings {
    /// Inputs taken per batch at most. Defaults to 1024.
    pub batch: usize,
    /// Events buffered for the reader of
    /// [`Handle::events`](super::Handle::events); when it falls behind,
    /// newer events are dropped and counted. Defaults to 4096.
    pub event_queue: usize,
    /// A pass of the thread taking longer than this, or ticks further
    /// apart than this, is logged as a warning. Defaults to 50 ms.
    pub warn_stall: Duration,
    /// Whether the thread keeps the member's metrics up to date (see
    /// [`RuntimeConfig::metrics`]). Defaults to `true`.
    pub metrics: bool,
}

impl Default for RuntimeSettings {
    fn default() -> Self {
        Self {
            batch: 1024,
            event_queue: 4096,
            warn_stall: Duration::from_millis(50),
            metrics: true,
        }
    }
}

impl RuntimeSettings {
    /// The [`RuntimeConfig`] with these settings, ticking every `tick`.
    pub fn with_tick(&self, tick: Duration) -> RuntimeConfig {
        RuntimeConfig {
            tick,
            batch: self.batch,
            event_queue: self.event_queue,
            warn_stall: self.warn_stall,
            metrics: self.metrics,
            early_send: true,
        }
    }
}

impl MemberConfig {
    /// A member with default [`Limits`], [`NodeSettings`] and
    /// [`RuntimeSettings`], not joining (`joining: None`), with no
    /// replacements among its peers.
    pub fn new(
        topology: Arc<Topology>,
        id: NodeId,
        listen: SocketAddr,
        peers: BTreeMap<NodeId, SocketAddr>,
        data_dir: impl Into<PathBuf>,
        security: TransportSecurity,
    ) -> Self {
        Self {
            topology,
            id,
            listen,
            peers,
            data_dir: data_dir.into(),
            joining: None,
            replacements: BTreeSet::new(),
            security,
            limits: Limits::default(),
            protocol: ProtocolRange::SUPPORTED,
            operator: None,
            node: NodeSettings::default(),
            runtime: RuntimeSettings::default(),
        }
    }
}

/// A member could not start; nothing was left running.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StartError {
    /// The data directory could not be opened, or is another member's.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The listen address could not be bound, or the transport's security
    /// is refused (plaintext off loopback, bad TLS files, a certificate
    /// that does not name this member).
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The node refused to start on its data.
    #[error(transparent)]
    Node(#[from] Fatal),
    /// A voter of the topology has no address.
    #[error("no address for member {0}: list every other member under peers")]
    MissingPeer(NodeId),
    /// `peers` lists a node the topology does not: its certificate would
    /// be accepted although it is not a member.
    #[error("peer {0} is not in the topology: remove it from peers, or list it under replacements if it joined as a replacement")]
    UnknownPeer(NodeId),
}

/// A running member: the service's [`Handle`] plus its transport's counters.
#[derive(Debug)]
pub struct Member {
    /// Propose, watch, ask, stop.
    pub handle: Handle,
    /// The transport's counters (connections refused, frames dropped, ...).
    pub transport: StatsHandle,
    /// The address it listens on (useful with port 0).
    pub local_addr: SocketAddr,
}

/// Checks the peers against the topology (every other member listed, no
/// one else but `replacements`) and the transport's security, opens the
/// member's durable storage ([`DurableStorage`] in `cfg.data_dir`),
/// starts its TCP transport and its runtime thread, and returns its
/// handle.
///
/// # Errors
/// [`StartError`] naming what is wrong; nothing is left running.
pub fn start_member<M>(cfg: MemberConfig, sm: M, logger: &Logger) -> Result<Member, StartError>
where
    M: StateMachine + Send + 'static,
{
    let tcp = check(&cfg)?; // before the data directory is touched
    let storage = DurableStorage::open(&cfg.data_dir, cfg.topology.cluster_id(), cfg.id.0)?;
    run(cfg, tcp, storage, sm, logger)
}

/// [`start_member`] on a log store of the caller's (any [`LogStore`]:
/// [`MemStorage`](crate::storage::MemStorage) for tests, or the
/// service's own engine); `cfg.data_dir` is not used. The store must be
/// this member's own (a store that is another member's, or another
/// cluster's, is the caller's to refuse: [`DurableStorage::open`] checks
/// that for its directory), and must meet the [`LogStore`] requirements
/// ([`storage::testing::conformance`](crate::storage::testing::conformance)
/// checks an implementation).
///
/// # Errors
/// [`StartError`] naming what is wrong; nothing is left running.
pub fn start_member_with_storage<S, M>(
    cfg: MemberConfig,
    storage: S,
    sm: M,
    logger: &Logger,
) -> Result<Member, StartError>
where
    S: LogStore + Send + 'static,
    M: StateMachine + Send + 'static,
{
    let tcp = check(&cfg)?;
    run(cfg, tcp, storage, sm, logger)
}

/// Checks the peers against the topology and the transport's
/// configuration; returns the transport's.
fn check(cfg: &MemberConfig) -> Result<TcpConfig, StartError> {
    for &id in cfg.topology.members().keys() {
        if id != cfg.id && !cfg.peers.contains_key(&id) {
            return Err(StartError::MissingPeer(id));
        }
    }
    for &id in cfg.peers.keys() {
        if cfg.topology.member(id).is_none() && !cfg.replacements.contains(&id) {
            return Err(StartError::UnknownPeer(id));
        }
    }
    let mut tcp = TcpConfig::new(
        cfg.topology.cluster_id(),
        cfg.id,
        cfg.listen,
        cfg.peers.clone(),
        cfg.security.clone(),
    );
    tcp.limits = cfg.limits.clone();
    tcp.fingerprint = Some(cfg.topology.fingerprint());
    tcp.protocol = cfg.protocol;
    tcp.validate()?;
    Ok(tcp)
}

/// Starts the node on `storage`, its transport and its thread.
fn run<S, M>(
    cfg: MemberConfig,
    tcp: TcpConfig,
    storage: S,
    sm: M,
    logger: &Logger,
) -> Result<Member, StartError>
where
    S: LogStore + Send + 'static,
    M: StateMachine + Send + 'static,
{
    let logger = logger.new(o!("node" => cfg.id.0));
    let mut node_cfg = NodeConfig::new(cfg.id, cfg.topology.clone());
    node_cfg.logger = logger.clone();
    node_cfg.joining = cfg.joining.clone();
    node_cfg.protocol = cfg.protocol;
    cfg.node.apply_to(&mut node_cfg);
    let node = Node::new(node_cfg, storage, sm)?;
    let (tx, rx) = inbound_channel();
    let transport = TcpTransport::start(tcp, tx, logger.clone())?;
    let stats = transport.stats_handle();
    let local_addr = transport.local_addr();
    let rt = cfg.runtime.with_tick(cfg.topology.timers().tick);
    let handle = spawn(node, transport, rx, rt, logger);
    Ok(Member {
        handle,
        transport: stats,
        local_addr,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::topology::denver_paris;

    #[test]
    fn settings_default_to_what_node_and_runtime_configs_default_to() {
        let topology = Arc::new(denver_paris().build().unwrap());
        let plain = NodeConfig::new(NodeId(3), topology);
        let mut set = plain.clone();
        NodeSettings::default().apply_to(&mut set);
        assert_eq!(
            (
                plain.forward_proposals,
                plain.max_pending,
                plain.max_command_len
            ),
            (set.forward_proposals, set.max_pending, set.max_command_len)
        );
        assert_eq!(
            (plain.snapshot_every, plain.keep_entries),
            (set.snapshot_every, set.keep_entries)
        );
        // The seed defaults to the member's id, as it always did here.
        assert_eq!(set.seed, 3);
        let tick = Duration::from_millis(7);
        assert_eq!(
            RuntimeSettings::default().with_tick(tick),
            RuntimeConfig::new(tick)
        );
    }

    #[test]
    fn node_settings_reach_the_node_config() {
        let topology = Arc::new(denver_paris().build().unwrap());
        let mut cfg = NodeConfig::new(NodeId(1), topology);
        let s = NodeSettings {
            forward_proposals: false,
            max_pending: 7,
            max_command_len: 99,
            snapshot_every: 5,
            keep_entries: 10_000,
            seed: Some(42),
            retain_max_entries: Some(50_000),
            retain_max_bytes: Some(1 << 30),
            retain_warn_percent: 70,
            replace: None,
        };
        s.apply_to(&mut cfg);
        assert!(!cfg.forward_proposals);
        assert_eq!(
            (cfg.max_pending, cfg.max_command_len, cfg.snapshot_every),
            (7, 99, 5)
        );
        assert_eq!((cfg.keep_entries, cfg.seed), (10_000, 42));
        assert_eq!(
            (
                cfg.retain_max_entries,
                cfg.retain_max_bytes,
                cfg.retain_warn_percent
            ),
            (Some(50_000), Some(1 << 30), 70)
        );
    }
}
