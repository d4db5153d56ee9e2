//! Snapshots off the node thread, in the simulator: a leader whose
//! snapshot takes several election timeouts keeps its heartbeats, keeps
//! committing proposals, and compacts its log once the snapshot is done;
//! a member that receives a snapshot installs it off its thread and
//! applies what committed meanwhile afterwards.
//!
//! A member starting on empty storage reads its state machine's state once,
//! through its snapshot handle, into the snapshot it stores, and does not
//! restore the state machine from it (it holds that state already): a
//! large state built in place is not held three or four times at start.
//!
//! The control test shows the bound can fail: the same leader *stalled*
//! for the same time (what a snapshot on its own thread does) loses
//! leadership to its standby.
#![cfg(feature = "sim")]

use std::collections::BTreeSet;
use std::time::Duration;

use survivable_core::sim::{KvStore, Sim};
use survivable_core::topology::{denver_paris, NodeId};
use survivable_core::Event;

const CM01A: NodeId = NodeId(1);
const CM01B: NodeId = NodeId(2);

/// A snapshot every 100 entries, keeping 20 behind it; each snapshot job
/// takes `took` of virtual time.
fn sim(took: Duration) -> Sim<KvStore> {
    let topology = denver_paris().build().unwrap().shared();
    Sim::builder(topology)
        .seed(7)
        .node_config(|c| {
            c.snapshot_every = 100;
            c.keep_entries = 20;
        })
        .snapshot_time(took, Duration::ZERO)
        .build(|_| KvStore::default())
}

/// The slowest detection of a silent leader at the default timers: the
/// standby's failover (100 ms) or the followers' election timeout (200 ms).
fn detection(sim: &Sim<KvStore>) -> Duration {
    let t = sim.topology().timers();
    t.failover.max(t.election)
}

/// Leadership changes (elections won) after `since_us`.
fn elections_since(sim: &Sim<KvStore>, since_us: u64) -> usize {
    sim.events()
        .iter()
        .filter(|(at, _, e)| *at > since_us && matches!(e, Event::BecameLeader { .. }))
        .count()
}

/// Proposes one command every 5 ms at the leader for `d`; returns the
/// proposal ids and how many of them completed while a snapshot job ran.
fn load(sim: &mut Sim<KvStore>, d: Duration, tag: &str) -> (BTreeSet<String>, usize) {
    let mut keys = BTreeSet::new();
    let mut during = 0;
    let steps = d.as_millis() / 5;
    for i in 0..steps {
        let leader = sim.leader().expect("a leader throughout");
        let key = format!("{tag}{i}");
        if sim
            .propose(leader, format!("set {key} v").into_bytes())
            .is_ok()
        {
            keys.insert(key);
        }
        let before = sim.commits().len();
        sim.run_for(Duration::from_millis(5));
        if sim.snapshot_jobs_running() > 0 {
            during += sim.commits().len() - before;
        }
    }
    (keys, during)
}

#[test]
fn a_slow_snapshot_does_not_stop_heartbeats() {
    // Each snapshot takes 3 detection windows: a leader that stopped
    // serving for it would be replaced (see the control test below).
    let mut sim = sim(Duration::from_millis(600));
    let window = detection(&sim) * 3;
    assert_eq!(window, Duration::from_millis(600));
    sim.run_for(Duration::from_secs(1));
    let leader = sim.leader().expect("elected");
    let term = sim.node(leader).unwrap().term();
    let start = sim.now_us();
    // 4 s: 800 proposals, so several snapshots (one per 100 entries) run
    // back to back, each for 600 ms.
    let (keys, during) = load(&mut sim, Duration::from_secs(4), "k");
    sim.run_for(Duration::from_secs(1));
    assert_eq!(elections_since(&sim, start), 0, "{:#?}", sim.trace());
    assert_eq!(sim.leader(), Some(leader));
    assert_eq!(sim.node(leader).unwrap().term(), term);
    // Proposals kept committing while snapshots ran (each counted once,
    // by its id).
    assert!(during > 100, "{during} proposals done during snapshots");
    let done: BTreeSet<_> = sim
        .commits()
        .iter()
        .filter(|c| c.outcome.result.is_ok())
        .map(|c| c.id)
        .collect();
    assert_eq!(done.len(), keys.len());
    // Compaction happened once snapshots completed: the log starts past
    // the bootstrap entries.
    let status = sim.node(leader).unwrap().status();
    assert!(status.first_index > 100, "{status:?}");
    let kv = sim.node(leader).unwrap().state_machine();
    assert!(keys.iter().all(|k| kv.map.contains_key(k)));
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
}

/// Control: the same leader stalled for one snapshot's time loses its
/// leadership, so the test above would fail if the snapshot ran on the
/// node's thread.
#[test]
fn a_leader_stalled_for_as_long_is_replaced() {
    let mut sim = sim(Duration::from_millis(600));
    sim.run_for(Duration::from_secs(1));
    let leader = sim.leader().expect("elected");
    let start = sim.now_us();
    sim.pause(leader);
    sim.run_for(detection(&sim) * 3);
    sim.resume(leader);
    sim.run_for(Duration::from_secs(1));
    assert!(elections_since(&sim, start) > 0);
    assert_ne!(sim.leader(), Some(leader));
}

#[test]
fn a_received_snapshot_is_installed_off_the_node_thread() {
    // Installing takes 300 ms here: entries committed meanwhile wait and
    // are applied after it.
    let mut sim = sim(Duration::from_millis(300));
    sim.run_for(Duration::from_secs(1));
    let leader = sim.leader().expect("elected");
    let behind = if leader == CM01A { CM01B } else { CM01A };
    sim.crash(behind);
    // 300 entries: past three snapshots, so the leader compacted what the
    // crashed member lacks and must send it a snapshot.
    let (mut keys, _) = load(&mut sim, Duration::from_millis(1500), "a");
    sim.run_for(Duration::from_secs(2));
    assert!(
        sim.node(sim.leader().unwrap())
            .unwrap()
            .status()
            .first_index
            > 100
    );
    let start = sim.now_us();
    sim.restart(behind);
    let (more, _) = load(&mut sim, Duration::from_secs(1), "b");
    keys.extend(more);
    sim.run_for(Duration::from_secs(2));
    let restores = sim
        .trace()
        .iter()
        .filter(|l| l.contains(&format!(" {behind} snapshot job")) && l.contains("restore true"))
        .count();
    assert!(restores >= 1, "no install job at {behind}");
    let node = sim.node(behind).unwrap();
    assert!(!node.installing_snapshot());
    let kv = node.state_machine();
    assert!(keys.iter().all(|k| kv.map.contains_key(k)));
    let leader_kv = sim.node(sim.leader().unwrap()).unwrap().state_machine();
    assert_eq!(kv.map, leader_kv.map);
    assert_eq!(elections_since(&sim, start), 0);
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
}

/// Counts whole copies asked of a state machine: `snapshot()` and
/// `restore()` calls, and handles taken.
#[derive(Clone, Default)]
struct Counted {
    state: Vec<u8>,
    calls: std::sync::Arc<std::sync::Mutex<(usize, usize, usize)>>,
}

impl survivable_core::state_machine::StateMachine for Counted {
    fn apply(&mut self, _: u64, c: &[u8]) -> Vec<u8> {
        self.state.extend_from_slice(c);
        Vec::new()
    }
    fn snapshot(&self) -> Vec<u8> {
        self.calls.lock().unwrap().0 += 1;
        self.state.clone()
    }
    fn restore(&mut self, s: &[u8]) -> Result<(), survivable_core::state_machine::RestoreError> {
        self.calls.lock().unwrap().1 += 1;
        self.state = s.to_vec();
        Ok(())
    }
    fn snapshot_handle(&self) -> Box<dyn survivable_core::state_machine::SnapshotSource> {
        self.calls.lock().unwrap().2 += 1;
        Box::new(survivable_core::state_machine::BytesSource::new(
            self.state.clone(),
        ))
    }
}

#[test]
fn a_first_start_stores_the_state_through_its_handle_and_does_not_restore_it() {
    use survivable_core::storage::MemStorage;
    use survivable_core::{Node, NodeConfig};
    let topology = denver_paris().build().unwrap().shared();
    let storage = MemStorage::new();
    let sm = Counted {
        state: b"built in place".to_vec(),
        ..Counted::default()
    };
    let calls = sm.calls.clone();
    let node = Node::new(
        NodeConfig::new(CM01A, topology.clone()),
        storage.clone(),
        sm,
    )
    .unwrap();
    assert_eq!(node.state_machine().state, b"built in place");
    // One handle read; no `snapshot()` copy; no restore of what it holds.
    assert_eq!(*calls.lock().unwrap(), (0, 0, 1));
    drop(node);
    // A restart restores the stored state, once.
    let calls = std::sync::Arc::default();
    let sm = Counted {
        state: Vec::new(),
        calls: std::sync::Arc::clone(&calls),
    };
    let node = Node::new(NodeConfig::new(CM01A, topology), storage, sm).unwrap();
    assert_eq!(node.state_machine().state, b"built in place");
    assert_eq!(*calls.lock().unwrap(), (0, 1, 0));
}
