//! A peer's process gone, told apart from a connection that merely ended.
//!
//! When a member's process dies on a host that stays up, its kernel closes
//! its sockets: the connection it held to this member ends (a FIN, or a
//! reset), and its listener is gone, so a new TCP connection to its
//! address is refused at once. Each of those alone proves little: a
//! connection also ends when the network resets it, when a relay or proxy
//! in the path drops it, or when the member replaces it; a dial is also
//! refused by a firewall rule. Together, in that order, they say the
//! process that talked to this member a moment ago no longer listens.
//!
//! So when a connection with a member ends from its side (closed or
//! reset by the member's end, not because this member stops or replaced
//! it), this member dials that member's address, a bare TCP connect
//! (nothing is sent; the member, if it is there, sees a connection closed
//! before its first byte and says nothing; see [`dial`] for the details).
//! Either connection counts: the one the member opened to this member
//! (its end seen by the reader, `inbound`) and the one this member opened
//! to it (seen by the writer, `outbound`, which asks on a thread of its
//! own so its reconnection is not held up). A member holds both while the
//! peer is up, but not always at the moment it dies: the peer's writer
//! may be between two connections; and two dials race the dying
//! listener's close differently (below). Only a *refused* dial is reported
//! ([`GoneReports::take`], read by the runtime through
//! [`Transport::refused_peers`](super::Transport::refused_peers) and
//! handed to the node, which decides what it means for the failover). A
//! dial that is served (a flapping link, a proxy, a member restarted
//! already), closed without a word, or unanswered (a host gone, a cut: no
//! reset comes) reports nothing: the failover timer applies.
//!
//! # How a killed process's sockets close, as seen by the dial
//!
//! The kernel closes a killed process's sockets one after the other, and
//! in `node bench` (kill -9 of a leader on loopback, 100 kills, dial
//! outcomes logged) the listener mostly closed *after* the connection
//! whose end started the dial: the dial landed in the dying listener's
//! backlog and was reset as it closed in 87 kills, refused outright in 13.
//! Both windows are covered:
//!
//! - a dial held in the backlog sees the reset when the listener closes,
//!   if that is within [`HELD`];
//! - the reset can come before the connect even returned: the connect
//!   fails with a reset, not a refusal, and counts as one (it counted as
//!   no sign before, and the standby waited out the failover timer: seen
//!   in 2 of 100 kills, where this member's own connection's check was
//!   refused in the same millisecond).
//!
//! What no dial can tell: a process that cannot finish dying (a thread in
//! an uninterruptible disk write, a loaded host) keeps *every* socket,
//! its listener included, open until its last thread leaves the kernel.
//! Measured under a concurrent build: the killed leader's connections
//! closed 202, 268 and 1,755 ms after SIGKILL. Nothing distinguishes
//! that from a stalled process, so the failover timer decides, as it
//! must for a stall.

use std::io::{ErrorKind, Read};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::liveness::Dead;
use super::outbound::Lost;
use super::peers::PeerFlags;
use super::Shared;
use crate::topology::NodeId;

/// How long the check's dial waits at most: a refusal on a host that is up
/// comes within a round trip; anything slower is not one.
const DIAL: Duration = Duration::from_millis(200);
/// How long a connection the dial opened must be held open by the other
/// end to count as served (a member waits for the caller's first byte).
/// Longer than a stopping member keeps its listener after it stopped
/// accepting (its connections' threads end first, each within 50 ms), so
/// a dial in its backlog sees the reset.
const HELD: Duration = Duration::from_millis(100);
/// Dials at most, when the other end closes them without a word.
const ATTEMPTS: usize = 3;
/// The pause before dialling again.
const AGAIN: Duration = Duration::from_millis(5);

/// What a dial to a member's address came to ([`dial`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dial {
    /// The connect was refused: nothing listens at the address.
    Refused,
    /// Taken into the listener's backlog, then reset as the listener
    /// closed (the process died while the dial was on its way).
    ResetInBacklog,
    /// Held open for [`HELD`], or answered: something listens and serves.
    Served,
    /// Closed without a word at every attempt (a member stopping, or over
    /// its connection limit).
    Closed,
    /// The connect failed otherwise: timed out (a host gone, a cut: no
    /// reset comes), or another error of this kind.
    Failed(ErrorKind),
}

impl Dial {
    /// Whether nothing listens at the address any more.
    pub(crate) fn refused(self) -> bool {
        matches!(self, Self::Refused | Self::ResetInBacklog)
    }
}

/// A dial's outcome, how many connects it took and how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Checked {
    pub(crate) dial: Dial,
    pub(crate) attempts: usize,
    pub(crate) took: Duration,
}

/// Peers whose connection ended and whose address then refused a dial,
/// oldest first, until the runtime takes them.
#[derive(Debug, Default)]
pub(crate) struct GoneReports(Mutex<Vec<NodeId>>);

impl GoneReports {
    /// Dials `addr`, member `peer`'s address, after a connection with it
    /// ended from its side; records `peer` if the dial was refused. Returns what
    /// the dial came to, for the caller's log.
    pub(crate) fn check(&self, peer: NodeId, addr: SocketAddr) -> Checked {
        let started = Instant::now();
        let (dial, attempts) = dial(addr);
        if dial.refused() {
            let mut gone = self.0.lock();
            if !gone.contains(&peer) {
                gone.push(peer);
            }
        }
        Checked {
            dial,
            attempts,
            took: started.elapsed(),
        }
    }

    /// The peers reported since the last call.
    pub(crate) fn take(&self) -> Vec<NodeId> {
        std::mem::take(&mut *self.0.lock())
    }
}

/// Whether nothing listens at `addr` any more, and how many connects it
/// took to tell: a TCP connect is refused, or it was taken into the
/// listener's backlog and reset when the listener closed (a process dying
/// while the dial was on its way). A connect whose connection is then held
/// open (a member waiting for the caller's first byte, a relay or proxy)
/// is not; neither is one that times out (no reset comes from a host gone
/// or a cut). A connection closed without a word (the member stopping, or
/// over its connection limit) is asked again, a few times, a few
/// milliseconds apart.
pub(crate) fn dial(addr: SocketAddr) -> (Dial, usize) {
    for attempt in 1..=ATTEMPTS {
        let stream = match TcpStream::connect_timeout(&addr, DIAL) {
            Ok(stream) => stream,
            Err(e) => return (connect_failed(e.kind()), attempt),
        };
        if let Err(e) = stream.set_read_timeout(Some(HELD)) {
            return (Dial::Failed(e.kind()), attempt);
        }
        match (&stream).read(&mut [0u8; 1]) {
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {
                return (Dial::ResetInBacklog, attempt)
            }
            Ok(0) => thread::sleep(AGAIN),
            // Held open, or answered: something listens and serves.
            _ => return (Dial::Served, attempt),
        }
    }
    (Dial::Closed, ATTEMPTS)
}

/// What a connect that failed with `kind` says. A reset, not only a
/// refusal, means nothing listens: the connection was taken into the
/// listener's backlog and reset as the listener closed before the connect
/// even returned (the kernel completes the handshake for the listener),
/// the same sign as a reset on the first read, seen a moment sooner.
fn connect_failed(kind: ErrorKind) -> Dial {
    match kind {
        ErrorKind::ConnectionRefused => Dial::Refused,
        ErrorKind::ConnectionReset => Dial::ResetInBacklog,
        other => Dial::Failed(other),
    }
}

/// A writer's confirmed connection to `peer` at `addr` was lost (`why`):
/// when the peer's end closed or reset it ([`closed_by_peer`]) and the
/// peer is still configured, asks whether its process is gone, on a
/// thread of its own, so the writer's reconnection is not held up by a
/// dial that a live peer holds open.
pub(super) fn after_lost(
    why: &Lost,
    (peer, addr, flags): (NodeId, SocketAddr, &PeerFlags),
    shared: &Arc<Shared>,
) {
    if !closed_by_peer(why) || flags.retired.load(Ordering::Acquire) || shared.stopping() {
        return;
    }
    let sh = shared.clone();
    let spawned = thread::Builder::new()
        .name(format!("sc-gone-{}-{}", shared.cfg.me.0, peer.0))
        .spawn(move || {
            let c = sh.gone.check(peer, addr);
            slog::info!(sh.logger, "this member's connection to a member ended; its address checked";
                "to" => peer.0, "refused" => c.dial.refused(), "dial" => ?c.dial,
                "attempts" => c.attempts, "us" => c.took.as_micros() as u64);
        });
    if let Err(e) = spawned {
        slog::warn!(shared.logger, "cannot check whether a peer's process is gone: no thread";
            "peer" => peer.0, "reason" => %e);
    }
}

/// Whether the peer's end closed or reset a writer's connection (not this
/// member's own verdict: silence, a stale certificate, bytes a member
/// never sends, a write that timed out).
fn closed_by_peer(why: &Lost) -> bool {
    match why {
        Lost::Dead(Dead::Closed) => true,
        Lost::Io(e) => matches!(
            e.kind(),
            ErrorKind::BrokenPipe
                | ErrorKind::ConnectionAborted
                | ErrorKind::ConnectionReset
                | ErrorKind::UnexpectedEof
        ),
        Lost::Dead(_) | Lost::Stale(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn only_a_refused_dial_is_reported() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let live = listener.local_addr().unwrap();
        let reports = GoneReports::default();
        assert_eq!(
            reports.check(NodeId(2), live).dial,
            Dial::Served,
            "something listens"
        );
        // Accepted, held open: served.
        let held = thread::spawn(move || listener.accept().map(|(s, _)| (s, listener)));
        assert_eq!(
            reports.check(NodeId(2), live).dial,
            Dial::Served,
            "something serves"
        );
        let (_conn, listener) = held.join().unwrap().unwrap();
        assert!(reports.take().is_empty());
        drop(listener);
        // Nothing listens at the address now: refused.
        let checked = reports.check(NodeId(2), live);
        assert_eq!((checked.dial, checked.attempts), (Dial::Refused, 1));
        assert!(reports.check(NodeId(2), live).dial.refused());
        assert_eq!(reports.take(), vec![NodeId(2)], "reported once");
        assert!(reports.take().is_empty());
    }

    /// A connect reset before it returned is a dial reset in the dying
    /// listener's backlog (seen in `node bench`: counted as served, the
    /// standby waited out the failover timer); a timeout is no sign.
    #[test]
    fn a_connect_reset_before_it_returned_counts_as_refused() {
        assert!(connect_failed(ErrorKind::ConnectionReset).refused());
        assert!(connect_failed(ErrorKind::ConnectionRefused).refused());
        for kind in [ErrorKind::TimedOut, ErrorKind::AddrNotAvailable] {
            assert_eq!(connect_failed(kind), Dial::Failed(kind));
        }
    }

    /// Only a close or reset from the peer's end starts the check whether
    /// its process is gone; this member's own verdicts (silence, a stale
    /// certificate) do not, nor does a write that merely timed out.
    #[test]
    fn only_the_peers_close_or_reset_of_a_writers_connection_is_checked() {
        use std::io::Error;
        for kind in [
            ErrorKind::ConnectionReset,
            ErrorKind::BrokenPipe,
            ErrorKind::ConnectionAborted,
            ErrorKind::UnexpectedEof,
        ] {
            assert!(closed_by_peer(&Lost::Io(Error::from(kind))), "{kind:?}");
        }
        assert!(closed_by_peer(&Lost::Dead(Dead::Closed)));
        for kind in [ErrorKind::TimedOut, ErrorKind::WouldBlock, ErrorKind::Other] {
            assert!(!closed_by_peer(&Lost::Io(Error::from(kind))), "{kind:?}");
        }
        let silent = Lost::Dead(Dead::Silent(Duration::from_secs(3)));
        assert!(!closed_by_peer(&silent));
        assert!(!closed_by_peer(&Lost::Dead(Dead::Unexpected)));
        let stale = Lost::Stale(super::super::tls::Stale::Expired);
        assert!(!closed_by_peer(&stale));
    }

    #[test]
    fn a_dial_in_the_backlog_of_a_listener_that_closes_is_refused() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        // Never accepted; the listener closes while the dial waits.
        let closer = thread::spawn(move || {
            thread::sleep(Duration::from_millis(5));
            drop(listener);
        });
        assert_eq!(dial(addr).0, Dial::ResetInBacklog);
        closer.join().unwrap();
    }
}
