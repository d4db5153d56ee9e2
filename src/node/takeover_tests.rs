//! Survivable activation: who may fork a new epoch, when, and the RPO it
//! reports.

use super::*;
use crate::node::testkit::{main_core, survivable, witness};

#[test]
fn only_an_idle_survivable_learner_in_main_site_mode_may_activate() {
    let rank2_standby = survivable(8, 2, 1).role;
    assert_eq!(
        activation_slot(QuorumMode::MainSite, false, true, &rank2_standby),
        Some((2, 1))
    );
    assert_eq!(
        activation_slot(QuorumMode::Witness, false, true, &rank2_standby),
        None,
        "witness mode never forks"
    );
    assert_eq!(
        activation_slot(QuorumMode::MainSite, true, true, &rank2_standby),
        None,
        "leading, fenced or joining"
    );
    assert_eq!(
        activation_slot(QuorumMode::MainSite, false, false, &rank2_standby),
        None,
        "a voter of its epoch (e.g. the founder of the current one)"
    );
    assert_eq!(
        activation_slot(QuorumMode::MainSite, false, true, &main_core(1, 0).role),
        None
    );
    assert_eq!(
        activation_slot(QuorumMode::MainSite, false, true, &witness(5).role),
        None
    );
}

#[test]
fn better_survivors_are_lower_ranks_and_earlier_partners() {
    let members = [
        main_core(1, 0),
        main_core(2, 1),
        survivable(3, 1, 0),
        survivable(4, 1, 1),
        survivable(5, 2, 0),
        survivable(6, 2, 1),
        witness(7),
    ];
    assert_eq!(
        better_survivors(members.iter(), 2, 1),
        vec![NodeId(3), NodeId(4), NodeId(5)]
    );
    assert_eq!(better_survivors(members.iter(), 1, 1), vec![NodeId(3)]);
    assert_eq!(better_survivors(members.iter(), 1, 0), Vec::<NodeId>::new());
}

#[test]
fn unattended_activation_needs_a_minority_reachable_and_no_better_survivor() {
    // Two of three voters reachable: the epoch still has a quorum.
    assert!(!unattended_activation(2, 3, 0));
    // The main site's tie-breaker alone is a minority.
    assert!(unattended_activation(1, 3, 0));
    assert!(unattended_activation(0, 3, 0));
    // Exactly half of four is no majority.
    assert!(unattended_activation(2, 4, 0));
    // A better-ranked survivable core is reachable: it goes first.
    assert!(!unattended_activation(0, 3, 1));
}

#[test]
fn manual_activation_is_refused_while_the_leader_or_a_majority_is_heard() {
    assert_eq!(manual_activation(None, 1, 3), Ok(()));
    assert_eq!(
        manual_activation(Some(NodeId(1)), 0, 3),
        Err(ActivateError::MainSiteReachable {
            leader: Some(NodeId(1)),
            reachable: 0,
            voters: 3
        })
    );
    assert_eq!(
        manual_activation(None, 2, 3),
        Err(ActivateError::MainSiteReachable {
            leader: None,
            reachable: 2,
            voters: 3
        })
    );
}

#[test]
fn rpo_in_time_runs_from_the_first_report_beyond_the_fork_to_the_last_contact() {
    let mut ep = EpochState::default();
    ep.note_report(1_000, 10, Some(12));
    ep.note_report(1_100, 10, Some(15));
    ep.note_report(1_200, 10, Some(15)); // not growing: not recorded
    ep.note_report(1_500, 10, None); // a heartbeat: contact only
    ep.leader_commit = 15;
    assert_eq!(ep.beyond, [(12, 1_000), (15, 1_100)]);
    assert_eq!(ep.leader_heard_ms, 1_500);
    assert_eq!(ep.rpo_ms(10), 500, "first report beyond 10 came at 1000");
    assert_eq!(ep.rpo_ms(12), 400, "first report beyond 12 came at 1100");
    assert_eq!(ep.rpo_ms(15), 0, "nothing committed beyond the fork");
}

#[test]
fn reports_up_to_what_is_applied_are_dropped() {
    let mut ep = EpochState::default();
    ep.note_report(1_000, 10, Some(12));
    ep.note_report(1_100, 10, Some(15));
    // Applied up to 12 now: the first report is covered.
    ep.note_report(1_200, 12, Some(11));
    assert_eq!(ep.beyond, [(15, 1_100)]);
    ep.note_report(1_300, 15, None);
    assert!(ep.beyond.is_empty());
}
