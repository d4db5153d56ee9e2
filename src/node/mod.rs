//! The sans-IO driver around `raft::RawNode`: site-aware elections, pair
//! failover, survivable takeover, hand-back, membership and proposals.
//!
//! A [`Node`] never spawns a thread, opens a socket or reads a clock. The
//! caller feeds it inputs and drains its outputs:
//!
//! - Inputs: [`tick`](Node::tick) every [`Timers::tick`](crate::policy::Timers::tick)
//!   with the wall-clock time, [`step`](Node::step) for each envelope
//!   received, [`propose`](Node::propose) for commands, and the operator
//!   calls [`hand_back`](Node::hand_back) and [`replace_member`](Node::replace_member).
//! - Outputs, drained after every input or batch of inputs, in this order:
//!   [`poll_transmit`](Node::poll_transmit) (envelopes to send),
//!   [`poll_outcome`](Node::poll_outcome) (proposal results) and
//!   [`poll_event`](Node::poll_event) (typed events).
//!
//! Inputs only record work; the first poll afterwards runs raft on all of
//! it at once, so feeding many envelopes or proposals before polling costs
//! one storage write (group commit). Everything the node writes to its
//! storage is written before any message that depends on it is handed out.

mod control;
mod election;
mod handback;
mod membership;
mod proposals;
mod reads;
mod ready;
mod reunion;
mod status;
mod takeover;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use raft::eraftpb::{ConfState, MessageType, Snapshot};
use raft::{RawNode, StateRole};
use slog::{o, Logger};

pub use crate::ids::{EntryRange, EpochId, EpochRecord, ProposalId, FIRST_EPOCH};
pub use proposals::{Applied, ProposalOutcome};
pub use reads::{ReadId, ReadOutcome};
pub use status::{Counters, NodeRole, PeerStatus, Status};

use self::handback::HandBackState;
use self::proposals::{Dedup, Proposals};
use crate::error::{Fatal, ProposeError, StepError};
use crate::events::{Event, LeadershipCause};
use crate::policy::TickTimers;
use crate::state_machine::StateMachine;
use crate::storage::{LogStore, LogWrite, MemStorage};
use crate::topology::{Member, NodeId, Topology};
use crate::wire::payload::{encode, encode_members, MemberState, SnapshotData};
use crate::wire::{Envelope, PROTOCOL_VERSION};

/// raft must never start an election on its own: the driver decides who
/// campaigns and when. Also keeps raft's internal RNG from mattering.
const NEVER: usize = 1 << 40;

/// raft's configuration for member `id` (raft never campaigns by itself:
/// the election timers are pushed out of reach; see `election`).
fn raft_config(id: NodeId, ticks: &TickTimers, applied: u64, priority: i64) -> raft::Config {
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
    /// [`ProposeError::NotLeader`]. Defaults to `true`.
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

/// One member of the control plane, driven by its caller (sans-IO), with
/// the application's state machine `M` and raft log storage `S`.
pub struct Node<M, S: LogStore = MemStorage> {
    id: NodeId,
    cfg: NodeConfig,
    ticks: TickTimers,
    raw: RawNode<S>,
    storage: S,
    sm: M,
    logger: Logger,
    rng: crate::rng::SplitMix64,
    /// The epoch lineage, first epoch first; this node's epoch is the last.
    lineage: Vec<EpochRecord>,
    /// Epoch state beyond the lineage: fencing, reconciliation, probes.
    ep: takeover::EpochState,
    boot: u64,
    fatal: Option<Fatal>,

    members: BTreeMap<NodeId, MemberState>,
    conf: ConfState,
    removed: bool,
    applied: u64,
    snapshot_index: u64,

    now_ms: u64,
    tick_no: u64,
    role: StateRole,
    leader: Option<NodeId>,
    since_leader: usize,
    next_campaign: usize,
    fast_failover_term: u64,
    /// The standby declined a fast failover in this silence of its
    /// primary because its log was catching up (logged once; cleared by
    /// the next contact with the leader, so a later silence is judged
    /// afresh).
    failover_declined: bool,
    priority_lowered: bool,
    /// Campaigns started in this leaderless spell (events go out for the first only).
    spell_campaigns: u32,
    pending_cause: Option<LeadershipCause>,
    /// Became leader and has not yet re-probed its followers.
    fresh_leader: bool,
    /// Inputs arrived since the last `process`.
    dirty: bool,
    /// The last leader known (kept after it is lost).
    last_leader: Option<NodeId>,
    /// When this member last found itself behind the leader's commit.
    catching_up_at: Option<u64>,
    /// The last term in which an append from its leader was taken and left
    /// this member's log matching the leader's up to its commit index:
    /// only then is a fast pair failover worth its term bump (a member
    /// that has heard nothing but heartbeats, e.g. just after a restart,
    /// would lose the vote after deposing a live primary).
    synced_term: u64,
    /// Campaign within this many ticks, whatever the usual schedule says
    /// (set when a more preferred candidate proved it cannot win, or when
    /// this leader was deposed with no successor).
    step_up: Option<usize>,

    last_heard: BTreeMap<NodeId, u64>,
    contact_since: BTreeMap<NodeId, u64>,
    snapshot_sent: BTreeMap<NodeId, u64>,
    conf_proposed_at: u64,
    hand_back: HandBackState,

    proposals: Proposals,
    dedup: Dedup,
    reads: reads::Reads,
    read_outcomes: VecDeque<ReadOutcome>,

    outbox: VecDeque<Envelope>,
    outcomes: VecDeque<ProposalOutcome>,
    events: VecDeque<Event>,
    counters: Counters,
}

impl<M: StateMachine, S: LogStore> Node<M, S> {
    /// Starts a node on `storage`.
    ///
    /// - Empty storage, member of the topology: bootstraps the initial
    ///   configuration (identically at every member).
    /// - Empty storage, [`NodeConfig::joining`] set: starts empty and waits
    ///   for the leader's snapshot.
    /// - Non-empty storage: restarts from it (the state machine is rebuilt
    ///   from the stored snapshot and the committed log).
    ///
    /// # Errors
    /// [`Fatal`] when the node is unknown, or the stored snapshot or state
    /// machine cannot be restored.
    pub fn new(cfg: NodeConfig, storage: S, mut sm: M) -> Result<Self, Fatal> {
        let id = cfg.id;
        let topology = cfg.topology.clone();
        let ticks = *topology.ticks();
        let logger = cfg.logger.new(o!("node" => id.0));
        let mut members: BTreeMap<NodeId, MemberState> = topology
            .members()
            .values()
            .map(|m| {
                (
                    m.id(),
                    MemberState {
                        member: m.clone(),
                        replaces: None,
                    },
                )
            })
            .collect();
        let me = match (&cfg.joining, topology.member(id)) {
            (Some(m), _) => m.clone(),
            (None, Some(m)) => m.clone(),
            (None, None) => return Err(Fatal::UnknownNode(id)),
        };

        // A member that left its epoch for a newer one keeps a marker: an
        // empty configuration naming the epoch it waits to join.
        let marker = storage.latest_snapshot();
        let marked = !storage.is_initialized() && !marker.data.is_empty();
        if !storage.is_initialized() && cfg.joining.is_none() && !marked {
            let mut snap = Snapshot::default();
            let data = SnapshotData {
                user: sm.snapshot(),
                members: encode_members(&members),
                ..SnapshotData::default()
            };
            snap.data = encode(&data).into();
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
        }

        let mut dedup = Dedup::default();
        let mut conf = ConfState::default();
        let mut applied = 0;
        let mut lineage = vec![EpochRecord::FIRST];
        let mut reconciled = BTreeMap::new();
        let mut covered = BTreeMap::new();
        if marked {
            let data = SnapshotData::decode_bytes(&marker.data).map_err(Fatal::CorruptSnapshot)?;
            lineage = crate::wire::payload::decode_lineage(&data.epochs);
        }
        if storage.is_initialized() {
            let snap = storage.latest_snapshot();
            let data = SnapshotData::decode_bytes(&snap.data).map_err(Fatal::CorruptSnapshot)?;
            sm.restore(&data.user)?;
            members = data
                .members
                .iter()
                .map(|r| (NodeId(r.id), r.to_state()))
                .collect();
            dedup = Dedup::from_records(&data.dedup);
            conf = snap.get_metadata().get_conf_state().clone();
            applied = snap.get_metadata().index;
            lineage = crate::wire::payload::decode_lineage(&data.epochs);
            reconciled = crate::wire::payload::decode_reconciled(&data.reconciled);
            covered = crate::wire::payload::decode_reconciled(&data.covered);
        } else {
            members.insert(
                me.id(),
                MemberState {
                    member: me.clone(),
                    replaces: None,
                },
            );
        }

        let raw = RawNode::new(
            &raft_config(id, &ticks, applied, me.priority()),
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
            lineage,
            ep: takeover::EpochState {
                reconciled,
                covered,
                joining: marked,
                ..takeover::EpochState::default()
            },
            boot,
            fatal: None,
            members,
            conf,
            removed: false,
            applied,
            snapshot_index: applied,
            now_ms: 0,
            tick_no: 0,
            role: StateRole::Follower,
            leader: None,
            since_leader: 0,
            next_campaign: 0,
            fast_failover_term: 0,
            failover_declined: false,
            priority_lowered: false,
            spell_campaigns: 0,
            pending_cause: None,
            fresh_leader: false,
            dirty: false,
            last_leader: None,
            catching_up_at: None,
            synced_term: 0,
            step_up: None,
            last_heard: BTreeMap::new(),
            contact_since: BTreeMap::new(),
            snapshot_sent: BTreeMap::new(),
            conf_proposed_at: 0,
            hand_back: HandBackState::default(),
            proposals: Proposals::default(),
            dedup,
            reads: reads::Reads::default(),
            read_outcomes: VecDeque::new(),
            outbox: VecDeque::new(),
            outcomes: VecDeque::new(),
            events: VecDeque::new(),
            counters: Counters::default(),
            logger,
            cfg,
        };
        node.next_campaign = node.campaign_threshold();
        let epoch = node.epoch();
        node.sm.note_epoch(epoch);
        node.on_ready();
        Ok(node)
    }

    /// Advances the node's clock by one tick. Call it every
    /// [`Timers::tick`](crate::policy::Timers::tick); `now_ms` is the wall
    /// clock in milliseconds since the UNIX epoch (virtual in the simulator),
    /// used for hand-back windows and event timestamps only.
    pub fn tick(&mut self, now_ms: u64) {
        if self.fatal.is_some() {
            return;
        }
        self.now_ms = now_ms;
        self.tick_no += 1;
        self.raw.tick();
        if self.role != StateRole::Leader {
            self.since_leader += 1;
        }
        self.drive_election();
        self.drive_takeover();
        self.advance_reunion();
        if self.role == StateRole::Leader {
            if !self.fenced() {
                // A fenced epoch changes nothing more: no transfer, no
                // configuration change (they would be proposals too).
                self.drive_hand_back();
                self.drive_main_site_return();
                self.drive_membership();
            }
            self.announce_epoch();
            self.expire_snapshots();
        }
        self.dirty = true;
    }

    /// Feeds an envelope received from a peer.
    ///
    /// # Errors
    /// A [`StepError`] when the envelope is refused. It is counted in
    /// [`counters`](Self::counters) and logged; nothing reaches raft and the
    /// node's state is unchanged.
    pub fn step(&mut self, env: Envelope) -> Result<(), StepError> {
        if self.fatal.is_some() {
            return Ok(());
        }
        if let Err(e) = self.check_sender(&env) {
            self.counters.count(&e);
            slog::debug!(self.logger, "dropped envelope"; "reason" => %e);
            return Err(e);
        }
        if !env.control.is_empty() {
            let done = self.handle_control(&env);
            if let Err(e) = &done {
                self.counters.count(e);
            }
            self.dirty = true;
            return done;
        }
        let theirs = env.epoch_id();
        if theirs != self.epoch() {
            let e = StepError::OtherEpoch {
                from: env.from,
                got: theirs,
                ours: self.epoch(),
            };
            self.counters.count(&e);
            self.met_other_epoch(NodeId(env.from), theirs);
            self.dirty = true;
            return Err(e);
        }
        let msg = match self.raft_payload(&env) {
            Ok(m) => m,
            Err(e) => {
                self.counters.count(&e);
                return Err(e);
            }
        };
        let from = NodeId(msg.from);
        let kind = msg.get_msg_type();
        if self.fenced() && matches!(kind, MessageType::MsgPropose | MessageType::MsgReadIndex) {
            // A fenced epoch takes nothing new, from anyone.
            self.note_heard(from);
            return Ok(());
        }
        if kind == MessageType::MsgPropose
            && (msg.entries.is_empty()
                || msg
                    .entries
                    .iter()
                    .any(|e| e.get_entry_type() != raft::eraftpb::EntryType::EntryNormal))
        {
            // Members forward only commands; raft would abort on an empty
            // proposal, and a configuration change is the leader's alone.
            let e = StepError::Refused {
                from: from.0,
                reason: "a forwarded proposal must carry one or more command entries".into(),
            };
            self.counters.count(&e);
            return Err(e);
        }
        let leader_commit = msg.commit;
        if kind == MessageType::MsgAppend && msg.from == self.raw.raft.leader_id {
            self.ep.leader_commit = self.ep.leader_commit.max(leader_commit);
        }
        if kind == MessageType::MsgTimeoutNow {
            self.pending_cause = Some(LeadershipCause::Transfer);
        }
        if matches!(
            kind,
            MessageType::MsgRequestVote | MessageType::MsgRequestPreVote
        ) {
            self.note_vote_request(from, msg.log_term, msg.index);
        }
        // An append's term and last (index, term), to see whether our log
        // took it (the first append of a new term counts too).
        let append_tip = (kind == MessageType::MsgAppend).then(|| {
            let last = msg.entries.last();
            let tip = last.map_or((msg.index, msg.log_term), |e| (e.index, e.term));
            (msg.term, tip)
        });
        if let Err(e) = self.raw.step(msg) {
            if matches!(e, raft::Error::ProposalDropped) {
                // A forwarded proposal (or read) that raft dropped: a
                // leader transfer is under way, or there is no leader. Its
                // proposer re-submits it; nothing was wrong with it.
                self.counters.proposals_dropped += 1;
                self.note_heard(from);
                return Ok(());
            }
            let e = StepError::Refused {
                from: from.0,
                reason: e.to_string(),
            };
            self.counters.count(&e);
            return Err(e);
        }
        self.note_contact(from, kind);
        if from.0 == self.raw.raft.leader_id
            && matches!(kind, MessageType::MsgAppend | MessageType::MsgHeartbeat)
        {
            // A heartbeat's commit is capped at what this member holds;
            // only an append reports the leader's own.
            let reported = (kind == MessageType::MsgAppend).then_some(leader_commit);
            self.note_leader_report(reported);
        }
        // Behind the leader's commit after taking its append or snapshot:
        // this member is catching up and must not rush into a failover.
        let catching_up = matches!(kind, MessageType::MsgAppend | MessageType::MsgSnapshot)
            && self.raw.raft.raft_log.last_index() < leader_commit;
        if catching_up {
            self.catching_up_at = Some(self.tick_no);
        }
        let log = &self.raw.raft.raft_log;
        if let Some((msg_term, (index, term))) = append_tip {
            if from.0 == self.raw.raft.leader_id
                && msg_term == self.raw.raft.term
                && log.match_term(index, term)
                && log.last_index() >= leader_commit
            {
                self.synced_term = self.raw.raft.term;
            }
        }
        self.dirty = true;
        Ok(())
    }

    /// Checks who sent an envelope (version, cluster, recipient, member).
    fn check_sender(&self, env: &Envelope) -> Result<(), StepError> {
        if env.version != PROTOCOL_VERSION {
            return Err(StepError::UnsupportedVersion {
                from: env.from,
                version: env.version,
                ours: PROTOCOL_VERSION,
            });
        }
        let expected = self.cfg.topology.cluster_id();
        if env.cluster_id != expected {
            return Err(StepError::WrongCluster {
                from: env.from,
                got: env.cluster_id,
                expected,
            });
        }
        if env.to != self.id.0 {
            return Err(StepError::WrongRecipient {
                to: env.to,
                me: self.id.0,
            });
        }
        if !self.members.contains_key(&NodeId(env.from)) {
            return Err(StepError::UnknownSender { from: env.from });
        }
        Ok(())
    }

    /// The raft message inside an envelope of our epoch.
    fn raft_payload(&self, env: &Envelope) -> Result<raft::eraftpb::Message, StepError> {
        let msg = env.raft_message()?;
        if msg.from != env.from || msg.to != env.to {
            return Err(StepError::Spoofed {
                env_from: env.from,
                env_to: env.to,
                msg_from: msg.from,
                msg_to: msg.to,
            });
        }
        Ok(msg)
    }

    fn note_contact(&mut self, from: NodeId, kind: MessageType) {
        self.note_heard(from);
        let from_leader = matches!(
            kind,
            MessageType::MsgAppend | MessageType::MsgHeartbeat | MessageType::MsgSnapshot
        ) && self.raw.raft.leader_id == from.0;
        if from_leader {
            self.leader_contact();
        }
    }

    /// Submits a command. It is applied at most once, on every member, and
    /// its result arrives through [`poll_outcome`](Self::poll_outcome).
    ///
    /// At a follower the proposal is forwarded to the leader; with no leader
    /// (an election, a hand-back in progress) it waits and is re-submitted
    /// by the library, never failed back.
    ///
    /// # Errors
    /// [`ProposeError`] when refused outright (queue full, too large, not
    /// the leader with forwarding off, removed); nothing was proposed.
    pub fn propose(&mut self, command: Vec<u8>) -> Result<ProposalId, ProposeError> {
        if self.removed {
            return Err(ProposeError::Removed);
        }
        if command.len() > self.cfg.max_command_len {
            return Err(ProposeError::TooLarge {
                len: command.len(),
                max: self.cfg.max_command_len,
            });
        }
        if !self.cfg.forward_proposals && self.role != StateRole::Leader {
            return Err(ProposeError::NotLeader {
                leader: self.leader,
            });
        }
        if self.proposals.len() >= self.cfg.max_pending {
            return Err(ProposeError::QueueFull {
                pending: self.proposals.len(),
                limit: self.cfg.max_pending,
            });
        }
        let seq = self.proposals.add(command);
        self.dirty = true;
        Ok(ProposalId {
            node: self.id,
            boot: self.boot,
            seq,
        })
    }

    /// The next envelope to send, if any. Processes the inputs fed since
    /// the last poll first (persisting what they produced).
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Envelope> {
        self.process();
        self.outbox.pop_front()
    }

    /// The next proposal result, if any.
    pub fn poll_outcome(&mut self) -> Option<ProposalOutcome> {
        self.process();
        self.outcomes.pop_front()
    }

    /// The next event, if any.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.process();
        self.events.pop_front()
    }

    /// Runs raft on everything fed since the last call: submits waiting
    /// proposals, persists, queues messages, applies. Inputs only record
    /// work so a batch of them costs one storage write.
    fn process(&mut self) {
        if self.dirty {
            self.dirty = false;
            self.on_ready();
            self.pump_proposals();
        }
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The leader this node knows of.
    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }

    /// Whether this node is the leader.
    pub fn is_leader(&self) -> bool {
        self.role == StateRole::Leader
    }

    /// The current raft term.
    pub fn term(&self) -> u64 {
        self.raw.raft.term
    }

    /// The current epoch.
    pub fn epoch(&self) -> EpochId {
        self.lineage.last().map_or(FIRST_EPOCH, |r| r.id)
    }

    /// The epoch lineage, first epoch first (the last one is this node's).
    pub fn lineage(&self) -> &[EpochRecord] {
        &self.lineage
    }

    /// The index of the last applied entry.
    pub fn applied_index(&self) -> u64 {
        self.applied
    }

    /// The application's state machine.
    pub fn state_machine(&self) -> &M {
        &self.sm
    }

    /// Counters of refused input.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Why the node stopped, if it did (a snapshot that would not restore).
    pub fn fatal(&self) -> Option<&Fatal> {
        self.fatal.as_ref()
    }

    /// Proposals made here and not applied yet.
    pub fn pending_proposals(&self) -> usize {
        self.proposals.len()
    }

    /// The member description of a node, as this node knows it.
    pub fn member(&self, id: NodeId) -> Option<&Member> {
        self.members.get(&id).map(|s| &s.member)
    }

    /// The current voters, as applied here, in id order.
    pub fn voters(&self) -> Vec<NodeId> {
        let mut v: Vec<NodeId> = self.conf.voters.iter().map(|&v| NodeId(v)).collect();
        v.sort_unstable();
        v
    }

    /// The current learners, as applied here, in id order.
    pub fn learners(&self) -> Vec<NodeId> {
        let mut v: Vec<NodeId> = self.conf.learners.iter().map(|&v| NodeId(v)).collect();
        v.sort_unstable();
        v
    }

    fn my_member(&self) -> Option<&Member> {
        self.members.get(&self.id).map(|s| &s.member)
    }

    fn emit(&mut self, e: Event) {
        slog::info!(self.logger, "event"; "event" => ?e, "t_ms" => self.now_ms);
        self.events.push_back(e);
    }

    fn leader_contact(&mut self) {
        self.since_leader = 0;
        self.failover_declined = false;
        self.spell_campaigns = 0;
        self.step_up = None;
        self.next_campaign = self.campaign_threshold();
        if self.priority_lowered {
            self.priority_lowered = false;
            let p = self.my_member().map_or(0, Member::priority);
            self.raw.set_priority(p);
        }
    }

    /// Submits waiting proposals when someone can take them.
    fn pump_proposals(&mut self) {
        if self.fatal.is_some() {
            return;
        }
        self.submit_pending();
        self.submit_reads();
        if self.fresh_leader && self.role == StateRole::Leader {
            self.fresh_leader = false;
            self.reprobe_followers();
        }
        self.on_ready();
        self.finish_reads();
    }

    /// Whether a majority of voters (this leader included) answered within
    /// half an election timeout. A leader cut off from its quorum holds new
    /// proposals back (they wait and go to whoever leads next) instead of
    /// appending entries that cannot commit, well before check-quorum
    /// deposes it.
    fn quorum_in_contact(&self) -> bool {
        let window = (self.ticks.election / 2) as u64;
        let heard = self
            .conf
            .voters
            .iter()
            .filter(|&&v| {
                v == self.id.0
                    || self
                        .last_heard
                        .get(&NodeId(v))
                        .is_some_and(|&t| self.tick_no - t <= window)
            })
            .count();
        heard * 2 > self.conf.voters.len()
    }

    /// A new leader's followers sit in raft's Probe state, paused after the
    /// append carrying the leader's empty entry, so proposals made just
    /// after the election would wait a round trip before being sent. Do
    /// what a heartbeat response does (resume and send), once, so they ride
    /// the first round trip.
    fn reprobe_followers(&mut self) {
        let probing: Vec<u64> = self
            .raw
            .raft
            .prs()
            .iter()
            .filter(|(&id, pr)| id != self.id.0 && pr.state == raft::ProgressState::Probe)
            .map(|(&id, _)| id)
            .collect();
        for id in probing {
            if let Some(pr) = self.raw.raft.mut_prs().get_mut(id) {
                pr.resume();
            }
            self.raw.raft.send_append(id);
        }
    }

    fn submit_pending(&mut self) {
        // Fenced or joining: proposals wait for the newer epoch.
        if self.proposals.len() == 0 || self.fenced() || self.ep.joining {
            return;
        }
        let leading = self.role == StateRole::Leader
            && self.raw.raft.lead_transferee.is_none()
            && self.quorum_in_contact();
        let forwarding =
            self.role != StateRole::Leader && self.leader.is_some() && self.cfg.forward_proposals;
        if !leading && !forwarding {
            return;
        }
        let term = self.raw.raft.term;
        let retry = 3 * self.ticks.election as u64;
        let floor = self.proposals.floor();
        let now = self.tick_no;
        let mut submitted = Vec::new();
        for (&seq, p) in &self.proposals.pending {
            let due = match p.submitted {
                None => true,
                Some((t, at)) => t != term || now.saturating_sub(at) >= retry,
            };
            if due {
                let payload = crate::wire::payload::EntryPayload {
                    proposer: self.id.0,
                    boot: self.boot,
                    seq,
                    floor,
                    command: p.command.clone(),
                    reconcile: None,
                };
                if self.raw.propose(Vec::new(), encode(&payload)).is_err() {
                    break;
                }
                submitted.push(seq);
            }
        }
        for seq in submitted {
            if let Some(p) = self.proposals.pending.get_mut(&seq) {
                p.submitted = Some((term, now));
            }
        }
    }
}
