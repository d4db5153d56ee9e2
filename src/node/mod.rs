//! The sans-IO driver around `raft::RawNode`: site-aware elections, pair
//! failover, survivable takeover, hand-back, membership and proposals.
//!
//! A [`Node`] never spawns a thread, opens a socket or reads a clock. The
//! caller feeds it inputs, gives it commands, and drains its four output
//! queues. Every public method of [`Node`] is defined in this file, in
//! these groups (see [`Node`] for the table):
//!
//! - **Inputs**: [`tick`](Node::tick) every
//!   [`Timers::tick`](crate::policy::Timers::tick) with the wall-clock
//!   time, [`step`](Node::step) for each envelope received,
//!   [`propose`](Node::propose) for commands, [`read`](Node::read) for
//!   linearizable read points, and
//!   [`peer_connection_refused`](Node::peer_connection_refused) when a
//!   peer's process is known to be gone.
//! - **Commands** (operator calls): [`hand_back`](Node::hand_back),
//!   [`activate`](Node::activate), [`transfer_leader`](Node::transfer_leader),
//!   [`drain`](Node::drain)/[`undrain`](Node::undrain) (maintenance),
//!   [`replace_member`](Node::replace_member)
//!   (with [`replacement_member`](Node::replacement_member) describing the
//!   new member to start).
//! - **Outputs**, drained after every input or batch of inputs, in this
//!   order: [`poll_transmit`](Node::poll_transmit) (envelopes to send),
//!   [`poll_outcome`](Node::poll_outcome) (proposal results),
//!   [`poll_read`](Node::poll_read) (answered reads) and
//!   [`poll_event`](Node::poll_event) (typed events). Drain each queue
//!   until it returns `None`.
//! - **Snapshot jobs** (optional): after
//!   [`offload_snapshots`](Node::offload_snapshots), snapshots are taken
//!   and installed by the caller: drain
//!   [`poll_snapshot_job`](Node::poll_snapshot_job), run each job on any
//!   thread and feed the result to [`snapshot_done`](Node::snapshot_done).
//! - **Getters**: [`status`](Node::status), [`leader`](Node::leader),
//!   [`epoch`](Node::epoch), [`counters`](Node::counters) and the like.
//!
//! Inputs only record work; the first poll afterwards runs raft on all of
//! it at once, so feeding many envelopes or proposals before polling costs
//! one storage write (group commit). Everything the node writes to its
//! storage is written before any message that depends on it is handed out.
//!
//! Inside, the node's state is kept by concern, each in the file that
//! makes its decisions: `election` (role, leader, campaign schedule),
//! `takeover` and `reunion` (the epoch lineage and what two epochs do
//! when they meet), `handback`, `membership`, `proposals` and `reads`;
//! `Node` itself holds only the plumbing (raft, storage, the state
//! machine, clocks and output queues). The decisions are plain
//! functions of plain inputs, unit-tested in each file.

mod config;
mod control;
mod divergent;
mod dr;
mod dr_takeover;
mod drain;
mod election;
mod handback;
mod inbound;
mod membership;
mod probe;
mod proposals;
mod reads;
mod ready;
mod reconfig;
mod relay;
mod replace;
mod retention;
mod reunion;
mod snapshot;
mod start;
mod status;
mod takeover;
#[cfg(test)]
mod testkit;

use std::collections::VecDeque;

use raft::{RawNode, StateRole};
use slog::Logger;

pub use crate::ids::{EntryRange, EpochId, EpochRecord, ProposalId, FIRST_EPOCH};
pub use config::NodeConfig;
pub use proposals::{Applied, ProposalOutcome};
pub use reads::{ReadId, ReadOutcome};
pub use ready::EarlySink;
pub use reconfig::TopologyChangeError;
pub use replace::{Degraded, ReplacePolicy};
pub use snapshot::{SnapshotDone, SnapshotJob};
pub use status::{Counters, NodeRole, PeerStatus, Retained, Status};

use crate::error::{
    ActivateError, DrainError, Fatal, HandBackError, MembershipError, ProposeError, StepError,
    TransferError,
};
use crate::events::Event;
use crate::policy::TickTimers;
use crate::state_machine::StateMachine;
use crate::storage::{LogStore, MemStorage};
use crate::topology::{Member, MemberSpec, NodeId, TopologyChange};
use crate::wire::Envelope;

/// One member of the control plane, driven by its caller (sans-IO), with
/// the application's state machine `M` and raft log storage `S`.
///
/// | Group | Methods |
/// |---|---|
/// | Start | [`new`](Self::new) |
/// | Inputs | [`tick`](Self::tick), [`step`](Self::step), [`propose`](Self::propose), [`read`](Self::read), [`peer_connection_refused`](Self::peer_connection_refused) |
/// | Commands | [`hand_back`](Self::hand_back), [`activate`](Self::activate), [`transfer_leader`](Self::transfer_leader), [`drain`](Self::drain), [`undrain`](Self::undrain), [`replace_member`](Self::replace_member), [`replace_member_at`](Self::replace_member_at), [`replacement_member`](Self::replacement_member), [`change_topology`](Self::change_topology) |
/// | Outputs (drain in this order) | [`set_early_sink`](Self::set_early_sink) (optional), [`poll_transmit`](Self::poll_transmit), [`poll_outcome`](Self::poll_outcome), [`poll_read`](Self::poll_read), [`poll_event`](Self::poll_event) |
/// | Snapshot jobs (optional) | [`offload_snapshots`](Self::offload_snapshots), [`poll_snapshot_job`](Self::poll_snapshot_job), [`snapshot_done`](Self::snapshot_done), [`installing_snapshot`](Self::installing_snapshot) |
/// | Getters | [`status`](Self::status), [`id`](Self::id), [`topology`](Self::topology), [`leader`](Self::leader), [`is_leader`](Self::is_leader), [`term`](Self::term), [`epoch`](Self::epoch), [`lineage`](Self::lineage), [`applied_index`](Self::applied_index), [`state_machine`](Self::state_machine), [`counters`](Self::counters), [`fatal`](Self::fatal), [`pending_proposals`](Self::pending_proposals), [`member`](Self::member), [`voters`](Self::voters), [`outgoing_voters`](Self::outgoing_voters), [`learners`](Self::learners) |
///
/// After any input or command, drain the four output queues, each until
/// it returns `None`: envelopes first (so messages leave before the
/// caller acts on results), then proposal outcomes, read answers and
/// events. Any poll first runs raft on what the inputs recorded.
pub struct Node<M, S: LogStore = MemStorage> {
    id: NodeId,
    cfg: NodeConfig,
    ticks: TickTimers,
    raw: RawNode<S>,
    storage: S,
    sm: M,
    logger: Logger,
    rng: crate::rng::SplitMix64,
    /// This start's number (from the storage): part of every proposal id.
    boot: u64,
    fatal: Option<Fatal>,
    /// The index of the last applied entry.
    applied: u64,
    /// The index of the latest snapshot taken or received.
    snapshot_index: u64,
    /// Wall clock of the last tick (ms).
    now_ms: u64,
    /// The node's clock: whole tick periods of wall time elapsed since
    /// start (every timer is kept in these).
    tick_no: u64,
    /// Inputs arrived since the last `process`.
    dirty: bool,

    /// Role, leader and the campaign schedule.
    election: election::Election,
    /// When each member was last heard, and since when without a gap.
    contact: control::Contacts,
    /// Members, the configuration, and replacement bookkeeping.
    membership: membership::Membership,
    /// The epoch lineage, fencing, reconciliation, probes.
    ep: takeover::EpochState,
    /// Hand-back attempts.
    hand_back: handback::HandBackState,
    /// Proposals waiting, their outcomes, and the de-duplication table.
    proposals: proposals::Proposals,
    /// Reads waiting and their answers.
    reads: reads::Reads,
    /// Maintenance (drained) and operator transfers.
    drain: drain::DrainState,
    /// Topology changes proposed here.
    reconfig: reconfig::Reconfig,
    /// Snapshots being taken or installed.
    snaps: snapshot::Snapshots,

    outbox: VecDeque<Envelope>,
    /// What of `outbox` may leave before the next storage write, and
    /// where (see [`Node::set_early_sink`]).
    early: ready::Early,
    events: VecDeque<Event>,
    counters: Counters,
    /// The log held, by size (see the `retention` module).
    retained: retention::RetainedLog,
    /// DR auto-sync: state records, group commit, lease, activation.
    dr: dr::DrState,
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
    pub fn new(cfg: NodeConfig, storage: S, sm: M) -> Result<Self, Fatal> {
        Self::start(cfg, storage, sm)
    }
}

/// Inputs.
impl<M: StateMachine, S: LogStore> Node<M, S> {
    /// Advances the node's clock to `now_ms`, the wall clock in
    /// milliseconds since the UNIX epoch (virtual in the simulator). Call it
    /// every [`Timers::tick`](crate::policy::Timers::tick).
    ///
    /// Every timer runs on the elapsed time given here, not on the number
    /// of calls: a call that comes late (the thread was starved of CPU or
    /// stopped) advances the timers by every whole tick period that passed,
    /// and a call early within a period advances nothing. Two guards keep
    /// this node's own stall from reading as someone else's silence:
    ///
    /// - A leader heard since the previous call counts as heard within the
    ///   last period, however late this call is (feed what arrived during
    ///   a stall with [`step`](Self::step) before calling `tick`).
    /// - After a call more than a heartbeat interval late, this node judges
    ///   no silence (no failover, no campaign, no takeover) until the next
    ///   call: what peers sent during the gap may still be on its way in
    ///   (a transport thread starved too). A real silence is acted on one
    ///   tick later at most.
    ///
    /// raft's own timers (heartbeats, the leader's check-quorum, the
    /// followers' vote lease) count calls to its tick; it is ticked once
    /// per elapsed period, at most half an election timeout's worth per
    /// call: enough for a due heartbeat to leave at once and for the
    /// check-quorum window to keep pace with a late clock, never enough to
    /// cross two check-quorum windows in one call (the second would find no
    /// follower active and depose a leader for its own stall, before it had
    /// processed the replies that arrived meanwhile).
    pub fn tick(&mut self, now_ms: u64) {
        if self.fatal.is_some() {
            return;
        }
        self.now_ms = now_ms;
        let periods = self.contact.clock.advance(now_ms, self.ticks.tick_ms);
        if periods == 0 {
            return;
        }
        self.tick_no += periods;
        let raft_ticks = periods.min((self.ticks.election / 2).max(1) as u64);
        for _ in 0..raft_ticks {
            self.raw.tick();
        }
        let leading = self.election.role == StateRole::Leader;
        let judge = self
            .election
            .elapse(periods, leading, periods > self.ticks.heartbeat as u64);
        if judge {
            self.drive_election();
            self.drive_takeover();
        }
        self.drive_replication();
        self.expire_unconfirmed_fence();
        self.advance_reunion();
        self.drive_drain();
        if self.election.role == StateRole::Leader {
            if !self.fenced() {
                // A fenced epoch changes nothing more: no transfer, no
                // configuration change (they would be proposals too).
                if !self.drive_transfer() {
                    self.drive_hand_back();
                }
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
        self.take_envelope(env)
    }

    /// Reports that a connection to `peer` was *refused* (nothing listens
    /// at its address: the connect was refused, or reset from the closing
    /// listener's backlog) after a connection with `peer` ended from its
    /// side (the one it opened to this member, or this member's to it):
    /// its process is gone. Report nothing weaker (a dial that timed out,
    /// an established connection reset while a dial to the address is
    /// served, a connection that closed while a dial succeeds), and
    /// feed what arrived from `peer` before the report first. When `peer`
    /// is the leader this member follows as its pair's standby, the pair
    /// failover runs without waiting out
    /// [`Timers::failover`](crate::policy::Timers::failover), once the
    /// leader has also been silent for more than a heartbeat interval; in
    /// any other case the report changes nothing. See the `election`
    /// module's docs (in the source) for what the report proves and what
    /// it does not.
    pub fn peer_connection_refused(&mut self, peer: NodeId) {
        if self.fatal.is_none() {
            self.note_refused(peer);
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
        self.intake().proposal(
            command.len(),
            self.cfg.max_command_len,
            self.proposals.len(),
        )?;
        let seq = self.proposals.add(command);
        self.dirty = true;
        Ok(ProposalId {
            node: self.id,
            boot: self.boot,
            seq,
        })
    }

    /// Asks for a linearizable read point. The answer comes through
    /// [`poll_read`](Self::poll_read); then read the state machine.
    ///
    /// # Errors
    /// [`ProposeError::Removed`], [`ProposeError::QueueFull`] (too many
    /// reads waiting), or [`ProposeError::NotLeader`] when forwarding is off
    /// and this member does not lead.
    pub fn read(&mut self) -> Result<ReadId, ProposeError> {
        self.new_read()
    }
}

/// Commands.
impl<M: StateMachine, S: LogStore> Node<M, S> {
    /// Asks the leader to hand leadership back to the most preferred member
    /// that is reachable and caught up, now (the freshness gate still
    /// applies). This is how
    /// [`HandBackPolicy::Manual`](crate::policy::HandBackPolicy::Manual)
    /// hands back; under other policies it skips the wait.
    ///
    /// # Errors
    /// [`HandBackError`] when this node is not the leader or already the
    /// most preferred member.
    pub fn hand_back(&mut self) -> Result<(), HandBackError> {
        self.request_hand_back()
    }

    /// Activates a new epoch now, as an operator would after deciding the
    /// main site is gone: refused while this member can still reach a
    /// majority of its epoch's voters, or heard their leader within an
    /// election timeout. (Unforced, a survivable primary activates by
    /// itself under the same majority rule once it has heard no leader
    /// for [`Timers::survivable_after`](crate::policy::Timers::survivable_after):
    /// reaching only a minority of the voters, such as the main site's
    /// tie-breaker, does not prevent it.)
    ///
    /// The new epoch forks at this member's applied index, from a
    /// snapshot of its state, and has **this member as its only voter**;
    /// its core partner, and every member that rejoins later, comes in as a
    /// learner (main-site members become voters again at hand-back).
    ///
    /// - Why one voter: a two-member voter set in a site without a
    ///   tie-breaker needs both members for a majority, so it would stall
    ///   on the loss of either; with one, the partner's loss costs nothing.
    /// - What it costs: entries the founder acknowledged (committed alone)
    ///   that had not reached its partner yet are on no other member. If
    ///   the founder is lost, the partner activates an epoch of its own
    ///   (an election timeout after `survivable_after`, as the core's
    ///   standby) without them; they wait for the founder's return, and are
    ///   then reconciled into the partner's epoch like any older epoch's
    ///   divergent entries (see [`StateMachine::reconcile`]).
    ///
    /// DR auto-sync mode: the member prepares (acknowledges nothing more in
    /// its epoch), forks at its applied index and carries the tail of its
    /// log into the new epoch (proposed again there, each command once),
    /// with its RPO unproven: only the unforced activation weighs the lease
    /// and the core partner's log.
    ///
    /// # Errors
    /// [`ActivateError`] saying why not.
    pub fn activate(&mut self) -> Result<(), ActivateError> {
        self.activate_now()
    }

    /// Moves leadership to the voter `to` now, by a raft leader transfer:
    /// raft brings `to` up to date, then tells it to campaign (no pre-vote,
    /// so it wins in one round trip for votes). Proposals arriving
    /// meanwhile wait and are re-submitted to whoever leads next.
    ///
    /// The outcome comes as events: [`Event::TransferStarted`], then
    /// [`Event::LeaderChanged`] naming `to` (and [`Event::SteppedDown`]
    /// here), or [`Event::TransferFailed`] when raft aborted it (`to` did
    /// not catch up or answer within an election timeout; this member
    /// still leads). The hand-back policy still applies afterwards: a
    /// transfer to a less preferred member than an available one is handed
    /// back under that policy.
    ///
    /// # Errors
    /// [`TransferError`] saying why not: this member does not lead (naming
    /// the leader), `to` already leads, is no member, not a voter, a
    /// witness, drained, unreachable or too far behind, or this epoch is
    /// fenced. Nothing changed then.
    pub fn transfer_leader(&mut self, to: NodeId) -> Result<(), TransferError> {
        self.request_transfer(to)
    }

    /// Drains this member for maintenance: from now on it never
    /// campaigns (no election, pair failover, survivable takeover,
    /// activation or last-resort leadership) and takes no leadership
    /// handed to it; it stays a replica (votes, replicates, serves reads
    /// and forwards proposals). If it leads, it moves leadership at once to
    /// its core partner, or else to the most preferred member that can take
    /// it (a reachable, fresh voter of a core, not drained), and keeps
    /// leading only while none can (retried every election timeout).
    /// Every member is told, so no leader hands leadership back to it.
    /// Reported as [`Event::Drained`]; [`Status::drained`] shows it. Kept
    /// in memory: a restarted member starts undrained.
    ///
    /// # Errors
    /// [`DrainError::AlreadyDrained`], or [`DrainError::Removed`].
    pub fn drain(&mut self) -> Result<(), DrainError> {
        self.set_drained(true)
    }

    /// Ends a [`drain`](Self::drain): this member campaigns and takes
    /// leadership again under the usual rules (a hand-back may bring
    /// leadership back to it). Reported as [`Event::Undrained`].
    ///
    /// # Errors
    /// [`DrainError::NotDrained`], or [`DrainError::Removed`].
    pub fn undrain(&mut self) -> Result<(), DrainError> {
        self.set_drained(false)
    }

    /// Replaces voter `dead` by a new member on another host: the new member
    /// takes `dead`'s place (site, core, position). Call it at the leader;
    /// then start the new member with [`NodeConfig::joining`](NodeConfig::joining)
    /// set to [`Node::replacement_member`]'s result. The library adds it as
    /// a learner, waits until it has caught up, then promotes it and
    /// removes `dead` in one joint change, which also carries the next
    /// topology version (the new member in `dead`'s slot): every member
    /// applies both at the same log index. `dead`'s id is then remembered
    /// ([`Topology::removed_ids`](crate::topology::Topology::removed_ids)).
    ///
    /// # Errors
    /// [`MembershipError`] when this node is not the leader, `dead` is not a
    /// voter or is this leader, the new id is in use or was removed, another
    /// replacement or an unapplied configuration or topology change runs,
    /// the new host breaks the pair's anti-affinity rules, or the topology
    /// with the new member does not validate.
    pub fn replace_member(&mut self, dead: NodeId, new: MemberSpec) -> Result<(), MembershipError> {
        self.start_replacement(dead, new, None)
    }

    /// [`replace_member`](Self::replace_member) for a new member reached at
    /// `address` (`ip:port`; `None`: as `replace_member`). The learner's
    /// record carries the address, so the leader (and a leader taking over
    /// mid-way) reaches the new member as soon as it is added, without any
    /// running member listing it in its configured peers; the promotion
    /// writes it into the topology, where every member reads it
    /// ([`member_address`](Self::member_address)).
    ///
    /// # Errors
    /// As [`replace_member`](Self::replace_member);
    /// [`MembershipError::Topology`] with
    /// [`TopologyError::EmptyAddress`](crate::topology::TopologyError::EmptyAddress)
    /// for an empty or blank address.
    pub fn replace_member_at(
        &mut self,
        dead: NodeId,
        new: MemberSpec,
        address: Option<String>,
    ) -> Result<(), MembershipError> {
        self.start_replacement(dead, new, address)
    }

    /// The address member `id` is reached at as this member knows it: the
    /// topology's, else the one a pending replacement was given
    /// ([`replace_member_at`](Self::replace_member_at)); `None` when
    /// neither has one (the configured peers may still).
    pub fn member_address(&self, id: NodeId) -> Option<&str> {
        let carried = || self.membership.members.get(&id)?.address.as_deref();
        self.cfg.topology.address(id).or_else(carried)
    }

    /// The member description a replacement for `dead` gets: `dead`'s site
    /// and role with the new id, name, host and appliance.
    pub fn replacement_member(&self, dead: NodeId, new: MemberSpec) -> Option<Member> {
        self.membership.replacement(dead, new)
    }

    /// Proposes a change of the replicated topology (leader only) and
    /// returns the version it will have. Check it first with
    /// [`Topology::preview`](crate::topology::Topology::preview) on
    /// [`topology`](Self::topology). Members it adds or removes move in
    /// the same raft configuration change (joint consensus when more than
    /// one moves); a change of ranks or addresses is a normal entry. Every
    /// member applies it in log order and emits
    /// [`Event::TopologyChanged`]; a member it adds is started with
    /// [`NodeConfig::joining`] set to its description in the new topology.
    ///
    /// # Errors
    /// [`TopologyChangeError`]: not the leader, a change under way, the
    /// change invalid (with the [`TopologyError`](crate::topology::TopologyError)),
    /// or it would remove this leader. Nothing is proposed then.
    pub fn change_topology(&mut self, change: &TopologyChange) -> Result<u64, TopologyChangeError> {
        self.propose_topology(change)
    }
}

/// Outputs, drained in this order.
impl<M: StateMachine, S: LogStore> Node<M, S> {
    /// The next envelope to send, if any. Processes the inputs fed since
    /// the last poll first (persisting what they produced).
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Envelope> {
        self.process();
        self.early.cleared = self.early.cleared.saturating_sub(1);
        self.outbox.pop_front()
    }

    /// The next proposal result, if any.
    pub fn poll_outcome(&mut self) -> Option<ProposalOutcome> {
        self.process();
        self.proposals.outcomes.pop_front()
    }

    /// The next answered read, if any.
    pub fn poll_read(&mut self) -> Option<ReadOutcome> {
        self.process();
        self.reads.outcomes.pop_front()
    }

    /// The next event, if any.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.process();
        self.events.pop_front()
    }
}

/// Snapshot jobs: taking and installing snapshots off the node thread
/// (see [`SnapshotJob`] and the state machine's
/// [`snapshot_handle`](StateMachine::snapshot_handle)).
impl<M: StateMachine, S: LogStore> Node<M, S> {
    /// Has snapshots taken and installed off the node thread: from now on
    /// the node hands that work out through
    /// [`poll_snapshot_job`](Self::poll_snapshot_job) instead of doing
    /// it, and the caller must run each job ([`SnapshotJob::run`], on
    /// any thread) and feed the result back with
    /// [`snapshot_done`](Self::snapshot_done). The threaded runtime and
    /// the simulator do. Without it (the default) the node does the work
    /// on its own thread. While a job runs the node keeps serving (ticks,
    /// heartbeats, appends, proposals).
    pub fn offload_snapshots(&mut self) {
        self.set_offload();
    }

    /// The next snapshot job to run, if any (only after
    /// [`offload_snapshots`](Self::offload_snapshots)). Drain it with the
    /// other outputs.
    pub fn poll_snapshot_job(&mut self) -> Option<SnapshotJob> {
        self.next_snapshot_job()
    }

    /// Feeds a job's result: stores a taken snapshot and compacts the log
    /// behind it, or installs a received one and applies what committed
    /// meanwhile. A result superseded meanwhile (a newer snapshot, a new
    /// epoch) is dropped.
    pub fn snapshot_done(&mut self, done: SnapshotDone) {
        self.take_snapshot_result(done);
    }

    /// Whether a received snapshot is being installed off the node thread
    /// (the applied index stays below it until then).
    pub fn installing_snapshot(&self) -> bool {
        self.restoring()
    }
}

/// Getters.
impl<M: StateMachine, S: LogStore> Node<M, S> {
    /// The node's status now.
    pub fn status(&self) -> Status {
        self.current_status()
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The cluster's topology, as this node was configured with it.
    pub fn topology(&self) -> &crate::topology::Topology {
        &self.cfg.topology
    }

    /// The leader this node knows of.
    pub fn leader(&self) -> Option<NodeId> {
        self.election.leader
    }

    /// Whether this node is the leader.
    pub fn is_leader(&self) -> bool {
        self.election.role == StateRole::Leader
    }

    /// The current raft term.
    pub fn term(&self) -> u64 {
        self.raw.raft.term
    }

    /// The current epoch.
    pub fn epoch(&self) -> EpochId {
        self.ep.lineage.last().map_or(FIRST_EPOCH, |r| r.id)
    }

    /// The epoch lineage, first epoch first (the last one is this node's).
    pub fn lineage(&self) -> &[EpochRecord] {
        &self.ep.lineage
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

    /// Its log store (the runtime times its syncs).
    #[cfg_attr(not(all(feature = "metrics", feature = "runtime")), allow(dead_code))]
    pub(crate) fn log_store(&self) -> &S {
        &self.storage
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
        self.membership.members.get(&id).map(|s| &s.member)
    }

    /// The current voters, as applied here, in id order.
    pub fn voters(&self) -> Vec<NodeId> {
        let mut v: Vec<NodeId> = self.membership.voter_ids().collect();
        v.sort_unstable();
        v
    }

    /// The outgoing voters of a joint configuration, as applied here, in id
    /// order: empty unless a configuration change with several moves
    /// ([`change_topology`](Self::change_topology)) is half done.
    pub fn outgoing_voters(&self) -> Vec<NodeId> {
        let mut v: Vec<NodeId> = (self.membership.conf.voters_outgoing.iter())
            .map(|&id| NodeId(id))
            .collect();
        v.sort_unstable();
        v
    }

    /// The current learners, as applied here, in id order.
    pub fn learners(&self) -> Vec<NodeId> {
        let mut v: Vec<NodeId> = self
            .membership
            .conf
            .learners
            .iter()
            .map(|&v| NodeId(v))
            .collect();
        v.sort_unstable();
        v
    }
}

/// Plumbing shared by every concern.
impl<M: StateMachine, S: LogStore> Node<M, S> {}

/// Plumbing shared by every concern.
impl<M: StateMachine, S: LogStore> Node<M, S> {
    fn my_member(&self) -> Option<&Member> {
        self.membership.members.get(&self.id).map(|s| &s.member)
    }

    /// What proposals and reads are admitted against now.
    fn intake(&self) -> proposals::Intake {
        proposals::Intake {
            removed: self.membership.removed,
            leading: self.election.role == StateRole::Leader,
            forward: self.cfg.forward_proposals,
            leader: self.election.leader,
            max_pending: self.cfg.max_pending,
        }
    }

    fn emit(&mut self, e: Event) {
        slog::info!(self.logger, "event"; "event" => %e, "t_ms" => self.now_ms);
        self.events.push_back(e);
    }
}
