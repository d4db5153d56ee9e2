//! `node bench`'s disk line: what this host's filesystem does with synced
//! writes, with no raft, network or state machine involved.
//!
//! One writer, then three at once (as many as the throughput members,
//! which share the filesystem), each appending 2 KiB and syncing it
//! (`fdatasync`) back to back for two seconds in a file of its own, next
//! to the members' data directories. Printed: syncs per second, p50, p99
//! and the longest sync, and how many took over 4 ms. When three writers
//! see stalls that one does not, the throughput members see them too, and
//! a commit in flight waits for them (see `Syncs` in the `bench` module).

use std::io::Write;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

/// How long each set of writers appends and syncs.
const FOR: Duration = Duration::from_secs(2);

/// Runs the probe in `dir` (created if missing) and prints one line per
/// number of writers.
pub(crate) fn probe(dir: &Path, json: bool) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for writers in [1usize, 3] {
        let threads: Vec<_> = (0..writers)
            .map(|w| {
                let path = dir.join(format!("disk-probe-{w}"));
                thread::spawn(move || {
                    let took = append_and_sync(&path, FOR);
                    let _ = std::fs::remove_file(&path);
                    took
                })
            })
            .collect();
        let mut took: Vec<u64> = Vec::new();
        for t in threads {
            let one = t.join().map_err(|_| "a disk probe writer panicked")?;
            took.extend(one.map_err(|e| format!("disk probe in {}: {e}", dir.display()))?);
        }
        took.sort_unstable();
        let at = |p: f64| crate::bench::percentile(&took, p) as f64 / 1000.0;
        let (p50, p99, max) = (at(0.5), at(0.99), at(1.0));
        let over4 = took.iter().filter(|&&us| us > 4000).count();
        let rate = took.len() as f64 / FOR.as_secs_f64();
        if json {
            println!("{{\"bench\":\"disk\",\"writers\":{writers},\"write_bytes\":2048,\"syncs_per_s\":{rate:.0},\"p50_ms\":{p50:.2},\"p99_ms\":{p99:.2},\"max_ms\":{max:.2},\"syncs_over_4ms\":{over4}}}");
        } else {
            println!("disk, {writers} writer(s), 2 KiB + fdatasync: {rate:>7.0} syncs/s, p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms, {over4} over 4 ms");
        }
    }
    Ok(())
}

/// Appends 2 KiB and syncs it, again and again for `run`: each sync's
/// duration in µs.
fn append_and_sync(path: &Path, run: Duration) -> std::io::Result<Vec<u64>> {
    let mut f = std::fs::File::create(path)?;
    let block = [0x5a_u8; 2048];
    let mut took = Vec::new();
    let start = Instant::now();
    while start.elapsed() < run {
        let t = Instant::now();
        f.write_all(&block)?;
        f.sync_data()?;
        took.push(t.elapsed().as_micros() as u64);
    }
    Ok(took)
}
