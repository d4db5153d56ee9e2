//! Mutual TLS between members with rustls (ring provider, TLS 1.3 only).
//!
//! Both sides verify the other's chain against the cluster CA with webpki,
//! then the identity in it ([`CertifiedAs`]): the inbound side accepts
//! only a member of this cluster's topology (and later checks the hello
//! names the same node); the outbound side accepts only the node it
//! dialled. The checks run inside the handshake, so an impostor server
//! never even sees this member's certificate, and a refused client gets a
//! TLS alert. No session tickets, no resumption, no 0-RTT data: every
//! connection runs a full handshake with fresh keys, so recorded traffic
//! replays nowhere.
//!
//! The files are checked for changes (length and modification time) at
//! most once per [`RECHECK`], and read again only when they changed, so
//! callers reaching the port cannot make the member do file I/O. Each
//! connection records when its peer's certificate chain expires and which
//! CA it was verified under ([`Session`]); the connection's own loop
//! closes it when either no longer holds.

use std::collections::BTreeSet;
use std::io::ErrorKind;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::{Mutex, RwLock};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{verify_server_cert_signed_by_trust_anchor, Resumption};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{NoServerSessionStorage, ParsedCertificate, WebPkiClientVerifier};
use rustls::{
    CertificateError, ClientConfig, Connection, DigitallySignedStruct, DistinguishedName,
    RootCertStore, ServerConfig, SignatureScheme,
};
use slog::Logger;

use super::error::{ConnectionError, PemItem, TlsRefusal, TransportError};
use super::identity::{not_after, CertifiedAs, ExpectedPeer, PeerIdentity};
use super::security::TlsFiles;
use crate::topology::NodeId;

/// The first byte of every TLS connection: a handshake record.
pub(super) const HANDSHAKE_RECORD: u8 = 0x16;

/// How often, at most, the TLS files are checked for changes.
pub(crate) const RECHECK: Duration = Duration::from_secs(1);

/// The members whose certificates are accepted now (the transport's
/// peers: changed at runtime when the topology moves a member).
type Members = Arc<RwLock<BTreeSet<NodeId>>>;

/// What a member uses for TLS, re-read from its files when they change.
pub(crate) struct TlsContext {
    files: TlsFiles,
    me: PeerIdentity,
    members: Members,
    provider: Arc<CryptoProvider>,
    current: Mutex<Arc<Material>>,
    /// When the files were last looked at, and what they looked like.
    checked: Mutex<(Instant, Option<[Stamp; 3]>)>,
    /// Bumped each time material with another CA is installed.
    generation: AtomicU64,
    /// Contents that failed the checks, so each bad version is logged once.
    rejected: Mutex<Option<[Vec<u8>; 3]>>,
}

/// A file's length and modification time: read again when either changes.
type Stamp = (u64, Option<SystemTime>);

/// One version of the files, checked and ready.
struct Material {
    raw: [Vec<u8>; 3],
    roots: Arc<RootCertStore>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    server: Arc<ServerConfig>,
    /// The CA generation it belongs to.
    generation: u64,
}

/// What a connection's handshake established, and what its loop checks
/// to close it when it no longer holds.
#[derive(Debug, Clone)]
pub(super) struct Session {
    /// Whom the peer's certificate names.
    pub(super) identity: CertifiedAs,
    /// When the first certificate of the peer's chain expires.
    pub(super) expires: Option<SystemTime>,
    /// The CA generation the chain was verified under.
    pub(super) generation: u64,
}

impl Session {
    /// Why the connection must close now, if it must: the peer's
    /// certificate expired, or the CA changed since the handshake.
    pub(super) fn stale(&self, ctx: &TlsContext, now: SystemTime) -> Option<Stale> {
        if self.expires.is_some_and(|t| now > t) {
            return Some(Stale::Expired);
        }
        (ctx.generation() != self.generation).then_some(Stale::CaChanged)
    }
}

/// Why a live connection is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stale {
    /// The peer's certificate (or one of its chain) expired.
    Expired,
    /// The cluster CA file changed: every connection re-handshakes.
    CaChanged,
}

impl TlsContext {
    /// Reads and checks the files: the CA must be a trust anchor, the
    /// key must fit the certificate, and the certificate must chain to the
    /// CA and name `me`.
    pub(crate) fn load(
        files: &TlsFiles,
        me: PeerIdentity,
        members: BTreeSet<NodeId>,
    ) -> Result<Self, TransportError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let members = Arc::new(RwLock::new(members));
        let stamps = stamp_all(files);
        let raw = read_all(files)?;
        let material = Material::build(raw, files, me, &members, &provider, 0)?;
        Ok(Self {
            files: files.clone(),
            me,
            members,
            provider,
            current: Mutex::new(Arc::new(material)),
            checked: Mutex::new((Instant::now(), stamps)),
            generation: AtomicU64::new(0),
            rejected: Mutex::new(None),
        })
    }

    /// Makes `members` the only members whose certificates are accepted,
    /// by new connections from now on (the transport closes the
    /// connections of members that left).
    pub(super) fn set_members(&self, members: BTreeSet<NodeId>) {
        *self.members.write() = members;
    }

    /// The CA generation in use: bumped whenever new files with another
    /// CA are installed.
    pub(super) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }

    /// Looks for new files (see [`TlsContext::refresh`]); the writers call
    /// it while idle, so a CA change closes live connections even when no
    /// new connection opens.
    pub(super) fn poll(&self, logger: &Logger) {
        let _ = self.refresh(logger);
    }

    /// The material to use for a new connection: the files' contents when
    /// they changed and pass the checks, the last good ones otherwise. The
    /// files are looked at at most once per [`RECHECK`], and read only
    /// when their length or modification time changed.
    fn refresh(&self, logger: &Logger) -> Arc<Material> {
        let current = self.current.lock().clone();
        {
            let mut checked = self.checked.lock();
            let now = Instant::now();
            if now.saturating_duration_since(checked.0) < RECHECK {
                return current;
            }
            checked.0 = now;
            let stamps = stamp_all(&self.files);
            if stamps.is_none() || stamps == checked.1 {
                return current; // unchanged, or mid-rotation/gone: keep what works
            }
            checked.1 = stamps;
        }
        let Ok(raw) = read_all(&self.files) else {
            return current;
        };
        if raw == current.raw {
            return current;
        }
        let same_ca = raw[0] == current.raw[0];
        let generation = current.generation + u64::from(!same_ca);
        match Material::build(
            raw.clone(),
            &self.files,
            self.me,
            &self.members,
            &self.provider,
            generation,
        ) {
            Ok(m) => {
                let m = Arc::new(m);
                if !same_ca {
                    // First, so no connection made with the new material
                    // sees the old generation as current.
                    self.generation.store(generation, Ordering::Relaxed);
                }
                *self.current.lock() = m.clone();
                if same_ca {
                    slog::info!(logger, "TLS files changed; new connections use them";
                        "cert" => %self.files.cert.display());
                } else {
                    slog::info!(logger, "TLS CA changed; every connection re-handshakes";
                        "ca" => %self.files.ca.display());
                }
                m
            }
            Err(e) => {
                let mut rejected = self.rejected.lock();
                if rejected.as_ref() != Some(&raw) {
                    slog::warn!(logger, "changed TLS files refused; keeping the previous ones";
                        "error" => %e);
                    *rejected = Some(raw);
                }
                current
            }
        }
    }

    /// A server-side connection for an inbound caller, and the CA
    /// generation it verifies under.
    pub(super) fn accept(&self, logger: &Logger) -> Result<(Connection, u64), rustls::Error> {
        let m = self.refresh(logger);
        let conn = rustls::ServerConnection::new(m.server.clone())?;
        Ok((Connection::Server(conn), m.generation))
    }

    /// A client-side connection to `peer` at `addr`, which must present
    /// `peer`'s certificate, and the CA generation it verifies under.
    pub(super) fn connect(
        &self,
        peer: NodeId,
        addr: SocketAddr,
        logger: &Logger,
    ) -> Result<(Connection, u64), rustls::Error> {
        let m = self.refresh(logger);
        let verifier = MemberServerVerifier {
            roots: m.roots.clone(),
            algs: self.provider.signature_verification_algorithms,
            members: self.members.clone(),
            expected: PeerIdentity::new(self.me.cluster_id, peer),
        };
        let mut cfg = ClientConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_client_auth_cert(m.chain.clone(), m.key.clone_key())?;
        cfg.resumption = Resumption::disabled();
        cfg.enable_sni = false;
        // The name is not checked (the verifier checks the URI identity);
        // an IP address also keeps SNI off the wire.
        let name = ServerName::IpAddress(addr.ip().into());
        let conn = rustls::ClientConnection::new(Arc::new(cfg), name)?;
        Ok((Connection::Client(conn), m.generation))
    }
}

fn stamp_all(files: &TlsFiles) -> Option<[Stamp; 3]> {
    let stamp = |p: &Path| {
        let m = std::fs::metadata(p).ok()?;
        Some((m.len(), m.modified().ok()))
    };
    Some([stamp(&files.ca)?, stamp(&files.cert)?, stamp(&files.key)?])
}

fn read_all(files: &TlsFiles) -> Result<[Vec<u8>; 3], TransportError> {
    let read = |p: &Path| {
        std::fs::read(p).map_err(|source| TransportError::TlsFile {
            path: p.to_path_buf(),
            source,
        })
    };
    Ok([read(&files.ca)?, read(&files.cert)?, read(&files.key)?])
}

impl Material {
    fn build(
        raw: [Vec<u8>; 3],
        files: &TlsFiles,
        me: PeerIdentity,
        members: &Members,
        provider: &Arc<CryptoProvider>,
        generation: u64,
    ) -> Result<Self, TransportError> {
        let pem = |path: &Path, item| TransportError::TlsPem {
            path: path.to_path_buf(),
            item,
        };
        let rejected = |path: &Path, e: &dyn std::fmt::Display| TransportError::TlsRejected {
            path: path.to_path_buf(),
            reason: e.to_string(),
        };
        let certs = |bytes: &[u8], path: &Path| {
            let list: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(bytes)
                .collect::<Result<_, _>>()
                .map_err(|_| pem(path, PemItem::Certificate))?;
            if list.is_empty() {
                return Err(pem(path, PemItem::Certificate));
            }
            Ok(list)
        };
        let cas = certs(&raw[0], &files.ca)?;
        let chain = certs(&raw[1], &files.cert)?;
        let key = PrivateKeyDer::from_pem_slice(&raw[2])
            .map_err(|_| pem(&files.key, PemItem::PrivateKey))?;
        let mut roots = RootCertStore::empty();
        for ca in cas {
            roots.add(ca).map_err(|e| rejected(&files.ca, &e))?;
        }
        let roots = Arc::new(roots);

        let inner = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(|e| rejected(&files.ca, &e))?;

        // This member's own certificate must pass what its peers will
        // check: as a server's (when it is dialled) and as a client's
        // (when it dials), each with its extended key usage.
        let own = ParsedCertificate::try_from(&chain[0]).map_err(|e| rejected(&files.cert, &e))?;
        let algs = provider.signature_verification_algorithms;
        let now = UnixTime::now();
        let own_refused = |e: rustls::Error| match refusal(&e, unspecified()) {
            ConnectionError::Tls { reason, .. } => TransportError::OwnCertificate {
                path: files.cert.clone(),
                reason,
            },
            _ => rejected(&files.cert, &e),
        };
        verify_server_cert_signed_by_trust_anchor(&own, &roots, &chain[1..], now, algs.all)
            .map_err(own_refused)?;
        inner
            .verify_client_cert(&chain[0], &chain[1..], now)
            .map_err(own_refused)?;
        let found = CertifiedAs::of_der(&chain[0]);
        if found.peer() != Some(me) {
            return Err(TransportError::OwnIdentity {
                path: files.cert.clone(),
                expected: me,
                found,
            });
        }

        let verifier = MemberClientVerifier {
            inner,
            cluster_id: me.cluster_id,
            members: members.clone(),
        };
        let mut server = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| rejected(&files.cert, &e))?
            .with_client_cert_verifier(Arc::new(verifier))
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(|e| rejected(&files.key, &e))?;
        server.send_tls13_tickets = 0;
        server.session_storage = Arc::new(NoServerSessionStorage {});
        server.max_early_data_size = 0;
        Ok(Self {
            raw,
            roots,
            chain,
            key,
            server: Arc::new(server),
            generation,
        })
    }
}

fn unspecified() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 0))
}

/// A certificate of the cluster CA naming the wrong member; carried
/// through rustls as `CertificateError::Other` and turned back into
/// [`ConnectionError::CertificateIdentity`] by [`refusal`].
#[derive(Debug)]
struct IdentityMismatch {
    expected: ExpectedPeer,
    found: CertifiedAs,
}

impl std::fmt::Display for IdentityMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "certificate names {}, expected {}",
            self.found, self.expected
        )
    }
}

impl std::error::Error for IdentityMismatch {}

/// Accepts a certificate naming a member of this cluster (other than
/// none), and `expected` exactly when given.
fn check_identity(
    cert: &CertificateDer<'_>,
    cluster_id: u64,
    members: &BTreeSet<NodeId>,
    expected: Option<PeerIdentity>,
) -> Result<(), rustls::Error> {
    let found = CertifiedAs::of_der(cert);
    let expected_peer = match (found.peer(), expected) {
        (Some(p), Some(e)) if p == e && members.contains(&p.node) => return Ok(()),
        (Some(p), None) if p.cluster_id == cluster_id && members.contains(&p.node) => return Ok(()),
        (Some(p), _) if p.cluster_id == cluster_id && !members.contains(&p.node) => {
            ExpectedPeer::MemberOf { cluster_id }
        }
        (_, Some(e)) => ExpectedPeer::Node(e),
        (_, None) => ExpectedPeer::MemberOf { cluster_id },
    };
    let mismatch = IdentityMismatch {
        expected: expected_peer,
        found,
    };
    Err(rustls::Error::InvalidCertificate(CertificateError::Other(
        rustls::OtherError(Arc::new(mismatch)),
    )))
}

/// Turns a rustls error into the refusal it stands for.
pub(super) fn refusal(e: &rustls::Error, peer: SocketAddr) -> ConnectionError {
    use rustls::Error as E;
    use CertificateError as C;
    let reason = match e {
        E::InvalidCertificate(C::Other(o)) => match o.0.downcast_ref::<IdentityMismatch>() {
            Some(m) => {
                return ConnectionError::CertificateIdentity {
                    peer,
                    expected: m.expected,
                    found: m.found.clone(),
                }
            }
            None => TlsRefusal::BadCertificate {
                detail: e.to_string(),
            },
        },
        E::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => TlsRefusal::Expired,
        E::InvalidCertificate(C::NotValidYet | C::NotValidYetContext { .. }) => {
            TlsRefusal::NotYetValid
        }
        E::InvalidCertificate(C::UnknownIssuer) => TlsRefusal::UnknownIssuer,
        E::InvalidCertificate(C::InvalidPurpose | C::InvalidPurposeContext { .. }) => {
            TlsRefusal::InvalidPurpose
        }
        E::InvalidCertificate(_) => TlsRefusal::BadCertificate {
            detail: e.to_string(),
        },
        E::NoCertificatesPresented => TlsRefusal::NoCertificate,
        E::AlertReceived(a) => TlsRefusal::AlertReceived {
            alert: format!("{a:?}"),
        },
        other => TlsRefusal::Protocol {
            detail: other.to_string(),
        },
    };
    ConnectionError::Tls { peer, reason }
}

fn would_block(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
    )
}

/// Runs `conn`'s handshake over `tcp` (whose read timeout paces the
/// loop). `Ok(false)` when the connection closed quietly before anything
/// arrived, or the member is stopping.
///
/// # Errors
/// [`ConnectionError::HelloTimeout`] past `deadline`, the [`refusal`] of a
/// failed handshake, or [`TlsRefusal::Incomplete`].
pub(super) fn handshake(
    conn: &mut Connection,
    tcp: &mut TcpStream,
    peer: SocketAddr,
    deadline: Instant,
    stopping: &dyn Fn() -> bool,
) -> Result<bool, ConnectionError> {
    let mut received = 0usize;
    loop {
        while conn.wants_write() {
            match conn.write_tls(tcp) {
                Ok(_) => {}
                Err(e) if would_block(&e) && Instant::now() < deadline => {}
                Err(_) => return Ok(false),
            }
        }
        if !conn.is_handshaking() {
            return Ok(true);
        }
        if stopping() {
            return Ok(false);
        }
        if Instant::now() >= deadline {
            return Err(ConnectionError::HelloTimeout { peer });
        }
        match conn.read_tls(tcp) {
            Ok(0) if received == 0 && matches!(conn, Connection::Server(_)) => return Ok(false),
            Ok(0) => {
                return Err(ConnectionError::Tls {
                    peer,
                    reason: TlsRefusal::Incomplete,
                })
            }
            Ok(n) => received += n,
            Err(e) if would_block(&e) => continue,
            Err(_) => return Ok(false),
        }
        if let Err(e) = conn.process_new_packets() {
            let _ = conn.write_tls(tcp); // the alert, if there is one
            if matches!(conn, Connection::Server(_)) {
                linger(tcp);
            }
            return Err(refusal(&e, peer));
        }
    }
}

/// Closes our side after an alert and reads what the caller still sends
/// for a moment (at most 64 KiB, 200 ms), so the kernel does not answer
/// its unread bytes with a reset that could overtake the alert: a refused
/// member then learns why.
fn linger(tcp: &mut TcpStream) {
    use std::io::Read;
    let _ = tcp.shutdown(std::net::Shutdown::Write);
    let end = Instant::now() + Duration::from_millis(200);
    let mut buf = [0u8; 4096];
    let mut left = 64usize << 10;
    while left > 0 && Instant::now() < end {
        match tcp.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => left = left.saturating_sub(n),
            Err(e) if would_block(&e) => {}
            Err(_) => return,
        }
    }
}

/// What a completed handshake established: whom the peer's certificate
/// names, when its chain expires, under which CA `generation`.
pub(super) fn session(conn: &Connection, generation: u64) -> Session {
    let certs = conn.peer_certificates().unwrap_or_default();
    let identity = certs
        .first()
        .map_or(CertifiedAs::Nobody, |c| CertifiedAs::of_der(c));
    let expires = certs
        .iter()
        .filter_map(|c| not_after(c))
        .min()
        .map(|secs| UNIX_EPOCH + Duration::from_secs(secs));
    Session {
        identity,
        expires,
        generation,
    }
}

/// Checks a client's certificate: the cluster CA's chain (webpki, client
/// auth required), then a member's identity.
#[derive(Debug)]
struct MemberClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    cluster_id: u64,
    members: Members,
}

impl ClientCertVerifier for MemberClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.inner
            .verify_client_cert(end_entity, intermediates, now)?;
        check_identity(end_entity, self.cluster_id, &self.members.read(), None)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Checks a server's certificate: the cluster CA's chain (webpki), then
/// the identity of the node dialled. The TLS server name is not used.
#[derive(Debug)]
struct MemberServerVerifier {
    roots: Arc<RootCertStore>,
    algs: WebPkiSupportedAlgorithms,
    members: Members,
    expected: PeerIdentity,
}

impl ServerCertVerifier for MemberServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let cert = ParsedCertificate::try_from(end_entity)?;
        verify_server_cert_signed_by_trust_anchor(
            &cert,
            &self.roots,
            intermediates,
            now,
            self.algs.all,
        )?;
        let cluster = self.expected.cluster_id;
        let members = self.members.read();
        check_identity(end_entity, cluster, &members, Some(self.expected))?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
        SanType,
    };
    use std::fs::File;

    fn ca(name: &str) -> (Issuer<'static, KeyPair>, String) {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(rcgen::DnType::CommonName, name);
        p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        let pem = p.self_signed(&key).unwrap().pem();
        (Issuer::new(p, key), pem)
    }

    fn discard() -> Logger {
        Logger::root(slog::Discard, slog::o!())
    }

    /// Lets the next refresh look at the files at once.
    fn recheck_now(ctx: &TlsContext) {
        let mut c = ctx.checked.lock();
        c.0 = Instant::now().checked_sub(RECHECK).unwrap_or(c.0);
    }

    #[test]
    fn files_are_read_again_only_when_they_change_and_a_new_ca_bumps_the_generation() {
        let dir = tempfile::tempdir().unwrap();
        let me = PeerIdentity::new(7, NodeId(1));
        let (issuer, ca_pem) = ca("cluster CA");
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.subject_alt_names = vec![SanType::URI(me.uri().try_into().unwrap())];
        p.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = p.signed_by(&key, &issuer).unwrap().pem();
        let files = TlsFiles::new(
            dir.path().join("ca.pem"),
            dir.path().join("me.pem"),
            dir.path().join("me.key"),
        );
        std::fs::write(&files.ca, &ca_pem).unwrap();
        std::fs::write(&files.cert, &cert).unwrap();
        std::fs::write(&files.key, key.serialize_pem()).unwrap();
        let ctx = TlsContext::load(&files, me, BTreeSet::from([NodeId(2)])).unwrap();
        let first = ctx.current.lock().clone();

        // Same length, same modification time: not read (the garbage
        // would otherwise be refused and logged).
        let mtime = std::fs::metadata(&files.cert).unwrap().modified().unwrap();
        std::fs::write(&files.cert, "x".repeat(cert.len())).unwrap();
        File::options()
            .write(true)
            .open(&files.cert)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        recheck_now(&ctx);
        assert!(Arc::ptr_eq(&ctx.refresh(&discard()), &first));
        assert!(ctx.rejected.lock().is_none(), "the file was read");
        // Another modification time: read, refused, the old material kept.
        File::options()
            .write(true)
            .open(&files.cert)
            .unwrap()
            .set_modified(mtime + Duration::from_secs(5))
            .unwrap();
        recheck_now(&ctx);
        assert!(Arc::ptr_eq(&ctx.refresh(&discard()), &first));
        assert!(ctx.rejected.lock().is_some(), "the file was not read");

        // A second CA in the trust file: new material, a new generation;
        // a session of the old one is stale, and so is an expired one.
        std::fs::write(&files.cert, &cert).unwrap();
        let (_, next_ca) = ca("next CA");
        std::fs::write(&files.ca, format!("{ca_pem}{next_ca}")).unwrap();
        recheck_now(&ctx);
        let second = ctx.refresh(&discard());
        assert!(!Arc::ptr_eq(&second, &first));
        assert_eq!((ctx.generation(), second.generation), (1, 1));
        let session = |expires, generation| Session {
            identity: CertifiedAs::Peer(me),
            expires,
            generation,
        };
        let now = SystemTime::now();
        let later = Some(now + Duration::from_secs(60));
        assert_eq!(session(later, 1).stale(&ctx, now), None);
        assert_eq!(session(later, 0).stale(&ctx, now), Some(Stale::CaChanged));
        let past = Some(now - Duration::from_secs(1));
        assert_eq!(session(past, 1).stale(&ctx, now), Some(Stale::Expired));
        // Only the certificate renewed (same CA): same generation.
        let renewed = p.signed_by(&key, &issuer).unwrap().pem();
        std::fs::write(&files.cert, renewed).unwrap();
        recheck_now(&ctx);
        let third = ctx.refresh(&discard());
        assert!(!Arc::ptr_eq(&third, &second));
        assert_eq!(ctx.generation(), 1);
    }
}
