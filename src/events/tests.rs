//! The stable JSON form and the human line of every event: one golden
//! string each, so that any change to what dashboards and `node run`
//! readers parse is a visible change here.

use super::*;
use crate::ids::FIRST_EPOCH;
use crate::state_machine::ReconcileError;

/// `e2/n3`: the first fork, by the primary of the rank-1 core.
const E2: EpochId = EpochId {
    number: 131_071,
    founder: NodeId(3),
};
const E2_JSON: &str = r#"{"name":"e2/n3","number":131071,"founder":3}"#;
const E1_JSON: &str = r#"{"name":"e1","number":1,"founder":0}"#;

/// One value of every variant, its JSON and its text.
fn cases() -> Vec<(Event, String, &'static str)> {
    let mut all = leadership_cases();
    all.extend(hand_back_and_membership_cases());
    all.extend(epoch_cases());
    all.extend(retention_cases());
    all.extend(redundancy_cases());
    all
}

/// Retention events (long WAN cuts, main-site mode).
fn retention_cases() -> Vec<(Event, String, &'static str)> {
    vec![
        (
            Event::RetentionWarning {
                entries: 80_000,
                bytes: 6_400_000,
                max_entries: Some(100_000),
                max_bytes: None,
                percent: 80,
            },
            r#"{"type":"retention_warning","entries":80000,"bytes":6400000,"max_entries":100000,"max_bytes":null,"percent":80}"#.into(),
            "retained log at 80% of its bound: 80000 entries (bound 100000), 6400000 bytes \
             (bound none); at the bound, entries the survivable site has not received are \
             dropped: end the WAN cut or raise the bound",
        ),
        (
            Event::RetainedDropped {
                from_index: 1201,
                to_index: 2224,
                entries: 1024,
            },
            r#"{"type":"retained_dropped","from_index":1201,"to_index":2224,"entries":1024}"#.into(),
            "retention bound reached: dropped 1024 entries (1201..=2224) the survivable site \
             has not received; the reunion will count them as compacted, not reconcile them",
        ),
    ]
}

/// Redundancy and automatic replacement events.
fn redundancy_cases() -> Vec<(Event, String, &'static str)> {
    let n = NodeId;
    vec![
        (
            Event::RedundancyLost {
                core: "CM01".into(),
                missing: n(1),
            },
            r#"{"type":"redundancy_lost","core":"CM01","missing":1}"#.into(),
            "CM01 running without a standby: n1 does not answer",
        ),
        (
            Event::RedundancyRestored {
                core: "CM01".into(),
                lost_ms: 61_200,
            },
            r#"{"type":"redundancy_restored","core":"CM01","lost_ms":61200}"#.into(),
            "CM01 redundant again after 61200 ms without a standby",
        ),
        (
            Event::ReplacementStarted {
                dead: n(1),
                spare: n(9),
            },
            r#"{"type":"replacement_started","dead":1,"spare":9}"#.into(),
            "replacing n1 with the spare n9 (silent past replace_after): promoted once it has \
             connected and caught up",
        ),
        (
            Event::ReplicationChanged {
                state: crate::replication::ReplicationState::AsyncWait,
                state_id: 7,
                previous: crate::replication::ReplicationState::Sync,
                index: 420,
            },
            r#"{"type":"replication_changed","state":"async_wait","state_id":7,"previous":"sync","index":420}"#.into(),
            "replication sync -> async_wait (state id 7, index 420): the survivable site is \
             silent; commits still need it while every main-site member learns they soon will \
             not",
        ),
    ]
}

/// Leadership events.
fn leadership_cases() -> Vec<(Event, String, &'static str)> {
    let n = NodeId;
    vec![
        (
            Event::LeaderChanged {
                term: 3,
                leader: Some(n(1)),
            },
            r#"{"type":"leader_changed","term":3,"leader":1}"#.into(),
            "leader n1 at term 3",
        ),
        (
            Event::LeaderChanged {
                term: 4,
                leader: None,
            },
            r#"{"type":"leader_changed","term":4,"leader":null}"#.into(),
            "no leader known at term 4",
        ),
        (
            Event::BecameLeader {
                term: 3,
                cause: LeadershipCause::Elected,
            },
            r#"{"type":"became_leader","term":3,"cause":{"type":"elected"}}"#.into(),
            "became leader at term 3: elected",
        ),
        (
            Event::BecameLeader {
                term: 5,
                cause: LeadershipCause::PairFailover { from: n(1) },
            },
            r#"{"type":"became_leader","term":5,"cause":{"type":"pair_failover","from":1}}"#.into(),
            "became leader at term 5: pair failover: the standby replaced its silent primary n1",
        ),
        (
            Event::BecameLeader {
                term: 6,
                cause: LeadershipCause::Takeover { rank: 1 },
            },
            r#"{"type":"became_leader","term":6,"cause":{"type":"takeover","rank":1}}"#.into(),
            "became leader at term 6: takeover by the survivable core of rank 1",
        ),
        (
            Event::BecameLeader {
                term: 7,
                cause: LeadershipCause::Transfer,
            },
            r#"{"type":"became_leader","term":7,"cause":{"type":"transfer"}}"#.into(),
            "became leader at term 7: leadership transferred here",
        ),
        (
            Event::BecameLeader {
                term: 8,
                cause: LeadershipCause::LastResort,
            },
            r#"{"type":"became_leader","term":8,"cause":{"type":"last_resort"}}"#.into(),
            "became leader at term 8: witness leading as the last resort, briefly, to hand \
             leadership on to the best survivable core (expected on a WAN cut)",
        ),
        (
            Event::SteppedDown { term: 3 },
            r#"{"type":"stepped_down","term":3}"#.into(),
            "stepped down after leading term 3",
        ),
        (
            Event::FailoverStarted {
                primary: n(1),
                silent_ms: 150,
            },
            r#"{"type":"failover_started","primary":1,"silent_ms":150}"#.into(),
            "pair failover: primary n1 silent for 150 ms, the standby campaigns",
        ),
        (
            Event::TakeoverStarted {
                rank: 1,
                leaderless_ms: 5000,
            },
            r#"{"type":"takeover_started","rank":1,"leaderless_ms":5000}"#.into(),
            "takeover: no leader for 5000 ms, the survivable core of rank 1 campaigns",
        ),
        (
            Event::LastResortCampaign {
                leaderless_ms: 9000,
            },
            r#"{"type":"last_resort_campaign","leaderless_ms":9000}"#.into(),
            "no leader for 9000 ms: the witness campaigns as the last resort, to hold \
             leadership briefly and hand it on to the best survivable core (expected on a \
             WAN cut, not an alarm)",
        ),
    ]
}

/// Hand-back and membership events.
fn hand_back_and_membership_cases() -> Vec<(Event, String, &'static str)> {
    let n = NodeId;
    vec![
        (
            Event::HandBackAttempt {
                attempt: 1,
                target: n(1),
                lag: 2,
            },
            r#"{"type":"hand_back_attempt","attempt":1,"target":1,"lag":2}"#.into(),
            "hand-back attempt 1 to n1 (it lags 2 entries)",
        ),
        (
            Event::HandBackFailed {
                attempt: 2,
                target: n(1),
            },
            r#"{"type":"hand_back_failed","attempt":2,"target":1}"#.into(),
            "hand-back attempt 2 to n1 did not land",
        ),
        (
            Event::HandBackCompleted {
                target: n(1),
                attempts: 1,
            },
            r#"{"type":"hand_back_completed","target":1,"attempts":1}"#.into(),
            "hand-back to n1 completed in 1 attempt(s)",
        ),
        (
            Event::HandBackAbandoned {
                target: n(1),
                attempts: 3,
            },
            r#"{"type":"hand_back_abandoned","target":1,"attempts":3}"#.into(),
            "hand-back to n1 abandoned after 3 attempts: retried once its contact is \
             interrupted and restored, or on an operator's hand-back",
        ),
        (
            Event::MemberAdded { id: n(9) },
            r#"{"type":"member_added","id":9}"#.into(),
            "member n9 added as a learner",
        ),
        (
            Event::MemberPromoted { id: n(9) },
            r#"{"type":"member_promoted","id":9}"#.into(),
            "member n9 promoted to voter",
        ),
        (
            Event::MemberRemoved { id: n(2) },
            r#"{"type":"member_removed","id":2}"#.into(),
            "member n2 removed",
        ),
        (
            Event::TopologyChanged {
                version: 2,
                moved: vec![n(4)],
            },
            r#"{"type":"topology_changed","version":2,"moved":[4]}"#.into(),
            "topology version 2 applied; new address for n4",
        ),
        (
            Event::Removed,
            r#"{"type":"removed"}"#.into(),
            "this member was removed from the configuration",
        ),
        (
            Event::Drained,
            r#"{"type":"drained"}"#.into(),
            "drained for maintenance: never campaigns nor takes leadership, stays a replica",
        ),
        (
            Event::Undrained,
            r#"{"type":"undrained"}"#.into(),
            "undrained: campaigns and takes leadership again",
        ),
        (
            Event::TransferStarted { target: n(2) },
            r#"{"type":"transfer_started","target":2}"#.into(),
            "leader transfer to n2 started",
        ),
        (
            Event::TransferFailed { target: n(2) },
            r#"{"type":"transfer_failed","target":2}"#.into(),
            "leader transfer to n2 did not land (aborted by raft): still leading",
        ),
    ]
}

/// Epoch events.
fn epoch_cases() -> Vec<(Event, String, &'static str)> {
    vec![
        (
            Event::Activated {
                epoch: E2,
                fork_index: 100,
                fork_term: 4,
                rpo_entries: 3,
                rpo_ms: 20,
                silent_ms: 5000,
                rpo_proven: false,
            },
            format!(
                r#"{{"type":"activated","epoch":{E2_JSON},"fork_index":100,"fork_term":4,"rpo_entries":3,"rpo_ms":20,"silent_ms":5000,"rpo_proven":false}}"#
            ),
            "activated epoch e2/n3 from index 100 (term 4) after the main site was silent \
             5000 ms; loss known now: 3 entries, at least 20 ms",
        ),
        (
            Event::Activated {
                epoch: E2,
                fork_index: 100,
                fork_term: 4,
                rpo_entries: 0,
                rpo_ms: 0,
                silent_ms: 2210,
                rpo_proven: true,
            },
            format!(
                r#"{{"type":"activated","epoch":{E2_JSON},"fork_index":100,"fork_term":4,"rpo_entries":0,"rpo_ms":0,"silent_ms":2210,"rpo_proven":true}}"#
            ),
            "activated epoch e2/n3 from index 100 (term 4) after the main site was silent \
             2210 ms; nothing lost (RPO 0 entries, 0 ms, proven: both sites held every commit)",
        ),
        (
            Event::EpochFenced { ours: FIRST_EPOCH, newer: E2 },
            format!(r#"{{"type":"epoch_fenced","ours":{E1_JSON},"newer":{E2_JSON}}}"#),
            "epoch e1 met the newer epoch e2/n3: fenced, no more proposals here",
        ),
        (
            Event::FenceLifted { ours: FIRST_EPOCH, claimed: E2, by: NodeId(4), fenced_ms: 2000 },
            format!(
                r#"{{"type":"fence_lifted","ours":{E1_JSON},"claimed":{E2_JSON},"by":4,"fenced_ms":2000}}"#
            ),
            "alarm: n4 claimed epoch e2/n3 but no notice of it came in 2000 ms: fence \
             lifted, epoch e1 takes proposals again; check n4",
        ),
        (
            Event::Reconciled {
                from: FIRST_EPOCH,
                from_index: 101,
                to_index: 103,
                ranges: vec![EntryRange { epoch: FIRST_EPOCH, first: 101, last: 103 }],
                epoch: E2,
                index: 120,
                divergent: 3,
                commands: 2,
                compacted: 0,
            },
            format!(
                r#"{{"type":"reconciled","from":{E1_JSON},"from_index":101,"to_index":103,"ranges":[{{"epoch":{E1_JSON},"first":101,"last":103}}],"epoch":{E2_JSON},"index":120,"divergent":3,"commands":2,"compacted":0}}"#
            ),
            "reconciled epoch e1 indexes 101..=103 into e2/n3 at index 120: 3 divergent, 2 \
             applied, 0 compacted [e1:101..=103]",
        ),
        (
            Event::ReconcileFailed {
                from: FIRST_EPOCH,
                attempt: 2,
                failure: ReconcileFailure::Refused(ReconcileError { reason: "disk \"full\"".into() }),
                retry_in_ms: 400,
            },
            format!(
                r#"{{"type":"reconcile_failed","from":{E1_JSON},"attempt":2,"failure":"reconciliation refused: disk \"full\"","retry_in_ms":400}}"#
            ),
            "reconciliation of epoch e1 failed (attempt 2): reconciliation refused: disk \"full\"; \
             retried in 400 ms",
        ),
        (
            Event::JoinedEpoch { epoch: E2 },
            format!(r#"{{"type":"joined_epoch","epoch":{E2_JSON}}}"#),
            "joined epoch e2/n3; catching up from its leader",
        ),
    ]
}

#[test]
fn every_event_has_a_stable_json_form_and_a_human_line() {
    for (event, json, text) in cases() {
        assert_eq!(event.to_json(), json, "JSON of {event:?}");
        assert_eq!(event.to_string(), text, "text of {event:?}");
        assert!(!event.to_string().contains("NodeId"), "{event}");
        // The JSON is valid and carries the variant's tag.
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert!(v["type"].is_string(), "{json}");
    }
}

/// Every variant is in `cases` (a new variant must get its golden line).
#[test]
fn the_golden_cases_cover_every_variant() {
    let mut kinds: Vec<String> = cases()
        .iter()
        .map(|(e, _, _)| {
            let v: serde_json::Value = serde_json::from_str(&e.to_json()).unwrap();
            v["type"].as_str().unwrap().to_string()
        })
        .collect();
    kinds.dedup();
    assert_eq!(kinds.len(), 31, "{kinds:?}");
}
