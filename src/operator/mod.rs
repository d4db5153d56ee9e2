//! An operator endpoint per member: health and routing checks, status,
//! metrics and operator commands over HTTP, as Patroni and etcd offer them.
//!
//! [`serve`] starts it for anything [`Operable`] (the runtime's
//! [`Handle`](crate::runtime::Handle), or a test double):
//!
//! | route | answer |
//! | --- | --- |
//! | `GET /metrics` | the Prometheus text (`text/plain; version=0.0.4`) |
//! | `GET /health` | 200 while the node thread runs and the member knows a leader, or is still within its startup grace ([`OperatorConfig::startup_grace`]); 503 otherwise |
//! | `GET /leader` | 200 only at the leader; 503 elsewhere, the body naming the leader this member knows |
//! | `GET /replica` | 200 only at a running follower or learner that follows a leader; 503 elsewhere |
//! | `GET /status` | the member's status as JSON |
//! | `POST /hand-back` | hand leadership back to the main site now |
//! | `POST /transfer/{id}` | move leadership to member `id` (`3` or `n3`) |
//! | `POST /activate` | force this survivable core's activation |
//! | `POST /drain`, `POST /undrain` | maintenance: move leadership away and never campaign, or end it |
//!
//! Every answer but `/metrics` is JSON. A request that names no route, a
//! wrong method (405 with `Allow`), a bad id or a body over
//! [`MAX_BODY`] bytes gets `{"error": "...", "hint": "..."}` and changes
//! nothing; a command the member refuses gets 409 with the member's
//! reason, and every route answers 503 once the node thread has stopped.
//!
//! `/leader` and `/replica` are for load balancers and DNS health checks:
//! point them at every member and clients reach the active brain (or a
//! replica) only.
//!
//! # Why a synchronous server
//!
//! The endpoint uses `tiny_http`, a small synchronous HTTP/1.1 server: the
//! crate stays free of an async runtime (the service embedding it may use
//! any, or none). Requests are answered on a small fixed pool of threads
//! ([`OperatorConfig::threads`]); every answer is a read of the member's
//! last published status or one command to its thread, so a few threads
//! suffice.
//!
//! # Security
//!
//! By default the endpoint listens on loopback, in plain HTTP: whoever can
//! reach it is on the host. Bound to any other address it needs
//! [`OperatorTls`]: mutual TLS 1.3 with the cluster CA, the member's own
//! certificate as the server's, and a client certificate naming an
//! operator of this cluster ([`OperatorIdentity`],
//! `survivable://<cluster_id>/operator/<name>`, extended key usage
//! clientAuth). A member's certificate does not open it. Plain HTTP off
//! loopback is refused at start ([`OperatorError::PlaintextOffLoopback`]).
//!
//! `tiny_http` cannot verify client certificates, so TLS is terminated by
//! the crate's own rustls in front of it: an accept thread verifies each
//! connection's handshake, then relays the decrypted bytes to `tiny_http`
//! listening on a Unix socket in a private directory (mode 0700, removed
//! at shutdown). Only this process can reach that socket, so the only way
//! to the routes from the network is through the TLS check.

mod handle;
mod identity;
pub mod routes;
mod server;
mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use handle::serve_member;
pub use identity::{OperatorIdentity, MAX_OPERATOR_NAME};
pub use server::{serve, OperatorServer};

use crate::node::Status;
use crate::topology::NodeId;
use crate::transport::TlsFiles;

/// The largest request body accepted, in bytes: the routes take none, so
/// anything longer is refused with 413.
pub const MAX_BODY: usize = 1024;

/// What the operator endpoint needs of a member. The runtime's `Handle`
/// implements it; the `String` errors are the member's refusals as they
/// display.
pub trait Operable: Send + Sync + 'static {
    /// The member's status.
    fn status(&self) -> Status;
    /// The member's status as JSON (`GET /status`).
    fn status_json(&self) -> String;
    /// The member's metrics in the Prometheus text format (`GET /metrics`).
    fn metrics_text(&self) -> String;
    /// Hands leadership back to the main site now.
    ///
    /// # Errors
    /// Why the member refused.
    fn hand_back(&self) -> Result<(), String>;
    /// Moves leadership to `to`.
    ///
    /// # Errors
    /// Why the member refused.
    fn transfer(&self, to: NodeId) -> Result<(), String>;
    /// Forces this survivable core's activation.
    ///
    /// # Errors
    /// Why the member refused (e.g. the main site answers).
    fn activate(&self) -> Result<(), String>;
    /// Starts maintenance: move leadership away, never campaign.
    ///
    /// # Errors
    /// Why the member refused.
    fn drain(&self) -> Result<(), String>;
    /// Ends maintenance.
    ///
    /// # Errors
    /// Why the member refused.
    fn undrain(&self) -> Result<(), String>;
    /// Whether the member's node thread still runs (every route answers
    /// 503 once it does not). The runtime's handle answers with
    /// `Handle::is_running`; the default says it always runs.
    fn is_running(&self) -> bool {
        true
    }
}

/// Mutual TLS for an endpoint off loopback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorTls {
    /// The cluster CA, and the member's own certificate and key (the
    /// server's): the member's transport files serve.
    pub files: TlsFiles,
    /// The cluster whose operators are let in.
    pub cluster_id: u64,
}

/// How the endpoint runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorConfig {
    /// Where it listens (default `127.0.0.1:8001`).
    pub listen: SocketAddr,
    /// Mutual TLS; required off loopback.
    pub tls: Option<OperatorTls>,
    /// Threads answering requests (default 2; at least 1).
    pub threads: usize,
    /// How long after start `/health` is 200 although no leader is known
    /// yet (default 10 s: an election in the main site takes well under a
    /// second, a survivable core's takeover a few seconds with the default
    /// timers; raise it with `survivable_after`).
    pub startup_grace: Duration,
    /// Most TLS connections open at once (default 32); more are closed at
    /// once.
    pub max_connections: usize,
}

impl OperatorConfig {
    /// Plain HTTP on `listen`, which must be a loopback address unless
    /// TLS is added ([`OperatorConfig::with_tls`]).
    pub fn new(listen: SocketAddr) -> Self {
        Self {
            listen,
            tls: None,
            threads: 2,
            startup_grace: Duration::from_secs(10),
            max_connections: 32,
        }
    }

    /// Mutual TLS with operator certificates of `cluster_id`.
    pub fn with_tls(mut self, files: TlsFiles, cluster_id: u64) -> Self {
        self.tls = Some(OperatorTls { files, cluster_id });
        self
    }
}

impl Default for OperatorConfig {
    fn default() -> Self {
        Self::new(SocketAddr::from(([127, 0, 0, 1], 8001)))
    }
}

/// Why the endpoint did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OperatorError {
    /// Plain HTTP was asked for on an address other than loopback.
    #[error(
        "operator endpoint {addr}: plain HTTP is refused off loopback; \
         give TLS files (cluster CA, this member's certificate and key) so \
         operators must present an operator certificate, or listen on 127.0.0.1"
    )]
    PlaintextOffLoopback {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// The address could not be bound.
    #[error("operator endpoint {addr}: cannot listen: {source}; is the port in use?")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A TLS file could not be read.
    #[error("operator endpoint TLS file {path}: {source}")]
    TlsFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A TLS file holds no usable PEM item of the kind needed, or rustls
    /// refused what it holds.
    #[error("operator endpoint TLS file {path}: {reason}")]
    TlsRejected {
        /// The file.
        path: PathBuf,
        /// What is wrong and what to give instead.
        reason: String,
    },
    /// The configuration is inconsistent.
    #[error("operator endpoint: {0}")]
    Config(String),
    /// The HTTP server or its private socket directory could not start.
    #[error("operator endpoint: cannot start the HTTP server: {0}")]
    Server(String),
}
