//! Shared by the TCP and TLS tests: the Denver/Paris cluster as five
//! members in this process, each with its own transport, data directory
//! and node thread; by default with mutual TLS and certificates made for
//! the run.
// Each test binary uses part of this.
#![allow(dead_code, unreachable_pub)]

#[path = "../../examples/node/pki.rs"]
pub mod pki;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use survivable_core::node::{NodeRole, Status};
use survivable_core::policy::Timers;
use survivable_core::runtime::{start_member, Member, MemberConfig, StartError};
use survivable_core::topology::{denver_paris, NodeId, Topology};
use survivable_core::transport::{Limits, TlsFiles, TransportSecurity, TransportStats};
use survivable_core::{RestoreError, StateMachine};

pub const CLUSTER: u64 = 2026;
pub const CM01A: NodeId = NodeId(1);
pub const CM01B: NodeId = NodeId(2);
pub const CM02A: NodeId = NodeId(3);
pub const CM02B: NodeId = NodeId(4);
pub const W1: NodeId = NodeId(5);

/// Whether `id` is one of Denver's pair (the main site's core).
pub fn in_denver(id: NodeId) -> bool {
    id == CM01A || id == CM01B
}

/// The other member of `id`'s duplicated core.
pub fn partner(id: NodeId) -> NodeId {
    match id {
        CM01A => CM01B,
        CM01B => CM01A,
        CM02A => CM02B,
        CM02B => CM02A,
        other => other,
    }
}

/// Records every applied command (shared with the test) on top of a list.
#[derive(Clone, Default)]
pub struct Recorder {
    pub applied: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl StateMachine for Recorder {
    fn apply(&mut self, _index: u64, command: &[u8]) -> Vec<u8> {
        self.applied.lock().push(command.to_vec());
        b"ok".to_vec()
    }
    fn snapshot(&self) -> Vec<u8> {
        let list = self.applied.lock();
        let mut out = Vec::new();
        for c in list.iter() {
            out.extend_from_slice(&(c.len() as u32).to_be_bytes());
            out.extend_from_slice(c);
        }
        out
    }
    fn restore(&mut self, mut bytes: &[u8]) -> Result<(), RestoreError> {
        let mut list = Vec::new();
        while !bytes.is_empty() {
            let bad = || RestoreError {
                reason: "truncated".into(),
            };
            let len =
                u32::from_be_bytes(bytes.get(..4).ok_or_else(bad)?.try_into().unwrap()) as usize;
            list.push(bytes.get(4..4 + len).ok_or_else(bad)?.to_vec());
            bytes = &bytes[4 + len..];
        }
        *self.applied.lock() = list;
        Ok(())
    }
}

/// A loopback address nothing listens on, for a member to bind later
/// (see [`transport::free_loopback_addr`] for why not port 0).
pub fn free_addr() -> SocketAddr {
    survivable_core::transport::free_loopback_addr().expect("a free loopback port")
}

/// How a test cluster runs.
pub struct Options {
    /// Mutual TLS (the default) or loopback plaintext.
    pub tls: bool,
    /// Transport limits of every member.
    pub limits: Limits,
    /// Members not started (their address is reserved).
    pub absent: Vec<NodeId>,
    /// The topology's timers ([`calm_timers`] unless told).
    pub timers: Timers,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            tls: true,
            limits: Limits::default(),
            absent: Vec::new(),
            timers: calm_timers(),
        }
    }
}

/// The timers of test clusters: slow enough that a loaded machine (25
/// members and their TLS in parallel on two cores) starving a thread for a
/// few hundred milliseconds does not make the standby take over (the
/// library's default failover is 30 ms). Tests check outcomes, not speed:
/// `node bench` measures failover with the default timers.
pub fn calm_timers() -> Timers {
    Timers {
        tick: Duration::from_millis(10),
        heartbeat: Duration::from_millis(50),
        failover: Duration::from_millis(500),
        election: Duration::from_secs(1),
        survivable_after: Duration::from_secs(10),
        ..Timers::default()
    }
}

pub struct Cluster {
    pub topology: Arc<Topology>,
    pub addrs: BTreeMap<NodeId, SocketAddr>,
    pub members: BTreeMap<NodeId, Member>,
    pub logs: BTreeMap<NodeId, Recorder>,
    /// The cluster CA (with TLS), to issue more certificates.
    pub ca: Option<pki::Ca>,
    pub tls: bool,
    pub limits: Limits,
    /// Warnings and errors of every member, in order.
    pub warnings: Warnings,
    pub dir: tempfile::TempDir,
}

impl Cluster {
    /// The cluster with mutual TLS and default limits.
    pub fn new() -> Self {
        Self::with(Options::default())
    }

    pub fn with(o: Options) -> Self {
        let topology = denver_paris().timers(o.timers).build().unwrap().shared();
        let addrs: BTreeMap<NodeId, SocketAddr> = topology
            .members()
            .keys()
            .map(|&id| (id, free_addr()))
            .collect();
        let dir = tempfile::Builder::new()
            .prefix("sc-tls-test-")
            .tempdir()
            .unwrap();
        let ca = o.tls.then(|| {
            let nodes: Vec<NodeId> = addrs.keys().copied().collect();
            pki::write_cluster(&dir.path().join("pki"), CLUSTER, &nodes, 2).unwrap()
        });
        let mut c = Self {
            topology,
            addrs,
            members: BTreeMap::new(),
            logs: BTreeMap::new(),
            ca,
            tls: o.tls,
            limits: o.limits,
            warnings: Warnings::default(),
            dir,
        };
        let ids: Vec<NodeId> = c.addrs.keys().copied().collect();
        for id in ids {
            if !o.absent.contains(&id) {
                c.start(id);
            }
        }
        c
    }

    pub fn pki_dir(&self) -> PathBuf {
        self.dir.path().join("pki")
    }

    /// Member `id`'s TLS files.
    pub fn files(&self, id: NodeId) -> TlsFiles {
        TlsFiles::in_dir(&self.pki_dir(), id)
    }

    pub fn security(&self, id: NodeId) -> TransportSecurity {
        if self.tls {
            TransportSecurity::MutualTls(self.files(id))
        } else {
            TransportSecurity::InsecurePlaintextLoopbackOnly
        }
    }

    /// Every other member's address, as `id` sees them.
    pub fn peers_of(&self, id: NodeId) -> BTreeMap<NodeId, SocketAddr> {
        self.addrs
            .iter()
            .filter(|(&p, _)| p != id)
            .map(|(&p, &a)| (p, a))
            .collect()
    }

    pub fn config(&self, id: NodeId) -> MemberConfig {
        let mut cfg = MemberConfig::new(
            self.topology.clone(),
            id,
            self.addrs[&id],
            self.peers_of(id),
            self.dir.path().join(format!("n{}", id.0)),
            self.security(id),
        );
        cfg.limits = self.limits.clone();
        cfg
    }

    pub fn try_start(&mut self, cfg: MemberConfig) -> Result<(), StartError> {
        let id = cfg.id;
        let sm = Recorder::default();
        let logger = logger(self.warnings.clone());
        let m = start_member(cfg, sm.clone(), &logger)?;
        self.logs.insert(id, sm);
        self.members.insert(id, m);
        Ok(())
    }

    pub fn start(&mut self, id: NodeId) {
        let cfg = self.config(id);
        self.try_start(cfg).expect("member starts");
    }

    pub fn kill(&mut self, id: NodeId) {
        if let Some(m) = self.members.remove(&id) {
            m.handle.shutdown_now();
        }
    }

    pub fn leader(&self) -> Option<NodeId> {
        self.members
            .iter()
            .find(|(_, m)| m.handle.status().role == NodeRole::Leader)
            .map(|(&id, _)| id)
    }

    /// The leader, if it is one of Denver's pair. Which of the two leads is
    /// not asserted anywhere: they have the same priority, and a stall of
    /// the machine can move leadership inside the pair at any time.
    pub fn denver_leader(&self) -> Option<NodeId> {
        self.leader().filter(|&l| in_denver(l))
    }

    pub fn wait_for(&self, limit: Duration, what: &str, mut pred: impl FnMut(&Self) -> bool) {
        let start = Instant::now();
        while !pred(self) {
            assert!(start.elapsed() < limit, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn applied(&self, id: NodeId) -> Vec<Vec<u8>> {
        self.logs[&id].applied.lock().clone()
    }

    pub fn status(&self, id: NodeId) -> Status {
        self.members[&id].handle.status()
    }

    pub fn stats(&self, id: NodeId) -> TransportStats {
        self.members[&id].transport.stats()
    }

    /// The lines member `id` logged at warning level and above that
    /// contain `text`.
    pub fn logged(&self, id: NodeId, text: &str) -> Vec<String> {
        // The member's own `node` key comes last on each of its lines.
        let node = format!(" node={}", id.0);
        self.warnings
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.ends_with(&node) && l.contains(text))
            .cloned()
            .collect()
    }

    /// Waits until one of Denver's pair leads, `follower` follows it, and
    /// every other running member has connected to `follower` (so no
    /// member's own connection is made, or refused, during what the test
    /// does next).
    pub fn settled(&self, follower: NodeId) {
        let others = self.members.len() as u64 - 1;
        self.wait_for(Duration::from_secs(20), "Denver to lead, followed", |c| {
            c.denver_leader()
                .is_some_and(|l| c.status(follower).leader == Some(l))
                && c.stats(follower).accepted >= others
        });
    }

    /// Waits until one of Denver's pair leads and the other follows it
    /// (connected); returns the leader.
    pub fn denver_leader_settled(&self) -> NodeId {
        self.wait_for(Duration::from_secs(20), "Denver's pair to settle", |c| {
            c.denver_leader().is_some_and(|l| {
                c.members.contains_key(&partner(l)) && c.status(partner(l)).leader == Some(l)
            })
        });
        self.denver_leader().expect("Denver leads")
    }

    /// A proposal at the leader still commits.
    pub fn assert_serving(&self, what: &str) {
        let leader = self.leader().expect("a leader");
        let r = self.members[&leader]
            .handle
            .propose_timeout(format!("after {what}").into_bytes(), Duration::from_secs(5));
        assert!(r.is_ok(), "after {what}: {r:?}");
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for (_, m) in std::mem::take(&mut self.members) {
            m.handle.shutdown_now();
        }
    }
}

/// What the members logged at warning level and above, one line each
/// (`WARN <message> key=value ... node=<id>`).
pub type Warnings = Arc<std::sync::Mutex<Vec<String>>>;

/// A logger that keeps warnings and errors in `logs`, and also prints
/// info and above to stderr when `SC_TEST_LOG` is set.
pub fn logger(logs: Warnings) -> slog::Logger {
    struct Capture {
        logs: Warnings,
        stderr: bool,
    }
    struct Line(String);
    impl slog::Serializer for Line {
        fn emit_arguments(
            &mut self,
            key: slog::Key,
            val: &std::fmt::Arguments<'_>,
        ) -> slog::Result {
            self.0.push_str(&format!(" {key}={val}"));
            Ok(())
        }
    }
    impl slog::Drain for Capture {
        type Ok = ();
        type Err = slog::Never;
        fn log(&self, r: &slog::Record<'_>, kv: &slog::OwnedKVList) -> Result<(), slog::Never> {
            use slog::KV as _;
            let keep = r.level().is_at_least(slog::Level::Warning);
            let print = self.stderr && r.level().is_at_least(slog::Level::Info);
            if keep || print {
                let mut line = Line(format!("{} {}", r.level().as_short_str(), r.msg()));
                let _ = r.kv().serialize(r, &mut line);
                let _ = kv.serialize(r, &mut line);
                if print {
                    eprintln!("{}", line.0);
                }
                if keep {
                    if let Ok(mut logs) = self.logs.lock() {
                        logs.push(line.0);
                    }
                }
            }
            Ok(())
        }
    }
    let stderr = std::env::var_os("SC_TEST_LOG").is_some();
    slog::Logger::root(slog::Fuse(Capture { logs, stderr }), slog::o!())
}

/// The resident set size of this process, in KiB (Linux; 0 elsewhere).
pub fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Asserts this process's resident memory grew by less than 256 MiB since
/// `before` ([`rss_kib`]). The measure is process-wide and the binary's
/// other tests run meanwhile (a cluster is a few MiB), so the bound is
/// loose on purpose: it catches memory sized by what a peer announces (an
/// oversized frame claims 4 GiB) or growing with a flood, not a small leak.
pub fn assert_memory_bounded(before: u64) {
    let grown = rss_kib().saturating_sub(before);
    assert!(grown < 256 << 10, "memory grew by {grown} KiB");
}

/// A bare transport in plaintext on loopback: member `me` of cluster
/// `cluster`, listening at `listen` and dialling `peers`; what it receives
/// goes to `inbound`.
pub fn plaintext_transport<I>(
    cluster: u64,
    me: NodeId,
    listen: SocketAddr,
    peers: BTreeMap<NodeId, SocketAddr>,
    inbound: crossbeam_channel::Sender<I>,
) -> survivable_core::transport::TcpTransport
where
    I: From<survivable_core::transport::Inbound> + Send + 'static,
{
    let cfg = survivable_core::transport::TcpConfig::new(
        cluster,
        me,
        listen,
        peers,
        TransportSecurity::InsecurePlaintextLoopbackOnly,
    );
    let logger = slog::Logger::root(slog::Discard, slog::o!());
    survivable_core::transport::TcpTransport::start(cfg, inbound, logger).unwrap()
}
