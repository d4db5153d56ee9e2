//! How members authenticate each other, and the transport's limits.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::TransportError;
use crate::topology::NodeId;
use crate::wire::{Envelope, DEFAULT_MAX_MESSAGE_LEN, FRAGMENT_LEN, MAX_FRAME_LEN};

/// What an envelope takes in the inbound queue beside its payloads.
const INBOUND_ENVELOPE_LEN: usize = size_of::<Envelope>();

/// How a member's connections are secured. There is no default: a
/// deployment chooses mutual TLS, and only a loopback test may choose the
/// loudly named plaintext option. Every member of a cluster must choose
/// the same: the mode is each member's own configuration (the shared
/// topology holds none), so members configured differently are caught at
/// their first connection, with a typed refusal on both sides (see the
/// [module docs](super#security), "Mixed modes").
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransportSecurity {
    /// Mutual TLS 1.3 on every connection, both sides presenting a
    /// certificate of the cluster CA that names them (see
    /// [`PeerIdentity`](super::PeerIdentity)). Required for any address off
    /// the loopback interface.
    MutualTls(TlsFiles),
    /// No encryption, no authentication: anyone who reaches the port can
    /// speak raft to the member. For tests on one machine only; start-up
    /// refuses it ([`TransportError::InsecureOffLoopback`]) unless the
    /// listen address and every peer's address are loopback addresses.
    InsecurePlaintextLoopbackOnly,
}

impl TransportSecurity {
    /// Mutual TLS with these PEM files.
    pub fn mutual_tls(
        ca: impl Into<PathBuf>,
        cert: impl Into<PathBuf>,
        key: impl Into<PathBuf>,
    ) -> Self {
        Self::MutualTls(TlsFiles::new(ca, cert, key))
    }

    /// Whether connections are encrypted and authenticated.
    pub fn is_tls(&self) -> bool {
        matches!(self, Self::MutualTls(_))
    }

    /// Checks the choice against the addresses.
    ///
    /// # Errors
    /// [`TransportError::InsecureOffLoopback`] for plaintext with a
    /// listen or peer address that is not a loopback address.
    pub fn check_addresses(
        &self,
        listen: SocketAddr,
        peers: &BTreeMap<NodeId, SocketAddr>,
    ) -> Result<(), TransportError> {
        if let Self::InsecurePlaintextLoopbackOnly = self {
            let all = std::iter::once(&listen).chain(peers.values());
            if let Some(&addr) = all.into_iter().find(|a| !a.ip().is_loopback()) {
                return Err(TransportError::InsecureOffLoopback { addr });
            }
        }
        Ok(())
    }
}

/// A member's TLS material, as PEM files. They are read at start (and
/// checked: the certificate must chain to the CA, be valid now for both
/// server and client authentication, and name this member). Afterwards
/// they are looked at at most once a second, and read again when one's
/// length or modification time changed: replaced files are used from the
/// next connection on, without a restart, and a replaced CA file closes
/// every live connection so it re-handshakes under the new CA. Files that
/// fail the checks are logged and ignored; the member keeps the last good
/// ones. Write the new files, then touch them, if a tool preserves
/// modification times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The cluster CA certificate(s): the only trust anchors.
    pub ca: PathBuf,
    /// This member's certificate, then any intermediates.
    pub cert: PathBuf,
    /// This member's private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

impl TlsFiles {
    /// These three files.
    pub fn new(ca: impl Into<PathBuf>, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        Self {
            ca: ca.into(),
            cert: cert.into(),
            key: key.into(),
        }
    }

    /// The layout `examples/node certs` writes: `<dir>/ca.pem`,
    /// `<dir>/node-<id>.pem` and `<dir>/node-<id>.key`.
    pub fn in_dir(dir: &Path, node: NodeId) -> Self {
        Self::new(
            dir.join("ca.pem"),
            dir.join(format!("node-{}.pem", node.0)),
            dir.join(format!("node-{}.key", node.0)),
        )
    }
}

/// The transport's limits and deadlines. Each field documents its default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Envelopes queued per peer before new ones are dropped. Defaults to 4096.
    pub queue_len: usize,
    /// Largest frame accepted, between [`Limits::MIN_FRAME`] (4 KiB) and
    /// [`MAX_FRAME_LEN`] (else start-up fails with
    /// [`TransportError::FrameLimit`](super::TransportError::FrameLimit)). Envelopes whose
    /// payloads are longer than [`FRAGMENT_LEN`] (1 MiB) travel as
    /// fragments of at most that (less if this is smaller), so this bounds
    /// what one read may make a connection buffer, not the size of a
    /// message: see `max_message`. Defaults to [`MAX_FRAME_LEN`].
    pub max_frame: usize,
    /// Largest message sent or accepted, in payload bytes (a raft
    /// message's encoding, or a control message's): the largest snapshot
    /// (the application's state plus the library's records) or command the
    /// cluster can move. Set it alike at every member.
    ///
    /// Messages larger than [`FRAGMENT_LEN`] go as fragments (a snapshot's
    /// interleaved with the small envelopes queued behind it); the
    /// receiving connection refuses a message announcing more than this on its first
    /// fragment, before buffering any of it, and grows its buffer as bytes
    /// arrive. All inbound connections together hold at most twice this in
    /// messages under way (a leader change may overlap two snapshots); a
    /// message over that is refused with its connection
    /// ([`ConnectionError::ReassemblyBudget`](super::ConnectionError::ReassemblyBudget)).
    /// The sender drops (and counts in `dropped`) an envelope larger than
    /// this, and one that would make the large envelopes queued for a peer
    /// exceed it: raft sends a snapshot again when it is reported lost.
    /// Decoding a reassembled message may take about as much again.
    /// Defaults to [`DEFAULT_MAX_MESSAGE_LEN`] (1 GiB).
    pub max_message: usize,
    /// Time a new connection has to complete its TLS handshake and send
    /// its hello (and an outbound one to complete its handshake and
    /// receive the peer's confirming hello). Defaults to 2 s.
    pub hello_timeout: Duration,
    /// Time a frame (or a TLS record) has to arrive once it started, and
    /// the next fragment of a fragmented message under way once the last
    /// arrived: slow drips, and senders stalled between fragments, are cut
    /// off. Defaults to 10 s.
    pub frame_timeout: Duration,
    /// Inbound connections open at once; more are refused before any TLS
    /// work. Defaults to 64.
    pub max_connections: usize,
    /// First and longest wait between reconnection attempts: the wait
    /// doubles after every attempt that fails, is refused, or ends in a
    /// lost connection, and returns to the first only once a peer
    /// confirmed the hello. Defaults to 20 ms and 1 s.
    pub backoff: (Duration, Duration),
    /// How often a writer sends its peer a keepalive (an empty frame,
    /// which the peer answers with one), whatever else it sends: the
    /// peer's answers prove the connection alive, and the keepalives keep
    /// a healthy idle connection from being closed as idle. Defaults to
    /// 250 ms.
    pub keepalive: Duration,
    /// How long a connection is trusted with nothing received on it. A
    /// writer that heard nothing from its peer (no keepalive answered) for
    /// this long takes the connection for dead (cut, or the peer's host
    /// gone without closing it) and opens a new one; the member called
    /// closes an inbound connection that brought nothing for this long
    /// ([`ConnectionError::Idle`](super::ConnectionError::Idle)), so a
    /// connection nobody uses holds no slot. At least four keepalives
    /// (start-up refuses less: [`TransportError::Keepalive`]). Defaults to
    /// 2 s.
    pub idle_timeout: Duration,
    /// Bytes all inbound connections together may have handed to the node
    /// thread and not yet had taken (payloads plus the envelopes
    /// themselves): the inbound queue's bound in memory. A connection
    /// whose next envelope does not fit reads nothing until it does (its
    /// sender slows down); a quarter is reserved for envelopes that came
    /// in one frame (heartbeats, votes), which reassembled messages
    /// (snapshots) never take, so a heartbeat is never stuck behind queued
    /// snapshots. A reassembled message larger than three quarters of it
    /// is still let in alone. At least four frames of `max_frame` (else
    /// start-up fails with
    /// [`TransportError::InboundBudget`](super::TransportError::InboundBudget)).
    /// Defaults to [`DEFAULT_INBOUND_BYTES`] (256 MiB).
    pub inbound_bytes: usize,
}

/// Default of [`Limits::inbound_bytes`]: 256 MiB, two 100 MiB snapshots
/// and the small envelopes' reserve.
pub const DEFAULT_INBOUND_BYTES: usize = 256 << 20;

impl Limits {
    /// The smallest usable [`max_frame`](Self::max_frame): a fragment's
    /// header and a few KiB of payload.
    pub const MIN_FRAME: usize = 4 << 10;

    /// Checks that the frame limit is usable, and that the idle timeout
    /// leaves room for at least four keepalives.
    pub(crate) fn check(&self) -> Result<(), TransportError> {
        if !(Self::MIN_FRAME..=MAX_FRAME_LEN).contains(&self.max_frame) {
            return Err(TransportError::FrameLimit {
                max_frame: self.max_frame,
                min: Self::MIN_FRAME,
                max: MAX_FRAME_LEN,
            });
        }
        if self.keepalive.is_zero() || self.idle_timeout < self.keepalive.saturating_mul(4) {
            return Err(TransportError::Keepalive {
                keepalive: self.keepalive,
                idle_timeout: self.idle_timeout,
            });
        }
        let min = self
            .max_frame
            .saturating_add(INBOUND_ENVELOPE_LEN)
            .saturating_mul(4);
        if self.inbound_bytes < min {
            return Err(TransportError::InboundBudget {
                inbound_bytes: self.inbound_bytes,
                min,
            });
        }
        Ok(())
    }

    /// Payload bytes per fragment: [`FRAGMENT_LEN`], or less when
    /// `max_frame` leaves less room beside a fragment's header.
    pub(crate) fn piece_len(&self) -> usize {
        let room = self.max_frame.min(MAX_FRAME_LEN);
        FRAGMENT_LEN
            .min(room.saturating_sub(crate::wire::FRAGMENT_OVERHEAD))
            .max(1)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            queue_len: 4096,
            max_frame: MAX_FRAME_LEN,
            max_message: DEFAULT_MAX_MESSAGE_LEN,
            hello_timeout: Duration::from_secs(2),
            frame_timeout: Duration::from_secs(10),
            max_connections: 64,
            backoff: (Duration::from_millis(20), Duration::from_secs(1)),
            keepalive: Duration::from_millis(250),
            idle_timeout: Duration::from_secs(2),
            inbound_bytes: DEFAULT_INBOUND_BYTES,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fragments_fit_the_frame_limit() {
        let with = |max_frame| Limits {
            max_frame,
            ..Limits::default()
        };
        assert_eq!(Limits::default().piece_len(), FRAGMENT_LEN);
        assert_eq!(with(64 << 10).piece_len(), (64 << 10) - 128);
        assert_eq!(with(usize::MAX).piece_len(), FRAGMENT_LEN);
        assert_eq!(with(10).piece_len(), 1);
    }

    #[test]
    fn unusable_frame_limits_are_refused() {
        let with = |max_frame| Limits {
            max_frame,
            ..Limits::default()
        };
        for ok in [Limits::MIN_FRAME, 64 << 10, MAX_FRAME_LEN] {
            assert!(with(ok).check().is_ok(), "{ok}");
        }
        for bad in [0, 10, Limits::MIN_FRAME - 1, MAX_FRAME_LEN + 1] {
            match with(bad).check() {
                Err(TransportError::FrameLimit {
                    max_frame,
                    min,
                    max,
                }) => {
                    assert_eq!(
                        (max_frame, min, max),
                        (bad, Limits::MIN_FRAME, MAX_FRAME_LEN)
                    );
                }
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn the_idle_timeout_must_leave_room_for_keepalives() {
        let ms = Duration::from_millis;
        let with = |keepalive, idle_timeout| Limits {
            keepalive,
            idle_timeout,
            ..Limits::default()
        };
        assert!(Limits::default().check().is_ok());
        assert!(with(ms(100), ms(400)).check().is_ok());
        for (k, i) in [(ms(0), ms(400)), (ms(100), ms(399)), (ms(500), ms(500))] {
            match with(k, i).check() {
                Err(TransportError::Keepalive {
                    keepalive,
                    idle_timeout,
                }) => assert_eq!((keepalive, idle_timeout), (k, i)),
                other => panic!("{k:?} {i:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn plaintext_is_refused_off_loopback() {
        let lo: SocketAddr = "127.0.0.1:7000".parse().unwrap();
        let lo6: SocketAddr = "[::1]:7000".parse().unwrap();
        let wan: SocketAddr = "10.0.0.2:7000".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:7000".parse().unwrap();
        let plain = TransportSecurity::InsecurePlaintextLoopbackOnly;
        let peers = |a: SocketAddr| BTreeMap::from([(NodeId(2), a)]);
        assert!(plain.check_addresses(lo, &peers(lo6)).is_ok());
        for (listen, peer, bad) in [(lo, wan, wan), (any, lo, any), (wan, lo, wan)] {
            match plain.check_addresses(listen, &peers(peer)) {
                Err(TransportError::InsecureOffLoopback { addr }) => assert_eq!(addr, bad),
                other => panic!("{other:?}"),
            }
        }
        let tls = TransportSecurity::mutual_tls("ca", "c", "k");
        assert!(tls.check_addresses(wan, &peers(wan)).is_ok());
    }
}
