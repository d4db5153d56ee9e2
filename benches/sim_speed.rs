//! Simulator speed: a 5-member Denver/Paris/witness cluster, one virtual
//! hour, steady proposals (10 per second). Prints one JSON line.
//!
//! `cargo bench --bench sim_speed` (one hour) or `-- --test` (one minute,
//! as CI runs it so the benchmark cannot rot).

use std::time::{Duration, Instant};

use survivable_core::sim::{KvStore, Sim};
use survivable_core::topology::denver_paris;

fn main() {
    let quick = std::env::args().any(|a| a == "--test");
    let virtual_secs: u64 = if quick { 60 } else { 3600 };
    let topology = denver_paris().build().expect("valid topology").shared();
    let mut sim = Sim::builder(topology).seed(1).build(|_| KvStore::default());
    let started = Instant::now();
    let mut proposed = 0u64;
    for s in 0..virtual_secs * 10 {
        if let Some(leader) = sim.leader() {
            if sim
                .propose(leader, format!("set call{} up", s % 5000).into_bytes())
                .is_ok()
            {
                proposed += 1;
            }
        }
        sim.run_for(Duration::from_millis(100));
    }
    let wall = started.elapsed();
    let committed = sim.commits().len();
    println!(
        "{{\"bench\":\"sim_speed\",\"members\":5,\"virtual_s\":{virtual_secs},\"wall_s\":{:.3},\"speedup\":{:.0},\"proposed\":{proposed},\"committed\":{committed},\"violations\":{}}}",
        wall.as_secs_f64(),
        virtual_secs as f64 / wall.as_secs_f64(),
        sim.violations().len()
    );
}
