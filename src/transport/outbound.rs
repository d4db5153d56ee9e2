//! The outbound side: one writer thread per peer, with a bounded queue,
//! reconnection with back-off, and batching of whatever is queued.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError};

use super::{bump, Shared};
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
    let (min, max) = shared.cfg.backoff;
    let mut wait = min;
    while !shared.stopping() {
        let Some(mut stream) = connect(peer, addr, shared) else {
            bump(&shared.counters.connect_failures, 1);
            // Unreachable: what is queued is stale by the time it could go.
            let dropped = queue.try_iter().count() as u64;
            bump(&shared.counters.dropped, dropped);
            sleep_unless_stopping(wait, shared);
            wait = (wait * 2).min(max);
            continue;
        };
        wait = min;
        slog::debug!(shared.logger, "connected"; "peer" => peer.0, "addr" => %addr);
        if let Err(e) = pump(&mut stream, queue, shared) {
            slog::info!(shared.logger, "connection lost"; "peer" => peer.0, "error" => %e);
        }
    }
}

fn connect(peer: NodeId, addr: SocketAddr, shared: &Shared) -> Option<TcpStream> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    let _ = stream.set_nodelay(true);
    stream
        .set_write_timeout(Some(Duration::from_secs(5)))
        .ok()?;
    let mut hello = Vec::new();
    let h = Hello::new(shared.cfg.cluster_id, shared.cfg.me.0, peer.0);
    encode_frame(&h, &mut hello).ok()?;
    stream.write_all(&hello).ok()?;
    Some(stream)
}

/// Writes queued envelopes until the connection fails or the member stops.
fn pump(
    stream: &mut TcpStream,
    queue: &Receiver<Envelope>,
    shared: &Shared,
) -> std::io::Result<()> {
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
        stream.write_all(&buf)?;
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
