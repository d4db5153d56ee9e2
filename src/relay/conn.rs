//! One relayed connection: a reader and a writer each way, the writers
//! applying the path's delay, cut and bandwidth.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::{lock, Path, Shared};

/// Bytes read at once, and chunks queued per direction: at most 16 MiB
/// held per connection and direction before the sender is pushed back.
const CHUNK: usize = 16 * 1024;
const QUEUED_CHUNKS: usize = 1024;
/// How often a writer held by a cut looks whether it healed.
const CUT_POLL: Duration = Duration::from_millis(2);
/// How long reaching the target may take (loopback: a refused or
/// unanswered connect means the target process is gone).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// What a reader hands its writer.
enum Chunk {
    /// Bytes, and when they may be delivered.
    Data(Instant, Vec<u8>),
    /// The sender closed or failed: pass the end of stream on.
    End,
}

/// A relayed connection, as the relay sees it for resets.
pub(crate) struct Conn {
    forward: Path,
    back: Path,
    client: TcpStream,
    upstream: Mutex<Option<TcpStream>>,
    closed: AtomicBool,
    /// The client's side ended (end of stream or an error).
    client_ended: AtomicBool,
}

impl Conn {
    /// Whether the connection runs between the two paths' sites.
    pub(crate) fn between(&self, ab: &Path, ba: &Path) -> bool {
        (Arc::ptr_eq(&self.forward, ab) && Arc::ptr_eq(&self.back, ba))
            || (Arc::ptr_eq(&self.forward, ba) && Arc::ptr_eq(&self.back, ab))
    }

    /// Closes both sides now; held bytes are dropped.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        let _ = self.client.shutdown(Shutdown::Both);
        if let Some(u) = lock(&self.upstream).as_ref() {
            let _ = u.shutdown(Shutdown::Both);
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }
}

/// Relays a connection accepted on a route towards `target`.
pub(super) fn start(
    shared: &Arc<Shared>,
    client: TcpStream,
    target: SocketAddr,
    forward: Path,
    back: Path,
) {
    let _ = client.set_nodelay(true);
    let (Ok(reading), Ok(writing)) = (client.try_clone(), client.try_clone()) else {
        return;
    };
    let conn = Arc::new(Conn {
        forward,
        back,
        client,
        upstream: Mutex::new(None),
        closed: AtomicBool::new(false),
        client_ended: AtomicBool::new(false),
    });
    {
        let mut conns = lock(&shared.conns);
        conns.retain(|c| c.strong_count() > 0);
        conns.push(Arc::downgrade(&conn));
    }
    let (tx, rx) = sync_channel(QUEUED_CHUNKS);
    let (path, c1) = (conn.forward.clone(), conn.clone());
    thread::spawn(move || {
        read(reading, &tx, &path);
        c1.client_ended.store(true, Ordering::SeqCst);
    });
    let shared = shared.clone();
    thread::spawn(move || {
        if !wait_to_connect(&conn, &shared) {
            return;
        }
        let Some(upstream) = connect(target, &conn) else {
            conn.close();
            return;
        };
        let (Ok(up_read), Ok(up_write)) = (upstream.try_clone(), upstream.try_clone()) else {
            conn.close();
            return;
        };
        let (tx2, rx2) = sync_channel(QUEUED_CHUNKS);
        let back = conn.back.clone();
        thread::spawn(move || read(up_read, &tx2, &back));
        let (c2, s2) = (conn.clone(), shared.clone());
        thread::spawn(move || write(writing, &rx2, &c2.back, &c2, &s2));
        write(up_write, &rx, &conn.forward, &conn, &shared);
    });
}

/// Reaches the target and records the stream for resets; `None` if it
/// cannot be reached or the connection was closed meanwhile.
fn connect(target: SocketAddr, conn: &Conn) -> Option<TcpStream> {
    let upstream = TcpStream::connect_timeout(&target, CONNECT_TIMEOUT).ok()?;
    let _ = upstream.set_nodelay(true);
    let kept = upstream.try_clone().ok()?;
    *lock(&conn.upstream) = Some(kept);
    if conn.is_closed() {
        let _ = upstream.shutdown(Shutdown::Both);
        return None;
    }
    Some(upstream)
}

/// Reads `src` until it ends, stamping each chunk with its delivery time
/// (the path's delay when read, never before the previous chunk's).
fn read(mut src: TcpStream, tx: &SyncSender<Chunk>, path: &Path) {
    let mut buf = vec![0u8; CHUNK];
    let mut last = Instant::now();
    loop {
        match src.read(&mut buf) {
            Ok(0) | Err(_) => {
                let _ = tx.send(Chunk::End);
                return;
            }
            Ok(n) => {
                let delay = lock(path).delay;
                last = last.max(Instant::now() + delay);
                if tx.send(Chunk::Data(last, buf[..n].to_vec())).is_err() {
                    return;
                }
            }
        }
    }
}

fn sleep_until(at: Instant) {
    if let Some(d) = at.checked_duration_since(Instant::now()) {
        thread::sleep(d);
    }
}

/// Waits while the forward path is cut before reaching the target (the
/// SYN is held too); `false` once the connection or the relay is closing,
/// or if the client gave up meanwhile: it then never reaches the target,
/// as its SYN would not once it stopped retrying.
fn wait_to_connect(conn: &Conn, shared: &Shared) -> bool {
    loop {
        if conn.is_closed() || shared.stopping.load(Ordering::SeqCst) {
            return false;
        }
        if !lock(&conn.forward).cut {
            return true;
        }
        if conn.client_ended.load(Ordering::SeqCst) {
            conn.close();
            return false;
        }
        thread::sleep(CUT_POLL);
    }
}

/// Waits while the path is cut; `false` once the connection or the relay
/// is closing.
fn wait_open(path: &Path, conn: &Conn, shared: &Shared) -> bool {
    loop {
        if conn.is_closed() || shared.stopping.load(Ordering::SeqCst) {
            return false;
        }
        if !lock(path).cut {
            return true;
        }
        thread::sleep(CUT_POLL);
    }
}

/// Delivers the chunks to `dst`: each at its time, none while the path is
/// cut, paced by its bandwidth.
fn write(mut dst: TcpStream, rx: &Receiver<Chunk>, path: &Path, conn: &Conn, shared: &Shared) {
    let mut free_at = Instant::now();
    loop {
        let chunk = match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(c) => c,
            Err(RecvTimeoutError::Timeout) => {
                if conn.is_closed() || shared.stopping.load(Ordering::SeqCst) {
                    return;
                }
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let (at, bytes) = match chunk {
            Chunk::Data(at, bytes) => (at, bytes),
            Chunk::End => {
                if wait_open(path, conn, shared) {
                    let _ = dst.shutdown(Shutdown::Write);
                }
                return;
            }
        };
        sleep_until(at);
        if !wait_open(path, conn, shared) {
            return;
        }
        if let Some(bw) = lock(path).bandwidth {
            sleep_until(free_at);
            let send_time = Duration::from_secs_f64(bytes.len() as f64 / bw as f64);
            free_at = free_at.max(Instant::now()) + send_time;
        }
        if dst.write_all(&bytes).is_err() {
            conn.close();
            return;
        }
    }
}
