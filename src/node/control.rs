//! Control messages: what members say to each other outside raft, across
//! epochs. Reachability probes (a survivable core must know whether it can
//! still reach the main site), epoch notices (a member that meets another
//! epoch tells it its lineage), divergent entries (an older epoch's
//! committed suffix on its way to reconciliation) and join requests (a
//! member that left its epoch asks the newer one's leader to add it).

use prost::Message as _;

use super::epoch::EpochRecord;
use super::payload::{decode_lineage, encode_lineage, EpochRecordPb, ReconciledPb};
use super::Node;
use crate::error::StepError;
use crate::state_machine::StateMachine;
use crate::storage::LogStore;
use crate::topology::NodeId;
use crate::wire::{Envelope, PROTOCOL_VERSION};

/// One control message.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Control {
    #[prost(oneof = "Kind", tags = "1, 2, 3, 4, 5")]
    pub kind: Option<Kind>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub(crate) enum Kind {
    /// Are you there?
    #[prost(message, tag = "1")]
    Probe(Probe),
    /// Yes.
    #[prost(message, tag = "2")]
    ProbeReply(Probe),
    /// This is my epoch.
    #[prost(message, tag = "3")]
    Notice(Notice),
    /// My older epoch's committed entries after our common point.
    #[prost(message, tag = "4")]
    Divergent(Divergent),
    /// Add me to your epoch.
    #[prost(message, tag = "5")]
    Join(Probe),
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Probe {
    /// The leader the sender knows (0: none).
    #[prost(uint64, tag = "1")]
    pub leader: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Notice {
    #[prost(message, repeated, tag = "1")]
    pub lineage: Vec<EpochRecordPb>,
    #[prost(message, repeated, tag = "2")]
    pub reconciled: Vec<ReconciledPb>,
    /// The epoch's leader, as the sender knows it (0: unknown).
    #[prost(uint64, tag = "3")]
    pub leader: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Divergent {
    /// The sender's lineage (its epoch is the last).
    #[prost(message, repeated, tag = "1")]
    pub lineage: Vec<EpochRecordPb>,
    /// The sender's commit index in its epoch.
    #[prost(uint64, tag = "2")]
    pub commit: u64,
    /// Index of the first entry carried.
    #[prost(uint64, tag = "3")]
    pub first_index: u64,
    /// raft entries (raft's protobuf codec), contiguous from `first_index`.
    #[prost(bytes = "vec", repeated, tag = "4")]
    pub entries: Vec<Vec<u8>>,
    /// Divergent entries before `first_index` that the sender compacted.
    #[prost(uint64, tag = "5")]
    pub compacted: u64,
    /// With `compacted`: what the sender's epoch had reconciled as of its
    /// latest snapshot, by origin epoch (the compacted entries' records
    /// are gone, so what they accounted for travels here).
    #[prost(message, repeated, tag = "6")]
    pub compacted_covered: Vec<ReconciledPb>,
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
            lineage: encode_lineage(&self.lineage),
            reconciled: super::payload::encode_reconciled(&self.ep.reconciled),
            leader: self.leader.map_or(0, |l| l.0),
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
            self.met_other_epoch(from, env.epoch_id());
        }
        match kind {
            Kind::Probe(_) => {
                let leader = self.leader.map_or(0, |l| l.0);
                self.send_control(from, Kind::ProbeReply(Probe { leader }));
            }
            Kind::ProbeReply(_) => {}
            Kind::Notice(n) => {
                let lineage: Vec<EpochRecord> = decode_lineage(&n.lineage);
                let reconciled = super::payload::decode_reconciled(&n.reconciled);
                let leader = (n.leader != 0).then_some(NodeId(n.leader));
                self.on_notice(from, lineage, reconciled, leader);
            }
            Kind::Divergent(d) => self.on_divergent(from, d),
            Kind::Join(_) => self.on_join(from, env.epoch_id()),
        }
        Ok(())
    }

    /// Records contact with a member (for reachability), whatever it sent.
    pub(super) fn note_heard(&mut self, from: NodeId) {
        let gap = self
            .last_heard
            .get(&from)
            .map_or(u64::MAX, |t| self.tick_no - t);
        if gap > self.ticks.contact_gap() as u64 {
            self.contact_since.insert(from, self.tick_no);
        }
        self.last_heard.insert(from, self.tick_no);
    }
}
