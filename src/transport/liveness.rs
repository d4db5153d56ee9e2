//! Knowing a connection is alive, and one connection per member.
//!
//! A connection whose peer closed it, or whose peer's host went away, looks
//! healthy to a writer that only writes: the first write after the peer
//! closed succeeds (the bytes go out and are answered with a reset), so
//! before this module a restarted member lost the first one or two
//! messages sent to it (a vote in a failover among them). So:
//!
//! - **The writer reads its connection** without blocking before every
//!   write and at every idle wake (at least every 50 ms): a close or reset
//!   the peer sent is seen before a message is written into it, and what
//!   was about to be written goes on the next connection instead
//!   ([`Dead`]). When its peer's connection to this member is accepted
//!   (say it restarted), the writer to it is woken: if it was waiting to
//!   reconnect, it reconnects at once; if it holds a connection, it sends
//!   a keepalive at once, which a rebooted host that never closed the old
//!   connection answers with a reset, seen at the next check.
//! - **Keepalives.** Every [`Limits::keepalive`](super::Limits::keepalive)
//!   the writer sends an empty frame (four zero bytes), whatever else it
//!   sends, and the member called answers each read that held keepalives
//!   with one. A writer that heard nothing for
//!   [`Limits::idle_timeout`](super::Limits::idle_timeout) takes the
//!   connection for dead (a cut, or a host gone without closing it: no
//!   close ever comes) and opens a new one; the member called closes an
//!   inbound connection that brought nothing, not even a keepalive, for as
//!   long ([`ConnectionError::Idle`](super::ConnectionError::Idle)). A
//!   member's writer never sends anything else but its hello and envelopes;
//!   the member called never sends anything but its hello and keepalives,
//!   so the writer refuses any other byte.
//! - **One inbound connection per member** ([`Registry`]): a newer
//!   connection from a member (proved by its certificate) replaces the
//!   older one, which closes. A restarted member's connection therefore
//!   always gets in, even when a holder of its stolen key was connected in
//!   its name. (With plaintext, where a hello's claim proves nothing,
//!   connections are not tied to members: the idle timeout and the
//!   connection limit bound them.)

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::link::{Fill, Link};
use super::ConnectionError;
use crate::topology::NodeId;

/// A keepalive: an empty frame.
pub(super) const KEEPALIVE: [u8; 4] = [0; 4];

/// Reads per check at most: a peer flooding keepalives cannot hold the
/// writer in its check.
const READS_PER_CHECK: usize = 16;

/// Why a writer takes its connection for dead.
#[derive(Debug)]
pub(super) enum Dead {
    /// The peer closed or reset it (it stopped or restarted).
    Closed,
    /// Nothing, not even a keepalive's answer, for the idle timeout.
    Silent(Duration),
    /// The peer sent bytes a member never sends on this connection.
    Unexpected,
    /// A TLS record that does not decrypt, or an alert.
    Refused(ConnectionError),
    /// The socket could not be switched to non-blocking reads and back.
    Socket(std::io::Error),
}

impl std::fmt::Display for Dead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Closed => f.write_str("the peer closed the connection"),
            Self::Silent(d) => write!(
                f,
                "nothing received for {} ms (no keepalive answered): taken for dead",
                d.as_millis()
            ),
            Self::Unexpected => f.write_str("the peer sent bytes other than keepalives"),
            Self::Refused(e) => write!(f, "{e}"),
            Self::Socket(e) => write!(f, "{e}"),
        }
    }
}

/// A writer's view of its connection: when it last heard from the peer and
/// last sent a keepalive.
#[derive(Debug)]
pub(super) struct Liveness {
    heard: Instant,
    sent: Instant,
    keepalive: Duration,
    idle_timeout: Duration,
}

impl Liveness {
    /// A connection just confirmed (the peer's answering hello counts as
    /// heard).
    pub(super) fn new(keepalive: Duration, idle_timeout: Duration) -> Self {
        let now = Instant::now();
        Self {
            heard: now,
            sent: now,
            keepalive,
            idle_timeout,
        }
    }

    /// Reads what the peer sent, without blocking.
    ///
    /// # Errors
    /// [`Dead`] when the peer closed the connection, sent anything but
    /// keepalives, or nothing for the idle timeout.
    pub(super) fn check(&mut self, link: &mut Link, addr: SocketAddr) -> Result<(), Dead> {
        link.set_nonblocking(true).map_err(Dead::Socket)?;
        let read = self.read(link, addr);
        link.set_nonblocking(false).map_err(Dead::Socket)?;
        read?;
        let silent = self.heard.elapsed();
        if silent > self.idle_timeout {
            return Err(Dead::Silent(silent));
        }
        Ok(())
    }

    fn read(&mut self, link: &mut Link, addr: SocketAddr) -> Result<(), Dead> {
        let mut buf = [0u8; 256];
        for _ in 0..READS_PER_CHECK {
            let mut unexpected = false;
            let mut sink = |b: &[u8]| unexpected |= b.iter().any(|&x| x != 0);
            match link.fill(&mut buf, &mut sink, addr) {
                Ok(Fill::Closed) => return Err(Dead::Closed),
                Ok(Fill::Idle) => return Ok(()),
                Ok(Fill::Bytes { .. }) if unexpected => return Err(Dead::Unexpected),
                Ok(Fill::Bytes { .. }) => self.heard = Instant::now(),
                Err(e) => return Err(Dead::Refused(e)),
            }
        }
        Ok(())
    }

    /// Whether a keepalive is due; if so, it counts as sent.
    pub(super) fn keepalive_due(&mut self) -> bool {
        if self.sent.elapsed() < self.keepalive {
            return false;
        }
        self.sent = Instant::now();
        true
    }
}

/// The inbound connection each member holds: one per member, the newest.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    next: AtomicU64,
    current: Mutex<HashMap<NodeId, u64>>,
}

impl Registry {
    /// Makes a new connection from `member` its current one; the one it
    /// replaces sees [`Held::replaced`] and closes.
    pub(super) fn hold(&self, member: NodeId) -> Held<'_> {
        let generation = self.next.fetch_add(1, Ordering::Relaxed);
        self.current.lock().insert(member, generation);
        Held {
            registry: Some(self),
            member,
            generation,
        }
    }
}

/// A member's inbound connection, registered; unregistered when dropped
/// (unless a newer one replaced it).
#[derive(Debug)]
pub(super) struct Held<'a> {
    /// `None` for a connection not registered (its member is not proved).
    registry: Option<&'a Registry>,
    member: NodeId,
    generation: u64,
}

impl Registry {
    /// A connection that is not registered: never replaced, replaces none.
    pub(super) fn unregistered(&self) -> Held<'_> {
        Held {
            registry: None,
            member: NodeId(0),
            generation: 0,
        }
    }
}

impl Held<'_> {
    /// Whether a newer connection from the same member replaced this one.
    pub(super) fn replaced(&self) -> bool {
        self.registry
            .is_some_and(|r| r.current.lock().get(&self.member) != Some(&self.generation))
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        let Some(registry) = self.registry else {
            return;
        };
        let mut current = registry.current.lock();
        if current.get(&self.member) == Some(&self.generation) {
            current.remove(&self.member);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_newer_connection_replaces_the_older_one_of_the_same_member() {
        let r = Registry::default();
        let a = r.hold(NodeId(2));
        let other = r.hold(NodeId(3));
        assert!(!a.replaced() && !other.replaced());
        let b = r.hold(NodeId(2));
        assert!(a.replaced(), "the older connection of n2 is replaced");
        assert!(!b.replaced() && !other.replaced());
        // The replaced one going away leaves the newer one registered.
        drop(a);
        assert!(!b.replaced());
        drop(b);
        assert!(r.current.lock().get(&NodeId(2)).is_none());
        assert!(!other.replaced());
        // An unregistered connection is never replaced and replaces none.
        let free = r.unregistered();
        let _c = r.hold(NodeId(3));
        assert!(!free.replaced() && other.replaced());
        drop(free);
        assert!(r.current.lock().contains_key(&NodeId(3)));
    }

    #[test]
    fn keepalives_are_due_once_per_interval() {
        // An interval no stall of the test thread reaches, and the last
        // keepalive moved back in time instead of slept past: with 30 ms
        // and a pause, a loaded host made it due before the first check.
        let interval = Duration::from_secs(10);
        let mut l = Liveness::new(interval, 4 * interval);
        assert!(!l.keepalive_due());
        l.sent = (l.sent.checked_sub(interval + Duration::from_millis(1)))
            .expect("a monotonic clock older than the interval");
        assert!(l.keepalive_due());
        assert!(!l.keepalive_due());
    }
}
