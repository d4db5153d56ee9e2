//! What travels between members: an [`Envelope`] (prost, no protoc) that
//! carries the protocol version, cluster id, epoch, sender and receiver, and
//! the raft message as bytes from raft's own protobuf codec.
//!
//! On a byte stream each message travels as a length-prefixed frame
//! ([`encode_frame`], [`FrameDecoder`]), after a [`Hello`] that names the
//! caller. Decoding never panics and never allocates more than
//! [`MAX_FRAME_LEN`] for a frame: a frame is refused before it is buffered
//! when its length says it is larger, and a payload is refused before it is
//! parsed when a walk over its bytes shows that the structures it decodes
//! to would be larger ([`WireError::DecodedTooLarge`]: many tiny repeated
//! elements, each a whole struct in memory).
//!
//! A larger envelope (a snapshot grows with the application's state)
//! travels as a run of fragments, which the receiving connection
//! reassembles up to its message limit ([`Fragmenter`]; [`Reassembler`]
//! states the rules). A reassembled payload may decode to a frame's worth,
//! or to twice its own length, but never to more than the message limit
//! ([`Envelope::check_decoded_size`]).
//!
//! Members of different builds talk in the highest protocol version both
//! speak, agreed in the hello ([`ProtocolRange`]; [`version`]
//! lists what each version added and what a newer member leaves out
//! towards an older one), so a cluster is upgraded one member at a time.

pub(crate) mod budget;
pub(crate) mod control;
mod fragment;
mod frame;
pub(crate) mod payload;
pub mod version;

use prost::Message as _;
use protobuf::Message as _;
use thiserror::Error;

use crate::ids::EpochId;

pub use fragment::{
    Fragment, FragmentFault, Fragmenter, Reassembler, FRAGMENT_LEN, FRAGMENT_OVERHEAD,
};
pub use frame::{encode_frame, FrameDecoder, Hello, HelloFingerprint, FRAME_HEADER_LEN};
pub use version::{
    Downgraded, ProtocolRange, ProtocolRangeError, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION,
};

/// The largest encoded envelope accepted in one frame, in bytes (16 MiB).
/// Larger envelopes travel as fragments.
pub const MAX_FRAME_LEN: usize = 16 << 20;

/// The default message limit, in payload bytes (1 GiB): the largest
/// envelope sent or reassembled from fragments
/// ([`Limits::max_message`](crate::transport::Limits::max_message)).
pub const DEFAULT_MAX_MESSAGE_LEN: usize = 1 << 30;

/// One message between two members.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Envelope {
    /// The protocol version agreed for the connection it travels on (the
    /// node writes [`PROTOCOL_VERSION`]; the transport sets the version of
    /// the connection, see [`Envelope::for_version`]).
    #[prost(uint32, tag = "1")]
    pub version: u32,
    /// Cluster id; a member drops envelopes of other clusters.
    #[prost(uint64, tag = "2")]
    pub cluster_id: u64,
    /// The sender's epoch; envelopes of another epoch are never stepped into raft.
    #[prost(uint64, tag = "3")]
    pub epoch: u64,
    /// Sender node id.
    #[prost(uint64, tag = "4")]
    pub from: u64,
    /// Receiver node id.
    #[prost(uint64, tag = "5")]
    pub to: u64,
    /// A `raft::eraftpb::Message`, encoded with raft's protobuf codec
    /// (empty when the envelope carries a control message).
    #[prost(bytes = "vec", tag = "6")]
    pub raft: Vec<u8>,
    /// The founder of the sender's epoch (0 for the first epoch): with
    /// `epoch`, which history the sender is in.
    #[prost(uint64, tag = "7")]
    pub epoch_founder: u64,
    /// A library control message (reachability probes, epoch notices,
    /// reconciliation), when non-empty; these cross epochs.
    #[prost(bytes = "vec", tag = "8")]
    pub control: Vec<u8>,
    /// Set when this envelope is one fragment of a larger one (whose header
    /// it repeats); its payload bytes are in [`piece`](Self::piece) and
    /// `raft` and `control` are empty. A transport reassembles fragments
    /// ([`Reassembler`]); the node never sees one.
    #[prost(message, optional, tag = "9")]
    pub fragment: Option<Fragment>,
    /// A fragment's piece of the whole envelope's payloads (its raft
    /// bytes, then its control bytes). The last field on the wire, so a
    /// sender writes it from the whole envelope without copying
    /// ([`Fragmenter`]).
    #[prost(bytes = "vec", tag = "10")]
    pub piece: Vec<u8>,
}

/// Why bytes or an envelope were refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum WireError {
    /// The frame is larger than [`MAX_FRAME_LEN`].
    #[error("frame of {len} bytes exceeds the {max}-byte limit")]
    FrameTooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The bytes are not an envelope.
    #[error("malformed envelope: {0}")]
    MalformedEnvelope(String),
    /// The first frame of a connection is not a [`Hello`].
    #[error("malformed hello: {0}")]
    MalformedHello(String),
    /// The stream ended in the middle of a frame.
    #[error("stream ended with {have} bytes of an unfinished frame")]
    Truncated {
        /// Bytes of the partial frame.
        have: usize,
    },
    /// The envelope's raft payload does not decode.
    #[error("malformed raft message from node {from}: {reason}")]
    MalformedRaft {
        /// Claimed sender.
        from: u64,
        /// Decoder's reason.
        reason: String,
    },
    /// A payload would decode to more than its budget in memory (a flood
    /// of tiny repeated elements, each a whole struct once decoded): the
    /// frame limit, or for a reassembled payload larger than a frame twice
    /// its length, up to the message limit
    /// ([`Envelope::check_decoded_size`]). Nothing was parsed; the sender
    /// is broken or hostile, close its connection.
    #[error("{payload} from node {from} would take about {estimate} bytes once decoded, over its {max}-byte budget; refused unparsed")]
    DecodedTooLarge {
        /// Claimed sender.
        from: u64,
        /// Which payload.
        payload: Payload,
        /// What decoding it would take, estimated from its bytes.
        estimate: usize,
        /// The budget it exceeds.
        max: usize,
    },
    /// The first fragment of a message announces more payload bytes than
    /// the message limit. Nothing of it was buffered. If the application's
    /// snapshots (or commands) really are this large, raise
    /// [`Limits::max_message`](crate::transport::Limits::max_message) at
    /// every member.
    #[error("node {from} announced message {message} of {len} bytes, over the {max}-byte message limit; refused before buffering (if snapshots are this large, raise Limits::max_message at every member)")]
    MessageTooLarge {
        /// Claimed sender.
        from: u64,
        /// The sender's number of the message.
        message: u64,
        /// The payload bytes announced.
        len: u64,
        /// The limit.
        max: usize,
    },
    /// A fragment does not continue the message under way on its
    /// connection as a sender must write it (see [`FragmentFault`]). The
    /// message is dropped; the sender is broken or hostile, close its
    /// connection.
    #[error("fragment {index} of message {message} from node {from}: {fault}; the sender is broken or hostile")]
    BadFragment {
        /// Claimed sender.
        from: u64,
        /// The message it names.
        message: u64,
        /// Its index.
        index: u32,
        /// What is wrong.
        fault: FragmentFault,
    },
    /// An envelope carries another protocol version than the one agreed
    /// for its connection in the hello. The sender is broken or hostile;
    /// the connection is closed.
    #[error("envelope from node {from} in protocol version {got}, but its connection agreed on {agreed}")]
    VersionNotAgreed {
        /// Claimed sender.
        from: u64,
        /// The envelope's version.
        got: u32,
        /// The connection's.
        agreed: u32,
    },
}

/// The payloads an [`Envelope`] carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Payload {
    /// The raft message ([`Envelope::raft`]).
    Raft,
    /// The control message ([`Envelope::control`]).
    Control,
}

impl std::fmt::Display for Payload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Raft => "raft message",
            Self::Control => "control message",
        })
    }
}

impl Envelope {
    /// Wraps a raft message.
    pub(crate) fn wrap(cluster_id: u64, epoch: EpochId, msg: &raft::eraftpb::Message) -> Self {
        Self {
            version: PROTOCOL_VERSION,
            cluster_id,
            epoch: epoch.number,
            epoch_founder: epoch.founder.0,
            from: msg.from,
            to: msg.to,
            raft: msg
                .write_to_bytes()
                .expect("encoding a raft message into a Vec cannot fail"),
            control: Vec::new(),
            fragment: None,
            piece: Vec::new(),
        }
    }

    /// Whether the raft payload is a `MsgSnapshot`, read from its first
    /// field without parsing it (raft's codec writes the message type
    /// first). A transport may let other envelopes overtake a snapshot:
    /// raft sends a peer nothing else that depends on it while it waits
    /// for one.
    pub fn carries_snapshot(&self) -> bool {
        const MSG_TYPE_KEY: u8 = 1 << 3; // field 1, varint
        let snapshot = raft::eraftpb::MessageType::MsgSnapshot as u8;
        self.raft.starts_with(&[MSG_TYPE_KEY, snapshot])
    }

    /// The sender's epoch.
    pub fn epoch_id(&self) -> EpochId {
        EpochId {
            number: self.epoch,
            founder: crate::topology::NodeId(self.epoch_founder),
        }
    }

    /// Encodes the envelope.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.encode_to_vec()
    }

    /// Decodes an envelope from one frame, refusing frames over
    /// [`MAX_FRAME_LEN`] and envelopes whose raft or control payload would
    /// decode to more than that (so whoever parses them later never has
    /// to). A fragment decodes as an envelope too: give it to a
    /// [`Reassembler`].
    ///
    /// # Errors
    /// [`WireError::FrameTooLarge`], [`WireError::MalformedEnvelope`] or
    /// [`WireError::DecodedTooLarge`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, WireError> {
        if bytes.len() > MAX_FRAME_LEN {
            return Err(WireError::FrameTooLarge {
                len: bytes.len(),
                max: MAX_FRAME_LEN,
            });
        }
        let env = Self::decode(bytes).map_err(|e| WireError::MalformedEnvelope(e.to_string()))?;
        env.check_decoded_size(MAX_FRAME_LEN)?;
        Ok(env)
    }

    /// Checks, without parsing them, that the raft and the control payload
    /// each decode within their budget: a payload that fits a frame to at
    /// most [`MAX_FRAME_LEN`] bytes in memory; a larger one (only a
    /// message reassembled from fragments carries one) to at most twice its
    /// own length, and never more than `max_message`. Legitimate payloads
    /// take about their length (a snapshot is mostly one byte string);
    /// structures of a few bytes each that would multiply it are refused.
    ///
    /// # Errors
    /// [`WireError::DecodedTooLarge`] naming the payload.
    pub fn check_decoded_size(&self, max_message: usize) -> Result<(), WireError> {
        self.within_budget(Payload::Raft, max_message)?;
        self.within_budget(Payload::Control, max_message)
    }

    fn within_budget(&self, payload: Payload, max_message: usize) -> Result<(), WireError> {
        let (bytes, schema, rate) = match payload {
            Payload::Raft => (&self.raft, &budget::RAFT_MESSAGE, budget::RAFT_MESSAGE_RATE),
            Payload::Control => (&self.control, &budget::CONTROL, budget::CONTROL_RATE),
        };
        let max = decode_budget(bytes.len(), max_message);
        if budget::decoded_size_bound(bytes.len(), rate) <= max {
            // Too short to exceed the budget whatever its bytes: the walk
            // below would pass it (most messages: some KiB at most).
            return Ok(());
        }
        let estimate = budget::decoded_size(bytes, schema);
        if estimate > max {
            return Err(WireError::DecodedTooLarge {
                from: self.from,
                payload,
                estimate,
                max,
            });
        }
        Ok(())
    }

    /// Decodes the raft message inside, unless it would take more than its
    /// budget in memory: [`MAX_FRAME_LEN`], or for a payload larger than a
    /// frame (reassembled from fragments, and checked against the message
    /// limit there) twice its length.
    ///
    /// # Errors
    /// [`WireError::MalformedRaft`] when the payload is not a raft message,
    /// [`WireError::DecodedTooLarge`] when it would decode too large.
    pub fn raft_message(&self) -> Result<raft::eraftpb::Message, WireError> {
        self.within_budget(Payload::Raft, usize::MAX)?;
        raft::eraftpb::Message::parse_from_bytes(&self.raft).map_err(|e| WireError::MalformedRaft {
            from: self.from,
            reason: e.to_string(),
        })
    }
}

/// What a payload of `len` bytes may take in memory once decoded (see
/// [`Envelope::check_decoded_size`]).
fn decode_budget(len: usize, max_message: usize) -> usize {
    if len <= MAX_FRAME_LEN {
        MAX_FRAME_LEN
    } else {
        len.saturating_mul(2).min(max_message).max(MAX_FRAME_LEN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::eraftpb::{Entry, Message, MessageType};

    #[test]
    fn snapshots_are_told_apart_unparsed() {
        let mut m = Message::default();
        for (t, snapshot) in [
            (MessageType::MsgSnapshot, true),
            (MessageType::MsgAppend, false),
            (MessageType::MsgHeartbeat, false),
            (MessageType::MsgHup, false),
        ] {
            m.set_msg_type(t);
            m.mut_snapshot().data = vec![7; 10].into();
            let env = Envelope::wrap(9, crate::ids::FIRST_EPOCH, &m);
            assert_eq!(env.carries_snapshot(), snapshot, "{t:?}");
        }
        assert!(!Envelope::default().carries_snapshot());
    }

    #[test]
    fn round_trip() {
        let mut m = Message::default();
        m.set_msg_type(MessageType::MsgAppend);
        m.from = 1;
        m.to = 2;
        m.term = 7;
        let e = Entry {
            index: 3,
            data: b"call-42".to_vec().into(),
            ..Default::default()
        };
        m.entries = vec![e].into();
        let env = Envelope::wrap(9, crate::ids::FIRST_EPOCH, &m);
        let back = Envelope::from_bytes(&env.to_bytes()).unwrap();
        assert_eq!(back, env);
        assert_eq!(back.raft_message().unwrap(), m);
    }

    /// `bytes` as a length-delimited field `field`.
    fn delimited(field: u8, bytes: &[u8]) -> Vec<u8> {
        let mut out = vec![field << 3 | 2];
        let mut len = bytes.len() as u64;
        while len >= 0x80 {
            out.push(len as u8 | 0x80);
            len >>= 7;
        }
        out.push(len as u8);
        out.extend_from_slice(bytes);
        out
    }

    fn from_peer(raft: Vec<u8>, control: Vec<u8>) -> Envelope {
        Envelope {
            version: PROTOCOL_VERSION,
            cluster_id: 9,
            from: 4,
            to: 2,
            raft,
            control,
            ..Envelope::default()
        }
    }

    /// A frame of `3a 00` pairs (empty entries in field 7) is refused
    /// unparsed, by the frame decoder and by `raft_message`: parsed, the
    /// 16 MiB would be ~8 million `Entry` structs.
    #[test]
    fn empty_entries_flooding_a_frame_are_refused_unparsed() {
        let pairs = (MAX_FRAME_LEN - 64) / 2;
        let env = from_peer([0x3a, 0x00].repeat(pairs), Vec::new());
        let mut stream = Vec::new();
        encode_frame(&env, &mut stream).unwrap();
        let mut dec = FrameDecoder::default();
        dec.push(&stream);
        let want = pairs * 2 + pairs * size_of::<Entry>();
        let refused = WireError::DecodedTooLarge {
            from: 4,
            payload: Payload::Raft,
            estimate: want,
            max: MAX_FRAME_LEN,
        };
        assert_eq!(dec.next_envelope(), Err(refused.clone()));
        assert_eq!(env.raft_message(), Err(refused.clone()));
        println!(
            "{pairs} empty entries: {} MiB of structs refused: {refused}",
            want >> 20
        );
        // Just below the limit, the same flood parses.
        let fits = MAX_FRAME_LEN / (2 + size_of::<Entry>());
        let env = from_peer([0x3a, 0x00].repeat(fits), Vec::new());
        assert_eq!(env.raft_message().unwrap().entries.len(), fits);
    }

    /// What raft actually sends, large: a full-size append of small
    /// commands (raft's `max_size_per_msg` is 1 MiB here) and an append of
    /// large commands filling most of a frame.
    #[test]
    fn legitimate_large_appends_pass() {
        let append = |n: u64, size: usize| {
            let mut m = Message::default();
            m.set_msg_type(MessageType::MsgAppend);
            (m.from, m.to, m.term, m.index, m.log_term) = (4, 2, 3, 1000, 3);
            m.entries = (0..n)
                .map(|i| Entry {
                    index: 1001 + i,
                    term: 3,
                    data: vec![i as u8; size].into(),
                    ..Default::default()
                })
                .collect::<Vec<_>>()
                .into();
            m
        };
        for (n, size) in [(40_000, 20), (15, 1 << 20)] {
            let m = append(n, size);
            let env = Envelope::wrap(9, crate::ids::FIRST_EPOCH, &m);
            let back = Envelope::from_bytes(&env.to_bytes()).unwrap();
            assert_eq!(back.raft_message().unwrap(), m, "{n} entries of {size}");
        }
    }

    /// The control messages' repeated fields are covered too: a divergent
    /// suffix of empty raft entries, a notice of empty lineage records.
    #[test]
    fn control_floods_are_refused_unparsed() {
        let n = (MAX_FRAME_LEN - 64) / 2;
        for (kind, element) in [(4, [0x22, 0x00]), (3, [0x0a, 0x00])] {
            let control = delimited(kind, &element.repeat(n));
            let env = from_peer(Vec::new(), control);
            let r = Envelope::from_bytes(&env.to_bytes());
            assert!(
                matches!(
                    r,
                    Err(WireError::DecodedTooLarge {
                        payload: Payload::Control,
                        ..
                    })
                ),
                "kind {kind}: {r:?}"
            );
        }
        // A real notice passes.
        let notice = delimited(3, &delimited(1, &[0x08, 0x02, 0x10, 0x03]));
        assert!(Envelope::from_bytes(&from_peer(Vec::new(), notice).to_bytes()).is_ok());
    }

    #[test]
    fn garbage_is_a_typed_error() {
        assert!(matches!(
            Envelope::from_bytes(&[0xff, 0xff, 0xff]),
            Err(WireError::MalformedEnvelope(_))
        ));
        let env = Envelope {
            raft: vec![0x0a, 0xff],
            ..Envelope::default()
        };
        assert!(matches!(
            env.raft_message(),
            Err(WireError::MalformedRaft { .. })
        ));
        let big = vec![0u8; MAX_FRAME_LEN + 1];
        assert!(matches!(
            Envelope::from_bytes(&big),
            Err(WireError::FrameTooLarge { .. })
        ));
    }
}
