//! The running endpoint: `tiny_http` and its fixed pool of answering
//! threads, with the TLS front when off loopback.

use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::routes::{self, Reply, Uptime};
use super::tls::{PrivateDir, TlsFront};
use super::{Operable, OperatorConfig, OperatorError, MAX_BODY};

/// How often an idle answering thread looks at the stop flag.
const POLL: Duration = Duration::from_millis(100);

/// A running operator endpoint; stops on [`OperatorServer::shutdown`] or
/// when dropped.
pub struct OperatorServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    front: Option<TlsFront>,
    dir: Option<PrivateDir>,
}

struct Shared {
    http: tiny_http::Server,
    stop: AtomicBool,
    operable: Arc<dyn Operable>,
    started: Instant,
    grace: Duration,
}

impl std::fmt::Debug for OperatorServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OperatorServer")
            .field("addr", &self.addr)
            .field("tls", &self.front.is_some())
            .finish()
    }
}

/// Starts the endpoint for `operable` as `config` says.
///
/// ```no_run
/// # use std::sync::Arc;
/// # fn f(member: Arc<dyn survivable_core::operator::Operable>) -> Result<(), survivable_core::operator::OperatorError> {
/// use survivable_core::operator::{serve, OperatorConfig};
/// let server = serve(OperatorConfig::new("127.0.0.1:8001".parse().unwrap()), member)?;
/// println!("operator endpoint on http://{}", server.local_addr());
/// # Ok(()) }
/// ```
///
/// # Errors
/// [`OperatorError`]: plain HTTP off loopback, the address taken, TLS
/// files missing or refused, no answering thread.
pub fn serve(
    config: OperatorConfig,
    operable: Arc<dyn Operable>,
) -> Result<OperatorServer, OperatorError> {
    if config.threads == 0 {
        return Err(OperatorError::Config(
            "threads = 0: give at least one answering thread".into(),
        ));
    }
    if config.tls.is_none() && !config.listen.ip().is_loopback() {
        return Err(OperatorError::PlaintextOffLoopback {
            addr: config.listen,
        });
    }
    // TLS files first: a bad file is reported before anything listens.
    let tls = config
        .tls
        .as_ref()
        .map(super::tls::server_config)
        .transpose()?;
    let bind =
        |addr| TcpListener::bind(addr).map_err(|source| OperatorError::Bind { addr, source });
    let listener = bind(config.listen)?;
    let addr = listener
        .local_addr()
        .map_err(|source| OperatorError::Bind {
            addr: config.listen,
            source,
        })?;
    let server_err = |e: &dyn std::fmt::Display| OperatorError::Server(e.to_string());
    let (http, front, dir) = match tls {
        None => (
            tiny_http::Server::from_listener(listener, None).map_err(|e| server_err(&e))?,
            None,
            None,
        ),
        Some(tls) => {
            let dir = PrivateDir::create().map_err(|e| server_err(&e))?;
            let socket = dir.path().join("http.sock");
            let unix = std::os::unix::net::UnixListener::bind(&socket)
                .map_err(|e| server_err(&format!("{}: {e}", socket.display())))?;
            let http = tiny_http::Server::from_listener(unix, None).map_err(|e| server_err(&e))?;
            let front = TlsFront::start(listener, tls, socket, config.max_connections)
                .map_err(|e| server_err(&e))?;
            (http, Some(front), Some(dir))
        }
    };
    let shared = Arc::new(Shared {
        http,
        stop: AtomicBool::new(false),
        operable,
        started: Instant::now(),
        grace: config.startup_grace,
    });
    let mut workers = Vec::with_capacity(config.threads);
    for i in 0..config.threads {
        let s = shared.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("operator-{i}"))
            .spawn(move || s.answer_until_stopped());
        match spawned {
            Ok(w) => workers.push(w),
            Err(e) => {
                shared.stop.store(true, Ordering::Relaxed);
                return Err(server_err(&e));
            }
        }
    }
    Ok(OperatorServer {
        addr,
        shared,
        workers,
        front,
        dir,
    })
}

impl OperatorServer {
    /// The address it listens on (with the port the system chose, if 0
    /// was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether it speaks TLS.
    pub fn is_tls(&self) -> bool {
        self.front.is_some()
    }

    /// Stops listening, waits for the answering threads, closes the TLS
    /// connections and removes the private socket directory.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        for _ in &self.workers {
            self.shared.http.unblock();
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
        if let Some(front) = self.front.take() {
            front.stop();
        }
        drop(self.dir.take()); // removes the socket directory
    }
}

impl Drop for OperatorServer {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Shared {
    fn answer_until_stopped(&self) {
        while !self.stop.load(Ordering::Relaxed) {
            match self.http.recv_timeout(POLL) {
                Ok(Some(request)) => self.answer(request),
                Ok(None) => {}
                Err(_) => std::thread::sleep(POLL),
            }
        }
    }

    fn answer(&self, mut request: tiny_http::Request) {
        let reply = match routes::parse(request.method().as_str(), request.url()) {
            Err(e) => Reply::refused(&e),
            Ok(route) => match read_body(&mut request) {
                Err(()) => Reply::too_large(MAX_BODY),
                Ok(()) => {
                    let uptime = Uptime {
                        up: self.started.elapsed(),
                        grace: self.grace,
                    };
                    routes::answer(route, self.operable.as_ref(), uptime)
                }
            },
        };
        let _ = request.respond(response(reply));
    }
}

/// Reads and drops the body; `Err` when it is over [`MAX_BODY`] bytes.
fn read_body(request: &mut tiny_http::Request) -> Result<(), ()> {
    if request.body_length().is_some_and(|n| n > MAX_BODY) {
        return Err(());
    }
    let mut body = Vec::new();
    let limit = (MAX_BODY + 1) as u64;
    match request.as_reader().take(limit).read_to_end(&mut body) {
        Ok(n) if n <= MAX_BODY => Ok(()),
        _ => Err(()),
    }
}

fn response(reply: Reply) -> tiny_http::Response<std::io::Cursor<Vec<u8>>> {
    let mut r = tiny_http::Response::from_string(reply.body).with_status_code(reply.code);
    let headers = [
        ("Content-Type", Some(reply.content_type)),
        ("Cache-Control", Some("no-store")),
        ("Allow", reply.allow),
    ];
    for (name, value) in headers {
        // Names and values are the crate's own ASCII constants.
        if let Some(Ok(h)) =
            value.map(|v| tiny_http::Header::from_bytes(name.as_bytes(), v.as_bytes()))
        {
            r.add_header(h);
        }
    }
    r
}
