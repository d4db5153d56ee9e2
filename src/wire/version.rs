//! Protocol versions: the range a member speaks ([`ProtocolRange`]), the
//! version two members agree on in the hello, and what an envelope loses
//! on its way to a member of an older version ([`Envelope::for_version`]).
//!
//! # What each version added
//!
//! - **1**: envelopes in frames, after a hello.
//! - **2**: fragments ([`Envelope::fragment`](super::Envelope::fragment)):
//!   an envelope larger than a fragment travels in pieces. A version 1
//!   member would take each piece for an envelope without payload, so 2
//!   and 1 have nothing in common.
//! - **3**: the drain notice (control message 6: "I am drained, never hand
//!   me leadership"), the compaction floor records a main-site leader puts
//!   in the log (an entry holding only `keep_from`), the topology
//!   fingerprint in the hello, and the range in the hello
//!   ([`Hello::max_version`](super::Hello::max_version)). A version 2
//!   member counts a drain notice as a malformed control message, and
//!   applies a floor record as an empty command of the application's (the
//!   first one; the later ones as duplicates): on a version 2 connection
//!   a version 3 member never sends either. It drops the drain notice, so
//!   the version 2 peer may still pick the drained member as a transfer
//!   or hand-back target: the drained member refuses the hand-over
//!   (raft's `MsgTimeoutNow`) and raft gives it up after an election
//!   timeout, as for any target that did not take it. It sends each floor
//!   record as an empty entry, which every version skips (a new leader's
//!   entries are empty too), so the version 2 peer's copy of that entry is
//!   empty: a member that has no floor record keeps every entry a
//!   survivable core may still need (it compacts nothing in main-site
//!   mode until it applies one), so what is lost is only disk, and only
//!   while the leader speaks version 2 with it. A version 2 member sends
//!   no fingerprint, so the topologies are not compared on its
//!   connections (they are between version 3 members).
//!
//! DR auto-sync mode added, within version 3, control messages 7 and 8
//! (the survivable members' lease ping and the leader's answer), three
//! fields of a probe reply (the sender's last log term and index, and
//! whether it prepared to activate) and the replication state record (an
//! entry holding only `replication`, and field 8 of the snapshot data).
//! No version bump: an older build cannot run in that mode (the quorum
//! mode is in the topology fingerprint, so the hello refuses it), and in
//! the other modes none of them is sent; an older member ignores the new
//! probe fields.
//!
//! # Negotiation
//!
//! Each side of a connection announces its range in its hello (the
//! caller's, and the answer of the member called): the lowest version it
//! speaks in [`Hello::version`](super::Hello::version) (a member older
//! than version 3 reads only that field and refuses any version other
//! than its own) and the highest in `max_version`. Both use the highest
//! version both speak; every envelope on the connection, both ways,
//! carries it, and one carrying another is refused with the connection.
//! Ranges with no version in common are refused at the hello by both
//! sides (the member called answers first, so the caller sees its
//! range), naming both ranges
//! ([`ConnectionError::Version`](crate::transport::ConnectionError::Version)).
//!
//! # Rolling upgrade
//!
//! A build speaking versions 2 and 3 runs beside the version 2 build, so
//! a cluster is upgraded one member at a time, without stopping it:
//!
//! 1. **The standby** of the main site's core (the pair member that does
//!    not lead): stop it ([`Handle::shutdown`](crate::runtime::Handle::shutdown)),
//!    install the new build, start it on its data directory. It catches up
//!    and talks version 2 with every old member. Cost: while it restarts
//!    the core runs without a standby, so a failure of the leader in that
//!    window is not covered by a pair failover (the cluster falls back on
//!    its survivable cores, as for any double failure of the core).
//! 2. **Move leadership to it**:
//!    [`Handle::transfer_leader`](crate::runtime::Handle::transfer_leader)
//!    at the leader (or the operator endpoint's transfer). Cost: one
//!    transfer inside the pair, no failover: proposals wait a LAN round
//!    trip or two and are re-submitted to the new leader, none is lost.
//! 3. **The old primary**, now the standby: as in step 1.
//! 4. **The survivable cores**, one member at a time (each core's
//!    standby first, then its other member); they do not lead while the
//!    main site does, so no transfer is needed.
//! 5. **The witness** last (it never leads; while it restarts the
//!    voters keep a majority as long as no other member is down).
//!
//! A connection agrees on its version when it opens, and every restart
//! reopens its member's connections, so once the last member runs the new
//! build every connection speaks version 3; nothing else is to be done.
//!
//! **Rolling back.** At any step, a member of the new build can be stopped
//! and started again on the old build with its data: the new build talks
//! version 2 to old members and its data format is the old one, except
//! for compaction floor records (main-site mode only): a leader of the
//! new build writes them into its log, and they reach the logs of the
//! followers it talks version 3 with, and a version 2 build would replay
//! one as an empty command of the application's. To keep a roll back
//! possible until the whole cluster is upgraded, start the new build
//! pinned to version 2
//! ([`MemberConfig::protocol`](crate::runtime::MemberConfig::protocol) =
//! `ProtocolRange::up_to(2)`): it then writes no floor records and talks
//! as the old build does; once every member runs the new build, restart
//! them one at a time again (standby first, as above) with the default
//! range. While a main-site leader writes no floor records its followers
//! compact nothing (they keep every entry a survivable core may still
//! need, and only disk grows). A member is never rolled back past a
//! version the others need: a build of versions 3 and 4 that dropped 2
//! would be refused by a version 2 member, both naming their ranges.

use std::fmt;

use prost::Message as _;
use protobuf::Message as _;
use thiserror::Error;

use super::control::{Control, Kind};
use super::payload::EntryPayload;
use super::Envelope;

/// The protocol version this build speaks best, and puts in the envelopes
/// its node writes. See the [module docs](self) for what each version
/// added.
pub const PROTOCOL_VERSION: u32 = 3;

/// The oldest protocol version this build still speaks: a member of
/// version 2 and one of this build talk at version 2, so the members of a
/// cluster can be upgraded one at a time (a rolling upgrade).
pub const MIN_PROTOCOL_VERSION: u32 = 2;

/// The first version with drain notices, compaction floor records and the
/// range in the hello.
const DRAIN_AND_FLOOR: u32 = 3;

/// Whether members speaking `version` read compaction floor records (a
/// node pinned below it writes none).
pub(crate) fn has_floor_records(version: u32) -> bool {
    version >= DRAIN_AND_FLOOR
}

/// The protocol versions a member speaks: `min..=max`. A member's own
/// range ([`TcpConfig::protocol`](crate::transport::TcpConfig::protocol))
/// lies within what this build speaks
/// ([`MIN_PROTOCOL_VERSION`]..=[`PROTOCOL_VERSION`], the default); a
/// narrower one makes a member of this build behave as an older build on
/// the wire (`ProtocolRange::new(2, 2)`: a version 2 member), to pin a
/// cluster to the old version until every member runs the new build, or
/// to test a mixed cluster in one process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProtocolRange {
    min: u32,
    max: u32,
}

/// Why a [`ProtocolRange`] cannot be a member's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ProtocolRangeError {
    /// The lowest version is above the highest.
    #[error("protocol range {min}..={max} is empty: its lowest version is above its highest")]
    Empty {
        /// Its lowest version.
        min: u32,
        /// Its highest version.
        max: u32,
    },
    /// The range asks for versions this build does not speak.
    #[error("protocol range {min}..={max} is not within what this build speaks ({}..={}); pick versions within it", MIN_PROTOCOL_VERSION, PROTOCOL_VERSION)]
    Unsupported {
        /// Its lowest version.
        min: u32,
        /// Its highest version.
        max: u32,
    },
}

impl ProtocolRange {
    /// Everything this build speaks: [`MIN_PROTOCOL_VERSION`]..=[`PROTOCOL_VERSION`].
    pub const SUPPORTED: Self = Self {
        min: MIN_PROTOCOL_VERSION,
        max: PROTOCOL_VERSION,
    };

    /// The versions `min..=max`, which this build must speak.
    ///
    /// # Errors
    /// [`ProtocolRangeError::Empty`] when `min > max`,
    /// [`ProtocolRangeError::Unsupported`] when the range reaches outside
    /// [`ProtocolRange::SUPPORTED`].
    pub fn new(min: u32, max: u32) -> Result<Self, ProtocolRangeError> {
        if min > max {
            return Err(ProtocolRangeError::Empty { min, max });
        }
        if min < MIN_PROTOCOL_VERSION || max > PROTOCOL_VERSION {
            return Err(ProtocolRangeError::Unsupported { min, max });
        }
        Ok(Self { min, max })
    }

    /// What this build speaks, up to `max`: `ProtocolRange::up_to(2)` is
    /// a member that talks as a version 2 build does.
    ///
    /// # Errors
    /// As [`ProtocolRange::new`]`(MIN_PROTOCOL_VERSION, max)`.
    pub fn up_to(max: u32) -> Result<Self, ProtocolRangeError> {
        Self::new(MIN_PROTOCOL_VERSION, max)
    }

    /// A range a peer announced, whatever this build speaks (`min <= max`
    /// is the caller's to check).
    pub(crate) fn announced(min: u32, max: u32) -> Self {
        Self { min, max }
    }

    /// The lowest version.
    pub fn min(&self) -> u32 {
        self.min
    }

    /// The highest version.
    pub fn max(&self) -> u32 {
        self.max
    }

    /// Whether `version` is in the range.
    pub fn contains(&self, version: u32) -> bool {
        (self.min..=self.max).contains(&version)
    }

    /// The version two members with these ranges talk in: the highest
    /// both speak (`None` when the ranges do not overlap).
    pub fn common(&self, other: &Self) -> Option<u32> {
        let v = self.max.min(other.max);
        (v >= self.min.max(other.min)).then_some(v)
    }
}

impl Default for ProtocolRange {
    fn default() -> Self {
        Self::SUPPORTED
    }
}

impl fmt::Display for ProtocolRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.min == self.max {
            write!(f, "{}", self.min)
        } else {
            write!(f, "{}..={}", self.min, self.max)
        }
    }
}

/// What [`Envelope::for_version`] did to an envelope.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq)]
pub enum Downgraded {
    /// Sent as it is (only its version set).
    Unchanged(Envelope),
    /// Sent with its compaction floor records emptied (this many).
    FloorRecordsEmptied(Envelope, usize),
    /// Not sent: a drain notice, which the version does not have.
    DrainNoticeDropped,
}

impl Envelope {
    /// This envelope as a member speaking `version` may receive it: its
    /// version set to `version`, and below version 3 without what that
    /// version cannot read (see the [module docs](self)): a drain notice
    /// is dropped, and a compaction floor record in a raft message's
    /// entries is sent as an empty entry. An envelope whose raft payload
    /// does not parse is left as it is (its receiver refuses it as it
    /// would have).
    pub fn for_version(mut self, version: u32) -> Downgraded {
        self.version = version;
        if version >= DRAIN_AND_FLOOR {
            return Downgraded::Unchanged(self);
        }
        if is_drain(&self.control) {
            return Downgraded::DrainNoticeDropped;
        }
        match empty_floor_records(&self.raft) {
            Some((raft, n)) => {
                self.raft = raft;
                Downgraded::FloorRecordsEmptied(self, n)
            }
            None => Downgraded::Unchanged(self),
        }
    }
}

/// Whether control bytes are a drain notice. A [`Control`] is a oneof and
/// encodes as that one field, so its first byte is the field's key; the
/// bytes are decoded only then.
fn is_drain(control: &[u8]) -> bool {
    const DRAIN_KEY: u8 = 6 << 3 | 2; // field 6, length-delimited
    control.first() == Some(&DRAIN_KEY)
        && matches!(
            Control::decode(control),
            Ok(Control {
                kind: Some(Kind::Drain(_))
            })
        )
}

/// The raft message re-encoded with its compaction floor records emptied,
/// and how many, when it carries any (only appends and proposals carry
/// entries; others are not parsed).
fn empty_floor_records(raft: &[u8]) -> Option<(Vec<u8>, usize)> {
    use raft::eraftpb::{EntryType, Message, MessageType};
    const MSG_TYPE_KEY: u8 = 1 << 3; // field 1, varint: written first
    let with_entries = [MessageType::MsgAppend, MessageType::MsgPropose]
        .iter()
        .any(|&t| raft.starts_with(&[MSG_TYPE_KEY, t as u8]));
    if !with_entries {
        return None;
    }
    let mut msg = Message::parse_from_bytes(raft).ok()?;
    let mut n = 0;
    for e in msg.entries.iter_mut() {
        let floor = e.get_entry_type() == EntryType::EntryNormal
            && !e.data.is_empty()
            && EntryPayload::decode(&e.data[..]).is_ok_and(|p| p.keep_from.is_some());
        if floor {
            e.data = Vec::new().into();
            n += 1;
        }
    }
    if n == 0 {
        return None;
    }
    Some((msg.write_to_bytes().ok()?, n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::control::{DrainNotice, Probe};
    use raft::eraftpb::{Entry, Message, MessageType};

    #[test]
    fn the_highest_common_version_is_used_and_disjoint_ranges_have_none() {
        let r = |a, b| ProtocolRange::announced(a, b);
        assert_eq!(r(2, 3).common(&r(2, 2)), Some(2));
        assert_eq!(r(2, 3).common(&r(2, 3)), Some(3));
        assert_eq!(r(2, 3).common(&r(3, 4)), Some(3));
        assert_eq!(r(2, 2).common(&r(3, 4)), None);
        assert_eq!(r(3, 4).common(&r(1, 2)), None);
        assert_eq!(ProtocolRange::default(), r(2, 3));
        assert_eq!(r(2, 3).to_string(), "2..=3");
        assert_eq!(r(2, 2).to_string(), "2");
    }

    #[test]
    fn a_members_range_must_be_within_the_builds() {
        assert_eq!(
            ProtocolRange::up_to(2).unwrap(),
            ProtocolRange::announced(2, 2)
        );
        assert_eq!(
            ProtocolRange::new(3, 2),
            Err(ProtocolRangeError::Empty { min: 3, max: 2 })
        );
        for (min, max) in [(1, 3), (2, 4)] {
            let e = ProtocolRange::new(min, max).unwrap_err();
            assert_eq!(e, ProtocolRangeError::Unsupported { min, max });
            assert!(e.to_string().contains("2..=3"), "{e}");
        }
    }

    fn control(kind: Kind) -> Envelope {
        Envelope {
            version: PROTOCOL_VERSION,
            control: Control { kind: Some(kind) }.encode_to_vec(),
            ..Envelope::default()
        }
    }

    #[test]
    fn a_drain_notice_is_not_sent_below_version_3() {
        let drain = control(Kind::Drain(DrainNotice { drained: true }));
        assert_eq!(drain.clone().for_version(2), Downgraded::DrainNoticeDropped);
        let Downgraded::Unchanged(same) = drain.clone().for_version(3) else {
            panic!("a drain notice goes at version 3");
        };
        assert_eq!(same, drain);
        let probe = control(Kind::Probe(Probe {
            leader: 4,
            ..Probe::default()
        }));
        let Downgraded::Unchanged(sent) = probe.clone().for_version(2) else {
            panic!("a probe goes at version 2");
        };
        assert_eq!((sent.version, sent.control), (2, probe.control));
    }

    #[test]
    fn floor_records_go_empty_below_version_3_and_commands_unchanged() {
        let payload = |p: EntryPayload| p.encode_to_vec();
        let floor = payload(EntryPayload {
            keep_from: Some(7),
            ..EntryPayload::default()
        });
        let command = payload(EntryPayload {
            proposer: 1,
            boot: 1,
            seq: 1,
            command: b"set x".to_vec(),
            ..EntryPayload::default()
        });
        let mut m = Message::default();
        m.set_msg_type(MessageType::MsgAppend);
        m.entries = [command.clone(), floor, Vec::new()]
            .into_iter()
            .enumerate()
            .map(|(i, data)| Entry {
                index: 10 + i as u64,
                data: data.into(),
                ..Entry::default()
            })
            .collect::<Vec<_>>()
            .into();
        let env = Envelope::wrap(9, crate::ids::FIRST_EPOCH, &m);
        let Downgraded::FloorRecordsEmptied(sent, 1) = env.clone().for_version(2) else {
            panic!("one floor record emptied");
        };
        let got = sent.raft_message().unwrap();
        let data: Vec<&[u8]> = got.entries.iter().map(|e| &e.data[..]).collect();
        assert_eq!(data, [&command[..], &[], &[]]);
        assert_eq!(sent.version, 2);
        // At version 3 the record goes as it is.
        assert_eq!(
            env.clone().for_version(3),
            Downgraded::Unchanged(env.clone())
        );
        // Without a floor record, nothing is re-encoded.
        m.entries.truncate(1);
        let plain = Envelope::wrap(9, crate::ids::FIRST_EPOCH, &m);
        let Downgraded::Unchanged(sent) = plain.clone().for_version(2) else {
            panic!("no floor record");
        };
        assert_eq!(sent.raft, plain.raft);
    }
}
