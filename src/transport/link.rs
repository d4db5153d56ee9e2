//! One established connection, plaintext or TLS, as the inbound reader
//! and the outbound writer use it.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};

use rustls::Connection;

use super::tls::refusal;
use super::ConnectionError;

/// Plaintext TLS records carry at most this much.
const RECORD: usize = 16 << 10;

pub(super) enum Link {
    Plain(TcpStream),
    Tls(Box<Connection>, TcpStream),
}

/// What one [`Link::fill`] found.
pub(super) enum Fill {
    /// The peer closed (or reset) the connection.
    Closed,
    /// Nothing arrived within the socket's read timeout.
    Idle,
    /// Bytes arrived; `plain` of them (after decryption) went to the
    /// decoder. Zero means part of a TLS record that is not complete yet.
    Bytes {
        /// Plaintext bytes handed to the decoder.
        plain: usize,
    },
}

fn would_block(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
    )
}

impl Link {
    /// Reads what has arrived (waiting at most the socket's read timeout)
    /// and hands the plaintext to `sink`, in pieces of at most `buf.len()`.
    ///
    /// # Errors
    /// A TLS record that does not decrypt or decode ([`ConnectionError::Tls`]).
    pub(super) fn fill(
        &mut self,
        buf: &mut [u8],
        sink: &mut dyn FnMut(&[u8]),
        peer: SocketAddr,
    ) -> Result<Fill, ConnectionError> {
        match self {
            Self::Plain(tcp) => Ok(match tcp.read(buf) {
                Ok(0) => Fill::Closed,
                Ok(n) => {
                    sink(&buf[..n]);
                    Fill::Bytes { plain: n }
                }
                Err(e) if would_block(&e) => Fill::Idle,
                Err(_) => Fill::Closed,
            }),
            Self::Tls(conn, tcp) => {
                // Plaintext may already wait in rustls (e.g. the hello
                // decrypted with the handshake's last flight).
                match drain(conn, buf, sink) {
                    Some(0) => {}
                    Some(plain) => return Ok(Fill::Bytes { plain }),
                    None => return Ok(Fill::Closed),
                }
                match conn.read_tls(tcp) {
                    Ok(0) => return Ok(Fill::Closed),
                    Ok(_) => {}
                    Err(e) if would_block(&e) => return Ok(Fill::Idle),
                    Err(_) => return Ok(Fill::Closed),
                }
                if let Err(e) = conn.process_new_packets() {
                    let _ = conn.write_tls(tcp); // the alert
                    return Err(refusal(&e, peer));
                }
                Ok(drain(conn, buf, sink).map_or(Fill::Closed, |plain| Fill::Bytes { plain }))
            }
        }
    }

    /// Switches the socket's reads (and writes) to non-blocking, or back.
    pub(super) fn set_nonblocking(&self, on: bool) -> std::io::Result<()> {
        match self {
            Self::Plain(tcp) | Self::Tls(_, tcp) => tcp.set_nonblocking(on),
        }
    }

    /// Writes all of `bytes`.
    pub(super) fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Self::Plain(tcp) => tcp.write_all(bytes),
            Self::Tls(conn, tcp) => {
                for chunk in bytes.chunks(RECORD) {
                    conn.writer().write_all(chunk)?;
                    while conn.wants_write() {
                        conn.write_tls(tcp)?;
                    }
                }
                Ok(())
            }
        }
    }
}

/// Moves the plaintext rustls holds into `sink`: how many bytes, or `None`
/// when the peer closed (close_notify) with nothing left to deliver.
fn drain(conn: &mut Connection, buf: &mut [u8], sink: &mut dyn FnMut(&[u8])) -> Option<usize> {
    let mut plain = 0;
    loop {
        match conn.reader().read(buf) {
            // close_notify: what came before it is delivered first
            Ok(0) if plain == 0 => return None,
            Ok(0) => return Some(plain),
            Ok(n) => {
                sink(&buf[..n]);
                plain += n;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Some(plain),
            Err(_) if plain == 0 => return None,
            Err(_) => return Some(plain),
        }
    }
}
