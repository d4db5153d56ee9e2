//! Mutual TLS in front of `tiny_http`: an accept thread verifies each
//! connection's handshake (the cluster CA's chain, then an operator
//! identity of this cluster), then relays the decrypted bytes both ways
//! between the TLS connection and `tiny_http`'s Unix socket in a private
//! directory.

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::Mutex;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{NoServerSessionStorage, WebPkiClientVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig,
    ServerConnection, SignatureScheme,
};

use super::{OperatorError, OperatorIdentity, OperatorTls};

/// How long a client has to complete its handshake.
const HANDSHAKE: Duration = Duration::from_secs(5);
/// How long a TLS connection may stay idle before it is closed.
const IDLE: Duration = Duration::from_secs(60);

/// Reads the files and builds the server side: TLS 1.3 only, the
/// member's certificate, a client certificate naming an operator of
/// `cluster_id` required; no tickets, no resumption, no early data.
pub(super) fn server_config(tls: &OperatorTls) -> Result<Arc<ServerConfig>, OperatorError> {
    let files = &tls.files;
    let read = |p: &Path| {
        std::fs::read(p).map_err(|source| OperatorError::TlsFile {
            path: p.to_path_buf(),
            source,
        })
    };
    let rejected = |p: &Path, reason: String| OperatorError::TlsRejected {
        path: p.to_path_buf(),
        reason,
    };
    let certs = |p: &Path| -> Result<Vec<CertificateDer<'static>>, OperatorError> {
        let list: Vec<_> = CertificateDer::pem_slice_iter(&read(p)?)
            .collect::<Result<_, _>>()
            .map_err(|e| rejected(p, format!("not PEM certificates: {e}")))?;
        if list.is_empty() {
            return Err(rejected(p, "no PEM certificate in it".into()));
        }
        Ok(list)
    };
    let cas = certs(&files.ca)?;
    let chain = certs(&files.cert)?;
    let key = PrivateKeyDer::from_pem_slice(&read(&files.key)?)
        .map_err(|e| rejected(&files.key, format!("no PEM private key in it ({e})")))?;
    let mut roots = RootCertStore::empty();
    for ca in cas {
        roots
            .add(ca)
            .map_err(|e| rejected(&files.ca, format!("not a usable CA certificate: {e}")))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let inner = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| rejected(&files.ca, e.to_string()))?;
    let verifier = OperatorClientVerifier {
        inner,
        cluster_id: tls.cluster_id,
    };
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| rejected(&files.cert, e.to_string()))?
        .with_client_cert_verifier(Arc::new(verifier))
        .with_single_cert(chain, key)
        .map_err(|e| rejected(&files.key, format!("does not fit the certificate: {e}")))?;
    cfg.send_tls13_tickets = 0;
    cfg.session_storage = Arc::new(NoServerSessionStorage {});
    cfg.max_early_data_size = 0;
    Ok(Arc::new(cfg))
}

/// The cluster CA's chain (webpki, clientAuth), then exactly one
/// `survivable://<cluster_id>/operator/<name>` URI.
#[derive(Debug)]
struct OperatorClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    cluster_id: u64,
}

impl ClientCertVerifier for OperatorClientVerifier {
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
        match OperatorIdentity::of_der(end_entity) {
            Some(op) if op.cluster_id == self.cluster_id => Ok(ClientCertVerified::assertion()),
            _ => Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            )),
        }
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

/// A directory only this user can enter (mode 0700), removed when
/// dropped.
pub(super) struct PrivateDir(PathBuf);

impl PrivateDir {
    pub(super) fn create() -> std::io::Result<Self> {
        use std::os::unix::fs::DirBuilderExt;
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_nanos();
        let name = format!(
            "survivable-operator-{}-{}-{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let path = std::env::temp_dir().join(name);
        // `create` (not `create_all`) fails if it exists: nobody else's
        // directory is ever used.
        std::fs::DirBuilder::new().mode(0o700).create(&path)?;
        Ok(Self(path))
    }

    pub(super) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The accept thread and the live connections.
pub(super) struct TlsFront {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
    live: Arc<Live>,
}

impl TlsFront {
    pub(super) fn start(
        listener: TcpListener,
        cfg: Arc<ServerConfig>,
        socket: PathBuf,
        max_connections: usize,
    ) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let live = Arc::new(Mutex::new(BTreeMap::new()));
        let (s, l) = (stop.clone(), live.clone());
        let accept = std::thread::Builder::new()
            .name("operator-tls".into())
            .spawn(move || accept_loop(&listener, &cfg, &socket, max_connections, &s, &l))?;
        Ok(Self {
            addr,
            stop,
            accept: Some(accept),
            live,
        })
    }

    /// Stops accepting and closes every connection.
    pub(super) fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept thread with a connection of our own.
        let mut wake = self.addr;
        if wake.ip().is_unspecified() {
            wake.set_ip(match wake {
                SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        let _ = TcpStream::connect_timeout(&wake, Duration::from_secs(1));
        if let Some(a) = self.accept.take() {
            let _ = a.join();
        }
        let conns: Vec<_> = std::mem::take(&mut *self.live.lock())
            .into_values()
            .collect();
        for (tcp, _) in &conns {
            let _ = tcp.shutdown(Shutdown::Both);
        }
        for (_, thread) in conns {
            if let Some(t) = thread {
                let _ = t.join();
            }
        }
    }
}

/// The open connections by number: a clone of each socket (to close it
/// at shutdown) and its relay thread.
type Live = Mutex<BTreeMap<u64, (TcpStream, Option<JoinHandle<()>>)>>;

fn accept_loop(
    listener: &TcpListener,
    cfg: &Arc<ServerConfig>,
    socket: &Path,
    max_connections: usize,
    stop: &AtomicBool,
    live: &Arc<Live>,
) {
    let mut next = 0u64;
    for tcp in listener.incoming() {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let Ok(tcp) = tcp else { continue };
        {
            // Forget the connections that ended.
            let mut l = live.lock();
            l.retain(|_, (_, t)| !t.as_ref().is_some_and(JoinHandle::is_finished));
            if l.len() >= max_connections {
                continue; // dropped: closed at once
            }
        }
        let Ok(registered) = tcp.try_clone() else {
            continue;
        };
        next += 1;
        let id = next;
        live.lock().insert(id, (registered, None));
        let (cfg, socket, l) = (cfg.clone(), socket.to_path_buf(), live.clone());
        let spawned = std::thread::Builder::new()
            .name("operator-conn".into())
            .spawn(move || {
                let _ = relay(tcp, cfg, &socket);
                l.lock().remove(&id);
            });
        match spawned {
            Ok(t) => {
                if let Some(entry) = live.lock().get_mut(&id) {
                    entry.1 = Some(t);
                }
            }
            Err(_) => {
                live.lock().remove(&id);
            }
        }
    }
}

/// One connection: the handshake (refused clients get an alert), then
/// bytes both ways until either side closes.
fn relay(mut tcp: TcpStream, cfg: Arc<ServerConfig>, socket: &Path) -> std::io::Result<()> {
    tcp.set_nodelay(true)?;
    tcp.set_read_timeout(Some(HANDSHAKE))?;
    tcp.set_write_timeout(Some(HANDSHAKE))?;
    let mut conn = ServerConnection::new(cfg).map_err(std::io::Error::other)?;
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp)?;
    }
    tcp.set_read_timeout(Some(IDLE))?;
    let mut unix = UnixStream::connect(socket)?;
    let conn = Arc::new(Mutex::new(conn));
    let back = {
        let (conn, tcp, unix) = (conn.clone(), tcp.try_clone()?, unix.try_clone()?);
        std::thread::Builder::new()
            .name("operator-conn-out".into())
            .spawn(move || http_to_tls(unix, &conn, tcp))?
    };
    let result = tls_to_http(&mut tcp, &conn, &mut unix);
    let _ = unix.shutdown(Shutdown::Both);
    let _ = tcp.shutdown(Shutdown::Both);
    let _ = back.join();
    result
}

/// Client → `tiny_http`: decrypts what arrives and writes it to the
/// socket, until the client closes, idles out or breaks the protocol.
/// What came with the handshake's last flight (a request sent right
/// after the client's Finished) is relayed first.
fn tls_to_http(
    tcp: &mut TcpStream,
    conn: &Mutex<ServerConnection>,
    unix: &mut UnixStream,
) -> std::io::Result<()> {
    let mut raw = vec![0u8; 16 * 1024];
    let mut n = 0;
    loop {
        let mut plain = Vec::new();
        let closed = decrypt(&mut conn.lock(), &raw[..n], &mut plain, tcp)?;
        unix.write_all(&plain)?;
        if closed {
            return Ok(());
        }
        n = tcp.read(&mut raw)?;
        if n == 0 {
            return Ok(());
        }
    }
}

/// Feeds `input` to the connection and appends the plaintext to `plain`;
/// whether the client has closed.
fn decrypt(
    c: &mut ServerConnection,
    mut input: &[u8],
    plain: &mut Vec<u8>,
    tcp: &mut TcpStream,
) -> std::io::Result<bool> {
    let mut closed = false;
    loop {
        let state = c.process_new_packets().map_err(|e| {
            let _ = c.write_tls(tcp); // the alert
            std::io::Error::new(ErrorKind::InvalidData, e)
        })?;
        let mut chunk = vec![0u8; state.plaintext_bytes_to_read()];
        c.reader().read_exact(&mut chunk)?;
        plain.extend_from_slice(&chunk);
        closed |= state.peer_has_closed();
        if input.is_empty() || c.read_tls(&mut input)? == 0 {
            break;
        }
    }
    while c.wants_write() {
        c.write_tls(tcp)?;
    }
    Ok(closed)
}

/// `tiny_http` → client: encrypts its answers, until it closes the socket.
fn http_to_tls(
    mut unix: UnixStream,
    conn: &Mutex<ServerConnection>,
    mut tcp: TcpStream,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = unix.read(&mut buf)?;
        let mut c = conn.lock();
        if n == 0 {
            c.send_close_notify();
        } else {
            c.writer().write_all(&buf[..n])?;
        }
        while c.wants_write() {
            c.write_tls(&mut tcp)?;
        }
        if n == 0 {
            let _ = tcp.shutdown(Shutdown::Write);
            return Ok(());
        }
    }
}
