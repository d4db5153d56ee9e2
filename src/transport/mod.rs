//! Moving [`Envelope`]s between members over TCP, with mutual TLS.
//!
//! The node never touches this module; the [runtime](crate::runtime) hands
//! its outgoing envelopes to a [`Transport`] and feeds what arrives back in.
//! [`TcpTransport`] keeps one outbound connection per peer (reconnecting
//! with back-off) behind a bounded queue, so a slow or dead peer never
//! blocks the node or the other peers, and accepts inbound connections.
//! Every refused connection or frame is counted ([`TransportStats`]),
//! kept with its typed reason ([`StatsHandle::recent_refusals`]) and
//! logged with the peer's address and the reason ([`ConnectionError`]);
//! none reaches the node. The log holds at most one line per peer address,
//! member (when known: the member dialled, or the one a caller's
//! certificate names) and [kind](ConnectionError::kind) of refusal every
//! 10 s (the next one says how many were `suppressed`), so neither a member
//! refused again and again nor an attacker reaching the port can fill the
//! disk, and a flood in one name never hides another member's refusals.
//!
//! A writer reads its connection before every write and at every idle
//! wake, and sends keepalives its peer answers, so a connection its peer
//! closed (a restart) or left silent (a cut) is replaced before it swallows
//! a message; a member keeps one inbound connection per member and closes
//! connections that bring nothing for [`Limits::idle_timeout`]. The
//! `liveness` module (private) explains the rules. Every hello carries the
//! member's [topology fingerprint](crate::topology::Topology::fingerprint)
//! ([`TcpConfig::fingerprint`]), and members whose topologies differ refuse
//! each other ([`ConnectionError::TopologyDiffers`]).
//!
//! The peers follow the replicated topology at runtime
//! ([`Transport::set_peers`]: members added, moved and removed; see the
//! `peers` module, private). The fingerprint is of the topology each member
//! was configured with, the same file at every member, so members that
//! have applied different versions of the topology still connect.
//!
//! Every connection opens with the caller's [`Hello`](crate::wire::Hello);
//! the member called checks it and answers with its own (`from` itself,
//! `to` the caller). The caller counts the connection as established, and
//! resets its reconnection back-off, only on that answer: a caller the
//! member refuses sees an alert or the connection closing first
//! ([`ConnectionError::RefusedByPeer`]), logs it, and retries at the
//! back-off's pace ([`Limits::backoff`]). Without the answer it could not
//! tell: in TLS 1.3 the client's side of the handshake completes before
//! the server checks the client's certificate.
//!
//! # Security
//!
//! Members talk across a WAN between data centres, so every connection is
//! mutual TLS 1.3 ([`TransportSecurity::MutualTls`]; rustls with the ring
//! provider, no OpenSSL). Plaintext exists only as
//! [`TransportSecurity::InsecurePlaintextLoopbackOnly`], which start-up
//! refuses unless every address is a loopback address.
//!
//! **Mixed modes.** One mode covers all of a member's connections. The
//! mode is part of each member's own configuration, not of the shared
//! [`Topology`](crate::topology::Topology) (which holds no addresses or
//! secrets either), so no single start-up can see the whole cluster's
//! modes; two members configured differently refuse each other at their
//! first connection, with typed errors on both sides: the member called
//! logs [`TlsRefusal::NotTls`] (it runs TLS and a plaintext hello arrived)
//! or [`TlsRefusal::PlaintextMember`] (it runs plaintext and a TLS
//! handshake arrived), and the caller logs [`ConnectionError::RefusedByPeer`]
//! or [`TlsRefusal::Incomplete`]. That is deliberately not negotiated (the
//! [`Hello`](crate::wire::Hello) carries no mode): the first bytes already
//! tell the modes apart, and a mode announced in a hello could only
//! downgrade. Since plaintext is refused off loopback at start-up, a mixed
//! cluster can only exist on one machine, in a test.
//!
//! **How identity is bound.** Each member holds a certificate issued by
//! the cluster's CA whose subject alternative name is the URI
//! `survivable://<cluster_id>/node/<node_id>` ([`PeerIdentity::uri`]; why
//! that encoding: see [`PeerIdentity`]). A connection is used only when,
//! in this order:
//!
//! 1. the peer's chain verifies to the configured CA (webpki: signatures,
//!    validity period, key usage) — the CA file is the only trust anchor;
//! 2. its certificate names exactly one identity, of this cluster, and a
//!    member of the topology;
//! 3. outbound: that identity is the node dialled (checked inside the
//!    handshake, so an impostor never sees this member's certificate);
//!    inbound: the [`Hello`](crate::wire::Hello) names the same node, and
//!    so does every envelope on the connection (`from`), addressed to this
//!    member in this cluster.
//!
//! Until all of that has passed, nothing read from the connection is
//! handed to the node: the handshake and hello run in the connection's
//! own thread, under a deadline ([`Limits::hello_timeout`]), with the
//! connection limit ([`Limits::max_connections`]) checked before any TLS
//! work, the hello bounded to [`MAX_HELLO_LEN`] bytes whatever the frame
//! limit, and frames bounded in size ([`Limits::max_frame`]) and time
//! ([`Limits::frame_timeout`]).
//!
//! **Large messages.** A snapshot grows with the application's state, so
//! an envelope whose payload is larger than a fragment
//! ([`FRAGMENT_LEN`](crate::wire::FRAGMENT_LEN), 1 MiB) travels as a run of
//! fragments on the one connection to its peer, and no frame takes long to
//! cross a WAN. A snapshot goes one fragment per batch, with the envelopes
//! queued behind it going between them: a heartbeat waits behind one
//! fragment, not a whole snapshot. Other large envelopes (appends of large
//! commands) keep their place in the queue, since raft takes an append
//! that overtakes an earlier one for a gap. The receiving connection puts
//! the message back together
//! ([`Reassembler`](crate::wire::Reassembler)): up to
//! [`Limits::max_message`] (1 GiB by default) per message, refused on its
//! first fragment if it announces more, with buffers that grow only as
//! bytes arrive; at most twice that in messages under way across all
//! connections; a fragment that does not continue its message closes the
//! connection like any malformed frame. A connection that drops mid-message
//! drops the part received; raft sends the snapshot again. What the
//! connections hand to the node thread is bounded in bytes too
//! ([`Limits::inbound_bytes`], 256 MiB by default): a connection whose
//! next envelope does not fit reads nothing until the node has taken
//! enough, and a quarter of it is kept for envelopes that came in one frame,
//! so heartbeats never wait behind queued snapshots (see [`Inbound`]).
//!
//! **Live connections are re-checked.** Each side records when the peer's
//! certificate chain expires (the earliest `notAfter` it presented) and
//! closes the connection once that passes, on the connection's own loop
//! (within about 50 ms); the reconnection then fails the handshake until
//! the peer has a new certificate. The TLS files are looked at at most
//! once a second (by new connections and by the idle writers) and read
//! only when a file's length or modification time changed; when the new
//! files hold another CA file, every live connection, in and out, closes
//! and re-handshakes under it. A renewed member certificate under the same
//! CA file leaves live connections alone (they are used until their own
//! certificate expires).
//!
//! # Threat model
//!
//! *A WAN attacker* who can read, inject, replay or reorder bytes between
//! sites learns nothing but traffic volume and timing (TLS 1.3 encrypts
//! the certificates too), and cannot inject or alter a message: every
//! record is authenticated. Recorded traffic replays nowhere: every
//! connection runs a full handshake with fresh ephemeral keys (no session
//! tickets, no resumption, no 0-RTT data), so replayed bytes fail the
//! handshake, and a replayed or duplicated raft message inside a live
//! session is impossible (records are sequence-numbered). Anyone who can
//! merely reach a port is refused before a byte reaches raft.
//!
//! *A compromised member* (its key stolen) can speak as itself only: its
//! certificate binds one node id, so it cannot impersonate another member
//! or a member of another cluster. But it **can** send any raft message a
//! member may legitimately send as itself — vote, campaign, lie about its
//! log — and raft does not tolerate Byzantine members. Revoke by
//! re-issuing the cluster's certificates under a new CA and replacing the
//! CA file at every member (within a second each member closes its live
//! connections and re-handshakes, so the revoked member is cut off at
//! once), or by removing the member from the topology
//! (`TopologyChange::RemoveMember`: every member's transport drops it from
//! its peers and closes its connections, no restart); short-lived certificates limit the damage on their own,
//! since a connection closes when its peer's certificate expires. There is
//! no CRL or OCSP checking.
//!
//! A holder of a member's stolen key holds at most one connection in that
//! member's name (a newer one replaces it, so the member itself, restarted,
//! always gets back in) and loses it after [`Limits::idle_timeout`] of
//! silence.
//!
//! *Not protected:* availability. The connection limit, deadlines,
//! frame bounds and message limits keep memory and threads bounded (a
//! member may make another hold up to twice [`Limits::max_message`] in
//! messages under way), but an attacker who can
//! reach the port can keep the limit's slots busy with handshakes (each
//! for up to [`Limits::hello_timeout`]) and so delay a real member's
//! reconnection, and can burn CPU on handshakes; firewall the port to the
//! members' addresses. It cannot make the member log more
//! than a line per kind of refusal every 10 s, nor read files. There is no encryption at rest (the
//! data directory and the key file are protected by file permissions
//! only), and the application's own clients are out of scope (the
//! [`Handle`](crate::runtime::Handle) is an in-process API).

mod error;
mod gone;
mod hello;
pub(crate) mod identity;
mod inbound;
mod link;
mod liveness;
mod loopback;
mod outbound;
mod peers;
mod queue;
mod refusals;
mod security;
mod stats;
mod tls;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::Sender;
use slog::Logger;

pub use error::{ConnectionError, PemItem, TlsRefusal, TransportError};
pub use hello::MAX_HELLO_LEN;
pub use identity::{CertifiedAs, ExpectedPeer, PeerIdentity};
pub use loopback::free_loopback_addr;
pub use outbound::Dialer;
pub use peers::PeerRefused;
pub use queue::Inbound;
pub use security::{Limits, TlsFiles, TransportSecurity, DEFAULT_INBOUND_BYTES};
pub use stats::TransportStats;

use crate::topology::{Fingerprint, NodeId};
use crate::wire::{Envelope, ProtocolRange};
use liveness::Registry;
use peers::PeerTable;
use refusals::Refusals;
use stats::{bump, Counters};
use tls::TlsContext;

/// Where the runtime sends envelopes. Implementations must never block.
pub trait Transport: Send + 'static {
    /// Queues `env` for `env.to`. Returns `false` when it was dropped (queue
    /// full, unknown peer, shutting down); raft retransmits what matters.
    fn send(&self, env: Envelope) -> bool;

    /// Whether [`send`](Self::send) knows `peer` now (a queue for it); the
    /// runtime sends a message ahead of a storage write only to a peer it
    /// knows, and otherwise leaves it for after the write, when it has
    /// followed the topology's peers. The default knows every peer.
    fn reaches(&self, peer: NodeId) -> bool {
        let _ = peer;
        true
    }

    /// Its counters now, if it keeps any (the runtime's metrics read the
    /// refusals). The default keeps none.
    fn stats(&self) -> Option<TransportStats> {
        None
    }

    /// Whether this member holds a connection to `peer` now, confirmed by
    /// the peer's hello, if the transport knows. The default does not.
    fn connected(&self, peer: NodeId) -> Option<bool> {
        let _ = peer;
        None
    }

    /// The peers it was started with (`None`: it has no addresses to
    /// update, like the in-process transports; the default). The runtime
    /// starts from these when it computes the peers from the replicated
    /// topology (see [`Transport::set_peers`]).
    fn configured_peers(&self) -> Option<BTreeMap<NodeId, SocketAddr>> {
        None
    }

    /// Makes `peers` the members it talks to and accepts, and where: the
    /// runtime calls it when the topology or the raft configuration moved
    /// a member. Returns the addresses it refused (each peer refused keeps
    /// what it had). The default does nothing.
    fn set_peers(&mut self, peers: BTreeMap<NodeId, SocketAddr>) -> Vec<PeerRefused> {
        let _ = peers;
        Vec::new()
    }

    /// The peers with which a connection ended from their side (either
    /// way: theirs to this member, or this member's to them) and whose
    /// address then refused a connection (their process is gone), since the last
    /// call, for [`Node::peer_connection_refused`](crate::Node::peer_connection_refused).
    /// The default reports none.
    fn refused_peers(&self) -> Vec<NodeId> {
        Vec::new()
    }
}

/// How a [`TcpTransport`] runs.
#[derive(Debug, Clone)]
pub struct TcpConfig {
    /// The cluster id every certificate, hello and envelope must carry.
    pub cluster_id: u64,
    /// This member.
    pub me: NodeId,
    /// Address to listen on (port 0 picks a free one).
    pub listen: SocketAddr,
    /// Every other member's address: exactly the members whose
    /// certificates are accepted, at start
    /// ([`Transport::set_peers`] changes them at runtime).
    pub peers: BTreeMap<NodeId, SocketAddr>,
    /// Mutual TLS, or plaintext on loopback for tests.
    pub security: TransportSecurity,
    /// Limits and deadlines.
    pub limits: Limits,
    /// This member's [topology fingerprint](crate::topology::Topology::fingerprint),
    /// sent in every hello: a member whose fingerprint differs is refused
    /// ([`ConnectionError::TopologyDiffers`]). `None` (the default of
    /// [`TcpConfig::new`]) for a transport or [`Dialer`] without a
    /// topology: its hellos carry none, and are not compared.
    /// [`start_member`](crate::runtime::start_member) sets it.
    pub fingerprint: Option<Fingerprint>,
    /// The protocol versions it speaks: by default every version this
    /// build speaks ([`ProtocolRange::SUPPORTED`]). Each connection uses
    /// the highest version both sides speak (see
    /// [`wire::version`](crate::wire::version)); a lower maximum makes it
    /// talk as an older build does.
    pub protocol: ProtocolRange,
}

impl TcpConfig {
    /// A configuration with the default [`Limits`]. `security` has no
    /// default: see [`TransportSecurity`].
    pub fn new(
        cluster_id: u64,
        me: NodeId,
        listen: SocketAddr,
        peers: BTreeMap<NodeId, SocketAddr>,
        security: TransportSecurity,
    ) -> Self {
        Self {
            cluster_id,
            me,
            listen,
            peers,
            security,
            limits: Limits::default(),
            fingerprint: None,
            protocol: ProtocolRange::SUPPORTED,
        }
    }

    /// Checks the configuration without starting anything: a usable frame
    /// limit; plaintext only on loopback addresses; with TLS, the files are read, the CA must be
    /// a usable trust anchor, the key must fit the certificate, and the
    /// certificate must chain to the CA, be valid now and name this member
    /// (`survivable://<cluster_id>/node/<me>`).
    ///
    /// # Errors
    /// The [`TransportError`] naming the address or file at fault.
    pub fn validate(&self) -> Result<(), TransportError> {
        self.load_security().map(|_| ())
    }

    fn load_security(&self) -> Result<Option<TlsContext>, TransportError> {
        self.limits.check()?;
        self.security.check_addresses(self.listen, &self.peers)?;
        match &self.security {
            TransportSecurity::InsecurePlaintextLoopbackOnly => Ok(None),
            TransportSecurity::MutualTls(files) => {
                let me = PeerIdentity::new(self.cluster_id, self.me);
                let members: BTreeSet<NodeId> = self.peers.keys().copied().collect();
                TlsContext::load(files, me, members).map(Some)
            }
        }
    }
}

/// What the transport's threads share.
pub(crate) struct Shared {
    pub(crate) cfg: TcpConfig,
    pub(crate) counters: Counters,
    pub(crate) refusals: Refusals,
    pub(crate) stop: AtomicBool,
    /// Payload bytes announced by the messages under way on all inbound
    /// connections (at most twice [`Limits::max_message`]).
    pub(crate) reassembling: AtomicUsize,
    /// Bytes handed to the node thread and not yet taken
    /// ([`Limits::inbound_bytes`]).
    pub(crate) inbound: Arc<queue::InboundBudget>,
    pub(crate) logger: Logger,
    pub(crate) tls: Option<TlsContext>,
    /// The inbound connection each member holds (one per member: a newer
    /// one replaces it).
    pub(crate) inbound_of: Registry,
    /// The members now, where they listen, and each one's writer's flags
    /// (`cfg.peers` is what it started with).
    pub(crate) peers: PeerTable,
    /// Peers whose process is gone (see the `gone` module).
    pub(crate) gone: gone::GoneReports,
}

impl Shared {
    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// The counters now, with the bytes queued inbound.
    fn stats(&self) -> TransportStats {
        TransportStats {
            inbound_queued_bytes: self.inbound.queued() as u64,
            ..self.counters.snapshot()
        }
    }

    /// Counts, keeps and (rate-limited) logs a refusal; `outbound` when
    /// this member dialled; `who` is the member on the other end when
    /// known (see [`refusals`]).
    fn refuse(&self, e: &ConnectionError, outbound: bool, who: Option<NodeId>) {
        let what = match e {
            ConnectionError::Idle { .. } => "peer silent: connection closed (down, or cut off)",
            _ if outbound => "refused a peer we dialled",
            _ => "refused a connection",
        };
        // Kept and logged first: whoever sees the counter move finds it.
        self.refusals.record(&self.logger, what, e, who);
        self.counters.refused(e, outbound);
    }
}

/// TCP between members: see the [module docs](self).
pub struct TcpTransport {
    shared: Arc<Shared>,
    queues: BTreeMap<NodeId, outbound::PeerQueue>,
    local_addr: SocketAddr,
    threads: Vec<JoinHandle<()>>,
}

impl TcpTransport {
    /// Checks the configuration ([`TcpConfig::validate`]), binds the listen
    /// address and starts the acceptor and one writer per peer. Envelopes
    /// that pass every check go to `inbound`: a channel of [`Inbound`]
    /// ([`inbound_channel`](crate::runtime::inbound_channel)) keeps them in
    /// the byte budget ([`Limits::inbound_bytes`]) until the node thread
    /// takes them; with a channel of [`Envelope`]s each leaves the budget
    /// as it is handed on, and the channel's count is the only bound.
    ///
    /// # Errors
    /// [`TransportError::Bind`] when the address cannot be bound, or what
    /// [`TcpConfig::validate`] refuses.
    pub fn start<I>(
        cfg: TcpConfig,
        inbound: Sender<I>,
        logger: Logger,
    ) -> Result<Self, TransportError>
    where
        I: From<Inbound> + Send + 'static,
    {
        let tls = cfg.load_security()?;
        let listener = TcpListener::bind(cfg.listen).map_err(|source| TransportError::Bind {
            addr: cfg.listen,
            source,
        })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| TransportError::Bind {
                addr: cfg.listen,
                source,
            })?;
        let peers = cfg.peers.clone();
        let budget = cfg.limits.inbound_bytes;
        let queue_len = cfg.limits.queue_len.max(1);
        let table = PeerTable::new(&peers);
        let shared = Arc::new(Shared {
            cfg,
            counters: Counters::default(),
            refusals: Refusals::default(),
            stop: AtomicBool::new(false),
            reassembling: AtomicUsize::new(0),
            inbound: Arc::new(queue::InboundBudget::new(budget)),
            logger,
            tls,
            inbound_of: Registry::default(),
            peers: table,
            gone: gone::GoneReports::default(),
        });
        let deliver: inbound::Deliver = Arc::new(move |q| inbound.send(I::from(q)).is_ok());
        let mut threads = vec![inbound::spawn_acceptor(listener, shared.clone(), deliver)];
        let mut queues = BTreeMap::new();
        for (id, addr) in peers {
            let (tx, rx) = outbound::peer_queue(queue_len);
            queues.insert(id, tx);
            let flags = shared.peers.flags(id).unwrap_or_default();
            threads.push(outbound::spawn_writer(id, addr, flags, rx, shared.clone()));
        }
        Ok(Self {
            shared,
            queues,
            local_addr,
            threads,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Its counters now.
    pub fn stats(&self) -> TransportStats {
        self.shared.stats()
    }

    /// The last refusals (up to 64), oldest first: see
    /// [`StatsHandle::recent_refusals`].
    pub fn recent_refusals(&self) -> Vec<ConnectionError> {
        self.shared.refusals.recent()
    }

    /// A handle on the counters that outlives the transport.
    pub fn stats_handle(&self) -> StatsHandle {
        StatsHandle(self.shared.clone())
    }

    /// Closes every connection and joins the threads.
    pub fn shutdown(mut self) {
        self.stop_threads();
    }

    fn stop_threads(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.queues.clear();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for TcpTransport {
    fn drop(&mut self) {
        self.stop_threads();
    }
}

impl Transport for TcpTransport {
    fn send(&self, env: Envelope) -> bool {
        let Some(q) = self.queues.get(&NodeId(env.to)) else {
            bump(&self.shared.counters.dropped, 1);
            return false;
        };
        q.send(env, &self.shared)
    }

    fn reaches(&self, peer: NodeId) -> bool {
        self.queues.contains_key(&peer)
    }

    fn stats(&self) -> Option<TransportStats> {
        Some(self.shared.stats())
    }

    fn connected(&self, peer: NodeId) -> Option<bool> {
        let flags = self.shared.peers.flags(peer)?;
        Some(flags.up.load(Ordering::Relaxed))
    }

    fn configured_peers(&self) -> Option<BTreeMap<NodeId, SocketAddr>> {
        Some(self.shared.cfg.peers.clone())
    }

    fn set_peers(&mut self, peers: BTreeMap<NodeId, SocketAddr>) -> Vec<PeerRefused> {
        self.update_peers(peers)
    }

    fn refused_peers(&self) -> Vec<NodeId> {
        self.shared.gone.take()
    }
}

/// Reads a transport's counters from another thread.
#[derive(Clone)]
pub struct StatsHandle(Arc<Shared>);

impl StatsHandle {
    /// The counters now.
    pub fn stats(&self) -> TransportStats {
        self.0.stats()
    }

    /// The last refusals (up to 64), oldest first, each with the peer's
    /// address and the typed reason. Every refusal is kept here and
    /// counted, while the log holds at most one line per peer address,
    /// member and [kind](ConnectionError::kind) every 10 s.
    pub fn recent_refusals(&self) -> Vec<ConnectionError> {
        self.0.refusals.recent()
    }
}

impl std::fmt::Debug for StatsHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("StatsHandle").field(&self.stats()).finish()
    }
}
