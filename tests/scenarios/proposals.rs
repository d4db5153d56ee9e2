//! Proposals: applied at most once and always answered, whatever the
//! proposer missed.

use std::time::Duration;

use crate::support::*;

#[test]
fn a_proposer_that_catches_up_from_a_snapshot_still_gets_every_answer() {
    let mut sim = started(&denver_paris(), 31);
    // CM02a hears almost nothing from the leader but keeps proposing; the
    // leader compacts its log meanwhile, so CM02a comes back by snapshot.
    sim.set_link_loss(CM01A, CM02A, 0.97);
    let mut load = Load::new(&["paris"], Duration::from_millis(2));
    load.run(&mut sim, Duration::from_secs(6));
    sim.restore_links();
    load.run(&mut sim, Duration::from_millis(200));
    assert!(
        sim.run_until_converged(Duration::from_secs(10)),
        "still pending"
    );
    let at_cm02a =
        |sim: &survivable_core::sim::Sim<_>| sim.node(CM02A).unwrap().counters().duplicates_dropped;
    let dups = at_cm02a(&sim);
    sim.run_for(Duration::from_secs(2));
    assert_eq!(
        at_cm02a(&sim),
        dups,
        "retries went on after everything was answered"
    );
    assert_eq!(
        sim.commits().len(),
        load.proposed.len(),
        "every proposal answered"
    );
    let unseen = sim
        .commits()
        .iter()
        .filter(|c| {
            c.outcome
                .result
                .as_ref()
                .is_ok_and(|a| a.response.is_none())
        })
        .count();
    assert!(unseen > 0, "the scenario did not make CM02a miss applies");
    assert_acknowledged_applied(&sim, &load, CM01A);
    assert_clean(&mut sim);
}
