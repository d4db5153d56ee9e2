//! Moving [`Envelope`]s between members over TCP.
//!
//! The node never touches this module; the [runtime](crate::runtime) hands
//! its outgoing envelopes to a [`Transport`] and feeds what arrives back in.
//! [`TcpTransport`] keeps one outbound connection per peer (reconnecting
//! with back-off) behind a bounded queue, so a slow or dead peer never
//! blocks the node or the other peers, and accepts inbound connections
//! that must open with a [`Hello`](crate::wire::Hello) naming a known
//! member of this cluster. Every refused connection or frame is counted
//! ([`TransportStats`]) and logged with the peer's address and the reason
//! ([`ConnectionError`]); none reaches the node.

mod inbound;
mod outbound;

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Sender, TrySendError};
use slog::Logger;
use thiserror::Error;

use crate::topology::NodeId;
use crate::wire::{Envelope, WireError, MAX_FRAME_LEN};

/// Where the runtime sends envelopes. Implementations must never block.
pub trait Transport: Send + 'static {
    /// Queues `env` for `env.to`. Returns `false` when it was dropped (queue
    /// full, unknown peer, shutting down); raft retransmits what matters.
    fn send(&self, env: Envelope) -> bool;
}

/// How a [`TcpTransport`] runs.
#[derive(Debug, Clone)]
pub struct TcpConfig {
    /// The cluster id every hello and envelope must carry.
    pub cluster_id: u64,
    /// This member.
    pub me: NodeId,
    /// Address to listen on (port 0 picks a free one).
    pub listen: SocketAddr,
    /// Every other member's address.
    pub peers: BTreeMap<NodeId, SocketAddr>,
    /// Envelopes queued per peer before new ones are dropped. Defaults to 4096.
    pub queue_len: usize,
    /// Largest frame accepted. Defaults to [`MAX_FRAME_LEN`].
    pub max_frame: usize,
    /// Time a new connection has to send its hello. Defaults to 2 s.
    pub hello_timeout: Duration,
    /// Time a frame has to arrive once it started (slow-drip senders are
    /// cut off). Defaults to 10 s.
    pub frame_timeout: Duration,
    /// Inbound connections open at once; more are refused. Defaults to 64.
    pub max_connections: usize,
    /// First and longest wait between reconnection attempts. Defaults to
    /// 20 ms and 1 s.
    pub backoff: (Duration, Duration),
}

impl TcpConfig {
    /// A configuration with the defaults.
    pub fn new(
        cluster_id: u64,
        me: NodeId,
        listen: SocketAddr,
        peers: BTreeMap<NodeId, SocketAddr>,
    ) -> Self {
        Self {
            cluster_id,
            me,
            listen,
            peers,
            queue_len: 4096,
            max_frame: MAX_FRAME_LEN,
            hello_timeout: Duration::from_secs(2),
            frame_timeout: Duration::from_secs(10),
            max_connections: 64,
            backoff: (Duration::from_millis(20), Duration::from_secs(1)),
        }
    }
}

/// The transport could not start.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}; is another member or process using it?")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Why an inbound connection was closed. Logged with the peer's address
/// and counted in [`TransportStats`]; nothing it carried reached the node.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ConnectionError {
    /// The caller sent no hello in time.
    #[error("{peer}: no hello within the timeout")]
    HelloTimeout {
        /// Remote address.
        peer: SocketAddr,
    },
    /// The hello or a frame could not be decoded, or was too large.
    #[error("{peer}: {source}")]
    Wire {
        /// Remote address.
        peer: SocketAddr,
        /// The decoding error.
        source: WireError,
    },
    /// The caller speaks another protocol version.
    #[error("{peer}: protocol version {got}, this member speaks {ours}")]
    Version {
        /// Remote address.
        peer: SocketAddr,
        /// Its version.
        got: u32,
        /// Ours.
        ours: u32,
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
    #[error("{peer}: claims to be node {from}, which is not a member")]
    UnknownSender {
        /// Remote address.
        peer: SocketAddr,
        /// Claimed id.
        from: u64,
    },
    /// The caller wants another node.
    #[error("{peer}: called node {to}, this is node {me}")]
    WrongRecipient {
        /// Remote address.
        peer: SocketAddr,
        /// Addressee.
        to: u64,
        /// This node.
        me: u64,
    },
    /// An envelope names a sender, receiver or cluster other than the hello.
    #[error("{peer}: envelope from {from} to {to} on a connection of node {hello_from}")]
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
    /// A frame started but did not finish in time (slow drip).
    #[error("{peer}: a frame took longer than the frame timeout")]
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
}

/// Counters of a transport. Everything refused is counted here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransportStats {
    /// Inbound connections accepted (hello checked).
    pub accepted: u64,
    /// Inbound connections refused or closed for a [`ConnectionError`].
    pub refused: u64,
    /// Of those: no hello in time.
    pub hello_timeouts: u64,
    /// Of those: undecodable hellos or frames, or oversized frames.
    pub malformed: u64,
    /// Of those: another cluster or protocol version.
    pub wrong_cluster: u64,
    /// Of those: unknown sender or wrong recipient.
    pub unknown_peer: u64,
    /// Of those: envelopes not matching their connection's hello.
    pub spoofed: u64,
    /// Of those: slow-drip frames.
    pub slow: u64,
    /// Of those: over the connection limit.
    pub over_limit: u64,
    /// Envelopes received and handed to the node.
    pub frames_in: u64,
    /// Envelopes written to peers.
    pub frames_out: u64,
    /// Envelopes dropped because a peer's queue was full or it was unreachable.
    pub dropped: u64,
    /// Failed outbound connection attempts.
    pub connect_failures: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    accepted: AtomicU64,
    hello_timeouts: AtomicU64,
    malformed: AtomicU64,
    wrong_cluster: AtomicU64,
    unknown_peer: AtomicU64,
    spoofed: AtomicU64,
    slow: AtomicU64,
    over_limit: AtomicU64,
    frames_in: AtomicU64,
    frames_out: AtomicU64,
    dropped: AtomicU64,
    connect_failures: AtomicU64,
}

fn bump(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

impl Counters {
    fn refused(&self, e: &ConnectionError) {
        let c = match e {
            ConnectionError::HelloTimeout { .. } => &self.hello_timeouts,
            ConnectionError::Wire { .. } => &self.malformed,
            ConnectionError::Version { .. } | ConnectionError::WrongCluster { .. } => {
                &self.wrong_cluster
            }
            ConnectionError::UnknownSender { .. } | ConnectionError::WrongRecipient { .. } => {
                &self.unknown_peer
            }
            ConnectionError::Spoofed { .. } => &self.spoofed,
            ConnectionError::SlowFrame { .. } => &self.slow,
            ConnectionError::TooManyConnections { .. } => &self.over_limit,
        };
        bump(c, 1);
    }

    fn snapshot(&self) -> TransportStats {
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
            frames_in: g(&self.frames_in),
            frames_out: g(&self.frames_out),
            dropped: g(&self.dropped),
            connect_failures: g(&self.connect_failures),
        };
        TransportStats {
            refused: s.hello_timeouts
                + s.malformed
                + s.wrong_cluster
                + s.unknown_peer
                + s.spoofed
                + s.slow
                + s.over_limit,
            ..s
        }
    }
}

/// What the transport's threads share.
pub(crate) struct Shared {
    pub(crate) cfg: TcpConfig,
    pub(crate) counters: Counters,
    pub(crate) stop: AtomicBool,
    pub(crate) logger: Logger,
}

impl Shared {
    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// TCP between members: see the [module docs](self).
pub struct TcpTransport {
    shared: Arc<Shared>,
    queues: BTreeMap<NodeId, Sender<Envelope>>,
    local_addr: SocketAddr,
    threads: Vec<JoinHandle<()>>,
}

impl TcpTransport {
    /// Binds the listen address and starts the acceptor and one writer per
    /// peer. Envelopes that pass the checks go to `inbound`.
    ///
    /// # Errors
    /// [`TransportError::Bind`] when the address cannot be bound.
    pub fn start(
        cfg: TcpConfig,
        inbound: Sender<Envelope>,
        logger: Logger,
    ) -> Result<Self, TransportError> {
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
        let queue_len = cfg.queue_len.max(1);
        let shared = Arc::new(Shared {
            cfg,
            counters: Counters::default(),
            stop: AtomicBool::new(false),
            logger,
        });
        let mut threads = vec![inbound::spawn_acceptor(listener, shared.clone(), inbound)];
        let mut queues = BTreeMap::new();
        for (id, addr) in peers {
            let (tx, rx) = crossbeam_channel::bounded(queue_len);
            queues.insert(id, tx);
            threads.push(outbound::spawn_writer(id, addr, rx, shared.clone()));
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
        self.shared.counters.snapshot()
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
        match q.try_send(env) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                bump(&self.shared.counters.dropped, 1);
                false
            }
        }
    }
}

/// Reads a transport's counters from another thread.
#[derive(Clone)]
pub struct StatsHandle(Arc<Shared>);

impl StatsHandle {
    /// The counters now.
    pub fn stats(&self) -> TransportStats {
        self.0.counters.snapshot()
    }
}

impl std::fmt::Debug for StatsHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("StatsHandle").field(&self.stats()).finish()
    }
}
