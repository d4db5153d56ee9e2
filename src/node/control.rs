//! Control messages: what members say to each other outside raft, across
//! epochs. Reachability probes (a survivable core must know whether it can
//! still reach the main site), epoch notices (a member that meets another
//! epoch tells it its lineage), divergent entries (an older epoch's
//! committed suffix on its way to reconciliation) and join requests (a
//! member that left its epoch asks the newer one's leader to add it).

use std::collections::BTreeMap;

use prost::Message as _;

use super::Node;
use crate::error::StepError;
use crate::ids::EpochRecord;
use crate::state_machine::StateMachine;
use crate::storage::LogStore;
use crate::topology::NodeId;
use crate::wire::control::{Control, Kind, Notice, Probe};
use crate::wire::payload::{decode_lineage, encode_lineage};
use crate::wire::{Envelope, PROTOCOL_VERSION};

/// When each member was last heard from, for reachability and the
/// hand-back stability window.
#[derive(Debug, Default)]
pub(super) struct Contacts {
    /// Tick each member was last heard from.
    pub(super) last_heard: BTreeMap<NodeId, u64>,
    /// Tick since which each member has been heard without a gap longer
    /// than [`TickTimers::contact_gap`](crate::policy::TickTimers::contact_gap).
    pub(super) contact_since: BTreeMap<NodeId, u64>,
    /// The node's clock: elapsed wall time counted in whole ticks.
    pub(super) clock: TickClock,
}

/// Converts the wall-clock times given to [`Node::tick`] into whole tick
/// periods elapsed, so every timer kept in ticks runs on elapsed time, not
/// on how many times `tick` was called: a tick that comes late (the thread
/// was starved of CPU or stopped) advances the timers by every period that
/// passed. What is left over of a period is carried to the next call.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct TickClock {
    /// The wall-clock time (ms) up to which periods were counted.
    counted_to: Option<u64>,
}

impl TickClock {
    /// Whole `tick_ms` periods elapsed up to `now_ms`. The first call
    /// counts one; so does a clock that went back (a wall clock stepped
    /// backwards must not stop every timer until it catches up again), and
    /// counting restarts from it.
    pub(super) fn advance(&mut self, now_ms: u64, tick_ms: u64) -> u64 {
        let tick_ms = tick_ms.max(1);
        match self.counted_to {
            Some(from) if now_ms >= from => {
                let n = (now_ms - from) / tick_ms;
                self.counted_to = Some(from + n * tick_ms);
                n
            }
            _ => {
                self.counted_to = Some(now_ms);
                1
            }
        }
    }
}

impl<M: StateMachine, S: LogStore> Node<M, S> {
    /// Sends a control message to `to`.
    pub(super) fn send_control(&mut self, to: NodeId, kind: Kind) {
        let epoch = self.epoch();
        let control = Control { kind: Some(kind) }.encode_to_vec();
        self.outbox.push_back(Envelope {
            version: PROTOCOL_VERSION,
            cluster_id: self.cfg.topology.cluster_id(),
            epoch: epoch.number,
            epoch_founder: epoch.founder.0,
            from: self.id.0,
            to: to.0,
            raft: Vec::new(),
            control,
            ..Envelope::default()
        });
    }

    /// This node's epoch, told to `to` (at most once per election timeout
    /// per peer, so two epochs that meet do not flood each other).
    pub(super) fn send_notice(&mut self, to: NodeId) {
        let e = self.ticks.election as u64;
        if self
            .ep
            .notice_sent
            .get(&to)
            .is_some_and(|&t| self.tick_no.saturating_sub(t) < e)
        {
            return;
        }
        self.ep.notice_sent.insert(to, self.tick_no);
        let notice = Notice {
            lineage: encode_lineage(&self.ep.lineage),
            reconciled: crate::wire::payload::encode_reconciled(&self.ep.reconciled),
            leader: self.election.leader.map_or(0, |l| l.0),
        };
        self.send_control(to, Kind::Notice(notice));
    }

    /// A control message, from any epoch.
    pub(super) fn handle_control(&mut self, env: &Envelope) -> Result<(), StepError> {
        let from = NodeId(env.from);
        let bad = |reason: String| StepError::MalformedControl {
            from: env.from,
            reason,
        };
        let control = Control::decode(&env.control[..]).map_err(|e| bad(e.to_string()))?;
        let kind = control.kind.ok_or_else(|| bad("no message".into()))?;
        self.note_heard(from);
        if env.epoch_id() != self.epoch() {
            self.meet_epoch(from, env.epoch_id());
        }
        match kind {
            Kind::Probe(p) => {
                if p.prepared {
                    // A DR partner that just prepared says so (and its
                    // log end, final) in its probe.
                    self.note_partner(from, &p);
                }
                let leader = self.election.leader.map_or(0, |l| l.0);
                let (last_term, last_index, prepared) = self.probe_facts();
                let reply = Probe {
                    leader,
                    last_term,
                    last_index,
                    prepared,
                };
                self.send_control(from, Kind::ProbeReply(reply));
            }
            Kind::ProbeReply(p) => self.note_partner(from, &p),
            Kind::DrPing(p) => self.on_dr_ping(from, &p),
            Kind::DrPong(p) => self.on_dr_pong(from, &p),
            Kind::Notice(n) => {
                let lineage: Vec<EpochRecord> = decode_lineage(&n.lineage);
                let reconciled = crate::wire::payload::decode_reconciled(&n.reconciled);
                let leader = (n.leader != 0).then_some(NodeId(n.leader));
                self.on_notice(from, lineage, reconciled, leader);
            }
            Kind::Divergent(d) => self.on_divergent(from, d),
            Kind::Join(_) => self.on_join(from, env.epoch_id()),
            Kind::Drain(d) => self.note_drain_notice(from, d.drained),
        }
        Ok(())
    }

    /// Records contact with a member (for reachability), whatever it sent.
    pub(super) fn note_heard(&mut self, from: NodeId) {
        let gap = self
            .contact
            .last_heard
            .get(&from)
            .map_or(u64::MAX, |t| self.tick_no - t);
        if gap > self.ticks.contact_gap() as u64 {
            self.contact.contact_since.insert(from, self.tick_no);
        }
        self.contact.last_heard.insert(from, self.tick_no);
    }
}
