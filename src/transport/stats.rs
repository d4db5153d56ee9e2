//! The transport's counters.

use std::sync::atomic::{AtomicU64, Ordering};

use super::ConnectionError;

/// Counters of a transport. Everything refused is counted here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransportStats {
    /// Inbound connections accepted (handshake, identity and hello checked).
    pub accepted: u64,
    /// Connections refused or closed for a [`ConnectionError`]: every
    /// inbound one (including those closed because the peer's certificate
    /// expired), and outbound ones whose peer failed the TLS handshake or
    /// the identity check, or refused this member.
    pub refused: u64,
    /// Of those: no handshake and hello in time.
    pub hello_timeouts: u64,
    /// Of those: undecodable hellos or frames, oversized frames, streams
    /// ending inside a frame, fragments that do not continue their message,
    /// messages announcing more than the message limit.
    pub malformed: u64,
    /// Of those: another cluster or protocol version (in the hello).
    pub wrong_cluster: u64,
    /// Of those: unknown sender or wrong recipient (in the hello), or a
    /// member dialled answering as another node.
    pub unknown_peer: u64,
    /// Of those: envelopes not matching their connection's hello.
    pub spoofed: u64,
    /// Of those: slow-drip frames.
    pub slow: u64,
    /// Of those: over the connection limit, or over the bytes all
    /// inbound connections may hold in messages under way.
    pub over_limit: u64,
    /// Of those: TLS handshakes that failed for the protocol (not TLS,
    /// undecryptable or replayed records, an alert, a handshake cut short),
    /// and TLS callers at a plaintext member (mixed security modes).
    pub tls_failures: u64,
    /// Of those: certificate chains refused (none presented, expired, not
    /// yet valid, not from the cluster CA, bad).
    pub certificates_refused: u64,
    /// Of those: certificates of the cluster CA naming the wrong member
    /// (another node or cluster, not a member, not the hello's sender, not
    /// the node dialled).
    pub identity_refused: u64,
    /// Of those: hellos announcing more than
    /// [`MAX_HELLO_LEN`](super::MAX_HELLO_LEN) bytes.
    pub oversized_hellos: u64,
    /// Of those: outbound connections the member dialled refused (closed,
    /// or sent a TLS alert, before confirming the hello): typically this
    /// member's certificate or id is not accepted there.
    pub refused_by_peer: u64,
    /// Of those: members whose topology fingerprint differs from this
    /// member's ([`ConnectionError::TopologyDiffers`]), either side.
    pub topology_differs: u64,
    /// Of those: inbound connections closed after receiving nothing for
    /// [`Limits::idle_timeout`](super::Limits::idle_timeout).
    pub idle_closed: u64,
    /// Of those: outbound connections (this member dialled).
    pub outbound_refused: u64,
    /// Envelopes received and handed to the node (a fragmented one once,
    /// when reassembled).
    pub frames_in: u64,
    /// Envelopes written to peers (a fragmented one once, with its last
    /// fragment).
    pub frames_out: u64,
    /// Fragments written to peers.
    pub fragments_out: u64,
    /// Fragments received.
    pub fragments_in: u64,
    /// Envelopes written to peers as fragments (all of them written).
    pub messages_fragmented: u64,
    /// Envelopes reassembled from fragments and handed to the node.
    pub messages_reassembled: u64,
    /// Envelopes dropped because a peer's queue was full or it was
    /// unreachable, or because they were larger than
    /// [`Limits::max_message`](super::Limits::max_message) (alone, or
    /// with the large envelopes already queued for the peer).
    pub dropped: u64,
    /// Failed outbound connection attempts (unreachable or refused).
    pub connect_failures: u64,
    /// TLS handshakes completed, both directions.
    pub handshakes: u64,
    /// Inbound connections closed because a newer one from the same
    /// member was accepted (one connection per member: see
    /// [`Limits::idle_timeout`](super::Limits::idle_timeout)).
    pub replaced: u64,
    /// Outbound connections found dead before a write (the peer closed or
    /// reset it, e.g. it restarted) or silent past
    /// [`Limits::idle_timeout`](super::Limits::idle_timeout), and replaced
    /// by a new connection.
    pub dead_links: u64,
    /// Keepalives written to peers.
    pub keepalives_out: u64,
    /// Bytes in the inbound queue now: handed on by the connections and
    /// not yet taken by the node thread (at most
    /// [`Limits::inbound_bytes`](super::Limits::inbound_bytes), but for
    /// one larger message let in alone).
    pub inbound_queued_bytes: u64,
    /// Times a connection waited for room in the inbound queue (reading
    /// nothing meanwhile).
    pub inbound_waits: u64,
}

impl TransportStats {
    /// The connections refused, by reason, as the metrics label them: one
    /// pair per counter that [`refused`](Self::refused) sums.
    pub fn refused_by_reason(&self) -> [(&'static str, u64); 14] {
        [
            ("hello_timeout", self.hello_timeouts),
            ("malformed", self.malformed),
            ("wrong_cluster", self.wrong_cluster),
            ("unknown_peer", self.unknown_peer),
            ("spoofed", self.spoofed),
            ("slow", self.slow),
            ("over_limit", self.over_limit),
            ("tls_failure", self.tls_failures),
            ("certificate_refused", self.certificates_refused),
            ("identity_refused", self.identity_refused),
            ("oversized_hello", self.oversized_hellos),
            ("refused_by_peer", self.refused_by_peer),
            ("topology_differs", self.topology_differs),
            ("idle", self.idle_closed),
        ]
    }
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(super) accepted: AtomicU64,
    hello_timeouts: AtomicU64,
    malformed: AtomicU64,
    wrong_cluster: AtomicU64,
    unknown_peer: AtomicU64,
    spoofed: AtomicU64,
    slow: AtomicU64,
    over_limit: AtomicU64,
    tls_failures: AtomicU64,
    certificates_refused: AtomicU64,
    identity_refused: AtomicU64,
    oversized_hellos: AtomicU64,
    refused_by_peer: AtomicU64,
    topology_differs: AtomicU64,
    idle_closed: AtomicU64,
    outbound_refused: AtomicU64,
    pub(super) frames_in: AtomicU64,
    pub(super) frames_out: AtomicU64,
    pub(super) fragments_out: AtomicU64,
    pub(super) fragments_in: AtomicU64,
    pub(super) messages_fragmented: AtomicU64,
    pub(super) messages_reassembled: AtomicU64,
    pub(super) dropped: AtomicU64,
    pub(super) connect_failures: AtomicU64,
    pub(super) handshakes: AtomicU64,
    pub(super) replaced: AtomicU64,
    pub(super) dead_links: AtomicU64,
    pub(super) keepalives_out: AtomicU64,
    pub(super) inbound_waits: AtomicU64,
}

pub(super) fn bump(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

impl Counters {
    /// Counts a refusal; `outbound` when this member dialled.
    pub(super) fn refused(&self, e: &ConnectionError, outbound: bool) {
        let c = match e {
            ConnectionError::HelloTimeout { .. } => &self.hello_timeouts,
            ConnectionError::Wire { .. } => &self.malformed,
            ConnectionError::Version { .. } | ConnectionError::WrongCluster { .. } => {
                &self.wrong_cluster
            }
            ConnectionError::UnknownSender { .. }
            | ConnectionError::WrongRecipient { .. }
            | ConnectionError::WrongResponder { .. } => &self.unknown_peer,
            ConnectionError::HelloTooLarge { .. } => &self.oversized_hellos,
            ConnectionError::RefusedByPeer { .. } => &self.refused_by_peer,
            ConnectionError::Spoofed { .. } => &self.spoofed,
            ConnectionError::SlowFrame { .. } => &self.slow,
            ConnectionError::TooManyConnections { .. }
            | ConnectionError::ReassemblyBudget { .. } => &self.over_limit,
            ConnectionError::Tls { reason, .. } if reason.is_certificate() => {
                &self.certificates_refused
            }
            ConnectionError::Tls { .. } => &self.tls_failures,
            ConnectionError::CertificateIdentity { .. } => &self.identity_refused,
            ConnectionError::TopologyDiffers { .. } => &self.topology_differs,
            ConnectionError::Idle { .. } => &self.idle_closed,
            ConnectionError::Unreachable { .. } => {
                bump(&self.connect_failures, 1);
                return;
            }
        };
        bump(c, 1);
        if outbound {
            bump(&self.outbound_refused, 1);
            bump(&self.connect_failures, 1);
        }
    }

    pub(super) fn snapshot(&self) -> TransportStats {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let s = TransportStats {
            accepted: g(&self.accepted),
            refused: 0,
            hello_timeouts: g(&self.hello_timeouts),
            malformed: g(&self.malformed),
            wrong_cluster: g(&self.wrong_cluster),
            unknown_peer: g(&self.unknown_peer),
            spoofed: g(&self.spoofed),
            slow: g(&self.slow),
            over_limit: g(&self.over_limit),
            tls_failures: g(&self.tls_failures),
            certificates_refused: g(&self.certificates_refused),
            identity_refused: g(&self.identity_refused),
            oversized_hellos: g(&self.oversized_hellos),
            refused_by_peer: g(&self.refused_by_peer),
            topology_differs: g(&self.topology_differs),
            idle_closed: g(&self.idle_closed),
            outbound_refused: g(&self.outbound_refused),
            frames_in: g(&self.frames_in),
            frames_out: g(&self.frames_out),
            fragments_out: g(&self.fragments_out),
            fragments_in: g(&self.fragments_in),
            messages_fragmented: g(&self.messages_fragmented),
            messages_reassembled: g(&self.messages_reassembled),
            dropped: g(&self.dropped),
            connect_failures: g(&self.connect_failures),
            handshakes: g(&self.handshakes),
            replaced: g(&self.replaced),
            dead_links: g(&self.dead_links),
            keepalives_out: g(&self.keepalives_out),
            inbound_queued_bytes: 0,
            inbound_waits: g(&self.inbound_waits),
        };
        TransportStats {
            refused: s.hello_timeouts
                + s.malformed
                + s.wrong_cluster
                + s.unknown_peer
                + s.spoofed
                + s.slow
                + s.over_limit
                + s.tls_failures
                + s.certificates_refused
                + s.identity_refused
                + s.oversized_hellos
                + s.refused_by_peer
                + s.topology_differs
                + s.idle_closed,
            ..s
        }
    }
}
