//! What travels between members: an [`Envelope`] (prost, no protoc) that
//! carries the protocol version, cluster id, epoch, sender and receiver, and
//! the raft message as bytes from raft's own protobuf codec.
//!
//! On a byte stream each message travels as a length-prefixed frame
//! ([`encode_frame`], [`FrameDecoder`]), after a [`Hello`] that names the
//! caller. Decoding never panics and never allocates more than
//! [`MAX_FRAME_LEN`].

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

    /// Decodes an envelope, refusing frames over [`MAX_FRAME_LEN`].
    ///
    /// # Errors
    /// [`WireError::FrameTooLarge`] or [`WireError::MalformedEnvelope`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, WireError> {
        if bytes.len() > MAX_FRAME_LEN {
            return Err(WireError::FrameTooLarge {
                len: bytes.len(),
                max: MAX_FRAME_LEN,
            });
        }
        Self::decode(bytes).map_err(|e| WireError::MalformedEnvelope(e.to_string()))
    }

    /// Decodes the raft message inside.
    ///
    /// # Errors
    /// [`WireError::MalformedRaft`] when the payload is not a raft message.
    pub fn raft_message(&self) -> Result<raft::eraftpb::Message, WireError> {
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
