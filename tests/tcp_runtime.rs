//! The threaded runtime over real loopback sockets with durable storage:
//! the Denver/Paris cluster as five members in this process, each with its
//! own TCP transport, data directory and node thread.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use survivable_core::node::NodeRole;
use survivable_core::runtime::{start_member, Member, MemberConfig};
use survivable_core::topology::{denver_paris, NodeId, Topology};
use survivable_core::{RestoreError, StateMachine};

/// Records every applied command (shared with the test) on top of a list.
#[derive(Clone, Default)]
struct Recorder {
    applied: Arc<Mutex<Vec<Vec<u8>>>>,
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

/// A temporary directory removed on drop (also when a test fails).
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let p = std::env::temp_dir().join(format!("sc-{name}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

struct Cluster {
    topology: Arc<Topology>,
    addrs: BTreeMap<NodeId, SocketAddr>,
    members: BTreeMap<NodeId, Member>,
    logs: BTreeMap<NodeId, Recorder>,
    dir: TempDir,
}

impl Cluster {
    fn new(name: &str) -> Self {
        let topology = denver_paris().build().unwrap().shared();
        let addrs = topology
            .members()
            .keys()
            .map(|&id| (id, free_addr()))
            .collect();
        let mut c = Self {
            topology,
            addrs,
            members: BTreeMap::new(),
            logs: BTreeMap::new(),
            dir: TempDir::new(name),
        };
        let ids: Vec<NodeId> = c.addrs.keys().copied().collect();
        for id in ids {
            c.start(id);
        }
        c
    }

    fn start(&mut self, id: NodeId) {
        let peers = self
            .addrs
            .iter()
            .filter(|(&p, _)| p != id)
            .map(|(&p, &a)| (p, a))
            .collect();
        let cfg = MemberConfig {
            topology: self.topology.clone(),
            id,
            listen: self.addrs[&id],
            peers,
            data_dir: self.dir.0.join(format!("n{}", id.0)),
            joining: None,
        };
        let sm = Recorder::default();
        self.logs.insert(id, sm.clone());
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let m = start_member(cfg, sm, &logger).expect("member starts");
        self.members.insert(id, m);
    }

    fn kill(&mut self, id: NodeId) {
        if let Some(m) = self.members.remove(&id) {
            m.handle.shutdown();
        }
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

    fn applied(&self, id: NodeId) -> Vec<Vec<u8>> {
        self.logs[&id].applied.lock().clone()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for (_, m) in std::mem::take(&mut self.members) {
            m.handle.shutdown();
        }
    }
}

const CM01A: NodeId = NodeId(1);
const CM01B: NodeId = NodeId(2);
const CM02A: NodeId = NodeId(3);

#[test]
fn the_standby_takes_over_and_the_old_primary_catches_up_from_disk() {
    let mut c = Cluster::new("failover");
    c.wait_for(Duration::from_secs(10), "CM01a to lead", |c| {
        c.leader() == Some(CM01A)
    });
    let mut acked = Vec::new();
    for i in 0..100 {
        let cmd = format!("call-{i}").into_bytes();
        let at = if i % 2 == 0 { CM01A } else { CM02A };
        let r = c.members[&at]
            .handle
            .propose_timeout(cmd.clone(), Duration::from_secs(5));
        assert!(r.is_ok(), "proposal {i}: {r:?}");
        acked.push(cmd);
    }

    c.kill(CM01A);
    c.wait_for(Duration::from_secs(5), "CM01b to lead", |c| {
        c.leader() == Some(CM01B)
    });
    let r = c.members[&CM01B]
        .handle
        .propose_timeout(b"after".to_vec(), Duration::from_secs(5));
    assert!(r.is_ok(), "{r:?}");
    acked.push(b"after".to_vec());

    // No acknowledged proposal is lost: the new leader applied all of them.
    let at_b = c.applied(CM01B);
    for cmd in &acked {
        assert!(at_b.contains(cmd), "{} lost", String::from_utf8_lossy(cmd));
    }

    // The killed member restarts from its data directory and catches up.
    c.start(CM01A);
    c.wait_for(Duration::from_secs(10), "CM01a to catch up", |c| {
        c.members[&CM01A].handle.status().applied >= c.members[&CM01B].handle.status().applied
            && c.applied(CM01A).len() == c.applied(CM01B).len()
    });
    assert_eq!(c.applied(CM01A), c.applied(CM01B));
    let s = c.members[&CM01A].handle.status();
    assert_eq!(s.role, NodeRole::Follower);
    assert_eq!(s.leader, Some(CM01B));
}

#[test]
fn status_and_events_report_the_cluster() {
    let c = Cluster::new("status");
    let events = c.members[&CM02A].handle.events();
    c.wait_for(Duration::from_secs(10), "CM01a to lead", |c| {
        c.leader() == Some(CM01A)
    });
    c.wait_for(Duration::from_secs(5), "CM02a to know the leader", |c| {
        c.members[&CM02A].handle.status().leader == Some(CM01A)
    });
    let seen: Vec<_> = events.try_iter().collect();
    assert!(
        seen.iter().any(|e| matches!(
            e,
            survivable_core::Event::LeaderChanged {
                leader: Some(CM01A),
                ..
            }
        )),
        "{seen:?}"
    );
    c.members[&CM01A].handle.propose(b"x".to_vec()).unwrap();
    c.wait_for(
        Duration::from_secs(5),
        "every peer to be tracked and reachable",
        |c| {
            let s = c.members[&CM01A].handle.status();
            s.peers.len() == 4 && s.peers.iter().all(|p| p.reachable)
        },
    );
    let s = c.members[&CM01A].handle.status();
    assert_eq!(s.site, "denver");
    assert_eq!(s.epoch, survivable_core::node::FIRST_EPOCH);
    assert!(s.commit >= 2 && s.applied >= 2);
}

#[test]
fn a_data_dir_of_another_member_is_refused() {
    let mut c = Cluster::new("foreign");
    c.wait_for(Duration::from_secs(10), "a leader", |c| {
        c.leader().is_some()
    });
    let attempt = |c: &Cluster| {
        let peers = c
            .addrs
            .iter()
            .filter(|(&p, _)| p != CM01B)
            .map(|(&p, &a)| (p, a))
            .collect();
        let cfg = MemberConfig {
            topology: c.topology.clone(),
            id: CM01B,
            listen: free_addr(),
            peers,
            data_dir: c.dir.0.join("n1"), // CM01a's
            joining: None,
        };
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        start_member(cfg, Recorder::default(), &logger)
            .unwrap_err()
            .to_string()
    };
    // While CM01a runs, its directory is locked.
    let err = attempt(&c);
    assert!(err.contains("another instance"), "{err}");
    // Once it stopped, the directory still says whose it is.
    c.kill(CM01A);
    let err = attempt(&c);
    assert!(err.contains("belongs to cluster 2026 node 1"), "{err}");
}

fn write_raw(addr: SocketAddr, bytes: &[u8]) -> TcpStream {
    use std::io::Write;
    let mut s = TcpStream::connect(addr).unwrap();
    let _ = s.write_all(bytes);
    s
}

/// Whether the member closed the connection within a few seconds.
fn closed(mut s: TcpStream) -> bool {
    use std::io::Read;
    s.set_read_timeout(Some(Duration::from_secs(4))).unwrap();
    let mut buf = [0u8; 16];
    matches!(s.read(&mut buf), Ok(0) | Err(_))
}

#[test]
fn hostile_connections_are_closed_counted_and_change_nothing() {
    use survivable_core::wire::{encode_frame, Envelope, Hello, PROTOCOL_VERSION};
    let c = Cluster::new("hostile");
    c.wait_for(Duration::from_secs(10), "CM02a to follow CM01a", |c| {
        c.leader() == Some(CM01A) && c.members[&CM02A].handle.status().leader == Some(CM01A)
    });
    let target = c.addrs[&CM02A];
    let before = c.members[&CM02A].handle.status();
    let stats = || c.members[&CM02A].transport.stats();
    let base = stats();

    let frame = |m: &dyn Fn(&mut Vec<u8>)| {
        let mut out = Vec::new();
        m(&mut out);
        out
    };
    // Garbage instead of a hello.
    assert!(closed(write_raw(
        target,
        &frame(&|o| o.extend_from_slice(&[0, 0, 0, 3, 0xff, 0xff, 0xff]))
    )));
    // Another cluster; an unknown sender; another protocol version.
    assert!(closed(write_raw(
        target,
        &frame(&|o| encode_frame(&Hello::new(99, 1, 3), o).unwrap())
    )));
    assert!(closed(write_raw(
        target,
        &frame(&|o| encode_frame(&Hello::new(2026, 77, 3), o).unwrap())
    )));
    let old = Hello {
        version: PROTOCOL_VERSION + 1,
        ..Hello::new(2026, 1, 3)
    };
    assert!(closed(write_raw(
        target,
        &frame(&|o| encode_frame(&old, o).unwrap())
    )));
    // An oversized frame announced after a good hello.
    let mut big = frame(&|o| encode_frame(&Hello::new(2026, 1, 3), o).unwrap());
    big.extend_from_slice(&u32::MAX.to_be_bytes());
    assert!(closed(write_raw(target, &big)));
    // A spoofed envelope: the hello says node 1, the envelope node 4.
    let mut spoof = frame(&|o| encode_frame(&Hello::new(2026, 1, 3), o).unwrap());
    let env = Envelope {
        version: PROTOCOL_VERSION,
        cluster_id: 2026,
        epoch: 1,
        from: 4,
        to: 3,
        raft: vec![],
        ..Envelope::default()
    };
    encode_frame(&env, &mut spoof).unwrap();
    assert!(closed(write_raw(target, &spoof)));

    c.wait_for(Duration::from_secs(5), "the refusals to be counted", |_| {
        stats().refused >= base.refused + 6
    });
    let s = stats();
    assert!(s.malformed >= base.malformed + 2, "{s:?}");
    assert!(s.wrong_cluster >= base.wrong_cluster + 2, "{s:?}");
    assert!(s.unknown_peer > base.unknown_peer, "{s:?}");
    assert!(s.spoofed > base.spoofed, "{s:?}");
    // The node is unaffected: same term, still following CM01a.
    let after = c.members[&CM02A].handle.status();
    assert_eq!(
        (after.term, after.leader, after.epoch),
        (before.term, before.leader, before.epoch)
    );
    assert!(c.members[&CM01A]
        .handle
        .propose_timeout(b"still fine".to_vec(), Duration::from_secs(5))
        .is_ok());
}
