//! The policy's decision and the redundancy grouping, as pure functions.

use super::*;
use crate::topology::Appliance;

fn w(id: u64, core: &str, silent: u64, voter: bool) -> Watched {
    Watched {
        id: NodeId(id),
        core: core.into(),
        silent,
        voter,
    }
}

fn spare(id: u64, host: &str) -> MemberSpec {
    MemberSpec {
        id: NodeId(id),
        name: format!("spare{id}"),
        host: host.into(),
        appliance: Appliance::Virtual,
    }
}

#[test]
fn only_members_silent_past_the_limit_degrade_their_core() {
    let watched = [
        w(2, "cm01", 250, true),
        w(3, "cm02", 10, false),
        w(4, "cm02", 200, false),
        w(5, "cm02", 201, false),
    ];
    let by_core = silent_by_core(&watched, 200);
    let ids = |c: &str| -> Vec<u64> { by_core[c].iter().map(|w| w.id.0).collect() };
    assert_eq!(ids("cm01"), vec![2]);
    // Silent exactly the limit is not yet lost.
    assert_eq!(ids("cm02"), vec![5]);
    assert_eq!(by_core.len(), 2);
    assert!(silent_by_core(&[w(2, "cm01", 3, true)], 200).is_empty());
}

#[test]
fn the_policy_replaces_a_voter_silent_past_after_with_the_first_fitting_spare() {
    let spares = [spare(10, "esxi-1"), spare(11, "esxi-9")];
    let watched = [w(2, "cm01", 1000, true), w(1, "cm01", 5, true)];
    let none = BTreeSet::new();
    // esxi-1 is ruled out (say it is the partner's host).
    let fits = |_: NodeId, s: &MemberSpec| s.host != "esxi-1";
    let got = choose_spare(&spares, 1000, &watched, &none, false, fits);
    assert_eq!(got, Some((NodeId(2), &spares[1])));
    // Not yet silent for `after`.
    assert_eq!(
        choose_spare(&spares, 1001, &watched, &none, false, fits),
        None
    );
    // Another replacement runs.
    assert_eq!(
        choose_spare(&spares, 1000, &watched, &none, true, fits),
        None
    );
    // Once per member.
    let tried: BTreeSet<NodeId> = [NodeId(2)].into();
    assert_eq!(
        choose_spare(&spares, 1000, &watched, &tried, false, fits),
        None
    );
    // No spare fits: nothing.
    let no = |_: NodeId, _: &MemberSpec| false;
    assert_eq!(
        choose_spare(&spares, 1000, &watched, &none, false, no),
        None
    );
    // A learner (a survivable member in main-site mode) is not replaced.
    let learner = [w(4, "cm02", 5000, false)];
    assert_eq!(
        choose_spare(&spares, 1000, &learner, &none, false, fits),
        None
    );
}

#[test]
fn the_lowest_silent_id_goes_first_and_a_spare_that_fits_no_one_is_skipped() {
    let spares = [spare(10, "h10"), spare(11, "h11")];
    let watched = [w(7, "cm02", 2000, true), w(3, "cm01", 2000, true)];
    let none = BTreeSet::new();
    // Spare 10 fits only member 7, 11 only member 3.
    let fits = |d: NodeId, s: &MemberSpec| (d.0 == 7) == (s.id.0 == 10);
    let got = choose_spare(&spares, 100, &watched, &none, false, fits);
    assert_eq!(got, Some((NodeId(3), &spares[1])));
}

#[test]
fn a_degraded_core_prints_its_missing_members_and_since_when() {
    let d = Degraded {
        core: "CM01".into(),
        missing: vec![NodeId(1)],
        since_ms: 1_700_000,
    };
    assert_eq!(
        d.to_string(),
        "CM01 running without a standby since 1700000 ms (n1 silent)"
    );
    let json: serde_json::Value = serde_json::from_str(&crate::events::json_of(&d)).unwrap();
    assert_eq!(json["core"], "CM01");
    assert_eq!(json["missing"][0], 1);
    assert_eq!(json["since_ms"], 1_700_000);
}
