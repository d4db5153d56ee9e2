//! `node bench --memory [--commands N] [--window W]`: the resident memory
//! of each member process under a long run of small commands.
//!
//! The Denver/Paris cluster runs as five real processes (see the
//! `launcher` module: raft-engine storage with fsync on, mutual TLS, the
//! default compaction settings). Commands of exactly [`COMMAND_LEN`] bytes
//! (`set k<i % 10000> xxx…`) are proposed at the leader, `W` in flight at
//! a time, until `N` (default 1,000,000) are acknowledged; the keys repeat,
//! so the replicated state stays bounded (10,000 keys) and what grows, if
//! anything, is the member's own bookkeeping. At 0, ¼, ½, ¾ and all of `N`
//! one JSON line gives, per member, the resident set (`VmRSS`) and its peak
//! (`VmHWM`) read from `/proc/<pid>/status` of that member's process, and
//! the bytes its data directory holds on disk.
//!
//! # What could grow, and what bounds it
//!
//! A heap profile of a member over 1.5 million commands (heaptrack
//! attached to its process) shows its live heap level at 5.4–5.6 MB between
//! snapshots and 14 MB at the peak, which is a snapshot being taken (the
//! state machine encoded while the previous one is written); RSS above that
//! is the mapped binary and libraries (about 8.5 MB), thread stacks and the
//! allocator's cached pages. What the member keeps per command, and its
//! bound:
//!
//! - the log, in raft-engine and in the node's size account
//!   (`RetainedLog`): compacted every `snapshot_every` (1024) applied
//!   entries, keeping `keep_entries` (256) behind the snapshot, and
//!   raft-engine purges its files once 4 MB are obsolete: the data
//!   directory stays at 6–10 MB however many commands passed. Only a
//!   lagging survivable site holds the floor back, up to
//!   `retain_max_entries`/`retain_max_bytes` when set (unbounded when not:
//!   the README's "Long WAN cuts" tells how to size them);
//! - the de-duplication table (replicated, in every snapshot): per
//!   proposer and start, the proposals above the proposer's floor (its
//!   oldest unresolved one), so at most what it has in flight (at most
//!   `max_pending`, 4096), and the last 4 starts of each proposer
//!   (`node::proposals` tests `floor_prunes_and_survives_snapshots` and
//!   `old_boots_are_forgotten`);
//! - proposals in flight at their proposer (the node's pending list, the
//!   runtime's waiting replies, the metrics' latency clocks): refused past
//!   `max_pending`, dropped when each completes (the metrics test
//!   `proposal_clocks_end_with_their_proposals` counts the clocks);
//! - the metrics: fixed series and histogram buckets, and a lag history of
//!   at most 4096 records (`metrics::lag` test
//!   `the_history_is_bounded`); the hand-back gate's index history is
//!   pruned to the window it looks back at;
//! - the state machine: this benchmark's 10,000 keys, and the node
//!   example's apply count per distinct command (10,000 here: the commands
//!   repeat; a workload of ever-new commands grows that audit map, which
//!   is the example's, not the library's).
//!
//! Measured on this 2-core machine (all five members, 1,000,000 commands in
//! 47–55 s, four runs): 30.8–41.0 MiB resident, peak 36.3–41.0 MiB, 6–8 MB
//! on disk; at 4,000,000 commands the leader was at 42.3 MiB (peak 43.5),
//! the others 35.4–39.4 MiB. The leader's RSS creeps by about 0.4 MiB per
//! million commands while its live heap does not (the profile's floor
//! moved by 0.1 MB over 1.5 million, the lag history and raft-engine's
//! index queues reaching their capacity):
//! the allocator's cached pages.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::launcher::{field, Cluster};

/// The length of every command, in bytes.
pub(crate) const COMMAND_LEN: usize = 100;

/// Distinct keys the commands write (the state machine's bound).
const KEYS: u64 = 10_000;

/// Command `i`: `set k<i % KEYS> ` padded with `x` to [`COMMAND_LEN`].
pub(crate) fn command(i: u64) -> String {
    let mut c = format!("set k{} ", i % KEYS);
    let pad = COMMAND_LEN.saturating_sub(c.len());
    c.extend(std::iter::repeat_n('x', pad));
    c
}

/// One member's memory and disk at a checkpoint.
struct Sample {
    id: u64,
    rss_kib: u64,
    hwm_kib: u64,
    disk_bytes: u64,
}

/// The pid of member `id`'s process: the process whose command line names
/// its member file (Linux `/proc`).
fn pid_of(dir: &Path, id: u64) -> Option<u32> {
    let want = dir.join(format!("n{id}.toml"));
    let want = want.to_string_lossy();
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
        let args: Vec<&[u8]> = cmd.split(|&b| b == 0).collect();
        let names = args
            .windows(2)
            .any(|w| w[0] == b"--config" && String::from_utf8_lossy(w[1]) == want.as_ref());
        names.then_some(pid)
    })
}

/// `VmRSS` and `VmHWM` (KiB) of process `pid`.
fn rss_of(pid: u32) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    };
    Some((kib("VmRSS:")?, kib("VmHWM:")?))
}

/// Bytes of the files under `dir`, recursively.
fn disk_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => disk_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn sample(c: &Cluster, pids: &[(u64, u32)]) -> Vec<Sample> {
    pids.iter()
        .map(|&(id, pid)| {
            let (rss_kib, hwm_kib) = rss_of(pid).unwrap_or((0, 0));
            let disk_bytes = disk_bytes(&c.dir.join(format!("n{id}")));
            Sample {
                id,
                rss_kib,
                hwm_kib,
                disk_bytes,
            }
        })
        .collect()
}

/// Where the run stands at a checkpoint.
struct At {
    commands: u64,
    failed: u64,
    leader: u64,
    took: Duration,
}

fn print(at: &At, samples: &[Sample], json: bool) {
    let (commands, took) = (at.commands, at.took);
    let mib = |kib: u64| kib as f64 / 1024.0;
    if json {
        let members: Vec<String> = samples
            .iter()
            .map(|s| {
                format!(
                    "{{\"id\":{},\"rss_mib\":{:.1},\"peak_rss_mib\":{:.1},\"disk_mib\":{:.2}}}",
                    s.id,
                    mib(s.rss_kib),
                    mib(s.hwm_kib),
                    s.disk_bytes as f64 / 1048576.0
                )
            })
            .collect();
        println!(
            "{{\"bench\":\"memory\",\"commands\":{commands},\"failed\":{},\"leader\":{},\"command_bytes\":{COMMAND_LEN},\"secs\":{:.1},\"storage\":\"raft-engine, fsync\",\"compaction\":\"default\",\"transport\":\"mutual tls, loopback\",\"members\":[{}]}}",
            at.failed,
            at.leader,
            took.as_secs_f64(),
            members.join(",")
        );
    } else {
        println!(
            "memory after {commands} commands ({:.1} s):",
            took.as_secs_f64()
        );
        for s in samples {
            println!(
                "  member {}: rss {:.1} MiB, peak {:.1} MiB, disk {:.2} MiB",
                s.id,
                mib(s.rss_kib),
                mib(s.hwm_kib),
                s.disk_bytes as f64 / 1048576.0
            );
        }
    }
}

/// Proposal replies counted while driving the load.
#[derive(Default)]
struct Tally {
    sent: u64,
    acked: u64,
    failed: u64,
}

impl Tally {
    fn in_flight(&self) -> u64 {
        self.sent - self.acked - self.failed
    }
}

/// Runs the memory benchmark (see the module docs).
pub(crate) fn run(commands: u64, window: u64, json: bool, keep: bool) -> Result<(), String> {
    let window = window.max(1);
    let mut c = Cluster::start(json, "", &[])?;
    c.keep = keep;
    c.every = Duration::from_millis(20);
    let mut leader = None;
    for _ in 0..100 {
        c.run_for(Duration::from_millis(100));
        leader = c.leader();
        if leader.is_some() {
            break;
        }
    }
    let mut leader = leader.ok_or("no leader within 10 s")?;
    let pids: Vec<(u64, u32)> = (1..=5)
        .map(|id| pid_of(&c.dir, id).map(|p| (id, p)))
        .collect::<Option<_>>()
        .ok_or("a member's process was not found in /proc")?;
    let started = Instant::now();
    let at = |t: &Tally, leader: u64| At {
        commands: t.acked,
        failed: t.failed,
        leader,
        took: started.elapsed(),
    };
    print(&at(&Tally::default(), leader), &sample(&c, &pids), json);
    let marks: Vec<u64> = (1..=4).map(|q| commands * q / 4).collect();
    let mut next_mark = 0;
    let mut t = Tally::default();
    let mut polled = Instant::now();
    while next_mark < marks.len() {
        while t.in_flight() < window && t.acked + t.in_flight() < commands {
            let line = format!("propose {} {}", t.sent, command(t.sent));
            c.send(leader, &line);
            t.sent += 1;
        }
        let half = window / 2;
        let got = c.wait_until(Duration::from_secs(10), |_, _, line| {
            if field(line, "reply") == Some("propose") {
                if field(line, "ok") == Some("true") {
                    t.acked += 1;
                } else {
                    t.failed += 1;
                }
            }
            t.in_flight() <= half
        });
        if !got && t.in_flight() > half {
            return Err(format!(
                "no progress for 10 s at {} acknowledged ({} failed)",
                t.acked, t.failed
            ));
        }
        if polled.elapsed() > Duration::from_secs(1) {
            for id in 1..=5 {
                c.send(id, "status");
            }
            polled = Instant::now();
            leader = c.leader().unwrap_or(leader);
        }
        while next_mark < marks.len() && t.acked >= marks[next_mark] {
            print(&at(&t, leader), &sample(&c, &pids), json);
            next_mark += 1;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{command, COMMAND_LEN, KEYS};
    use std::collections::BTreeSet;

    #[test]
    fn commands_are_exactly_100_bytes_over_10000_keys() {
        let mut distinct = BTreeSet::new();
        for i in 0..100_000 {
            let c = command(i);
            assert_eq!(c.len(), COMMAND_LEN, "{c}");
            assert!(c.starts_with(&format!("set k{} x", i % KEYS)), "{c}");
            distinct.insert(c);
        }
        // The state machine's bound: as many keys (and distinct commands
        // for the example's apply counts) as KEYS, however many commands.
        assert_eq!(distinct.len() as u64, KEYS);
    }
}
