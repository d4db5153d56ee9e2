//! Length-prefixed framing for byte streams (TCP): a 4-byte big-endian
//! length, then that many bytes of one prost message. A connection opens
//! with a [`Hello`] frame; every later frame is one [`Envelope`].
//!
//! [`FrameDecoder`] takes bytes as they arrive and hands out whole frames.
//! It refuses a frame whose announced length exceeds its limit before
//! buffering any of it, so a peer can never make it allocate more than the
//! limit (plus one read's worth of bytes).

use prost::Message as _;

use super::{Envelope, ProtocolRange, WireError, MAX_FRAME_LEN};
use crate::topology::{Fingerprint, Section};

/// Bytes of the length prefix.
pub const FRAME_HEADER_LEN: usize = 4;

/// The first frame on every connection: who is calling, for which cluster,
/// in which protocol versions. The receiver checks it before reading
/// anything else, and answers with its own.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Hello {
    /// The lowest protocol version the sender speaks (a member older than
    /// version 3 reads only this field, and refuses any version but its
    /// own). Both sides announce their range (see [`Hello::range`]) and
    /// use the highest version both speak.
    #[prost(uint32, tag = "1")]
    pub version: u32,
    /// Cluster id of the caller.
    #[prost(uint64, tag = "2")]
    pub cluster_id: u64,
    /// The calling node.
    #[prost(uint64, tag = "3")]
    pub from: u64,
    /// The node it means to reach.
    #[prost(uint64, tag = "4")]
    pub to: u64,
    /// The sender's [topology fingerprint](crate::topology::Topology::fingerprint):
    /// a member refuses a member whose fingerprint differs from its own
    /// (both ways: the caller's hello and the answer). Absent from hellos
    /// of tools that carry no topology (a
    /// [`Dialer`](crate::transport::Dialer) by default), which are then
    /// not compared.
    #[prost(message, optional, tag = "5")]
    pub fingerprint: Option<HelloFingerprint>,
    /// The highest protocol version the sender speaks; 0 (absent) from
    /// members older than version 3, which speak only `version`.
    #[prost(uint32, tag = "6")]
    pub max_version: u32,
}

/// A [`Fingerprint`] on the wire: one digest per section.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct HelloFingerprint {
    /// [`Fingerprint::quorum_mode`].
    #[prost(fixed64, tag = "1")]
    pub quorum_mode: u64,
    /// [`Fingerprint::sites`].
    #[prost(fixed64, tag = "2")]
    pub sites: u64,
    /// [`Fingerprint::main_site`].
    #[prost(fixed64, tag = "3")]
    pub main_site: u64,
    /// [`Fingerprint::voters`].
    #[prost(fixed64, tag = "4")]
    pub voters: u64,
    /// [`Fingerprint::learners`].
    #[prost(fixed64, tag = "5")]
    pub learners: u64,
    /// [`Fingerprint::cores`].
    #[prost(fixed64, tag = "6")]
    pub cores: u64,
    /// [`Fingerprint::members`].
    #[prost(fixed64, tag = "7")]
    pub members: u64,
    /// [`Fingerprint::timers`].
    #[prost(fixed64, tag = "8")]
    pub timers: u64,
    /// [`Fingerprint::hand_back`].
    #[prost(fixed64, tag = "9")]
    pub hand_back: u64,
}

impl From<Fingerprint> for HelloFingerprint {
    fn from(f: Fingerprint) -> Self {
        Self {
            quorum_mode: f.quorum_mode,
            sites: f.sites,
            main_site: f.main_site,
            voters: f.voters,
            learners: f.learners,
            cores: f.cores,
            members: f.members,
            timers: f.timers,
            hand_back: f.hand_back,
        }
    }
}

impl From<HelloFingerprint> for Fingerprint {
    fn from(f: HelloFingerprint) -> Self {
        Self {
            quorum_mode: f.quorum_mode,
            sites: f.sites,
            main_site: f.main_site,
            voters: f.voters,
            learners: f.learners,
            cores: f.cores,
            members: f.members,
            timers: f.timers,
            hand_back: f.hand_back,
        }
    }
}

impl Hello {
    /// A hello from `from` to `to` in `cluster_id`, announcing every
    /// version this build speaks ([`ProtocolRange::SUPPORTED`]).
    pub fn new(cluster_id: u64, from: u64, to: u64) -> Self {
        Self {
            version: ProtocolRange::SUPPORTED.min(),
            cluster_id,
            from,
            to,
            fingerprint: None,
            max_version: ProtocolRange::SUPPORTED.max(),
        }
    }

    /// The same hello announcing `range` instead.
    pub fn with_range(self, range: ProtocolRange) -> Self {
        Self {
            version: range.min(),
            max_version: range.max(),
            ..self
        }
    }

    /// The versions the sender announced: `version..=max_version`, or
    /// only `version` when `max_version` is absent (a member older than
    /// version 3).
    ///
    /// # Errors
    /// [`WireError::MalformedHello`] when `max_version` is set and below
    /// `version`.
    pub fn range(&self) -> Result<ProtocolRange, WireError> {
        match self.max_version {
            0 => Ok(ProtocolRange::announced(self.version, self.version)),
            max if max < self.version => Err(WireError::MalformedHello(format!(
                "max_version {max} below version {}",
                self.version
            ))),
            max => Ok(ProtocolRange::announced(self.version, max)),
        }
    }

    /// The same hello carrying `fingerprint` (`None`: none).
    pub fn with_fingerprint(self, fingerprint: Option<Fingerprint>) -> Self {
        Self {
            fingerprint: fingerprint.map(HelloFingerprint::from),
            ..self
        }
    }

    /// The sections in which `ours` differs from the fingerprint this
    /// hello carries: empty when they agree, or when this hello or `ours`
    /// carries none.
    pub fn differences(&self, ours: Option<&Fingerprint>) -> Vec<Section> {
        match (self.fingerprint, ours) {
            (Some(theirs), Some(ours)) => ours.differences(&theirs.into()),
            _ => Vec::new(),
        }
    }

    /// Decodes a hello frame's payload.
    ///
    /// # Errors
    /// [`WireError::MalformedHello`] when the bytes are not a hello.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, WireError> {
        Self::decode(bytes).map_err(|e| WireError::MalformedHello(e.to_string()))
    }
}

/// Appends `msg` as one frame to `out`.
///
/// # Errors
/// [`WireError::FrameTooLarge`] when the encoded message exceeds
/// [`MAX_FRAME_LEN`]; `out` is unchanged.
pub fn encode_frame(msg: &impl prost::Message, out: &mut Vec<u8>) -> Result<(), WireError> {
    let len = msg.encoded_len();
    if len > MAX_FRAME_LEN {
        return Err(WireError::FrameTooLarge {
            len,
            max: MAX_FRAME_LEN,
        });
    }
    out.reserve(FRAME_HEADER_LEN + len);
    out.extend_from_slice(&(len as u32).to_be_bytes());
    msg.encode(out)
        .expect("a Vec grows to fit the reserved length");
    Ok(())
}

/// Splits a byte stream into frames, within a size limit.
#[derive(Debug)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    start: usize,
    max: usize,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new(MAX_FRAME_LEN)
    }
}

impl FrameDecoder {
    /// A decoder refusing frames longer than `max_frame` bytes (at most
    /// [`MAX_FRAME_LEN`]).
    pub fn new(max_frame: usize) -> Self {
        Self {
            buf: Vec::new(),
            start: 0,
            max: max_frame.min(MAX_FRAME_LEN),
        }
    }

    /// Adds bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes received and not yet handed out as a frame.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// The next whole frame's payload, if one has arrived.
    ///
    /// # Errors
    /// [`WireError::FrameTooLarge`] as soon as a length prefix exceeds the
    /// limit; the stream cannot be trusted after that, close it.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, WireError> {
        let avail = &self.buf[self.start..];
        let Some(header) = avail.get(..FRAME_HEADER_LEN) else {
            return Ok(None);
        };
        let len = u32::from_be_bytes(header.try_into().expect("4 bytes")) as usize;
        if len > self.max {
            return Err(WireError::FrameTooLarge { len, max: self.max });
        }
        let Some(payload) = avail.get(FRAME_HEADER_LEN..FRAME_HEADER_LEN + len) else {
            return Ok(None);
        };
        let frame = payload.to_vec();
        self.start += FRAME_HEADER_LEN + len;
        if self.start > 64 << 10 && self.start * 2 > self.buf.len() {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        Ok(Some(frame))
    }

    /// The next whole frame, decoded as an [`Envelope`].
    ///
    /// # Errors
    /// [`WireError::FrameTooLarge`] or [`WireError::MalformedEnvelope`].
    pub fn next_envelope(&mut self) -> Result<Option<Envelope>, WireError> {
        match self.next_frame()? {
            Some(bytes) => Envelope::from_bytes(&bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Checks the stream ended on a frame boundary.
    ///
    /// # Errors
    /// [`WireError::Truncated`] when part of a frame is left over.
    pub fn finish(&self) -> Result<(), WireError> {
        match self.buffered() {
            0 => Ok(()),
            have => Err(WireError::Truncated { have }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck::quickcheck;

    use crate::wire::PROTOCOL_VERSION;

    fn env(n: u64, payload: usize) -> Envelope {
        Envelope {
            version: PROTOCOL_VERSION,
            cluster_id: 7,
            epoch: 1,
            from: n,
            to: n + 1,
            raft: vec![n as u8; payload],
            ..Envelope::default()
        }
    }

    #[test]
    fn frames_survive_any_chunking() {
        let sent: Vec<Envelope> = (0..20).map(|n| env(n, (n * 37) as usize)).collect();
        let mut stream = Vec::new();
        encode_frame(&Hello::new(7, 1, 2), &mut stream).unwrap();
        for e in &sent {
            encode_frame(e, &mut stream).unwrap();
        }
        for chunk in [1, 3, 7, 64, stream.len()] {
            let mut d = FrameDecoder::default();
            let mut got = Vec::new();
            let mut hello = None;
            for piece in stream.chunks(chunk) {
                d.push(piece);
                if hello.is_none() {
                    if let Some(f) = d.next_frame().unwrap() {
                        hello = Some(Hello::from_bytes(&f).unwrap());
                    }
                }
                if hello.is_some() {
                    while let Some(e) = d.next_envelope().unwrap() {
                        got.push(e);
                    }
                }
            }
            assert_eq!(hello, Some(Hello::new(7, 1, 2)));
            assert_eq!(got, sent, "chunk {chunk}");
            d.finish().unwrap();
        }
    }

    #[test]
    fn an_oversized_frame_is_refused_before_it_is_buffered() {
        let mut d = FrameDecoder::new(1024);
        d.push(&(1_000_000u32).to_be_bytes());
        assert_eq!(
            d.next_frame(),
            Err(WireError::FrameTooLarge {
                len: 1_000_000,
                max: 1024
            })
        );
        assert_eq!(d.buffered(), 4);
        let mut out = Vec::new();
        assert!(matches!(
            encode_frame(&env(1, MAX_FRAME_LEN), &mut out),
            Err(WireError::FrameTooLarge { .. })
        ));
        assert!(out.is_empty());
    }

    #[test]
    fn a_truncated_stream_is_reported() {
        let mut stream = Vec::new();
        encode_frame(&env(3, 100), &mut stream).unwrap();
        let mut d = FrameDecoder::default();
        d.push(&stream[..50]);
        assert_eq!(d.next_frame(), Ok(None));
        assert_eq!(d.finish(), Err(WireError::Truncated { have: 50 }));
    }

    /// The fingerprint travels in the hello, and a hello compares it with
    /// this member's: only when both carry one.
    #[test]
    fn the_fingerprint_travels_in_the_hello_and_names_what_differs() {
        use crate::topology::denver_paris;
        let ours = denver_paris().build().unwrap().fingerprint();
        let mut theirs = ours;
        theirs.voters ^= 1;
        theirs.timers ^= 1;
        let mut bytes = Vec::new();
        encode_frame(
            &Hello::new(7, 1, 2).with_fingerprint(Some(theirs)),
            &mut bytes,
        )
        .unwrap();
        let mut d = FrameDecoder::default();
        d.push(&bytes);
        let got = Hello::from_bytes(&d.next_frame().unwrap().unwrap()).unwrap();
        assert_eq!(
            got.differences(Some(&ours)),
            [Section::Voters, Section::Timers]
        );
        assert!(got.differences(None).is_empty());
        assert!(Hello::new(7, 1, 2).differences(Some(&ours)).is_empty());
        let same = Hello::new(7, 1, 2).with_fingerprint(Some(ours));
        assert!(same.differences(Some(&ours)).is_empty());
    }

    /// The digests are stable: the same settings give the same values in
    /// every build and release (members of different builds compare them).
    /// A change here is a wire change: members of the old and the new
    /// build would refuse each other.
    #[test]
    fn fingerprints_are_stable() {
        use crate::policy::{HandBack, Timers};
        use crate::topology::denver_paris;
        let f = denver_paris().build().unwrap().fingerprint();
        assert_eq!(f.timers, Timers::default().fingerprint());
        assert_eq!(f.hand_back, HandBack::default().fingerprint());
        assert_eq!(
            [f.quorum_mode, f.main_site, f.voters],
            [
                9968824843273853090,
                1260475943777902658,
                5546894220711427276
            ]
        );
        let ms = std::time::Duration::from_millis;
        let timers = Timers {
            sync_wait: ms(4000),
            tick: ms(5),
            heartbeat: ms(10),
            election: ms(200),
            failover: ms(30),
            survivable_after: ms(2000),
            rank_step: ms(1000),
        };
        assert_eq!(timers.fingerprint(), 17841178858087221048);
    }

    quickcheck! {
        fn garbage_never_panics(bytes: Vec<u8>, chunk: u8) -> bool {
            let mut d = FrameDecoder::new(4096);
            for piece in bytes.chunks(usize::from(chunk.max(1))) {
                d.push(piece);
                loop {
                    match d.next_envelope() {
                        Ok(Some(e)) => { let _ = e.raft_message(); }
                        Ok(None) | Err(WireError::MalformedEnvelope(_)) => break,
                        Err(_) => return d.buffered() <= bytes.len(),
                    }
                }
            }
            let _ = Hello::from_bytes(&bytes);
            d.buffered() <= bytes.len()
        }
    }
}
