//! Loopback addresses for members started later: test clusters, the
//! example launcher, benchmarks.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU32, Ordering};

/// The first port handed out; everything lies below Linux's ephemeral
/// range (32768–60999 by default).
const FIRST: u32 = 20_000;
/// How many ports the picker walks through.
const SPAN: u32 = 12_000;

/// A loopback address that nothing listens on now, for a member to bind
/// a moment later.
///
/// Not port 0's pick: the kernel draws that from the ephemeral range, the
/// same range every outbound connection on the machine draws its local
/// port from, so a connection (another member dialling out, another test)
/// can take the port between the pick and the member's `bind`, and the
/// member fails to start with [`TransportError::Bind`](super::TransportError::Bind).
/// These ports lie below that range, each handed out at most once per
/// process, from a start that differs between processes, and each was
/// bindable when handed out.
///
/// # Errors
/// [`io::ErrorKind::AddrInUse`] when every port of the span is taken.
pub fn free_loopback_addr() -> io::Result<SocketAddr> {
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(7919) % SPAN,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    for _ in 0..SPAN {
        let port = FIRST + NEXT.fetch_add(1, Ordering::Relaxed) % SPAN;
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port as u16)) {
            return listener.local_addr();
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AddrInUse,
        format!(
            "no free loopback port in {FIRST}..{}: stop what holds them",
            FIRST + SPAN
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_distinct_bindable_and_below_the_ephemeral_range() {
        let picked: Vec<SocketAddr> = (0..50).map(|_| free_loopback_addr().unwrap()).collect();
        let distinct: std::collections::BTreeSet<_> = picked.iter().collect();
        assert_eq!(distinct.len(), picked.len());
        for addr in &picked {
            assert!(addr.ip().is_loopback());
            assert!((FIRST..FIRST + SPAN).contains(&u32::from(addr.port())));
        }
        // Held now, the next pick skips it.
        let _held = TcpListener::bind(picked[0]).unwrap();
    }
}
