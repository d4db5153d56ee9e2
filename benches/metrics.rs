//! The cost of the metrics: a scrape (`Metrics::encode`) of a leader of
//! the five-member Denver/Paris topology with every series filled, and the
//! per-pass update the runtime makes (`Recorder::status`). Prints one JSON
//! object per figure.
//!
//! `cargo bench --bench metrics`

use std::hint::black_box;
use std::time::{Duration, Instant};

use survivable_core::metrics::{Metrics, Recorder};
use survivable_core::node::{Counters, NodeRole, PeerStatus, Status, FIRST_EPOCH};
use survivable_core::topology::{denver_paris, NodeId};
use survivable_core::transport::TransportStats;

fn leader_status(last_index: u64) -> Status {
    Status {
        id: NodeId(1),
        site: "denver".into(),
        role: NodeRole::Leader,
        leader: Some(NodeId(1)),
        epoch: FIRST_EPOCH,
        term: 3,
        commit: last_index - 1,
        applied: last_index - 1,
        first_index: 1,
        last_index,
        peers: (2..=5)
            .map(|id| PeerStatus {
                id: NodeId(id),
                matched: last_index - id,
                lag: id,
                reachable: true,
            })
            .collect(),
        rpo_entries: 0,
        rpo_ms: 0,
        drained: false,
        retained: Default::default(),
        redundancy: Vec::new(),
        replication: None,
    }
}

/// Runs `f` for about `for_at_least`, returning the mean time per call.
fn time(for_at_least: Duration, mut f: impl FnMut(u64)) -> Duration {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < for_at_least {
        for _ in 0..100 {
            f(n);
            n += 1;
        }
    }
    start.elapsed() / u32::try_from(n).unwrap_or(u32::MAX)
}

fn main() {
    let topology = denver_paris().build().expect("the example topology");
    let metrics = Metrics::new(NodeId(1), &topology);
    let mut r = Recorder::new(metrics.clone());
    // Every series filled: a leader's status with four peers, refusals of
    // every kind, each histogram observed.
    r.status(&leader_status(1_000));
    r.counters(&Counters {
        malformed: 1,
        wrong_cluster: 2,
        other_epoch: 3,
        campaigns_suppressed: 1,
        ..Counters::default()
    });
    let stats = TransportStats {
        slow: 1,
        malformed: 2,
        ..TransportStats::default()
    };
    r.refused_connections(&stats.refused_by_reason());
    r.connections(|_| Some(true));
    let fsync = metrics.fsync_observer();
    for ms in [1, 2, 5, 20] {
        fsync(Duration::from_millis(ms));
    }

    let text = metrics.encode();
    let bytes = text.len();
    let series = text.lines().filter(|l| !l.starts_with('#')).count();
    let encode = time(Duration::from_secs(2), |_| {
        black_box(metrics.encode());
    });
    println!(
        "{{\"bench\":\"metrics_scrape\",\"members\":5,\"role\":\"leader\",\"us_per_encode\":{:.1},\"bytes\":{bytes},\"series\":{series}}}",
        encode.as_secs_f64() * 1e6
    );

    // What the runtime does on each pass of its thread: the status (the
    // last index moving on, so the lag history records every pass).
    let statuses: Vec<Status> = (0..64).map(|i| leader_status(1_000 + i)).collect();
    let update = time(Duration::from_secs(2), |n| {
        r.status(black_box(&statuses[(n % 64) as usize]));
    });
    println!(
        "{{\"bench\":\"metrics_update\",\"members\":5,\"role\":\"leader\",\"ns_per_status\":{:.0}}}",
        update.as_secs_f64() * 1e9
    );
}
