//! One member over TCP with durable storage, assembled in one call.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use slog::{o, Logger};
use thiserror::Error;

use super::{inbound_channel, spawn, Handle, RuntimeConfig};
use crate::error::Fatal;
use crate::node::{Node, NodeConfig};
use crate::state_machine::StateMachine;
use crate::storage::{DurableStorage, StoreError};
use crate::topology::{self, NodeId, Topology};
use crate::transport::{
    Limits, StatsHandle, TcpConfig, TcpTransport, TransportError, TransportSecurity,
};

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
    /// are exactly the members whose certificates the transport accepts.
    pub peers: BTreeMap<NodeId, SocketAddr>,
    /// Its data directory (created if missing; must be its own).
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
}

impl MemberConfig {
    /// A member with default [`Limits`], not joining (`joining: None`),
    /// with no replacements among its peers.
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
/// member's durable storage,
/// starts its TCP transport and its runtime thread, and returns its
/// handle.
///
/// # Errors
/// [`StartError`] naming what is wrong; nothing is left running.
pub fn start_member<M>(cfg: MemberConfig, sm: M, logger: &Logger) -> Result<Member, StartError>
where
    M: StateMachine + Send + 'static,
{
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
    let logger = logger.new(o!("node" => cfg.id.0));
    let cluster = cfg.topology.cluster_id();
    let mut tcp = TcpConfig::new(
        cluster,
        cfg.id,
        cfg.listen,
        cfg.peers.clone(),
        cfg.security.clone(),
    );
    tcp.limits = cfg.limits.clone();
    tcp.fingerprint = Some(cfg.topology.fingerprint());
    tcp.validate()?; // before the data directory is touched
    let storage = DurableStorage::open(&cfg.data_dir, cluster, cfg.id.0)?;
    let mut node_cfg = NodeConfig::new(cfg.id, cfg.topology.clone());
    node_cfg.logger = logger.clone();
    node_cfg.seed = cfg.id.0;
    node_cfg.joining = cfg.joining.clone();
    let node = Node::new(node_cfg, storage, sm)?;
    let (tx, rx) = inbound_channel();
    let transport = TcpTransport::start(tcp, tx, logger.clone())?;
    let stats = transport.stats_handle();
    let local_addr = transport.local_addr();
    let rt = RuntimeConfig::new(cfg.topology.timers().tick);
    let handle = spawn(node, transport, rx, rt, logger);
    Ok(Member {
        handle,
        transport: stats,
        local_addr,
    })
}
