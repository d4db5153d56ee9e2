//! A fault-injecting TCP relay for tests and labs on one machine: the WAN
//! between sites, emulated on loopback.
//!
//! This is test and lab support, not part of a deployment. Members of a
//! local cluster address each other through it: for every ordered pair of
//! members in different sites, [`Relay::route`] opens a loopback port that
//! forwards to the second member's real address, and the first member's
//! file names that port as the second member's address. The relay only
//! forwards bytes, so mutual TLS passes through untouched.
//!
//! Faults are set per *path*, an ordered pair of site names (`"denver"` →
//! `"paris"`), and apply at once to every connection routed between those
//! sites, in that direction:
//!
//! - **delay** ([`Relay::set_delay`], [`Relay::set_rtt`]): bytes read from
//!   the sender reach the receiver that much later, in order.
//! - **cut** ([`Relay::cut`], [`Relay::cut_both`]): a WAN cut as members
//!   see one. Connections stay open and nothing is refused; bytes sent
//!   across a cut direction are held (up to 16 MiB per connection and
//!   direction, then the sender's writes block as TCP's would) and
//!   delivered, in order, when the direction heals ([`Relay::heal`]), like
//!   TCP retransmitting after a cut shorter than its give-up time. A
//!   connection opened while its forward direction is cut is accepted, but
//!   the relay does not reach the receiver before the heal (the SYN is
//!   held too). A one-way cut holds one direction and lets the other flow.
//! - **reset** ([`Relay::reset`]): every connection between two sites is
//!   closed on both sides at once (each end sees end of stream); new
//!   connections are accepted as usual.
//! - **bandwidth** ([`Relay::set_bandwidth`]): bytes per second per
//!   connection and direction.
//!
//! ```
//! use std::io::{Read, Write};
//! use std::net::{TcpListener, TcpStream};
//! use std::time::{Duration, Instant};
//! use survivable_core::relay::Relay;
//!
//! let server = TcpListener::bind("127.0.0.1:0").unwrap();
//! let relay = Relay::new();
//! let port = relay.route("denver", "paris", server.local_addr().unwrap()).unwrap();
//! relay.set_rtt("denver", "paris", Duration::from_millis(80));
//! let started = Instant::now();
//! let mut client = TcpStream::connect(port).unwrap();
//! client.write_all(b"hi").unwrap();
//! let (mut at_paris, _) = server.accept().unwrap();
//! let mut buf = [0u8; 2];
//! at_paris.read_exact(&mut buf).unwrap();
//! assert!(started.elapsed() >= Duration::from_millis(40)); // one way
//! ```
//!
//! Each connection costs four threads (a reader and a writer each way);
//! a five-member cluster has about twenty connections.

mod conn;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::thread;
use std::time::Duration;

use thiserror::Error;

use conn::Conn;

/// Why [`Relay::route`] could not open a port.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum RelayError {
    /// The target is not a loopback address: the relay is for one machine
    /// only (give it the member's `127.0.0.1` address).
    #[error("relay target {target} is not a loopback address: the relay forwards only between local processes")]
    NotLoopback {
        /// The target given.
        target: SocketAddr,
    },
    /// No loopback port could be bound for the route.
    #[error("binding a loopback port for the route {from} -> {to}: {source}")]
    Bind {
        /// The sending site.
        from: String,
        /// The receiving site.
        to: String,
        /// The operating system's error.
        source: std::io::Error,
    },
}

/// The faults of one path (an ordered pair of sites), as set now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PathFaults {
    /// One-way delay added to every byte.
    pub delay: Duration,
    /// Whether the direction is cut (bytes held until it heals).
    pub cut: bool,
    /// Bytes per second per connection, if limited.
    pub bandwidth: Option<u64>,
}

/// One path's faults, shared by the connections routed over it.
type Path = Arc<Mutex<PathFaults>>;

/// What the relay's threads share.
pub(crate) struct Shared {
    paths: Mutex<BTreeMap<(String, String), Path>>,
    conns: Mutex<Vec<Weak<Conn>>>,
    stopping: AtomicBool,
    ports: Mutex<Vec<SocketAddr>>,
}

/// Locks a mutex, recovering the data if a thread panicked holding it
/// (the relay's state stays consistent under every single update).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The relay: ports routed between sites, and the faults of each path.
/// Dropping it closes every port and connection.
pub struct Relay {
    shared: Arc<Shared>,
}

impl Default for Relay {
    fn default() -> Self {
        Self::new()
    }
}

impl Relay {
    /// A relay with no routes and no faults.
    pub fn new() -> Self {
        Self {
            shared: Arc::new(Shared {
                paths: Mutex::new(BTreeMap::new()),
                conns: Mutex::new(Vec::new()),
                stopping: AtomicBool::new(false),
                ports: Mutex::new(Vec::new()),
            }),
        }
    }

    fn path(&self, from: &str, to: &str) -> Path {
        lock(&self.shared.paths)
            .entry((from.to_string(), to.to_string()))
            .or_default()
            .clone()
    }

    fn update(&self, from: &str, to: &str, f: impl FnOnce(&mut PathFaults)) {
        f(&mut lock(&self.path(from, to)));
    }

    /// Opens a loopback port whose connections reach `target`, a process
    /// in site `to`, as seen from site `from`: bytes towards `target` take
    /// the path `from` → `to`, its answers `to` → `from`. Returns the port's
    /// address (give it to the member in `from` as the target's address).
    ///
    /// # Errors
    /// [`RelayError::NotLoopback`] for a target off this machine;
    /// [`RelayError::Bind`] when no port could be bound.
    pub fn route(
        &self,
        from: &str,
        to: &str,
        target: SocketAddr,
    ) -> Result<SocketAddr, RelayError> {
        if !target.ip().is_loopback() {
            return Err(RelayError::NotLoopback { target });
        }
        let bind_err = |source| RelayError::Bind {
            from: from.to_string(),
            to: to.to_string(),
            source,
        };
        let listener = TcpListener::bind((target.ip(), 0)).map_err(bind_err)?;
        let addr = listener.local_addr().map_err(bind_err)?;
        lock(&self.shared.ports).push(addr);
        let (forward, back) = (self.path(from, to), self.path(to, from));
        let shared = self.shared.clone();
        thread::spawn(move || {
            for client in listener.incoming() {
                if shared.stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                conn::start(&shared, client, target, forward.clone(), back.clone());
            }
        });
        Ok(addr)
    }

    /// Sets the one-way delay of the path `from` → `to` (bytes read from
    /// now on; bytes already on the way keep theirs).
    pub fn set_delay(&self, from: &str, to: &str, one_way: Duration) {
        self.update(from, to, |p| p.delay = one_way);
    }

    /// Sets a round-trip time between `a` and `b`: half of it each way.
    pub fn set_rtt(&self, a: &str, b: &str, rtt: Duration) {
        self.set_delay(a, b, rtt / 2);
        self.set_delay(b, a, rtt - rtt / 2);
    }

    /// Limits the path `from` → `to` to `bytes_per_s` per connection
    /// (`None`: unlimited; `Some(0)` counts as unlimited too).
    pub fn set_bandwidth(&self, from: &str, to: &str, bytes_per_s: Option<u64>) {
        self.update(from, to, |p| p.bandwidth = bytes_per_s.filter(|&b| b > 0));
    }

    /// Cuts the direction `from` → `to` (one-way): its bytes are held.
    pub fn cut(&self, from: &str, to: &str) {
        self.update(from, to, |p| p.cut = true);
    }

    /// Cuts both directions between `a` and `b`.
    pub fn cut_both(&self, a: &str, b: &str) {
        self.cut(a, b);
        self.cut(b, a);
    }

    /// Heals the direction `from` → `to`: held bytes are delivered.
    pub fn heal(&self, from: &str, to: &str) {
        self.update(from, to, |p| p.cut = false);
    }

    /// Heals both directions between `a` and `b`.
    pub fn heal_both(&self, a: &str, b: &str) {
        self.heal(a, b);
        self.heal(b, a);
    }

    /// Heals every cut (delays and bandwidth limits stay).
    pub fn heal_all(&self) {
        for p in lock(&self.shared.paths).values() {
            lock(p).cut = false;
        }
    }

    /// Closes, on both sides, every connection routed between `a` and `b`
    /// (either way); returns how many. Bytes held or delayed on them are
    /// dropped, as a connection reset drops them.
    pub fn reset(&self, a: &str, b: &str) -> usize {
        let (ab, ba) = (self.path(a, b), self.path(b, a));
        let conns: Vec<Arc<Conn>> = lock(&self.shared.conns)
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|c| c.between(&ab, &ba))
            .collect();
        conns.iter().for_each(|c| c.close());
        conns.len()
    }

    /// The faults of the path `from` → `to` as set now.
    pub fn faults(&self, from: &str, to: &str) -> PathFaults {
        *lock(&self.path(from, to))
    }

    /// Connections open between `a` and `b` (either way) now.
    pub fn connections(&self, a: &str, b: &str) -> usize {
        let (ab, ba) = (self.path(a, b), self.path(b, a));
        lock(&self.shared.conns)
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|c| c.between(&ab, &ba) && !c.is_closed())
            .count()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        for c in lock(&self.shared.conns).iter().filter_map(Weak::upgrade) {
            c.close();
        }
        // Wakes each acceptor so it sees `stopping` and ends.
        for addr in lock(&self.shared.ports).drain(..) {
            let _ = TcpStream::connect_timeout(&addr, Duration::from_millis(100));
        }
    }
}
