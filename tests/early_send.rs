//! What may leave before a storage write, and what may not
//! ([`Node::set_early_sink`]): three members driven by hand (sans-IO), each
//! on a store that records every write in one shared log, next to every
//! raft message each member hands out (through its early sink or
//! `poll_transmit`). Then, for every message in that order: an append
//! response or a vote is only ever handed out after the write it
//! acknowledges; a leader's outcome only after its own write of the entry;
//! and (so the test cannot pass by never sending early) the leader's
//! appends do leave before its own write.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use protobuf::Message as _;
use raft::eraftpb::{ConfState, Entry, HardState, Message, MessageType, Snapshot};
use raft::{GetEntriesContext, RaftState, Storage as _};
use survivable_core::node::{Node, NodeConfig};
use survivable_core::storage::{LogStore, LogWrite, MemStorage, StoreError};
use survivable_core::topology::{Appliance::Virtual, Core, NodeId, Site, Topology, Witness};
use survivable_core::wire::Envelope;
use survivable_core::{RestoreError, StateMachine};

/// What happened, in the order it happened, across the three members.
#[derive(Debug, Clone)]
enum Happened {
    /// Member `node` finished a write: its log ends at `last`, its hard
    /// state is `hs`, and the write was synced (or did not ask to be).
    Wrote { node: u64, last: u64, hs: HardState },
    /// Member `node` handed out `msg`, `early` through its sink.
    Sent {
        node: u64,
        msg: Message,
        early: bool,
    },
    /// The leader `node` reported the proposal at `index` applied.
    Outcome { node: u64, index: u64 },
}

type Journal = Arc<Mutex<Vec<Happened>>>;

/// A [`MemStorage`] that records each write in the journal once it is done.
#[derive(Clone)]
struct Recording {
    inner: MemStorage,
    node: u64,
    journal: Journal,
}

impl raft::Storage for Recording {
    fn initial_state(&self) -> raft::Result<RaftState> {
        self.inner.initial_state()
    }
    fn entries(
        &self,
        low: u64,
        high: u64,
        max: impl Into<Option<u64>>,
        ctx: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        self.inner.entries(low, high, max, ctx)
    }
    fn term(&self, idx: u64) -> raft::Result<u64> {
        self.inner.term(idx)
    }
    fn first_index(&self) -> raft::Result<u64> {
        self.inner.first_index()
    }
    fn last_index(&self) -> raft::Result<u64> {
        self.inner.last_index()
    }
    fn snapshot(&self, request_index: u64, to: u64) -> raft::Result<Snapshot> {
        self.inner.snapshot(request_index, to)
    }
}

impl LogStore for Recording {
    fn is_initialized(&self) -> bool {
        self.inner.is_initialized()
    }
    fn latest_snapshot(&self) -> Snapshot {
        self.inner.latest_snapshot()
    }
    fn next_boot(&self) -> Result<u64, StoreError> {
        self.inner.next_boot()
    }
    fn persist(&self, write: LogWrite<'_>) -> Result<(), StoreError> {
        self.inner.persist(write)?;
        let last = self.inner.last_index().unwrap_or(0);
        let hs = self.inner.initial_state().map(|s| s.hard_state);
        let hs = hs.unwrap_or_default();
        let node = self.node;
        self.journal
            .lock()
            .unwrap()
            .push(Happened::Wrote { node, last, hs });
        Ok(())
    }
    fn set_commit(&self, commit: u64) -> Result<(), StoreError> {
        self.inner.set_commit(commit)
    }
    fn create_snapshot(
        &self,
        index: u64,
        conf_state: ConfState,
        data: Vec<u8>,
        keep: u64,
    ) -> Result<(), StoreError> {
        self.inner.create_snapshot(index, conf_state, data, keep)
    }
    fn take_snapshot_request(&self) -> bool {
        self.inner.take_snapshot_request()
    }
    fn reset(&self, marker: &Snapshot) -> Result<(), StoreError> {
        self.inner.reset(marker)
    }
}

/// A state machine that keeps nothing.
struct Nothing;

impl StateMachine for Nothing {
    fn apply(&mut self, _: u64, _: &[u8]) -> Vec<u8> {
        Vec::new()
    }
    fn snapshot(&self) -> Vec<u8> {
        Vec::new()
    }
    fn restore(&mut self, _: &[u8]) -> Result<(), RestoreError> {
        Ok(())
    }
}

fn record(journal: &Journal, node: u64, env: &Envelope, early: bool) {
    if env.raft.is_empty() {
        return; // a control message
    }
    let msg = Message::parse_from_bytes(&env.raft).expect("a raft message");
    journal
        .lock()
        .unwrap()
        .push(Happened::Sent { node, msg, early });
}

/// The duplicated pair and a tie-breaker, each with its own journaled
/// store; the sinks queue what they take on the shared wire.
struct Trio {
    nodes: BTreeMap<u64, Node<Nothing, Recording>>,
    wire: Arc<Mutex<VecDeque<Envelope>>>,
    journal: Journal,
    now: u64,
}

fn trio(early: bool) -> Trio {
    let topology = Topology::builder(7)
        .site(Site::main("denver"))
        .core(
            Core::new("cm01", "denver")
                .member(1, "CM01a", "esxi-1", Virtual)
                .member(2, "CM01b", "esxi-3", Virtual),
        )
        .witness(Witness::new(3, "TB", "denver", "esxi-5"))
        .build()
        .unwrap()
        .shared();
    let journal = Journal::default();
    let wire = Arc::new(Mutex::new(VecDeque::new()));
    let mut nodes = BTreeMap::new();
    for id in 1..=3 {
        let store = Recording {
            inner: MemStorage::new(),
            node: id,
            journal: journal.clone(),
        };
        let cfg = NodeConfig::new(NodeId(id), topology.clone());
        let mut node = Node::new(cfg, store, Nothing).unwrap();
        if early {
            let (wire, journal) = (wire.clone(), journal.clone());
            node.set_early_sink(Box::new(move |env: Envelope| {
                record(&journal, id, &env, true);
                wire.lock().unwrap().push_back(env);
                None
            }));
        }
        nodes.insert(id, node);
    }
    Trio {
        nodes,
        wire,
        journal,
        now: 0,
    }
}

impl Trio {
    /// Polls every member's outputs onto the wire, then delivers the wire
    /// until it is empty.
    fn settle(&mut self) {
        loop {
            for (&id, node) in &mut self.nodes {
                while let Some(env) = node.poll_transmit() {
                    record(&self.journal, id, &env, false);
                    self.wire.lock().unwrap().push_back(env);
                }
                while let Some(o) = node.poll_outcome() {
                    let index = o.result.expect("applied").index;
                    let h = Happened::Outcome { node: id, index };
                    self.journal.lock().unwrap().push(h);
                }
                while node.poll_event().is_some() {}
            }
            let Some(env) = self.wire.lock().unwrap().pop_front() else {
                return;
            };
            if let Some(node) = self.nodes.get_mut(&env.to) {
                let _ = node.step(env);
            }
        }
    }

    fn tick(&mut self) {
        self.now += 10;
        for node in self.nodes.values_mut() {
            node.tick(self.now);
        }
        self.settle();
    }

    fn leader(&self) -> Option<u64> {
        (self.nodes.iter())
            .find(|(_, n)| n.is_leader())
            .map(|(&id, _)| id)
    }

    /// Elects a leader and commits `n` proposals in batches of 8.
    fn run(&mut self, n: usize) -> u64 {
        for _ in 0..1000 {
            if self.leader().is_some() {
                break;
            }
            self.tick();
        }
        let leader = self.leader().expect("a leader");
        for i in 0..n {
            let cmd = format!("set k{i} {i}").into_bytes();
            self.nodes.get_mut(&leader).unwrap().propose(cmd).unwrap();
            if i % 8 == 7 {
                self.settle();
            }
        }
        for _ in 0..20 {
            self.tick();
        }
        leader
    }
}

/// Each member's durable state as the journal has it up to a point.
#[derive(Default, Clone, Copy)]
struct Durable {
    last: u64,
    term: u64,
    vote: u64,
}

/// Replays the journal: every acknowledgement and every outcome checked
/// against what its member had written by then. Returns the number of
/// appends the leader handed out before writing the entries they carry.
fn check(journal: &[Happened], leader: u64) -> usize {
    let mut durable: BTreeMap<u64, Durable> = BTreeMap::new();
    let mut ahead = 0;
    for (at, h) in journal.iter().enumerate() {
        match h {
            Happened::Wrote { node, last, hs } => {
                let d = durable.entry(*node).or_default();
                (d.last, d.term, d.vote) = (*last, hs.term, hs.vote);
            }
            Happened::Sent { node, msg, early } => {
                let d = durable.get(node).copied().unwrap_or_default();
                match msg.get_msg_type() {
                    MessageType::MsgAppendResponse if !msg.reject => {
                        assert!(
                            msg.index <= d.last,
                            "#{at}: member {node} acknowledged index {} with {} written (early: {early})",
                            msg.index,
                            d.last
                        );
                    }
                    MessageType::MsgRequestVoteResponse if !msg.reject => {
                        assert!(
                            d.term >= msg.term && d.vote == msg.to,
                            "#{at}: member {node} granted {} its vote in term {} before writing it",
                            msg.to,
                            msg.term
                        );
                    }
                    MessageType::MsgAppend if *node == leader => {
                        let top = msg.entries.last().map_or(0, |e| e.index);
                        if *early && top > d.last {
                            ahead += 1;
                        }
                    }
                    _ => {}
                }
            }
            Happened::Outcome { node, index } => {
                let d = durable.get(node).copied().unwrap_or_default();
                assert!(
                    *index <= d.last,
                    "#{at}: leader {node} reported {index} applied with {} written",
                    d.last
                );
            }
        }
    }
    ahead
}

#[test]
fn acknowledgements_follow_their_writes_and_appends_overlap_them() {
    let mut t = trio(true);
    let leader = t.run(400);
    let journal = t.journal.lock().unwrap().clone();
    let outcomes = (journal.iter())
        .filter(|h| matches!(h, Happened::Outcome { .. }))
        .count();
    assert_eq!(outcomes, 400, "every proposal applied");
    let ahead = check(&journal, leader);
    assert!(ahead > 0, "no append left before the leader's own write");
}

#[test]
fn without_a_sink_nothing_leaves_before_its_write() {
    let mut t = trio(false);
    let leader = t.run(100);
    let journal = t.journal.lock().unwrap().clone();
    assert_eq!(check(&journal, leader), 0);
    let early = journal
        .iter()
        .any(|h| matches!(h, Happened::Sent { early: true, .. }));
    assert!(!early);
}
