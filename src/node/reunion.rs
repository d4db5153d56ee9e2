//! Reunion: what happens when two epochs meet (main-site mode).
//!
//! The older side is fenced at once: it stops taking proposals. Each of its
//! members sends the newer epoch's leader its committed entries after the
//! common point (the divergent suffix); the leader hands them to the
//! application's [`StateMachine::reconcile`] hook and commits the commands
//! it returns, with the range reconciled, as one entry: every member of
//! the newer epoch applies them at the same place, exactly once. Once a
//! member's whole suffix is reconciled, it forgets its old epoch (storage
//! reset), asks the newer epoch's leader to add it, and catches up from a
//! snapshot as a learner. Hand-back then makes the main site lead again.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

use protobuf::Message as _;
use raft::eraftpb::{ConfChangeSingle, ConfChangeType, ConfChangeV2, ConfState, Entry, Snapshot};
use raft::StateRole;

use super::divergent::{
    any_applied, backoff, divergent_entry, divergent_run, gap_wait_over, panic_message, stale,
    to_show, unapplied,
};
use super::Node;
use crate::error::Fatal;
use crate::events::Event;
use crate::ids::{common_point, newer, EntryRange, EpochId, EpochRecord};
use crate::state_machine::{DivergentEntry, ReconcileFailure, Reconciliation, StateMachine};
use crate::storage::LogStore;
use crate::topology::NodeId;
use crate::wire::control::{Divergent, Kind, Probe};
use crate::wire::payload::{
    decode_lineage, encode, encode_lineage, encode_members, EntryPayload, MemberRecord,
    MemberState, RangePb, ReconcileRecord, SnapshotData,
};

/// Entries sent in one divergent message at most.
const CHUNK_ENTRIES: u64 = 1024;
/// Bytes of entries in one divergent message at most.
const CHUNK_BYTES: u64 = 1 << 20;
/// A member missing the start of its divergent run (compacted, or caught
/// up from a snapshot) sends it one round in this many, so that one
/// holding the whole run is heard first; the newer leader takes a gapped
/// run, and counts what it lacks, only when no such member answers.
const GAPPED_ROUNDS: u64 = 4;
/// A newer epoch this member met.
#[derive(Debug, Clone)]
pub(super) struct Newer {
    pub(super) lineage: Vec<EpochRecord>,
    pub(super) reconciled: BTreeMap<EpochId, u64>,
    pub(super) leader: Option<NodeId>,
    /// Who told us of it (a member of it, or one of ours relaying).
    pub(super) via: NodeId,
}

impl Newer {
    fn id(&self) -> EpochId {
        self.lineage.last().map_or(super::FIRST_EPOCH, |r| r.id)
    }
}

impl<M: StateMachine, S: LogStore> Node<M, S> {
    /// A message came from another epoch: tell its sender ours (the newer
    /// side answers with its own, so both learn). If the sender's epoch is
    /// newer, this member is fenced at once: it takes no proposal from now
    /// on, without waiting a round trip for the notice that tells it the
    /// newer epoch's lineage (reunion starts when that notice comes).
    pub(super) fn met_other_epoch(&mut self, from: NodeId, theirs: EpochId) {
        if newer(theirs, self.epoch()) && self.ep.newer.is_none() {
            if self.ep.fenced_by.is_none() {
                self.fence(theirs);
            }
            if self.ep.fenced_by.is_none_or(|(e, _)| newer(theirs, e)) {
                self.ep.fenced_by = Some((theirs, from));
            }
        }
        self.send_notice(from);
    }

    /// Stops taking proposals: this epoch met a newer one (reported once).
    fn fence(&mut self, newer: EpochId) {
        let ours = self.epoch();
        slog::warn!(self.logger, "met a newer epoch: fenced"; "ours" => %ours, "newer" => %newer);
        self.emit(Event::EpochFenced { ours, newer });
    }

    /// Whether this member is fenced: it met a newer epoch (its notice, or
    /// only an envelope of it so far).
    pub(super) fn fenced(&self) -> bool {
        self.ep.newer.is_some() || self.ep.fenced_by.is_some()
    }

    pub(super) fn on_notice(
        &mut self,
        from: NodeId,
        lineage: Vec<EpochRecord>,
        reconciled: BTreeMap<EpochId, u64>,
        leader: Option<NodeId>,
    ) {
        let Some(theirs) = lineage.last().map(|r| r.id) else {
            return;
        };
        let ours = self.epoch();
        if theirs == ours {
            if self.ep.joining && leader.is_some() {
                self.ep.join_leader = leader;
            }
            return;
        }

        if !newer(theirs, ours) {
            self.send_notice(from);
            return;
        }
        if common_point(&self.ep.lineage, &lineage).is_none() {
            // Another history altogether: an envelope of it fences nothing.
            if self.ep.fenced_by.is_some_and(|(e, _)| e == theirs) {
                self.ep.fenced_by = None;
            }
            return;
        }
        let first = self.ep.newer.as_ref().is_none_or(|n| newer(theirs, n.id()));
        let fresh = first && self.ep.newer.is_none();
        if fresh && !self.fenced() {
            self.fence(theirs);
        }
        if first || self.ep.newer.as_ref().is_some_and(|n| n.id() == theirs) {
            // Our run was reconciled further: send the next chunk now.
            let mark = |r: &BTreeMap<EpochId, u64>| r.get(&ours).copied().unwrap_or(0);
            if self
                .ep
                .newer
                .as_ref()
                .is_some_and(|n| mark(&reconciled) > mark(&n.reconciled))
            {
                self.ep.asked_at = 0;
            }
            let leader = leader.or(self.ep.newer.as_ref().and_then(|n| n.leader));
            self.ep.newer = Some(Newer {
                lineage,
                reconciled,
                leader,
                via: from,
            });
        }
        if fresh {
            // Tell the rest of our epoch at once: it may not reach the newer one.
            self.relay_newer();
        }
        self.advance_reunion();
    }

    /// Fenced: send the newer epoch what it lacks of ours, join it once it
    /// has all of it. Joining: ask its leader to add us. Called each tick.
    pub(super) fn advance_reunion(&mut self) {
        let e = self.ticks.election as u64;
        if self.ep.joining {
            if let Some(n) = self.ep.newer.clone() {
                // Nothing of the epoch being joined is here yet (a joining
                // member holds no entries): join the newer one instead.
                if let Err(f) = self.join_epoch(n.lineage, n.leader) {
                    self.fail(f);
                }
                return;
            }
            if self.tick_no >= self.ep.asked_at + e {
                self.ep.asked_at = self.tick_no;
                let to = self.ep.join_leader.unwrap_or_else(|| self.epoch().founder);
                if to != self.id && to.0 != 0 {
                    self.send_control(to, Kind::Join(Probe::default()));
                }
            }
            return;
        }
        let Some(n) = self.ep.newer.clone() else {
            // Fenced by an envelope only: ask its sender and the epoch's
            // founder for the notice that starts reunion.
            if let Some((epoch, via)) = self.ep.fenced_by {
                for to in [via, epoch.founder] {
                    if to != self.id && to.0 != 0 {
                        self.send_notice(to);
                    }
                }
            }
            return;
        };
        let Some(p) = common_point(&self.ep.lineage, &n.lineage) else {
            return;
        };
        let commit = self.raw.raft.raft_log.committed;
        let done = n.reconciled.get(&self.epoch()).copied().unwrap_or(0).max(p);
        if commit <= done {
            if let Err(f) = self.join_epoch(n.lineage, n.leader) {
                self.fail(f);
            }
            return;
        }
        if self.tick_no < self.ep.asked_at + e && self.ep.asked_at != 0 {
            return;
        }
        self.ep.asked_at = self.tick_no;
        // Keep what we know of the newer epoch fresh (its leader may have
        // changed, or not been known yet, and its reconciled mark moves):
        // whoever told us of it and its founder answer with their notice.
        for to in [n.via, n.id().founder] {
            if to != self.id && to.0 != 0 {
                self.send_notice(to);
            }
        }
        // Leader unknown: its founder most often leads (others ignore it).
        let leader = n.leader.unwrap_or_else(|| n.id().founder);
        if leader == self.id || leader.0 == 0 {
            return;
        }
        let log = &self.raw.raft.raft_log;
        let lo = done + 1;
        let first = log.first_index();
        let from = lo.max(first);
        // Missing the run's start (see GAPPED_ROUNDS): holders go first.
        if from > lo && (self.tick_no / e.max(1)) % GAPPED_ROUNDS != 0 {
            return;
        }
        let to = commit.min(from + CHUNK_ENTRIES - 1);
        let entries = if from <= to {
            log.entries(from, CHUNK_BYTES, raft::GetEntriesContext::empty(false))
                .unwrap_or_default()
                .into_iter()
                .take_while(|en| en.index <= to)
                .map(|en| en.write_to_bytes().unwrap_or_default())
                .collect()
        } else {
            Vec::new()
        };
        let divergent = Divergent {
            lineage: encode_lineage(&self.ep.lineage),
            commit,
            first_index: from,
            entries,
            compacted: from - lo,
            // What the compacted entries had reconciled: the latest
            // snapshot's view (compaction follows a snapshot).
            compacted_covered: if from > lo {
                SnapshotData::decode_shared(&self.storage.latest_snapshot().data)
                    .map(|d| d.covered)
                    .unwrap_or_default()
            } else {
                Vec::new()
            },
        };
        self.send_control(leader, Kind::Divergent(divergent));
    }

    /// Leader, main-site mode: every few election timeouts, tell each known
    /// member outside the configuration which epoch this is. Members it
    /// does not replicate to (a partner cut off when this epoch was
    /// founded, a survivable core that founded an epoch of its own) would
    /// otherwise never meet it.
    pub(super) fn announce_epoch(&mut self) {
        if !self.cfg.topology.mode().forks_epochs()
            || self.election.role != StateRole::Leader
            || self.fenced()
        {
            return;
        }
        let every = 3 * self.ticks.election as u64;
        if self.tick_no < self.ep.announced_at + every {
            return;
        }
        self.ep.announced_at = self.tick_no;
        let outside: Vec<NodeId> = self
            .cfg
            .topology
            .members()
            .keys()
            .chain(self.membership.members.keys())
            .copied()
            .filter(|&m| m != self.id && !self.is_in_conf(m))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        for to in outside {
            self.send_notice(to);
        }
    }

    /// Passes the newer epoch's notice on to every other member of ours.
    fn relay_newer(&mut self) {
        let Some(n) = self.ep.newer.clone() else {
            return;
        };
        let notice = crate::wire::control::Notice {
            lineage: encode_lineage(&n.lineage),
            reconciled: crate::wire::payload::encode_reconciled(&n.reconciled),
            leader: n.leader.map_or(0, |l| l.0),
        };
        let peers: Vec<NodeId> = self
            .membership
            .conf
            .voters
            .iter()
            .chain(&self.membership.conf.learners)
            .map(|&v| NodeId(v))
            .filter(|&v| v != self.id)
            .collect();
        for to in peers {
            self.send_control(to, Kind::Notice(notice.clone()));
        }
    }

    /// Leaves this epoch for `lineage`'s: forgets the raft state (keeping a
    /// marker naming the new epoch) and waits to be added to it.
    fn join_epoch(
        &mut self,
        lineage: Vec<EpochRecord>,
        leader: Option<NodeId>,
    ) -> Result<(), Fatal> {
        let data = SnapshotData {
            members: encode_members(&self.membership.members),
            epochs: encode_lineage(&lineage),
            ..SnapshotData::default()
        };
        let marker = Snapshot {
            data: encode(&data).into(),
            ..Default::default()
        };
        self.storage.reset(&marker)?;
        let epoch = lineage.last().map_or(super::FIRST_EPOCH, |r| r.id);
        self.ep.lineage = lineage;
        self.ep.reconciled.clear();
        self.ep.covered.clear();
        self.ep.reconcile_backoff.clear();
        self.ep.newer = None;
        self.ep.fenced_by = None;
        self.ep.joining = true;
        self.ep.join_leader = leader;
        self.ep.asked_at = 0;
        self.membership.conf = ConfState::default();
        self.snapshot_index = 0;
        self.restart_raft(0)?;
        self.sm.note_epoch(epoch);
        slog::info!(self.logger, "joined a newer epoch"; "epoch" => %epoch);
        self.emit(Event::JoinedEpoch { epoch });
        self.advance_reunion();
        Ok(())
    }

    /// Leader of a newer epoch: add a member of an older one that forgot it.
    pub(super) fn on_join(&mut self, from: NodeId, theirs: EpochId) {
        if theirs != self.epoch()
            || self.election.role != StateRole::Leader
            || self.is_in_conf(from)
        {
            return;
        }
        let pending = self.raw.raft.pending_conf_index > self.applied;
        if pending || self.tick_no < self.membership.conf_proposed_at + self.ticks.election as u64 {
            return;
        }
        let Some(state) = self.membership.members.get(&from).cloned() else {
            return;
        };
        let record = MemberRecord::from(&MemberState {
            member: state.member,
            replaces: None,
            address: state.address,
        });
        let mut add = ConfChangeSingle::default();
        add.set_change_type(ConfChangeType::AddLearnerNode);
        add.node_id = from.0;
        let cc = ConfChangeV2 {
            changes: vec![add].into(),
            context: encode(&record).into(),
            ..Default::default()
        };
        let _ = self.raw.propose_conf_change(Vec::new(), cc);
        self.membership.conf_proposed_at = self.tick_no;
    }

    /// Leader of a newer epoch: an older epoch's divergent entries.
    pub(super) fn on_divergent(&mut self, from: NodeId, d: Divergent) {
        if self.election.role != StateRole::Leader {
            return;
        }
        let lineage = decode_lineage(&d.lineage);
        let Some(theirs) = lineage.last().map(|r| r.id) else {
            return;
        };

        let p = common_point(&self.ep.lineage, &lineage).filter(|_| newer(self.epoch(), theirs));
        let Some(p) = p else {
            return;
        };
        let done = self.ep.reconciled.get(&theirs).copied().unwrap_or(0).max(p);
        // One reconciliation in flight at a time: two would be computed
        // against the same view and the second skipped as stale.
        let busy = self
            .ep
            .reconciling
            .is_some_and(|(_, _, at, _)| self.tick_no < at + 2 * self.ticks.election as u64);
        // After the hook failed: not before the back-off is over (the
        // senders keep sending; one of them finds it over).
        let backing_off = self
            .ep
            .reconcile_backoff
            .get(&theirs)
            .is_some_and(|&(_, at)| self.tick_no < at);
        if busy || backing_off {
            return;
        }
        let entries = d
            .entries
            .iter()
            .filter_map(|b| Entry::parse_from_bytes(b).ok());
        let Some((entries, gap, to_index)) =
            divergent_run(d.first_index, d.compacted, done, entries)
        else {
            return;
        };
        if gap > 0 && !self.gap_accepted(theirs, done, gap) {
            return;
        }
        let compacted_covered = crate::wire::payload::decode_reconciled(&d.compacted_covered);
        let shown = to_show(
            &self.ep.lineage,
            &self.ep.covered,
            &lineage,
            &entries,
            done,
            gap,
            &compacted_covered,
        );
        let Some((originals, covered)) = shown else {
            slog::debug!(self.logger, "divergent entries leave a gap; waiting for the rest";
                "from" => %theirs);
            return;
        };
        // Proposals applied here already (re-submitted): not shown again.
        let dedup = &self.proposals.dedup;
        let (originals, applied_here) =
            unapplied(originals, |o| dedup.covers(o.proposer, o.boot, o.seq));
        let divergent: Vec<DivergentEntry> = originals.iter().map(divergent_entry).collect();
        let input = Reconciliation {
            from: theirs,
            entries: &divergent,
            compacted: gap,
        };
        let sm = &self.sm;
        let verdict = catch_unwind(AssertUnwindSafe(|| sm.reconcile(&input)));
        let commands = match verdict {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return self.reconcile_failed(theirs, ReconcileFailure::Refused(e)),
            Err(panic) => {
                let message = panic_message(panic.as_ref());
                return self.reconcile_failed(theirs, ReconcileFailure::Panicked { message });
            }
        };
        self.ep.reconcile_backoff.remove(&theirs);
        let record = ReconcileRecord {
            from_number: theirs.number,
            from_founder: theirs.founder.0,
            from_index: done + 1,
            to_index,
            compacted: gap,
            commands,
            divergent: divergent.len() as u64,
            originals,
            covered: covered.iter().map(RangePb::from).collect(),
        };
        let payload = EntryPayload {
            reconcile: Some(record),
            ..EntryPayload::default()
        };
        if self.raw.propose(Vec::new(), encode(&payload)).is_ok() {
            self.ep.reconciling = Some((theirs, to_index, self.tick_no, from));
            slog::info!(self.logger, "reconciling"; "from" => %theirs, "up_to" => to_index,
                "sender" => from.0, "applied_here_already" => applied_here);
        }
    }

    /// Whether to take a divergent run of `from` after `done` that misses
    /// its start (its sender compacted it, or caught up from a snapshot):
    /// only once such runs have been offered for `done` for
    /// [`GAP_WAIT_ELECTIONS`] election timeouts, and then only the one
    /// missing the least seen meanwhile. Members holding the whole run send
    /// theirs every election timeout, so while one of them is reachable
    /// its run is taken first and nothing is counted as lost.
    fn gap_accepted(&mut self, from: EpochId, done: u64, gap: u64) -> bool {
        let now = self.tick_no;
        let entry = self
            .proposals
            .gapped_since
            .entry(from)
            .or_insert((done, now, gap));
        if entry.0 != done {
            *entry = (done, now, gap);
        }
        entry.2 = entry.2.min(gap);
        gap_wait_over(entry.1, now, self.ticks.election as u64) && gap <= entry.2
    }

    /// The hook refused (or panicked): report it and back off (one
    /// election timeout, doubling with each consecutive failure up to 32).
    fn reconcile_failed(&mut self, from: EpochId, failure: ReconcileFailure) {
        self.counters.reconcile_failures += 1;
        let (failures, _) = self
            .ep
            .reconcile_backoff
            .get(&from)
            .copied()
            .unwrap_or((0, 0));
        let (attempt, delay) = backoff(failures, self.ticks.election as u64);
        self.ep
            .reconcile_backoff
            .insert(from, (attempt, self.tick_no + delay));
        let retry_in_ms = delay * self.ticks.tick_ms;
        slog::error!(self.logger, "reconciliation refused; retried later"; "from" => %from,
            "attempt" => attempt, "reason" => %failure, "retry_in_ms" => retry_in_ms);
        self.emit(Event::ReconcileFailed {
            from,
            attempt,
            failure,
            retry_in_ms,
        });
    }

    /// Applies a committed reconciliation (on every member of the epoch).
    /// A record proposed against an older view (a leader change between
    /// proposal and commit) that overlaps what was taken in since is
    /// skipped whole; its sender sends the rest again.
    pub(super) fn apply_reconcile(&mut self, e: &Entry, r: &ReconcileRecord) {
        let from = EpochId {
            number: r.from_number,
            founder: NodeId(r.from_founder),
        };
        let ranges: Vec<EntryRange> = r.covered.iter().map(EntryRange::from).collect();
        let stale = stale(
            r.from_index,
            from,
            &ranges,
            &self.ep.reconciled,
            &self.ep.covered,
        );
        // Proposed before a copy of one of its proposals was applied here
        // (re-submitted after the cut): applying it would apply that one
        // twice. Skipped whole like a stale record; the senders send the
        // rest again and the next record leaves it out.
        let dedup = &self.proposals.dedup;
        let replayed = any_applied(&r.originals, |o| dedup.covers(o.proposer, o.boot, o.seq));
        let sender = self.ep.reconciling.take().map(|r| r.3);
        if stale || replayed {
            self.tell_reconciled(sender);
            slog::debug!(self.logger, "stale reconciliation skipped"; "from" => %from,
                "index" => e.index, "applied_here" => replayed);
            return;
        }
        for cmd in &r.commands {
            self.sm.apply(e.index, cmd);
        }
        // Its proposals are applied now: a copy submitted again later is
        // dropped, and one made here is answered.
        for o in r.originals.iter().filter(|o| o.proposer != 0) {
            let id = EntryPayload {
                proposer: o.proposer,
                boot: o.boot,
                seq: o.seq,
                ..EntryPayload::default()
            };
            let _ = self.proposals.dedup.admit(&id, e.index, e.term);
            if o.proposer == self.id.0 && o.boot == self.boot {
                self.resolve(o.seq, e.index, e.term, None);
            }
        }
        self.ep.reconciled.insert(from, r.to_index);
        for x in &ranges {
            let c = self.ep.covered.entry(x.epoch).or_insert(0);
            *c = (*c).max(x.last);
        }
        self.tell_reconciled(sender);
        self.emit(Event::Reconciled {
            from,
            from_index: r.from_index,
            to_index: r.to_index,
            ranges,
            epoch: self.epoch(),
            index: e.index,
            divergent: r.divergent,
            commands: r.commands.len() as u64,
            compacted: r.compacted,
        });
    }

    /// Leader: tells the member whose run a reconciliation took how far it
    /// is reconciled now, at once, so it sends its next chunk without
    /// waiting for its next round. A long divergent run then costs a round
    /// trip per chunk, not an election timeout per chunk.
    fn tell_reconciled(&mut self, sender: Option<NodeId>) {
        if let Some(to) = sender.filter(|_| self.election.role == StateRole::Leader) {
            self.ep.notice_sent.remove(&to);
            self.send_notice(to);
        }
    }
}
