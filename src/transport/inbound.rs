//! The inbound side: accept connections, check each caller's hello, then
//! hand its envelopes to the node.

use std::io::{ErrorKind, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;

use super::{bump, ConnectionError, Shared};
use crate::wire::{Envelope, FrameDecoder, Hello, PROTOCOL_VERSION};

/// How often blocked threads look at the stop flag.
const POLL: Duration = Duration::from_millis(50);

pub(super) fn spawn_acceptor(
    listener: TcpListener,
    shared: Arc<Shared>,
    inbound: Sender<Envelope>,
) -> JoinHandle<()> {
    thread::Builder::new()
        .name(format!("sc-accept-{}", shared.cfg.me.0))
        .spawn(move || accept_loop(&listener, &shared, &inbound))
        .expect("spawning a thread")
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>, inbound: &Sender<Envelope>) {
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
                if now_open >= shared.cfg.max_connections as u64 {
                    refuse(
                        shared,
                        ConnectionError::TooManyConnections {
                            peer,
                            open: now_open,
                        },
                    );
                    continue;
                }
                open.fetch_add(1, Ordering::Relaxed);
                let (sh, inb, count) = (shared.clone(), inbound.clone(), open.clone());
                let reader = thread::Builder::new()
                    .name(format!("sc-read-{}", shared.cfg.me.0))
                    .spawn(move || {
                        if let Err(e) = serve(stream, peer, &sh, &inb) {
                            refuse(&sh, e);
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

fn refuse(shared: &Shared, e: ConnectionError) {
    shared.counters.refused(&e);
    slog::warn!(shared.logger, "refused a connection"; "reason" => %e);
}

/// Reads whatever is available into the decoder; `Ok(false)` on EOF.
fn fill(stream: &mut TcpStream, buf: &mut [u8], dec: &mut FrameDecoder) -> std::io::Result<bool> {
    match stream.read(buf) {
        Ok(0) => Ok(false),
        Ok(n) => {
            dec.push(&buf[..n]);
            Ok(true)
        }
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => Ok(true),
        Err(e) if e.kind() == ErrorKind::Interrupted => Ok(true),
        Err(e) => Err(e),
    }
}

fn serve(
    mut stream: TcpStream,
    peer: SocketAddr,
    shared: &Shared,
    inbound: &Sender<Envelope>,
) -> Result<(), ConnectionError> {
    let cfg = &shared.cfg;
    if stream.set_nonblocking(false).is_err() || stream.set_read_timeout(Some(POLL)).is_err() {
        return Ok(());
    }
    let _ = stream.set_nodelay(true);
    let mut dec = FrameDecoder::new(cfg.max_frame);
    let mut buf = vec![0u8; 64 << 10];
    let wire = |source| ConnectionError::Wire { peer, source };

    // The hello, within its deadline.
    let deadline = Instant::now() + cfg.hello_timeout;
    let hello = loop {
        if let Some(frame) = dec.next_frame().map_err(wire)? {
            break Hello::from_bytes(&frame).map_err(wire)?;
        }
        if shared.stopping() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(ConnectionError::HelloTimeout { peer });
        }
        match fill(&mut stream, &mut buf, &mut dec) {
            Ok(true) => {}
            Ok(false) | Err(_) => return Ok(()),
        }
    };
    check_hello(&hello, peer, shared)?;
    bump(&shared.counters.accepted, 1);
    slog::debug!(shared.logger, "connection accepted"; "peer" => %peer, "from" => hello.from);

    // Envelopes, each checked against the hello; a frame must finish in time.
    let mut partial_since: Option<Instant> = None;
    loop {
        while let Some(frame) = dec.next_frame().map_err(wire)? {
            let env = Envelope::from_bytes(&frame).map_err(wire)?;
            if env.from != hello.from || env.to != cfg.me.0 || env.cluster_id != cfg.cluster_id {
                return Err(ConnectionError::Spoofed {
                    peer,
                    from: env.from,
                    to: env.to,
                    hello_from: hello.from,
                });
            }
            bump(&shared.counters.frames_in, 1);
            if inbound.send(env).is_err() {
                return Ok(()); // the node is gone
            }
        }
        match (dec.buffered() > 0, partial_since) {
            (false, _) => partial_since = None,
            (true, None) => partial_since = Some(Instant::now()),
            (true, Some(t)) if t.elapsed() > cfg.frame_timeout => {
                return Err(ConnectionError::SlowFrame { peer });
            }
            (true, Some(_)) => {}
        }
        if shared.stopping() {
            return Ok(());
        }
        match fill(&mut stream, &mut buf, &mut dec) {
            Ok(true) => {}
            Ok(false) | Err(_) => return Ok(()),
        }
    }
}

fn check_hello(h: &Hello, peer: SocketAddr, shared: &Shared) -> Result<(), ConnectionError> {
    let cfg = &shared.cfg;
    if h.version != PROTOCOL_VERSION {
        return Err(ConnectionError::Version {
            peer,
            got: h.version,
            ours: PROTOCOL_VERSION,
        });
    }
    if h.cluster_id != cfg.cluster_id {
        return Err(ConnectionError::WrongCluster {
            peer,
            got: h.cluster_id,
            expected: cfg.cluster_id,
        });
    }
    if !cfg.peers.contains_key(&crate::topology::NodeId(h.from)) {
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
