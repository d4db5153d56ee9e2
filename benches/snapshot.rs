//! Snapshots of a large state under load, over the real runtime: a
//! 5-member Denver/Paris/witness cluster in this process (in-memory
//! transport, no latency), default timers and snapshot settings
//! (a snapshot every 1024 entries). The leader (CM01a) holds a 100 MiB
//! state in 1 MiB copy-on-write shards; proposals write 64 bytes into
//! a random shard at about 500 per second, so a snapshot starts about
//! every 2 s and each one copies 100 MiB on the snapshot worker while
//! the node thread keeps serving. The other members run a digest of
//! the same commands (a few bytes of state), so the process's peak RSS
//! is the leader's: compared with its state size.
//!
//! Prints one JSON line: leadership changes during the run (target 0),
//! the longest gap between two envelopes from the leader to any follower
//! (heartbeats are due every 10 ms; a standby takes over after 100 ms),
//! snapshots stored by the leader, the peak RSS (`VmHWM`) of the start
//! (state built, first snapshot stored) and of the run alone (the peak
//! is reset through `/proc/self/clear_refs` when the run begins), and
//! their ratio to the state size (target <= 2). The in-memory log store
//! keeps the latest snapshot in memory (a durable store keeps it on
//! disk), so state plus stored snapshot, 2x, is this process's floor; a
//! snapshot being taken adds its own buffer until it replaces the stored
//! one.
//!
//! `cargo bench --bench snapshot` (100 MiB, 30 s) or `-- --test`
//! (16 MiB, 6 s, as CI runs it so the benchmark cannot rot). Options:
//! `--mib N`, `--secs N` (state size and run length), `--log` (the
//! runtimes' warnings, e.g. slow passes of a node thread with what they
//! handled, and every leadership change, to stderr with the time since
//! the start: what explains a leadership change), `--warn-ms N` (log
//! passes and tick gaps from N ms rather than 50).

#[path = "support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use parking_lot::Mutex;
use slog::{o, Logger};
use support::{reset_peak, vm_hwm_kib, vm_kib, Blob, Digest, SHARD};
use survivable_core::runtime::{self, Handle, RuntimeConfig};
use survivable_core::state_machine::{
    Decoded, RestoreError, SnapshotDecoder, SnapshotSource, StateMachine,
};
use survivable_core::storage::{LogStore, MemStorage};
use survivable_core::topology::{denver_paris, NodeId};
use survivable_core::wire::Envelope;
use survivable_core::{Event, Node, NodeConfig};

const LEADER: u64 = 1;

/// Either state machine, so every member runs one type.
enum Sm {
    Blob(Blob),
    Digest(Digest),
}

impl StateMachine for Sm {
    fn apply(&mut self, index: u64, c: &[u8]) -> Vec<u8> {
        match self {
            Self::Blob(b) => b.apply(index, c),
            Self::Digest(d) => d.apply(index, c),
        }
    }
    fn snapshot(&self) -> Vec<u8> {
        match self {
            Self::Blob(b) => b.snapshot(),
            Self::Digest(d) => d.snapshot(),
        }
    }
    fn restore(&mut self, s: &[u8]) -> Result<(), RestoreError> {
        match self {
            Self::Blob(b) => b.restore(s),
            Self::Digest(d) => d.restore(s),
        }
    }
    fn snapshot_handle(&self) -> Box<dyn SnapshotSource> {
        match self {
            Self::Blob(b) => b.snapshot_handle(),
            Self::Digest(d) => d.snapshot_handle(),
        }
    }
    fn snapshot_decoder(&self) -> Option<SnapshotDecoder> {
        match self {
            Self::Blob(b) => b.snapshot_decoder(),
            Self::Digest(_) => None,
        }
    }
    fn install(&mut self, decoded: Decoded) -> Result<(), RestoreError> {
        match self {
            Self::Blob(b) => b.install(decoded),
            Self::Digest(d) => d.install(decoded),
        }
    }
}

/// What the transport saw: when the leader last sent to each member, and
/// the longest gap between two of its sends to one member.
#[derive(Default)]
struct Gaps {
    measuring: bool,
    last: HashMap<u64, Instant>,
    max: Duration,
}

/// An in-process transport: straight into the receiver's inbound channel.
#[derive(Clone)]
struct Local {
    peers: Arc<Mutex<HashMap<u64, Sender<Envelope>>>>,
    gaps: Arc<Mutex<Gaps>>,
}

impl survivable_core::transport::Transport for Local {
    fn send(&self, env: Envelope) -> bool {
        if env.from == LEADER {
            let now = Instant::now();
            let mut g = self.gaps.lock();
            if let Some(prev) = g.last.insert(env.to, now) {
                if g.measuring {
                    g.max = g.max.max(now - prev);
                }
            }
        }
        let tx = self.peers.lock().get(&env.to).cloned();
        tx.is_some_and(|tx| tx.try_send(env).is_ok())
    }
}

/// Prints warnings (with their key-values) to stderr, timed from `start`.
struct Stderr {
    start: Instant,
}

struct Kv(String);

impl slog::Serializer for Kv {
    fn emit_arguments(&mut self, key: slog::Key, val: &std::fmt::Arguments) -> slog::Result {
        self.0.push_str(&format!(" {key}={val}"));
        Ok(())
    }
}

impl slog::Drain for Stderr {
    type Ok = ();
    type Err = slog::Never;
    fn log(&self, r: &slog::Record<'_>, kv: &slog::OwnedKVList) -> Result<(), slog::Never> {
        use slog::KV as _;
        if r.level().is_at_least(slog::Level::Warning) {
            let mut s = Kv(String::new());
            let _ = r.kv().serialize(r, &mut s);
            let _ = kv.serialize(r, &mut s);
            let t = self.start.elapsed().as_secs_f64();
            eprintln!("{t:8.3} {}{}", r.msg(), s.0);
        }
        Ok(())
    }
}

/// The value after `flag` on the command line, if any.
fn arg(flag: &str) -> Option<usize> {
    let args: Vec<String> = std::env::args().collect();
    let i = args.iter().position(|a| a == flag)?;
    args.get(i + 1)?.parse().ok()
}

/// Leadership changes the members reported since the last call, printed
/// with the time since `start` when given.
fn leadership_changes(
    events: &[crossbeam_channel::Receiver<Event>],
    start: Option<Instant>,
) -> usize {
    let mut n = 0;
    for e in events.iter().flat_map(|e| e.try_iter()) {
        if matches!(e, Event::BecameLeader { .. } | Event::SteppedDown { .. }) {
            if let Some(t) = start {
                eprintln!("{:8.3} {e:?}", t.elapsed().as_secs_f64());
            }
            n += 1;
        }
    }
    n
}

fn main() {
    let quick = std::env::args().any(|a| a == "--test");
    let (mib, secs) = if quick { (16, 6) } else { (100, 30) };
    let (mib, secs) = (
        arg("--mib").unwrap_or(mib),
        arg("--secs").unwrap_or(secs) as u64,
    );
    let log = std::env::args().any(|a| a == "--log");
    let t0 = Instant::now();
    let topology = denver_paris().build().expect("valid topology").shared();
    let tick = topology.timers().tick;
    let transport = Local {
        peers: Arc::new(Mutex::new(HashMap::new())),
        gaps: Arc::new(Mutex::new(Gaps::default())),
    };
    let logger = if log {
        Logger::root(slog::Fuse(Stderr { start: t0 }), o!())
    } else {
        Logger::root(slog::Discard, o!())
    };
    let mut handles: Vec<(u64, Handle)> = Vec::new();
    let mut leader_store = None;
    for &id in topology.members().keys() {
        let (tx, rx) = crossbeam_channel::bounded::<Envelope>(4096);
        transport.peers.lock().insert(id.0, tx);
        let sm = if id.0 == LEADER {
            Sm::Blob(Blob::new(mib))
        } else {
            Sm::Digest(Digest::default())
        };
        let storage = MemStorage::new();
        if id.0 == LEADER {
            leader_store = Some(storage.clone());
        }
        let node = Node::new(NodeConfig::new(id, topology.clone()), storage, sm).expect("starts");
        let mut rt = RuntimeConfig::new(tick);
        if let Some(ms) = arg("--warn-ms") {
            rt.warn_stall = Duration::from_millis(ms as u64);
        }
        let h = runtime::spawn(node, transport.clone(), rx, rt, logger.clone());
        handles.push((id.0, h));
    }
    let leader = &handles.iter().find(|(id, _)| *id == LEADER).unwrap().1;
    let started = Instant::now();
    while leader.status().leader != Some(NodeId(LEADER)) {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "CM01a never led"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let store = leader_store.unwrap();
    let first_snapshot = store.latest_snapshot().get_metadata().index;
    let events: Vec<_> = handles.iter().map(|(_, h)| h.events()).collect();
    for e in &events {
        while e.try_recv().is_ok() {}
    }
    transport.gaps.lock().measuring = true;
    let start_kib = vm_hwm_kib();
    let base_kib = vm_kib("VmRSS:");
    reset_peak();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut pending = Vec::new();
    let (mut proposed, mut failed, mut snapshots, mut last_snap) =
        (0u64, 0u64, 0u64, first_snapshot);
    let mut changes = 0;
    let run = Instant::now();
    while run.elapsed() < Duration::from_secs(secs) {
        for _ in 0..5 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut c = Vec::with_capacity(72);
            c.extend_from_slice(&((x >> 32) as u32 % mib as u32).to_le_bytes());
            c.extend_from_slice(&(x as u32 % (SHARD as u32 - 64)).to_le_bytes());
            c.extend_from_slice(&[x as u8; 64]);
            match leader.propose_async(c) {
                Ok(p) => pending.push(p),
                Err(_) => failed += 1,
            }
            proposed += 1;
        }
        std::thread::sleep(Duration::from_millis(10));
        pending.retain(|p| p.try_result().is_none());
        changes += leadership_changes(&events, log.then_some(t0));
        let now = store.latest_snapshot().get_metadata().index;
        if now != last_snap {
            snapshots += 1;
            last_snap = now;
        }
    }
    let peak_kib = vm_hwm_kib();
    changes += leadership_changes(&events, log.then_some(t0));
    let gap = transport.gaps.lock().max;
    let state = (mib * SHARD) as f64;
    let mib_of = |kib: u64| kib as f64 / 1024.0;
    println!(
        "{{\"bench\":\"snapshot\",\"state_mib\":{mib},\"run_s\":{secs},\"proposed\":{proposed},\"refused\":{failed},\"snapshots_stored\":{snapshots},\"leadership_changes\":{changes},\"leader_send_gap_max_ms\":{:.1},\"start_peak_rss_mib\":{:.1},\"rss_before_run_mib\":{:.1},\"run_peak_rss_mib\":{:.1},\"start_peak_over_state\":{:.2},\"run_peak_over_state\":{:.2}}}",
        gap.as_secs_f64() * 1000.0,
        mib_of(start_kib),
        mib_of(base_kib),
        mib_of(peak_kib),
        start_kib as f64 * 1024.0 / state,
        peak_kib as f64 * 1024.0 / state,
    );
    for (_, h) in &handles {
        h.shutdown_now();
    }
}
