//! Hostile peers against a member running mutual TLS (issue 6). For each
//! attack: the connection is closed, the right counter moves, the member
//! keeps the typed reason (and logs it with the peer's address), nothing
//! is stepped into raft (the target's term, leader and epoch are
//! unchanged), memory stays bounded, and the attacked member itself keeps
//! applying writes.
//!
//! The target is CM02a (node 3), a follower in Paris. Deadlines are
//! shortened (1 s) so slow drips are cut off quickly. One module per kind
//! of attack; the attacker's TLS client and the checks live here.

#[path = "../support/mod.rs"]
mod support;

mod certificates;
mod config;
mod expiry;
mod frames;
mod limits;
mod outbound;
mod plaintext;
mod replay;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
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
use survivable_core::transport::{ConnectionError, Limits, PeerIdentity, TlsFiles, TransportStats};
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
    cluster_with(true)
}

/// A settled cluster with short limits and calm timers, over mutual TLS
/// or (`tls: false`) plaintext loopback.
fn cluster_with(tls: bool) -> Cluster {
    let c = Cluster::with(Options {
        tls,
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

/// Whether the member closed (or reset) the connection before the
/// stream's read timeout. What it sends first (its confirming hello, when
/// it accepted the caller) is read and ignored.
fn closed(mut s: impl Read) -> bool {
    let mut buf = [0u8; 512];
    let mut left = 64usize << 10;
    while left > 0 {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(n) => left = left.saturating_sub(n),
            Err(e) => return !would_block(&e),
        }
    }
    false
}

/// Reads until the member's confirming hello arrived (true), or the
/// connection closed or the read timeout passed first (false).
fn confirmed(s: &mut impl Read) -> bool {
    let mut got = Vec::new();
    let mut buf = [0u8; 64];
    loop {
        if got.len() >= 4 {
            let len = u32::from_be_bytes(got[..4].try_into().unwrap()) as usize;
            if got.len() >= 4 + len {
                return Hello::from_bytes(&got[4..4 + len]).is_ok();
            }
        }
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return false,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
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

/// The refusals `id` kept, oldest first.
fn refusals(c: &Cluster, id: NodeId) -> Vec<ConnectionError> {
    c.members[&id].transport.recent_refusals()
}

/// Runs one attack on CM02a: it must close the connection, move
/// `counter` (and the refusal total) by one, keep a refusal for which
/// `reason` holds, log that kind of refusal with the peer's address,
/// leave raft untouched, and CM02a itself must keep applying writes.
fn refused(
    c: &Cluster,
    what: &str,
    counter: fn(&TransportStats) -> u64,
    reason: impl Fn(&ConnectionError) -> bool,
    attack: impl FnOnce(SocketAddr) -> bool,
) {
    const LOGGED: &str = "refused a connection";
    let base = c.stats(CM02A);
    let kept = refusals(c, CM02A).len();
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
    // The typed reason, kept with the peer's address (the list holds the
    // last 64; these tests refuse fewer).
    let all = refusals(c, CM02A);
    assert_eq!(all.len(), kept + 1, "{what}: {all:#?}");
    let e = &all[kept];
    assert!(reason(e), "{what}: refused for {e:?}");
    assert!(e.peer().ip().is_loopback(), "{what}: {e:?}");
    // Logged with the peer's address and the reason: at most once per
    // window for each address and kind, so the line may be an earlier
    // attack's of the same kind.
    let kind = format!(" kind={} ", e.kind());
    // A silent peer's connection is closed, not refused: logged as such.
    let logged = if e.kind() == "idle" {
        "peer silent"
    } else {
        LOGGED
    };
    c.wait_for(Duration::from_secs(5), "the refusal to be logged", |c| {
        c.logged(CM02A, logged).iter().any(|l| {
            l.contains(&kind) && l.contains(" peer=127.0.0.1:") && l.contains(" reason=127.0.0.1:")
        })
    });
    let after = c.status(CM02A);
    assert_eq!(
        (after.term, after.leader, after.epoch),
        (before.term, before.leader, before.epoch),
        "{what}: raft state changed"
    );
    serving_at(c, CM02A, what);
}

/// A write made now at the leader is applied by `id` itself.
fn serving_at(c: &Cluster, id: NodeId, what: &str) {
    static N: AtomicU64 = AtomicU64::new(0);
    let cmd = format!("after {what} #{}", N.fetch_add(1, Ordering::Relaxed)).into_bytes();
    let leader = c.leader().expect("a leader");
    let r = c.members[&leader]
        .handle
        .propose_timeout(cmd.clone(), Duration::from_secs(10));
    assert!(r.is_ok(), "after {what}: {r:?}");
    c.wait_for(
        Duration::from_secs(20),
        "the attacked member to apply a write made after the attack",
        |c| c.applied(id).contains(&cmd),
    );
}
