//! The outbound side: one writer thread per peer, with a bounded queue,
//! reconnection with back-off, and batching of whatever is queued. With
//! TLS, each connection is a fresh mutual handshake in which the peer must
//! present the certificate of the node dialled. A connection counts as
//! established only once the peer answers this member's hello with its
//! own; until then the back-off keeps growing, so a member its peer
//! refuses retries at the back-off's pace and learns why
//! ([`ConnectionError::RefusedByPeer`]).
//!
//! An envelope with more than a fragment's worth of payload (1 MiB, less
//! when `Limits::max_frame` is smaller) goes as fragments
//! ([`Fragmenter`]); its payload is written from the envelope, not copied
//! first. A snapshot goes one fragment per batch and the envelopes queued
//! behind it go between its fragments, so a heartbeat waits behind at most
//! one fragment, never behind a whole snapshot (raft sends a peer nothing
//! that depends on a snapshot while it waits for one, as etcd and TiKV
//! send snapshots apart from the message stream). Any other large envelope
//! (an append of large commands, a reconciliation's divergent entries)
//! keeps its place: its fragments go back to back and nothing queued after
//! it overtakes it, since raft would take an append that arrives before an
//! earlier one for a gap, reject it and send both again. (So one queued
//! while a snapshot is under way holds what follows it, heartbeats too,
//! until the snapshot and it are sent.)

use std::collections::VecDeque;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};

use super::hello::{agree, HelloReader, MAX_HELLO_LEN};
use super::identity::PeerIdentity;
use super::link::{Fill, Link};
use super::liveness::{Dead, Liveness, KEEPALIVE};
use super::peers::PeerFlags;
use super::stats::bump;
use super::tls::{self, Session, Stale, TlsContext};
use super::{ConnectionError, Shared, TcpConfig, TlsRefusal, TransportError};
use crate::topology::NodeId;
use crate::wire::{encode_frame, Downgraded, Envelope, Fragmenter, Hello};

/// Envelopes written in one go at most.
const BATCH: usize = 256;

/// An envelope on its way to a peer's writer.
pub(super) struct Outgoing {
    env: Envelope,
    /// For a large envelope (sent as fragments): its share of the peer's
    /// budget of large bytes queued.
    large: Option<Ticket>,
}

/// Payload bytes of a large envelope counted against its peer's budget
/// until the envelope is sent or dropped, wherever that happens; for a
/// snapshot, also the peer's one snapshot slot.
struct Ticket {
    bytes: usize,
    queued: Arc<AtomicUsize>,
    snapshot: Option<Arc<AtomicBool>>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.queued.fetch_sub(self.bytes, Ordering::Relaxed);
        if let Some(slot) = &self.snapshot {
            slot.store(false, Ordering::Release);
        }
    }
}

/// Where the transport queues envelopes for one peer's writer.
pub(super) struct PeerQueue {
    tx: Sender<Outgoing>,
    /// Payload bytes of the large envelopes queued or being sent.
    large: Arc<AtomicUsize>,
    /// A large snapshot is queued or being sent: raft's retry of one still
    /// on its way (it gives up on a snapshot after a few election timeouts,
    /// however long the transfer takes) is dropped, not sent after it.
    snapshot: Arc<AtomicBool>,
}

impl PeerQueue {
    /// Queues `env`, unless the queue is full, or it is larger than the
    /// message limit alone or with the large envelopes already queued
    /// (one snapshot at a time: raft sends another if this one is lost).
    /// `false` when dropped; counted as `dropped`.
    pub(super) fn send(&self, env: Envelope, shared: &Shared) -> bool {
        let limits = &shared.cfg.limits;
        let len = env.raft.len() + env.control.len();
        let mut large = None;
        if len > limits.piece_len() {
            if len > limits.max_message {
                bump(&shared.counters.dropped, 1);
                slog::error!(shared.logger, "envelope larger than the message limit not sent; raise Limits::max_message at every member if snapshots or commands are this large";
                    "to" => env.to, "bytes" => len, "max_message" => limits.max_message);
                return false;
            }
            let snapshot = env.carries_snapshot();
            if snapshot && self.snapshot.swap(true, Ordering::AcqRel) {
                bump(&shared.counters.dropped, 1);
                slog::debug!(shared.logger, "snapshot dropped: another is on its way to the peer";
                    "to" => env.to, "bytes" => len);
                return false;
            }
            let before = self.large.fetch_add(len, Ordering::Relaxed);
            // Counted from here on: dropping the ticket gives it back.
            let ticket = Ticket {
                bytes: len,
                queued: self.large.clone(),
                snapshot: snapshot.then(|| self.snapshot.clone()),
            };
            if before + len > limits.max_message {
                drop(ticket);
                bump(&shared.counters.dropped, 1);
                slog::debug!(shared.logger, "large envelope dropped: others are queued for the peer";
                    "to" => env.to, "bytes" => len, "queued" => before);
                return false;
            }
            large = Some(ticket);
        }
        match self.tx.try_send(Outgoing { env, large }) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                bump(&shared.counters.dropped, 1);
                false
            }
        }
    }
}

/// A queue for a peer and its writer's end.
pub(super) fn peer_queue(len: usize) -> (PeerQueue, Receiver<Outgoing>) {
    let (tx, rx) = crossbeam_channel::bounded(len);
    let large = Arc::new(AtomicUsize::new(0));
    let snapshot = Arc::new(AtomicBool::new(false));
    let queue = PeerQueue {
        tx,
        large,
        snapshot,
    };
    (queue, rx)
}

/// Starts the writer to `peer` at `addr`; it stops when the transport
/// stops or `flags.retired` is set (the peer moved or left).
pub(super) fn spawn_writer(
    peer: NodeId,
    addr: SocketAddr,
    flags: Arc<PeerFlags>,
    queue: Receiver<Outgoing>,
    shared: Arc<Shared>,
) -> JoinHandle<()> {
    thread::Builder::new()
        .name(format!("sc-write-{}-{}", shared.cfg.me.0, peer.0))
        .spawn(move || write_loop((peer, addr, &flags), &queue, &shared))
        .expect("spawning a thread")
}

/// Connects, writes until the connection fails, and waits before the
/// next attempt: the back-off doubles after every failed, refused or lost
/// connection, and returns to its minimum only once a peer confirmed the
/// hello. A connection lost after it had been up for the longest back-off
/// (a peer that restarted, a CA change) is replaced at once, and the wait
/// is cut short when the peer connects to this member (it is back).
/// Refusals are counted, kept and logged (rate-limited) with the peer's
/// address and the reason. What a dead connection was about to be given
/// goes on the next one ([`Carry`]).
fn write_loop(
    (peer, addr, flags): (NodeId, SocketAddr, &PeerFlags),
    queue: &Receiver<Outgoing>,
    shared: &Arc<Shared>,
) {
    let (min, max) = shared.cfg.limits.backoff;
    let mut wait = min;
    let mut carry = Carry::default();
    // Failed attempts since the peer last answered (for the log).
    let mut unreachable = 0u64;
    while !shared.stopping() && !flags.retired.load(Ordering::Acquire) {
        match connect(peer, addr, shared) {
            Ok(Dial::Up(mut conn)) => {
                wait = min;
                flags.back.store(false, Ordering::Release);
                if unreachable > 0 {
                    slog::info!(shared.logger, "peer reachable again";
                        "peer" => peer.0, "addr" => %addr, "failed_attempts" => unreachable);
                    unreachable = 0;
                }
                slog::debug!(shared.logger, "connected"; "peer" => peer.0, "addr" => %addr);
                let up = Instant::now();
                flags.up.store(true, Ordering::Relaxed);
                let pumped = pump(&mut conn, queue, shared, &mut carry);
                flags.up.store(false, Ordering::Relaxed);
                if let Err(why) = pumped {
                    if let Lost::Dead(_) = why {
                        bump(&shared.counters.dead_links, 1);
                    }
                    slog::info!(shared.logger, "connection lost";
                        "peer" => peer.0, "addr" => %addr, "reason" => %why);
                    super::gone::after_lost(&why, (peer, addr, flags), shared);
                    if up.elapsed() >= max {
                        continue; // a healthy connection ended: replace it now
                    }
                }
            }
            outcome => {
                match outcome {
                    Err(e) => shared.refuse(&e, true, Some(peer)),
                    Ok(Dial::Unreachable(why)) => {
                        unreachable += 1;
                        log_unreachable(shared, peer, addr, unreachable, why);
                        bump(&shared.counters.connect_failures, 1);
                    }
                    Ok(_) => bump(&shared.counters.connect_failures, 1),
                }
                // Unreachable: what is queued is stale by the time it could go.
                let dropped = queue.try_iter().count() as u64 + carry.n;
                carry = Carry::default();
                bump(&shared.counters.dropped, dropped);
            }
        }
        if sleep_unless_back(wait, flags, shared) {
            wait = min;
        } else {
            wait = (wait * 2).min(max);
        }
    }
}

/// Logs the `attempts`-th failed attempt in a row to reach a peer, at the
/// 1st, 2nd, 4th, 8th, ... (with the back-off, a down peer costs a line
/// per doubling, not one per attempt).
fn log_unreachable(shared: &Shared, peer: NodeId, addr: SocketAddr, attempts: u64, why: &str) {
    if attempts.is_power_of_two() {
        slog::warn!(shared.logger, "peer unreachable (down, or cut off); retrying with back-off";
            "peer" => peer.0, "addr" => %addr, "attempts" => attempts, "reason" => why);
    }
}

/// Envelopes encoded for a connection found dead before they were
/// written: they go first on the next connection (dropped, and counted,
/// if it cannot be opened or agrees on another protocol version).
#[derive(Default)]
struct Carry {
    frames: Vec<u8>,
    n: u64,
    /// The protocol version they were written in (dropped when the next
    /// connection agrees on another: raft sends again).
    version: u32,
}

/// A connection the peer confirmed.
struct Connected {
    link: Link,
    /// The peer and its address.
    peer: NodeId,
    addr: SocketAddr,
    /// With TLS: what the handshake established.
    session: Option<Session>,
    /// The protocol version agreed in the hellos.
    version: u32,
}

/// Opens a connection to `peer`, completes the handshake (with TLS),
/// sends the hello and waits for the peer's confirming hello.
/// `on_handshake` runs once a TLS handshake completed. `Ok(None)` when the
/// member is stopping, or the peer went away during the handshake.
///
/// # Errors
/// [`ConnectionError::Unreachable`], [`ConnectionError::HelloTimeout`]
/// (no handshake or confirmation in time), a TLS refusal, or what
/// [`confirm`] refuses.
fn open(
    peer: NodeId,
    addr: SocketAddr,
    cfg: &TcpConfig,
    tls: Option<&TlsContext>,
    logger: &slog::Logger,
    stopping: &dyn Fn() -> bool,
    on_handshake: &dyn Fn(),
) -> Result<Option<Connected>, ConnectionError> {
    let unreachable = |e: std::io::Error| ConnectionError::Unreachable {
        peer: addr,
        kind: e.kind(),
    };
    let mut stream =
        TcpStream::connect_timeout(&addr, Duration::from_secs(1)).map_err(unreachable)?;
    let _ = stream.set_nodelay(true);
    stream
        .set_write_timeout(Some(Duration::from_secs(5)))
        .and_then(|()| stream.set_read_timeout(Some(Duration::from_millis(50))))
        .map_err(unreachable)?;
    let deadline = Instant::now() + cfg.limits.hello_timeout;
    let (mut link, session) = match tls {
        None => (Link::Plain(stream), None),
        Some(ctx) => {
            let (mut conn, generation) = ctx
                .connect(peer, addr, logger)
                .map_err(|e| tls::refusal(&e, addr))?;
            if !tls::handshake(&mut conn, &mut stream, addr, deadline, stopping)? {
                return Ok(None);
            }
            on_handshake();
            let session = tls::session(&conn, generation);
            (Link::Tls(Box::new(conn), stream), Some(session))
        }
    };
    let mut hello = Vec::new();
    let h = Hello::new(cfg.cluster_id, cfg.me.0, peer.0)
        .with_fingerprint(cfg.fingerprint)
        .with_range(cfg.protocol);
    if encode_frame(&h, &mut hello).is_err() {
        return Ok(None);
    }
    if link.send(&hello).is_err() {
        // The handshake passed and the peer hung up at once.
        return Err(ConnectionError::RefusedByPeer {
            peer: addr,
            alert: None,
        });
    }
    let Some(version) = confirm(&mut link, cfg, peer, addr, deadline, stopping)? else {
        return Ok(None);
    };
    Ok(Some(Connected {
        link,
        peer,
        addr,
        session,
        version,
    }))
}

/// Waits for the peer's answering hello: the peer checked this member's
/// certificate and hello and accepts the connection, in the protocol
/// version returned. `Ok(None)` when the member is stopping.
///
/// # Errors
/// [`ConnectionError::RefusedByPeer`] when it closes or sends an alert
/// first; [`ConnectionError::HelloTimeout`] past `deadline`; an answer
/// that is not a hello ([`ConnectionError::Wire`],
/// [`ConnectionError::HelloTooLarge`]), of another version or cluster, or
/// from another node ([`ConnectionError::WrongResponder`]).
fn confirm(
    link: &mut Link,
    cfg: &TcpConfig,
    peer: NodeId,
    addr: SocketAddr,
    deadline: Instant,
    stopping: &dyn Fn() -> bool,
) -> Result<Option<u32>, ConnectionError> {
    let mut buf = vec![0u8; MAX_HELLO_LEN];
    let mut reader = HelloReader::default();
    loop {
        if stopping() {
            return Ok(None);
        }
        if Instant::now() >= deadline {
            return Err(ConnectionError::HelloTimeout { peer: addr });
        }
        let mut done = None;
        let mut failed = None;
        let mut sink = |bytes: &[u8]| {
            if done.is_none() && failed.is_none() {
                match reader.push(bytes, addr) {
                    Ok(got) => done = got,
                    Err(e) => failed = Some(e),
                }
            }
        };
        let fill = match link.fill(&mut buf, &mut sink, addr) {
            Ok(fill) => fill,
            Err(ConnectionError::Tls {
                reason: TlsRefusal::AlertReceived { alert },
                ..
            }) => {
                return Err(ConnectionError::RefusedByPeer {
                    peer: addr,
                    alert: Some(alert),
                })
            }
            Err(e) => return Err(e),
        };
        if let Some(e) = failed {
            return Err(e);
        }
        if let Some((answer, _)) = done {
            return check_answer(&answer, cfg, peer, addr).map(Some);
        }
        if let Fill::Closed = fill {
            return Err(ConnectionError::RefusedByPeer {
                peer: addr,
                alert: None,
            });
        }
    }
}

/// The answer must come from the node dialled, to this member, in this
/// cluster, in a version the two agree on (returned).
fn check_answer(
    h: &Hello,
    cfg: &TcpConfig,
    peer: NodeId,
    addr: SocketAddr,
) -> Result<u32, ConnectionError> {
    let version = agree(cfg.protocol, h, addr)?;
    if h.cluster_id != cfg.cluster_id {
        return Err(ConnectionError::WrongCluster {
            peer: addr,
            got: h.cluster_id,
            expected: cfg.cluster_id,
        });
    }
    if h.from != peer.0 || h.to != cfg.me.0 {
        return Err(ConnectionError::WrongResponder {
            peer: addr,
            expected: peer.0,
            from: h.from,
            to: h.to,
        });
    }
    let sections = h.differences(cfg.fingerprint.as_ref());
    if !sections.is_empty() {
        return Err(ConnectionError::TopologyDiffers {
            peer: addr,
            node: peer.0,
            sections,
        });
    }
    Ok(version)
}

/// Dials `peer` for its writer: a confirmed connection, a peer that does
/// not answer (TCP connect refused or timed out, no handshake or hello in
/// time, closed during the handshake without an alert), or a refusal.
fn connect(peer: NodeId, addr: SocketAddr, shared: &Shared) -> Result<Dial, ConnectionError> {
    let tls = shared.tls.as_ref();
    let stopping = || shared.stopping();
    let handshake = || bump(&shared.counters.handshakes, 1);
    match open(
        peer,
        addr,
        &shared.cfg,
        tls,
        &shared.logger,
        &stopping,
        &handshake,
    ) {
        Ok(Some(c)) => Ok(Dial::Up(c)),
        Ok(None) => Ok(Dial::Gone),
        // A peer that does not answer (down, paused) is unreachable, not refused.
        Err(ConnectionError::Unreachable { .. }) => Ok(Dial::Unreachable("TCP connect failed")),
        Err(ConnectionError::HelloTimeout { .. }) => {
            Ok(Dial::Unreachable("no handshake or hello within the timeout"))
        }
        // The connection was closed during the TLS handshake without an
        // alert: nothing behind the address answered (a relay or proxy
        // whose member is down). A member that refuses this one answers
        // with an alert (a refusal, logged as such); one in plaintext mode
        // logs why on its side.
        Err(ConnectionError::Tls {
            reason: TlsRefusal::Incomplete,
            ..
        }) => Ok(Dial::Unreachable(
            "closed during the TLS handshake without an alert (a relay or proxy whose member is down?)",
        )),
        Err(e) => Err(e),
    }
}

/// What dialling a peer came to (refusals are errors).
enum Dial {
    /// A confirmed connection.
    Up(Connected),
    /// Nothing answered: why, for the log.
    Unreachable(&'static str),
    /// The member is stopping, or the peer went away mid-handshake.
    Gone,
}

/// Why a confirmed connection ended.
#[derive(Debug)]
pub(super) enum Lost {
    /// Writing failed: the peer closed, or the network failed.
    Io(std::io::Error),
    /// The peer's certificate expired, or the CA changed.
    Stale(Stale),
    /// Found dead before a write (see [`Liveness::check`]).
    Dead(Dead),
}

impl std::fmt::Display for Lost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Io(e) => write!(f, "{e}"),
            Self::Stale(Stale::Expired) => f.write_str("the peer's certificate expired"),
            Self::Stale(Stale::CaChanged) => f.write_str("the CA changed: re-handshaking"),
            Self::Dead(d) => write!(f, "{d}"),
        }
    }
}

/// The large envelope being sent as fragments.
struct Sending {
    fragments: Fragmenter,
    /// Whether envelopes queued after it may overtake it (a snapshot).
    overtakable: bool,
    _ticket: Ticket,
}

/// Writes queued envelopes until the connection fails, the peer's
/// certificate expires, the CA changes, the connection is found dead, or
/// the member stops. Each batch holds what is queued (up to [`BATCH`]
/// envelopes), a keepalive when one is due, and the next fragment of the
/// large envelope being sent, if any. Queued snapshots wait their turn in
/// `snapshots`; a large envelope that must keep its place and arrives
/// while a snapshot is being sent waits in `next`, and nothing queued
/// after it is taken meanwhile. Before each batch is written, and at each
/// idle wake, the connection is checked ([`Liveness::check`]): a batch
/// encoded for a dead connection goes into `carry`, for the next one.
/// What is under way when a write fails is lost with it (raft sends
/// again).
fn pump(
    conn: &mut Connected,
    queue: &Receiver<Outgoing>,
    shared: &Shared,
    carry: &mut Carry,
) -> Result<(), Lost> {
    let limits = &shared.cfg.limits;
    let piece_len = limits.piece_len();
    let mut alive = Liveness::new(limits.keepalive, limits.idle_timeout);
    if carry.n > 0 && carry.version == conn.version {
        conn.link.send(&carry.frames).map_err(Lost::Io)?;
        bump(&shared.counters.frames_out, carry.n);
    } else {
        // Written in another version (the peer restarted as another
        // build): dropped, raft sends again.
        bump(&shared.counters.dropped, carry.n);
    }
    *carry = Carry::default();
    let mut buf = Vec::new();
    let mut snapshots: VecDeque<(Envelope, Ticket)> = VecDeque::new();
    let mut next: Option<(Envelope, Ticket)> = None;
    let mut sending: Option<Sending> = None;
    let mut message = 0u64;
    loop {
        if shared.stopping() {
            return Ok(());
        }
        still_good(conn, shared)?;
        // The queue is read unless a large envelope that keeps its place
        // is being sent or waits; it waits for envelopes only when no
        // fragment is due.
        let taking = next.is_none() && sending.as_ref().is_none_or(|s| s.overtakable);
        let idle = sending.is_none() && snapshots.is_empty() && next.is_none();
        let first = if idle {
            match queue.recv_timeout(Duration::from_millis(50)) {
                Ok(out) => Some(out),
                Err(RecvTimeoutError::Timeout) => {
                    idle_check(conn, &mut alive, shared)?;
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => return Ok(()),
            }
        } else {
            None
        };
        buf.clear();
        let limit = if taking { BATCH } else { 0 };
        let taken = take_batch(first, queue, limit, &mut buf, (conn.version, shared));
        let n = taken.encoded;
        snapshots.extend(taken.snapshots);
        if taken.next.is_some() {
            next = taken.next;
        }
        // Not written into a connection the peer closed: kept for the next.
        if let Err(dead) = alive.check(&mut conn.link, conn.addr) {
            *carry = Carry {
                frames: std::mem::take(&mut buf),
                n,
                version: conn.version,
            };
            return Err(Lost::Dead(dead));
        }
        if alive.keepalive_due() {
            buf.extend_from_slice(&KEEPALIVE);
            bump(&shared.counters.keepalives_out, 1);
        }
        if sending.is_none() {
            let start = (next.take().map(|(env, ticket)| (env, ticket, false))).or_else(|| {
                snapshots
                    .pop_front()
                    .map(|(env, ticket)| (env, ticket, true))
            });
            if let Some((env, ticket, overtakable)) = start {
                message += 1;
                sending = Some(Sending {
                    fragments: Fragmenter::new(env, message, piece_len),
                    overtakable,
                    _ticket: ticket,
                });
            }
        }
        let piece = match &mut sending {
            Some(s) => s.fragments.next_fragment(&mut buf),
            None => None,
        };
        conn.link.send(&buf).map_err(Lost::Io)?;
        if let Some(piece) = piece {
            conn.link.send(piece).map_err(Lost::Io)?;
            bump(&shared.counters.fragments_out, 1);
        }
        bump(&shared.counters.frames_out, n);
        if sending.as_ref().is_some_and(|s| s.fragments.is_done()) {
            sending = None;
            bump(&shared.counters.frames_out, 1);
            bump(&shared.counters.messages_fragmented, 1);
        }
    }
}

/// Between batches: the connection's TLS session must still hold (the
/// peer's certificate unexpired, the CA unchanged); and when the peer
/// connected to this member anew, a keepalive goes at once: if it
/// restarted on a host that never closed this connection (a reboot), the
/// keepalive draws a reset, seen at the next check.
fn still_good(conn: &mut Connected, shared: &Shared) -> Result<(), Lost> {
    if let (Some(session), Some(ctx)) = (&conn.session, &shared.tls) {
        ctx.poll(&shared.logger);
        if let Some(stale) = session.stale(ctx, SystemTime::now()) {
            return Err(Lost::Stale(stale));
        }
    }
    let back = shared.peers.flags(conn.peer);
    if back.is_some_and(|f| f.back.swap(false, Ordering::AcqRel)) {
        conn.link.send(&KEEPALIVE).map_err(Lost::Io)?;
        bump(&shared.counters.keepalives_out, 1);
    }
    Ok(())
}

/// An idle writer's wake: the connection is checked, and a keepalive
/// sent when one is due.
fn idle_check(conn: &mut Connected, alive: &mut Liveness, shared: &Shared) -> Result<(), Lost> {
    alive.check(&mut conn.link, conn.addr).map_err(Lost::Dead)?;
    if alive.keepalive_due() {
        conn.link.send(&KEEPALIVE).map_err(Lost::Io)?;
        bump(&shared.counters.keepalives_out, 1);
    }
    Ok(())
}

/// What [`take_batch`] took from the queue.
struct Batch {
    /// Small envelopes encoded into the buffer.
    encoded: u64,
    /// Large snapshots, to be sent as fragments in turn.
    snapshots: Vec<(Envelope, Ticket)>,
    /// A large envelope that keeps its place: nothing after it was taken.
    next: Option<(Envelope, Ticket)>,
}

/// Takes up to `limit` queued envelopes (`first` first), each as the
/// connection's protocol `version` has it ([`Envelope::for_version`]):
/// small ones are encoded into `buf`, large ones set aside.
fn take_batch(
    first: Option<Outgoing>,
    queue: &Receiver<Outgoing>,
    limit: usize,
    buf: &mut Vec<u8>,
    (version, shared): (u32, &Shared),
) -> Batch {
    let mut batch = Batch {
        encoded: 0,
        snapshots: Vec::new(),
        next: None,
    };
    let queued = first.into_iter().chain(queue.try_iter());
    for mut out in queued.take(limit) {
        out.env = match out.env.for_version(version) {
            Downgraded::Unchanged(env) => env,
            Downgraded::FloorRecordsEmptied(env, n) => {
                slog::debug!(shared.logger, "compaction floor records sent empty: the peer speaks an older protocol version";
                    "to" => env.to, "records" => n, "version" => version);
                env
            }
            Downgraded::DrainNoticeDropped => {
                slog::debug!(shared.logger, "drain notice not sent: the peer speaks an older protocol version";
                    "version" => version);
                continue;
            }
        };
        match out.large {
            None => match encode_frame(&out.env, buf) {
                Ok(()) => batch.encoded += 1,
                Err(e) => {
                    bump(&shared.counters.dropped, 1);
                    slog::error!(shared.logger, "envelope too large to send"; "error" => %e);
                }
            },
            Some(ticket) if ticket.snapshot.is_some() => {
                batch.snapshots.push((out.env, ticket));
            }
            Some(ticket) => {
                // Everything after it stays queued behind it.
                batch.next = Some((out.env, ticket));
                break;
            }
        }
    }
    batch
}

/// Sleeps `d`, unless the member stops or `peer` connects to this member
/// meanwhile (`true`: it is back, try it now).
fn sleep_unless_back(d: Duration, flags: &PeerFlags, shared: &Shared) -> bool {
    let step = Duration::from_millis(10);
    let mut left = d;
    while !left.is_zero() && !shared.stopping() && !flags.retired.load(Ordering::Acquire) {
        if flags.back.swap(false, Ordering::AcqRel) {
            return true;
        }
        let s = step.min(left);
        thread::sleep(s);
        left -= s;
    }
    false
}

/// Dials members the way the transport's writers do (TCP, then the mutual
/// TLS handshake in which the peer must present the certificate of the
/// node dialled, then the hello, which the peer must confirm) and hangs
/// up once confirmed, sending nothing else. For health checks, diagnosing
/// a PKI (a peer refusing this member's certificate shows as
/// [`ConnectionError::RefusedByPeer`]), and measuring handshake cost.
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

    /// Connects to `peer` at `addr`, completes the handshake, sends the
    /// hello a member sends and waits for the peer to confirm it, then
    /// hangs up. With TLS the identity returned is the one the peer's
    /// certificate proved; with plaintext nothing is proved and it is
    /// simply `peer`.
    ///
    /// # Errors
    /// [`ConnectionError::Unreachable`], or the refusal the transport
    /// would log: [`ConnectionError::Tls`],
    /// [`ConnectionError::CertificateIdentity`],
    /// [`ConnectionError::HelloTimeout`], and
    /// [`ConnectionError::RefusedByPeer`] when the peer refuses this
    /// member (its certificate, or its id).
    pub fn check(&self, peer: NodeId, addr: SocketAddr) -> Result<PeerIdentity, ConnectionError> {
        let tls = self.tls.as_ref();
        let conn = open(peer, addr, &self.cfg, tls, &self.logger, &|| false, &|| ())?;
        let Some(conn) = conn else {
            return Err(ConnectionError::Tls {
                peer: addr,
                reason: TlsRefusal::Incomplete,
            });
        };
        match conn.session {
            None => Ok(PeerIdentity::new(self.cfg.cluster_id, peer)),
            Some(s) => s.identity.peer().ok_or(ConnectionError::Tls {
                peer: addr,
                reason: TlsRefusal::NoCertificate,
            }),
        }
    }
}
