//! Why a transport could not start, and why a connection was refused.

use std::net::SocketAddr;
use std::path::PathBuf;

use thiserror::Error;

use super::identity::{CertifiedAs, ExpectedPeer, PeerIdentity};
use crate::topology::Section;
use crate::wire::{ProtocolRange, WireError};

/// The transport could not start. Nothing was left running.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TransportError {
    /// [`Limits::max_frame`](super::Limits::max_frame) outside what the
    /// wire can use: below room for a fragment's header and some payload,
    /// or above [`MAX_FRAME_LEN`](crate::wire::MAX_FRAME_LEN). Keep the
    /// default (16 MiB) unless memory per connection must be smaller.
    #[error("Limits::max_frame is {max_frame} bytes; it must be between {min} and {max}")]
    FrameLimit {
        /// The configured limit.
        max_frame: usize,
        /// The smallest usable.
        min: usize,
        /// The largest accepted.
        max: usize,
    },
    /// [`Limits::keepalive`](super::Limits::keepalive) is zero, or
    /// [`Limits::idle_timeout`](super::Limits::idle_timeout) leaves room
    /// for fewer than four keepalives: a late keepalive or two would get a
    /// healthy connection closed.
    #[error("Limits::idle_timeout is {idle_timeout:?} and Limits::keepalive {keepalive:?}: the keepalive must be non-zero and the idle timeout at least four keepalives")]
    Keepalive {
        /// The keepalive interval.
        keepalive: std::time::Duration,
        /// The idle timeout.
        idle_timeout: std::time::Duration,
    },
    /// [`Limits::inbound_bytes`](super::Limits::inbound_bytes) leaves small
    /// envelopes a reserve (a quarter of it) smaller than a frame
    /// ([`Limits::max_frame`](super::Limits::max_frame)): a heartbeat
    /// could then wait behind queued snapshots. Raise it, or lower the
    /// frame limit.
    #[error("Limits::inbound_bytes is {inbound_bytes} bytes; it must be at least {min} (four frames of Limits::max_frame, so that a quarter of it holds a whole frame)")]
    InboundBudget {
        /// The configured budget.
        inbound_bytes: usize,
        /// The smallest accepted with the configured frame limit.
        min: usize,
    },
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}; is another member or process using it?")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// [`TransportSecurity::InsecurePlaintextLoopbackOnly`](super::TransportSecurity::InsecurePlaintextLoopbackOnly)
    /// with an address off the loopback interface: plaintext would cross
    /// a network. Configure mutual TLS instead.
    #[error("plaintext was chosen but {addr} is not a loopback address; members off loopback need mutual TLS")]
    InsecureOffLoopback {
        /// The first non-loopback address (listen or a peer's).
        addr: SocketAddr,
    },
    /// A TLS file could not be read.
    #[error("cannot read TLS file {path}: {source}")]
    TlsFile {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A TLS file holds no PEM block of the kind it should.
    #[error("{path}: no PEM {item} in the file (or it does not decode)")]
    TlsPem {
        /// The file.
        path: PathBuf,
        /// What was looked for.
        item: PemItem,
    },
    /// rustls refused the material: the CA is not a usable trust anchor,
    /// or the key does not fit the certificate.
    #[error("{path}: refused by TLS: {reason}")]
    TlsRejected {
        /// The file at fault.
        path: PathBuf,
        /// rustls' words.
        reason: String,
    },
    /// This member's own certificate does not verify against the cluster
    /// CA (expired, not yet valid, issued by another CA, ...).
    #[error("{path}: this member's certificate is refused: {reason}")]
    OwnCertificate {
        /// The certificate file.
        path: PathBuf,
        /// Why.
        reason: TlsRefusal,
    },
    /// This member's own certificate names someone else: the wrong file,
    /// or the wrong cluster id.
    #[error("{path}: this member's certificate names {found}, it must name {expected}")]
    OwnIdentity {
        /// The certificate file.
        path: PathBuf,
        /// This member.
        expected: PeerIdentity,
        /// What the certificate names.
        found: CertifiedAs,
    },
}

/// A kind of PEM block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PemItem {
    /// `-----BEGIN CERTIFICATE-----`.
    Certificate,
    /// A PKCS#8, PKCS#1 or SEC1 private key.
    PrivateKey,
}

impl std::fmt::Display for PemItem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Certificate => "CERTIFICATE",
            Self::PrivateKey => "PRIVATE KEY",
        })
    }
}

/// Why a TLS handshake, or the certificate chain in it, was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum TlsRefusal {
    /// The peer did not speak TLS: its first byte is not a TLS handshake
    /// record (e.g. the hello of a member configured with
    /// [`InsecurePlaintextLoopbackOnly`](super::TransportSecurity::InsecurePlaintextLoopbackOnly):
    /// the members' security modes differ).
    #[error("not TLS (first byte {first:#04x}): plaintext, or another protocol")]
    NotTls {
        /// The first byte received.
        first: u8,
    },
    /// The peer started a TLS handshake, but this member runs
    /// [`InsecurePlaintextLoopbackOnly`](super::TransportSecurity::InsecurePlaintextLoopbackOnly):
    /// the members' security modes differ.
    #[error(
        "the peer speaks TLS but this member is configured for plaintext: security modes differ"
    )]
    PlaintextMember,
    /// The peer presented no certificate.
    #[error("no certificate presented")]
    NoCertificate,
    /// The certificate has expired.
    #[error("certificate expired")]
    Expired,
    /// The certificate is not valid yet.
    #[error("certificate not valid yet")]
    NotYetValid,
    /// The certificate does not chain to the cluster CA.
    #[error("certificate not issued by the cluster CA")]
    UnknownIssuer,
    /// The certificate may not be used this way: its extended key usage
    /// lacks `clientAuth` (a caller's) or `serverAuth` (the member called).
    /// A member is both: its certificate needs both usages.
    #[error("certificate not issued for this use (extended key usage): a member's needs serverAuth and clientAuth")]
    InvalidPurpose,
    /// The certificate was refused for another reason (bad signature,
    /// bad encoding, ...).
    #[error("certificate refused: {detail}")]
    BadCertificate {
        /// rustls' words.
        detail: String,
    },
    /// The peer refused us and said why with a TLS alert.
    #[error("peer sent alert {alert}")]
    AlertReceived {
        /// The alert.
        alert: String,
    },
    /// The connection ended in the middle of the handshake.
    #[error("connection closed during the handshake")]
    Incomplete,
    /// Any other protocol failure: records that do not decrypt (replayed or
    /// injected bytes), unexpected messages, no common parameters.
    #[error("handshake failed: {detail}")]
    Protocol {
        /// rustls' words.
        detail: String,
    },
}

impl TlsRefusal {
    /// Whether the refusal is about the certificate (counted as
    /// [`TransportStats::certificates_refused`](super::TransportStats::certificates_refused))
    /// rather than the protocol ([`TransportStats::tls_failures`](super::TransportStats::tls_failures)).
    pub fn is_certificate(&self) -> bool {
        matches!(
            self,
            Self::NoCertificate
                | Self::Expired
                | Self::NotYetValid
                | Self::UnknownIssuer
                | Self::InvalidPurpose
                | Self::BadCertificate { .. }
        )
    }

    /// A short, stable name of the reason (the `kind` key of the log
    /// line; refusals are logged at most once per window for each peer
    /// address, member and kind).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NotTls { .. } => "tls-not-tls",
            Self::PlaintextMember => "tls-plaintext-member",
            Self::NoCertificate => "tls-no-certificate",
            Self::Expired => "tls-expired",
            Self::NotYetValid => "tls-not-yet-valid",
            Self::UnknownIssuer => "tls-unknown-issuer",
            Self::InvalidPurpose => "tls-invalid-purpose",
            Self::BadCertificate { .. } => "tls-bad-certificate",
            Self::AlertReceived { .. } => "tls-alert",
            Self::Incomplete => "tls-incomplete",
            Self::Protocol { .. } => "tls-protocol",
        }
    }
}

/// Why a connection was refused or closed. Logged with the peer's address
/// and counted in [`TransportStats`](super::TransportStats); nothing it
/// carried reached the node.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ConnectionError {
    /// The caller completed no handshake and sent no hello in time.
    #[error("{peer}: no handshake and hello within the timeout")]
    HelloTimeout {
        /// Remote address.
        peer: SocketAddr,
    },
    /// The hello or a frame could not be decoded, was too large, or the
    /// stream ended inside a frame; or a fragment did not continue its
    /// message, or a message announced more than the message limit.
    #[error("{peer}: {source}")]
    Wire {
        /// Remote address.
        peer: SocketAddr,
        /// The decoding error.
        source: WireError,
    },
    /// The peer speaks no protocol version this member speaks (or, as a
    /// member called, answered with a version the two do not agree on).
    /// Both sides refuse, each naming both ranges. Upgrade one release at
    /// a time, so that every build running speaks a version in common
    /// with every other.
    #[error("{peer}: speaks protocol versions {theirs}, this member {ours}: none agreed; upgrade one release at a time (every member must share a version with every other: first bring the members of the older range to a build that also speaks the newer range's lowest version, or roll this member back to a build that speaks {theirs})")]
    Version {
        /// Remote address.
        peer: SocketAddr,
        /// The versions it announced.
        theirs: ProtocolRange,
        /// This member's.
        ours: ProtocolRange,
    },
    /// The caller belongs to another cluster.
    #[error("{peer}: cluster {got}, this is cluster {expected}")]
    WrongCluster {
        /// Remote address.
        peer: SocketAddr,
        /// Its cluster id.
        got: u64,
        /// Ours.
        expected: u64,
    },
    /// The caller claims to be a node this member does not know.
    #[error("{peer}: claims to be n{from}, which is not a member")]
    UnknownSender {
        /// Remote address.
        peer: SocketAddr,
        /// Claimed id.
        from: u64,
    },
    /// The caller wants another node.
    #[error("{peer}: called n{to}, this is n{me}")]
    WrongRecipient {
        /// Remote address.
        peer: SocketAddr,
        /// Addressee.
        to: u64,
        /// This node.
        me: u64,
    },
    /// An envelope names a sender, receiver or cluster other than the hello.
    #[error("{peer}: envelope from n{from} to n{to} on a connection of n{hello_from}")]
    Spoofed {
        /// Remote address.
        peer: SocketAddr,
        /// Envelope sender.
        from: u64,
        /// Envelope receiver.
        to: u64,
        /// The sender named in the hello.
        hello_from: u64,
    },
    /// A frame started but did not finish in time (slow drip), or a
    /// fragmented message under way got no next fragment in time (its
    /// sender stopped between fragments): either within
    /// [`Limits::frame_timeout`](super::Limits::frame_timeout).
    #[error("{peer}: a frame, or the next fragment of a message under way, took longer than the frame timeout")]
    SlowFrame {
        /// Remote address.
        peer: SocketAddr,
    },
    /// Too many inbound connections are open.
    #[error("{peer}: refused, {open} connections already open")]
    TooManyConnections {
        /// Remote address.
        peer: SocketAddr,
        /// Connections open.
        open: u64,
    },
    /// A fragmented message would make the messages under way on all
    /// inbound connections hold more than twice
    /// [`Limits::max_message`](super::Limits::max_message): refused on
    /// its first fragment, with its connection (the sender reconnects, and
    /// raft sends again). Several peers sending large messages at once, or
    /// one opening connections to hold memory.
    #[error("{peer}: a message of {announced} bytes refused: {held} bytes of other messages are under way, at most {max} at once (twice Limits::max_message)")]
    ReassemblyBudget {
        /// Remote address.
        peer: SocketAddr,
        /// The payload bytes the message announced.
        announced: usize,
        /// What the other messages under way hold.
        held: usize,
        /// The budget.
        max: usize,
    },
    /// The TLS handshake failed, or the certificate chain was refused.
    #[error("{peer}: TLS: {reason}")]
    Tls {
        /// Remote address.
        peer: SocketAddr,
        /// Why.
        reason: TlsRefusal,
    },
    /// The certificate chains to the cluster CA but names someone else:
    /// another node, another cluster, a node outside the topology, or not
    /// the sender its hello claims.
    #[error("{peer}: certificate names {found}, expected {expected}")]
    CertificateIdentity {
        /// Remote address.
        peer: SocketAddr,
        /// Whom it had to name.
        expected: ExpectedPeer,
        /// Whom it names.
        found: CertifiedAs,
    },
    /// The first frame (the hello) announces more than
    /// [`MAX_HELLO_LEN`](super::MAX_HELLO_LEN) bytes: refused before any
    /// of it is buffered, whatever [`Limits::max_frame`](super::Limits::max_frame)
    /// allows, so an unauthenticated caller cannot make the member hold
    /// large buffers.
    #[error(
        "{peer}: a hello of {len} bytes, at most {max} are accepted before the caller is verified"
    )]
    HelloTooLarge {
        /// Remote address.
        peer: SocketAddr,
        /// The length announced.
        len: usize,
        /// [`MAX_HELLO_LEN`](super::MAX_HELLO_LEN).
        max: usize,
    },
    /// The member dialled closed the connection, or sent a TLS alert,
    /// instead of confirming this member's hello: it refused this member.
    /// With TLS 1.3 this is how a refused client certificate shows (the
    /// client's side of the handshake completes before the server checks
    /// it); the alert, when there is one, says why (`CertificateExpired`,
    /// `UnknownCA`, `UnsupportedCertificate`, `CertificateUnknown` for a
    /// certificate naming a node the peer's topology does not list), and
    /// the peer's log names the reason.
    #[error("{peer}: the peer refused this member before confirming its hello ({})", alert.as_deref().map_or("it closed the connection".to_string(), |a| format!("alert {a}")))]
    RefusedByPeer {
        /// Remote address.
        peer: SocketAddr,
        /// The TLS alert it sent, if any.
        alert: Option<String>,
    },
    /// The member dialled confirmed with a hello naming another node, or
    /// addressed to another node.
    #[error("{peer}: answered as n{from} to n{to}, expected n{expected}")]
    WrongResponder {
        /// Remote address.
        peer: SocketAddr,
        /// The node dialled.
        expected: u64,
        /// Whom the answer names as sender.
        from: u64,
        /// Whom the answer is addressed to.
        to: u64,
    },
    /// The peer's [topology fingerprint](crate::topology::Topology::fingerprint)
    /// differs from this member's: their files describe different
    /// topologies, timers or hand-back policies. Members that disagree can
    /// each elect leaders the others do not know of, and lose acknowledged
    /// writes, so they refuse each other (both sides log this, naming the
    /// sections that differ). Compare the member files and restart the
    /// member whose file is wrong.
    #[error("{peer}: topology differs from n{node}'s: {}; every member's file must describe the same topology, timers and hand-back policy: compare them and restart the member that is wrong", sections.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))]
    TopologyDiffers {
        /// Remote address.
        peer: SocketAddr,
        /// The member whose topology differs.
        node: u64,
        /// What differs.
        sections: Vec<Section>,
    },
    /// An inbound connection received nothing, not even a keepalive, for
    /// [`Limits::idle_timeout`](super::Limits::idle_timeout): a member's
    /// writer sends a keepalive every
    /// [`Limits::keepalive`](super::Limits::keepalive), so the peer is
    /// gone, stalled or cut off (or holds a connection it does not use).
    /// Closed, so it holds no connection slot; a live member reconnects.
    #[error(
        "{peer}: nothing received from n{node} for {idle_ms} ms (Limits::idle_timeout); closed"
    )]
    Idle {
        /// Remote address.
        peer: SocketAddr,
        /// The member on the other end.
        node: u64,
        /// How long nothing arrived.
        idle_ms: u64,
    },
    /// An outbound connection could not be opened (only from
    /// [`Dialer::check`](super::Dialer::check); the transport's writers
    /// count these as `connect_failures` and retry).
    #[error("{peer}: cannot connect: {kind}")]
    Unreachable {
        /// Remote address.
        peer: SocketAddr,
        /// The OS error's kind.
        kind: std::io::ErrorKind,
    },
}

impl ConnectionError {
    /// The remote address.
    pub fn peer(&self) -> SocketAddr {
        match self {
            Self::HelloTimeout { peer }
            | Self::Wire { peer, .. }
            | Self::Version { peer, .. }
            | Self::WrongCluster { peer, .. }
            | Self::UnknownSender { peer, .. }
            | Self::WrongRecipient { peer, .. }
            | Self::Spoofed { peer, .. }
            | Self::SlowFrame { peer }
            | Self::TooManyConnections { peer, .. }
            | Self::ReassemblyBudget { peer, .. }
            | Self::Tls { peer, .. }
            | Self::CertificateIdentity { peer, .. }
            | Self::HelloTooLarge { peer, .. }
            | Self::RefusedByPeer { peer, .. }
            | Self::WrongResponder { peer, .. }
            | Self::TopologyDiffers { peer, .. }
            | Self::Idle { peer, .. }
            | Self::Unreachable { peer, .. } => *peer,
        }
    }

    /// A short, stable name of the reason (the `kind` key of the log
    /// line; refusals are logged at most once per window for each peer
    /// address, member and kind).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::HelloTimeout { .. } => "hello-timeout",
            Self::Wire { .. } => "malformed",
            Self::Version { .. } => "version",
            Self::WrongCluster { .. } => "wrong-cluster",
            Self::UnknownSender { .. } => "unknown-sender",
            Self::WrongRecipient { .. } => "wrong-recipient",
            Self::Spoofed { .. } => "spoofed",
            Self::SlowFrame { .. } => "slow-frame",
            Self::TooManyConnections { .. } => "too-many-connections",
            Self::ReassemblyBudget { .. } => "reassembly-budget",
            Self::Tls { reason, .. } => reason.kind(),
            Self::CertificateIdentity { .. } => "certificate-identity",
            Self::HelloTooLarge { .. } => "hello-too-large",
            Self::RefusedByPeer { .. } => "refused-by-peer",
            Self::WrongResponder { .. } => "wrong-responder",
            Self::TopologyDiffers { .. } => "topology-differs",
            Self::Idle { .. } => "idle",
            Self::Unreachable { .. } => "unreachable",
        }
    }
}
