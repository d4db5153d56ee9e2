//! The decode budget's schemas checked against the message definitions
//! they mirror, so a field added to a message cannot be left out of the
//! budget (where it would be charged as an unknown field at best).
//!
//! - raft's messages are checked against rust-protobuf's reflection of
//!   `eraftpb.proto`: every field, its number, whether it repeats and what
//!   it nests.
//! - The library's prost messages carry no reflection, so each is built
//!   here with every field set (struct literals without
//!   `..Default::default()`: a new field does not compile until it is set
//!   here too), encoded, and the fields found in the bytes are compared
//!   with the schema, recursively through every nested and encoded body.

use std::collections::{BTreeMap, BTreeSet};

use protobuf::descriptor::FieldDescriptorProto_Type as Type;
use protobuf::reflect::MessageDescriptor;
use protobuf::Message as _;
use raft::eraftpb::{ConfState, EntryType, Message, Snapshot, SnapshotMetadata};

type Entry = raft::eraftpb::Entry;

use super::*;
use crate::wire::control::{Control, Divergent, Kind, Notice, Probe};
use crate::wire::payload::{AddressRecord, SiteRecord, SnapshotData, TopologyRecord};

/// raft's message type `name` (`.eraftpb.X`): its reflection, and the
/// schema that mirrors it.
fn raft_type(name: &str) -> Option<(&'static MessageDescriptor, &'static Schema)> {
    Some(match name {
        ".eraftpb.Message" => (Message::descriptor_static(), &RAFT_MESSAGE),
        ".eraftpb.Entry" => (Entry::descriptor_static(), &RAFT_ENTRY),
        ".eraftpb.Snapshot" => (Snapshot::descriptor_static(), &RAFT_SNAPSHOT),
        ".eraftpb.SnapshotMetadata" => (
            SnapshotMetadata::descriptor_static(),
            &RAFT_SNAPSHOT_METADATA,
        ),
        ".eraftpb.ConfState" => (ConfState::descriptor_static(), &RAFT_CONF_STATE),
        _ => return None,
    })
}

fn numbers(schema: &Schema) -> BTreeSet<u32> {
    let set: BTreeSet<u32> = schema.fields.iter().map(|(n, _)| *n).collect();
    assert_eq!(set.len(), schema.fields.len(), "a field number twice");
    set
}

/// Checks `schema` against raft's `descriptor`, and every message it nests.
fn check_raft(descriptor: &MessageDescriptor, schema: &Schema) {
    let name = descriptor.full_name();
    let defined: BTreeSet<u32> = descriptor
        .fields()
        .iter()
        .map(|f| f.proto().get_number() as u32)
        .collect();
    assert_eq!(numbers(schema), defined, "{name}: field numbers");
    for f in descriptor.fields() {
        let proto = f.proto();
        let number = proto.get_number() as u32;
        let field = schema.field(number).expect("compared above");
        let what = format!("{name}.{}", f.name());
        let nested = (proto.get_field_type() == Type::TYPE_MESSAGE).then(|| {
            raft_type(proto.get_type_name())
                .unwrap_or_else(|| panic!("{what}: no schema for {}", proto.get_type_name()))
                .1
        });
        match (f.is_repeated(), nested, field) {
            (true, Some(want), Field::Many(_, Body::Message(got))) => {
                assert!(std::ptr::eq(want, got), "{what}: nests another schema");
            }
            (true, None, Field::Packed(size)) => assert_eq!(size, 8, "{what}: element size"),
            (false, Some(want), Field::One(Body::Message(got))) => {
                assert!(std::ptr::eq(want, got), "{what}: nests another schema");
            }
            // Bytes another decoder parses later (a snapshot's data).
            (false, None, Field::One(Body::Encoded(_))) => {
                assert_eq!(proto.get_field_type(), Type::TYPE_BYTES, "{what}: encoded");
            }
            (false, None, Field::One(Body::Opaque)) => {}
            (repeated, _, field) => panic!("{what}: repeated={repeated}, schema says {field:?}"),
        }
    }
    for f in descriptor.fields() {
        if f.proto().get_field_type() == Type::TYPE_MESSAGE {
            let (descriptor, schema) = raft_type(f.proto().get_type_name()).expect("checked");
            check_raft(descriptor, schema);
        }
    }
}

#[test]
fn raft_schemas_match_raft_proto_reflection() {
    check_raft(Message::descriptor_static(), &RAFT_MESSAGE);
    // Every type named in `raft_type` is the one its name says.
    for name in [
        "Message",
        "Entry",
        "Snapshot",
        "SnapshotMetadata",
        "ConfState",
    ] {
        let (descriptor, _) = raft_type(&format!(".eraftpb.{name}")).unwrap();
        assert_eq!(descriptor.full_name(), format!("eraftpb.{name}"));
    }
}

/// The fields at the top level of `bytes`: number → (wire type, body of
/// each occurrence).
fn fields_of(mut bytes: &[u8]) -> BTreeMap<u32, (u32, Vec<&[u8]>)> {
    let mut out: BTreeMap<u32, (u32, Vec<&[u8]>)> = BTreeMap::new();
    while !bytes.is_empty() {
        let (tag, n) = key(bytes).expect("a key");
        bytes = &bytes[n..];
        let body_len = match tag & 7 {
            0 => varint(bytes).expect("a varint").1,
            1 => 8,
            5 => 4,
            2 => {
                let (len, n) = varint(bytes).expect("a length");
                bytes = &bytes[n..];
                len as usize
            }
            t => panic!("wire type {t}"),
        };
        let (body, rest) = bytes.split_at(body_len);
        bytes = rest;
        let entry = out.entry(tag >> 3).or_insert((tag & 7, Vec::new()));
        entry.1.push(body);
    }
    out
}

/// Checks that a message encoded with every field set (repeated fields
/// with two elements) holds exactly the schema's fields, each as often as
/// the schema says, and every nested body against its own schema.
fn check_full(what: &str, bytes: &[u8], schema: &Schema) {
    let found = fields_of(bytes);
    let defined: BTreeSet<u32> = found.keys().copied().collect();
    assert_eq!(numbers(schema), defined, "{what}: field numbers");
    for (number, (wire, bodies)) in &found {
        let what = format!("{what}.{number}");
        match schema.field(*number).expect("compared above") {
            Field::One(body) => {
                assert_eq!(bodies.len(), 1, "{what}: singular");
                check_body(&what, bodies[0], body);
            }
            Field::Many(_, body) => {
                assert_eq!(bodies.len(), 2, "{what}: repeated, two set");
                bodies.iter().for_each(|b| check_body(&what, b, body));
            }
            Field::Packed(_) => assert_eq!(*wire, 2, "{what}: packed"),
        }
    }
}

fn check_body(what: &str, bytes: &[u8], body: Body) {
    match body {
        Body::Opaque => {}
        Body::Message(schema) | Body::Encoded(schema) => check_full(what, bytes, schema),
    }
}

fn full_raft_entry() -> Vec<u8> {
    let mut e = Entry {
        term: 2,
        index: 3,
        data: b"d".to_vec().into(),
        context: b"c".to_vec().into(),
        sync_log: true,
        ..Default::default()
    };
    e.set_entry_type(EntryType::EntryConfChangeV2);
    e.write_to_bytes().unwrap()
}

fn full_epoch() -> EpochRecordPb {
    EpochRecordPb {
        number: 2,
        founder: 3,
        fork_index: 4,
        fork_term: 5,
    }
}

fn full_reconciled() -> ReconciledPb {
    ReconciledPb {
        number: 2,
        founder: 3,
        up_to: 4,
    }
}

fn full_snapshot_data() -> SnapshotData {
    let member = MemberRecord {
        id: 1,
        name: "a".into(),
        host: "h".into(),
        dedicated: true,
        site: "s".into(),
        kind: 1,
        core: "c".into(),
        rank: 1,
        position: 1,
        replaces: 2,
        address: Some("a:1".into()),
    };
    let dedup = DedupRecord {
        proposer: 1,
        boot: 2,
        floor: 3,
        seen: vec![4, 5],
        seen_index: vec![6, 7],
        seen_term: vec![8, 9],
    };
    let topology = TopologyRecord {
        version: 3,
        sites: vec![
            SiteRecord {
                name: "s".into(),
                main: true,
            };
            2
        ],
        members: vec![member.clone(), member.clone()],
        addresses: vec![
            AddressRecord {
                id: 1,
                address: "a:1".into(),
            };
            2
        ],
        removed: vec![4, 5],
    };
    SnapshotData {
        user: b"u".to_vec().into(),
        topology: Some(topology),
        members: vec![member.clone(), member],
        dedup: vec![dedup.clone(), dedup],
        epochs: vec![full_epoch(), full_epoch()],
        reconciled: vec![full_reconciled(), full_reconciled()],
        covered: vec![full_reconciled(), full_reconciled()],
        replication: Some(crate::wire::payload::ReplicationRecord { state: 1, id: 2 }),
    }
}

#[test]
fn snapshot_data_schema_matches_its_definition() {
    let bytes = prost::Message::encode_to_vec(&full_snapshot_data());
    check_full("SnapshotData", &bytes, &SNAPSHOT_DATA);
}

#[test]
fn control_schema_matches_its_definition() {
    let probe = Probe {
        leader: 1,
        last_term: 2,
        last_index: 3,
        prepared: true,
    };
    let notice = Notice {
        lineage: vec![full_epoch(), full_epoch()],
        reconciled: vec![full_reconciled(), full_reconciled()],
        leader: 2,
    };
    let divergent = Divergent {
        lineage: vec![full_epoch(), full_epoch()],
        commit: 3,
        first_index: 4,
        entries: vec![full_raft_entry(), full_raft_entry()],
        compacted: 5,
        compacted_covered: vec![full_reconciled(), full_reconciled()],
    };
    let kinds = [
        Kind::Probe(probe.clone()),
        Kind::ProbeReply(probe.clone()),
        Kind::Notice(notice),
        Kind::Divergent(divergent),
        Kind::Join(probe),
        Kind::DrPing(crate::wire::control::DrPing { sent_ms: 1 }),
        Kind::DrPong(crate::wire::control::DrPong {
            echo_ms: 1,
            state: 2,
            state_id: 3,
            grants: true,
        }),
    ];
    let mut seen = BTreeSet::new();
    for kind in kinds {
        let bytes = prost::Message::encode_to_vec(&Control { kind: Some(kind) });
        let found = fields_of(&bytes);
        assert_eq!(found.len(), 1, "one member of the oneof");
        for (number, (_, bodies)) in found {
            let Some(Field::One(body)) = CONTROL.field(number) else {
                panic!("Control.{number}: not a singular field of the schema");
            };
            check_body(&format!("Control.{number}"), bodies[0], body);
            seen.insert(number);
        }
    }
    assert_eq!(seen, numbers(&CONTROL), "every kind of control message");
}
