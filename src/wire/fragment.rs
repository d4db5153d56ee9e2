//! Envelopes larger than a frame travel as a run of fragments, and the
//! receiving connection puts them back together.
//!
//! raft-rs sends a whole snapshot in one message, and a snapshot grows with
//! the application's state; a command may be large too. An envelope whose
//! payloads (its raft bytes plus its control bytes) are longer than the
//! fragment size ([`FRAGMENT_LEN`], 1 MiB) is sent as fragment envelopes.
//! Each carries the envelope's header (version, cluster, epoch and its
//! founder, sender, receiver), a [`Fragment`] naming the message, the
//! fragment's index and the payloads' lengths, and one piece of the
//! payloads: the raft bytes, then the control bytes, in order.
//!
//! The fragments of one message go consecutively on the one connection to
//! the peer, but whole envelopes may go between them (the transport lets a
//! heartbeat go between the fragments of a 500 MiB snapshot on a WAN):
//! [`Reassembler::push`] hands those on at once. A fragment that does not continue the message under
//! way (out of order, of another message before it finished, with another
//! header, empty, or past the announced length) is a typed error
//! ([`WireError::BadFragment`]); a message announcing more than the
//! message limit is refused on its first fragment, before any of it is
//! buffered ([`WireError::MessageTooLarge`]). Buffers grow as bytes arrive
//! (never from an announced length alone) and never past the announced,
//! checked length.
//!
//! [`Fragmenter`] cuts an envelope into fragment frames without copying its
//! payloads: each frame's header goes into the caller's buffer, and its
//! piece is a slice of the envelope, to be written right after it.

use prost::encoding::{encode_key, encode_varint, encoded_len_varint, key_len, WireType};
use prost::Message as _;

use super::{Envelope, Payload, WireError, FRAME_HEADER_LEN, MAX_FRAME_LEN};

/// Payload bytes one fragment carries at most (1 MiB): the most a
/// heartbeat waits behind on the connection. An envelope whose payloads
/// are longer travels as fragments.
pub const FRAGMENT_LEN: usize = 1 << 20;

/// The most a fragment envelope takes beyond its piece, in bytes: its
/// header's varints, the [`Fragment`], the piece's key and length.
pub const FRAGMENT_OVERHEAD: usize = 128;

/// The [`Envelope`] field holding a fragment's piece: the last on the wire.
const PIECE_TAG: u32 = 10;

/// What makes an [`Envelope`] a fragment of a larger one
/// ([`Envelope::fragment`]); its piece is in [`Envelope::piece`].
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Fragment {
    /// Which message; the sender numbers its fragmented messages on each
    /// connection.
    #[prost(uint64, tag = "1")]
    pub message: u64,
    /// Which piece of it, from 0.
    #[prost(uint32, tag = "2")]
    pub index: u32,
    /// Length of the whole message's raft payload.
    #[prost(uint64, tag = "3")]
    pub raft_len: u64,
    /// Length of the whole message's control payload.
    #[prost(uint64, tag = "4")]
    pub control_len: u64,
}

/// What is wrong with a fragment ([`WireError::BadFragment`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FragmentFault {
    /// Not the next fragment of its message (the first must be 0).
    #[error("out of order, fragment {expected} was due")]
    OutOfOrder {
        /// The index due.
        expected: u64,
    },
    /// Another message began before the one under way finished.
    #[error("message {pending} is unfinished; a message's fragments must be consecutive")]
    Interleaved {
        /// The message under way.
        pending: u64,
    },
    /// Its header (version, cluster, epoch, founder, sender, receiver) or
    /// the payload lengths it announces differ from the first fragment's.
    #[error("its header or announced lengths differ from the first fragment's")]
    HeaderChanged,
    /// It carries no bytes.
    #[error("it carries no bytes")]
    Empty,
    /// It brings the message past the length announced.
    #[error("it brings the message to {received} bytes, {announced} were announced")]
    Overrun {
        /// Payload bytes announced.
        announced: u64,
        /// Payload bytes with this fragment's.
        received: u64,
    },
    /// It carries a raft or control payload besides its piece.
    #[error("it carries a raft or control payload besides its piece")]
    PayloadBesidePiece,
}

/// Sends one envelope as fragment frames, in order, without copying its
/// payloads.
///
/// ```
/// use survivable_core::wire::{Envelope, FrameDecoder, Fragmenter, Reassembler};
/// let env = Envelope { from: 1, to: 2, raft: vec![7; 10_000], ..Envelope::default() };
/// let mut f = Fragmenter::new(env.clone(), 0, 4096);
/// let mut stream = Vec::new();
/// while let Some(piece) = f.next_fragment(&mut stream) {
///     // A transport writes the header, then the piece; here both go to `stream`.
///     stream.extend_from_slice(piece);
/// }
/// let (mut frames, mut messages) = (FrameDecoder::default(), Reassembler::new(1 << 20));
/// frames.push(&stream);
/// let mut got = None;
/// while let Some(e) = frames.next_envelope().unwrap() {
///     got = messages.push(e).unwrap();
/// }
/// assert_eq!(got, Some(env));
/// ```
#[derive(Debug)]
pub struct Fragmenter {
    env: Envelope,
    message: u64,
    piece_len: usize,
    index: u32,
    /// Payload bytes sent (raft, then control).
    at: usize,
}

impl Fragmenter {
    /// Cuts `env` into pieces of at most `piece_len` payload bytes (at
    /// least 1, at most what a frame holds beside the fragment header), as
    /// message number `message`. An envelope without payload bytes makes no
    /// fragments: send it whole.
    pub fn new(env: Envelope, message: u64, piece_len: usize) -> Self {
        Self {
            env,
            message,
            piece_len: piece_len.clamp(1, MAX_FRAME_LEN - FRAGMENT_OVERHEAD),
            index: 0,
            at: 0,
        }
    }

    /// The envelope being sent.
    pub fn envelope(&self) -> &Envelope {
        &self.env
    }

    /// Its payload bytes (raft and control): the message's length.
    pub fn len(&self) -> usize {
        self.env.raft.len() + self.env.control.len()
    }

    /// Whether it has no payload bytes (and so no fragments).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether every fragment has been handed out.
    pub fn is_done(&self) -> bool {
        self.at >= self.len()
    }

    /// Appends the next fragment's frame to `out`, all but its piece, and
    /// returns the piece, which must be written right after; `None` once
    /// every fragment was handed out.
    pub fn next_fragment(&mut self, out: &mut Vec<u8>) -> Option<&[u8]> {
        let raft_len = self.env.raft.len();
        let (payload, start) = if self.at < raft_len {
            (Payload::Raft, self.at)
        } else if self.at < self.len() {
            (Payload::Control, self.at - raft_len)
        } else {
            return None;
        };
        let whole = match payload {
            Payload::Raft => &self.env.raft,
            Payload::Control => &self.env.control,
        };
        let end = whole.len().min(start + self.piece_len);
        let n = end - start;
        let header = Envelope {
            version: self.env.version,
            cluster_id: self.env.cluster_id,
            epoch: self.env.epoch,
            epoch_founder: self.env.epoch_founder,
            from: self.env.from,
            to: self.env.to,
            fragment: Some(Fragment {
                message: self.message,
                index: self.index,
                raft_len: raft_len as u64,
                control_len: self.env.control.len() as u64,
            }),
            ..Envelope::default()
        };
        // The piece is the envelope's last field: the header's encoding,
        // then the piece's key and length, then the piece is the frame.
        let head = header.encoded_len() + key_len(PIECE_TAG) + encoded_len_varint(n as u64);
        out.reserve(FRAME_HEADER_LEN + head);
        out.extend_from_slice(&((head + n) as u32).to_be_bytes());
        header.encode(out).expect("a Vec grows to fit the encoding");
        encode_key(PIECE_TAG, WireType::LengthDelimited, out);
        encode_varint(n as u64, out);
        self.at += n;
        self.index += 1;
        Some(&whole[start..end])
    }

    /// Appends every fragment left, pieces included, to `out`.
    pub fn write_rest(&mut self, out: &mut Vec<u8>) {
        let mut header = Vec::new();
        while let Some(piece) = self.next_fragment(&mut header) {
            out.append(&mut header);
            out.extend_from_slice(piece);
        }
    }
}

/// The message under way on a connection.
#[derive(Debug)]
struct Partial {
    /// The first fragment, its piece taken.
    first: Envelope,
    message: u64,
    /// The index due next.
    next: u64,
    raft_len: usize,
    control_len: usize,
    raft: Vec<u8>,
    control: Vec<u8>,
}

impl Partial {
    fn received(&self) -> usize {
        self.raft.len() + self.control.len()
    }

    fn announced(&self) -> usize {
        self.raft_len + self.control_len
    }
}

/// Puts the fragmented messages of one connection back together; whole
/// envelopes pass straight through. Feed it every envelope the connection
/// delivers, in order, and close the connection on the first error (the
/// sender is broken or hostile).
///
/// An envelope whose payloads (raft bytes plus control bytes) are longer
/// than [`FRAGMENT_LEN`] travels as fragment envelopes, each repeating its
/// header (version, cluster, epoch and founder, sender, receiver), with a
/// [`Fragment`] (the message's number, the fragment's index, the payloads'
/// lengths) and a piece of the payloads, raft bytes first. The fragments
/// of one message come consecutively, numbered from 0; whole envelopes
/// may come between them (a heartbeat does not wait behind a snapshot) and
/// are handed on at once. Refused, with the message under way dropped:
/// a first fragment announcing more than the limit, before any of it is
/// buffered ([`WireError::MessageTooLarge`]); a fragment out of order, of
/// another message before the one under way finished, with another header
/// or announced lengths, empty, carrying a payload besides its piece, or
/// bringing the message past its announced length
/// ([`WireError::BadFragment`]); a whole message whose payloads would
/// decode too large ([`WireError::DecodedTooLarge`]).
///
/// It holds at most the announced length of the message under way, which
/// is at most its limit, and grows its buffers only as bytes arrive (at
/// most doubling them), never from an announced length alone.
#[derive(Debug)]
pub struct Reassembler {
    max_message: usize,
    pending: Option<Partial>,
}

impl Reassembler {
    /// A reassembler refusing messages of more than `max_message` payload
    /// bytes (see [`Limits::max_message`](crate::transport::Limits::max_message)).
    pub fn new(max_message: usize) -> Self {
        Self {
            max_message,
            pending: None,
        }
    }

    /// Takes the next envelope of the connection: a whole one comes back at
    /// once; a fragment is added to its message, which comes back with its
    /// last fragment.
    ///
    /// # Errors
    /// [`WireError::MessageTooLarge`] on a first fragment announcing more
    /// than the limit; [`WireError::BadFragment`] for a fragment that does
    /// not continue the message under way;
    /// [`WireError::MalformedEnvelope`] for a piece in an envelope that is
    /// not a fragment; [`WireError::DecodedTooLarge`] for a whole message
    /// whose payload would decode too large
    /// ([`Envelope::check_decoded_size`]). The message under way is
    /// dropped.
    pub fn push(&mut self, env: Envelope) -> Result<Option<Envelope>, WireError> {
        let Some(f) = env.fragment.clone() else {
            if !env.piece.is_empty() {
                self.pending = None;
                let why = format!(
                    "{} bytes of a piece in an envelope that is not a fragment",
                    env.piece.len()
                );
                return Err(WireError::MalformedEnvelope(why));
            }
            return Ok(Some(env));
        };
        let r = self.add(env, &f);
        if r.is_err() {
            self.pending = None;
        }
        r
    }

    fn add(&mut self, mut env: Envelope, f: &Fragment) -> Result<Option<Envelope>, WireError> {
        let from = env.from;
        let bad = |fault| WireError::BadFragment {
            from,
            message: f.message,
            index: f.index,
            fault,
        };
        let piece = std::mem::take(&mut env.piece);
        if !env.raft.is_empty() || !env.control.is_empty() {
            return Err(bad(FragmentFault::PayloadBesidePiece));
        }
        if piece.is_empty() {
            return Err(bad(FragmentFault::Empty));
        }
        match &self.pending {
            None if f.index != 0 => return Err(bad(FragmentFault::OutOfOrder { expected: 0 })),
            None => {
                let too_large = WireError::MessageTooLarge {
                    from,
                    message: f.message,
                    len: f.raft_len.saturating_add(f.control_len),
                    max: self.max_message,
                };
                let lens = usize::try_from(f.raft_len)
                    .ok()
                    .zip(f.control_len.try_into().ok());
                let Some((raft_len, control_len)) = lens else {
                    return Err(too_large);
                };
                if raft_len
                    .checked_add(control_len)
                    .is_none_or(|n| n > self.max_message)
                {
                    return Err(too_large);
                }
                self.pending = Some(Partial {
                    first: env,
                    message: f.message,
                    next: 0,
                    raft_len,
                    control_len,
                    raft: Vec::new(),
                    control: Vec::new(),
                });
            }
            Some(p) if p.message != f.message => {
                let pending = p.message;
                return Err(bad(FragmentFault::Interleaved { pending }));
            }
            Some(p) if p.next != u64::from(f.index) => {
                let expected = p.next;
                return Err(bad(FragmentFault::OutOfOrder { expected }));
            }
            Some(p) => {
                // Every field but the index as in the first fragment (the
                // pieces are taken out of both).
                env.fragment = Some(Fragment { index: 0, ..*f });
                if env != p.first {
                    return Err(bad(FragmentFault::HeaderChanged));
                }
            }
        }
        let p = self.pending.as_mut().expect("a message is under way");
        let received = p.received() + piece.len();
        if received > p.announced() {
            let announced = p.announced() as u64;
            let received = received as u64;
            return Err(bad(FragmentFault::Overrun {
                announced,
                received,
            }));
        }
        let to_raft = piece.len().min(p.raft_len - p.raft.len());
        grow(&mut p.raft, &piece[..to_raft], p.raft_len);
        grow(&mut p.control, &piece[to_raft..], p.control_len);
        p.next += 1;
        if received < p.announced() {
            return Ok(None);
        }
        let p = self.pending.take().expect("a message is under way");
        let whole = Envelope {
            raft: p.raft,
            control: p.control,
            fragment: None,
            ..p.first
        };
        whole.check_decoded_size(self.max_message)?;
        Ok(Some(whole))
    }

    /// The message under way: its number, the payload bytes received and
    /// those announced.
    pub fn in_progress(&self) -> Option<(u64, usize, usize)> {
        (self.pending.as_ref()).map(|p| (p.message, p.received(), p.announced()))
    }

    /// Bytes its buffers hold (their capacity): at most the announced
    /// length of the message under way.
    pub fn held(&self) -> usize {
        (self.pending.as_ref()).map_or(0, |p| p.raft.capacity() + p.control.capacity())
    }
}

/// Appends `bytes` to `buf`, growing it at most to double (as a `Vec`
/// does) but never past `cap`, which `buf.len() + bytes.len()` fits.
fn grow(buf: &mut Vec<u8>, bytes: &[u8], cap: usize) {
    let need = buf.len() + bytes.len();
    if need > buf.capacity() {
        let target = need.max(buf.capacity().saturating_mul(2)).min(cap);
        buf.reserve_exact(target - buf.len());
    }
    buf.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests;
