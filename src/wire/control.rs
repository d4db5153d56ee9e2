//! Control messages: what members say to each other outside raft, across
//! epochs. Reachability probes (a survivable core must know whether it can
//! still reach the main site), epoch notices (a member that meets another
//! epoch tells it its lineage), divergent entries (an older epoch's
//! committed suffix on its way to reconciliation) and join requests (a
//! member that left its epoch asks the newer one's leader to add it).
//!
//! They travel in an [`Envelope`](super::Envelope) whose kind is control;
//! the node decides what to do with them (`node::control`).

use crate::wire::payload::{EpochRecordPb, ReconciledPb};

/// One control message.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Control {
    #[prost(oneof = "Kind", tags = "1, 2, 3, 4, 5, 6, 7, 8")]
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
    /// I am drained (or not): never hand me leadership.
    #[prost(message, tag = "6")]
    Drain(DrainNotice),
    /// DR auto-sync: a survivable member asks the leader for its lease
    /// (see `crate::replication`).
    #[prost(message, tag = "7")]
    DrPing(DrPing),
    /// DR auto-sync: the leader's answer.
    #[prost(message, tag = "8")]
    DrPong(DrPong),
}

/// A survivable member's lease request (DR auto-sync).
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct DrPing {
    /// When the sender sent it, in its own ms.
    #[prost(uint64, tag = "1")]
    pub sent_ms: u64,
}

/// The leader's answer to a [`DrPing`].
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct DrPong {
    /// The ping's `sent_ms`.
    #[prost(uint64, tag = "1")]
    pub echo_ms: u64,
    /// The leader's replication state (`ReplicationState::code`).
    #[prost(uint32, tag = "2")]
    pub state: u32,
    /// Its id.
    #[prost(uint64, tag = "3")]
    pub state_id: u64,
    /// The leader commits with group commit on, and will not stop before
    /// `sync_wait` after it received the ping: a lease.
    #[prost(bool, tag = "4")]
    pub grants: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct DrainNotice {
    /// Whether the sender is drained.
    #[prost(bool, tag = "1")]
    pub drained: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Probe {
    /// The leader the sender knows (0: none).
    #[prost(uint64, tag = "1")]
    pub leader: u64,
    /// A reply's sender's last log entry: term (DR auto-sync activation
    /// picks the longest log of a survivable core).
    #[prost(uint64, tag = "2")]
    pub last_term: u64,
    /// And index.
    #[prost(uint64, tag = "3")]
    pub last_index: u64,
    /// The sender stopped acknowledging its epoch to activate (DR
    /// auto-sync): its log will not grow.
    #[prost(bool, tag = "4")]
    pub prepared: bool,
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
