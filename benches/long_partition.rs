//! A long WAN cut at 200 proposals/s, default settings: a main-site
//! cluster (Denver duplicated core and witness, Paris survivable core)
//! is cut from Paris, Paris activates and both sites take writes, then
//! the WAN heals and the reunion reconciles Denver's tail into Paris's
//! epoch and hands back. Prints one JSON line per run: proposals
//! acknowledged, lost and applied twice (counted per proposal id on every
//! member by the simulator's invariant checker), the reunion's virtual
//! time, and the largest log any member held.
//!
//! `cargo bench --bench long_partition` (a 10-minute cut) or
//! `-- --test` (a 20-second cut, as CI runs it so the benchmark cannot
//! rot); `-- --cut-secs N` for another length.

use std::time::{Duration, Instant};

#[path = "../tests/long_partition/scenario.rs"]
mod scenario;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--test");
    let cut_secs = args
        .iter()
        .position(|a| a == "--cut-secs")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 20 } else { 600 });
    let started = Instant::now();
    // The reunion: reconciliation chunks of the tail (one round trip and
    // one commit each), joins and hand-back; bounded at ten minutes.
    let (_, out) = scenario::run(
        1,
        Duration::from_secs(cut_secs),
        Duration::from_secs(600),
        |_| {},
    );
    let json = out.to_json();
    println!(
        "{{\"bench\":\"long_partition\",\"wall_s\":{:.1},{}",
        started.elapsed().as_secs_f64(),
        &json[1..]
    );
    for v in &out.other_violations {
        eprintln!("violation: {v}");
    }
    let clean = out.lost == 0
        && out.lost_compacted == 0
        && out.applied_twice == 0
        && out.other_violations.is_empty();
    if !clean || out.reunion_ms.is_none() {
        std::process::exit(1);
    }
}
