//! What the library itself stores in the raft log and in snapshots
//! (prost messages, no protoc).

use std::collections::BTreeMap;

use prost::Message as _;

use crate::topology::{Appliance, Member, MemberSpec, NodeId, Role};

/// A normal log entry: a user command with its proposal id.
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
    #[prost(bytes = "vec", tag = "1")]
    pub user: Vec<u8>,
    #[prost(message, repeated, tag = "2")]
    pub members: Vec<MemberRecord>,
    #[prost(message, repeated, tag = "3")]
    pub dedup: Vec<DedupRecord>,
}

impl SnapshotData {
    pub(crate) fn decode_bytes(bytes: &[u8]) -> Result<Self, String> {
        Self::decode(bytes).map_err(|e| e.to_string())
    }
}

/// A member of the current configuration, with what the library tracks of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MemberState {
    pub member: Member,
    /// The voter this member replaces once caught up.
    pub replaces: Option<NodeId>,
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
        }
    }
}

pub(crate) fn encode_members(members: &BTreeMap<NodeId, MemberState>) -> Vec<MemberRecord> {
    members.values().map(MemberRecord::from).collect()
}

pub(crate) fn encode<M: prost::Message>(m: &M) -> Vec<u8> {
    m.encode_to_vec()
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
        };
        assert_eq!(MemberRecord::from(&s).to_state(), s);
    }
}
