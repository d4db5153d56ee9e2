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

use std::collections::BTreeSet;
use std::io::ErrorKind;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
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
use super::identity::{CertifiedAs, ExpectedPeer, PeerIdentity};
use super::security::TlsFiles;
use crate::topology::NodeId;

/// The first byte of every TLS connection: a handshake record.
pub(super) const HANDSHAKE_RECORD: u8 = 0x16;

/// What a member uses for TLS, re-read from its files when they change.
pub(crate) struct TlsContext {
    files: TlsFiles,
    me: PeerIdentity,
    members: Arc<BTreeSet<NodeId>>,
    provider: Arc<CryptoProvider>,
    current: Mutex<Arc<Material>>,
    /// Contents that failed the checks, so each bad version is logged once.
    rejected: Mutex<Option<[Vec<u8>; 3]>>,
}

/// One version of the files, checked and ready.
struct Material {
    raw: [Vec<u8>; 3],
    roots: Arc<RootCertStore>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    server: Arc<ServerConfig>,
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
        let members = Arc::new(members);
        let raw = read_all(files)?;
        let material = Material::build(raw, files, me, &members, &provider)?;
        Ok(Self {
            files: files.clone(),
            me,
            members,
            provider,
            current: Mutex::new(Arc::new(material)),
            rejected: Mutex::new(None),
        })
    }

    /// The material to use for a new connection: the files' contents when
    /// they changed and pass the checks, the last good ones otherwise.
    fn refresh(&self, logger: &Logger) -> Arc<Material> {
        let current = self.current.lock().clone();
        let Ok(raw) = read_all(&self.files) else {
            return current; // mid-rotation, or gone: keep what works
        };
        if raw == current.raw {
            return current;
        }
        match Material::build(
            raw.clone(),
            &self.files,
            self.me,
            &self.members,
            &self.provider,
        ) {
            Ok(m) => {
                slog::info!(logger, "TLS files changed; new connections use them";
                    "cert" => %self.files.cert.display());
                let m = Arc::new(m);
                *self.current.lock() = m.clone();
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

    /// A server-side connection for an inbound caller.
    pub(super) fn accept(&self, logger: &Logger) -> Result<Connection, rustls::Error> {
        let m = self.refresh(logger);
        Ok(Connection::Server(rustls::ServerConnection::new(
            m.server.clone(),
        )?))
    }

    /// A client-side connection to `peer` at `addr`, which must present
    /// `peer`'s certificate.
    pub(super) fn connect(
        &self,
        peer: NodeId,
        addr: SocketAddr,
        logger: &Logger,
    ) -> Result<Connection, rustls::Error> {
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
        Ok(Connection::Client(rustls::ClientConnection::new(
            Arc::new(cfg),
            name,
        )?))
    }
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
        members: &Arc<BTreeSet<NodeId>>,
        provider: &Arc<CryptoProvider>,
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

        // This member's own certificate must pass what its peers will check.
        let own = ParsedCertificate::try_from(&chain[0]).map_err(|e| rejected(&files.cert, &e))?;
        let algs = provider.signature_verification_algorithms;
        verify_server_cert_signed_by_trust_anchor(
            &own,
            &roots,
            &chain[1..],
            UnixTime::now(),
            algs.all,
        )
        .map_err(|e| match refusal(&e, unspecified()) {
            ConnectionError::Tls { reason, .. } => TransportError::OwnCertificate {
                path: files.cert.clone(),
                reason,
            },
            _ => rejected(&files.cert, &e),
        })?;
        let found = CertifiedAs::of_der(&chain[0]);
        if found.peer() != Some(me) {
            return Err(TransportError::OwnIdentity {
                path: files.cert.clone(),
                expected: me,
                found,
            });
        }

        let inner = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(|e| rejected(&files.ca, &e))?;
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
            return Err(refusal(&e, peer));
        }
    }
}

/// The identity in the peer's certificate (after a completed handshake).
pub(super) fn peer_identity(conn: &Connection) -> Option<PeerIdentity> {
    let certs = conn.peer_certificates()?;
    CertifiedAs::of_der(certs.first()?).peer()
}

/// Checks a client's certificate: the cluster CA's chain (webpki, client
/// auth required), then a member's identity.
#[derive(Debug)]
struct MemberClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    cluster_id: u64,
    members: Arc<BTreeSet<NodeId>>,
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
        check_identity(end_entity, self.cluster_id, &self.members, None)?;
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
    members: Arc<BTreeSet<NodeId>>,
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
        check_identity(end_entity, cluster, &self.members, Some(self.expected))?;
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
