//! At most once across epochs (main-site mode): a proposal made at a
//! Paris learner, committed and applied by Denver but cut off before Paris
//! saw it, is re-submitted and acknowledged in Paris's epoch; when the
//! sites meet again, Denver's copy must not be applied a second time.
//! Applies are counted per proposal on every member by the simulator's
//! checker ([`Violation::AppliedTwice`]), not read off the key-value
//! state (a second `set` of the same value would leave it unchanged).

use std::time::Duration;

use survivable_core::node::{EpochId, EpochRecord, FIRST_EPOCH};
use survivable_core::sim::{KvStore, Sim, Violation};
use survivable_core::topology::denver_paris_two_site;
use survivable_core::Event;

use crate::support::*;

/// The epoch CM02a (rank 1, primary) founds when it forks from the first.
fn paris_epoch() -> EpochId {
    EpochId::fork(&[EpochRecord::FIRST], CM02A, 1, 0)
}

/// Runs the scenario for `seed`: returns the simulator after the reunion
/// and the proposal made at CM02a.
fn proposed_at_a_learner_then_cut(seed: u64) -> (Sim<KvStore>, survivable_core::node::ProposalId) {
    let mut sim = started(&denver_paris_two_site(), seed);
    settle(&mut sim);
    let id = sim
        .propose(CM02A, b"set once 1".to_vec())
        .expect("a learner forwards to the leader");
    // Denver applies it one WAN one-way delay (40 ms) plus a LAN round
    // trip after the proposal; its append reaches Paris 40 ms after that.
    let denver_has_it = |s: &Sim<KvStore>| {
        s.node(CM01A)
            .is_some_and(|n| n.state_machine().map.contains_key("once"))
    };
    assert!(sim.run_until(Duration::from_millis(60), denver_has_it));
    assert!(
        !sim.node(CM02A)
            .unwrap()
            .state_machine()
            .map
            .contains_key("once"),
        "Paris must not have it yet"
    );
    sim.partition_sites(&["denver"], &["paris"]);
    // Paris activates after survivable_after (2 s) and re-submits the
    // proposal still waiting at CM02a in its own epoch.
    let acked_in_paris = |s: &Sim<KvStore>| {
        s.commits().iter().any(|c| {
            c.id == id
                && c.outcome
                    .result
                    .as_ref()
                    .is_ok_and(|a| a.epoch == paris_epoch())
        })
    };
    assert!(
        sim.run_until(Duration::from_secs(5), acked_in_paris),
        "not acknowledged in Paris's epoch; trace:\n{}",
        sim.trace().join("\n")
    );
    sim.heal();
    // Reunion, reconciliation, joins and hand-back: a few election
    // timeouts each, well inside 15 s.
    sim.run_for(Duration::from_secs(15));
    (sim, id)
}

#[test]
fn a_proposal_acknowledged_in_both_epochs_is_applied_once_everywhere() {
    for seed in 1..=3 {
        let (mut sim, id) = proposed_at_a_learner_then_cut(seed);
        let reconciled = sim
            .events()
            .iter()
            .any(|(_, _, e)| matches!(e, Event::Reconciled { from, .. } if *from == FIRST_EPOCH));
        assert!(
            reconciled,
            "seed {seed}: Denver's epoch was never reconciled"
        );
        let twice: Vec<Violation> = sim
            .violations()
            .into_iter()
            .filter(|v| {
                matches!(
                    v,
                    Violation::AppliedTwice { .. } | Violation::Phantom { .. }
                )
            })
            .collect();
        assert!(twice.is_empty(), "seed {seed}: {twice:?}");
        // Exactly one outcome reached the proposer.
        let outcomes = sim.commits().iter().filter(|c| c.id == id).count();
        assert_eq!(outcomes, 1, "seed {seed}");
        for node in [CM01A, CM01B, CM02A, CM02B] {
            let kv = sim.node(node).expect("up").state_machine();
            assert_eq!(kv.map.get("once").map(String::as_str), Some("1"), "{node}");
        }
        assert_clean(&mut sim);
    }
}
