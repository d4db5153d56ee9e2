//! The only code that sees `raft::Ready`: persist, send, apply, advance, in
//! the order raft-rs requires (see
//! [`manual::raft_rs`](crate::manual::raft_rs#persisting-a-ready)).

use protobuf::Message as _;
use raft::eraftpb::{ConfChange, ConfChangeV2, ConfState, Entry, EntryType, Message};
use raft::StateRole;

use super::proposals::{Applied, ProposalOutcome};
use super::{Node, ProposalId};
use crate::error::Fatal;
use crate::events::Event;
use crate::state_machine::StateMachine;
use crate::storage::{LogStore, LogWrite};
use crate::topology::NodeId;
use crate::wire::payload::{encode, EntryPayload, MemberRecord, TopologyRecord};
use crate::wire::Envelope;

/// A driver's sink for the envelopes that may leave before this member's
/// next storage write (see [`Node::set_early_sink`]): it sends the
/// envelope and returns `None`, or gives it back when it cannot send it
/// now (to a peer it does not know yet, say), and the node queues it for
/// [`Node::poll_transmit`] as usual.
pub type EarlySink = Box<dyn FnMut(Envelope) -> Option<Envelope> + Send>;

/// The early sink, if the driver gave one, and how many envelopes at the
/// front of the outbox may leave before the next storage write.
#[derive(Default)]
pub(super) struct Early {
    pub(super) sink: Option<EarlySink>,
    pub(super) cleared: usize,
}

/// How raft's role changed between two `Ready`s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Transition {
    /// This member became leader.
    Gained,
    /// This member stopped leading.
    Lost,
    /// Leading before and after, or neither.
    Same,
}

/// The change from role `was` to role `now`.
pub(super) fn transition(was: StateRole, now: StateRole) -> Transition {
    match (was == StateRole::Leader, now == StateRole::Leader) {
        (false, true) => Transition::Gained,
        (true, false) => Transition::Lost,
        _ => Transition::Same,
    }
}

/// Whether `id` is in the configuration `conf` (voter or learner, in
/// either half of a joint configuration).
pub(super) fn in_conf(conf: &ConfState, id: NodeId) -> bool {
    conf.voters.contains(&id.0)
        || conf.learners.contains(&id.0)
        || conf.voters_outgoing.contains(&id.0)
        || conf.learners_next.contains(&id.0)
}

/// How many entries to keep behind a snapshot at `applied`: at least
/// `keep_entries`, and, under a compaction `floor` (main-site mode), every
/// entry above it.
pub(super) fn keep_for(applied: u64, keep_entries: u64, floor: Option<u64>) -> u64 {
    match floor {
        Some(f) => keep_entries.max(applied.saturating_sub(f)),
        None => keep_entries,
    }
}

/// Whether a leader whose survivable learners have all committed `live`
/// records it as the new compaction floor, the last one recorded (or
/// proposed) being `last`: once it moved `step` entries on (a record per
/// `step` entries at most; followers keep at most that many more than they
/// must).
pub(super) fn floor_record_due(live: u64, last: u64, step: u64) -> bool {
    live >= last.saturating_add(step.max(1))
}

/// The log this member holds, against its last snapshot: what
/// [`snapshot_due`] weighs besides the entry count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct LogWeight {
    /// Bytes of the log entries held (what compacting could drop).
    pub(super) held_bytes: u64,
    /// Size of the latest snapshot: taken here, installed from the
    /// leader, or stored before a restart.
    pub(super) snapshot_bytes: u64,
}

/// Whether to snapshot and compact now: something was applied since the
/// last snapshot at `snapshot_index`, and either raft asked for a fresh
/// snapshot (`requested`), or `every` entries were applied *and* the log
/// held weighs at least as much as the last snapshot.
///
/// The second condition bounds what snapshots cost against what the log
/// costs: a snapshot rewrites (and fsyncs) the whole state, so taking one
/// every `every` entries regardless of size makes a large state under
/// small, fast commands spend most of the disk on snapshots (a 2 MB state
/// at 40,000 commits/s would be rewritten 40 times a second, and every
/// commit's fsync queues behind those writes). Waiting until the log held
/// weighs as much as the snapshot keeps snapshot writes at most equal to
/// log writes, while the log held stays below the state's size (plus
/// `every` entries). A small state is unaffected (its snapshot weighs less
/// than `every` entries), and a log that holds large entries (a big state
/// just written) is compacted at `every` entries as before.
pub(super) fn snapshot_due(
    applied: u64,
    snapshot_index: u64,
    every: u64,
    requested: bool,
    weight: LogWeight,
) -> bool {
    let due = applied >= snapshot_index + every && weight.held_bytes >= weight.snapshot_bytes;
    (due || requested) && applied > snapshot_index
}

impl<M: StateMachine, S: LogStore> Node<M, S> {
    /// Handles every pending `Ready`. Never call raft's step/propose/campaign
    /// from inside: only storage writes, state-machine applies and
    /// `apply_conf_change` happen between `ready()` and `advance()`.
    pub(super) fn on_ready(&mut self) {
        while self.fatal.is_none() && self.raw.has_ready() {
            let mut rd = self.raw.ready();
            if let Some(ss) = rd.ss() {
                let (leader, role) = (ss.leader_id, ss.raft_state);
                self.on_soft_state(leader, role);
            }
            // A leader may send before its own write is durable (Raft thesis 10.2.1).
            let before = self.outbox.len();
            let msgs = rd.take_messages();
            self.send(msgs);
            self.transmit_early(before);
            // A snapshot the state machine cannot load is never persisted.
            let snapshot = (!rd.snapshot().is_empty()).then(|| rd.snapshot().clone());
            let restored = match &snapshot {
                Some(snap) => match self.restore_snapshot(snap) {
                    Some(data) => Some(data),
                    None => return,
                },
                None => None,
            };
            let write = LogWrite {
                snapshot: snapshot.as_ref(),
                entries: rd.entries(),
                hard_state: rd.hs(),
                sync: rd.must_sync(),
            };
            if let Err(e) = self.storage.persist(write) {
                return self.fail(Fatal::Storage(e));
            }
            self.retained.appended(rd.entries());
            self.note_appended(rd.entries());
            if let (Some(snap), Some(data)) = (&snapshot, restored) {
                self.adopt_snapshot(snap, data);
            }
            let committed = rd.take_committed_entries();
            self.apply_entries(committed);
            let read_states = rd.take_read_states();
            self.on_read_states(read_states);
            // Votes and append responses only after the write above.
            let msgs = rd.take_persisted_messages();
            self.send(msgs);
            let mut light = self.raw.advance(rd);
            if let Some(c) = light.commit_index() {
                if let Err(e) = self.storage.set_commit(c) {
                    return self.fail(Fatal::Storage(e));
                }
            }
            let msgs = light.take_messages();
            self.send(msgs);
            let committed = light.take_committed_entries();
            self.apply_entries(committed);
            self.raw.advance_apply();
            // All queued so far depends only on what is written now.
            self.early.cleared = self.outbox.len();
        }
        self.maybe_snapshot();
    }

    /// Hands the driver's [`EarlySink`] what may leave before this Ready's
    /// write, in queue order: the envelopes queued by the end of an earlier
    /// Ready (its write done, its committed entries applied), then (when nothing else stands between) raft's
    /// messages of this Ready, which raft lets go before the write (a
    /// leader's appends and heartbeats; a leader counts its own entries
    /// only once told they are written, in `advance`). `before` is the
    /// queue's length before those were queued. Envelopes queued since the
    /// last write by other code (control messages, relays) and everything
    /// after them wait for [`poll_transmit`](Node::poll_transmit), as
    /// without a sink; so do the votes and append responses, queued only
    /// after the write. The queue's order is kept: a sink that gives an
    /// envelope back stops the handing.
    fn transmit_early(&mut self, before: usize) {
        let Early { sink, cleared } = &mut self.early;
        let Some(sink) = sink.as_mut() else {
            return;
        };
        if *cleared >= before {
            *cleared = self.outbox.len();
        }
        while *cleared > 0 {
            let Some(env) = self.outbox.pop_front() else {
                break;
            };
            if let Some(back) = sink(env) {
                self.outbox.push_front(back);
                return;
            }
            *cleared -= 1;
        }
    }

    fn send(&mut self, msgs: Vec<Message>) {
        let cluster = self.cfg.topology.cluster_id();
        for m in msgs {
            if m.from != self.id.0 {
                // raft relays a proposal or read request that another
                // member forwarded here under that member's name; the
                // receiver would refuse it as spoofed (a transport closes
                // the connection). Its sender asks again when it learns the
                // new leader, so it is dropped here instead.
                self.counters.relays_dropped += 1;
                slog::debug!(self.logger, "not relaying a forwarded request";
                    "type" => ?m.get_msg_type(), "origin" => m.from, "to" => m.to);
                continue;
            }
            if m.get_msg_type() == raft::eraftpb::MessageType::MsgSnapshot {
                self.membership
                    .snapshot_sent
                    .insert(NodeId(m.to), self.tick_no);
            }
            self.outbox
                .push_back(Envelope::wrap(cluster, self.epoch(), &m));
        }
    }

    fn on_soft_state(&mut self, leader: u64, role: StateRole) {
        let term = self.raw.raft.term;
        let leader = (leader != 0).then_some(NodeId(leader));
        match transition(self.election.role, role) {
            Transition::Gained => {
                let cause = self.election.gained();
                self.hand_back_gained_leadership();
                self.dr_gained_leadership();
                self.emit(Event::BecameLeader { term, cause });
            }
            Transition::Lost => {
                self.emit(Event::SteppedDown { term });
                let handing_over =
                    self.hand_back_lost_leadership() | self.transfer_lost_leadership();
                self.election
                    .deposed(leader.is_some(), handing_over, self.ticks.failover);
            }
            Transition::Same => {}
        }
        self.election.settle_role(role);
        if self.election.leader_seen(leader) {
            self.emit(Event::LeaderChanged { term, leader });
            self.hand_back_landed(leader);
            if leader.is_some() {
                self.leader_contact();
            }
        }
    }

    pub(super) fn fail(&mut self, f: Fatal) {
        slog::error!(self.logger, "node stops"; "reason" => %f);
        self.fatal = Some(f);
    }

    pub(super) fn is_in_conf(&self, id: NodeId) -> bool {
        in_conf(&self.membership.conf, id)
    }

    pub(super) fn apply_entries(&mut self, entries: Vec<Entry>) {
        for e in self.hold_while_restoring(entries) {
            if e.index <= self.applied {
                continue;
            }
            match e.get_entry_type() {
                EntryType::EntryNormal => self.apply_normal(&e),
                EntryType::EntryConfChange => match ConfChange::parse_from_bytes(&e.data) {
                    Ok(cc) => {
                        // v1 entries are never proposed here; accept them anyway.
                        let mut v2 = ConfChangeV2::default();
                        let mut single = raft::eraftpb::ConfChangeSingle::default();
                        single.set_change_type(cc.get_change_type());
                        single.node_id = cc.node_id;
                        v2.changes = vec![single].into();
                        self.apply_conf(&v2, &cc.context)
                    }
                    Err(err) => self.bad_entry(&e, &err.to_string()),
                },
                EntryType::EntryConfChangeV2 => match ConfChangeV2::parse_from_bytes(&e.data) {
                    Ok(cc) => {
                        let ctx = cc.context.clone();
                        self.apply_conf(&cc, &ctx)
                    }
                    Err(err) => self.bad_entry(&e, &err.to_string()),
                },
            }
            self.applied = e.index;
        }
    }

    fn bad_entry(&mut self, e: &Entry, why: &str) {
        self.counters.malformed_entries += 1;
        slog::error!(self.logger, "skipping undecodable entry"; "index" => e.index, "reason" => why);
    }

    fn apply_normal(&mut self, e: &Entry) {
        if e.data.is_empty() {
            return; // a new leader's empty entry
        }
        let p = match <EntryPayload as prost::Message>::decode(&e.data[..]) {
            Ok(p) => p,
            Err(err) => return self.bad_entry(e, &err.to_string()),
        };
        if let Some(floor) = p.keep_from {
            self.proposals.keep_floor = Some(floor);
            return;
        }
        if let Some(t) = &p.topology {
            return self.apply_topology(t);
        }
        if let Some(r) = &p.replication {
            return self.apply_replication(r, e.index);
        }
        if let Some(r) = &p.reconcile {
            return self.apply_reconcile(e, r);
        }
        let mine = p.proposer == self.id.0 && p.boot == self.boot;
        match self.proposals.dedup.admit(&p, e.index, e.term) {
            Ok(()) => {
                let response = self.sm.apply(e.index, &p.command);
                if mine {
                    self.resolve(p.seq, e.index, e.term, Some(response));
                }
            }
            Err(first) => {
                self.counters.duplicates_dropped += 1;
                // A retry of ours whose first copy we did not see applied
                // (we caught up from a snapshot): it is done all the same.
                if let (true, Some((index, term))) = (mine, first) {
                    self.resolve(p.seq, index, term, None);
                }
            }
        }
    }

    /// Reports a proposal made here as applied, once.
    pub(super) fn resolve(&mut self, seq: u64, index: u64, term: u64, response: Option<Vec<u8>>) {
        if self.proposals.pending.remove(&seq).is_none() {
            return;
        }
        self.proposals.outcomes.push_back(ProposalOutcome {
            id: ProposalId {
                node: self.id,
                boot: self.boot,
                seq,
            },
            result: Ok(Applied {
                index,
                term,
                // The epoch that appended it: an entry below a fork point
                // (applied late, or seen in a snapshot) is the older one's.
                epoch: crate::ids::origin_of(&self.ep.lineage, index),
                response,
            }),
        });
    }

    /// After a snapshot: the proposals made here that it shows applied.
    pub(super) fn resolve_from_dedup(&mut self) {
        let done: Vec<(u64, (u64, u64))> = self
            .proposals
            .pending
            .keys()
            .filter_map(|&seq| {
                Some((
                    seq,
                    self.proposals.dedup.applied_at(self.id.0, self.boot, seq)?,
                ))
            })
            .collect();
        for (seq, (index, term)) in done {
            self.resolve(seq, index, term, None);
        }
    }

    fn apply_conf(&mut self, cc: &ConfChangeV2, context: &[u8]) {
        match self.raw.apply_conf_change(cc) {
            Ok(cs) => self.membership.conf = cs,
            Err(err) => {
                // Deterministic on every member: the same entry fails everywhere.
                slog::warn!(self.logger, "conf change not applied"; "reason" => %err);
                return;
            }
        }
        if let Ok(rec) = <MemberRecord as prost::Message>::decode(context) {
            if rec.id != 0 {
                self.membership
                    .members
                    .insert(NodeId(rec.id), rec.to_state());
            }
        }
        // A topology version in the same context (field numbers apart).
        if let Ok(t) = <TopologyRecord as prost::Message>::decode(context) {
            if t.version != 0 {
                self.apply_topology(&t);
            }
        }
        use raft::eraftpb::ConfChangeType::*;
        for ch in cc.changes.iter() {
            let id = NodeId(ch.node_id);
            match ch.get_change_type() {
                AddLearnerNode => self.emit(Event::MemberAdded { id }),
                AddNode => self.emit(Event::MemberPromoted { id }),
                RemoveNode => {
                    self.membership.members.remove(&id);
                    self.contact.last_heard.remove(&id);
                    self.emit(Event::MemberRemoved { id });
                }
            }
        }
        let removed = !self.is_in_conf(self.id);
        if removed && !self.membership.removed {
            self.emit(Event::Removed);
        }
        self.membership.removed = removed;
    }

    /// Main-site mode: the index up to which this member may compact its
    /// log, so that no entry a survivable member has not committed is
    /// compacted (`None`: no limit, in witness mode or when every
    /// survivable member is a voter). A survivable member forks its epoch at the index it has
    /// applied, which is at least the commit index it last reported, so
    /// everything above the lowest such report must stay: at a reunion it
    /// is the older epoch's divergent suffix, and each member of that
    /// epoch sends the newer one its own copy (the newer leader takes the
    /// first it gets), so followers must keep it as well as the leader.
    ///
    /// The leader knows each learner's reported commit (raft's progress,
    /// from every append and heartbeat response; 0 until heard, so a new
    /// leader keeps everything until each has answered). While the WAN is
    /// cut the reports stop and the floor stays where it was: the tail
    /// written since stays on disk until the reunion, growing with the
    /// cut's length times the write rate, and compaction resumes once the
    /// survivable members have it (or are removed). Followers cannot see
    /// those reports: the leader records the floor in the log every
    /// [`NodeConfig::keep_entries`](super::NodeConfig::keep_entries)
    /// entries it moves (see [`floor_record_due`]), and a follower keeps
    /// everything above the last record it applied, or everything while
    /// it has applied none since it started. A record is never above a
    /// report, so a follower's floor is never above the leader's.
    pub(super) fn compaction_floor(&self) -> Option<u64> {
        let lowest = self.lowest_survivable_commit()?;
        if self.election.role == StateRole::Leader {
            Some(lowest)
        } else {
            Some(self.proposals.keep_floor.unwrap_or(0))
        }
    }

    /// Main-site mode: the lowest commit index that a survivable member
    /// that is not a voter of the configuration last reported to this
    /// member. A learner reports it to the leader (0 until heard; only a
    /// leader hears them); one outside the configuration (a survivable
    /// member that may have founded a sibling epoch, or not joined this
    /// one yet) reports nothing, so it counts as 0 and this epoch keeps
    /// every entry until it joins. `None` in witness mode or when every
    /// survivable member is a voter. In DR auto-sync mode survivable
    /// members are voters and count all the same: a cut that activates the
    /// survivable site leaves the main site's `Async` commits to
    /// reconcile. Runs on every `Ready`: it allocates nothing.
    fn lowest_survivable_commit(&self) -> Option<u64> {
        if !self.cfg.topology.mode().forks_epochs() {
            return None;
        }
        let conf = &self.membership.conf;
        let voter = |id: u64| conf.voters.contains(&id) || conf.voters_outgoing.contains(&id);
        let prs = self.raw.raft.prs();
        let dr = self.dr_mode();
        self.membership
            .members
            .iter()
            .filter(|(id, s)| {
                matches!(s.member.role, crate::topology::Role::Survivable { .. })
                    && **id != self.id
                    && (dr || !voter(id.0))
            })
            .map(|(id, _)| prs.get(id.0).map_or(0, |pr| pr.committed_index))
            .min()
    }

    /// Leader, main-site mode: records the compaction floor in the log for
    /// the followers once it moved on (see [`Self::compaction_floor`]).
    fn record_compaction_floor(&mut self) {
        if self.election.role != StateRole::Leader || self.fenced() || self.ep.joining {
            return;
        }
        if !crate::wire::version::has_floor_records(self.cfg.protocol.max()) {
            return; // pinned to a version that cannot read them
        }
        let Some(live) = self.lowest_survivable_commit() else {
            return;
        };
        let last = self
            .proposals
            .keep_floor
            .unwrap_or(0)
            .max(self.proposals.keep_floor_proposed);
        if !floor_record_due(live, last, self.cfg.keep_entries) {
            return;
        }
        let record = EntryPayload {
            keep_from: Some(live),
            ..EntryPayload::default()
        };
        if self.raw.propose(Vec::new(), encode(&record)).is_ok() {
            self.proposals.keep_floor_proposed = live;
        }
    }
}

impl<M: StateMachine, S: LogStore> Node<M, S> {
    /// Lets envelopes leave while this member writes, rather than after:
    /// from now on, before each storage write the node hands `sink` what
    /// may already go (in queue order): a leader's appends and heartbeats
    /// (raft lets a leader send its entries before its own write is
    /// durable; it counts itself in a commit only once the write
    /// returned) and what was queued by the end of an earlier Ready.
    /// Votes and append responses are still queued only after the write
    /// they acknowledge. The leader's fsync then overlaps the followers'
    /// round trip instead of preceding it. Without a sink (the default,
    /// and in the simulator) every envelope waits for
    /// [`poll_transmit`](Self::poll_transmit); with one, poll the queue
    /// as before, for what the sink gave back or was not handed.
    pub fn set_early_sink(&mut self, sink: EarlySink) {
        self.early.sink = Some(sink);
    }

    /// Runs raft on everything fed since the last call: submits waiting
    /// proposals, persists, queues messages, applies. Inputs only record
    /// work so a batch of them costs one storage write.
    pub(super) fn process(&mut self) {
        if self.dirty {
            self.dirty = false;
            self.on_ready();
            self.pump_proposals();
        }
    }

    /// Submits waiting proposals when someone can take them.
    fn pump_proposals(&mut self) {
        if self.fatal.is_some() {
            return;
        }
        self.submit_pending();
        self.record_compaction_floor();
        self.submit_reads();
        if self.election.fresh_leader && self.election.role == StateRole::Leader {
            self.election.fresh_leader = false;
            self.reprobe_followers();
        }
        self.on_ready();
        self.finish_reads();
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
}

#[cfg(test)]
#[path = "ready_tests.rs"]
mod tests;
