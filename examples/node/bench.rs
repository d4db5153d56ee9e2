//! `node bench`: failover and throughput on loopback with durable storage.
//!
//! - failover: the Denver/Paris cluster as five processes with 10 ms ticks;
//!   the leader's process is killed with SIGKILL, and the time to the first
//!   commit under the new leader is measured (proposals every 2 ms); the
//!   killed member is restarted and caught up before the next trial.
//! - throughput: three members (a duplicated pair and a tie-breaker) in this
//!   process, each with its own data directory (fsync on) and TCP; 1, 16 and
//!   64 proposers each propose and wait, back to back, for a few seconds.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use survivable_core::node::NodeRole;
use survivable_core::runtime::{start_member, Member, MemberConfig};
use survivable_core::sim::KvStore;
use survivable_core::topology::{Appliance::Virtual, Core, NodeId, Site, Topology, Witness};

use crate::launcher::Cluster;

const TIMERS: &str = "tick_ms = 10\nheartbeat_ms = 10\nfailover_ms = 30\nelection_ms = 200";

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn failover(trials: usize, json: bool) -> Result<(), String> {
    let mut c = Cluster::start(true, TIMERS)?;
    c.every = Duration::from_millis(2);
    c.run_for(Duration::from_secs(2));
    let mut times = Vec::new();
    for trial in 0..trials {
        let Some(leader) = c.leader() else {
            return Err(format!("trial {trial}: no leader"));
        };
        let (t0, term) = (c.now_ms(), c.term());
        c.kill9(leader);
        c.run_for(Duration::from_millis(500));
        let took = c
            .first_ack_after(t0, term)
            .ok_or(format!("trial {trial}: no commit after killing {leader}"))?;
        times.push(took);
        c.spawn(leader)?;
        // Steady again: the restarted member has caught up.
        let mut steady = false;
        for _ in 0..50 {
            c.run_for(Duration::from_millis(100));
            let head = c.leader().and_then(|l| c.applied(l)).unwrap_or(u64::MAX);
            if c.applied(leader).is_some_and(|a| a + 10 >= head) {
                steady = true;
                break;
            }
        }
        if !steady {
            return Err(format!("trial {trial}: member {leader} did not catch up"));
        }
        c.run_for(Duration::from_millis(300));
    }
    times.sort_unstable();
    let (p50, p99, max) = (
        percentile(&times, 0.5),
        percentile(&times, 0.99),
        times[times.len() - 1],
    );
    if json {
        println!(
            "{{\"bench\":\"failover\",\"trials\":{trials},\"median_ms\":{p50},\"p99_ms\":{p99},\"max_ms\":{max},\"tick_ms\":10,\"heartbeat_ms\":10,\"failover_ms\":30,\"election_ms\":200,\"storage\":\"raft-engine, fsync\",\"transport\":\"tcp loopback\"}}"
        );
    } else {
        println!("failover (kill -9 of the leader -> first commit under the new leader), {trials} trials");
        println!("  tick 10 ms, heartbeat 10 ms, failover detection 30 ms, election 200 ms");
        println!("  median {p50} ms, p99 {p99} ms, max {max} ms; all: {times:?}");
    }
    Ok(())
}

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
}

/// Three members in this process; returns them and the leader's id.
fn trio(dir: &std::path::Path) -> Result<(BTreeMap<NodeId, Member>, NodeId), String> {
    let topology = Topology::builder(7)
        .site(Site::main("denver"))
        .core(
            Core::new("cm01", "denver")
                .member(1, "CM01a", "esxi-1", Virtual)
                .member(2, "CM01b", "esxi-3", Virtual),
        )
        .witness(Witness::new(3, "TB", "denver", "esxi-5"))
        .build()
        .map_err(|e| e.to_string())?
        .shared();
    let addrs: BTreeMap<NodeId, SocketAddr> = topology
        .members()
        .keys()
        .map(|&id| (id, free_addr()))
        .collect();
    let logger = slog::Logger::root(slog::Discard, slog::o!());
    let mut members = BTreeMap::new();
    for &id in addrs.keys() {
        let cfg = MemberConfig {
            topology: topology.clone(),
            id,
            listen: addrs[&id],
            peers: addrs
                .iter()
                .filter(|(&p, _)| p != id)
                .map(|(&p, &a)| (p, a))
                .collect(),
            data_dir: dir.join(format!("n{}", id.0)),
            joining: None,
        };
        let m = start_member(cfg, KvStore::default(), &logger).map_err(|e| e.to_string())?;
        members.insert(id, m);
    }
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if let Some((&id, _)) = members
            .iter()
            .find(|(_, m)| m.handle.status().role == NodeRole::Leader)
        {
            return Ok((members, id));
        }
        thread::sleep(Duration::from_millis(10));
    }
    Err("no leader among the three".into())
}

fn throughput(secs: u64, json: bool) -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("sc-bench-{}", std::process::id()));
    let (members, leader) = trio(&dir)?;
    let handle = Arc::new(members);
    for proposers in [1usize, 16, 64] {
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let workers: Vec<_> = (0..proposers)
            .map(|w| {
                let (members, stop) = (handle.clone(), stop.clone());
                thread::spawn(move || {
                    let h = &members[&leader].handle;
                    let mut lat = Vec::new();
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let t = Instant::now();
                        let cmd = format!("set w{w}-{} {n}", n % 1000).into_bytes();
                        if h.propose_timeout(cmd, Duration::from_secs(5)).is_ok() {
                            lat.push(t.elapsed().as_micros() as u64);
                        }
                        n += 1;
                    }
                    lat
                })
            })
            .collect();
        thread::sleep(Duration::from_secs(secs));
        stop.store(true, Ordering::Relaxed);
        let mut lat: Vec<u64> = workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_default())
            .collect();
        let elapsed = started.elapsed().as_secs_f64();
        lat.sort_unstable();
        let rate = lat.len() as f64 / elapsed;
        let (p50, p99) = (
            percentile(&lat, 0.5) as f64 / 1000.0,
            percentile(&lat, 0.99) as f64 / 1000.0,
        );
        if json {
            println!(
                "{{\"bench\":\"throughput\",\"members\":3,\"fsync\":true,\"proposers\":{proposers},\"commits\":{},\"commits_per_s\":{rate:.0},\"p50_ms\":{p50:.2},\"p99_ms\":{p99:.2}}}",
                lat.len()
            );
        } else {
            println!("throughput, 3 members, fsync on, {proposers:>2} proposers: {rate:>7.0} commits/s, p50 {p50:.2} ms, p99 {p99:.2} ms");
        }
    }
    drop(handle);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Runs both benchmarks.
pub(crate) fn run(args: &[String]) -> Result<(), String> {
    let json = args.iter().any(|a| a == "--json");
    let num = |flag: &str, default: u64| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    throughput(num("--secs", 5), json)?;
    failover(num("--trials", 20) as usize, json)
}
