//! In-memory commit throughput: the runtime's own cost per commit, without
//! disk or sockets. Three members (a duplicated pair and a tie-breaker, as
//! `node bench` runs them) in this process, each a [`runtime::spawn`]ed
//! node on [`MemStorage`], envelopes handed straight to the receiver's
//! inbound channel. Proposers at the leader propose through its
//! [`Handle`] for a few seconds each; two shapes:
//!
//! - `closed`: 1, 16 and 64 threads, each proposing and waiting, back to
//!   back (what `node bench` does with fsync and TCP);
//! - `pipelined`: the same numbers of threads, each keeping `--depth`
//!   proposals (default 64) in flight with `propose_async`, so the node
//!   thread takes many per pass (one raft append and one replication round
//!   for all of them) and a proposer is not woken once per commit.
//!
//! Prints one JSON line per shape and number of proposers: commits,
//! commits per second, p50 and p99 latency (proposal to result, ms).
//! Target (issue 15): at least 200,000 commits/s. The state machine is a
//! digest of the commands (the commit path, not a store, is measured); a
//! snapshot is taken every 1024 entries as by default.
//!
//! `cargo bench --bench commit_throughput` (5 s per line) or `-- --test`
//! (1 s per line, a smoke run). Options:
//! `--secs N`, `--depth N`, `--snapshot-every N`, `--no-early-send`
//! (the leader's appends wait for its own write, as before
//! [`RuntimeConfig::early_send`]).

#[path = "support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use parking_lot::RwLock;
use slog::{o, Logger};
use support::Digest;
use survivable_core::node::NodeRole;
use survivable_core::runtime::{self, Handle, Pending, RuntimeConfig};
use survivable_core::storage::MemStorage;
use survivable_core::topology::{Appliance::Virtual, Core, Site, Topology, Witness};
use survivable_core::wire::Envelope;
use survivable_core::{Node, NodeConfig};

/// An in-process transport: straight into the receiver's inbound channel.
#[derive(Clone, Default)]
struct Local {
    peers: Arc<RwLock<HashMap<u64, Sender<Envelope>>>>,
}

impl survivable_core::transport::Transport for Local {
    fn send(&self, env: Envelope) -> bool {
        let tx = self.peers.read().get(&env.to).cloned();
        tx.is_some_and(|tx| tx.try_send(env).is_ok())
    }
}

fn arg(flag: &str) -> Option<u64> {
    let args: Vec<String> = std::env::args().collect();
    let i = args.iter().position(|a| a == flag)?;
    args.get(i + 1)?.parse().ok()
}

/// The three members, and the leader's handle once one leads.
fn start(snapshot_every: u64, early_send: bool) -> (Vec<Handle>, Handle) {
    let topology = Topology::builder(7)
        .site(Site::main("denver"))
        .core(
            Core::new("cm01", "denver")
                .member(1, "CM01a", "esxi-1", Virtual)
                .member(2, "CM01b", "esxi-3", Virtual),
        )
        .witness(Witness::new(3, "TB", "denver", "esxi-5"))
        .build()
        .expect("valid topology")
        .shared();
    let transport = Local::default();
    let logger = Logger::root(slog::Discard, o!());
    let mut handles = Vec::new();
    for &id in topology.members().keys() {
        // Envelopes, not `Inbound`s: there are no received bytes to budget.
        let (tx, rx) = crossbeam_channel::bounded::<Envelope>(16 << 10);
        transport.peers.write().insert(id.0, tx);
        let mut cfg = NodeConfig::new(id, topology.clone());
        cfg.snapshot_every = snapshot_every;
        let node = Node::new(cfg, MemStorage::new(), Digest::default()).expect("starts");
        let mut rt = RuntimeConfig::new(topology.timers().tick);
        rt.early_send = early_send;
        handles.push(runtime::spawn(
            node,
            transport.clone(),
            rx,
            rt,
            logger.clone(),
        ));
    }
    let started = Instant::now();
    loop {
        if let Some(h) = handles.iter().find(|h| h.status().role == NodeRole::Leader) {
            let leader = h.clone();
            return (handles, leader);
        }
        assert!(started.elapsed() < Duration::from_secs(30), "no leader");
        thread::sleep(Duration::from_millis(10));
    }
}

/// One proposer: `depth` proposals in flight (1: propose and wait) until
/// `stop`; the latency of each, in microseconds.
fn proposer(h: &Handle, w: usize, depth: usize, stop: &AtomicBool) -> Vec<u64> {
    let mut lat = Vec::new();
    let mut flight: std::collections::VecDeque<(Instant, Pending)> = Default::default();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        while flight.len() < depth {
            let cmd = format!("set w{w}-{} {n}", n % 1000).into_bytes();
            n += 1;
            match h.propose_async(cmd) {
                Ok(p) => flight.push_back((Instant::now(), p)),
                Err(_) => return lat,
            }
        }
        // The oldest first: results come back in proposal order.
        let Some((t, p)) = flight.pop_front() else {
            break;
        };
        if p.wait_timeout(Duration::from_secs(5)).is_ok() {
            lat.push(t.elapsed().as_micros() as u64);
        }
    }
    for (t, p) in flight {
        if p.wait_timeout(Duration::from_secs(5)).is_ok() {
            lat.push(t.elapsed().as_micros() as u64);
        }
    }
    lat
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)] as f64 / 1000.0
}

/// `proposers` threads at `leader` for `secs`: commits, per second, p50
/// and p99 (ms).
fn load(leader: &Handle, proposers: usize, depth: usize, secs: f64) -> (usize, f64, f64, f64) {
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let workers: Vec<_> = (0..proposers)
        .map(|w| {
            let (h, stop) = (leader.clone(), stop.clone());
            thread::spawn(move || proposer(&h, w, depth, &stop))
        })
        .collect();
    thread::sleep(Duration::from_secs_f64(secs));
    stop.store(true, Ordering::Relaxed);
    let mut lat: Vec<u64> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap_or_default())
        .collect();
    let elapsed = started.elapsed().as_secs_f64();
    lat.sort_unstable();
    let rate = lat.len() as f64 / elapsed;
    (
        lat.len(),
        rate,
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
    )
}

fn main() {
    let quick = std::env::args().any(|a| a == "--test");
    let secs = arg("--secs").map_or(if quick { 1.0 } else { 5.0 }, |s| s as f64);
    let depth = arg("--depth").unwrap_or(64).max(1) as usize;
    let every = arg("--snapshot-every").unwrap_or(1024).max(1);
    let early = !std::env::args().any(|a| a == "--no-early-send");
    let (handles, leader) = start(every, early);
    for (shape, d) in [("closed", 1), ("pipelined", depth)] {
        for proposers in [1usize, 16, 64] {
            let (commits, rate, p50, p99) = load(&leader, proposers, d, secs);
            println!(
                "{{\"bench\":\"commit_throughput\",\"storage\":\"memory\",\"transport\":\"in-process\",\"members\":3,\"shape\":\"{shape}\",\"depth\":{d},\"proposers\":{proposers},\"commits\":{commits},\"commits_per_s\":{rate:.0},\"p50_ms\":{p50:.3},\"p99_ms\":{p99:.3},\"snapshot_every\":{every},\"early_send\":{early}}}"
            );
        }
    }
    for h in &handles {
        h.shutdown_now();
    }
}
