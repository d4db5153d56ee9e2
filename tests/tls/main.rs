//! Hostile peers against a member running mutual TLS (issue 6). For each
//! attack: the connection is closed, the right counter moves, nothing is
//! stepped into raft (the target's term, leader and epoch are unchanged),
//! memory stays bounded, and the cluster keeps committing.
//!
//! The target is CM02a (node 3), a follower in Paris. Deadlines are
//! shortened (1 s) so slow drips are cut off quickly. One module per kind
//! of attack; the attacker's TLS client and the checks live here.

#[path = "../support/mod.rs"]
mod support;

mod certificates;
mod config;
mod frames;
mod limits;
mod outbound;
mod replay;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme, StreamOwned};
use support::pki::Issued;
use support::{Cluster, Options, CLUSTER, CM02A};
use survivable_core::topology::NodeId;
use survivable_core::transport::{Limits, PeerIdentity, TlsFiles, TransportStats};
use survivable_core::wire::{encode_frame, Hello};

const DAY: Duration = Duration::from_secs(86_400);

fn short_limits() -> Limits {
    Limits {
        hello_timeout: Duration::from_secs(1),
        frame_timeout: Duration::from_secs(1),
        ..Limits::default()
    }
}

fn cluster() -> Cluster {
    let c = Cluster::with(Options {
        limits: short_limits(),
        timers: support::calm_timers(),
        ..Options::default()
    });
    c.settled(CM02A);
    c
}

fn uri(cluster: u64, node: u64) -> String {
    PeerIdentity::new(cluster, NodeId(node)).uri()
}

/// The attacker accepts whatever the member presents: it only wants in.
#[derive(Debug)]
struct AnyServer;

impl ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

fn chain(pem: &str) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap()
}

fn key(pem: &str) -> PrivateKeyDer<'static> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).unwrap()
}

/// A member's files as an [`Issued`].
fn issued_of(files: &TlsFiles) -> Issued {
    Issued {
        cert: std::fs::read_to_string(&files.cert).unwrap(),
        key: std::fs::read_to_string(&files.key).unwrap(),
    }
}

fn client(who: Option<&Issued>) -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let b = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyServer));
    Arc::new(match who {
        Some(i) => b
            .with_client_auth_cert(chain(&i.cert), key(&i.key))
            .unwrap(),
        None => b.with_no_client_auth(),
    })
}

type Tls = StreamOwned<ClientConnection, TcpStream>;

/// A TLS connection as the holder of `who` (the handshake runs on the
/// first write).
fn tls(addr: SocketAddr, who: Option<&Issued>) -> Tls {
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(4))).unwrap();
    let name = ServerName::IpAddress(addr.ip().into());
    StreamOwned::new(ClientConnection::new(client(who), name).unwrap(), tcp)
}

fn hello(from: u64) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(&Hello::new(CLUSTER, from, CM02A.0), &mut out).unwrap();
    out
}

fn would_block(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

/// Whether the member closed (or reset) the connection within 4 s.
fn closed(mut s: impl Read) -> bool {
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !would_block(&e),
    }
}

/// Sends `bytes` over TLS as `who`; whether the member then hung up.
fn send_as(addr: SocketAddr, who: Option<&Issued>, bytes: &[u8]) -> bool {
    let mut s = tls(addr, who);
    let _ = s.write_all(bytes).and_then(|()| s.flush());
    closed(s)
}

/// Writes `bytes` one at a time, `gap` apart, until a write fails (the
/// member hung up: true) or 6 s pass (false).
fn drip(mut w: impl Write, bytes: &[u8], gap: Duration) -> bool {
    let end = Instant::now() + Duration::from_secs(6);
    for b in bytes.iter().cycle() {
        if Instant::now() > end {
            return false;
        }
        if w.write_all(&[*b]).and_then(|()| w.flush()).is_err() {
            return true;
        }
        thread::sleep(gap);
    }
    false
}

/// Runs one attack on CM02a: it must close the connection, move
/// `counter` (and the refusal total) by one, leave raft untouched, and the
/// cluster must keep committing.
fn refused(
    c: &Cluster,
    what: &str,
    counter: fn(&TransportStats) -> u64,
    attack: impl FnOnce(SocketAddr) -> bool,
) {
    const LOGGED: &str = "refused a connection";
    let base = c.stats(CM02A);
    let logged = c.logged(CM02A, LOGGED).len();
    let before = c.status(CM02A);
    assert!(
        attack(c.addrs[&CM02A]),
        "{what}: the connection stayed open"
    );
    c.wait_for(Duration::from_secs(5), what, |c| {
        counter(&c.stats(CM02A)) > counter(&base)
    });
    let s = c.stats(CM02A);
    assert_eq!(counter(&s), counter(&base) + 1, "{what}: {s:?}");
    assert_eq!(s.refused, base.refused + 1, "{what}: {s:?}");
    // Logged once, with the peer's address and the reason.
    c.wait_for(Duration::from_secs(5), "the refusal to be logged", |c| {
        c.logged(CM02A, LOGGED).len() > logged
    });
    let lines = c.logged(CM02A, LOGGED);
    assert_eq!(lines.len(), logged + 1, "{what}: {lines:#?}");
    let line = &lines[logged];
    assert!(
        line.contains(" peer=127.0.0.1:") && line.contains(" reason=127.0.0.1:"),
        "{what}: {line}"
    );
    let after = c.status(CM02A);
    assert_eq!(
        (after.term, after.leader, after.epoch),
        (before.term, before.leader, before.epoch),
        "{what}: raft state changed"
    );
    c.assert_serving(what);
}
