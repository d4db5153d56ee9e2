//! Simulator speed: a 5-member Denver/Paris/witness cluster, one virtual
//! hour, steady proposals (10 per second); then ten virtual minutes of 200
//! proposals per second (at every live member in turn, so most are
//! forwarded to the leader) under a fixed fault cycle (leader-site crash,
//! site partition, lossy and slow links, an isolated member, a paused
//! member) with the invariant checker; then random fault schedules of ten
//! virtual minutes each, played under the invariant checker; then the
//! simulator's peer, bare raft-rs driven the same way
//! (`support/raft_floor.rs`), for the first two loads. Prints one JSON line
//! each.
//!
//! `cargo bench --bench sim_speed` (one hour) or `-- --test` (one virtual
//! minute each, as CI runs it so the benchmark cannot rot). Name parts to
//! run only those: `-- heavy_with_faults schedules raft_floor` (for A/B runs).

use std::time::{Duration, Instant};

use survivable_core::sim::{KvStore, Sim};
use survivable_core::topology::denver_paris;

#[path = "support/raft_floor.rs"]
mod raft_floor;

fn main() {
    let quick = std::env::args().any(|a| a == "--test");
    let named: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let run = |part: &str| named.is_empty() || named.iter().any(|n| n == part);
    if run("sim_speed") {
        steady(quick);
    }
    if run("heavy_with_faults") {
        heavy_with_faults(if quick { 1 } else { 10 });
    }
    if run("schedules") {
        schedules(if quick { 2 } else { 20 });
    }
    if run("raft_floor") {
        for (shape, per_s, virtual_s) in [("sim_speed", 10, 3600), ("heavy_with_faults", 200, 600)]
        {
            for (codec, skip) in [(true, false), (false, false), (true, true)] {
                floor(
                    shape,
                    per_s,
                    if quick { 60 } else { virtual_s },
                    codec,
                    skip,
                );
            }
        }
    }
}

/// Bare raft-rs under the load of the simulator line `shape` (see
/// `support/raft_floor.rs`): what raft alone costs for that traffic.
fn floor(shape: &str, proposals_per_s: u64, virtual_s: u64, codec: bool, skip: bool) {
    let f = raft_floor::run(proposals_per_s, virtual_s, codec, skip);
    // A floor that did not replicate would measure nothing: every member
    // applies all but the last second's proposals, under one leader.
    assert_eq!(f.leader_changes, 0, "the floor's leader changed");
    assert!(
        f.applied_min + proposals_per_s >= f.proposed,
        "a member applied {} of {} proposals",
        f.applied_min,
        f.proposed
    );
    let per_s = |n: u64| n as f64 / virtual_s as f64;
    println!(
        "{{\"bench\":\"raft_floor\",\"shape\":\"{shape}\",\"codec\":\"{}\",\"skip_bcast_commit\":{skip},\"members\":5,\"proposals_per_s\":{proposals_per_s},\"virtual_s\":{virtual_s},\"wall_s\":{:.3},\"speedup\":{:.0},\"messages_per_s\":{:.0},\"empty_appends_per_s\":{:.0},\"proposed\":{},\"applied_min\":{}}}",
        if codec { "raft protobuf" } else { "none" },
        f.wall_s,
        virtual_s as f64 / f.wall_s,
        per_s(f.messages),
        per_s(f.empty_appends),
        f.proposed,
        f.applied_min
    );
}

/// One virtual hour (a minute with `quick`) at 10 proposals per second.
fn steady(quick: bool) {
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
        "{{\"bench\":\"sim_speed\",\"members\":5,\"virtual_s\":{virtual_secs},\"wall_s\":{:.3},\"speedup\":{:.0},\"proposed\":{proposed},\"committed\":{committed},\"messages_per_s\":{:.0},\"violations\":{},\"run_digest\":\"{:016x}\"}}",
        wall.as_secs_f64(),
        virtual_secs as f64 / wall.as_secs_f64(),
        sim.delivered() as f64 / virtual_secs as f64,
        sim.violations().len(),
        sim.run_digest()
    );
}

/// One virtual minute of faults, replayed `minutes` times, healed at the
/// end of each minute: a crash and restart of a Denver member, a
/// Denver/Paris partition, 20% loss and a 200 ms round trip on a
/// Denver-Paris link, an isolated Paris member, a paused Denver member.
const FAULT_MINUTE: &str = "+5000ms crash n1; +4000ms restart n1; \
     +6000ms partition denver|paris+kansas; +5000ms heal; \
     +5000ms loss n1 n3 20%; +5000ms delay n2 n4 200ms; +5000ms isolate n3; \
     +5000ms heal; +5000ms pause n2; +3000ms resume n2; +12000ms heal";

/// 200 proposals per second under [`FAULT_MINUTE`] for `minutes` virtual
/// minutes, with the invariant checker ([`Schedule::run`]).
fn heavy_with_faults(minutes: u64) {
    use survivable_core::sim::{RunOptions, Schedule};
    let topology = denver_paris().build().expect("valid topology").shared();
    let line = format!(
        "seed=1; {}",
        vec![FAULT_MINUTE; minutes as usize].join("; ")
    );
    let schedule: Schedule = line.parse().expect("a valid schedule line");
    let opts = RunOptions {
        proposals_per_s: 200,
        ..RunOptions::default()
    };
    let started = Instant::now();
    let r = schedule.run(topology, &opts).expect("valid schedule");
    let wall = started.elapsed().as_secs_f64();
    let virtual_s = r.virtual_ms as f64 / 1000.0;
    println!(
        "{{\"bench\":\"heavy_with_faults\",\"members\":5,\"proposals_per_s\":200,\"virtual_s\":{virtual_s:.1},\"wall_s\":{wall:.3},\"speedup\":{:.0},\"proposed\":{},\"commits\":{},\"violations\":{},\"trace_digest\":\"{:016x}\"}}",
        virtual_s / wall,
        r.proposed,
        r.acknowledged,
        r.violations.len(),
        trace_digest(0, &r.trace)
    );
}

/// Random fault schedules (the same ones every run: a seeded generator)
/// stretched to ten virtual minutes each.
fn schedules(count: u64) {
    use quickcheck::{Arbitrary, Gen};
    use survivable_core::sim::{Fault, RunOptions, Schedule, Step};
    let topology = denver_paris().build().expect("valid topology").shared();
    // Seeded: the same schedules every run, so builds compare.
    let mut g = Gen::from_size_and_seed(64, 20_261_130);
    let started = Instant::now();
    let mut virtual_ms = 0;
    let mut violations = 0;
    let mut digest = 0;
    for _ in 0..count {
        let mut s = Schedule::arbitrary(&mut g);
        let used: u64 = s.steps.iter().map(|st| st.after_ms).sum();
        s.steps.push(Step {
            after_ms: 600_000u64.saturating_sub(used),
            fault: Fault::Heal,
        });
        let r = s
            .run(topology.clone(), &RunOptions::default())
            .expect("valid schedule");
        virtual_ms += r.virtual_ms;
        violations += r.violations.len();
        digest = trace_digest(digest, &r.trace);
    }
    let wall = started.elapsed().as_secs_f64();
    println!(
        "{{\"bench\":\"schedules\",\"members\":5,\"schedules\":{count},\"virtual_min_each\":{:.1},\"wall_s\":{wall:.3},\"schedules_per_s\":{:.2},\"violations\":{violations},\"trace_digest\":\"{digest:016x}\"}}",
        virtual_ms as f64 / count as f64 / 60_000.0,
        count as f64 / wall
    );
}

/// A digest of traces (every start, fault and event, with its time), so
/// two builds can be compared run for run: equal digests, equal runs.
/// Byte-wise FNV-1a of its own, not [`Sim::digest`], so that the figures
/// compare with builds whose simulator digested differently.
fn trace_digest(seed: u64, trace: &[String]) -> u64 {
    fn fnv(h: u64, bytes: &[u8]) -> u64 {
        bytes
            .iter()
            .fold(h, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
    }
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    trace.iter().fold(seed, |h, line| {
        fnv(fnv(OFFSET, &h.to_le_bytes()), line.as_bytes())
    })
}
