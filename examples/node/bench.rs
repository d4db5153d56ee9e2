//! `node bench`: failover and throughput on loopback with durable storage.
//!
//! - failover: see the `failover` module (five processes, default timers,
//!   kill -9 of the leader, also right after a restart; leadership changes
//!   from load alone).
//! - throughput: three members (a duplicated pair and a tie-breaker) in this
//!   process, each with its own data directory (fsync on) and TCP; 1, 16 and
//!   64 proposers each propose and wait, back to back, for a few seconds.
//!   `--transport both` (the default) runs it twice in one go, plaintext
//!   then mutual TLS, for a side-by-side comparison; `tls` or `plaintext`
//!   runs one. `--metrics on|off|both` (default `on`) keeps the members'
//!   Prometheus metrics up to date or not; `both` runs each transport
//!   with metrics off then on, `--rounds N` times alternating, and
//!   compares the throughputs (the cost of keeping the metrics).
//!   `--snapshot-every N` sets the members' snapshot interval (entries;
//!   the members' default, 1024, unless given). At 64 proposers the
//!   interval is not what sets the pace: a member snapshots only once its
//!   log weighs as much as its last snapshot, here about every 21,000
//!   entries (an 815 kB state, twice a second), all three members at about
//!   the same index; the commits in flight then wait 10–30 ms on this host.
//!   Those bursts are too few to set the p99 at 64 proposers (it was the
//!   same within noise with snapshots effectively off); the members' slow
//!   syncs (the throughput lines' `syncs_over_*`) are what set it here.
//! - disk (first): synced 2 KiB appends by one writer, then by three at
//!   once, on the filesystem the members' data directories are on (see the
//!   `disk` module); each throughput line then gives the members' synced
//!   writes over 2, 4, 8 and 16 ms during it (with metrics on).
//! - connections: for each transport measured, connections to a member are
//!   opened one after another as another member opens them (TCP, with TLS
//!   the full mutual handshake and both sides' certificate checks, then the
//!   hello), each until the member has accepted it; the mean wall time and
//!   the process's CPU time (both ends are in it) per connection are
//!   reported.
//! - `--soak S` and `--figures`: five processes over the relay at default
//!   timers under load (see the `soak` module): leadership changes under
//!   saturation, and the failover, takeover and hand-back figures.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use survivable_core::node::NodeRole;
use survivable_core::runtime::{start_member, Member, MemberConfig};
use survivable_core::sim::KvStore;
use survivable_core::topology::{Appliance::Virtual, Core, NodeId, Site, Topology, Witness};
use survivable_core::transport::{
    free_loopback_addr, Dialer, TcpConfig, TlsFiles, TransportSecurity,
};

use crate::pki;

/// `--snapshot-every N`: the throughput members' snapshot interval in
/// entries (the members' default unless given).
static SNAPSHOT_EVERY: AtomicU64 = AtomicU64::new(0);

/// The value at fraction `p` (0..=1) of `sorted`, 0 when it is empty.
pub(crate) fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// The security of member `id` for a run with or without TLS.
fn security(tls: bool, dir: &std::path::Path, id: NodeId) -> TransportSecurity {
    if tls {
        TransportSecurity::MutualTls(TlsFiles::in_dir(&dir.join("pki"), id))
    } else {
        TransportSecurity::InsecurePlaintextLoopbackOnly
    }
}

type Trio = (
    BTreeMap<NodeId, Member>,
    BTreeMap<NodeId, SocketAddr>,
    NodeId,
);

/// Three members in this process; returns them, their addresses and the
/// leader's id.
fn trio(dir: &std::path::Path, tls: bool, metrics: bool) -> Result<Trio, String> {
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
        .map(|&id| Ok((id, free_loopback_addr()?)))
        .collect::<std::io::Result<_>>()
        .map_err(|e| e.to_string())?;
    let logger = slog::Logger::root(slog::Discard, slog::o!());
    if tls {
        let nodes: Vec<NodeId> = addrs.keys().copied().collect();
        pki::write_cluster(&dir.join("pki"), topology.cluster_id(), &nodes, 1)?;
    }
    let mut members = BTreeMap::new();
    for &id in addrs.keys() {
        let peers = addrs
            .iter()
            .filter(|(&p, _)| p != id)
            .map(|(&p, &a)| (p, a))
            .collect();
        let mut cfg = MemberConfig::new(
            topology.clone(),
            id,
            addrs[&id],
            peers,
            dir.join(format!("n{}", id.0)),
            security(tls, dir, id),
        );
        cfg.runtime.metrics = metrics;
        cfg.node.snapshot_every = SNAPSHOT_EVERY.load(Ordering::Relaxed);
        let m = start_member(cfg, KvStore::default(), &logger).map_err(|e| e.to_string())?;
        members.insert(id, m);
    }
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if let Some((&id, _)) = members
            .iter()
            .find(|(_, m)| m.handle.status().role == NodeRole::Leader)
        {
            return Ok((members, addrs, id));
        }
        thread::sleep(Duration::from_millis(10));
    }
    Err("no leader among the three".into())
}

/// CPU time this process has used (user + system), from /proc (Linux;
/// zero elsewhere).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which ends with ')'): utime and stime
    // are the 12th and 13th, in clock ticks (100 per second on Linux).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

/// Connection cost: wall and CPU milliseconds per connection.
struct Connect {
    wall_ms: f64,
    cpu_ms: f64,
}

/// Opens `n` connections to the leader one after another, as the other
/// member would, each until the leader has accepted it (the caller's
/// certificate and hello checked).
fn connections(
    members: &BTreeMap<NodeId, Member>,
    addrs: &BTreeMap<NodeId, SocketAddr>,
    leader: NodeId,
    dir: &std::path::Path,
    tls: bool,
    n: u32,
) -> Result<Connect, String> {
    let (&me, _) = addrs
        .iter()
        .find(|(&id, _)| id != leader)
        .ok_or("no other member")?;
    let peers = addrs
        .iter()
        .filter(|(&p, _)| p != me)
        .map(|(&p, &a)| (p, a))
        .collect();
    let cfg = TcpConfig::new(7, me, addrs[&me], peers, security(tls, dir, me));
    let dialer = Dialer::new(cfg).map_err(|e| e.to_string())?;
    let stats = &members[&leader].transport;
    let (started, cpu) = (Instant::now(), cpu_time());
    for _ in 0..n {
        let before = stats.stats().accepted;
        dialer
            .check(leader, addrs[&leader])
            .map_err(|e| e.to_string())?;
        // The member checks the caller after the caller is done.
        let deadline = Instant::now() + Duration::from_secs(5);
        while stats.stats().accepted == before {
            if Instant::now() > deadline {
                return Err("the member did not accept a connection".into());
            }
            thread::sleep(Duration::from_micros(50));
        }
    }
    let per = |d: Duration| d.as_secs_f64() * 1000.0 / f64::from(n);
    Ok(Connect {
        wall_ms: per(started.elapsed()),
        cpu_ms: per(cpu_time().saturating_sub(cpu)),
    })
}

/// One throughput run: its transport, whether metrics were kept, and the
/// commits per second for each number of proposers.
struct Run {
    tls: bool,
    metrics: bool,
    rates: Vec<(usize, f64)>,
}

fn throughput(
    secs: u64,
    json: bool,
    tls: bool,
    metrics: bool,
    connect: bool,
) -> Result<(Option<Connect>, Run), String> {
    let label = if tls { "tls" } else { "plaintext" };
    let on = if metrics { "metrics" } else { "nometrics" };
    let dir = std::env::temp_dir().join(format!("sc-bench-{}-{label}-{on}", std::process::id()));
    let result = throughput_in(&dir, secs, json, tls, metrics, connect);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn print_connect(c: &Connect, n: u32, json: bool, tls: bool) {
    let label = if tls { "tls" } else { "plaintext" };
    let (wall, cpu) = (c.wall_ms, c.cpu_ms);
    if json {
        println!("{{\"bench\":\"connect\",\"transport\":\"{label}\",\"connections\":{n},\"wall_ms_per_connection\":{wall:.3},\"cpu_ms_per_connection\":{cpu:.3}}}");
    } else {
        let what = if tls {
            "TCP, mutual TLS 1.3 handshake, hello accepted"
        } else {
            "TCP, hello accepted"
        };
        println!("connect, {label:>9}: {wall:.2} ms wall, {cpu:.2} ms CPU (both ends) per connection ({what}; {n} one after another; the member's acceptor polls every 5 ms)");
    }
}

fn throughput_in(
    dir: &std::path::Path,
    secs: u64,
    json: bool,
    tls: bool,
    metrics: bool,
    connect: bool,
) -> Result<(Option<Connect>, Run), String> {
    let label = if tls { "tls" } else { "plaintext" };
    let (members, addrs, leader) = trio(dir, tls, metrics)?;
    let n = 200;
    let c = if connect {
        let c = connections(&members, &addrs, leader, dir, tls, n)?;
        print_connect(&c, n, json, tls);
        Some(c)
    } else {
        None
    };
    let handle = Arc::new(members);
    let mut run = Run {
        tls,
        metrics,
        rates: Vec::new(),
    };
    for proposers in [1usize, 16, 64] {
        let before = Syncs::of(&handle);
        let (commits, rate, p50, p99) = load(&handle, leader, proposers, secs);
        let syncs = Syncs::of(&handle).since(&before);
        run.rates.push((proposers, rate));
        if json {
            let syncs = match (metrics, syncs) {
                (true, [all, over2, over4, over8, over16]) => format!(",\"syncs\":{all},\"syncs_over_2ms\":{over2},\"syncs_over_4ms\":{over4},\"syncs_over_8ms\":{over8},\"syncs_over_16ms\":{over16}"),
                _ => String::new(),
            };
            println!(
                "{{\"bench\":\"throughput\",\"transport\":\"{label}\",\"metrics\":{metrics},\"members\":3,\"fsync\":true,\"proposers\":{proposers},\"commits\":{commits},\"commits_per_s\":{rate:.0},\"p50_ms\":{p50:.2},\"p99_ms\":{p99:.2},\"snapshot_every\":{every}{syncs}}}",
                every = SNAPSHOT_EVERY.load(Ordering::Relaxed)
            );
        } else {
            let m = if metrics {
                "metrics on "
            } else {
                "metrics off"
            };
            let syncs = match (metrics, syncs) {
                (true, [all, over2, over4, ..]) => {
                    format!(", synced writes over 2 / 4 ms: {over2} / {over4} of {all}")
                }
                _ => String::new(),
            };
            println!("throughput, {label:>9}, 3 members, fsync on, {m}, {proposers:>2} proposers: {rate:>7.0} commits/s, p50 {p50:.2} ms, p99 {p99:.2} ms{syncs}");
        }
    }
    drop(handle);
    Ok((c, run))
}

/// The three members' synced storage writes (each a write and its
/// fsync) so far, from their `survivable_fsync_seconds` histograms: all,
/// and those over 2, 4, 8 and 16 ms. All zero with metrics off.
///
/// They show how much of a commit p99 the disk accounts for. At 64
/// proposers the commits in flight wait for the same few syncs, so one
/// slow sync delays up to 64 of them at once: 40 stalls of the whole
/// cluster in a 5 s phase of 250,000 commits are enough to set its p99.
/// The three members here share one filesystem and its journal, which
/// three hosts do not; the disk lines ([`crate::disk`]) show whether
/// syncs from several threads at once stall on it.
struct Syncs([u64; 5]);

impl Syncs {
    fn of(members: &BTreeMap<NodeId, Member>) -> Self {
        let mut out = [0; 5];
        for m in members.values() {
            let text = m.handle.metrics();
            let get = |name: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(name))
                    .and_then(|v| v.trim().parse::<f64>().ok())
                    .map_or(0, |v| v as u64)
            };
            let all = get("survivable_fsync_seconds_count ");
            out[0] += all;
            for (o, le) in out[1..]
                .iter_mut()
                .zip(["0.002", "0.004", "0.008", "0.016"])
            {
                let within = get(&format!("survivable_fsync_seconds_bucket{{le=\"{le}\"}} "));
                *o += all.saturating_sub(within);
            }
        }
        Self(out)
    }

    /// The syncs since `before`.
    fn since(&self, before: &Self) -> [u64; 5] {
        std::array::from_fn(|i| self.0[i].saturating_sub(before.0[i]))
    }
}

/// `proposers` threads propose at the leader back to back for `secs`:
/// commits, commits per second, p50 and p99 latency (ms).
fn load(
    members: &Arc<BTreeMap<NodeId, Member>>,
    leader: NodeId,
    proposers: usize,
    secs: u64,
) -> (usize, f64, f64, f64) {
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let workers: Vec<_> = (0..proposers)
        .map(|w| {
            let (members, stop) = (members.clone(), stop.clone());
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
    (lat.len(), rate, p50, p99)
}

/// Metrics on against off, per transport and number of proposers: the
/// mean rate of each over the rounds.
fn compare_metrics(runs: &[Run], json: bool) {
    for tls in [false, true] {
        let label = if tls { "tls" } else { "plaintext" };
        for proposers in [1usize, 16, 64] {
            let mean = |metrics: bool| {
                let r: Vec<f64> = runs
                    .iter()
                    .filter(|r| r.tls == tls && r.metrics == metrics)
                    .flat_map(|r| r.rates.iter())
                    .filter(|(p, _)| *p == proposers)
                    .map(|(_, rate)| *rate)
                    .collect();
                (!r.is_empty()).then(|| r.iter().sum::<f64>() / r.len() as f64)
            };
            let (Some(off), Some(on)) = (mean(false), mean(true)) else {
                continue;
            };
            let delta = (on - off) / off * 100.0;
            if json {
                println!("{{\"bench\":\"metrics_cost\",\"transport\":\"{label}\",\"proposers\":{proposers},\"commits_per_s_off\":{off:.0},\"commits_per_s_on\":{on:.0},\"delta_percent\":{delta:.2}}}");
            } else {
                println!("metrics cost, {label:>9}, {proposers:>2} proposers: off {off:>7.0}, on {on:>7.0} commits/s ({delta:+.1}%)");
            }
        }
    }
}

/// Runs the benchmarks: throughput and handshakes per transport, then
/// failover (five processes, mutual TLS).
pub(crate) fn run(args: &[String]) -> Result<(), String> {
    let json = args.iter().any(|a| a == "--json");
    let num = |flag: &str, default: u64| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let keep = args.iter().any(|a| a == "--keep");
    let wan = args
        .iter()
        .position(|a| a == "--wan")
        .map(|i| args.get(i + 1).cloned().ok_or("--wan needs a value"))
        .transpose()?
        .unwrap_or_else(|| crate::launcher::DEFAULT_WAN.to_string());
    if args.iter().any(|a| a == "--soak") {
        return crate::soak::soak(num("--soak", 60), &wan, keep);
    }
    if args.iter().any(|a| a == "--figures") {
        return crate::soak::figures(num("--trials", 3) as usize, &wan, keep);
    }
    if args.iter().any(|a| a == "--memory") {
        let commands = num("--commands", 1_000_000);
        return crate::memory::run(commands, num("--window", 256), json, keep);
    }
    let secs = num("--secs", 5);
    let against = match args.iter().position(|a| a == "--against") {
        None => false,
        Some(i) if args.get(i + 1).is_some_and(|v| v == "etcd") => true,
        Some(_) => return Err("--against takes `etcd`".into()),
    };
    let every = survivable_core::runtime::NodeSettings::default().snapshot_every;
    SNAPSHOT_EVERY.store(num("--snapshot-every", every).max(1), Ordering::Relaxed);
    let transport = args
        .iter()
        .position(|a| a == "--transport")
        .and_then(|i| args.get(i + 1))
        .map_or("both", String::as_str);
    let runs: &[bool] = match transport {
        "both" => &[false, true],
        "tls" => &[true],
        "plaintext" => &[false],
        other => return Err(format!("--transport {other}: use tls, plaintext or both")),
    };
    let metrics: &[bool] = match args
        .iter()
        .position(|a| a == "--metrics")
        .and_then(|i| args.get(i + 1))
        .map_or("on", String::as_str)
    {
        "on" => &[true],
        "off" => &[false],
        "both" => &[false, true],
        other => return Err(format!("--metrics {other}: use on, off or both")),
    };
    let rounds = num("--rounds", 1).max(1);
    // Where the members' data directories go (the same filesystem).
    let probe_dir = std::env::temp_dir().join(format!("sc-disk-{}", std::process::id()));
    let probed = crate::disk::probe(&probe_dir, json);
    let _ = std::fs::remove_dir_all(&probe_dir);
    probed?;
    let mut costs = Vec::new();
    let mut all = Vec::new();
    for &tls in runs {
        for round in 0..rounds {
            for (i, &m) in metrics.iter().enumerate() {
                // The connection cost once per transport.
                let connect = round == 0 && i == 0;
                let (cost, run) = throughput(secs, json, tls, m, connect)?;
                costs.extend(cost);
                all.push(run);
            }
        }
    }
    compare_metrics(&all, json);
    if against {
        let ours: Vec<crate::etcd::Ours> = (all.iter())
            .flat_map(|r| r.rates.iter().map(|&(p, rate)| (r.tls, p, rate)))
            .collect();
        return crate::etcd::against(secs, json, &ours);
    }
    if let [plain, tls] = costs.as_slice() {
        let (wall, cpu) = (tls.wall_ms - plain.wall_ms, tls.cpu_ms - plain.cpu_ms);
        if json {
            println!("{{\"bench\":\"tls_handshake\",\"extra_wall_ms_per_connection\":{wall:.3},\"extra_cpu_ms_per_connection\":{cpu:.3}}}");
        } else {
            println!("mutual TLS handshake: +{wall:.2} ms wall, +{cpu:.2} ms CPU per connection over plaintext");
        }
    }
    match num("--trials", 20) {
        0 => Ok(()), // `--trials 0`: throughput only
        trials => crate::failover::run(trials as usize, json, keep, args),
    }
}
