//! Starting a node (bootstrap, restart, or waiting to join), and unpacking
//! the library's state from a snapshot: one function for both a restart
//! and a snapshot received from the leader.

use std::collections::{BTreeMap, VecDeque};

use raft::eraftpb::{ConfState, Snapshot};
use raft::RawNode;

use super::config::{node_logger, raft_config, NodeConfig};
use super::election::Election;
use super::membership::Membership;
use super::proposals::{Dedup, Proposals};
use super::{takeover, Node};
use crate::error::Fatal;
use crate::ids::{EpochId, EpochRecord};
use crate::state_machine::StateMachine;
use crate::storage::{LogStore, LogWrite};
use crate::topology::{Member, NodeId, Topology};
use crate::wire::payload::{
    decode_lineage, decode_reconciled, encode, encode_members, MemberState, SnapshotData,
    TopologyRecord,
};

/// The library's state held in a snapshot (beside the application's).
pub(super) struct Unpacked {
    pub(super) members: BTreeMap<NodeId, MemberState>,
    pub(super) dedup: Dedup,
    pub(super) conf: ConfState,
    /// The snapshot's index: applied, and the latest snapshot, here.
    pub(super) index: u64,
    pub(super) lineage: Vec<EpochRecord>,
    pub(super) reconciled: BTreeMap<EpochId, u64>,
    pub(super) covered: BTreeMap<EpochId, u64>,
    /// The topology as applied (None: the member's own, version 0).
    pub(super) topology: Option<TopologyRecord>,
    /// The last replication state committed (DR auto-sync).
    pub(super) replication: Option<crate::wire::payload::ReplicationRecord>,
    /// The snapshot's size in bytes, which the next one waits to be
    /// outweighed by (see `ready::snapshot_due`).
    pub(super) bytes: u64,
}

impl Unpacked {
    /// Unpacks `data`, the decoded payload of `snap`.
    pub(super) fn of(snap: &Snapshot, data: &SnapshotData) -> Self {
        let meta = snap.get_metadata();
        Self {
            members: data
                .members
                .iter()
                .map(|r| (NodeId(r.id), r.to_state()))
                .collect(),
            dedup: Dedup::from_records(&data.dedup),
            conf: meta.get_conf_state().clone(),
            index: meta.index,
            lineage: decode_lineage(&data.epochs),
            reconciled: decode_reconciled(&data.reconciled),
            covered: decode_reconciled(&data.covered),
            topology: data.topology.clone(),
            replication: data.replication,
            bytes: snap.data.len() as u64,
        }
    }
}

/// Every member of `topology`, as its initial configuration describes it.
fn topology_members(topology: &Topology) -> BTreeMap<NodeId, MemberState> {
    topology
        .members()
        .values()
        .map(|m| {
            (
                m.id(),
                MemberState {
                    member: m.clone(),
                    replaces: None,
                    address: None,
                },
            )
        })
        .collect()
}

/// Writes the initial configuration to empty storage (identically at
/// every member of the topology), with the state machine's state read
/// from its [`snapshot_handle`](StateMachine::snapshot_handle) straight
/// into the one buffer stored (a large state built in place is not
/// copied twice more to be encoded).
fn bootstrap<S: LogStore, M: StateMachine>(
    storage: &S,
    topology: &Topology,
    members: &BTreeMap<NodeId, MemberState>,
    sm: &M,
) -> Result<(), Fatal> {
    let mut snap = Snapshot::default();
    let header = SnapshotData {
        members: encode_members(members),
        ..SnapshotData::default()
    };
    snap.data = super::snapshot::read_all(&mut *sm.snapshot_handle(), &encode(&header))?.into();
    let meta = snap.mut_metadata();
    meta.index = 1;
    meta.term = 1;
    let cs = meta.mut_conf_state();
    cs.voters = topology.voters().iter().map(|n| n.0).collect();
    cs.learners = topology.learners().iter().map(|n| n.0).collect();
    storage.persist(LogWrite {
        snapshot: Some(&snap),
        entries: &[],
        hard_state: None,
        sync: true,
    })?;
    Ok(())
}

/// This member's description: the one it joins with (only without data:
/// once it has data, `joining` is what it started as, not what it is), or
/// the topology's. A member added at runtime restarts without `joining`,
/// or with a stale one (a spare's file names it as joining for good): its
/// data (`initialized`) holds the topology and records that added it
/// (restored from the snapshot, or applied again from the log), which set
/// its priority, so it has none here (`None`).
///
/// # Errors
/// [`Fatal::UnknownNode`] for a member in neither, without data.
fn own_member(
    cfg: &NodeConfig,
    topology: &Topology,
    initialized: bool,
) -> Result<Option<Member>, Fatal> {
    if let Some(m) = cfg.joining.as_ref().filter(|_| !initialized) {
        return Ok(Some(m.clone()));
    }
    match topology.member(cfg.id) {
        Some(m) => Ok(Some(m.clone())),
        None if initialized => Ok(None),
        None => Err(Fatal::UnknownNode(cfg.id)),
    }
}

impl<M: StateMachine, S: LogStore> Node<M, S> {
    /// [`Node::new`].
    pub(super) fn start(cfg: NodeConfig, storage: S, mut sm: M) -> Result<Self, Fatal> {
        let id = cfg.id;
        let topology = cfg.topology.clone();
        let ticks = *topology.ticks();
        let logger = node_logger(&cfg.logger, id);
        let mut members = topology_members(&topology);
        let me = own_member(&cfg, &topology, storage.is_initialized())?;

        // A member that left its epoch for a newer one keeps a marker: an
        // empty configuration naming the epoch it waits to join.
        let marker = storage.latest_snapshot();
        let marked = !storage.is_initialized() && !marker.data.is_empty();
        // Written from the state machine's state: it holds that state
        // already, so it is not restored from what was just written.
        let fresh = !storage.is_initialized() && cfg.joining.is_none() && !marked;
        if fresh {
            bootstrap(&storage, &topology, &members, &sm)?;
        }
        let mut lineage = vec![EpochRecord::FIRST];
        if marked {
            let data = SnapshotData::decode_shared(&marker.data).map_err(Fatal::CorruptSnapshot)?;
            lineage = decode_lineage(&data.epochs);
        }
        let stored = if storage.is_initialized() {
            let snap = storage.latest_snapshot();
            let data = SnapshotData::decode_shared(&snap.data).map_err(Fatal::CorruptSnapshot)?;
            if !fresh {
                sm.restore(&data.user)?;
            }
            Some(Unpacked::of(&snap, &data))
        } else {
            if let Some(me) = &me {
                let member = me.clone();
                let state = MemberState {
                    member,
                    replaces: None,
                    address: None,
                };
                members.insert(me.id(), state);
            }
            None
        };
        let applied = stored.as_ref().map_or(0, |u| u.index);

        let raw = RawNode::new(
            &raft_config(id, &ticks, applied, me.as_ref().map_or(0, Member::priority)),
            storage.clone(),
            &logger,
        )
        .map_err(|e| Fatal::Raft(e.to_string()))?;
        let boot = storage.next_boot()?;
        let mut node = Self {
            id,
            ticks,
            raw,
            storage,
            sm,
            rng: crate::rng::SplitMix64::new(cfg.seed ^ id.0.rotate_left(17) ^ boot),
            ep: takeover::EpochState {
                lineage,
                joining: marked,
                ..takeover::EpochState::default()
            },
            boot,
            fatal: None,
            membership: Membership {
                members,
                ..Membership::default()
            },
            applied: 0,
            snapshot_index: 0,
            now_ms: 0,
            tick_no: 0,
            dirty: false,
            election: Election::default(),
            contact: Default::default(),
            hand_back: Default::default(),
            proposals: Proposals::default(),
            reads: Default::default(),
            drain: Default::default(),
            reconfig: Default::default(),
            snaps: Default::default(),
            outbox: VecDeque::new(),
            early: Default::default(),
            events: VecDeque::new(),
            counters: Default::default(),
            retained: Default::default(),
            dr: Default::default(),
            logger,
            cfg,
        };
        if let Some(unpacked) = stored {
            node.unpack(unpacked);
        }
        node.election.next_campaign = node.campaign_threshold();
        let epoch = node.epoch();
        node.sm.note_epoch(epoch);
        node.on_ready();
        Ok(node)
    }

    /// Takes on the library's state from a snapshot (at start-up, or one
    /// received from the leader and persisted).
    pub(super) fn unpack(&mut self, u: Unpacked) {
        self.membership.members = u.members;
        self.membership.conf = u.conf;
        self.proposals.dedup = u.dedup;
        self.applied = u.index;
        self.snapshot_index = u.index;
        self.snaps.last_bytes = u.bytes;
        self.ep.lineage = u.lineage;
        self.ep.reconciled = u.reconciled;
        self.ep.covered = u.covered;
        if let Some(t) = &u.topology {
            self.apply_topology(t);
        }
        self.adopt_replication(u.replication.as_ref(), u.index);
    }
}
