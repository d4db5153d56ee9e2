//! What decoding some protobuf bytes would cost in memory, found by a cheap
//! walk over the wire format before any decoder runs.
//!
//! A decoder builds one struct per element of a repeated field, and an
//! element can take two bytes on the wire and a hundred in memory: `3a 00`
//! is an empty raft `Entry` in field 7 of a raft `Message`, so a 16 MiB
//! frame of those pairs decodes to 8 million entries, about a gigabyte.
//! [`decoded_size`] walks the bytes once, allocating nothing, and adds up
//! what the decoder would build: the bytes themselves (the most any decoder
//! copies out of them) plus one element per repeated value, each at its
//! in-memory size, and a generous allowance for every field the schema does
//! not know (rust-protobuf keeps unknown fields; prost drops them, but a
//! field this mirror of the schema misses must not be free). Singular
//! fields are overwritten or merged in place and cost nothing more.
//!
//! The estimate counts live elements, not a vector's spare capacity (up to
//! as much again while it grows). Where the bytes stop being well-formed the
//! walk stops too: a decoder fails at that point at the latest, so nothing
//! after it is built.
//!
//! The schemas below mirror raft's `eraftpb.proto` (raft-proto 0.7) and
//! the library's own prost messages that peers send: the control messages
//! of [`wire::control`](super::control) and the snapshot data of
//! [`wire::payload`](super::payload). Nesting is static and acyclic, so the
//! walk's recursion is bounded (five levels). A test checks every schema
//! against the definition it mirrors (`budget/definitions.rs`: raft's by
//! rust-protobuf's reflection, ours by encoding each message with every
//! field set), so a field added to a message fails the build's tests until
//! the budget knows it.

use std::mem::size_of;

use raft::eraftpb::Entry;

use crate::wire::payload::{
    AddressRecord, DedupRecord, EpochRecordPb, MemberRecord, ReconciledPb, SiteRecord,
};

/// How a decoder stores a length-delimited body.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Body {
    /// Bytes, a string or a scalar: copied or parsed in place.
    Opaque,
    /// A nested message, decoded with its parent: malformed inside means
    /// the parent fails.
    Message(&'static Schema),
    /// Bytes that another decoder parses later as this message (a
    /// snapshot's data, a divergent raft entry): malformed inside is that
    /// decoder's business, the parent is fine.
    Encoded(&'static Schema),
}

/// How a decoder stores one field.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Field {
    /// A singular field: overwritten, or merged in place.
    One(Body),
    /// A repeated field: one element of this many bytes per occurrence.
    Many(usize, Body),
    /// A repeated varint field (packed or not): one element of this many
    /// bytes per value.
    Packed(usize),
}

/// The fields of one message type that the decoder knows, by number.
#[derive(Debug)]
pub(crate) struct Schema {
    fields: &'static [(u32, Field)],
}

impl Schema {
    fn field(&self, number: u32) -> Option<Field> {
        self.fields
            .iter()
            .find(|(n, _)| *n == number)
            .map(|&(_, f)| f)
    }
}

/// Charged for every occurrence of a field the schema does not know: what
/// rust-protobuf's `UnknownFields` may allocate for it (a map entry holding
/// four vectors, and the value), twice over.
const UNKNOWN_FIELD: usize =
    2 * (size_of::<(u32, protobuf::UnknownValues)>() + size_of::<Vec<u8>>());

const fn scalars<const N: usize>(numbers: [u32; N]) -> [(u32, Field); N] {
    let mut out = [(0, Field::One(Body::Opaque)); N];
    let mut i = 0;
    while i < N {
        out[i].0 = numbers[i];
        i += 1;
    }
    out
}

/// raft `Entry`: entry_type 1, term 2, index 3, data 4, sync_log 5, context 6.
pub(crate) static RAFT_ENTRY: Schema = Schema {
    fields: &scalars([1, 2, 3, 4, 5, 6]),
};

/// raft `ConfState`: voters 1, learners 2, voters_outgoing 3,
/// learners_next 4 (repeated uint64), auto_leave 5.
static RAFT_CONF_STATE: Schema = Schema {
    fields: &[
        (1, Field::Packed(size_of::<u64>())),
        (2, Field::Packed(size_of::<u64>())),
        (3, Field::Packed(size_of::<u64>())),
        (4, Field::Packed(size_of::<u64>())),
        (5, Field::One(Body::Opaque)),
    ],
};

/// raft `SnapshotMetadata`: conf_state 1, index 2, term 3.
static RAFT_SNAPSHOT_METADATA: Schema = Schema {
    fields: &[
        (1, Field::One(Body::Message(&RAFT_CONF_STATE))),
        (2, Field::One(Body::Opaque)),
        (3, Field::One(Body::Opaque)),
    ],
};

/// raft `Snapshot`: data 1 (the library's [`SNAPSHOT_DATA`]), metadata 2.
static RAFT_SNAPSHOT: Schema = Schema {
    fields: &[
        (1, Field::One(Body::Encoded(&SNAPSHOT_DATA))),
        (2, Field::One(Body::Message(&RAFT_SNAPSHOT_METADATA))),
    ],
};

/// raft `Message`: entries 7 (repeated `Entry`), snapshot 9, and scalars
/// msg_type 1, to 2, from 3, term 4, log_term 5, index 6, commit 8,
/// reject 10, reject_hint 11, context 12, request_snapshot 13,
/// deprecated_priority 14, commit_term 15, priority 16.
pub(crate) static RAFT_MESSAGE: Schema = Schema {
    fields: &[
        (1, Field::One(Body::Opaque)),
        (2, Field::One(Body::Opaque)),
        (3, Field::One(Body::Opaque)),
        (4, Field::One(Body::Opaque)),
        (5, Field::One(Body::Opaque)),
        (6, Field::One(Body::Opaque)),
        (
            7,
            Field::Many(size_of::<Entry>(), Body::Message(&RAFT_ENTRY)),
        ),
        (8, Field::One(Body::Opaque)),
        (9, Field::One(Body::Message(&RAFT_SNAPSHOT))),
        (10, Field::One(Body::Opaque)),
        (11, Field::One(Body::Opaque)),
        (12, Field::One(Body::Opaque)),
        (13, Field::One(Body::Opaque)),
        (14, Field::One(Body::Opaque)),
        (15, Field::One(Body::Opaque)),
        (16, Field::One(Body::Opaque)),
    ],
};

/// `EpochRecordPb`: number, founder, fork_index, fork_term.
static EPOCH_RECORD: Schema = Schema {
    fields: &scalars([1, 2, 3, 4]),
};

/// `ReconciledPb`: number, founder, up_to.
static RECONCILED: Schema = Schema {
    fields: &scalars([1, 2, 3]),
};

/// `MemberRecord`: eleven scalars and strings (11: a replacement's
/// address).
static MEMBER_RECORD: Schema = Schema {
    fields: &scalars([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]),
};

/// `SiteRecord`: name 1, main 2; `AddressRecord`: id 1, address 2.
static SITE_OR_ADDRESS_RECORD: Schema = Schema {
    fields: &scalars([1, 2]),
};

/// `TopologyRecord`: version 20, sites 21, members 22 (each a
/// `MemberRecord`), addresses 23, removed ids 24 (packed uint64).
static TOPOLOGY_RECORD: Schema = Schema {
    fields: &[
        (20, Field::One(Body::Opaque)),
        (
            21,
            Field::Many(
                size_of::<SiteRecord>(),
                Body::Message(&SITE_OR_ADDRESS_RECORD),
            ),
        ),
        (
            22,
            Field::Many(size_of::<MemberRecord>(), Body::Message(&MEMBER_RECORD)),
        ),
        (
            23,
            Field::Many(
                size_of::<AddressRecord>(),
                Body::Message(&SITE_OR_ADDRESS_RECORD),
            ),
        ),
        (24, Field::Packed(size_of::<u64>())),
    ],
};

/// `DedupRecord`: proposer 1, boot 2, floor 3, seen 4, seen_index 5,
/// seen_term 6 (repeated uint64).
static DEDUP_RECORD: Schema = Schema {
    fields: &[
        (1, Field::One(Body::Opaque)),
        (2, Field::One(Body::Opaque)),
        (3, Field::One(Body::Opaque)),
        (4, Field::Packed(size_of::<u64>())),
        (5, Field::Packed(size_of::<u64>())),
        (6, Field::Packed(size_of::<u64>())),
    ],
};

/// `SnapshotData`, the data of every snapshot the library takes: user 1,
/// members 2, dedup 3, epochs 4, reconciled 5, covered 6, topology 7,
/// replication state 8.
pub(crate) static SNAPSHOT_DATA: Schema = Schema {
    fields: &[
        (1, Field::One(Body::Opaque)),
        (
            2,
            Field::Many(size_of::<MemberRecord>(), Body::Message(&MEMBER_RECORD)),
        ),
        (
            3,
            Field::Many(size_of::<DedupRecord>(), Body::Message(&DEDUP_RECORD)),
        ),
        (
            4,
            Field::Many(size_of::<EpochRecordPb>(), Body::Message(&EPOCH_RECORD)),
        ),
        (
            5,
            Field::Many(size_of::<ReconciledPb>(), Body::Message(&RECONCILED)),
        ),
        (
            6,
            Field::Many(size_of::<ReconciledPb>(), Body::Message(&RECONCILED)),
        ),
        (7, Field::One(Body::Message(&TOPOLOGY_RECORD))),
        (8, Field::One(Body::Message(&SCALAR_PAIR))),
    ],
};

/// `ReplicationRecord`: state 1, id 2.
static SCALAR_PAIR: Schema = Schema {
    fields: &scalars([1, 2]),
};

/// Control `DrPing`: sent_ms 1.
static DR_PING: Schema = Schema {
    fields: &scalars([1]),
};

/// Control `DrPong`: echo_ms 1, state 2, state_id 3, grants 4.
static DR_PONG: Schema = Schema {
    fields: &scalars([1, 2, 3, 4]),
};

/// Control `Probe` (also the reply and the join request): leader 1, and
/// in a reply the sender's last term 2, last index 3, prepared 4.
static PROBE: Schema = Schema {
    fields: &scalars([1, 2, 3, 4]),
};

/// Control `Notice`: lineage 1, reconciled 2, leader 3.
static NOTICE: Schema = Schema {
    fields: &[
        (
            1,
            Field::Many(size_of::<EpochRecordPb>(), Body::Message(&EPOCH_RECORD)),
        ),
        (
            2,
            Field::Many(size_of::<ReconciledPb>(), Body::Message(&RECONCILED)),
        ),
        (3, Field::One(Body::Opaque)),
    ],
};

/// Control `Divergent`: lineage 1, commit 2, first_index 3, entries 4
/// (each a raft `Entry` in raft's codec, parsed by the receiver), compacted
/// 5, compacted_covered 6.
static DIVERGENT: Schema = Schema {
    fields: &[
        (
            1,
            Field::Many(size_of::<EpochRecordPb>(), Body::Message(&EPOCH_RECORD)),
        ),
        (2, Field::One(Body::Opaque)),
        (3, Field::One(Body::Opaque)),
        (
            4,
            Field::Many(
                size_of::<Vec<u8>>() + size_of::<Entry>(),
                Body::Encoded(&RAFT_ENTRY),
            ),
        ),
        (5, Field::One(Body::Opaque)),
        (
            6,
            Field::Many(size_of::<ReconciledPb>(), Body::Message(&RECONCILED)),
        ),
    ],
};

/// `Control`, the library's messages outside raft: a oneof of probe 1,
/// probe reply 2, notice 3, divergent 4, join 5, DR ping 7, DR pong 8
/// (drain 6 is all scalars).
pub(crate) static CONTROL: Schema = Schema {
    fields: &[
        (1, Field::One(Body::Message(&PROBE))),
        (2, Field::One(Body::Message(&PROBE))),
        (3, Field::One(Body::Message(&NOTICE))),
        (4, Field::One(Body::Message(&DIVERGENT))),
        (5, Field::One(Body::Message(&PROBE))),
        (7, Field::One(Body::Message(&DR_PING))),
        (8, Field::One(Body::Message(&DR_PONG))),
    ],
};

impl Schema {
    /// The most [`walk`] charges per byte it walks as this schema (the
    /// bytes themselves not counted), whatever the bytes. Per call, `walk`
    /// charges:
    /// - at most the largest element size `c` (an unknown field's
    ///   [`UNKNOWN_FIELD`], a `Many` or `Packed` element) per field
    ///   occurrence, and every occurrence takes at least one byte of its
    ///   own (its key), so at most `c` per byte;
    /// - for a packed body, the packed element size `p` per value, at most
    ///   one value per body byte, so at most `p` per byte;
    /// - for each nested body, what walking it as its schema charges; the
    ///   bodies are disjoint slices of the bytes, so at most the largest
    ///   nested rate per byte.
    ///
    /// Hence `c + p + max(nested)`, by induction over the (static,
    /// acyclic) nesting; a walk that stops early charges less.
    const fn charge_per_byte(&self) -> usize {
        let (mut element, mut packed, mut nested) = (UNKNOWN_FIELD, 0, 0);
        let mut i = 0;
        while i < self.fields.len() {
            let (size, body) = match self.fields[i].1 {
                Field::One(b) => (0, Some(b)),
                Field::Many(size, b) => (size, Some(b)),
                Field::Packed(size) => {
                    if size > packed {
                        packed = size;
                    }
                    (size, None)
                }
            };
            if size > element {
                element = size;
            }
            if let Some(Body::Message(s) | Body::Encoded(s)) = body {
                let rate = s.charge_per_byte();
                if rate > nested {
                    nested = rate;
                }
            }
            i += 1;
        }
        element + packed + nested
    }
}

/// [`RAFT_MESSAGE`]'s [`Schema::charge_per_byte`].
pub(crate) const RAFT_MESSAGE_RATE: usize = RAFT_MESSAGE.charge_per_byte();

/// [`CONTROL`]'s [`Schema::charge_per_byte`].
pub(crate) const CONTROL_RATE: usize = CONTROL.charge_per_byte();

/// An upper bound on [`decoded_size`] of any `len` bytes walked as a
/// schema charging at most `rate` per byte: a payload short enough that
/// this fits its budget needs no walk (the walk's verdict is known).
pub(crate) const fn decoded_size_bound(len: usize, rate: usize) -> usize {
    len.saturating_mul(rate.saturating_add(1))
}

/// Roughly the most memory decoding `bytes` as `schema` takes, in bytes
/// (see the module documentation).
pub(crate) fn decoded_size(bytes: &[u8], schema: &Schema) -> usize {
    let mut cost = 0;
    let _ = walk(bytes, schema, &mut cost);
    bytes.len().saturating_add(cost)
}

/// The key (field number and wire type) at the start of `b`, and its
/// length; `None` where no decoder reads one. rust-protobuf keeps the low
/// 32 bits of a longer key; prost refuses it, so the walk reading on where
/// prost stops can only over-count.
fn key(b: &[u8]) -> Option<(u32, usize)> {
    let (v, n) = varint(b)?;
    let key = v as u32;
    (key >> 3 != 0).then_some((key, n))
}

/// The varint at the start of `b`, and its length.
fn varint(b: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, &byte) in b.iter().enumerate().take(10) {
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte < 0x80 {
            return Some((v, i + 1));
        }
    }
    None
}

/// Adds what decoding `bytes` as `schema` builds to `cost`; `false` where
/// the bytes stop being well-formed (a decoder fails there).
fn walk(mut bytes: &[u8], schema: &Schema, cost: &mut usize) -> bool {
    let charge = |cost: &mut usize, n: usize| *cost = cost.saturating_add(n);
    let mut cut = false;
    while !bytes.is_empty() {
        let Some((tag, n)) = key(bytes) else {
            return false;
        };
        bytes = &bytes[n..];
        let field = schema.field(tag >> 3);
        let len = match tag & 7 {
            0 => match varint(bytes) {
                Some((_, n)) => n,
                None => return false,
            },
            1 => 8,
            5 => 4,
            2 => {
                let Some((len, n)) = varint(bytes) else {
                    return false;
                };
                bytes = &bytes[n..];
                // rust-protobuf reads the length of a nested message or a
                // packed field as 64 bits, and that of bytes, a string or
                // an unknown field as 32, dropping the high bits: `2^63`
                // reads as 0 and the walk must go on as the decoder does.
                let len = match field {
                    Some(Field::One(Body::Message(_)) | Field::Many(_, Body::Message(_))) => len,
                    Some(Field::Packed(_)) => len,
                    _ => u64::from(len as u32),
                };
                // A body that runs past the end of the bytes: prost fails,
                // but rust-protobuf reads a nested message cut short by
                // the end of its input as if it ended there (and keeps
                // it), so charge it as the rest of the bytes, then stop.
                let body = match usize::try_from(len).ok().and_then(|l| bytes.get(..l)) {
                    Some(body) => body,
                    None => {
                        cut = true;
                        bytes
                    }
                };
                match field {
                    None => charge(cost, UNKNOWN_FIELD),
                    Some(Field::One(b)) => {
                        if !nested(body, b, cost) {
                            return false;
                        }
                    }
                    Some(Field::Many(size, b)) => {
                        charge(cost, size);
                        if !nested(body, b, cost) {
                            return false;
                        }
                    }
                    Some(Field::Packed(size)) => {
                        let values = body.iter().filter(|&&b| b < 0x80).count();
                        charge(cost, values.saturating_mul(size));
                    }
                }
                body.len()
            }
            // A group: both decoders skip it and keep nothing of it.
            3 => match skip_group(bytes) {
                Some(n) => n,
                None => return false,
            },
            _ => return false, // an end without a group, or no wire type
        };
        if matches!(tag & 7, 0 | 1 | 5) {
            match field {
                None => charge(cost, UNKNOWN_FIELD),
                Some(Field::Packed(size) | Field::Many(size, _)) => charge(cost, size),
                Some(Field::One(_)) => {}
            }
        }
        if cut {
            return false;
        }
        let Some(rest) = bytes.get(len..) else {
            return false;
        };
        bytes = rest;
    }
    true
}

/// Walks a length-delimited body; `false` when a nested message is
/// malformed (its parent's decoder fails too).
fn nested(body: &[u8], b: Body, cost: &mut usize) -> bool {
    match b {
        Body::Opaque => true,
        Body::Message(s) => walk(body, s, cost),
        Body::Encoded(s) => {
            let _ = walk(body, s, cost);
            true
        }
    }
}

/// The length of a group's body and its end tag, from after its start tag.
fn skip_group(bytes: &[u8]) -> Option<usize> {
    let mut at = 0;
    let mut depth = 1usize;
    while depth > 0 {
        let (tag, n) = key(bytes.get(at..)?)?;
        at += n;
        at += match tag & 7 {
            0 => varint(bytes.get(at..)?)?.1,
            1 => 8,
            5 => 4,
            2 => {
                // Skipped as an unknown field: a 32-bit length (see `walk`).
                let (len, n) = varint(bytes.get(at..)?)?;
                n.checked_add(usize::try_from(len as u32).ok()?)?
            }
            3 => {
                depth += 1;
                0
            }
            4 => {
                depth -= 1;
                0
            }
            _ => return None,
        };
        if at > bytes.len() {
            return None;
        }
    }
    Some(at)
}

#[cfg(test)]
mod definitions;

#[cfg(test)]
mod tests {
    use super::*;
    use protobuf::Message as _;
    use raft::eraftpb::{ConfState, Message, MessageType, Snapshot};

    fn entry(index: u64, data: &[u8]) -> Entry {
        Entry {
            index,
            term: 3,
            data: data.to_vec().into(),
            context: b"ctx".to_vec().into(),
            sync_log: true,
            ..Default::default()
        }
    }

    /// Every field of raft's `Message` set: the schema knows them all, so
    /// only the repeated elements cost anything beyond the bytes.
    #[test]
    fn raft_schema_matches_raft_proto() {
        let mut m = Message::default();
        m.set_msg_type(MessageType::MsgSnapshot);
        (m.to, m.from, m.term, m.log_term, m.index) = (1, 2, 3, 4, 5);
        (m.commit, m.commit_term, m.reject, m.reject_hint) = (6, 7, true, 8);
        (m.request_snapshot, m.deprecated_priority, m.priority) = (9, 10, -11);
        m.context = b"c".to_vec().into();
        m.entries = vec![entry(1, b"a"), entry(2, b"b")].into();
        let mut snap = Snapshot::default();
        let data = crate::wire::payload::SnapshotData {
            user: b"state".to_vec().into(),
            epochs: vec![EpochRecordPb::default(); 3],
            ..Default::default()
        };
        snap.data = prost::Message::encode_to_vec(&data).into();
        let meta = snap.mut_metadata();
        (meta.index, meta.term) = (5, 3);
        meta.set_conf_state(ConfState {
            voters: vec![1, 2, 300],
            learners: vec![4],
            voters_outgoing: vec![5],
            learners_next: vec![6],
            auto_leave: true,
            ..Default::default()
        });
        m.set_snapshot(snap);
        let bytes = m.write_to_bytes().unwrap();
        let want = 2 * size_of::<Entry>() + 6 * 8 + 3 * size_of::<EpochRecordPb>();
        assert_eq!(decoded_size(&bytes, &RAFT_MESSAGE), bytes.len() + want);
    }

    #[test]
    fn unknown_fields_and_groups_are_charged_or_skipped() {
        // Field 100 as a varint, then a group 101 holding a field.
        let bytes = [0xa0, 0x06, 0x01, 0xab, 0x06, 0x08, 0x01, 0xac, 0x06];
        assert_eq!(
            decoded_size(&bytes, &RAFT_ENTRY),
            bytes.len() + UNKNOWN_FIELD
        );
        // Unpacked repeated varints cost one element each.
        let unpacked = [0x08, 0x01, 0x08, 0x02];
        assert_eq!(decoded_size(&unpacked, &RAFT_CONF_STATE), 4 + 16);
    }

    /// rust-protobuf reads a key, and the length of bytes or of an unknown
    /// field, as 32 bits, dropping the rest; the walk reads them the same
    /// way, or it stops where the decoder goes on. (The fuzzer found an
    /// unknown field of length `2^63`, read as 0, before three entries.)
    #[test]
    fn keys_and_lengths_are_read_as_32_bits() {
        const HUGE: [u8; 10] = [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01];
        let unknown_of_length_2_63 = [&[0xea, 0x0f][..], &HUGE, &[0x3a, 0x00, 0x3a, 0x00]].concat();
        // Key `2^32 + 0x3a`: field 7 (an entry) once the high bits go.
        let key_over_32_bits = [0xba, 0x80, 0x80, 0x80, 0x10, 0x00];
        // A skipped group (field 100) holding a bytes field of length 2^63.
        let group = [&[0xa3, 0x06, 0x12][..], &HUGE, &[0xa4, 0x06, 0x3a, 0x00]].concat();
        for (bytes, entries, unknown) in [
            (&unknown_of_length_2_63[..], 2, 1),
            (&key_over_32_bits[..], 1, 0),
            (&group[..], 1, 0),
        ] {
            let parsed = Message::parse_from_bytes(bytes).unwrap();
            assert_eq!(parsed.entries.len(), entries, "{bytes:02x?}");
            assert_eq!(
                decoded_size(bytes, &RAFT_MESSAGE),
                bytes.len() + entries * size_of::<Entry>() + unknown * UNKNOWN_FIELD,
                "{bytes:02x?}"
            );
        }
    }

    #[test]
    fn the_walk_stops_where_the_bytes_break() {
        // Two empty entries, then one whose length runs past the end:
        // rust-protobuf keeps that one too (cut short where the bytes
        // end), so it is charged, and the walk stops there. (The fuzzer
        // found `3a e7 cb 28`: one entry, charged nothing.)
        let bytes = [0x3a, 0x00, 0x3a, 0x00, 0x3a, 0x05, 0x08, 0x01];
        let parsed = Message::parse_from_bytes(&bytes).unwrap();
        assert_eq!(parsed.entries.len(), 3);
        assert_eq!(
            decoded_size(&bytes, &RAFT_MESSAGE),
            bytes.len() + 3 * size_of::<Entry>()
        );
        let found = [0x3a, 0xe7, 0xcb, 0x28];
        assert_eq!(Message::parse_from_bytes(&found).unwrap().entries.len(), 1);
        assert_eq!(
            decoded_size(&found, &RAFT_MESSAGE),
            found.len() + size_of::<Entry>()
        );
        // A broken snapshot data ends only its own walk: the raft message
        // around it decodes, and its entries after it count.
        let mut m = Message::default();
        m.mut_snapshot().data = vec![0x12, 0x00, 0xff].into();
        m.entries = vec![entry(1, b"x")].into();
        let bytes = m.write_to_bytes().unwrap();
        assert_eq!(
            decoded_size(&bytes, &RAFT_MESSAGE),
            bytes.len() + size_of::<MemberRecord>() + size_of::<Entry>()
        );
        for b in [&[0x0e][..], &[0x0c], &[0x80], &[0x0b, 0x08]] {
            assert_eq!(decoded_size(b, &RAFT_MESSAGE), b.len());
        }
    }

    /// A random payload for `schema`, mostly well-formed: known and
    /// unknown fields of every wire type, nested bodies built the same
    /// way, packed runs, cut-short values and stray bytes.
    /// A xorshift draw below `n`.
    fn next(rng: &mut u64, n: u64) -> u64 {
        *rng ^= *rng << 13;
        *rng ^= *rng >> 7;
        *rng ^= *rng << 17;
        *rng % n
    }

    fn payload(schema: &Schema, rng: &mut u64, depth: u32, out: &mut Vec<u8>) {
        for _ in 0..next(rng, 12) {
            let known = schema.fields[next(rng, schema.fields.len() as u64) as usize];
            let number = if next(rng, 4) == 0 {
                1 + next(rng, 40) as u32
            } else {
                known.0
            };
            let wire = [0, 1, 2, 2, 2, 3, 5][next(rng, 7) as usize];
            let mut key = u64::from(number << 3 | wire);
            while key >= 0x80 {
                out.push(key as u8 | 0x80);
                key >>= 7;
            }
            out.push(key as u8);
            match wire {
                0 => out.push(next(rng, 0x80) as u8),
                1 => out.extend_from_slice(&[0; 8][..next(rng, 9) as usize]),
                5 => out.extend_from_slice(&[0; 4]),
                3 => out.extend_from_slice(&[0x0c]),
                _ => {
                    let mut body = Vec::new();
                    let field = schema.field(number);
                    match field {
                        Some(Field::One(b) | Field::Many(_, b)) if depth < 6 => match b {
                            Body::Message(s) | Body::Encoded(s) => {
                                payload(s, rng, depth + 1, &mut body)
                            }
                            Body::Opaque => body.resize(next(rng, 4) as usize, 1),
                        },
                        _ => body.resize(next(rng, 6) as usize, 0),
                    }
                    out.push(body.len().min(127) as u8);
                    out.extend_from_slice(&body);
                }
            }
            if next(rng, 20) == 0 {
                out.push(next(rng, 256) as u8);
            }
        }
    }

    /// [`decoded_size_bound`] holds for any bytes: what lets an envelope
    /// skip the walk when the bound fits its budget. Random nested
    /// payloads and the worst cases: empty repeated entries, one-byte
    /// unknown fields, packed runs.
    #[test]
    fn decoded_size_never_exceeds_the_bound() {
        let schemas = [
            (&RAFT_MESSAGE, RAFT_MESSAGE_RATE),
            (&CONTROL, CONTROL_RATE),
            (&SNAPSHOT_DATA, SNAPSHOT_DATA.charge_per_byte()),
            (&RAFT_ENTRY, RAFT_ENTRY.charge_per_byte()),
            (&TOPOLOGY_RECORD, TOPOLOGY_RECORD.charge_per_byte()),
        ];
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut checked = 0;
        for (schema, rate) in schemas {
            let mut cases: Vec<Vec<u8>> = vec![
                [0x3a, 0x00].repeat(50),
                vec![0x31],
                [0x30, 0x00].repeat(9),
                [0xc2, 0x01, 0x04, 0x01, 0x01, 0x01, 0x01].repeat(3),
            ];
            for _ in 0..3000 {
                let mut b = Vec::new();
                payload(schema, &mut rng, 0, &mut b);
                cases.push(b);
            }
            for b in &cases {
                let size = decoded_size(b, schema);
                assert!(
                    size <= decoded_size_bound(b.len(), rate),
                    "{b:02x?}: {size}"
                );
                checked += usize::from(size > b.len());
            }
        }
        assert!(checked > 1000, "the payloads charged too little: {checked}");
        // Small enough that every message but a large append or snapshot
        // skips the walk within a frame's budget.
        assert!(decoded_size_bound(4096, RAFT_MESSAGE_RATE) <= crate::wire::MAX_FRAME_LEN);
    }
}
