//! A rolling upgrade over real TCP (loopback, durable storage): a pair and
//! a witness start as version 2 members (this build with its protocol
//! capped at 2); the standby is restarted at version 3 with its data,
//! leadership moves to it, then the old primary and the witness are
//! restarted at version 3. A client proposes throughout; every
//! acknowledged proposal is applied exactly once at every member, counted
//! per proposal id. While versions are mixed, what version 2 cannot read
//! is not sent to it: the drain notice of the upgraded member does not
//! reach the version 2 leader, which therefore still tries to hand it
//! leadership (and the drained member refuses); once both speak 3 the
//! notice arrives and the leader refuses such a transfer itself.

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use support::{calm_timers, free_addr, logger, Recorder, Warnings};
use survivable_core::error::TransferError;
use survivable_core::node::NodeRole;
use survivable_core::runtime::{start_member, Handle, Member, MemberConfig};
use survivable_core::topology::{Appliance::Virtual, Core, NodeId, Site, Topology, Witness};
use survivable_core::transport::{ConnectionError, Dialer, TcpConfig, TransportSecurity};
use survivable_core::wire::{ProtocolRange, PROTOCOL_VERSION};

const CLUSTER: u64 = 13;
const A: NodeId = NodeId(1);
const B: NodeId = NodeId(2);
const TB: NodeId = NodeId(3);

fn v2() -> ProtocolRange {
    ProtocolRange::up_to(2).unwrap()
}

fn v3() -> ProtocolRange {
    ProtocolRange::up_to(PROTOCOL_VERSION).unwrap()
}

/// The pair and its witness, each with its own data directory, started
/// and restarted with a chosen protocol range.
struct Trio {
    topology: Arc<Topology>,
    addrs: BTreeMap<NodeId, SocketAddr>,
    members: BTreeMap<NodeId, Member>,
    /// The state machine of each member's current run.
    logs: BTreeMap<NodeId, Recorder>,
    /// The handles the client proposes through.
    handles: Arc<Mutex<BTreeMap<NodeId, Handle>>>,
    warnings: Warnings,
    dir: tempfile::TempDir,
}

impl Trio {
    fn new() -> Self {
        let topology = Topology::builder(CLUSTER)
            .site(Site::main("denver"))
            .core(
                Core::new("cm01", "denver")
                    .member(A.0, "CM01a", "esxi-1", Virtual)
                    .member(B.0, "CM01b", "esxi-3", Virtual),
            )
            .witness(Witness::new(TB.0, "TB", "denver", "esxi-5"))
            .timers(calm_timers())
            .build()
            .unwrap()
            .shared();
        let addrs = [A, B, TB].into_iter().map(|id| (id, free_addr())).collect();
        Self {
            topology,
            addrs,
            members: BTreeMap::new(),
            logs: BTreeMap::new(),
            handles: Arc::default(),
            warnings: Warnings::default(),
            dir: tempfile::Builder::new()
                .prefix("sc-upgrade-")
                .tempdir()
                .unwrap(),
        }
    }

    fn start(&mut self, id: NodeId, protocol: ProtocolRange) {
        let peers = self
            .addrs
            .iter()
            .filter(|(&p, _)| p != id)
            .map(|(&p, &a)| (p, a))
            .collect();
        let mut cfg = MemberConfig::new(
            self.topology.clone(),
            id,
            self.addrs[&id],
            peers,
            self.dir.path().join(format!("n{}", id.0)),
            TransportSecurity::InsecurePlaintextLoopbackOnly,
        );
        cfg.protocol = protocol;
        let sm = Recorder::default();
        let m = start_member(cfg, sm.clone(), &logger(self.warnings.clone())).unwrap();
        self.handles.lock().insert(id, m.handle.clone());
        self.logs.insert(id, sm);
        self.members.insert(id, m);
    }

    /// Stops `id` (gracefully, as an operator's upgrade does) and starts
    /// it again on its data speaking `protocol`.
    fn restart(&mut self, id: NodeId, protocol: ProtocolRange) {
        self.handles.lock().remove(&id);
        if let Some(m) = self.members.remove(&id) {
            m.handle.shutdown();
        }
        self.start(id, protocol);
    }

    fn handle(&self, id: NodeId) -> &Handle {
        &self.members[&id].handle
    }

    fn leader(&self) -> Option<NodeId> {
        self.members
            .iter()
            .find(|(_, m)| m.handle.status().role == NodeRole::Leader)
            .map(|(&id, _)| id)
    }

    fn wait_for(&self, limit: Duration, what: &str, mut pred: impl FnMut(&Self) -> bool) {
        let start = Instant::now();
        while !pred(self) {
            assert!(start.elapsed() < limit, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until `id` leads and every member follows it.
    fn led_by(&self, id: NodeId, limit: Duration) {
        self.wait_for(limit, &format!("{id:?} to lead, followed"), |t| {
            t.members
                .values()
                .all(|m| m.handle.status().leader == Some(id))
        });
    }
}

impl Drop for Trio {
    fn drop(&mut self) {
        for (_, m) in std::mem::take(&mut self.members) {
            m.handle.shutdown_now();
        }
    }
}

/// A client proposing one command after another through whoever leads,
/// each attempt with its own id (`p<n>`): the ids acknowledged, and every
/// id tried.
struct Client {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<String>>>,
    thread: Option<JoinHandle<Vec<String>>>,
}

impl Client {
    fn start(handles: Arc<Mutex<BTreeMap<NodeId, Handle>>>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let (s, a) = (stop.clone(), acked.clone());
        let thread = std::thread::spawn(move || {
            let mut tried = Vec::new();
            while !s.load(Ordering::Relaxed) {
                let leader = handles
                    .lock()
                    .values()
                    .find(|h| h.status().role == NodeRole::Leader)
                    .cloned();
                let Some(h) = leader else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                let id = format!("p{}", tried.len());
                tried.push(id.clone());
                if h.propose_timeout(id.clone().into_bytes(), Duration::from_secs(3))
                    .is_ok()
                {
                    a.lock().push(id);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            tried
        });
        Self {
            stop,
            acked,
            thread: Some(thread),
        }
    }

    fn acked(&self) -> usize {
        self.acked.lock().len()
    }

    /// Waits until `more` further proposals are acknowledged: the cluster
    /// serves. Each takes a commit round trip on loopback (well under a
    /// millisecond) plus the client's 5 ms pause; 20 s is for a loaded
    /// machine and for a failover with the calm timers (1 s election).
    fn serves(&self, more: usize, what: &str) {
        let want = self.acked() + more;
        let start = Instant::now();
        while self.acked() < want {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "{what}: proposals stopped committing at {}",
                self.acked()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn stop(mut self) -> (Vec<String>, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        let tried = self.thread.take().unwrap().join().unwrap();
        let acked = self.acked.lock().clone();
        (acked, tried)
    }
}

/// `leader`'s transfer to `to` is refused because it knows `to` drained,
/// within `limit` (a drain notice goes at once and every election
/// timeout): `true` when it is, `false` when it was still accepted once
/// `limit` passed. An accepted transfer before that only says the notice
/// is not there yet (a stalled machine can hold it back for longer than
/// any fixed pause): the drained member refuses it, and it is asked again.
fn transfer_refused_as_drained(leader: &Handle, to: NodeId, limit: Duration) -> bool {
    let start = Instant::now();
    loop {
        match leader.transfer_leader(to) {
            Err(TransferError::Drained(n)) if n == to => return true,
            _ if start.elapsed() < limit => std::thread::sleep(Duration::from_millis(20)),
            Ok(()) => return false,
            Err(e) => panic!("transfer to {to:?}: {e}"),
        }
    }
}

#[test]
fn a_pair_and_witness_upgrade_from_version_2_to_3_one_member_at_a_time() {
    let mut t = Trio::new();
    for id in [A, B, TB] {
        t.start(id, v2());
    }
    // Failover-free start: the pair elects one of its own within an
    // election timeout or two (calm timers: 1 s).
    t.wait_for(Duration::from_secs(20), "a leader", |t| {
        t.leader().is_some_and(|l| l != TB)
    });
    let first = t.leader().unwrap();
    t.led_by(first, Duration::from_secs(20));
    let standby = if first == A { B } else { A };

    // A member speaking only version 3 has nothing in common with a
    // version 2 member: both ranges named.
    let mut probe = TcpConfig::new(
        CLUSTER,
        TB,
        free_addr(),
        BTreeMap::from([(first, t.addrs[&first])]),
        TransportSecurity::InsecurePlaintextLoopbackOnly,
    );
    probe.protocol = ProtocolRange::new(3, 3).unwrap();
    match Dialer::new(probe).unwrap().check(first, t.addrs[&first]) {
        Err(ConnectionError::Version { theirs, ours, .. }) => {
            assert_eq!((theirs, ours), (v2(), ProtocolRange::new(3, 3).unwrap()));
        }
        other => panic!("a version 3-only caller: {other:?}"),
    }

    let client = Client::start(t.handles.clone());
    client.serves(20, "all at version 2");

    // 1. The standby: restarted at version 3 on its data. It talks 2 with
    // both others.
    t.restart(standby, v3());
    t.led_by(first, Duration::from_secs(20));
    client.serves(20, "standby upgraded");

    // Its drain notice is not sent on its version 2 connections (a
    // version 2 member cannot read one): the leader does not know, and
    // starts a transfer to it, which the drained member refuses (raft
    // gives up after an election timeout).
    t.handle(standby).drain().unwrap();
    std::thread::sleep(Duration::from_millis(300)); // notices go at once: a few LAN round trips
    assert!(
        !transfer_refused_as_drained(t.handle(first), standby, Duration::ZERO),
        "a version 2 leader cannot know of a drain"
    );
    // The hand-over reaches the drained member within a LAN round trip or
    // two once it is caught up (it follows, a few entries behind at most).
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(t.leader(), Some(first), "the drained member took over");
    t.handle(standby).undrain().unwrap();
    client.serves(20, "transfer to a drained member refused by it");

    // 2. Leadership to the upgraded standby: one transfer, retried while
    // the refused one is still under way (raft aborts it after an
    // election timeout).
    t.wait_for(
        Duration::from_secs(20),
        "the transfer to the standby",
        |t| {
            if t.leader() == Some(standby) {
                return true;
            }
            let _ = t.handle(first).transfer_leader(standby);
            std::thread::sleep(Duration::from_millis(200));
            false
        },
    );
    t.led_by(standby, Duration::from_secs(20));
    client.serves(20, "the upgraded standby leads");

    // 3. The old primary, then 4. the witness.
    t.restart(first, v3());
    t.led_by(standby, Duration::from_secs(20));
    client.serves(20, "old primary upgraded");
    t.restart(TB, v3());
    t.led_by(standby, Duration::from_secs(20));
    client.serves(20, "witness upgraded");

    // All at version 3: the old primary's drain notice reaches the leader,
    // which refuses a transfer to it.
    t.handle(first).drain().unwrap();
    assert!(
        transfer_refused_as_drained(t.handle(standby), first, Duration::from_secs(20)),
        "a version 3 leader hears of a drain"
    );
    t.handle(first).undrain().unwrap();
    client.serves(20, "all at version 3");

    let (acked, tried) = client.stop();
    // Every member applies every acknowledged proposal exactly once, and
    // no proposal twice (counted per id).
    let last = acked.len();
    t.wait_for(Duration::from_secs(20), "every member to apply all", |t| {
        t.logs.values().all(|r| {
            let applied = r.applied.lock();
            acked
                .iter()
                .all(|id| applied.contains(&id.clone().into_bytes()))
        })
    });
    for (id, log) in &t.logs {
        let mut count: BTreeMap<Vec<u8>, usize> = BTreeMap::new();
        for c in log.applied.lock().iter() {
            *count.entry(c.clone()).or_default() += 1;
        }
        for p in &acked {
            assert_eq!(count.get(p.as_bytes()), Some(&1), "{id:?}: {p}");
        }
        let twice: Vec<_> = count.iter().filter(|(_, &n)| n > 1).collect();
        assert!(twice.is_empty(), "{id:?} applied twice: {twice:?}");
        let unknown = count
            .keys()
            .filter(|c| !tried.iter().any(|p| p.as_bytes() == c.as_slice()))
            .count();
        assert_eq!(unknown, 0, "{id:?} applied commands never proposed");
    }
    println!(
        "{last} of {} proposals acknowledged through a rolling upgrade",
        tried.len()
    );
}

/// What the node writes follows its protocol setting too: in main-site
/// mode the leader records compaction floors in the log for its followers
/// (version 3), which a version 2 build would apply as a command of the
/// application's. A leader pinned to version 2 writes none, so its
/// followers, which compact only up to a floor record they applied, keep
/// their whole log; at version 3 they compact behind the floor
/// (simulated: 3000 proposals, `snapshot_every` 1024, `keep_entries` 256).
#[test]
fn a_member_pinned_to_version_2_writes_no_floor_records() {
    use survivable_core::sim::{KvStore, Sim};
    use survivable_core::topology::denver_paris_two_site;
    let run = |protocol: ProtocolRange| {
        let topology = denver_paris_two_site().build().unwrap().shared();
        let mut sim = Sim::builder(topology)
            .seed(1)
            .node_config(move |c| c.protocol = protocol)
            .build(|_| KvStore::default());
        assert!(sim.run_until(Duration::from_secs(3), |s| s.leader() == Some(A)));
        let start = sim.node(B).unwrap().status().first_index;
        for i in 0..3000u32 {
            sim.propose(A, format!("set k{i} {i}").into_bytes())
                .unwrap();
            sim.run_for(Duration::from_millis(5));
        }
        sim.run_for(Duration::from_secs(1));
        let first = |id| sim.node(id).unwrap().status().first_index;
        (first(A), first(B), start)
    };
    let (leader, follower, _) = run(v3());
    assert!(
        leader > 1000 && follower > 1000,
        "version 3: {leader}, {follower}"
    );
    let (leader, follower, start) = run(v2());
    assert!(
        leader > 1000,
        "the leader compacts by its reports: {leader}"
    );
    assert_eq!(
        follower, start,
        "a follower without floor records compacts nothing"
    );
}
