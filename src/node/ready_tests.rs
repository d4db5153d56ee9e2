//! What a `Ready` changes: leadership transitions, configuration
//! membership, and when to snapshot.

use super::*;
use crate::events::LeadershipCause;
use crate::node::election::Election;

#[test]
fn role_changes_are_gains_and_losses_of_leadership_only() {
    use StateRole::*;
    assert_eq!(transition(Follower, Leader), Transition::Gained);
    assert_eq!(transition(Candidate, Leader), Transition::Gained);
    assert_eq!(transition(Leader, Follower), Transition::Lost);
    assert_eq!(transition(Leader, Leader), Transition::Same);
    assert_eq!(transition(Follower, PreCandidate), Transition::Same);
    assert_eq!(transition(PreCandidate, Candidate), Transition::Same);
}

#[test]
fn winning_reports_the_campaigns_cause_once_then_an_ordinary_election() {
    let mut e = Election {
        pending_cause: Some(LeadershipCause::Takeover { rank: 1 }),
        since_leader: 300,
        ..Election::default()
    };
    assert_eq!(e.gained(), LeadershipCause::Takeover { rank: 1 });
    assert_eq!(e.since_leader, 0);
    assert!(e.fresh_leader);
    assert_eq!(e.gained(), LeadershipCause::Elected);
}

#[test]
fn deposed_without_successor_or_hand_back_stands_again_after_the_failover_time() {
    let mut e = Election::default();
    e.deposed(true, false, 5);
    assert_eq!(e.step_up, None, "a successor leads");
    e.deposed(false, true, 5);
    assert_eq!(e.step_up, None, "handed over on purpose");
    e.deposed(false, false, 5);
    assert_eq!(e.step_up, Some(5));
}

#[test]
fn candidates_keep_their_cause_followers_drop_it() {
    let mut e = Election {
        pending_cause: Some(LeadershipCause::LastResort),
        ..Election::default()
    };
    e.settle_role(StateRole::Candidate);
    assert_eq!(e.pending_cause, Some(LeadershipCause::LastResort));
    assert_eq!(e.role, StateRole::Candidate);
    e.settle_role(StateRole::Follower);
    assert_eq!(e.pending_cause, None);
}

#[test]
fn leader_changes_are_reported_once_and_the_last_leader_is_kept() {
    let mut e = Election::default();
    assert!(!e.leader_seen(None));
    assert!(e.leader_seen(Some(NodeId(2))));
    assert!(!e.leader_seen(Some(NodeId(2))));
    assert!(e.leader_seen(None));
    assert_eq!(e.leader, None);
    assert_eq!(e.last_leader, Some(NodeId(2)));
}

#[test]
fn membership_covers_both_halves_of_a_joint_configuration() {
    let conf = ConfState {
        voters: vec![1, 2],
        learners: vec![3],
        voters_outgoing: vec![1, 4],
        learners_next: vec![5],
        ..ConfState::default()
    };
    for id in 1..=5 {
        assert!(in_conf(&conf, NodeId(id)), "{id}");
    }
    assert!(!in_conf(&conf, NodeId(6)));
    assert!(!in_conf(&ConfState::default(), NodeId(1)));
}

#[test]
fn snapshots_are_taken_every_n_entries_or_on_request_when_something_was_applied() {
    let small = LogWeight::default();
    assert!(!snapshot_due(1_023, 0, 1_024, false, small));
    assert!(snapshot_due(1_024, 0, 1_024, false, small));
    assert!(snapshot_due(5, 0, 1_024, true, small), "raft asked");
    assert!(
        !snapshot_due(7, 7, 1_024, true, small),
        "nothing applied since the last"
    );
    assert!(!snapshot_due(2_000, 1_024, 1_024, false, small));
}

#[test]
fn a_snapshot_waits_until_the_log_held_weighs_as_much_as_the_last_one() {
    // A 2 MB state under 60-byte commands: 1,024 entries are 61 KB.
    let mut weight = LogWeight {
        held_bytes: 61_440,
        snapshot_bytes: 2_000_000,
    };
    assert!(!snapshot_due(1_024, 0, 1_024, false, weight));
    assert!(
        snapshot_due(1_024, 0, 1_024, true, weight),
        "raft's request is not delayed"
    );
    weight.held_bytes = 2_000_000;
    assert!(snapshot_due(40_000, 0, 1_024, false, weight));
    assert!(
        !snapshot_due(1_000, 0, 1_024, false, weight),
        "the entry count still applies"
    );
}

#[test]
fn compaction_keeps_everything_above_the_floor_and_at_least_keep_entries() {
    // No floor (witness mode, or no survivable learner): keep_entries.
    assert_eq!(keep_for(5000, 256, None), 256);
    // Paris committed 1200 of 5000: keep 3800, compacting up to 1200.
    assert_eq!(keep_for(5000, 256, Some(1200)), 3800);
    // Paris is close behind: keep_entries still applies.
    assert_eq!(keep_for(5000, 256, Some(4900)), 256);
    // Nothing reported yet (a new leader, a follower without a record):
    // keep the whole log.
    assert_eq!(keep_for(5000, 256, Some(0)), 5000);
}

#[test]
fn the_floor_is_recorded_each_step_it_moves_never_backwards() {
    assert!(floor_record_due(256, 0, 256));
    assert!(!floor_record_due(255, 0, 256));
    assert!(floor_record_due(1000, 700, 256));
    assert!(!floor_record_due(900, 700, 256));
    assert!(!floor_record_due(100, 700, 256), "never lower");
    // A zero step still needs the floor to move.
    assert!(!floor_record_due(7, 7, 0));
    assert!(floor_record_due(8, 7, 0));
}

/// A state machine of fixed bytes, for a start and a restart.
struct Fixed;

impl StateMachine for Fixed {
    fn apply(&mut self, _: u64, _: &[u8]) -> Vec<u8> {
        Vec::new()
    }
    fn snapshot(&self) -> Vec<u8> {
        vec![7; 300]
    }
    fn restore(&mut self, _: &[u8]) -> Result<(), crate::state_machine::RestoreError> {
        Ok(())
    }
}

#[test]
fn a_restarted_member_weighs_its_log_against_the_snapshot_it_stored() {
    use crate::node::NodeConfig;
    use crate::storage::{LogStore, MemStorage};
    let topology = crate::topology::denver_paris().build().unwrap().shared();
    let storage = MemStorage::new();
    let first = Node::new(
        NodeConfig::new(NodeId(1), topology.clone()),
        storage.clone(),
        Fixed,
    );
    drop(first.unwrap());
    let stored = storage.latest_snapshot().data.len() as u64;
    assert!(stored >= 300, "the bootstrap snapshot holds the state");
    let again = Node::new(NodeConfig::new(NodeId(1), topology), storage, Fixed).unwrap();
    assert_eq!(again.snaps.last_bytes, stored);
}
