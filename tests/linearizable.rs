//! Linearizability (what Jepsen checks etcd for): clients write and read
//! registers through raft's read index at random members while a random fault
//! schedule plays, in witness mode; the recorded history must be linearizable,
//! and the run must keep every invariant of the shared checker
//! (`survivable_core::manual::invariants`). A violation prints the schedule
//! line and a minimal non-linearizable history of one key, or the invariants
//! broken.
//!
//! `LINEARIZABLE_CASES` sets the number of schedules (default 200).

use quickcheck::{QuickCheck, TestResult};
use survivable_core::sim::linearizability::CheckError;
use survivable_core::sim::{LinearOptions, Schedule};

fn check(schedule: Schedule) -> TestResult {
    let topology = survivable_core::topology::denver_paris()
        .build()
        .expect("valid topology")
        .shared();
    let report = match schedule.run_linearizable(topology, &LinearOptions::default()) {
        Ok(r) => r,
        Err(e) => return TestResult::error(format!("{schedule}: {e}")),
    };
    if !report.violations.is_empty() {
        return TestResult::error(format!(
            "schedule: {schedule}\ninvariant violations: {:?}\ntrace (last 40):\n{}",
            report.violations,
            tail(&report.trace)
        ));
    }
    match report.verdict {
        Ok(_) if report.completed > 0 => TestResult::passed(),
        Ok(_) => TestResult::error(format!("{schedule}: no operation completed")),
        Err(CheckError::NotLinearizable(v)) => TestResult::error(format!(
            "schedule: {schedule}\n{v}\ntrace (last 40):\n{}",
            tail(&report.trace)
        )),
        Err(e) => TestResult::error(format!("{schedule}: {e}")),
    }
}

/// The newest 40 trace lines, newest first.
fn tail(trace: &[String]) -> String {
    trace
        .iter()
        .rev()
        .take(40)
        .cloned()
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn histories_under_random_faults_are_linearizable() {
    let cases = std::env::var("LINEARIZABLE_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    QuickCheck::new()
        .tests(cases)
        .max_tests(cases * 2)
        .quickcheck(check as fn(Schedule) -> TestResult);
}

#[test]
fn a_quiet_cluster_is_linearizable_and_busy() {
    let topology = survivable_core::topology::denver_paris()
        .build()
        .unwrap()
        .shared();
    let schedule: Schedule = "seed=5; +3000ms crash n1; +2000ms restart n1"
        .parse()
        .unwrap();
    let report = schedule
        .run_linearizable(topology, &LinearOptions::default())
        .unwrap();
    assert!(report.violations.is_empty(), "{:?}", report.violations);
    let verdict = report.verdict.expect("linearizable");
    assert!(
        report.completed > 200,
        "only {} operations completed",
        report.completed
    );
    assert!(verdict.ops > 200);
}
