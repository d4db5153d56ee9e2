//! What travels between members: an [`Envelope`] (prost, no protoc) that
//! carries the protocol version, cluster id, epoch, sender and receiver, and
//! the raft message as bytes from raft's own protobuf codec.
//!
//! On a byte stream each message travels as a length-prefixed frame
//! ([`encode_frame`], [`FrameDecoder`]), after a [`Hello`] that names the
//! caller. Decoding never panics and never allocates more than
//! [`MAX_FRAME_LEN`]: a frame is refused before it is buffered when its
//! length says it is larger, and a payload is refused before it is parsed
//! when a walk over its bytes shows that the structures it decodes to would
//! be larger ([`WireError::DecodedTooLarge`]: many tiny repeated elements,
//! each a whole struct in memory).

pub(crate) mod budget;
mod frame;

use prost::Message as _;
use protobuf::Message as _;
use thiserror::Error;

use crate::node::EpochId;

pub use frame::{encode_frame, FrameDecoder, Hello, FRAME_HEADER_LEN};

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// The largest encoded envelope accepted, in bytes (16 MiB).
pub const MAX_FRAME_LEN: usize = 16 << 20;

/// One message between two members.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Envelope {
    /// Protocol version of the sender.
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
    /// A payload within the frame limit would decode to more than the
    /// limit in memory (a flood of tiny repeated elements, each a whole
    /// struct once decoded). Nothing was parsed; the sender is broken or
    /// hostile, close its connection.
    #[error("{payload} from node {from} would take about {estimate} bytes once decoded, over the {max}-byte limit; refused unparsed")]
    DecodedTooLarge {
        /// Claimed sender.
        from: u64,
        /// Which payload.
        payload: Payload,
        /// What decoding it would take, estimated from its bytes.
        estimate: usize,
        /// The limit ([`MAX_FRAME_LEN`]).
        max: usize,
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
        }
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

    /// Decodes an envelope, refusing frames over [`MAX_FRAME_LEN`] and
    /// envelopes whose raft or control payload would decode to more than
    /// that (so whoever parses them later never has to).
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
        env.within_budget(Payload::Raft)?;
        env.within_budget(Payload::Control)?;
        Ok(env)
    }

    /// Checks that a payload decodes to at most [`MAX_FRAME_LEN`] bytes in
    /// memory, without parsing it.
    fn within_budget(&self, payload: Payload) -> Result<(), WireError> {
        let estimate = match payload {
            Payload::Raft => budget::decoded_size(&self.raft, &budget::RAFT_MESSAGE),
            Payload::Control => budget::decoded_size(&self.control, &budget::CONTROL),
        };
        if estimate > MAX_FRAME_LEN {
            return Err(WireError::DecodedTooLarge {
                from: self.from,
                payload,
                estimate,
                max: MAX_FRAME_LEN,
            });
        }
        Ok(())
    }

    /// Decodes the raft message inside, unless it would take more than
    /// [`MAX_FRAME_LEN`] bytes in memory.
    ///
    /// # Errors
    /// [`WireError::MalformedRaft`] when the payload is not a raft message,
    /// [`WireError::DecodedTooLarge`] when it would decode too large.
    pub fn raft_message(&self) -> Result<raft::eraftpb::Message, WireError> {
        self.within_budget(Payload::Raft)?;
        raft::eraftpb::Message::parse_from_bytes(&self.raft).map_err(|e| WireError::MalformedRaft {
            from: self.from,
            reason: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::eraftpb::{Entry, Message, MessageType};

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
        let env = Envelope::wrap(9, crate::node::FIRST_EPOCH, &m);
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
            let env = Envelope::wrap(9, crate::node::FIRST_EPOCH, &m);
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
