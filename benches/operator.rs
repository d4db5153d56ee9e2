//! How fast the operator endpoint answers `GET /leader` (what a load
//! balancer's health check asks every member, every second or so): p50 and
//! p99 over many requests, on one keep-alive connection and on a new
//! connection per request, in plain HTTP on loopback and with mutual TLS.
//! Target: answers within 1 ms. Prints one JSON object.
//!
//! ```text
//! cargo bench --bench operator
//! ```

#[path = "../examples/node/ctl.rs"]
mod ctl;
#[path = "../examples/node/pki.rs"]
mod pki;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use survivable_core::node::{NodeRole, Status};
use survivable_core::operator::{serve, Operable, OperatorConfig, OperatorIdentity};
use survivable_core::storage::MemStorage;
use survivable_core::topology::{Appliance::Virtual, Core, NodeId, Site, Topology, Witness};
use survivable_core::transport::TlsFiles;
use survivable_core::{Node, NodeConfig};

const CLUSTER: u64 = 2026;

struct NoState;
impl survivable_core::StateMachine for NoState {
    fn apply(&mut self, _: u64, _: &[u8]) -> Vec<u8> {
        Vec::new()
    }
    fn snapshot(&self) -> Vec<u8> {
        Vec::new()
    }
    fn restore(&mut self, _: &[u8]) -> Result<(), survivable_core::RestoreError> {
        Ok(())
    }
}

/// A leader whose status is a real node's (what `Handle::status` costs:
/// a clone of the last published status).
struct Leader(Status);

impl Operable for Leader {
    fn status(&self) -> Status {
        self.0.clone()
    }
    fn status_json(&self) -> String {
        String::new()
    }
    fn metrics_text(&self) -> String {
        String::new()
    }
    fn hand_back(&self) -> Result<(), String> {
        Ok(())
    }
    fn transfer(&self, _: NodeId) -> Result<(), String> {
        Ok(())
    }
    fn activate(&self) -> Result<(), String> {
        Ok(())
    }
    fn drain(&self) -> Result<(), String> {
        Ok(())
    }
    fn undrain(&self) -> Result<(), String> {
        Ok(())
    }
}

fn leader() -> Arc<Leader> {
    let topology = Topology::builder(CLUSTER)
        .site(Site::main("denver"))
        .core(
            Core::new("cm01", "denver")
                .member(1, "a", "h1", Virtual)
                .member(2, "b", "h2", Virtual),
        )
        .witness(Witness::new(3, "tb", "denver", "h3"))
        .build()
        .expect("a valid topology")
        .shared();
    let node = Node::new(
        NodeConfig::new(NodeId(1), topology),
        MemStorage::new(),
        NoState,
    )
    .expect("a node");
    let mut s = node.status();
    s.role = NodeRole::Leader;
    s.leader = Some(NodeId(1));
    Arc::new(Leader(s))
}

/// Reads one answer (status line, headers, Content-Length body); its code.
fn answer(r: &mut impl BufRead) -> u16 {
    let mut line = String::new();
    r.read_line(&mut line).expect("a status line");
    let code = line
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a code");
    let mut len = 0;
    loop {
        line.clear();
        r.read_line(&mut line).expect("a header");
        if line == "\r\n" {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().expect("a length");
            }
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).expect("the body");
    code
}

const KEEP: &str = "GET /leader HTTP/1.1\r\nHost: bench\r\n\r\n";
const CLOSE: &str = "GET /leader HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n";

fn tcp(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_nodelay(true).expect("nodelay");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    s
}

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

fn tls(addr: SocketAddr, cfg: &Arc<rustls::ClientConfig>) -> BufReader<Tls> {
    let name = ServerName::IpAddress(addr.ip().into());
    let conn = rustls::ClientConnection::new(cfg.clone(), name).expect("a client");
    BufReader::new(rustls::StreamOwned::new(conn, tcp(addr)))
}

/// p50, p99 and max in µs of `n` timed runs of `f` (after 50 warm-ups).
fn measure(n: usize, mut f: impl FnMut()) -> serde_json::Value {
    for _ in 0..50 {
        f();
    }
    let mut us: Vec<f64> = (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    us.sort_by(f64::total_cmp);
    let at = |q: f64| us[((us.len() - 1) as f64 * q).round() as usize];
    serde_json::json!({
        "requests": n,
        "p50_us": (at(0.5) * 10.0).round() / 10.0,
        "p99_us": (at(0.99) * 10.0).round() / 10.0,
        "max_us": (at(1.0) * 10.0).round() / 10.0,
    })
}

fn main() {
    let n = 2000;
    let plain = serve(
        OperatorConfig::new("127.0.0.1:0".parse().unwrap()),
        leader(),
    )
    .expect("the endpoint starts");
    let a = plain.local_addr();
    let mut keep = BufReader::new(tcp(a));
    let plain_keep = measure(n, || {
        keep.get_mut().write_all(KEEP.as_bytes()).expect("send");
        assert_eq!(answer(&mut keep), 200);
    });
    let plain_new = measure(n, || {
        let mut s = BufReader::new(tcp(a));
        s.get_mut().write_all(CLOSE.as_bytes()).expect("send");
        assert_eq!(answer(&mut s), 200);
    });

    let dir = tempfile::tempdir().expect("a temporary directory");
    let ca = pki::write_cluster(dir.path(), CLUSTER, &[NodeId(1)], 1).expect("certificates");
    let op = OperatorIdentity::new(CLUSTER, "bench").expect("a name");
    ca.write_operator(dir.path(), &op, &ca.operator(&op, 1).expect("issued"))
        .expect("written");
    let files = TlsFiles::in_dir(dir.path(), NodeId(1));
    let p = |f: &str| dir.path().join(f).display().to_string();
    let secure = serve(
        OperatorConfig::new("127.0.0.1:0".parse().unwrap()).with_tls(files, CLUSTER),
        leader(),
    )
    .expect("the TLS endpoint starts");
    let client = ctl::Client::mutual_tls(
        &p("ca.pem"),
        &p("operator-bench.pem"),
        &p("operator-bench.key"),
        Duration::from_secs(5),
    )
    .expect("a client");
    let cfg = client.tls_config().expect("TLS");
    let s = secure.local_addr();
    let mut keep = tls(s, &cfg);
    let tls_keep = measure(n, || {
        keep.get_mut().write_all(KEEP.as_bytes()).expect("send");
        assert_eq!(answer(&mut keep), 200);
    });
    let tls_new = measure(n / 4, || {
        let mut c = tls(s, &cfg);
        c.get_mut().write_all(CLOSE.as_bytes()).expect("send");
        assert_eq!(answer(&mut c), 200);
    });
    let out = serde_json::json!({
        "bench": "operator /leader",
        "target_us": 1000,
        "plain_keep_alive": plain_keep,
        "plain_new_connection": plain_new,
        "mtls_keep_alive": tls_keep,
        "mtls_new_connection_with_handshake": tls_new,
    });
    println!("{out}");
}
