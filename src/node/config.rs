//! How a node is set up ([`NodeConfig`]) and how raft is configured under
//! it.

use std::sync::Arc;

use slog::{o, Logger};

use crate::policy::TickTimers;
use crate::topology::{Member, NodeId, Topology};

/// raft must never start an election on its own: the driver decides who
/// campaigns and when. Also keeps raft's internal RNG from mattering.
const NEVER: usize = 1 << 40;

/// raft's configuration for member `id` (raft never campaigns by itself:
/// the election timers are pushed out of reach; see `election`).
pub(super) fn raft_config(
    id: NodeId,
    ticks: &TickTimers,
    applied: u64,
    priority: i64,
) -> raft::Config {
    raft::Config {
        id: id.0,
        election_tick: ticks.election,
        heartbeat_tick: ticks.heartbeat,
        min_election_tick: NEVER,
        max_election_tick: NEVER + 1,
        applied,
        check_quorum: true,
        pre_vote: true,
        priority,
        max_size_per_msg: 1 << 20,
        max_inflight_msgs: 256,
        ..Default::default()
    }
}

/// How a node is set up.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// This node's id.
    pub id: NodeId,
    /// The cluster's topology (identical at every member).
    pub topology: Arc<Topology>,
    /// Where logs go. Defaults to discarding them.
    pub logger: Logger,
    /// Seeds the node's jitter. Defaults to 0; give members different
    /// seeds (the id is mixed in anyway).
    pub seed: u64,
    /// For a member added after the cluster started (a replacement): its
    /// description. It starts empty and catches up from the leader.
    pub joining: Option<Member>,
    /// Whether a follower forwards proposals to the leader (and queues them
    /// while there is none) instead of refusing them with
    /// [`ProposeError::NotLeader`](crate::error::ProposeError::NotLeader). Defaults to `true`.
    pub forward_proposals: bool,
    /// Proposals allowed to wait at once. Defaults to 4096.
    pub max_pending: usize,
    /// Largest command accepted, in bytes. Defaults to 1 MiB.
    pub max_command_len: usize,
    /// Take a snapshot and compact the log every this many applied entries.
    /// Defaults to 1024.
    pub snapshot_every: u64,
    /// Entries kept behind a snapshot for followers that lag a little.
    /// Defaults to 256.
    pub keep_entries: u64,
}

impl NodeConfig {
    /// A configuration for member `id` of `topology` with the defaults.
    pub fn new(id: NodeId, topology: Arc<Topology>) -> Self {
        Self {
            id,
            topology,
            logger: Logger::root(slog::Discard, o!()),
            seed: 0,
            joining: None,
            forward_proposals: true,
            max_pending: 4096,
            max_command_len: 1 << 20,
            snapshot_every: 1024,
            keep_entries: 256,
        }
    }
}
