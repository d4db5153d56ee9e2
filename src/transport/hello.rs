//! Reading a [`Hello`] frame within [`MAX_HELLO_LEN`]: the caller's on an
//! inbound connection, and the answer on an outbound one.
//!
//! Every connection opens with the caller's hello; the member called
//! checks it (and, with TLS, that the certificate names the same node) and
//! only then answers with its own hello (`from` itself, `to` the caller):
//! the confirmation the caller waits for before it counts the connection
//! as established. Without it a refused caller could not tell: in TLS 1.3
//! the client's side of the handshake completes before the server checks
//! the client's certificate.
//!
//! The two hellos also agree on the protocol version ([`agree`], on both
//! sides): each announces the range it speaks, both use the highest
//! version both speak, and every envelope on the connection carries it.
//! When the ranges have no version in common the member called still
//! answers (with its own range) before it closes, so both sides log
//! [`ConnectionError::Version`] naming both ranges.

use std::net::SocketAddr;

use super::ConnectionError;
use crate::wire::{Hello, ProtocolRange, WireError, FRAME_HEADER_LEN};

/// The version to use with a member whose hello (the caller's, or the
/// answer) is `theirs`, this member speaking `ours`: the highest both
/// speak.
///
/// # Errors
/// [`ConnectionError::Version`] naming both ranges when they have no
/// version in common; [`ConnectionError::Wire`] when the hello's range is
/// malformed.
pub(super) fn agree(
    ours: ProtocolRange,
    theirs: &Hello,
    peer: SocketAddr,
) -> Result<u32, ConnectionError> {
    let range = theirs
        .range()
        .map_err(|source| ConnectionError::Wire { peer, source })?;
    ours.common(&range).ok_or(ConnectionError::Version {
        peer,
        theirs: range,
        ours,
    })
}

/// The largest hello accepted, in bytes (a hello is four varints, at most
/// 40 bytes). A longer announced length is refused before any of it is
/// buffered, whatever [`Limits::max_frame`](super::Limits::max_frame)
/// allows: nothing unauthenticated can make a member hold large buffers.
pub const MAX_HELLO_LEN: usize = 4 << 10;

/// Accumulates bytes until a whole hello frame has arrived.
#[derive(Debug, Default)]
pub(super) struct HelloReader {
    buf: Vec<u8>,
}

impl HelloReader {
    /// Adds bytes read from the connection. Returns the hello once it is
    /// complete, with the bytes that followed it.
    ///
    /// # Errors
    /// [`ConnectionError::HelloTooLarge`] as soon as the length prefix
    /// exceeds [`MAX_HELLO_LEN`]; [`ConnectionError::Wire`] when the frame
    /// is not a hello.
    pub(super) fn push(
        &mut self,
        bytes: &[u8],
        peer: SocketAddr,
    ) -> Result<Option<(Hello, Vec<u8>)>, ConnectionError> {
        self.buf.extend_from_slice(bytes);
        let Some(header) = self.buf.get(..FRAME_HEADER_LEN) else {
            return Ok(None);
        };
        let mut len = [0u8; FRAME_HEADER_LEN];
        len.copy_from_slice(header);
        let len = u32::from_be_bytes(len) as usize;
        if len > MAX_HELLO_LEN {
            return Err(ConnectionError::HelloTooLarge {
                peer,
                len,
                max: MAX_HELLO_LEN,
            });
        }
        let end = FRAME_HEADER_LEN + len;
        let Some(frame) = self.buf.get(FRAME_HEADER_LEN..end) else {
            return Ok(None);
        };
        let hello =
            Hello::from_bytes(frame).map_err(|source| ConnectionError::Wire { peer, source })?;
        let rest = self.buf.split_off(end);
        self.buf.clear();
        Ok(Some((hello, rest)))
    }

    /// The stream ended: an error when it ended inside the hello.
    pub(super) fn closed(&self, peer: SocketAddr) -> Result<(), ConnectionError> {
        match self.buf.len() {
            0 => Ok(()),
            have => Err(ConnectionError::Wire {
                peer,
                source: WireError::Truncated { have },
            }),
        }
    }

    /// Bytes held.
    #[cfg(test)]
    fn buffered(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::encode_frame;

    fn peer() -> SocketAddr {
        "127.0.0.1:9".parse().unwrap()
    }

    #[test]
    fn a_hello_is_read_in_pieces_and_what_follows_is_kept() {
        let mut bytes = Vec::new();
        encode_frame(&Hello::new(7, 1, 2), &mut bytes).unwrap();
        bytes.extend_from_slice(b"next");
        let mut r = HelloReader::default();
        let mut got = None;
        for b in &bytes {
            if let Some(x) = r.push(&[*b], peer()).unwrap() {
                got = Some(x);
                break;
            }
        }
        assert_eq!(got, Some((Hello::new(7, 1, 2), Vec::new())));
        let mut r = HelloReader::default();
        let (h, rest) = r.push(&bytes, peer()).unwrap().unwrap();
        assert_eq!((h, rest.as_slice()), (Hello::new(7, 1, 2), &b"next"[..]));
    }

    /// Old and new members agree on the highest version both speak, on
    /// both sides; disjoint ranges are refused by both with both ranges.
    #[test]
    fn versions_are_agreed_in_the_hellos_and_disjoint_ranges_refused() {
        let r = |min, max| ProtocolRange::new(min, max).unwrap();
        // A version 2 build's hello: version 2, no range.
        let old = Hello {
            max_version: 0,
            ..Hello::new(7, 1, 2)
        };
        let hello = |range| Hello::new(7, 1, 2).with_range(range);
        for (ours, theirs, want) in [
            (r(2, 3), old.clone(), 2),
            (r(2, 3), hello(r(2, 3)), 3),
            (r(2, 2), hello(r(2, 3)), 2),
            (r(3, 3), hello(r(2, 3)), 3),
        ] {
            assert_eq!(
                agree(ours, &theirs, peer()),
                Ok(want),
                "{ours} / {theirs:?}"
            );
            // The other side agrees on the same from this member's hello.
            let their_range = theirs.range().unwrap();
            let their_own = r(their_range.min(), their_range.max());
            assert_eq!(agree(their_own, &hello(ours), peer()), Ok(want));
        }
        // A version 2 member reads only `version`: this build's hellos
        // carry 2 there.
        assert_eq!(Hello::new(7, 1, 2).version, 2);
        // Disjoint: a build of versions 3..=4 meets one of version 2 only.
        let future = Hello {
            version: 3,
            max_version: 4,
            ..Hello::new(7, 1, 2)
        };
        let refused = agree(r(2, 2), &future, peer()).unwrap_err();
        let ConnectionError::Version { theirs, ours, .. } = refused else {
            panic!("{refused:?}");
        };
        assert_eq!(
            (theirs.to_string(), ours.to_string()),
            ("3..=4".into(), "2".into())
        );
        let text = refused.to_string();
        assert!(text.contains("versions 3..=4, this member 2"), "{text}");
        assert!(text.contains("upgrade one release at a time"), "{text}");
        // The same the other way round.
        assert!(matches!(
            agree(r(2, 3), &hello(r(3, 3)).with_range(r(3, 3)), peer()),
            Ok(3)
        ));
        // A range whose top is below its bottom is malformed.
        let bad = Hello {
            version: 3,
            max_version: 2,
            ..Hello::new(7, 1, 2)
        };
        assert!(matches!(
            agree(r(2, 3), &bad, peer()),
            Err(ConnectionError::Wire {
                source: WireError::MalformedHello(_),
                ..
            })
        ));
    }

    #[test]
    fn an_oversized_hello_is_refused_before_it_is_buffered() {
        let mut r = HelloReader::default();
        let header = ((MAX_HELLO_LEN + 1) as u32).to_be_bytes();
        assert_eq!(r.push(&header[..2], peer()), Ok(None));
        match r.push(&header[2..], peer()) {
            Err(ConnectionError::HelloTooLarge { len, max, .. }) => {
                assert_eq!((len, max), (MAX_HELLO_LEN + 1, MAX_HELLO_LEN))
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(r.buffered(), 4);
        let mut r = HelloReader::default();
        assert!(r.push(&[0, 0, 0, 3, 0xff], peer()).unwrap().is_none());
        assert!(matches!(
            r.closed(peer()),
            Err(ConnectionError::Wire {
                source: WireError::Truncated { have: 5 },
                ..
            })
        ));
        assert!(matches!(
            r.push(&[0xff, 0xff], peer()),
            Err(ConnectionError::Wire {
                source: WireError::MalformedHello(_),
                ..
            })
        ));
    }
}
