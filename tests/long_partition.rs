//! Long WAN cuts in main-site mode: every acknowledged command survives
//! at default settings (nothing is compacted away while Paris lacks it),
//! the retained log is reported, and an optional retention bound warns
//! well before it drops anything, then drops only what it reports.
//!
//! The full 10-minute cut at 200 proposals/s is `cargo bench --bench
//! long_partition`; here a 2-minute cut takes the same path: Denver's
//! tail (about 12,000 entries) is more than ten snapshot intervals
//! (`snapshot_every` 1024), so compaction runs many times under the floor
//! during the cut, the floor record stays put, and the reunion sends the
//! tail in more than ten chunks (1024 entries each), each reconciled and
//! committed in turn, then joins and hands back: the 10-minute cut only
//! repeats each step five times more.

use std::time::Duration;

use survivable_core::sim::Violation;
use survivable_core::Event;

#[path = "long_partition/scenario.rs"]
mod scenario;

/// Default hand-back stability wait (`HandBackPolicy::AfterStable`).
const HAND_BACK_STABLE_MS: u64 = 5_000;
/// Default election timeout: a fenced member asks again once per timeout.
const ELECTION_MS: u64 = 200;
/// WAN round trip of the simulator's default network.
const WAN_RTT_MS: u64 = 80;

#[test]
fn a_2_minute_cut_at_200_per_s_loses_nothing_at_defaults() {
    let cut = Duration::from_secs(120);
    let (sim, out) = scenario::run(1, cut, Duration::from_secs(120), |_| {});
    eprintln!("{}", out.to_json());
    assert_eq!(
        out.proposed, out.acked,
        "every proposal acknowledged: {out:?}"
    );
    // 200/s over the cut and the second before it.
    assert!(out.acked >= 200 * 121 - 10, "{out:?}");
    assert_eq!(
        (out.lost, out.lost_compacted, out.applied_twice),
        (0, 0, 0),
        "{out:?}"
    );
    assert!(out.other_violations.is_empty(), "{out:?}");
    assert_eq!(out.compacted_at_reunion, 0, "{out:?}");
    // Denver held its whole tail: it took about half the writes of the
    // cut (Paris took the others once it activated).
    assert!(out.peak_retained_entries >= 100 * 110, "{out:?}");
    // The reunion: the tail in chunks of 1024 entries, each a divergent
    // message and the notice answering it (two WAN round trips) and at
    // worst one re-ask per election timeout; one more election timeout
    // each to join and be added; then the hand-back's stability wait.
    let chunks = out.peak_retained_entries / 1024 + 1;
    let bound = HAND_BACK_STABLE_MS + chunks * (2 * WAN_RTT_MS + ELECTION_MS) + 4 * ELECTION_MS;
    let took = out.reunion_ms.expect("reunited");
    assert!(
        took <= bound,
        "reunion took {took} ms, bound {bound}: {out:?}"
    );
    // Compaction resumed after the reunion: nobody holds the tail now.
    for id in sim.members() {
        let s = sim.node(id).expect("up").status();
        assert_eq!(s.retained.held_back, 0, "{s}");
        assert!(s.retained.entries <= 256 + 1024 + 200, "{s}");
    }
}

#[test]
fn status_reports_the_tail_held_for_paris_during_the_cut() {
    let (sim, out) = scenario::run(2, Duration::from_secs(10), Duration::from_secs(60), |_| {});
    assert_eq!((out.lost, out.applied_twice), (0, 0), "{out:?}");
    // Sampled during the cut: Denver's leader held some 1,000 entries
    // for Paris (100/s for 10 s), well above keep_entries (256).
    assert!(out.peak_retained_entries >= 900, "{out:?}");
    assert!(out.peak_retained_bytes >= 900 * 20, "{out:?}");
    drop(sim);
}

#[test]
fn a_retention_bound_warns_first_then_drops_only_what_it_reports() {
    let max = 3_000;
    let (sim, out) = scenario::run(
        3,
        Duration::from_secs(60),
        Duration::from_secs(120),
        move |c| {
            c.retain_max_entries = Some(max);
        },
    );
    eprintln!("{}", out.to_json());
    let events = sim.events();
    let first = |pred: &dyn Fn(&Event) -> bool| {
        events
            .iter()
            .find(|(_, n, e)| *n == scenario::CM01A && pred(e))
            .map(|(t, _, e)| (*t, e.clone()))
    };
    let (warned_at, warning) = first(&|e| matches!(e, Event::RetentionWarning { .. }))
        .expect("a warning at 80 % of the bound");
    let (dropped_at, _) =
        first(&|e| matches!(e, Event::RetainedDropped { .. })).expect("entries dropped");
    let Event::RetentionWarning {
        entries,
        max_entries,
        ..
    } = warning
    else {
        unreachable!()
    };
    assert_eq!(max_entries, Some(max));
    assert!(entries >= max * 8 / 10 && entries < max, "{entries}");
    // Warned well before: the 20 % left at 100 entries/s is 6 s.
    assert!(
        dropped_at >= warned_at + 5_000_000,
        "{warned_at} {dropped_at}"
    );
    // What was dropped is exactly what CM01a reported, and counted.
    let dropped: Vec<(u64, u64)> = events
        .iter()
        .filter(|(_, n, _)| *n == scenario::CM01A)
        .filter_map(|(_, _, e)| match e {
            Event::RetainedDropped {
                from_index,
                to_index,
                entries,
            } => {
                assert_eq!(to_index - from_index + 1, *entries);
                Some((*from_index, *to_index))
            }
            _ => None,
        })
        .collect();
    let total: u64 = dropped.iter().map(|(a, b)| b - a + 1).sum();
    let node = sim.node(scenario::CM01A).expect("up");
    assert_eq!(node.counters().retained_dropped, total);
    // Never more than the bound held at once (plus what the snapshot
    // interval lets it grow by between compactions).
    assert!(out.peak_retained_entries <= max + 1024, "{out:?}");
    // The loss is the reunion's typed, counted `compacted`, and every
    // acknowledged command the checker finds lost lies in a reported
    // range: nothing else lost, nothing applied twice.
    assert!(out.compacted_at_reunion > 0, "{out:?}");
    assert_eq!(out.applied_twice, 0, "{out:?}");
    assert!(out.other_violations.is_empty(), "{out:?}");
    let mut compacted = 0;
    for v in sim.violations() {
        match v {
            Violation::AckedCompacted { index, .. } => {
                compacted += 1;
                assert!(
                    dropped.iter().any(|(a, b)| (*a..=*b).contains(&index)),
                    "acknowledged index {index} lost outside a reported range {dropped:?}"
                );
            }
            Violation::AckedLost { .. } | Violation::AckedUnreported { .. } => {
                panic!("silent loss: {v:?}")
            }
            _ => {}
        }
    }
    assert_eq!(compacted, out.lost_compacted, "{out:?}");
    assert_eq!(out.lost, 0, "{out:?}");
    assert!(compacted > 0, "{out:?}");
    assert!(out.reunion_ms.is_some(), "{out:?}");
}
