//! The operator endpoint over real sockets, with a fake member that counts
//! every call: each route's status code and body, `/leader` 200 only at
//! the leader, bad requests answered with a JSON error and changing
//! nothing, plain HTTP refused off loopback, and mutual TLS letting in an
//! operator certificate only.

#[path = "../examples/node/ctl.rs"]
mod ctl;
#[path = "../examples/node/pki.rs"]
mod pki;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use survivable_core::node::{NodeRole, Status};
use survivable_core::operator::{
    serve, Operable, OperatorConfig, OperatorError, OperatorIdentity, OperatorServer,
};
use survivable_core::storage::MemStorage;
use survivable_core::topology::{Appliance::Virtual, Core, NodeId, Site, Topology, Witness};
use survivable_core::transport::TlsFiles;
use survivable_core::{Node, NodeConfig};

const CLUSTER: u64 = 2026;
/// Generous: loopback answers take well under a millisecond; this only
/// bounds a hung test.
const TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Default)]
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

/// A real node's status (so the test does not depend on every field
/// `Status` has), then given the role and leader a test needs.
fn status(id: u64, role: NodeRole, leader: Option<u64>) -> Status {
    let topology = Topology::builder(CLUSTER)
        .site(Site::main("denver"))
        .core(
            Core::new("cm01", "denver")
                .member(1, "a", "h1", Virtual)
                .member(2, "b", "h2", Virtual),
        )
        .witness(Witness::new(3, "tb", "denver", "h3"))
        .build()
        .unwrap()
        .shared();
    let node = Node::new(
        NodeConfig::new(NodeId(id), topology),
        MemStorage::new(),
        NoState,
    )
    .unwrap();
    let mut s = node.status();
    s.role = role;
    s.leader = leader.map(NodeId);
    s.term = 7;
    s.commit = 40;
    s.applied = 38;
    s
}

/// A member double: answers from `status`, refuses commands with
/// `refusal` when set, and counts every call.
struct Fake {
    status: Mutex<Status>,
    running: AtomicBool,
    refusal: Mutex<Option<String>>,
    calls: Mutex<Vec<String>>,
    reads: AtomicUsize,
}

impl Fake {
    fn new(s: Status) -> Arc<Self> {
        Arc::new(Self {
            status: Mutex::new(s),
            running: AtomicBool::new(true),
            refusal: Mutex::new(None),
            calls: Mutex::new(Vec::new()),
            reads: AtomicUsize::new(0),
        })
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    fn command(&self, what: String) -> Result<(), String> {
        self.calls.lock().unwrap().push(what);
        self.refusal.lock().unwrap().clone().map_or(Ok(()), Err)
    }
}

impl Operable for Fake {
    fn status(&self) -> Status {
        self.reads.fetch_add(1, Ordering::Relaxed);
        self.status.lock().unwrap().clone()
    }
    fn status_json(&self) -> String {
        let s = self.status();
        format!(
            "{{\"id\":{},\"site\":\"denver\",\"role\":\"{}\",\"leader\":{},\"term\":{},\
             \"epoch\":{{\"name\":\"e1\",\"number\":1,\"founder\":0}},\"commit\":{},\
             \"applied\":{},\"drained\":false}}",
            s.id.0,
            if s.role == NodeRole::Leader {
                "leader"
            } else {
                "follower"
            },
            s.leader.map_or("null".into(), |l| l.0.to_string()),
            s.term,
            s.commit,
            s.applied
        )
    }
    fn metrics_text(&self) -> String {
        "# TYPE survivable_term gauge\nsurvivable_term 7\n".into()
    }
    fn hand_back(&self) -> Result<(), String> {
        self.command("hand_back".into())
    }
    fn transfer(&self, to: NodeId) -> Result<(), String> {
        self.command(format!("transfer {}", to.0))
    }
    fn activate(&self) -> Result<(), String> {
        self.command("activate".into())
    }
    fn drain(&self) -> Result<(), String> {
        self.command("drain".into())
    }
    fn undrain(&self) -> Result<(), String> {
        self.command("undrain".into())
    }
    fn is_running(&self) -> bool {
        self.running.load(Ordering::Relaxed)
    }
}

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn start(fake: &Arc<Fake>) -> OperatorServer {
    serve(OperatorConfig::new(loopback()), fake.clone()).unwrap()
}

/// One raw request on a new connection: status code, headers, body.
fn raw(addr: SocketAddr, request: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let code = head.split(' ').nth(1).unwrap().parse().unwrap();
    (code, head.to_string(), body.to_string())
}

fn get(addr: SocketAddr, method: &str, path: &str) -> (u16, String, serde_json::Value) {
    let (code, head, body) = raw(
        addr,
        &format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
    );
    let json = serde_json::from_str(&body).unwrap_or(serde_json::Value::String(body));
    (code, head, json)
}

#[test]
fn the_leader_answers_every_read_route() {
    let fake = Fake::new(status(1, NodeRole::Leader, Some(1)));
    let server = start(&fake);
    let a = server.local_addr();

    let (code, head, body) = get(a, "GET", "/metrics");
    assert_eq!(code, 200);
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    assert_eq!(body, "# TYPE survivable_term gauge\nsurvivable_term 7\n");

    let (code, head, body) = get(a, "GET", "/status");
    assert_eq!(code, 200);
    assert!(head.contains("Content-Type: application/json"), "{head}");
    assert_eq!(body["role"], "leader");
    assert_eq!(body["commit"], 40);

    let (code, _, body) = get(a, "GET", "/health");
    assert_eq!((code, &body["healthy"]), (200, &true.into()), "{body}");

    let (code, _, body) = get(a, "GET", "/leader");
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["is_leader"], true);
    assert_eq!(body["id"], 1);
    assert_eq!(body["term"], 7);

    let (code, _, body) = get(a, "GET", "/replica");
    assert_eq!(code, 503, "the leader is no replica: {body}");
    assert!(fake.calls().is_empty(), "reads run no command");
}

#[test]
fn a_follower_is_a_replica_and_names_the_leader() {
    let fake = Fake::new(status(2, NodeRole::Follower, Some(1)));
    let server = start(&fake);
    let a = server.local_addr();
    let (code, _, body) = get(a, "GET", "/leader");
    assert_eq!(code, 503, "{body}");
    assert_eq!(body["is_leader"], false);
    assert_eq!(body["leader"], 1, "the body says who leads: {body}");
    let (code, _, body) = get(a, "GET", "/replica");
    assert_eq!((code, &body["is_replica"]), (200, &true.into()), "{body}");
    assert_eq!(get(a, "GET", "/health").0, 200);
    // HEAD as load balancers send it: the code, no body.
    let (code, _, _) = raw(
        a,
        "HEAD /leader HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(code, 503);
}

#[test]
fn health_without_a_leader_is_ok_only_within_the_startup_grace() {
    let leaderless = status(2, NodeRole::Candidate, None);
    let fake = Fake::new(leaderless.clone());
    let mut cfg = OperatorConfig::new(loopback());
    cfg.startup_grace = Duration::from_secs(3600);
    let starting = serve(cfg.clone(), fake.clone()).unwrap();
    let (code, _, body) = get(starting.local_addr(), "GET", "/health");
    assert_eq!(code, 200, "within the grace: {body}");
    assert!(body["reason"].as_str().unwrap().contains("grace"), "{body}");
    let (code, _, _) = get(starting.local_addr(), "GET", "/replica");
    assert_eq!(code, 503, "a candidate follows nobody");

    cfg.startup_grace = Duration::ZERO;
    let late = serve(cfg, fake.clone()).unwrap();
    let (code, _, body) = get(late.local_addr(), "GET", "/health");
    assert_eq!(code, 503, "{body}");
    assert_eq!(body["healthy"], false);
    assert_eq!(body["reason"], "no leader known");

    fake.running.store(false, Ordering::Relaxed);
    *fake.status.lock().unwrap() = status(2, NodeRole::Follower, Some(1));
    for path in ["/health", "/leader", "/replica", "/status"] {
        let (code, _, body) = get(starting.local_addr(), "GET", path);
        assert_eq!(code, 503, "{path} once the node thread stopped: {body}");
    }
    let (code, _, _) = get(starting.local_addr(), "POST", "/drain");
    assert_eq!(code, 503);
    assert!(
        fake.calls().is_empty(),
        "nothing is asked of a stopped member"
    );
}

#[test]
fn commands_reach_the_member_once_each_and_refusals_are_409() {
    let fake = Fake::new(status(1, NodeRole::Leader, Some(1)));
    let server = start(&fake);
    let a = server.local_addr();
    for path in [
        "/hand-back",
        "/transfer/3",
        "/transfer/n4",
        "/activate",
        "/drain",
        "/undrain",
    ] {
        let (code, _, body) = get(a, "POST", path);
        assert_eq!(code, 200, "{path}: {body}");
        assert_eq!(body["ok"], true, "{path}: {body}");
    }
    assert_eq!(
        fake.calls(),
        [
            "hand_back",
            "transfer 3",
            "transfer 4",
            "activate",
            "drain",
            "undrain"
        ]
    );
    *fake.refusal.lock().unwrap() = Some("not the leader; n2 leads".into());
    let (code, _, body) = get(a, "POST", "/transfer/2");
    assert_eq!(code, 409, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("not the leader; n2 leads"),
        "the member's reason is in the answer: {body}"
    );
    assert!(body["hint"].is_string(), "{body}");
}

#[test]
fn bad_requests_get_a_json_error_and_change_nothing() {
    let fake = Fake::new(status(1, NodeRole::Leader, Some(1)));
    let server = start(&fake);
    let a = server.local_addr();
    let cases: [(&str, &str, u16, Option<&str>); 6] = [
        ("GET", "/nope", 404, None),
        ("GET", "/drain", 405, Some("Allow: POST")),
        ("POST", "/leader", 405, Some("Allow: GET")),
        ("DELETE", "/transfer/3", 405, Some("Allow: POST")),
        ("POST", "/transfer/x3", 400, None),
        ("POST", "/transfer/", 400, None),
    ];
    for (method, path, want, header) in cases {
        let (code, head, body) = get(a, method, path);
        assert_eq!(code, want, "{method} {path}: {body}");
        assert!(
            body["error"].is_string() && body["hint"].is_string(),
            "{body}"
        );
        if let Some(h) = header {
            assert!(head.contains(h), "{method} {path}: {head}");
        }
    }
    let big = "x".repeat(survivable_core::operator::MAX_BODY + 1);
    let (code, _, body) = raw(
        a,
        &format!(
            "POST /drain HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{big}",
            big.len()
        ),
    );
    assert_eq!(code, 413, "{body}");
    let (code, _, body) = raw(
        a,
        &format!(
            "POST /drain HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{big}\r\n0\r\n\r\n",
            big.len()
        ),
    );
    assert_eq!(code, 413, "a chunked body is counted too: {body}");
    assert!(
        fake.calls().is_empty(),
        "nothing changed: {:?}",
        fake.calls()
    );
    assert_eq!(
        fake.reads.load(Ordering::Relaxed),
        0,
        "not even a status read"
    );
}

#[test]
fn plain_http_off_loopback_and_taken_ports_are_refused_at_start() {
    let fake = Fake::new(status(1, NodeRole::Leader, Some(1)));
    let any: SocketAddr = "0.0.0.0:0".parse().unwrap();
    let e = serve(OperatorConfig::new(any), fake.clone()).unwrap_err();
    assert!(
        matches!(e, OperatorError::PlaintextOffLoopback { addr } if addr == any),
        "{e}"
    );
    assert!(e.to_string().contains("TLS"), "{e}");

    let first = start(&fake);
    let e = serve(OperatorConfig::new(first.local_addr()), fake.clone()).unwrap_err();
    assert!(matches!(e, OperatorError::Bind { .. }), "{e}");

    let mut zero = OperatorConfig::new(loopback());
    zero.threads = 0;
    let e = serve(zero, fake.clone()).unwrap_err();
    assert!(matches!(e, OperatorError::Config(_)), "{e}");

    let missing = TlsFiles::new(
        "/nonexistent/ca.pem",
        "/nonexistent/c.pem",
        "/nonexistent/k",
    );
    let e = serve(OperatorConfig::new(any).with_tls(missing, CLUSTER), fake).unwrap_err();
    assert!(matches!(e, OperatorError::TlsFile { .. }), "{e}");
}

#[test]
fn shutdown_stops_listening() {
    let fake = Fake::new(status(1, NodeRole::Leader, Some(1)));
    let server = start(&fake);
    let a = server.local_addr();
    assert_eq!(get(a, "GET", "/leader").0, 200);
    server.shutdown();
    // tiny_http's accept thread closes the port once woken: one loop turn
    // when all goes well; a loaded host can keep that thread waiting for
    // the CPU, so the bound is generous (it only bounds a port left open).
    let start = std::time::Instant::now();
    let closed = loop {
        if TcpStream::connect_timeout(&a, TIMEOUT).is_err() {
            break true;
        }
        if start.elapsed() > Duration::from_secs(20) {
            break false;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(closed, "still listening 20 s after shutdown");
}

/// The cluster's PKI in a temporary directory: CA, node 1's files (the
/// endpoint's), node 2's (a member, not an operator), an operator of
/// this cluster and one of another cluster.
struct Pki {
    _dir: tempfile::TempDir,
    node1: TlsFiles,
    node2: TlsFiles,
    alice: (String, String),
    mallory: (String, String),
}

fn pki() -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let ca = pki::write_cluster(dir.path(), CLUSTER, &[NodeId(1), NodeId(2)], 1).unwrap();
    let alice = OperatorIdentity::new(CLUSTER, "alice").unwrap();
    ca.write_operator(dir.path(), &alice, &ca.operator(&alice, 1).unwrap())
        .unwrap();
    // Same CA, another cluster's operator.
    let mallory = OperatorIdentity::new(CLUSTER + 1, "mallory").unwrap();
    ca.write_operator(dir.path(), &mallory, &ca.operator(&mallory, 1).unwrap())
        .unwrap();
    let files = |name: &str| {
        let p = |ext: &str| dir.path().join(format!("operator-{name}.{ext}"));
        (
            p("pem").display().to_string(),
            p("key").display().to_string(),
        )
    };
    Pki {
        node1: TlsFiles::in_dir(dir.path(), NodeId(1)),
        node2: TlsFiles::in_dir(dir.path(), NodeId(2)),
        alice: files("alice"),
        mallory: files("mallory"),
        _dir: dir,
    }
}

fn path(p: &std::path::Path) -> String {
    p.display().to_string()
}

#[test]
fn mutual_tls_lets_in_an_operator_certificate_only() {
    let pki = pki();
    let fake = Fake::new(status(1, NodeRole::Leader, Some(1)));
    let cfg = OperatorConfig::new(loopback()).with_tls(pki.node1.clone(), CLUSTER);
    let server = serve(cfg, fake.clone()).unwrap();
    assert!(server.is_tls());
    let ep = server.local_addr().to_string();
    let ca = path(&pki.node1.ca);

    let alice =
        ctl::Client::tls(&ca, Some((&pki.alice.0, &pki.alice.1)), CLUSTER, TIMEOUT).unwrap();
    let a = alice.request(&ep, "GET", "/leader").unwrap();
    assert_eq!(a.code, 200, "{}", a.body);
    let a = alice.request(&ep, "POST", "/drain").unwrap();
    assert_eq!(a.code, 200, "{}", a.body);
    assert_eq!(fake.calls(), ["drain"]);
    // ctl's own way in: the cluster id read from the operator certificate.
    let ctl_client = ctl::Client::mutual_tls(&ca, &pki.alice.0, &pki.alice.1, TIMEOUT).unwrap();
    assert_eq!(ctl_client.request(&ep, "GET", "/status").unwrap().code, 200);

    let (m_cert, m_key) = (path(&pki.node2.cert), path(&pki.node2.key));
    let refused = [
        (
            "no certificate",
            ctl::Client::tls(&ca, None, CLUSTER, TIMEOUT),
        ),
        (
            "a member's certificate",
            ctl::Client::tls(&ca, Some((&m_cert, &m_key)), CLUSTER, TIMEOUT),
        ),
        (
            "another cluster's operator",
            ctl::Client::tls(
                &ca,
                Some((&pki.mallory.0, &pki.mallory.1)),
                CLUSTER,
                TIMEOUT,
            ),
        ),
    ];
    for (who, client) in refused {
        let r = client.unwrap().request(&ep, "POST", "/undrain");
        assert!(r.is_err(), "{who} got in: {r:?}");
    }
    let mut plain = TcpStream::connect(server.local_addr()).unwrap();
    plain.set_read_timeout(Some(TIMEOUT)).unwrap();
    let _ = plain.write_all(b"POST /undrain HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut out = Vec::new();
    let _ = plain.read_to_end(&mut out);
    assert!(
        !out.starts_with(b"HTTP"),
        "plain HTTP on the TLS port got an HTTP answer"
    );
    assert_eq!(fake.calls(), ["drain"], "refused clients changed nothing");
}

#[test]
fn off_loopback_with_tls_starts() {
    let pki = pki();
    let fake = Fake::new(status(1, NodeRole::Leader, Some(1)));
    let any: SocketAddr = "0.0.0.0:0".parse().unwrap();
    let server = serve(OperatorConfig::new(any).with_tls(pki.node1, CLUSTER), fake).unwrap();
    assert!(server.is_tls());
    drop(server); // Drop stops it too
}

#[test]
fn ctl_tabulates_the_cluster_and_finds_the_leader() {
    let leader = Fake::new(status(1, NodeRole::Leader, Some(1)));
    let follower = Fake::new(status(2, NodeRole::Follower, Some(1)));
    let (s1, s2) = (start(&leader), start(&follower));
    let eps = [s2.local_addr().to_string(), s1.local_addr().to_string()];
    let client = ctl::Client::plain(TIMEOUT);
    let (ep, id) = ctl::find_leader(&client, &eps).unwrap();
    assert_eq!((ep.as_str(), id), (eps[1].as_str(), 1));
    let (table, answered) = ctl::status_table(&client, &eps);
    assert_eq!(answered, 2, "{table}");
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(lines[0].starts_with("ENDPOINT"), "{table}");
    for (line, role) in [(lines[1], "follower"), (lines[2], "leader")] {
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cols[3], role, "{table}");
        assert_eq!(cols[4], "n1", "{table}");
        assert_eq!(cols[6], "e1", "{table}");
        assert_eq!(cols[9], "false", "{table}");
        // lag: the leader's commit (40) minus the member's applied (38).
        assert_eq!(cols[10], "2", "{table}");
    }
    s1.shutdown();
    let (table, answered) = ctl::status_table(&client, &eps);
    assert_eq!(answered, 1, "{table}");
    assert!(table.contains("unreachable"), "{table}");
    let e = ctl::find_leader(&client, &eps).unwrap_err();
    assert!(
        e.contains("not the leader (knows n1)") && e.contains("unreachable"),
        "{e}"
    );
}

/// A member double answering `/status` as the runtime's handle does
/// (`Status::to_json`), refusing every command.
struct Serialized(Status);

impl Operable for Serialized {
    fn status(&self) -> Status {
        self.0.clone()
    }
    fn status_json(&self) -> String {
        self.0.to_json()
    }
    fn metrics_text(&self) -> String {
        String::new()
    }
    fn hand_back(&self) -> Result<(), String> {
        Err("a double".into())
    }
    fn transfer(&self, _: NodeId) -> Result<(), String> {
        Err("a double".into())
    }
    fn activate(&self) -> Result<(), String> {
        Err("a double".into())
    }
    fn drain(&self) -> Result<(), String> {
        Err("a double".into())
    }
    fn undrain(&self) -> Result<(), String> {
        Err("a double".into())
    }
}

/// A fresh node's status in a topology.
fn status_in(topology: Topology, id: u64) -> Status {
    let node = Node::new(
        NodeConfig::new(NodeId(id), topology.shared()),
        MemStorage::new(),
        NoState,
    )
    .unwrap();
    node.status()
}

#[test]
fn status_carries_the_dr_replication_state_and_null_outside_dr_mode() {
    use survivable_core::replication::{ReplicationState, SiteLossCost};
    use survivable_core::topology::{denver_paris, denver_paris_dr};
    // Witness mode: `replication` is there, and null.
    let plain = serve(
        OperatorConfig::new(loopback()),
        Arc::new(Serialized(status_in(denver_paris().build().unwrap(), 1))),
    )
    .unwrap();
    let (code, _, body) = get(plain.local_addr(), "GET", "/status");
    assert_eq!(code, 200);
    assert!(body["replication"].is_null(), "{body}");
    assert!(body.as_object().unwrap().contains_key("replication"));

    // DR mode: a fresh Paris member starts in Sync (id 0) and, without a
    // lease, cannot tell what Denver's loss would cost: null, not 0.
    let mut paris = status_in(denver_paris_dr().build().unwrap(), 3);
    let r = paris.replication.expect("DR mode");
    assert_eq!((r.state, r.state_id), (ReplicationState::Sync, 0));
    // As a leader in Async would report it.
    paris.replication = Some(survivable_core::replication::Replication {
        state: ReplicationState::Async,
        state_id: 5,
        main_site_loss: SiteLossCost::measured(12, 1_500),
        survivable_site_loss: SiteLossCost::ZERO,
        lease_ms: 0,
    });
    let fresh = status_in(denver_paris_dr().build().unwrap(), 3);
    let servers = [
        serve(OperatorConfig::new(loopback()), Arc::new(Serialized(fresh))).unwrap(),
        serve(OperatorConfig::new(loopback()), Arc::new(Serialized(paris))).unwrap(),
    ];
    let (_, _, body) = get(servers[0].local_addr(), "GET", "/status");
    let r = &body["replication"];
    assert_eq!(r["state"], "sync", "{body}");
    assert_eq!(r["state_id"], 0, "{body}");
    assert!(r["main_site_loss"]["entries"].is_null(), "{body}");
    assert!(r["main_site_loss"]["ms"].is_null(), "{body}");
    assert_eq!(r["main_site_loss"]["proven"], false, "{body}");
    assert_eq!(r["lease_ms"], 0, "{body}");
    let (_, _, body) = get(servers[1].local_addr(), "GET", "/status");
    let r = &body["replication"];
    assert_eq!(r["state"], "async", "{body}");
    assert_eq!(r["state_id"], 5, "{body}");
    assert_eq!(r["main_site_loss"]["entries"], 12, "{body}");
    assert_eq!(r["main_site_loss"]["ms"], 1500, "{body}");
    assert_eq!(r["main_site_loss"]["proven"], true, "{body}");
    assert_eq!(r["survivable_site_loss"]["entries"], 0, "{body}");

    // `node ctl status` adds the state and the main site's loss.
    let eps: Vec<String> = servers.iter().map(|s| s.local_addr().to_string()).collect();
    let (table, answered) = ctl::status_table(&ctl::Client::plain(TIMEOUT), &eps);
    assert_eq!(answered, 2, "{table}");
    let lines: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(&lines[0][11..], ["REPL", "RPO-MAIN"], "{table}");
    assert_eq!(&lines[1][11..], ["sync#0", "unknown"], "{table}");
    assert_eq!(&lines[2][11..], ["async#5", "12/1500ms"], "{table}");
}
