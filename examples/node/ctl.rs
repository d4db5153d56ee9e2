//! `node ctl`: speaks to members' operator endpoints, as etcdctl and
//! patronictl do.
//!
//! ```text
//! node ctl [--endpoints 127.0.0.1:8001,127.0.0.1:8002] [--ca ca.pem --cert operator-alice.pem --key operator-alice.key] [--timeout-ms 2000] <command>
//!   status             every member as a table row
//!   leader             which member leads (from the /leader answers)
//!   hand-back          ask the leader to hand leadership back to the main site
//!   transfer <id>      ask the leader to move leadership to member <id> (3 or n3)
//!   activate [ep]      force activation at endpoint ep (the only one, if one is given)
//!   drain <ep>         maintenance: move leadership away from ep, never campaign
//!   undrain [ep]       end maintenance at ep (every endpoint when omitted)
//! ```
//!
//! An HTTP/1.1 request is written by hand over a `TcpStream`, or a rustls
//! stream with `--cert` (mutual TLS with an operator certificate; needed
//! for every endpoint off loopback): the six requests need no HTTP
//! client library.
// Shared with tests/operator.rs through #[path]; not every user needs every item.
#![allow(dead_code)]

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::verify_server_cert_signed_by_trust_anchor;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use serde_json::Value;
use survivable_core::operator::routes::parse_node_id;
use survivable_core::operator::OperatorIdentity;
use survivable_core::transport::CertifiedAs;

const USAGE: &str = "usage: node ctl [--endpoints host:port,...] [--ca F --cert F --key F] \
     [--timeout-ms N] status | leader | hand-back | transfer <id> | activate [endpoint] | \
     drain <endpoint> | undrain [endpoint]";

/// How to reach the endpoints.
pub(crate) struct Client {
    tls: Option<Arc<ClientConfig>>,
    timeout: Duration,
}

/// An endpoint's answer.
#[derive(Debug)]
pub(crate) struct Answer {
    /// The HTTP status code.
    pub(crate) code: u16,
    /// The body.
    pub(crate) body: String,
}

impl Answer {
    /// The body as JSON (`Null` when it is not JSON).
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    /// `error (hint)` of a JSON error body, or the body.
    fn error_text(&self) -> String {
        let j = self.json();
        match (j["error"].as_str(), j["hint"].as_str()) {
            (Some(e), Some(h)) => format!("{e} ({h})"),
            (Some(e), None) => e.to_string(),
            _ => self.body.trim().to_string(),
        }
    }
}

impl Client {
    /// Plain HTTP (loopback endpoints only).
    pub(crate) fn plain(timeout: Duration) -> Self {
        Self { tls: None, timeout }
    }

    /// Mutual TLS: the cluster CA, and an operator's certificate and key.
    /// The endpoint must present a member certificate of the operator's
    /// cluster.
    pub(crate) fn mutual_tls(
        ca: &str,
        cert: &str,
        key: &str,
        timeout: Duration,
    ) -> Result<Self, String> {
        let chain = read_certs(cert)?;
        let me = OperatorIdentity::of_der(&chain[0]).ok_or_else(|| {
            format!("{cert}: names no operator (survivable://<cluster-id>/operator/<name>)")
        })?;
        Self::tls(ca, Some((cert, key)), me.cluster_id, timeout)
    }

    /// TLS with the cluster CA, presenting `client` (certificate and key
    /// files) if given, to an endpoint with a member certificate of
    /// `cluster_id` (the tests also present certificates that must fail).
    pub(crate) fn tls(
        ca: &str,
        client: Option<(&str, &str)>,
        cluster_id: u64,
        timeout: Duration,
    ) -> Result<Self, String> {
        let mut roots = RootCertStore::empty();
        for ca_cert in read_certs(ca)? {
            roots
                .add(ca_cert)
                .map_err(|e| format!("{ca}: not a usable CA: {e}"))?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = MemberOf {
            roots: Arc::new(roots),
            algs: provider.signature_verification_algorithms,
            cluster_id,
        };
        let builder = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier));
        let mut cfg = match client {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let bytes = std::fs::read(key).map_err(|e| format!("{key}: {e}"))?;
                let key = PrivateKeyDer::from_pem_slice(&bytes)
                    .map_err(|e| format!("{key}: no PEM private key in it ({e})"))?;
                builder
                    .with_client_auth_cert(read_certs(cert)?, key)
                    .map_err(|e| format!("{cert}: {e}"))?
            }
        };
        cfg.enable_sni = false;
        Ok(Self {
            tls: Some(Arc::new(cfg)),
            timeout,
        })
    }

    /// The TLS client configuration, when TLS is used.
    pub(crate) fn tls_config(&self) -> Option<Arc<ClientConfig>> {
        self.tls.clone()
    }

    /// `method path` at `endpoint` (`host:port`), on a new connection.
    ///
    /// # Errors
    /// Why no answer came: unreachable, refused handshake, bad answer.
    pub(crate) fn request(
        &self,
        endpoint: &str,
        method: &str,
        path: &str,
    ) -> Result<Answer, String> {
        let addr = resolve(endpoint)?;
        if self.tls.is_none() && !addr.ip().is_loopback() {
            return Err(format!(
                "{endpoint} is not loopback: give --ca, --cert and --key (an operator certificate)"
            ));
        }
        let tcp = TcpStream::connect_timeout(&addr, self.timeout)
            .map_err(|e| format!("{endpoint}: unreachable: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let _ = tcp.set_read_timeout(Some(self.timeout));
        let _ = tcp.set_write_timeout(Some(self.timeout));
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {endpoint}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
        );
        let mut raw = Vec::new();
        let read = match &self.tls {
            None => {
                let mut tcp = tcp;
                tcp.write_all(request.as_bytes())
                    .and_then(|()| tcp.read_to_end(&mut raw))
            }
            Some(cfg) => {
                let name = ServerName::IpAddress(addr.ip().into());
                let conn = rustls::ClientConnection::new(cfg.clone(), name)
                    .map_err(|e| format!("{endpoint}: {e}"))?;
                let mut s = rustls::StreamOwned::new(conn, tcp);
                s.write_all(request.as_bytes())
                    .and_then(|()| s.read_to_end(&mut raw))
            }
        };
        match read {
            Ok(_) => {}
            // A peer closing without close_notify after a whole answer.
            Err(e) if e.kind() == ErrorKind::UnexpectedEof && !raw.is_empty() => {}
            // Accepted by the kernel, then reset before a byte of answer:
            // a listener closing with the dial in its backlog (a member
            // stopping), as unreachable as a refused connect.
            Err(e)
                if raw.is_empty()
                    && matches!(
                        e.kind(),
                        ErrorKind::ConnectionReset
                            | ErrorKind::ConnectionAborted
                            | ErrorKind::BrokenPipe
                    ) =>
            {
                return Err(format!(
                    "{endpoint}: unreachable: {e} (closed before answering)"
                ))
            }
            Err(e) => return Err(format!("{endpoint}: {e}")),
        }
        parse_answer(&raw).ok_or_else(|| format!("{endpoint}: not an HTTP answer"))
    }
}

fn read_certs(p: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = std::fs::read(p).map_err(|e| format!("{p}: {e}"))?;
    let list: Vec<_> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{p}: not PEM certificates: {e}"))?;
    if list.is_empty() {
        return Err(format!("{p}: no PEM certificate in it"));
    }
    Ok(list)
}

fn resolve(endpoint: &str) -> Result<SocketAddr, String> {
    endpoint
        .to_socket_addrs()
        .map_err(|e| format!("endpoint {endpoint:?}: {e} (give host:port)"))?
        .next()
        .ok_or_else(|| format!("endpoint {endpoint:?}: no address"))
}

/// Status code and body of a whole HTTP/1.1 answer (Content-Length,
/// chunked, or up to the end).
pub(crate) fn parse_answer(raw: &[u8]) -> Option<Answer> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..split]).ok()?;
    let mut body = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let code = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let mut chunked = false;
    for line in lines {
        let (name, value) = line.split_once(':')?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            body = body.get(..value.parse::<usize>().ok()?)?;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.eq_ignore_ascii_case("chunked");
        }
    }
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_vec()
    };
    Some(Answer {
        code,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn dechunk(mut input: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = input.windows(2).position(|w| w == b"\r\n")?;
        let size = std::str::from_utf8(&input[..eol]).ok()?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        input = &input[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(input.get(..size)?);
        input = input.get(size + 2..)?;
    }
}

/// Checks an endpoint's certificate: the cluster CA's chain, then a
/// member identity of the operator's cluster.
#[derive(Debug)]
struct MemberOf {
    roots: Arc<RootCertStore>,
    algs: WebPkiSupportedAlgorithms,
    cluster_id: u64,
}

impl ServerCertVerifier for MemberOf {
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
        match CertifiedAs::of_der(end_entity).peer() {
            Some(p) if p.cluster_id == self.cluster_id => Ok(ServerCertVerified::assertion()),
            _ => Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::PeerIncompatible(
            rustls::PeerIncompatible::Tls12NotOffered,
        ))
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

/// What `node ctl` was asked.
struct Options {
    endpoints: Vec<String>,
    client: Client,
    command: Vec<String>,
}

fn parse_options(args: &[String]) -> Result<Options, String> {
    let mut endpoints = vec!["127.0.0.1:8001".to_string()];
    let (mut ca, mut cert, mut key, mut timeout_ms) = (None, None, None, 2000u64);
    let mut command = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{a} needs a value; {USAGE}"))
        };
        match a.as_str() {
            "--endpoints" => {
                endpoints = value()?.split(',').map(|e| e.trim().to_string()).collect();
            }
            "--ca" => ca = Some(value()?),
            "--cert" => cert = Some(value()?),
            "--key" => key = Some(value()?),
            "--timeout-ms" => {
                timeout_ms = value()?
                    .parse()
                    .map_err(|_| format!("--timeout-ms takes milliseconds; {USAGE}"))?;
            }
            s if s.starts_with("--") => return Err(format!("unknown option {s}; {USAGE}")),
            _ => command.push(a.clone()),
        }
    }
    if endpoints.iter().any(String::is_empty) {
        return Err(format!("--endpoints has an empty entry; {USAGE}"));
    }
    let timeout = Duration::from_millis(timeout_ms.max(1));
    let client = match (ca, cert, key) {
        (None, None, None) => Client::plain(timeout),
        (Some(ca), Some(cert), Some(key)) => Client::mutual_tls(&ca, &cert, &key, timeout)?,
        _ => return Err("give all of --ca, --cert and --key, or none".to_string()),
    };
    Ok(Options {
        endpoints,
        client,
        command,
    })
}

/// Runs `node ctl` with `args` (after `ctl`), printing to stdout.
pub(crate) fn run(args: &[String]) -> Result<(), String> {
    let o = parse_options(args)?;
    let words: Vec<&str> = o.command.iter().map(String::as_str).collect();
    match words.as_slice() {
        ["status"] => {
            let (table, answered) = status_table(&o.client, &o.endpoints);
            print!("{table}");
            if answered == 0 {
                return Err("no endpoint answered".to_string());
            }
            Ok(())
        }
        ["leader"] => find_leader(&o.client, &o.endpoints).map(|(ep, id)| {
            println!("n{id} leads (at {ep})");
        }),
        ["hand-back"] => {
            let (ep, _) = find_leader(&o.client, &o.endpoints)?;
            command(&o.client, &ep, "/hand-back")
        }
        ["transfer", id] => {
            let id = parse_node_id(id)
                .ok_or_else(|| format!("bad node id {id:?}: give it as 3 or n3"))?;
            let (ep, _) = find_leader(&o.client, &o.endpoints)?;
            command(&o.client, &ep, &format!("/transfer/{}", id.0))
        }
        ["activate", rest @ ..] => command(
            &o.client,
            &target(&o.endpoints, rest, "activate")?,
            "/activate",
        ),
        ["drain", ep] => command(&o.client, ep, "/drain"),
        ["drain"] => Err("drain needs the endpoint of the member to drain".to_string()),
        ["undrain", ep] => command(&o.client, ep, "/undrain"),
        ["undrain"] => o
            .endpoints
            .iter()
            .try_for_each(|ep| command(&o.client, ep, "/undrain")),
        _ => Err(USAGE.to_string()),
    }
}

/// The endpoint a member command goes to: named, or the only one given.
fn target(endpoints: &[String], rest: &[&str], what: &str) -> Result<String, String> {
    match (rest, endpoints) {
        ([ep], _) => Ok((*ep).to_string()),
        ([], [only]) => Ok(only.clone()),
        _ => Err(format!(
            "{what} needs the endpoint of the member: node ctl ... {what} <host:port>"
        )),
    }
}

fn command(client: &Client, endpoint: &str, path: &str) -> Result<(), String> {
    let a = client.request(endpoint, "POST", path)?;
    if a.code == 200 {
        println!("{endpoint}: {}", a.body.trim());
        Ok(())
    } else {
        Err(format!("{endpoint}: {} {}", a.code, a.error_text()))
    }
}

/// The endpoint answering 200 to `/leader`, and its node id.
pub(crate) fn find_leader(client: &Client, endpoints: &[String]) -> Result<(String, u64), String> {
    let mut seen = Vec::new();
    for ep in endpoints {
        match client.request(ep, "GET", "/leader") {
            Ok(a) if a.code == 200 => {
                let id = a.json()["id"].as_u64().unwrap_or(0);
                return Ok((ep.clone(), id));
            }
            Ok(a) => {
                let j = a.json();
                let names = j["leader"]
                    .as_u64()
                    .map_or("none".to_string(), |l| format!("n{l}"));
                seen.push(format!("{ep}: not the leader (knows {names})"));
            }
            Err(e) => seen.push(e),
        }
    }
    Err(format!(
        "no endpoint answers as the leader: {}",
        seen.join("; ")
    ))
}

/// One row per endpoint: id, site, role, leader, term, epoch, commit,
/// applied, drained, lag (entries behind the leader's commit) and, when a
/// member answers in DR auto-sync mode, its replication state (`REPL`)
/// and what losing the main site would cost now (`RPO-MAIN`); and how
/// many endpoints answered.
pub(crate) fn status_table(client: &Client, endpoints: &[String]) -> (String, usize) {
    let answers: Vec<(String, Result<Value, String>)> = endpoints
        .iter()
        .map(|ep| {
            let s = client
                .request(ep, "GET", "/status")
                .and_then(|a| match a.code {
                    200 => Ok(a.json()),
                    c => Err(format!("{c} {}", a.error_text())),
                });
            (ep.clone(), s)
        })
        .collect();
    let leader_commit = answers
        .iter()
        .filter_map(|(_, s)| s.as_ref().ok())
        .filter(|s| s["role"] == "leader")
        .filter_map(|s| s["commit"].as_u64())
        .max();
    let dr = answers
        .iter()
        .filter_map(|(_, s)| s.as_ref().ok())
        .any(|s| !s["replication"].is_null());
    let mut header = vec![
        "ENDPOINT", "ID", "SITE", "ROLE", "LEADER", "TERM", "EPOCH", "COMMIT", "APPLIED",
        "DRAINED", "LAG",
    ];
    if dr {
        header.extend(["REPL", "RPO-MAIN"]);
    }
    let mut rows = vec![header.into_iter().map(String::from).collect::<Vec<_>>()];
    let mut answered = 0;
    for (ep, s) in answers {
        let s = match s {
            Ok(s) => s,
            Err(e) => {
                let e = e.strip_prefix(&format!("{ep}: ")).unwrap_or(&e).to_string();
                rows.push(vec![ep, e]);
                continue;
            }
        };
        answered += 1;
        let num = |k: &str| s[k].as_u64().map_or("-".to_string(), |v| v.to_string());
        let node = |k: &str| s[k].as_u64().map_or("-".to_string(), |v| format!("n{v}"));
        let text = |v: &Value| match v {
            Value::String(t) => t.clone(),
            Value::Null => "-".to_string(),
            Value::Object(o) => o.get("name").map_or_else(|| v.to_string(), text_of),
            other => other.to_string(),
        };
        let lag = match (leader_commit, s["applied"].as_u64()) {
            (Some(c), Some(a)) => c.saturating_sub(a).to_string(),
            _ => "-".to_string(),
        };
        let mut row = vec![
            ep,
            node("id"),
            text(&s["site"]),
            text(&s["role"]),
            node("leader"),
            num("term"),
            text(&s["epoch"]),
            num("commit"),
            num("applied"),
            text(&s["drained"]),
            lag,
        ];
        if dr {
            row.extend(replication_cells(&s["replication"]));
        }
        rows.push(row);
    }
    (render(&rows), answered)
}

/// The `REPL` and `RPO-MAIN` cells of a status's `replication` (null
/// outside DR auto-sync mode): `async#5`, and `0(proven)`, `12/1500ms`
/// or `unknown` (this member cannot tell: never shown as 0).
fn replication_cells(r: &Value) -> [String; 2] {
    if r.is_null() {
        return ["-".to_string(), "-".to_string()];
    }
    let state = r["state"].as_str().unwrap_or("?");
    let id = r["state_id"].as_u64().unwrap_or(0);
    let loss = &r["main_site_loss"];
    let cost = match (loss["entries"].as_u64(), loss["ms"].as_u64()) {
        (Some(0), _) if loss["proven"] == true => "0(proven)".to_string(),
        (Some(n), Some(ms)) => format!("{n}/{ms}ms"),
        _ => "unknown".to_string(),
    };
    [format!("{state}#{id}"), cost]
}

fn text_of(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_string)
}

fn render(rows: &[Vec<String>]) -> String {
    // Rows of errors (endpoint and error) span the table: only full rows
    // set the widths, but of the endpoint column.
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let width: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter(|r| c == 0 || r.len() == cols)
                .filter_map(|r| r.get(c))
                .map(|v| v.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let cells: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, v)| format!("{v:<w$}", w = if i + 1 == r.len() { 0 } else { width[i] }))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}
