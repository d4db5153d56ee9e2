//! The outbound side: one writer thread per peer, with a bounded queue,
//! reconnection with back-off, and batching of whatever is queued. With
//! TLS, each connection is a fresh mutual handshake in which the peer must
//! present the certificate of the node dialled.

use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};

use super::identity::PeerIdentity;
use super::link::Link;
use super::stats::bump;
use super::tls::{self, TlsContext};
use super::{ConnectionError, Shared, TcpConfig, TransportError};
use crate::topology::NodeId;
use crate::wire::{encode_frame, Envelope, Hello};

/// Envelopes written in one go at most.
const BATCH: usize = 256;

pub(super) fn spawn_writer(
    peer: NodeId,
    addr: SocketAddr,
    queue: Receiver<Envelope>,
    shared: Arc<Shared>,
) -> JoinHandle<()> {
    thread::Builder::new()
        .name(format!("sc-write-{}-{}", shared.cfg.me.0, peer.0))
        .spawn(move || write_loop(peer, addr, &queue, &shared))
        .expect("spawning a thread")
}

fn write_loop(peer: NodeId, addr: SocketAddr, queue: &Receiver<Envelope>, shared: &Shared) {
    let (min, max) = shared.cfg.limits.backoff;
    let mut wait = min;
    let mut last_refusal: Option<ConnectionError> = None;
    while !shared.stopping() {
        let mut stream = match connect(peer, addr, shared) {
            Ok(Some(s)) => s,
            outcome => {
                match outcome {
                    Err(e) => {
                        shared.counters.refused(&e, true);
                        // Logged loudly once per distinct reason, not per retry.
                        if last_refusal.as_ref() != Some(&e) {
                            slog::warn!(shared.logger, "refused a peer we dialled";
                                "peer" => %addr, "node" => peer.0, "reason" => %e);
                            last_refusal = Some(e);
                        }
                    }
                    Ok(_) => bump(&shared.counters.connect_failures, 1),
                }
                // Unreachable: what is queued is stale by the time it could go.
                let dropped = queue.try_iter().count() as u64;
                bump(&shared.counters.dropped, dropped);
                sleep_unless_stopping(wait, shared);
                wait = (wait * 2).min(max);
                continue;
            }
        };
        wait = min;
        last_refusal = None;
        slog::debug!(shared.logger, "connected"; "peer" => peer.0, "addr" => %addr);
        if let Err(e) = pump(&mut stream, queue, shared) {
            slog::info!(shared.logger, "connection lost"; "peer" => peer.0, "error" => %e);
        }
    }
}

/// Opens a connection to `peer` and, with TLS, completes the handshake.
/// `Ok(None)` when the peer is unreachable or the member is stopping.
fn open(
    peer: NodeId,
    addr: SocketAddr,
    cfg: &TcpConfig,
    tls: Option<&TlsContext>,
    logger: &slog::Logger,
    stopping: &dyn Fn() -> bool,
) -> Result<Option<Link>, ConnectionError> {
    let unreachable = |e: std::io::Error| ConnectionError::Unreachable {
        peer: addr,
        kind: e.kind(),
    };
    let mut stream =
        TcpStream::connect_timeout(&addr, Duration::from_secs(1)).map_err(unreachable)?;
    let _ = stream.set_nodelay(true);
    stream
        .set_write_timeout(Some(Duration::from_secs(5)))
        .map_err(unreachable)?;
    let Some(ctx) = tls else {
        return Ok(Some(Link::Plain(stream)));
    };
    stream
        .set_read_timeout(Some(Duration::from_millis(50)))
        .map_err(unreachable)?;
    let mut conn = ctx
        .connect(peer, addr, logger)
        .map_err(|e| tls::refusal(&e, addr))?;
    let deadline = Instant::now() + cfg.limits.hello_timeout;
    if !tls::handshake(&mut conn, &mut stream, addr, deadline, stopping)? {
        return Ok(None);
    }
    Ok(Some(Link::Tls(Box::new(conn), stream)))
}

fn connect(
    peer: NodeId,
    addr: SocketAddr,
    shared: &Shared,
) -> Result<Option<Link>, ConnectionError> {
    let tls = shared.tls.as_ref();
    let link = match open(peer, addr, &shared.cfg, tls, &shared.logger, &|| {
        shared.stopping()
    }) {
        Ok(Some(link)) => link,
        // A peer that does not answer (down, paused) is unreachable, not refused.
        Ok(None)
        | Err(ConnectionError::Unreachable { .. } | ConnectionError::HelloTimeout { .. }) => {
            return Ok(None)
        }
        Err(e) => return Err(e),
    };
    if tls.is_some() {
        bump(&shared.counters.handshakes, 1);
    }
    let mut link = link;
    let mut hello = Vec::new();
    let h = Hello::new(shared.cfg.cluster_id, shared.cfg.me.0, peer.0);
    if encode_frame(&h, &mut hello).is_err() || link.send(&hello).is_err() {
        return Ok(None);
    }
    Ok(Some(link))
}

/// Writes queued envelopes until the connection fails or the member stops.
fn pump(link: &mut Link, queue: &Receiver<Envelope>, shared: &Shared) -> std::io::Result<()> {
    let mut buf = Vec::new();
    loop {
        if shared.stopping() {
            return Ok(());
        }
        let first = match queue.recv_timeout(Duration::from_millis(50)) {
            Ok(env) => env,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return Ok(()),
        };
        buf.clear();
        let mut n = 0;
        for env in std::iter::once(first).chain(queue.try_iter().take(BATCH - 1)) {
            match encode_frame(&env, &mut buf) {
                Ok(()) => n += 1,
                Err(e) => {
                    bump(&shared.counters.dropped, 1);
                    slog::error!(shared.logger, "envelope too large to send"; "error" => %e);
                }
            }
        }
        link.send(&buf)?;
        bump(&shared.counters.frames_out, n);
    }
}

fn sleep_unless_stopping(d: Duration, shared: &Shared) {
    let step = Duration::from_millis(10);
    let mut left = d;
    while !left.is_zero() && !shared.stopping() {
        let s = step.min(left);
        thread::sleep(s);
        left -= s;
    }
}

/// Dials members the way the transport's writers do (TCP, then the mutual
/// TLS handshake in which the peer must present the certificate of the
/// node dialled) and hangs up after the handshake, sending nothing else.
/// For health checks, diagnosing a PKI, and measuring handshake cost.
pub struct Dialer {
    cfg: TcpConfig,
    tls: Option<TlsContext>,
    logger: slog::Logger,
}

impl std::fmt::Debug for Dialer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dialer")
            .field("me", &self.cfg.me)
            .field("security", &self.cfg.security)
            .finish()
    }
}

impl Dialer {
    /// A dialer speaking as `cfg.me`, with `cfg`'s security and limits.
    ///
    /// # Errors
    /// What [`TcpTransport::start`](super::TcpTransport::start) would
    /// refuse about `cfg`'s security (bad files, plaintext off loopback).
    pub fn new(cfg: TcpConfig) -> Result<Self, TransportError> {
        let tls = cfg.load_security()?;
        Ok(Self {
            cfg,
            tls,
            logger: slog::Logger::root(slog::Discard, slog::o!()),
        })
    }

    /// Connects to `peer` at `addr`, completes the handshake and sends the
    /// hello a member sends, then hangs up. With TLS the identity returned
    /// is the one the peer's certificate proved; with plaintext nothing is
    /// proved and it is simply `peer`.
    ///
    /// # Errors
    /// [`ConnectionError::Unreachable`], or the refusal the transport
    /// would log: [`ConnectionError::Tls`],
    /// [`ConnectionError::CertificateIdentity`],
    /// [`ConnectionError::HelloTimeout`].
    pub fn check(&self, peer: NodeId, addr: SocketAddr) -> Result<PeerIdentity, ConnectionError> {
        let tls = self.tls.as_ref();
        let link = open(peer, addr, &self.cfg, tls, &self.logger, &|| false)?;
        let Some(mut link) = link else {
            return Err(ConnectionError::Tls {
                peer: addr,
                reason: super::TlsRefusal::Incomplete,
            });
        };
        let proved = match &link {
            Link::Tls(conn, _) => tls::peer_identity(conn),
            Link::Plain(_) => Some(PeerIdentity::new(self.cfg.cluster_id, peer)),
        };
        let mut hello = Vec::new();
        let h = Hello::new(self.cfg.cluster_id, self.cfg.me.0, peer.0);
        if encode_frame(&h, &mut hello).is_ok() {
            let _ = link.send(&hello);
        }
        proved.ok_or(ConnectionError::Tls {
            peer: addr,
            reason: super::TlsRefusal::NoCertificate,
        })
    }
}
