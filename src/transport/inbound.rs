//! The inbound side: accept connections, run the TLS handshake (the
//! caller's certificate must name a member), check the caller's hello
//! against it, confirm with this member's own hello, then hand its
//! envelopes to the node. Nothing reaches the node before every check
//! passed, the topology fingerprints included. A connection is closed when
//! its peer's certificate expires, the cluster CA changes, a newer
//! connection of the same member replaces it, or nothing arrived on it for
//! the idle timeout; keepalives are answered (see [`super::liveness`]).

use std::io::ErrorKind;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime};

use super::hello::{agree, HelloReader, MAX_HELLO_LEN};
use super::identity::{ExpectedPeer, PeerIdentity};
use super::link::{Fill, Link};
use super::liveness::{Held, KEEPALIVE};
use super::queue::{queued_len, Inbound, Lane};
use super::stats::bump;
use super::tls::{self, Session, Stale, HANDSHAKE_RECORD};
use super::{ConnectionError, Shared, TlsRefusal};
use crate::topology::NodeId;
use crate::wire::{encode_frame, Envelope, FrameDecoder, Hello, Reassembler, WireError};

/// Hands a received envelope to the node's queue; `false` when the node
/// is gone.
pub(super) type Deliver = Arc<dyn Fn(Inbound) -> bool + Send + Sync>;

/// How often blocked threads look at the stop flag.
const POLL: Duration = Duration::from_millis(50);

pub(super) fn spawn_acceptor(
    listener: TcpListener,
    shared: Arc<Shared>,
    inbound: Deliver,
) -> JoinHandle<()> {
    thread::Builder::new()
        .name(format!("sc-accept-{}", shared.cfg.me.0))
        .spawn(move || accept_loop(&listener, &shared, &inbound))
        .expect("spawning a thread")
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>, inbound: &Deliver) {
    if listener.set_nonblocking(true).is_err() {
        slog::error!(
            shared.logger,
            "cannot poll the listener; no inbound connections"
        );
        return;
    }
    let open = Arc::new(AtomicU64::new(0));
    let mut readers: Vec<JoinHandle<()>> = Vec::new();
    while !shared.stopping() {
        match listener.accept() {
            Ok((stream, peer)) => {
                let now_open = open.load(Ordering::Relaxed);
                if now_open >= shared.cfg.limits.max_connections as u64 {
                    let open = now_open;
                    let e = ConnectionError::TooManyConnections { peer, open };
                    shared.refuse(&e, false, None);
                    continue;
                }
                open.fetch_add(1, Ordering::Relaxed);
                let (sh, inb, count) = (shared.clone(), inbound.clone(), open.clone());
                let reader = thread::Builder::new()
                    .name(format!("sc-read-{}", shared.cfg.me.0))
                    .spawn(move || {
                        let mut who = None;
                        if let Err(e) = serve(stream, peer, &sh, &inb, &mut who) {
                            sh.refuse(&e, false, who);
                        }
                        count.fetch_sub(1, Ordering::Relaxed);
                    });
                match reader {
                    Ok(t) => readers.push(t),
                    Err(_) => {
                        open.fetch_sub(1, Ordering::Relaxed);
                    }
                }
                readers.retain(|t| !t.is_finished());
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => thread::sleep(Duration::from_millis(5)),
            Err(e) => {
                slog::warn!(shared.logger, "accept failed"; "error" => %e);
                thread::sleep(POLL);
            }
        }
    }
    for t in readers {
        let _ = t.join();
    }
}

/// Waits for the caller's first byte; `Ok(None)` when it closed first.
fn first_byte(
    stream: &TcpStream,
    peer: SocketAddr,
    deadline: Instant,
    shared: &Shared,
) -> Result<Option<u8>, ConnectionError> {
    let mut b = [0u8; 1];
    loop {
        match stream.peek(&mut b) {
            Ok(0) => return Ok(None),
            Ok(_) => return Ok(Some(b[0])),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return Ok(None),
        }
        if shared.stopping() {
            return Ok(None);
        }
        if Instant::now() >= deadline {
            return Err(ConnectionError::HelloTimeout { peer });
        }
    }
}

/// How a caller was authenticated.
#[derive(Debug)]
enum Auth {
    /// Plaintext: nothing is proved.
    Plain,
    /// Mutual TLS: what the handshake established.
    Tls(Session),
}

/// The TLS handshake, when configured: the caller's certificate chains to
/// the cluster CA and names a member. Without TLS, a caller that starts a
/// TLS handshake is refused (the members' modes differ). `Ok(None)` on a
/// quiet close.
fn secure(
    mut stream: TcpStream,
    peer: SocketAddr,
    deadline: Instant,
    shared: &Shared,
) -> Result<Option<(Link, Auth)>, ConnectionError> {
    let first = first_byte(&stream, peer, deadline, shared)?;
    let Some(ctx) = &shared.tls else {
        // A plaintext hello starts with its small length (0x00 ...), a
        // TLS ClientHello with 0x16: this caller speaks TLS, and the two
        // members disagree on the mode.
        if first == Some(HANDSHAKE_RECORD) {
            return Err(ConnectionError::Tls {
                peer,
                reason: TlsRefusal::PlaintextMember,
            });
        }
        return Ok(first.map(|_| (Link::Plain(stream), Auth::Plain)));
    };
    match first {
        None => return Ok(None),
        Some(HANDSHAKE_RECORD) => {}
        Some(first) => {
            return Err(ConnectionError::Tls {
                peer,
                reason: TlsRefusal::NotTls { first },
            })
        }
    }
    let (mut conn, generation) = ctx
        .accept(&shared.logger)
        .map_err(|e| tls::refusal(&e, peer))?;
    if !tls::handshake(&mut conn, &mut stream, peer, deadline, &|| {
        shared.stopping()
    })? {
        return Ok(None);
    }
    bump(&shared.counters.handshakes, 1);
    let session = tls::session(&conn, generation);
    Ok(Some((
        Link::Tls(Box::new(conn), stream),
        Auth::Tls(session),
    )))
}

/// Binds the hello to the certificate: with TLS, the certificate must
/// name exactly the node the hello claims, in this cluster. Fails closed:
/// a TLS connection whose certificate names nobody (or several) is
/// refused, even though the handshake's verifier already refuses those.
fn bind(
    auth: &Auth,
    hello: &Hello,
    peer: SocketAddr,
    cluster_id: u64,
) -> Result<(), ConnectionError> {
    let Auth::Tls(session) = auth else {
        return Ok(());
    };
    let claimed = PeerIdentity::new(cluster_id, NodeId(hello.from));
    if session.identity.peer() == Some(claimed) {
        return Ok(());
    }
    Err(ConnectionError::CertificateIdentity {
        peer,
        expected: ExpectedPeer::Node(claimed),
        found: session.identity.clone(),
    })
}

/// Reads the caller's hello within the deadline, never buffering more
/// than [`MAX_HELLO_LEN`] of it. The hello, and the bytes that followed
/// it; `Ok(None)` when the caller closed between frames or the member is
/// stopping.
fn read_hello(
    link: &mut Link,
    peer: SocketAddr,
    deadline: Instant,
    shared: &Shared,
) -> Result<Option<(Hello, Vec<u8>)>, ConnectionError> {
    let mut buf = vec![0u8; MAX_HELLO_LEN];
    let mut reader = HelloReader::default();
    let mut done: Option<(Hello, Vec<u8>)> = None;
    let mut failed = None;
    loop {
        if shared.stopping() {
            return Ok(None);
        }
        if Instant::now() >= deadline {
            return Err(ConnectionError::HelloTimeout { peer });
        }
        let fill = link.fill(
            &mut buf,
            &mut |bytes| match (&mut done, &failed) {
                (_, Some(_)) => {}
                (Some((_, rest)), None) => rest.extend_from_slice(bytes),
                (None, None) => match reader.push(bytes, peer) {
                    Ok(got) => done = got,
                    Err(e) => failed = Some(e),
                },
            },
            peer,
        )?;
        if let Some(e) = failed {
            return Err(e);
        }
        if done.is_some() {
            return Ok(done);
        }
        if let Fill::Closed = fill {
            reader.closed(peer)?;
            return Ok(None);
        }
    }
}

/// Serves one inbound connection; `who` is set to the member on the
/// other end as soon as it is known (for the refusal log's rate limit).
fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    shared: &Shared,
    inbound: &Deliver,
    who: &mut Option<NodeId>,
) -> Result<(), ConnectionError> {
    let Some((link, auth, hello, rest)) = accept(stream, peer, shared, who)? else {
        return Ok(());
    };
    let member = NodeId(hello.from);
    // One connection per member, where the member is proved: with
    // plaintext a hello's claim proves nothing, and letting it close the
    // member's own connection would let anyone reaching the port cut
    // members off.
    let held = match auth {
        Auth::Tls(_) => shared.inbound_of.hold(member),
        Auth::Plain => shared.inbound_of.unregistered(),
    };
    if let Some(flags) = shared.peers.flags(member) {
        flags.back.store(true, Ordering::Release);
    }
    let from = Caller {
        auth: &auth,
        hello: &hello,
        held: &held,
    };
    let ended = receive(link, &from, &rest, peer, shared, inbound);
    // Ended from the other side (not stopping, not replaced here): is its
    // process gone? (See the `gone` module.)
    if !shared.stopping() && !held.replaced() {
        if let Some(addr) = shared.peers.addresses().get(&member) {
            let c = shared.gone.check(member, *addr);
            slog::info!(shared.logger, "a member's connection to this one ended; its address checked";
                "from" => member.0, "refused" => c.dial.refused(), "dial" => ?c.dial,
                "attempts" => c.attempts, "us" => c.took.as_micros() as u64,
                "ended" => ?ended.as_ref().err().map(ConnectionError::kind));
        }
    }
    ended
}

/// Who is on the other end of an accepted connection.
struct Caller<'a> {
    auth: &'a Auth,
    hello: &'a Hello,
    held: &'a Held<'a>,
}

/// An accepted connection: its link, how the caller was authenticated, its
/// hello, and the bytes read past the hello.
type Accepted = (Link, Auth, Hello, Vec<u8>);

/// The handshake and the hello, within one deadline, and this member's own
/// hello in answer: the link, how the caller was authenticated, its hello
/// and the bytes read past it. `Ok(None)` when the connection ends quietly.
fn accept(
    stream: TcpStream,
    peer: SocketAddr,
    shared: &Shared,
    who: &mut Option<NodeId>,
) -> Result<Option<Accepted>, ConnectionError> {
    let cfg = &shared.cfg;
    if stream.set_nonblocking(false).is_err() || stream.set_read_timeout(Some(POLL)).is_err() {
        return Ok(None);
    }
    let _ = stream.set_write_timeout(Some(cfg.limits.hello_timeout));
    let _ = stream.set_nodelay(true);

    // The handshake and the hello, within one deadline.
    let deadline = Instant::now() + cfg.limits.hello_timeout;
    let Some((mut link, auth)) = secure(stream, peer, deadline, shared)? else {
        return Ok(None);
    };
    if let Auth::Tls(session) = &auth {
        *who = session.identity.peer().map(|p| p.node);
    }
    let Some((mut hello, rest)) = read_hello(&mut link, peer, deadline, shared)? else {
        return Ok(None);
    };
    check_hello(&hello, peer, shared)?;
    let agreed = agree(cfg.protocol, &hello, peer);
    if let Err(malformed @ ConnectionError::Wire { .. }) = agreed {
        return Err(malformed);
    }
    if let Auth::Plain = auth {
        *who = Some(NodeId(hello.from)); // claimed: nothing is proved
    }
    bind(&auth, &hello, peer, cfg.cluster_id)?;
    // This member's own hello tells the caller it is accepted and in
    // which version, or, when their topologies differ or their versions
    // have none in common, lets it see that for itself (the caller is
    // authenticated by now).
    let sections = hello.differences(cfg.fingerprint.as_ref());
    let mut reply = Vec::new();
    let answer = Hello::new(cfg.cluster_id, cfg.me.0, hello.from)
        .with_fingerprint(cfg.fingerprint)
        .with_range(cfg.protocol);
    if encode_frame(&answer, &mut reply).is_err() || link.send(&reply).is_err() {
        return Ok(None);
    }
    // From here on the hello's version is the connection's.
    hello.version = agreed?;
    if !sections.is_empty() {
        return Err(ConnectionError::TopologyDiffers {
            peer,
            node: hello.from,
            sections,
        });
    }
    bump(&shared.counters.accepted, 1);
    slog::debug!(shared.logger, "connection accepted"; "peer" => %peer, "from" => hello.from);
    Ok(Some((link, auth, hello, rest)))
}

/// Envelopes, each checked against the hello; fragments put back
/// together. A frame, or a TLS record, must finish within the frame
/// timeout once it started (timed from the last frame completed, so a
/// long stream of back-to-back frames is not a slow one), and a
/// fragmented message under way must get its next fragment within the
/// frame timeout too (else its reservation and buffers would be held by a
/// sender that stopped between fragments).
fn receive(
    mut link: Link,
    from: &Caller<'_>,
    rest: &[u8],
    peer: SocketAddr,
    shared: &Shared,
    inbound: &Deliver,
) -> Result<(), ConnectionError> {
    let cfg = &shared.cfg;
    let hello = from.hello;
    let mut dec = FrameDecoder::new(cfg.limits.max_frame);
    dec.push(rest);
    let mut buf = vec![0u8; 64 << 10];
    let mut incoming = Incoming {
        hello_from: hello.from,
        version: hello.version,
        peer,
        shared,
        messages: Reassembler::new(cfg.limits.max_message),
        reserved: Reservation::new(&shared.reassembling),
        partial_since: None,
        fragment_at: Instant::now(),
        keepalives: 0,
        waited: false,
    };
    let mut partial_record = false;
    let mut heard = Instant::now();
    loop {
        // Waiting for room in the node's queue, the connection reads
        // nothing, but tells its sender it is alive (a keepalive at every
        // wake, one keepalive period apart), so the sender's writer slows
        // down on a full socket rather than taking the connection for dead.
        let mut waiting =
            || !shared.stopping() && !from.held.replaced() && link.send(&KEEPALIVE).is_ok();
        if !incoming.deliver(&mut dec, inbound, &mut waiting)? {
            return Ok(()); // the node is gone, or the wait was given up
        }
        if std::mem::take(&mut incoming.waited) {
            heard = Instant::now(); // not idle: this member was not reading
            incoming.fragment_at = heard;
        }
        if std::mem::take(&mut incoming.keepalives) > 0 && link.send(&KEEPALIVE).is_err() {
            return Ok(()); // the caller went away
        }
        incoming.check_pace(&dec, partial_record)?;
        if shared.stopping() || !still_trusted(from.auth, shared, peer, hello.from)? {
            return Ok(());
        }
        if from.held.replaced() {
            bump(&shared.counters.replaced, 1);
            slog::info!(shared.logger, "closing a connection: the member connected again";
                "peer" => %peer, "from" => hello.from);
            return Ok(());
        }
        match link.fill(&mut buf, &mut |b| dec.push(b), peer)? {
            Fill::Closed => {
                if let Some((message, have, len)) = incoming.messages.in_progress() {
                    slog::info!(shared.logger, "connection closed in the middle of a fragmented message; dropped";
                        "peer" => %peer, "from" => hello.from, "message" => message,
                        "received" => have, "announced" => len);
                }
                return truncated(&dec, peer);
            }
            Fill::Idle if heard.elapsed() > cfg.limits.idle_timeout => {
                return Err(ConnectionError::Idle {
                    peer,
                    node: hello.from,
                    idle_ms: heard.elapsed().as_millis() as u64,
                });
            }
            Fill::Idle => {}
            Fill::Bytes { plain } => {
                heard = Instant::now();
                partial_record = plain == 0;
            }
        }
    }
}

/// What an accepted connection keeps between reads: the caller's hello
/// sender, the message being put together and its reservation, and the
/// timers of the frame and of the fragment under way.
struct Incoming<'a> {
    hello_from: u64,
    /// The protocol version agreed in the hellos.
    version: u32,
    peer: SocketAddr,
    shared: &'a Shared,
    messages: Reassembler,
    reserved: Reservation<'a>,
    /// Since when a frame (or TLS record) has been under way.
    partial_since: Option<Instant>,
    /// When the last fragment arrived.
    fragment_at: Instant,
    /// Keepalives received since the last answer.
    keepalives: u64,
    /// Whether it waited for room in the node's queue since last asked.
    waited: bool,
}

impl Incoming<'_> {
    /// Checks and reassembles every whole frame `dec` holds, and passes
    /// every whole message on to `inbound`, each once it fits the inbound
    /// byte budget (calling `waiting` while it does not, see
    /// [`InboundBudget::take`](super::queue::InboundBudget::take));
    /// `Ok(false)` when the node is gone or `waiting` gave up.
    fn deliver(
        &mut self,
        dec: &mut FrameDecoder,
        inbound: &Deliver,
        waiting: &mut dyn FnMut() -> bool,
    ) -> Result<bool, ConnectionError> {
        let (cfg, peer) = (&self.shared.cfg, self.peer);
        let counters = &self.shared.counters;
        let wire = |source| ConnectionError::Wire { peer, source };
        while let Some(frame) = dec.next_frame().map_err(wire)? {
            self.partial_since = None;
            if frame.is_empty() {
                self.keepalives += 1;
                continue;
            }
            let env = Envelope::from_bytes(&frame).map_err(wire)?;
            if env.version != self.version {
                return Err(wire(WireError::VersionNotAgreed {
                    from: env.from,
                    got: env.version,
                    agreed: self.version,
                }));
            }
            if env.from != self.hello_from || env.to != cfg.me.0 || env.cluster_id != cfg.cluster_id
            {
                return Err(ConnectionError::Spoofed {
                    peer,
                    from: env.from,
                    to: env.to,
                    hello_from: self.hello_from,
                });
            }
            let fragment = env.fragment.is_some();
            if fragment {
                self.fragment_at = Instant::now();
                bump(&counters.fragments_in, 1);
            }
            let whole = self.messages.push(env).map_err(wire)?;
            // A reassembled message stays reserved until it is queued.
            let announced = match &whole {
                Some(w) if fragment => w.raft.len() + w.control.len(),
                _ => self.messages.in_progress().map_or(0, |(_, _, len)| len),
            };
            let max = cfg.limits.max_message.saturating_mul(2);
            self.reserved.hold(announced, max, peer)?;
            let Some(env) = whole else { continue };
            let lane = if fragment { Lane::Large } else { Lane::Small };
            let budget = &self.shared.inbound;
            let len = queued_len(&env);
            let mut waited = false;
            let mut wait = || {
                if !std::mem::replace(&mut waited, true) {
                    bump(&counters.inbound_waits, 1);
                }
                waiting()
            };
            let charge = budget.take(len, lane, cfg.limits.keepalive, &mut wait);
            self.waited |= waited;
            let Some(charge) = charge else {
                return Ok(false);
            };
            self.reserved.hold(0, max, peer)?;
            if fragment {
                bump(&counters.messages_reassembled, 1);
            }
            bump(&counters.frames_in, 1);
            if !inbound(Inbound::charged(env, charge)) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The frame timeout: for a frame (or, `partial_record`, a TLS record)
    /// under way, and for the next fragment of a message under way.
    fn check_pace(
        &mut self,
        dec: &FrameDecoder,
        partial_record: bool,
    ) -> Result<(), ConnectionError> {
        let (timeout, peer) = (self.shared.cfg.limits.frame_timeout, self.peer);
        match (dec.buffered() > 0 || partial_record, self.partial_since) {
            (false, _) => self.partial_since = None,
            (true, None) => self.partial_since = Some(Instant::now()),
            (true, Some(t)) if t.elapsed() > timeout => {
                return Err(ConnectionError::SlowFrame { peer });
            }
            (true, Some(_)) => {}
        }
        if self.messages.in_progress().is_some() && self.fragment_at.elapsed() > timeout {
            return Err(ConnectionError::SlowFrame { peer });
        }
        Ok(())
    }
}

/// Whether a TLS caller's session still holds: an error once its
/// certificate expired, `Ok(false)` (close quietly) once the CA changed.
fn still_trusted(
    auth: &Auth,
    shared: &Shared,
    peer: SocketAddr,
    from: u64,
) -> Result<bool, ConnectionError> {
    if !shared.peers.contains(NodeId(from)) {
        slog::info!(shared.logger, "closing a connection: the member left the topology";
            "peer" => %peer, "from" => from);
        return Ok(false);
    }
    let (Auth::Tls(session), Some(ctx)) = (auth, &shared.tls) else {
        return Ok(true);
    };
    match session.stale(ctx, SystemTime::now()) {
        None => Ok(true),
        Some(Stale::Expired) => Err(ConnectionError::Tls {
            peer,
            reason: TlsRefusal::Expired,
        }),
        Some(Stale::CaChanged) => {
            slog::info!(shared.logger, "closing a connection: the CA changed";
                "peer" => %peer, "from" => from);
            Ok(false)
        }
    }
}

/// One connection's share of the bytes all inbound connections may hold
/// in messages under way: the length its message under way announced.
/// Given back when the message ends, and when the connection closes.
struct Reservation<'a> {
    total: &'a AtomicUsize,
    mine: usize,
}

impl<'a> Reservation<'a> {
    fn new(total: &'a AtomicUsize) -> Self {
        Self { total, mine: 0 }
    }

    /// Holds `announced` bytes (0: none) instead of what it held.
    ///
    /// # Errors
    /// [`ConnectionError::ReassemblyBudget`] when that would take the
    /// total over `max`; it then holds nothing.
    fn hold(
        &mut self,
        announced: usize,
        max: usize,
        peer: SocketAddr,
    ) -> Result<(), ConnectionError> {
        if announced == self.mine {
            return Ok(());
        }
        self.total.fetch_sub(self.mine, Ordering::Relaxed);
        self.mine = 0;
        if announced == 0 {
            return Ok(());
        }
        let held = self.total.fetch_add(announced, Ordering::Relaxed);
        if held.saturating_add(announced) > max {
            self.total.fetch_sub(announced, Ordering::Relaxed);
            return Err(ConnectionError::ReassemblyBudget {
                peer,
                announced,
                held,
                max,
            });
        }
        self.mine = announced;
        Ok(())
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.total.fetch_sub(self.mine, Ordering::Relaxed);
    }
}

/// A stream that ends inside a frame is malformed; one that ends between
/// frames simply closed.
fn truncated(dec: &FrameDecoder, peer: SocketAddr) -> Result<(), ConnectionError> {
    match dec.finish() {
        Ok(()) => Ok(()),
        Err(source @ WireError::Truncated { .. }) => Err(ConnectionError::Wire { peer, source }),
        Err(_) => Ok(()),
    }
}

fn check_hello(h: &Hello, peer: SocketAddr, shared: &Shared) -> Result<(), ConnectionError> {
    let cfg = &shared.cfg;
    if h.cluster_id != cfg.cluster_id {
        return Err(ConnectionError::WrongCluster {
            peer,
            got: h.cluster_id,
            expected: cfg.cluster_id,
        });
    }
    if !shared.peers.contains(NodeId(h.from)) {
        return Err(ConnectionError::UnknownSender { peer, from: h.from });
    }
    if h.to != cfg.me.0 {
        return Err(ConnectionError::WrongRecipient {
            peer,
            to: h.to,
            me: cfg.me.0,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::CertifiedAs;

    fn tls(identity: CertifiedAs) -> Auth {
        Auth::Tls(Session {
            identity,
            expires: None,
            generation: 0,
        })
    }

    /// The messages under way on all connections share one budget: a
    /// message over it is refused, and what a connection held is given
    /// back when its message ends or it closes.
    #[test]
    fn messages_under_way_share_one_budget() {
        let peer: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let total = AtomicUsize::new(0);
        let mut a = Reservation::new(&total);
        let mut b = Reservation::new(&total);
        a.hold(60, 100, peer).unwrap();
        match b.hold(50, 100, peer) {
            Err(ConnectionError::ReassemblyBudget {
                announced: 50,
                held: 60,
                max: 100,
                ..
            }) => {}
            other => panic!("{other:?}"),
        }
        assert_eq!(total.load(Ordering::Relaxed), 60);
        b.hold(40, 100, peer).unwrap();
        a.hold(0, 100, peer).unwrap();
        assert_eq!(total.load(Ordering::Relaxed), 40);
        a.hold(60, 100, peer).unwrap();
        drop(b);
        drop(a);
        assert_eq!(total.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn the_hello_must_name_whom_the_certificate_names_and_fails_closed() {
        let peer: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let hello = Hello::new(7, 2, 1);
        let node = |c, n| CertifiedAs::Peer(PeerIdentity::new(c, NodeId(n)));
        assert!(bind(&Auth::Plain, &hello, peer, 7).is_ok());
        assert!(bind(&tls(node(7, 2)), &hello, peer, 7).is_ok());
        // With TLS, no identity (or an unclear one) is a refusal, never a
        // pass; so are another node's and another cluster's.
        for found in [
            CertifiedAs::Nobody,
            CertifiedAs::Unclear { uris: 2 },
            node(7, 3),
            node(8, 2),
        ] {
            match bind(&tls(found.clone()), &hello, peer, 7) {
                Err(ConnectionError::CertificateIdentity {
                    expected, found: f, ..
                }) => {
                    assert_eq!(
                        expected,
                        ExpectedPeer::Node(PeerIdentity::new(7, NodeId(2)))
                    );
                    assert_eq!(f, found);
                }
                other => panic!("{found}: {other:?}"),
            }
        }
    }
}
