//! DR auto-sync in the node driver (see [`crate::replication`] for the
//! model): the state records in the log, raft's group commit, the leader's
//! moves between states, the survivable members' lease, and what each
//! member reports.

use std::collections::{BTreeMap, VecDeque};

use raft::eraftpb::{Entry, MessageType};
use raft::StateRole;

use super::Node;
use crate::events::Event;
use crate::policy::QuorumMode;
use crate::replication::{
    lease_end, next_move, Move, Replication, ReplicationState, Seen, SiteLossCost,
};
use crate::state_machine::StateMachine;
use crate::storage::LogStore;
use crate::topology::NodeId;
use crate::wire::control::{DrPing, DrPong, Kind};
use crate::wire::payload::{EntryPayload, ReplicationRecord, REPLICATION_CONTEXT};

/// Commit group of the main site's voters (raft's group ids start at 1).
const MAIN_GROUP: u64 = 1;
/// Commit group of every other site's voters.
const SURVIVABLE_GROUP: u64 = 2;

/// A replication state record: the state, its id, the log index it is at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Record {
    pub(super) state: ReplicationState,
    pub(super) id: u64,
    pub(super) index: u64,
}

impl Record {
    fn of(r: &ReplicationRecord, index: u64) -> Option<Self> {
        Some(Self {
            state: ReplicationState::from_code(r.state)?,
            id: r.id,
            index,
        })
    }

    pub(super) fn to_pb(self) -> ReplicationRecord {
        ReplicationRecord {
            state: self.state.code(),
            id: self.id,
        }
    }
}

/// DR auto-sync bookkeeping of one member.
#[derive(Debug, Default)]
pub(super) struct DrState {
    /// The last state record in the log (committed or not).
    pub(super) last: Record,
    /// The last state record applied.
    pub(super) committed: Record,
    /// The record of the last event emitted (the initial `Sync`, id 0,
    /// before any).
    emitted: Record,
    /// Leader: the tick its leadership began.
    led_since: u64,
    /// Leader: group commit wanted on.
    group_commit: bool,
    /// Leader: tick each survivable voter last showed it serves (an append
    /// or heartbeat response, or a lease ping).
    heard: BTreeMap<NodeId, u64>,
    /// Leader: commit indexes beyond the survivable site, with the time
    /// (ms) each was first seen committed, increasing.
    commits: VecDeque<(u64, u64)>,
    /// Survivable member: end of its lease, in its own ms (0: none).
    lease_end_ms: u64,
    /// Survivable member: tick of its last ping.
    pinged_at: u64,
    /// Survivable member: it stopped acknowledging its epoch to activate.
    pub(super) prepared: bool,
    pub(super) prepared_at: u64,
    /// Probe replies of the members of this member's core.
    pub(super) partners: BTreeMap<NodeId, super::dr_takeover::Partner>,
    /// A forked epoch's founder: the old log's tail, user commands to
    /// propose again once it leads (see `Node::activate_with_tail`).
    pub(super) carry: Vec<Vec<u8>>,
}

impl DrState {
    /// After raft was recreated (a fork or a reset): what belonged to the
    /// old raft goes; the records stay.
    pub(super) fn reset(&mut self) {
        *self = Self {
            last: self.last,
            committed: self.committed,
            emitted: self.emitted,
            ..Self::default()
        };
    }
}

impl<M: StateMachine, S: LogStore> Node<M, S> {
    pub(super) fn dr_mode(&self) -> bool {
        self.cfg.topology.mode() == QuorumMode::DrAutoSync
    }

    fn in_main_site(&self, id: NodeId) -> bool {
        let main = self.cfg.topology.main_site();
        self.membership
            .members
            .get(&id)
            .map(|s| s.member.site == main)
            .or_else(|| self.cfg.topology.member(id).map(|m| m.site == main))
            .unwrap_or(false)
    }

    /// The voters outside the main site.
    fn survivable_voters(&self) -> Vec<NodeId> {
        self.membership
            .voter_ids()
            .filter(|&v| !self.in_main_site(v))
            .collect()
    }

    /// Entries just appended to the log: a state record among them is the
    /// state this member now knows (an overwritten tail takes its record
    /// with it).
    pub(super) fn note_appended(&mut self, entries: &[Entry]) {
        if !self.dr_mode() {
            return;
        }
        if entries
            .first()
            .is_some_and(|e| e.index <= self.dr.last.index)
        {
            self.dr.last = self.dr.committed;
        }
        for e in entries.iter().filter(|e| e.context == REPLICATION_CONTEXT) {
            let record = <EntryPayload as prost::Message>::decode(&e.data[..])
                .ok()
                .and_then(|p| p.replication)
                .and_then(|r| Record::of(&r, e.index));
            if let Some(r) = record {
                self.take_record(r);
            }
        }
    }

    /// The record a snapshot carries: the last one committed (DR mode).
    pub(super) fn replication_record(&self) -> Option<ReplicationRecord> {
        self.dr_mode().then(|| self.dr.committed.to_pb())
    }

    /// The state a forked epoch (of generation `epoch`) starts in: `Async` (it
    /// has one site), with the first id of that epoch
    /// ([`crate::replication::first_state_id`]): above every id the older
    /// epoch gave, including those this member never received.
    pub(super) fn fork_replication(&self, epoch: u64) -> Option<ReplicationRecord> {
        self.dr_mode().then(|| ReplicationRecord {
            state: ReplicationState::Async.code(),
            id: crate::replication::first_state_id(epoch).max(self.dr.last.id + 1),
        })
    }

    /// A state record applied (committed).
    pub(super) fn apply_replication(&mut self, r: &ReplicationRecord, index: u64) {
        let Some(r) = Record::of(r, index) else {
            return;
        };
        if r.id >= self.dr.committed.id {
            self.dr.committed = r;
        }
        self.take_record(r);
    }

    /// The state a snapshot carries (installed, or read at start).
    pub(super) fn adopt_replication(&mut self, r: Option<&ReplicationRecord>, index: u64) {
        let Some(r) = r.and_then(|r| Record::of(r, index)) else {
            return;
        };
        self.dr.committed = r;
        if r.id >= self.dr.last.id {
            self.dr.last = r;
        }
        self.emit_record(r);
    }

    fn take_record(&mut self, r: Record) {
        if r.id >= self.dr.last.id {
            self.dr.last = r;
        }
        self.emit_record(r);
    }

    fn emit_record(&mut self, r: Record) {
        if r.id <= self.dr.emitted.id {
            return;
        }
        let previous = self.dr.emitted.state;
        self.dr.emitted = r;
        slog::info!(self.logger, "replication state"; "state" => %r.state, "id" => r.id,
            "index" => r.index);
        self.emit(Event::ReplicationChanged {
            state: r.state,
            state_id: r.id,
            previous,
            index: r.index,
        });
    }
}

impl<M: StateMachine, S: LogStore> Node<M, S> {
    /// Each tick, DR auto-sync mode: commit groups and group commit as the
    /// records say, the leader's moves, the survivable members' pings, and
    /// an activation waiting for its tail to apply.
    pub(super) fn drive_replication(&mut self) {
        if !self.dr_mode() {
            return;
        }
        self.set_commit_groups();
        if self.election.role == StateRole::Leader {
            self.track_commits();
            if !self.fenced() && self.in_main_site(self.id) {
                self.leader_move();
            }
        } else {
            self.ping_leader();
        }
        self.propose_carried();
    }

    /// Every voter in its site's commit group; group commit on as the
    /// leader decided, or (elsewhere, ready for a leadership that starts
    /// between two ticks) as the records say.
    fn set_commit_groups(&mut self) {
        let groups: Vec<(u64, u64)> = self
            .membership
            .voter_ids()
            .map(|v| {
                let g = if self.in_main_site(v) {
                    MAIN_GROUP
                } else {
                    SURVIVABLE_GROUP
                };
                (v.0, g)
            })
            .collect();
        let stale = groups.iter().any(|&(id, g)| {
            self.raw
                .raft
                .prs()
                .get(id)
                .is_some_and(|pr| pr.commit_group_id != g)
        });
        if stale {
            self.raw.raft.assign_commit_groups(&groups);
        }
        let want = if self.election.role == StateRole::Leader {
            self.dr.group_commit
        } else {
            self.records_need_both_sites()
        };
        if self.raw.raft.group_commit() != want {
            self.raw.raft.enable_group_commit(want);
        }
    }

    fn records_need_both_sites(&self) -> bool {
        self.dr.last.state.needs_both_sites() || self.dr.committed.state.needs_both_sites()
    }

    /// This member became leader: it starts from its records, and counts
    /// the survivable site's silence from no earlier than an election
    /// timeout from now (a deposed leader that has not noticed yet may
    /// still answer pings until check-quorum deposes it).
    pub(super) fn dr_gained_leadership(&mut self) {
        if !self.dr_mode() {
            return;
        }
        self.dr.led_since = self.tick_no;
        self.dr.group_commit = self.records_need_both_sites();
        self.dr.heard.clear();
        self.dr.commits.clear();
        if self.raw.raft.group_commit() != self.dr.group_commit {
            self.raw.raft.enable_group_commit(self.dr.group_commit);
        }
    }

    /// Ticks since the survivable site last showed it serves, counted from
    /// an election timeout after this leadership began at the earliest.
    fn survivable_silence(&self) -> usize {
        let floor = self.dr.led_since + self.ticks.election as u64;
        let heard = self
            .survivable_voters()
            .iter()
            .filter_map(|v| self.dr.heard.get(v).copied())
            .max()
            .unwrap_or(0)
            .max(floor);
        self.tick_no.saturating_sub(heard) as usize
    }

    /// Leader: a survivable voter answered an append or heartbeat, or
    /// pinged: it serves.
    pub(super) fn note_serving(&mut self, from: NodeId, kind: MessageType) {
        let serving = matches!(
            kind,
            MessageType::MsgAppendResponse | MessageType::MsgHeartbeatResponse
        );
        if serving && self.dr_mode() && self.election.role == StateRole::Leader {
            self.dr.heard.insert(from, self.tick_no);
        }
    }

    /// Leader: the highest index acknowledged by a member of the other
    /// site than its own (voter or learner; 0: none): at home the
    /// survivable site, away (a survivable core leading a forked epoch)
    /// the main site.
    fn other_site_matched(&self) -> u64 {
        let home = self.in_main_site(self.id);
        self.raw
            .raft
            .prs()
            .iter()
            .filter(|(&id, _)| self.in_main_site(NodeId(id)) != home)
            .map(|(_, p)| p.matched)
            .max()
            .unwrap_or(0)
    }

    /// Leader: commits the other site does not hold yet, with when each
    /// was first seen (for the RPO in time).
    fn track_commits(&mut self) {
        let commit = self.raw.raft.raft_log.committed;
        let held = self.other_site_matched();
        while self.dr.commits.front().is_some_and(|&(i, _)| i <= held) {
            self.dr.commits.pop_front();
        }
        let grows = self.dr.commits.back().is_none_or(|&(i, _)| commit > i);
        if commit > held && grows && self.dr.commits.len() < super::takeover::BEYOND_KEPT {
            self.dr.commits.push_back((commit, self.now_ms));
        }
    }

    /// Leader in the main site: what it sees, and the move it makes.
    fn leader_move(&mut self) {
        let survivable = self.survivable_voters();
        if survivable.is_empty() || !self.membership.conf.voters_outgoing.is_empty() {
            return; // an epoch of one site only, or a change under way
        }
        let e = self.ticks.election as u64;
        let last = self.dr.last;
        let prs = self.raw.raft.prs();
        let heard_within = |id: &NodeId, ticks: u64| {
            self.contact
                .last_heard
                .get(id)
                .is_some_and(|&t| self.tick_no.saturating_sub(t) <= ticks)
        };
        let announced = self
            .membership
            .voter_ids()
            .filter(|&v| v != self.id && self.in_main_site(v) && heard_within(&v, e))
            .all(|v| prs.get(v.0).is_some_and(|p| p.matched >= last.index));
        let gap = self.ticks.contact_gap() as u64;
        let caught_up = survivable
            .iter()
            .any(|v| heard_within(v, gap) && prs.get(v.0).is_some_and(|p| p.matched >= last.index));
        // A leader that inherited group commit from a committed `Sync` or
        // `AsyncWait` while its log ends in a later record of an older
        // leader's (that turned it off and was deposed before the record
        // committed) goes through `AsyncWait` again: it is bound by the
        // leases the older leader granted, and its record cannot commit
        // without the survivable site while group commit is on.
        let state = if self.dr.group_commit && !last.state.needs_both_sites() {
            ReplicationState::AsyncWait
        } else {
            last.state
        };
        let seen = Seen {
            state,
            committed: self.dr.committed.id >= last.id,
            silent: self.survivable_silence(),
            announced,
            caught_up,
        };
        if let Move::Enter(state) = next_move(seen, self.ticks.sync_wait) {
            self.enter(state);
        }
    }

    /// Leader: appends the record of `state` with the next id, group commit
    /// set first as the state needs (turned off, it commits what waited).
    fn enter(&mut self, state: ReplicationState) {
        let before = self.dr.group_commit;
        self.dr.group_commit = state.needs_both_sites();
        if self.raw.raft.group_commit() != self.dr.group_commit {
            self.raw.raft.enable_group_commit(self.dr.group_commit);
        }
        let id = self.dr.last.id + 1;
        let record = ReplicationRecord {
            state: state.code(),
            id,
        };
        let payload = EntryPayload {
            replication: Some(record),
            ..Default::default()
        };
        let data = crate::wire::payload::encode(&payload);
        if let Err(e) = self.raw.propose(REPLICATION_CONTEXT.to_vec(), data) {
            // A transfer under way: tried again next tick. Group commit as
            // it was (what it committed meanwhile was allowed either way).
            slog::warn!(self.logger, "replication state not proposed"; "state" => %state,
                "reason" => %e);
            self.dr.group_commit = before;
            self.raw.raft.enable_group_commit(before);
            return;
        }
        let index = self.raw.raft.raft_log.last_index();
        self.take_record(Record { state, id, index });
    }

    /// Survivable member: ping the leader for a lease every quarter of an
    /// election timeout.
    fn ping_leader(&mut self) {
        let Some(leader) = self.election.leader else {
            return;
        };
        let every = (self.ticks.election / 4).max(1) as u64;
        let survivable = !self.in_main_site(self.id);
        if !survivable
            || self.dr.prepared
            || self.fenced()
            || self.tick_no < self.dr.pinged_at + every
        {
            return;
        }
        self.dr.pinged_at = self.tick_no;
        let sent_ms = self.now_ms;
        self.send_control(leader, Kind::DrPing(DrPing { sent_ms }));
    }

    /// Leader: a survivable member's ping. It counts as the site serving,
    /// and the answer grants a lease while group commit is on.
    pub(super) fn on_dr_ping(&mut self, from: NodeId, ping: &DrPing) {
        if !self.dr_mode() || self.election.role != StateRole::Leader || self.fenced() {
            return;
        }
        if !self.in_main_site(from) {
            self.dr.heard.insert(from, self.tick_no);
        }
        let pong = DrPong {
            echo_ms: ping.sent_ms,
            state: self.dr.last.state.code(),
            state_id: self.dr.last.id,
            // Only from a committed `Sync` or `AsyncWait`: a successor
            // holds that record, so it starts with group commit on and
            // waits out `sync_wait` before it turns it off.
            grants: self.dr.group_commit
                && self.raw.raft.group_commit()
                && self.dr.committed.state.needs_both_sites(),
        };
        self.send_control(from, Kind::DrPong(pong));
    }

    /// Survivable member: the leader's answer; a grant extends the lease.
    pub(super) fn on_dr_pong(&mut self, from: NodeId, pong: &DrPong) {
        if Some(from) != self.election.leader || !pong.grants || pong.echo_ms > self.now_ms {
            return;
        }
        let wait_ms = self.ticks.ms(self.ticks.sync_wait);
        let end = lease_end(pong.echo_ms, wait_ms, self.ticks.tick_ms);
        self.dr.lease_end_ms = self.dr.lease_end_ms.max(end);
    }

    /// The lease left, in ms (0: none or run out).
    pub(super) fn lease_left_ms(&self) -> u64 {
        self.dr.lease_end_ms.saturating_sub(self.now_ms)
    }

    /// The commit index this member knows and, in DR auto-sync mode, the
    /// replication state it is in: the `commit` and `replication.state` of
    /// [`status`](Self::status), without building the rest of it (a
    /// simulator reads them after every input).
    pub fn commit_state(&self) -> (u64, Option<ReplicationState>) {
        let commit = self.raw.raft.raft_log.committed;
        (commit, self.dr_mode().then_some(self.dr.last.state))
    }

    /// [`Status::replication`](crate::node::Status::replication).
    pub(super) fn replication_status(&self) -> Option<Replication> {
        if !self.dr_mode() {
            return None;
        }
        let home = self.in_main_site(self.id);
        let (main_site_loss, survivable_site_loss) = if self.election.role == StateRole::Leader {
            // The leader holds every commit: its own site's loss costs
            // what the other site has not acknowledged, the other's
            // nothing.
            let commit = self.raw.raft.raft_log.committed;
            let beyond = commit.saturating_sub(self.other_site_matched());
            let ms = self
                .dr
                .commits
                .front()
                .map_or(0, |&(_, at)| self.now_ms.saturating_sub(at));
            let own = SiteLossCost::measured(beyond, ms);
            if home {
                (own, SiteLossCost::ZERO)
            } else {
                (SiteLossCost::ZERO, own)
            }
        } else if !home {
            (self.survivable_view(), SiteLossCost::UNKNOWN)
        } else {
            (SiteLossCost::UNKNOWN, SiteLossCost::UNKNOWN)
        };
        Some(Replication {
            state: self.dr.last.state,
            state_id: self.dr.last.id,
            main_site_loss,
            survivable_site_loss,
            lease_ms: self.lease_left_ms(),
        })
    }

    /// A survivable member's view of a main-site loss: 0, proven, while its
    /// lease runs in a group-commit state (a core partner might hold a
    /// longer log, which its activation would take); otherwise what the
    /// leader reported beyond this member's log, unproven.
    fn survivable_view(&self) -> SiteLossCost {
        if self.lease_left_ms() > 0 && self.dr.last.state.needs_both_sites() {
            return SiteLossCost::ZERO;
        }
        let last = self.raw.raft.raft_log.last_index();
        let entries = self.ep.leader_commit.saturating_sub(last);
        if entries == 0 {
            return SiteLossCost::UNKNOWN;
        }
        SiteLossCost {
            entries: Some(entries),
            ms: Some(self.ep.rpo_ms(last)),
            proven: false,
        }
    }
}
