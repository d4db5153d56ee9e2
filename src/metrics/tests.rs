//! Encoding: every metric appears, with the values fed to it.

use std::time::Duration;

use super::*;
use crate::events::LeadershipCause;
use crate::node::{EpochId, PeerStatus, ProposalId, FIRST_EPOCH};
use crate::topology::denver_paris;

/// The value of the series `series` (name and labels exactly as encoded).
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
}

fn status() -> Status {
    Status {
        id: NodeId(1),
        site: "denver".into(),
        role: NodeRole::Leader,
        leader: Some(NodeId(1)),
        epoch: FIRST_EPOCH,
        term: 7,
        commit: 40,
        applied: 39,
        first_index: 1,
        last_index: 42,
        peers: vec![
            PeerStatus {
                id: NodeId(2),
                matched: 42,
                lag: 0,
                reachable: true,
            },
            PeerStatus {
                id: NodeId(3),
                matched: 30,
                lag: 12,
                reachable: false,
            },
        ],
        rpo_entries: 0,
        rpo_ms: 0,
        drained: false,
        retained: crate::node::Retained {
            entries: 42,
            bytes: 4200,
            held_back: 10,
        },
        redundancy: Vec::new(),
        replication: None,
    }
}

fn recorder() -> Recorder {
    let topology = denver_paris().build().unwrap();
    Recorder::new(Metrics::new(NodeId(1), &topology))
}

#[test]
fn every_metric_is_listed_with_its_type() {
    let r = recorder();
    let text = r.metrics().encode();
    for (name, kind) in [
        ("survivable_member_info", "gauge"),
        ("survivable_role", "gauge"),
        ("survivable_term", "gauge"),
        ("survivable_epoch", "gauge"),
        ("survivable_leader_site", "gauge"),
        ("survivable_leader_member", "gauge"),
        ("survivable_commit_index", "gauge"),
        ("survivable_applied_index", "gauge"),
        ("survivable_last_index", "gauge"),
        ("survivable_peer_connected", "gauge"),
        ("survivable_rpo_entries", "gauge"),
        ("survivable_rpo_seconds", "gauge"),
        ("survivable_retained_entries", "gauge"),
        ("survivable_retained_bytes", "gauge"),
        ("survivable_retained_held_back_entries", "gauge"),
        ("survivable_retention_warnings_total", "counter"),
        ("survivable_retained_dropped_entries_total", "counter"),
        ("survivable_pair_failovers_total", "counter"),
        ("survivable_takeovers_total", "counter"),
        ("survivable_activations_total", "counter"),
        ("survivable_hand_backs_attempted_total", "counter"),
        ("survivable_hand_backs_succeeded_total", "counter"),
        ("survivable_hand_backs_failed_total", "counter"),
        ("survivable_hand_backs_abandoned_total", "counter"),
        ("survivable_campaigns_suppressed_total", "counter"),
        ("survivable_refused_envelopes_total", "counter"),
        ("survivable_takeover_seconds", "histogram"),
        ("survivable_hand_back_outage_seconds", "histogram"),
        ("survivable_proposal_seconds", "histogram"),
        ("survivable_fsync_seconds", "histogram"),
    ] {
        assert!(
            text.contains(&format!("# TYPE {name} {kind}\n")),
            "{name} {kind} missing in\n{text}"
        );
    }
    assert_eq!(
        value(
            &text,
            r#"survivable_member_info{member="n1",site="denver"}"#
        ),
        Some(1.0),
        "{text}"
    );
}

#[test]
fn a_status_is_encoded_as_gauges() {
    let mut r = recorder();
    r.status(&status());
    let text = r.metrics().encode();
    let v = |s: &str| value(&text, s).unwrap_or_else(|| panic!("{s} missing in\n{text}"));
    assert_eq!(v(r#"survivable_role{role="leader"}"#), 1.0);
    assert_eq!(v(r#"survivable_role{role="follower"}"#), 0.0);
    assert_eq!(v("survivable_term"), 7.0);
    assert_eq!(v("survivable_epoch"), 1.0);
    assert_eq!(v("survivable_commit_index"), 40.0);
    assert_eq!(v("survivable_applied_index"), 39.0);
    assert_eq!(v("survivable_retained_entries"), 42.0);
    assert_eq!(v("survivable_retained_bytes"), 4200.0);
    assert_eq!(v("survivable_retained_held_back_entries"), 10.0);
    assert_eq!(v(r#"survivable_leader_site{site="denver"}"#), 1.0);
    assert_eq!(v(r#"survivable_leader_site{site="paris"}"#), 0.0);
    assert_eq!(v("survivable_leader_member"), 1.0);
    assert_eq!(
        v(r#"survivable_peer_lag_entries{member="n3",site="paris"}"#),
        12.0
    );
    assert_eq!(
        v(r#"survivable_peer_reachable{member="n3",site="paris"}"#),
        0.0
    );
    assert_eq!(
        v(r#"survivable_peer_reachable{member="n2",site="denver"}"#),
        1.0
    );
    assert_eq!(
        v(r#"survivable_peer_lag_seconds{member="n2",site="denver"}"#),
        0.0
    );

    // Leadership moves to Paris: roles and the leader's site follow, the
    // per-peer lag series go (only a leader has them).
    let mut s = status();
    s.role = NodeRole::Follower;
    s.leader = Some(NodeId(3));
    s.peers.clear();
    s.epoch = EpochId {
        number: 131_071,
        founder: NodeId(3),
    };
    s.rpo_entries = 5;
    s.rpo_ms = 250;
    r.status(&s);
    let text = r.metrics().encode();
    let v = |s: &str| value(&text, s).unwrap_or_else(|| panic!("{s} missing in\n{text}"));
    assert_eq!(v(r#"survivable_role{role="leader"}"#), 0.0);
    assert_eq!(v(r#"survivable_role{role="follower"}"#), 1.0);
    assert_eq!(v(r#"survivable_leader_site{site="denver"}"#), 0.0);
    assert_eq!(v(r#"survivable_leader_site{site="paris"}"#), 1.0);
    assert_eq!(v("survivable_epoch"), 131_071.0);
    assert_eq!(v("survivable_rpo_entries"), 5.0);
    assert_eq!(v("survivable_rpo_seconds"), 0.25);
    assert!(!text.contains("survivable_peer_lag_entries{"), "{text}");
}

#[test]
fn a_peer_lag_in_time_is_the_age_of_the_oldest_missing_entry() {
    let mut r = recorder();
    let mut s = status();
    s.last_index = 30;
    r.status(&s); // entries up to 30 now
    std::thread::sleep(Duration::from_millis(300));
    let before_31 = std::time::Instant::now();
    r.status(&status()); // 31..=42 arrive; n3 holds 30
    let text = r.metrics().encode();
    let since_31 = before_31.elapsed().as_secs_f64();
    let lag = value(
        &text,
        r#"survivable_peer_lag_seconds{member="n3",site="paris"}"#,
    )
    .unwrap();
    // Entry 31's age, at most the time since just before it arrived (and a
    // millisecond rounding), not entry 30's: that is 300 ms more. Bounded by the time
    // measured rather than by 300 ms, which a stalled thread can exceed.
    assert!(lag <= since_31 + 0.002, "{lag} > {since_31}");
    std::thread::sleep(Duration::from_millis(200));
    r.status(&status());
    let text = r.metrics().encode();
    let lag = value(
        &text,
        r#"survivable_peer_lag_seconds{member="n3",site="paris"}"#,
    )
    .unwrap();
    // Slept 200 ms since 31 arrived; a sleep is never shorter.
    assert!(lag >= 0.2, "{lag}");
}

#[test]
fn events_and_counters_are_counted() {
    let mut r = recorder();
    r.event(&Event::TakeoverStarted {
        rank: 1,
        leaderless_ms: 2_000,
    });
    r.event(&Event::BecameLeader {
        term: 3,
        cause: LeadershipCause::Takeover { rank: 1 },
    });
    r.event(&Event::BecameLeader {
        term: 4,
        cause: LeadershipCause::PairFailover { from: NodeId(2) },
    });
    r.event(&Event::HandBackAttempt {
        attempt: 1,
        target: NodeId(2),
        lag: 0,
    });
    r.event(&Event::HandBackCompleted {
        target: NodeId(2),
        attempts: 1,
    });
    r.event(&Event::RetentionWarning {
        entries: 800,
        bytes: 0,
        max_entries: Some(1000),
        max_bytes: None,
        percent: 80,
    });
    r.event(&Event::RetainedDropped {
        from_index: 10,
        to_index: 19,
        entries: 10,
    });
    let mut c = Counters {
        wrong_cluster: 3,
        campaigns_suppressed: 1,
        ..Counters::default()
    };
    r.counters(&c);
    c.wrong_cluster = 5;
    r.counters(&c);
    r.refused_connections(&[("slow", 2), ("malformed", 0)]);
    r.refused_connections(&[("slow", 4), ("malformed", 0)]);
    r.connections(|id| (id == NodeId(2)).then_some(true));
    let text = r.metrics().encode();
    let v = |s: &str| value(&text, s).unwrap_or_else(|| panic!("{s} missing in\n{text}"));
    assert_eq!(v("survivable_takeovers_total"), 1.0);
    assert_eq!(v("survivable_pair_failovers_total"), 1.0);
    assert_eq!(v("survivable_hand_backs_attempted_total"), 1.0);
    assert_eq!(v("survivable_hand_backs_succeeded_total"), 1.0);
    assert_eq!(v("survivable_campaigns_suppressed_total"), 1.0);
    assert_eq!(v("survivable_retention_warnings_total"), 1.0);
    assert_eq!(v("survivable_retained_dropped_entries_total"), 10.0);
    assert_eq!(
        v(r#"survivable_refused_envelopes_total{reason="wrong_cluster"}"#),
        5.0
    );
    assert_eq!(
        v(r#"survivable_refused_connections_total{reason="slow"}"#),
        4.0
    );
    assert_eq!(
        v(r#"survivable_peer_connected{member="n2",site="denver"}"#),
        1.0
    );
    assert_eq!(
        v(r#"survivable_peer_connected{member="n3",site="paris"}"#),
        0.0
    );
    // The takeover took the 2 s leaderless before it started, at least.
    assert_eq!(v("survivable_takeover_seconds_count"), 1.0);
    assert!(v("survivable_takeover_seconds_sum") >= 2.0);
    assert_eq!(v("survivable_hand_back_outage_seconds_count"), 1.0);
}

#[test]
fn fsync_and_proposal_timings_are_observed() {
    let mut r = recorder();
    (r.metrics().fsync_observer())(Duration::from_millis(3));
    let id = ProposalId {
        node: NodeId(1),
        boot: 1,
        seq: 1,
    };
    r.proposed(id);
    r.proposal_done(id, true);
    r.proposal_done(id, true); // once only
    let text = r.metrics().encode();
    assert_eq!(value(&text, "survivable_fsync_seconds_count"), Some(1.0));
    assert_eq!(
        value(&text, r#"survivable_fsync_seconds_bucket{le="0.004"}"#),
        Some(1.0)
    );
    assert_eq!(value(&text, "survivable_proposal_seconds_count"), Some(1.0));
}

#[test]
fn proposal_clocks_end_with_their_proposals() {
    // The memory bound: a clock per proposal in flight, never one per
    // proposal made (`node bench --memory` runs a million through it).
    let mut r = recorder();
    let id = |seq| ProposalId {
        node: NodeId(1),
        boot: 1,
        seq,
    };
    for seq in 0..100_000 {
        r.proposed(id(seq));
        if seq >= 16 {
            // Applied, or failed every 7th: either way its clock goes.
            r.proposal_done(id(seq - 16), seq % 7 != 0);
        }
        assert!(r.clocks() <= 17, "{} clocks at {seq}", r.clocks());
    }
    assert_eq!(r.clocks(), 16, "the 16 still in flight");
    let timed = value(&r.metrics().encode(), "survivable_proposal_seconds_count");
    let failed = (16..100_000u64).filter(|s| s % 7 == 0).count() as f64;
    assert_eq!(
        timed,
        Some(99_984.0 - failed),
        "only applied ones are timed"
    );
}

#[test]
fn dr_replication_is_encoded_and_an_unknown_cost_is_absent_not_zero() {
    use crate::replication::{Replication, ReplicationState, SiteLossCost};
    let topology = crate::topology::denver_paris_dr().build().unwrap();
    let mut r = Recorder::new(Metrics::new(NodeId(1), &topology));
    let mut s = status();
    s.replication = Some(Replication {
        state: ReplicationState::Async,
        state_id: 5,
        main_site_loss: SiteLossCost::measured(12, 1_500),
        survivable_site_loss: SiteLossCost::ZERO,
        lease_ms: 0,
    });
    r.status(&s);
    for state in [ReplicationState::AsyncWait, ReplicationState::Async] {
        r.event(&Event::ReplicationChanged {
            state,
            state_id: 5,
            previous: ReplicationState::Sync,
            index: 30,
        });
    }
    let text = r.metrics().encode();
    let v = |s: &str| value(&text, s).unwrap_or_else(|| panic!("{s} missing in\n{text}"));
    assert_eq!(v(r#"survivable_replication_state{state="async"}"#), 1.0);
    assert_eq!(v(r#"survivable_replication_state{state="sync"}"#), 0.0);
    assert_eq!(
        v(r#"survivable_replication_state{state="async_wait"}"#),
        0.0
    );
    assert_eq!(
        v(r#"survivable_replication_state{state="sync_recover"}"#),
        0.0
    );
    assert_eq!(v("survivable_replication_state_code"), 2.0);
    assert_eq!(v("survivable_replication_state_id"), 5.0);
    assert_eq!(
        v(r#"survivable_replication_rpo_entries{site="main"}"#),
        12.0
    );
    assert_eq!(v(r#"survivable_replication_rpo_seconds{site="main"}"#), 1.5);
    assert_eq!(v(r#"survivable_replication_rpo_proven{site="main"}"#), 1.0);
    assert_eq!(
        v(r#"survivable_replication_rpo_entries{site="survivable"}"#),
        0.0
    );
    assert_eq!(
        v(r#"survivable_replication_rpo_proven{site="survivable"}"#),
        1.0
    );
    assert_eq!(v("survivable_replication_lease_seconds"), 0.0);
    assert_eq!(v("survivable_replication_changes_total"), 2.0);

    // A survivable member's view without a lease: the main site's cost is
    // unknown, so its figures go (a 0 would claim nothing is lost).
    s.replication = Some(Replication {
        state: ReplicationState::Sync,
        state_id: 9,
        main_site_loss: SiteLossCost::UNKNOWN,
        survivable_site_loss: SiteLossCost::UNKNOWN,
        lease_ms: 0,
    });
    r.status(&s);
    let text = r.metrics().encode();
    let v = |s: &str| value(&text, s).unwrap_or_else(|| panic!("{s} missing in\n{text}"));
    assert_eq!(v(r#"survivable_replication_state{state="sync"}"#), 1.0);
    assert_eq!(v(r#"survivable_replication_state{state="async"}"#), 0.0);
    assert_eq!(v("survivable_replication_state_code"), 0.0);
    assert_eq!(v(r#"survivable_replication_rpo_proven{site="main"}"#), 0.0);
    assert!(
        !text.contains("survivable_replication_rpo_entries{"),
        "{text}"
    );
    assert!(
        !text.contains("survivable_replication_rpo_seconds{"),
        "{text}"
    );

    // With a lease (a running one proves RPO 0): 2.5 s of it left.
    s.replication = Some(Replication {
        main_site_loss: SiteLossCost::ZERO,
        lease_ms: 2_500,
        ..s.replication.unwrap()
    });
    r.status(&s);
    let text = r.metrics().encode();
    let v = |s: &str| value(&text, s).unwrap_or_else(|| panic!("{s} missing in\n{text}"));
    assert_eq!(v(r#"survivable_replication_rpo_entries{site="main"}"#), 0.0);
    assert_eq!(v(r#"survivable_replication_rpo_seconds{site="main"}"#), 0.0);
    assert_eq!(v("survivable_replication_lease_seconds"), 2.5);

    // Other modes have no replication state at all.
    let plain = recorder();
    assert!(!plain.metrics().encode().contains("survivable_replication"));
}
