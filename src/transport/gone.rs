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
//! So when an accepted connection from a member ends (not because this
//! member stops or replaced it), this member dials that member's address,
//! a bare TCP connect (nothing is sent; the member, if it is there, sees
//! a connection closed before its first byte and says nothing; see
//! [`refused`] for the details). Only a *refused* connect is reported ([`GoneReports::take`], read by the
//! runtime through [`Transport::refused_peers`](super::Transport::refused_peers)
//! and handed to the node, which decides what it means for the
//! failover). A connect that succeeds (a flapping link, a proxy, a member
//! restarted already) or times out (a host gone, a cut: no reset comes)
//! reports nothing: the failover timer applies.

use std::io::{ErrorKind, Read};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::Duration;

use parking_lot::Mutex;

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

/// Peers whose connection ended and whose address then refused a dial,
/// oldest first, until the runtime takes them.
#[derive(Debug, Default)]
pub(crate) struct GoneReports(Mutex<Vec<NodeId>>);

impl GoneReports {
    /// Dials `addr`, member `peer`'s address, after its connection to this
    /// member ended; records `peer` if the dial was refused. Returns
    /// whether it was.
    pub(crate) fn check(&self, peer: NodeId, addr: SocketAddr) -> bool {
        let refused = refused(addr);
        if refused {
            let mut gone = self.0.lock();
            if !gone.contains(&peer) {
                gone.push(peer);
            }
        }
        refused
    }

    /// The peers reported since the last call.
    pub(crate) fn take(&self) -> Vec<NodeId> {
        std::mem::take(&mut *self.0.lock())
    }
}

/// Whether nothing listens at `addr` any more: a TCP connect is refused,
/// or it was taken into the listener's backlog and reset when the
/// listener closed (a process dying while the dial was on its way). A
/// connect whose connection is then held open (a member waiting for the
/// caller's first byte, a relay or proxy) is not; neither is one that
/// times out (no reset comes from a host gone or a cut). A connection
/// closed without a word (the member stopping, or over its connection
/// limit) is asked again, a few times, a few milliseconds apart.
pub(crate) fn refused(addr: SocketAddr) -> bool {
    for _ in 0..ATTEMPTS {
        let stream = match TcpStream::connect_timeout(&addr, DIAL) {
            Ok(stream) => stream,
            Err(e) => return e.kind() == ErrorKind::ConnectionRefused,
        };
        if stream.set_read_timeout(Some(HELD)).is_err() {
            return false;
        }
        match (&stream).read(&mut [0u8; 1]) {
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return true,
            Ok(0) => thread::sleep(AGAIN),
            // Held open, or answered: something listens and serves.
            _ => return false,
        }
    }
    false
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
        assert!(!reports.check(NodeId(2), live), "something listens");
        // Accepted, held open: served.
        let held = thread::spawn(move || listener.accept().map(|(s, _)| (s, listener)));
        assert!(!reports.check(NodeId(2), live), "something serves");
        let (_conn, listener) = held.join().unwrap().unwrap();
        assert!(reports.take().is_empty());
        drop(listener);
        // Nothing listens at the address now: refused.
        assert!(reports.check(NodeId(2), live));
        assert!(reports.check(NodeId(2), live));
        assert_eq!(reports.take(), vec![NodeId(2)], "reported once");
        assert!(reports.take().is_empty());
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
        assert!(refused(addr));
        closer.join().unwrap();
    }
}
