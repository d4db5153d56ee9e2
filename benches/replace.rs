//! Replacing a dead member that has a large log to catch up on, over the
//! real runtime: the Denver/Paris cluster as five members in this process,
//! each with its own TCP transport on loopback (plaintext), durable
//! storage (raft-engine) in a temporary directory and node thread, default
//! timers.
//!
//! The load phase proposes `--log-mib` MiB of 64 KiB commands (16
//! proposer threads, each at whoever leads) into a state machine holding
//! `--state-mib` MiB (1 MiB copy-on-write shards; each command overwrites
//! 64 KiB of one shard). `snapshot_every` is set above the load's entry
//! count, so no member snapshots during the load: the whole log stays on
//! every member's disk (the JSON reports what the leader retains).
//!
//! A new learner is sent a snapshot taken after it was added (raft refuses
//! one whose configuration does not name it, see
//! `storage::serves_snapshot`), so the replacement catches up from a fresh
//! snapshot of the whole state plus the log written since it, never from
//! the retained log: one proposer keeps writing during the replacement so
//! that tail is real, and the JSON reports the snapshot's index and the
//! entries the replacement received as log.
//!
//! Then the Denver standby (whichever of CM01a/CM01b does not lead) is
//! killed, an empty replacement (id 9, its own data directory) starts as a
//! joining member, and the replacement is requested at the leader.
//! Every member reaches the replacement through its own counting TCP relay,
//! so the bytes each one sent it are known.
//!
//! Prints one JSON line: the load's duration and leadership changes;
//! request -> learner and request -> voter (ms, as the leader reports
//! `MemberAdded` and `MemberPromoted`); bytes the leader sent to the
//! replacement (and all members together); the replacement's data
//! directory size; leadership changes during the replacement; the
//! process's peak RSS (`VmHWM`: six members, six states).
//!
//! `cargo bench --bench replace` (1024 MiB log, 128 MiB state) or
//! `cargo bench --bench replace -- --log-mib 64 --state-mib 16` (smoke,
//! under a minute).

#[path = "support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use slog::{o, Logger};
use support::{vm_hwm_kib, Blob, SHARD};
use survivable_core::node::NodeRole;
use survivable_core::runtime::{start_member, Handle, Member, MemberConfig};
use survivable_core::topology::{self, denver_paris, MemberSpec, NodeId, Topology};
use survivable_core::transport::{free_loopback_addr, TransportSecurity};
use survivable_core::Event;

const COMMAND: usize = 64 << 10;
const PROPOSERS: usize = 16;
const CM01A: NodeId = NodeId(1);
const CM01B: NodeId = NodeId(2);
const NEW: NodeId = NodeId(9);

/// A TCP relay in front of the replacement's listener, for one member:
/// counts the bytes that member sent to the replacement.
fn relay(to: SocketAddr, sent: Arc<AtomicU64>) -> SocketAddr {
    let addr = free_loopback_addr().expect("a free loopback port");
    let listener = TcpListener::bind(addr).expect("relay binds");
    std::thread::spawn(move || {
        for inbound in listener.incoming().flatten() {
            let Ok(outbound) = TcpStream::connect(to) else {
                continue; // not started yet: the member dials again
            };
            let (back_in, back_out) = (inbound.try_clone(), outbound.try_clone());
            let (Ok(back_in), Ok(back_out)) = (back_in, back_out) else {
                continue;
            };
            let sent = sent.clone();
            std::thread::spawn(move || pump(inbound, outbound, Some(&sent)));
            std::thread::spawn(move || pump(back_out, back_in, None));
        }
    });
    addr
}

/// Copies `from` to `to` until either closes, counting into `count`.
fn pump(mut from: TcpStream, mut to: TcpStream, count: Option<&AtomicU64>) {
    let mut buf = vec![0u8; 256 << 10];
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 || to.write_all(&buf[..n]).is_err() {
            break;
        }
        if let Some(c) = count {
            c.fetch_add(n as u64, Ordering::Relaxed);
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
    let _ = from.shutdown(std::net::Shutdown::Both);
}

fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// `--log-mib N --state-mib M`; anything else is refused with the usage.
fn args() -> Result<(usize, usize), String> {
    let (mut log, mut state) = (1024, 128);
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let slot = match a.as_str() {
            "--log-mib" => &mut log,
            "--state-mib" => &mut state,
            "--bench" => continue, // added by `cargo bench`
            other => return Err(format!("unknown argument {other:?}")),
        };
        let v = it.next().ok_or(format!("{a} needs a number"))?;
        *slot = v
            .parse()
            .map_err(|_| format!("{a}: {v:?} is not a number"))?;
    }
    if log == 0 || state == 0 {
        return Err("--log-mib and --state-mib must be at least 1".into());
    }
    Ok((log, state))
}

/// The cluster: topology, addresses, the replacement's relays, members.
struct Cluster {
    topology: Arc<Topology>,
    addrs: BTreeMap<NodeId, SocketAddr>,
    /// Bytes each member sent to the replacement, through its relay.
    sent: BTreeMap<NodeId, Arc<AtomicU64>>,
    relays: BTreeMap<NodeId, SocketAddr>,
    members: BTreeMap<NodeId, Member>,
    dir: tempfile::TempDir,
    state_mib: usize,
    snapshot_every: u64,
    logger: Logger,
}

impl Cluster {
    fn config(&self, id: NodeId) -> MemberConfig {
        let mut peers: BTreeMap<NodeId, SocketAddr> = self
            .addrs
            .iter()
            .filter(|(&p, _)| p != id && p != NEW)
            .map(|(&p, &a)| (p, a))
            .collect();
        if id != NEW {
            peers.insert(NEW, self.relays[&id]);
        }
        let mut cfg = MemberConfig::new(
            self.topology.clone(),
            id,
            self.addrs[&id],
            peers,
            self.dir.path().join(format!("n{}", id.0)),
            TransportSecurity::InsecurePlaintextLoopbackOnly,
        );
        cfg.replacements.insert(NEW);
        cfg.node.snapshot_every = self.snapshot_every;
        cfg
    }

    fn start(&mut self, cfg: MemberConfig) {
        let id = cfg.id;
        let m = start_member(cfg, Blob::new(self.state_mib), &self.logger).expect("starts");
        self.members.insert(id, m);
    }

    fn leader(&self) -> Option<(NodeId, Handle)> {
        self.members
            .iter()
            .find(|(_, m)| m.handle.status().role == NodeRole::Leader)
            .map(|(&id, m)| (id, m.handle.clone()))
    }

    fn wait_leader(&self) -> (NodeId, Handle) {
        let start = Instant::now();
        loop {
            if let Some(l) = self.leader() {
                return l;
            }
            assert!(start.elapsed() < Duration::from_secs(60), "no leader");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn events(&self) -> Vec<Receiver<Event>> {
        self.members.values().map(|m| m.handle.events()).collect()
    }
}

/// Leadership changes seen on the receivers since they were taken.
fn changes(events: &[Receiver<Event>]) -> usize {
    events
        .iter()
        .map(|e| {
            e.try_iter()
                .filter(|e| matches!(e, Event::BecameLeader { .. }))
                .count()
        })
        .sum()
}

/// Proposes up to `entries` commands of 64 KiB from `threads` proposers,
/// each at whoever leads (retried on refusal), until `stop` is set; returns
/// how many were proposed.
fn load(c: &Cluster, entries: u64, threads: usize, stop: &AtomicBool) -> u64 {
    let next = AtomicU64::new(0);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let mut leader = c.wait_leader().1;
                while !stop.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= entries {
                        break;
                    }
                    let cmd = command(i, c.state_mib as u64);
                    while leader
                        .propose_timeout(cmd.clone(), Duration::from_secs(10))
                        .is_err()
                    {
                        leader = c.wait_leader().1;
                    }
                }
            });
        }
    });
    next.load(Ordering::Relaxed).min(entries)
}

/// Command `i`: 64 KiB into shard `i mod shards`, at the next offset.
fn command(i: u64, shards: u64) -> Vec<u8> {
    let mut cmd = Vec::with_capacity(COMMAND);
    cmd.extend_from_slice(&((i % shards) as u32).to_le_bytes());
    let off = (i / shards * COMMAND as u64) % SHARD as u64;
    cmd.extend_from_slice(&(off as u32).to_le_bytes());
    cmd.resize(COMMAND, i as u8);
    cmd
}

/// Waits for `MemberAdded` and `MemberPromoted` of the replacement on
/// `events` (the leader's); returns the time of each since `t0`.
fn watch(events: &Receiver<Event>, t0: Instant, limit: Duration) -> (Option<f64>, Option<f64>) {
    let (mut learner, mut voter) = (None, None);
    while voter.is_none() && t0.elapsed() < limit {
        let Ok(e) = events.recv_timeout(Duration::from_millis(100)) else {
            continue;
        };
        let ms = t0.elapsed().as_secs_f64() * 1000.0;
        match e {
            Event::MemberAdded { id } if id == NEW => learner = Some(ms),
            Event::MemberPromoted { id } if id == NEW => voter = Some(ms),
            _ => {}
        }
    }
    (learner, voter)
}

fn json_ms(v: Option<f64>) -> String {
    v.map_or("null".into(), |ms| format!("{ms:.0}"))
}

fn main() {
    let (log_mib, state_mib) = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}\nusage: replace [--log-mib N (1024)] [--state-mib N (128)]");
            std::process::exit(2);
        }
    };
    let entries = (log_mib * (1 << 20) / COMMAND) as u64;
    let topology = denver_paris().build().expect("valid topology").shared();
    let mut ids: Vec<NodeId> = topology.members().keys().copied().collect();
    ids.push(NEW);
    let addrs: BTreeMap<NodeId, SocketAddr> = ids
        .iter()
        .map(|&id| (id, free_loopback_addr().expect("a free loopback port")))
        .collect();
    let sent: BTreeMap<NodeId, Arc<AtomicU64>> =
        ids.iter().map(|&id| (id, Arc::default())).collect();
    let relays = ids[..ids.len() - 1]
        .iter()
        .map(|&id| (id, relay(addrs[&NEW], sent[&id].clone())))
        .collect();
    let dir = tempfile::Builder::new()
        .prefix("sc-replace-bench-")
        .tempdir();
    let mut c = Cluster {
        topology,
        addrs,
        sent,
        relays,
        members: BTreeMap::new(),
        dir: dir.expect("a temporary directory"),
        state_mib,
        snapshot_every: 2 * entries + 1024,
        logger: Logger::root(slog::Discard, o!()),
    };
    for &id in &ids[..ids.len() - 1] {
        let cfg = c.config(id);
        c.start(cfg);
    }
    c.wait_leader();
    run(&mut c, log_mib, entries);
}

/// What the replacement phase measured.
struct Replaced {
    learner: Option<f64>,
    voter: Option<f64>,
    changes: usize,
    /// Entries proposed meanwhile (the log shipped after the snapshot).
    during: u64,
}

/// Starts the replacement for `dead` empty, requests it at `leader` and
/// waits until it is a voter, while one proposer keeps writing.
fn replace(c: &mut Cluster, leader: &Handle, dead: NodeId, partner: NodeId) -> Replaced {
    let old = c.topology.member(dead).expect("in the topology").clone();
    let partner = c.topology.member(partner).expect("in the topology");
    let spec = MemberSpec {
        id: NEW,
        name: "CM01c".into(),
        host: "esxi-new".into(),
        appliance: partner.spec.appliance,
    };
    let mut cfg = c.config(NEW);
    cfg.joining = Some(topology::Member {
        spec: spec.clone(),
        site: old.site.clone(),
        role: old.role.clone(),
    });
    c.start(cfg);
    let events = c.events();
    drain(&events);
    let leader_events = leader.events();
    while leader_events.try_recv().is_ok() {}
    let stop = AtomicBool::new(false);
    let c = &*c;
    std::thread::scope(|s| {
        let during = s.spawn(|| load(c, u64::MAX, 1, &stop));
        let t0 = Instant::now();
        leader
            .replace_member(dead, spec)
            .expect("replacement accepted");
        let (learner, voter) = watch(&leader_events, t0, Duration::from_secs(600));
        stop.store(true, Ordering::Relaxed);
        let during = during.join().expect("the proposer ran");
        Replaced {
            learner,
            voter,
            changes: changes(&events),
            during,
        }
    })
}

/// Discards what the receivers hold.
fn drain(events: &[Receiver<Event>]) {
    for e in events {
        while e.try_recv().is_ok() {}
    }
}

/// The load, the kill, the replacement; prints the JSON line.
fn run(c: &mut Cluster, log_mib: usize, entries: u64) {
    let events = c.events();
    drain(&events);
    let t = Instant::now();
    load(c, entries, PROPOSERS, &AtomicBool::new(false));
    let load_s = t.elapsed().as_secs_f64();
    let load_changes = changes(&events);
    let (leader, handle) = c.wait_leader();
    let st = handle.status();
    let (retained_entries, retained_bytes) = (st.retained.entries, st.retained.bytes);
    let dead = if leader == CM01A { CM01B } else { CM01A };
    c.members
        .remove(&dead)
        .expect("running")
        .handle
        .shutdown_now();
    let r = replace(c, &handle, dead, leader);
    // The entries written while it caught up reach it as log after the
    // snapshot: wait for them before reading its log's bounds.
    let commit = handle.status().commit;
    let t = Instant::now();
    while c.members[&NEW].handle.status().applied < commit && t.elapsed().as_secs() < 60 {
        std::thread::sleep(Duration::from_millis(10));
    }
    let new = c.members[&NEW].handle.status();
    let data = dir_bytes(&c.dir.path().join(format!("n{}", NEW.0)));
    let by_leader = c.sent[&leader].load(Ordering::Relaxed);
    let by_all: u64 = c.sent.values().map(|s| s.load(Ordering::Relaxed)).sum();
    let mib = |b: u64| b as f64 / f64::from(1 << 20);
    println!(
        "{{\"bench\":\"replace\",\"members\":5,\"transport\":\"tcp-loopback-plaintext\",\"storage\":\"raft-engine\",\"log_mib\":{log_mib},\"state_mib\":{},\"command_kib\":{},\"entries\":{entries},\"snapshot_every\":{},\"leader_retained_entries\":{retained_entries},\"leader_retained_mib\":{:.1},\"load_s\":{load_s:.1},\"load_leadership_changes\":{load_changes},\"killed\":\"{}\",\"catch_up\":\"fresh snapshot + log written since\",\"replacement_snapshot_index\":{},\"replacement_log_entries\":{},\"entries_during_replacement\":{},\"request_to_learner_ms\":{},\"request_to_voter_ms\":{},\"leader_sent_mib\":{:.1},\"all_sent_mib\":{:.1},\"replacement_data_dir_mib\":{:.1},\"replace_leadership_changes\":{},\"peak_rss_mib\":{:.1}}}",
        c.state_mib,
        COMMAND >> 10,
        c.snapshot_every,
        mib(retained_bytes),
        c.topology.member(dead).expect("in the topology").spec.name,
        new.first_index.saturating_sub(1),
        (new.last_index + 1).saturating_sub(new.first_index),
        r.during,
        json_ms(r.learner),
        json_ms(r.voter),
        mib(by_leader),
        mib(by_all),
        mib(data),
        r.changes,
        vm_hwm_kib() as f64 / 1024.0,
    );
    for m in c.members.values() {
        m.handle.shutdown_now();
    }
}
