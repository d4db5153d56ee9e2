//! What the library itself stores in the raft log and in snapshots
//! (prost messages, no protoc).

use crate::ids::{EntryRange, EpochId, EpochRecord};
use std::collections::BTreeMap;

use prost::Message as _;

use crate::topology::{Appliance, Member, MemberSpec, NodeId, Role, Site, Topology, TopologyError};

/// A normal log entry: a user command with its proposal id, or (proposer
/// 0) a library record.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct EntryPayload {
    #[prost(uint64, tag = "1")]
    pub proposer: u64,
    #[prost(uint64, tag = "2")]
    pub boot: u64,
    #[prost(uint64, tag = "3")]
    pub seq: u64,
    /// Every seq of (proposer, boot) below this is resolved at the proposer.
    #[prost(uint64, tag = "4")]
    pub floor: u64,
    #[prost(bytes = "vec", tag = "5")]
    pub command: Vec<u8>,
    /// A reconciliation of an older epoch's divergent entries.
    #[prost(message, optional, tag = "6")]
    pub reconcile: Option<ReconcileRecord>,
    /// A compaction floor (main-site mode, proposed by the leader): every
    /// survivable learner has committed at least this index, so members
    /// may compact up to it and no further (an epoch a survivable member
    /// forks starts at or above it; what lies above must stay for the
    /// reunion).
    #[prost(uint64, optional, tag = "7")]
    pub keep_from: Option<u64>,
    /// A new version of the topology that moves no member in or out of
    /// the raft configuration (a rank or an address changed); one that
    /// does rides in its configuration change's context instead.
    #[prost(message, optional, tag = "8")]
    pub topology: Option<TopologyRecord>,
    /// A DR auto-sync replication state (proposed by the leader, with
    /// [`REPLICATION_CONTEXT`] as the entry's context so members spot it
    /// when they append it).
    #[prost(message, optional, tag = "9")]
    pub replication: Option<ReplicationRecord>,
}

/// The entry context that marks a [`ReplicationRecord`].
pub(crate) const REPLICATION_CONTEXT: &[u8] = b"replication-state";

/// A DR auto-sync replication state and its id.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub(crate) struct ReplicationRecord {
    /// `ReplicationState::code`.
    #[prost(uint32, tag = "1")]
    pub state: u32,
    #[prost(uint64, tag = "2")]
    pub id: u64,
}

/// A version of the topology, as carried in the log and in snapshots:
/// the sites, and every member with its site and role (its core, rank and
/// position, or witness) and address. The cluster id, quorum mode, timers
/// and hand-back policy never change at runtime and are taken from the
/// member's own topology when decoding.
///
/// Its field numbers start at 20 so that it can share a configuration
/// change's context with a [`MemberRecord`] (fields 1 to 11, a
/// replacement's record) without either decoding as the other: a
/// `MemberRecord` decoded from these bytes has id 0 (no member) and a
/// `TopologyRecord` decoded from a `MemberRecord`'s has version 0 (no
/// topology).
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct TopologyRecord {
    /// 1 or more (0: none).
    #[prost(uint64, tag = "20")]
    pub version: u64,
    #[prost(message, repeated, tag = "21")]
    pub sites: Vec<SiteRecord>,
    #[prost(message, repeated, tag = "22")]
    pub members: Vec<MemberRecord>,
    #[prost(message, repeated, tag = "23")]
    pub addresses: Vec<AddressRecord>,
    /// The ids removed from the cluster ([`Topology::removed_ids`]);
    /// absent in records written before it existed (none then).
    #[prost(uint64, repeated, tag = "24")]
    pub removed: Vec<u64>,
}

/// A site of a [`TopologyRecord`].
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct SiteRecord {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(bool, tag = "2")]
    pub main: bool,
}

/// A member's address in a [`TopologyRecord`].
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct AddressRecord {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(string, tag = "2")]
    pub address: String,
}

impl From<&Topology> for TopologyRecord {
    fn from(t: &Topology) -> Self {
        Self {
            version: t.version(),
            sites: (t.sites().iter())
                .map(|s| SiteRecord {
                    name: s.name.clone(),
                    main: s.main,
                })
                .collect(),
            members: (t.members().values())
                .map(|m| {
                    MemberRecord::from(&MemberState {
                        member: m.clone(),
                        replaces: None,
                        address: None,
                    })
                })
                .collect(),
            addresses: (t.addresses().iter())
                .map(|(id, a)| AddressRecord {
                    id: id.0,
                    address: a.clone(),
                })
                .collect(),
            removed: t.removed_ids().iter().map(|id| id.0).collect(),
        }
    }
}

impl TopologyRecord {
    /// The topology this record describes, with `base`'s cluster id,
    /// quorum mode, timers and hand-back policy, validated as the builder
    /// validates.
    pub(crate) fn to_topology(&self, base: &Topology) -> Result<Topology, TopologyError> {
        let sites = (self.sites.iter())
            .map(|s| Site {
                name: s.name.clone(),
                main: s.main,
            })
            .collect();
        let members = (self.members.iter())
            .map(|r| (NodeId(r.id), r.to_state().member))
            .collect();
        let addresses = (self.addresses.iter())
            .map(|a| (NodeId(a.id), a.address.clone()))
            .collect();
        let removed = self.removed.iter().map(|&id| NodeId(id)).collect();
        Topology::from_parts(base, self.version, sites, members, addresses, removed)
    }
}

/// An epoch and its fork point.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct EpochRecordPb {
    #[prost(uint64, tag = "1")]
    pub number: u64,
    #[prost(uint64, tag = "2")]
    pub founder: u64,
    #[prost(uint64, tag = "3")]
    pub fork_index: u64,
    #[prost(uint64, tag = "4")]
    pub fork_term: u64,
}

/// How far an older epoch's entries have been reconciled into this one.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ReconciledPb {
    #[prost(uint64, tag = "1")]
    pub number: u64,
    #[prost(uint64, tag = "2")]
    pub founder: u64,
    #[prost(uint64, tag = "3")]
    pub up_to: u64,
}

/// A divergent user entry shown to the application, tagged with the epoch
/// that appended it, so that a later reconciliation of the epoch holding
/// this record shows it again, once, instead of what was made of it.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct OriginalEntry {
    #[prost(uint64, tag = "1")]
    pub origin_number: u64,
    #[prost(uint64, tag = "2")]
    pub origin_founder: u64,
    #[prost(uint64, tag = "3")]
    pub index: u64,
    #[prost(uint64, tag = "4")]
    pub term: u64,
    #[prost(bytes = "vec", tag = "5")]
    pub command: Vec<u8>,
    /// The proposal (`proposer` 0: none).
    #[prost(uint64, tag = "6")]
    pub proposer: u64,
    #[prost(uint64, tag = "7")]
    pub boot: u64,
    #[prost(uint64, tag = "8")]
    pub seq: u64,
}

impl OriginalEntry {
    pub(crate) fn origin(&self) -> EpochId {
        EpochId {
            number: self.origin_number,
            founder: NodeId(self.origin_founder),
        }
    }
}

/// A run `first..=last` of the entries one epoch appended.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct RangePb {
    #[prost(uint64, tag = "1")]
    pub number: u64,
    #[prost(uint64, tag = "2")]
    pub founder: u64,
    #[prost(uint64, tag = "3")]
    pub first: u64,
    #[prost(uint64, tag = "4")]
    pub last: u64,
}

impl From<&RangePb> for EntryRange {
    fn from(r: &RangePb) -> Self {
        Self {
            epoch: EpochId {
                number: r.number,
                founder: NodeId(r.founder),
            },
            first: r.first,
            last: r.last,
        }
    }
}

impl From<&EntryRange> for RangePb {
    fn from(r: &EntryRange) -> Self {
        Self {
            number: r.epoch.number,
            founder: r.epoch.founder.0,
            first: r.first,
            last: r.last,
        }
    }
}

/// The outcome of reconciling an older epoch's log `from..=to` (in its
/// indexes) into this one: the entries shown to the application, by the
/// epoch that appended each ([`covered`](Self::covered)), and the commands
/// it chose to apply, in order.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ReconcileRecord {
    #[prost(uint64, tag = "1")]
    pub from_number: u64,
    #[prost(uint64, tag = "2")]
    pub from_founder: u64,
    #[prost(uint64, tag = "3")]
    pub from_index: u64,
    #[prost(uint64, tag = "4")]
    pub to_index: u64,
    /// Divergent entries that were compacted before they could be shown.
    #[prost(uint64, tag = "5")]
    pub compacted: u64,
    #[prost(bytes = "vec", repeated, tag = "6")]
    pub commands: Vec<Vec<u8>>,
    /// How many divergent user commands the application saw.
    #[prost(uint64, tag = "8")]
    pub divergent: u64,
    /// The entries shown, by origin (tag 7, proposal ids, is retired:
    /// they are in here).
    #[prost(message, repeated, tag = "9")]
    pub originals: Vec<OriginalEntry>,
    /// Per origin epoch, the run of its entries this record accounts for
    /// (shown, or compacted away by the sender and only counted).
    #[prost(message, repeated, tag = "10")]
    pub covered: Vec<RangePb>,
}

/// A member as stored in conf-change contexts and snapshots.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct MemberRecord {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(string, tag = "3")]
    pub host: String,
    #[prost(bool, tag = "4")]
    pub dedicated: bool,
    #[prost(string, tag = "5")]
    pub site: String,
    /// 0 main core, 1 survivable, 2 witness.
    #[prost(uint32, tag = "6")]
    pub kind: u32,
    #[prost(string, tag = "7")]
    pub core: String,
    #[prost(uint32, tag = "8")]
    pub rank: u32,
    #[prost(uint32, tag = "9")]
    pub position: u32,
    /// Learner that replaces this voter once caught up (0: none).
    #[prost(uint64, tag = "10")]
    pub replaces: u64,
    /// The address a replacement was given (`ip:port` or `host:port`),
    /// carried until its promotion puts it in the topology; absent in
    /// records written before it existed and for members without one.
    #[prost(string, optional, tag = "11")]
    pub address: Option<String>,
}

/// Deduplication window of one proposer incarnation.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct DedupRecord {
    #[prost(uint64, tag = "1")]
    pub proposer: u64,
    #[prost(uint64, tag = "2")]
    pub boot: u64,
    #[prost(uint64, tag = "3")]
    pub floor: u64,
    #[prost(uint64, repeated, tag = "4")]
    pub seen: Vec<u64>,
    /// Index each `seen` proposal was applied at (same order).
    #[prost(uint64, repeated, tag = "5")]
    pub seen_index: Vec<u64>,
    /// Term of that entry (same order).
    #[prost(uint64, repeated, tag = "6")]
    pub seen_term: Vec<u64>,
}

/// The data of a raft snapshot.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct SnapshotData {
    /// The state machine's bytes: decoded from a shared buffer
    /// ([`decode_shared`](Self::decode_shared)) they are a slice of it,
    /// not a copy.
    #[prost(bytes = "bytes", tag = "1")]
    pub user: prost::bytes::Bytes,
    #[prost(message, repeated, tag = "2")]
    pub members: Vec<MemberRecord>,
    #[prost(message, repeated, tag = "3")]
    pub dedup: Vec<DedupRecord>,
    /// The epoch lineage, first epoch first (empty: only the first epoch).
    #[prost(message, repeated, tag = "4")]
    pub epochs: Vec<EpochRecordPb>,
    /// Per older epoch, how far its log was taken in (in its indexes).
    #[prost(message, repeated, tag = "5")]
    pub reconciled: Vec<ReconciledPb>,
    /// Per origin epoch, how far its own entries were shown.
    #[prost(message, repeated, tag = "6")]
    pub covered: Vec<ReconciledPb>,
    /// The topology as applied (absent: the member's own, version 0).
    #[prost(message, optional, tag = "7")]
    pub topology: Option<TopologyRecord>,
    /// The last replication state committed (DR auto-sync; absent: none).
    #[prost(message, optional, tag = "8")]
    pub replication: Option<ReplicationRecord>,
}

impl SnapshotData {
    /// Decodes from a plain slice (the state machine's bytes copied):
    /// the fuzz targets' entry; the node reads with
    /// [`decode_shared`](Self::decode_shared).
    #[cfg(any(test, feature = "sim"))]
    pub(crate) fn decode_bytes(bytes: &[u8]) -> Result<Self, String> {
        Self::decode(bytes).map_err(|e| e.to_string())
    }

    /// Decodes a stored or received snapshot's data without copying the
    /// state machine's bytes: `user` shares `bytes`'s buffer (a snapshot
    /// of a large state is never held twice to be read).
    pub(crate) fn decode_shared(bytes: &prost::bytes::Bytes) -> Result<Self, String> {
        Self::decode(bytes.clone()).map_err(|e| e.to_string())
    }
}

/// A member of the current configuration, with what the library tracks of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MemberState {
    pub member: Member,
    /// The voter this member replaces once caught up.
    pub replaces: Option<NodeId>,
    /// The address a replacement was given
    /// ([`Node::replace_member_at`](crate::Node::replace_member_at)), so
    /// the leader can reach it before the topology names it.
    pub address: Option<String>,
}

impl From<&MemberState> for MemberRecord {
    fn from(s: &MemberState) -> Self {
        let m = &s.member;
        let (kind, core, rank, position) = match &m.role {
            Role::MainCore { core, position } => (0, core.clone(), 0, *position as u32),
            Role::Survivable {
                core,
                rank,
                position,
            } => (1, core.clone(), *rank, *position as u32),
            Role::Witness => (2, String::new(), 0, 0),
        };
        Self {
            id: m.spec.id.0,
            name: m.spec.name.clone(),
            host: m.spec.host.clone(),
            dedicated: m.spec.appliance == Appliance::Dedicated,
            site: m.site.clone(),
            kind,
            core,
            rank,
            position,
            replaces: s.replaces.map_or(0, |n| n.0),
            address: s.address.clone(),
        }
    }
}

impl MemberRecord {
    pub(crate) fn to_state(&self) -> MemberState {
        let role = match self.kind {
            0 => Role::MainCore {
                core: self.core.clone(),
                position: self.position as usize,
            },
            1 => Role::Survivable {
                core: self.core.clone(),
                rank: self.rank,
                position: self.position as usize,
            },
            _ => Role::Witness,
        };
        MemberState {
            member: Member {
                spec: MemberSpec {
                    id: NodeId(self.id),
                    name: self.name.clone(),
                    host: self.host.clone(),
                    appliance: if self.dedicated {
                        Appliance::Dedicated
                    } else {
                        Appliance::Virtual
                    },
                },
                site: self.site.clone(),
                role,
            },
            replaces: (self.replaces != 0).then_some(NodeId(self.replaces)),
            address: self.address.clone(),
        }
    }
}

pub(crate) fn encode_members(members: &BTreeMap<NodeId, MemberState>) -> Vec<MemberRecord> {
    members.values().map(MemberRecord::from).collect()
}

pub(crate) fn encode<M: prost::Message>(m: &M) -> Vec<u8> {
    m.encode_to_vec()
}

impl From<&EpochRecord> for EpochRecordPb {
    fn from(r: &EpochRecord) -> Self {
        Self {
            number: r.id.number,
            founder: r.id.founder.0,
            fork_index: r.fork_index,
            fork_term: r.fork_term,
        }
    }
}

impl From<&EpochRecordPb> for EpochRecord {
    fn from(r: &EpochRecordPb) -> Self {
        Self {
            id: EpochId {
                number: r.number,
                founder: NodeId(r.founder),
            },
            fork_index: r.fork_index,
            fork_term: r.fork_term,
        }
    }
}

/// A lineage as stored; the first epoch when none is.
pub(crate) fn decode_lineage(records: &[EpochRecordPb]) -> Vec<EpochRecord> {
    if records.is_empty() {
        vec![EpochRecord::FIRST]
    } else {
        records.iter().map(EpochRecord::from).collect()
    }
}

pub(crate) fn encode_lineage(lineage: &[EpochRecord]) -> Vec<EpochRecordPb> {
    lineage.iter().map(EpochRecordPb::from).collect()
}

pub(crate) fn decode_reconciled(records: &[ReconciledPb]) -> BTreeMap<EpochId, u64> {
    records
        .iter()
        .map(|r| {
            let id = EpochId {
                number: r.number,
                founder: NodeId(r.founder),
            };
            (id, r.up_to)
        })
        .collect()
}

pub(crate) fn encode_reconciled(map: &BTreeMap<EpochId, u64>) -> Vec<ReconciledPb> {
    map.iter()
        .map(|(id, &up_to)| ReconciledPb {
            number: id.number,
            founder: id.founder.0,
            up_to,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_records_round_trip() {
        let s = MemberState {
            member: Member {
                spec: MemberSpec {
                    id: NodeId(6),
                    name: "CM01c".into(),
                    host: "esxi-4".into(),
                    appliance: Appliance::Virtual,
                },
                site: "denver".into(),
                role: Role::MainCore {
                    core: "cm01".into(),
                    position: 0,
                },
            },
            replaces: Some(NodeId(1)),
            address: None,
        };
        assert_eq!(MemberRecord::from(&s).to_state(), s);
        let bytes = encode(&MemberRecord::from(&s));
        assert_eq!(MemberRecord::decode(&bytes[..]).unwrap().to_state(), s);
        let at = MemberState {
            address: Some("127.0.0.1:7006".into()),
            ..s.clone()
        };
        let bytes = encode(&MemberRecord::from(&at));
        assert_eq!(MemberRecord::decode(&bytes[..]).unwrap().to_state(), at);
    }

    /// A `MemberRecord` as written before field 11 (the address) existed.
    #[derive(Clone, PartialEq, prost::Message)]
    struct OldMemberRecord {
        #[prost(uint64, tag = "1")]
        id: u64,
        #[prost(string, tag = "2")]
        name: String,
        #[prost(uint64, tag = "10")]
        replaces: u64,
    }

    #[test]
    fn member_records_written_before_the_address_decode_without_one() {
        let old = OldMemberRecord {
            id: 6,
            name: "CM01c".into(),
            replaces: 1,
        };
        let rec = MemberRecord::decode(&encode(&old)[..]).unwrap();
        assert_eq!((rec.id, rec.replaces, rec.address.as_deref()), (6, 1, None));
        assert_eq!(rec.to_state().address, None);
        // And a new record read by an old reader keeps what it knows.
        let new = MemberRecord {
            address: Some("127.0.0.1:7006".into()),
            ..MemberRecord::decode(&encode(&old)[..]).unwrap()
        };
        let back = OldMemberRecord::decode(&encode(&new)[..]).unwrap();
        assert_eq!(back, old);
    }

    #[test]
    fn topology_records_round_trip_and_never_pass_for_member_records() {
        use crate::topology::{denver_paris, TopologyChange};
        let base = denver_paris().build().unwrap();
        let next = base
            .apply(&TopologyChange::SetAddress {
                id: NodeId(3),
                address: "p:1".into(),
            })
            .unwrap();
        let rec = TopologyRecord::from(&next);
        let bytes = encode(&rec);
        let back = TopologyRecord::decode(&bytes[..]).unwrap();
        let t = back.to_topology(&base).unwrap();
        assert_eq!((t.version(), t.address(NodeId(3))), (1, Some("p:1")));
        assert_eq!(t.members(), next.members());
        assert_eq!(t.fingerprint(), next.fingerprint());
        // One context, two readers: neither mistakes the other's record.
        assert_eq!(MemberRecord::decode(&bytes[..]).unwrap().id, 0);
        let member = MemberRecord::from(&MemberState {
            member: base.member(NodeId(1)).unwrap().clone(),
            replaces: None,
            address: Some("127.0.0.1:7001".into()),
        });
        let other = TopologyRecord::decode(&encode(&member)[..]).unwrap();
        assert_eq!(other.version, 0);
        // Removed ids travel in the record (field 24); a record written
        // before that field existed decodes with none.
        let replaced = next
            .apply(&TopologyChange::RemoveMember { id: NodeId(5) })
            .unwrap();
        let with = TopologyRecord::from(&replaced);
        assert_eq!(with.removed, vec![5]);
        let t = TopologyRecord::decode(&encode(&with)[..]).unwrap();
        assert!(t.to_topology(&base).unwrap().is_removed(NodeId(5)));
        let old = TopologyRecord {
            removed: Vec::new(),
            ..with
        };
        let t = TopologyRecord::decode(&encode(&old)[..]).unwrap();
        assert!(t.to_topology(&base).unwrap().removed_ids().is_empty());
        // A record the builder would refuse does not decode to a topology.
        let mut bad = rec.clone();
        bad.members.retain(|m| m.id != 2);
        assert!(matches!(
            bad.to_topology(&base),
            Err(TopologyError::NotAPair { .. })
        ));
    }
}
