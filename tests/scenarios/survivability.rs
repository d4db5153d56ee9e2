//! The survivability report (`survivable_core::manual::survivability`) against
//! the simulator: for every row, inject the failure and check who leads, that
//! nothing committed is lost, and that the takeover time is the one the report
//! predicts.

use std::time::Duration;

use survivable_core::sim::{KvStore, Sim};
use survivable_core::topology::{
    denver_paris_two_site, Appliance::Virtual, Committed, Core, Scenario, Site, Takeover, Topology,
    TopologyBuilder,
};

use crate::support::*;

/// The report's times are nominal: the real one can be up to a heartbeat
/// and a tick earlier (the last heartbeat left just before the failure)
/// or a tick and some jitter later.
const EARLY_MS: u64 = 20;
const LATE_MS: u64 = 10;

fn check_row(b: &TopologyBuilder, row: &Scenario, seed: u64) {
    let mut sim = Sim::builder(build(b))
        .seed(seed)
        .build(|_| KvStore::default());
    let steady = sim.topology().survivability().steady_leader;
    assert!(
        sim.run_until(Duration::from_secs(3), |s| s.leader().is_some()
            && s.leader() == steady)
    );
    let sites: Vec<&'static str> = ["denver", "paris", "kansas", "london"]
        .into_iter()
        .filter(|s| !sim.site_members(s).is_empty())
        .collect();
    let mut load = Load::new(&sites, Duration::from_millis(5));
    load.run(&mut sim, Duration::from_secs(1));
    let t0 = sim.now_us();
    let old_term = term(&sim);
    sim.inject(&row.failure);
    let wait = row.takeover.unwrap_or_default() + Duration::from_secs(2);
    load.run(&mut sim, wait);
    let what = format!("{} (seed {seed})", row.failure);

    if let Takeover::Split { .. } = row.how {
        // Both sides serve: the main site's leader goes on in its epoch,
        // and a survivable member leads a newer one on the other side.
        let main = row.leader.expect("the main site's leader");
        assert!(
            sim.node(main).unwrap().is_leader(),
            "{what}: {main} still leads"
        );
        let other = sim.leader().expect("a newer epoch's leader");
        assert_ne!(
            sim.site_of(other),
            sim.site_of(main),
            "{what}: the other side leads"
        );
        assert!(sim.node(other).unwrap().epoch() != sim.node(main).unwrap().epoch());
    } else {
        assert_eq!(sim.leader(), row.leader, "{what}: leader");
    }
    match row.how {
        Takeover::Unaffected => {
            assert!(
                leaders_since(&sim, t0).is_empty(),
                "{what}: leadership moved"
            );
            assert!(
                first_commit_after(&sim, t0, old_term - 1).is_some(),
                "{what}: commits stopped"
            );
        }
        Takeover::NoQuorum => {
            assert!(
                first_commit_after(&sim, t0 + 1_000_000, 0).is_none(),
                "{what}: committed without a majority"
            );
        }
        _ => {
            let expected = row.takeover.expect("a takeover time").as_millis() as u64;
            let took =
                first_commit_after(&sim, t0, old_term).expect("a commit under the new leader");
            assert!(
                took + EARLY_MS >= expected && took <= expected + LATE_MS,
                "{what}: took {took} ms, report says {expected} ms"
            );
        }
    }
    if row.committed == Committed::Preserved {
        sim.run_for(Duration::from_secs(1));
        assert_acknowledged_applied(&sim, &load, row.leader.expect("a leader"));
    }
    let violations = sim.violations();
    assert!(violations.is_empty(), "{what}: {violations:?}");
}

fn check_report(b: &TopologyBuilder) {
    let report = build(b).survivability();
    for (i, row) in report.scenarios.iter().enumerate() {
        check_row(b, row, 100 + i as u64);
    }
}

#[test]
fn every_row_of_the_denver_paris_report_holds() {
    check_report(&denver_paris());
}

#[test]
fn every_row_of_the_three_core_report_holds() {
    check_report(&with_london());
}

#[test]
fn a_lone_pair_report_admits_no_quorum() {
    let mut b = Topology::builder(3);
    b.site(Site::main("denver"))
        .core(
            Core::new("cm01", "denver")
                .member(1, "CM01a", "esxi-1", Virtual)
                .member(2, "CM01b", "esxi-3", Virtual),
        )
        .allow_single_host_outage(true);
    let report = build(&b).survivability();
    assert!(report.scenarios.iter().any(|s| s.how == Takeover::NoQuorum));
    check_report(&b);
}

#[test]
fn every_row_of_the_two_site_report_holds() {
    check_report(&denver_paris_two_site());
}
