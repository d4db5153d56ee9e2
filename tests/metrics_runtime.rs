//! The runtime's metrics over real loopback sockets (plaintext): the
//! Denver/Paris cluster as five members in this process (a pair failover
//! needs a quorum once one member is gone: three of five), each scraped
//! through `Handle::metrics` and compared with its `Status`; a failover
//! moves the counter that names it.

mod support;

use std::time::Duration;

use support::{partner, Cluster, Options};
use survivable_core::events::{Event, LeadershipCause};
use survivable_core::node::{NodeRole, Status};
use survivable_core::topology::NodeId;

/// The value of the series `series` (name and labels exactly as encoded).
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
}

fn role_label(role: NodeRole) -> &'static str {
    match role {
        NodeRole::Leader => "leader",
        NodeRole::Follower => "follower",
        NodeRole::Candidate => "candidate",
        NodeRole::PreCandidate => "pre-candidate",
        NodeRole::Learner => "learner",
        _ => "removed",
    }
}

/// Whether `text` shows what `s` says: role, term, commit, applied.
fn shows(text: &str, s: &Status) -> bool {
    let role = format!(r#"survivable_role{{role="{}"}}"#, role_label(s.role));
    value(text, &role) == Some(1.0)
        && value(text, "survivable_term") == Some(s.term as f64)
        && value(text, "survivable_commit_index") == Some(s.commit as f64)
        && value(text, "survivable_applied_index") == Some(s.applied as f64)
        && value(text, "survivable_epoch") == Some(s.epoch.number as f64)
}

/// Scrapes `id` between two identical statuses and checks the scrape
/// shows them. The thread updates the metrics just before the status, so
/// a scrape may be one pass ahead of the status read before it: tried
/// until the status held still around a scrape (an idle cluster's status
/// holds still between heartbeats, which change none of these fields).
fn assert_scrape_matches_status(c: &Cluster, id: NodeId) -> String {
    let h = &c.members[&id].handle;
    let mut last = String::new();
    for _ in 0..100 {
        let before = h.status();
        let text = h.metrics();
        let after = h.status();
        if before == after && shows(&text, &after) {
            return text;
        }
        last = format!("{after:?}\n{text}");
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("metrics of {id} never matched its status: {last}");
}

#[test]
fn scrapes_match_the_status_and_a_pair_failover_is_counted() {
    let mut c = Cluster::with(Options {
        tls: false,
        ..Options::default()
    });
    let leader = {
        c.wait_for(Duration::from_secs(20), "Denver to lead", |c| {
            c.denver_leader().is_some()
        });
        c.denver_leader().unwrap()
    };
    for i in 0..20 {
        let r = c.members[&leader]
            .handle
            .propose_timeout(format!("call-{i}").into_bytes(), Duration::from_secs(5));
        assert!(r.is_ok(), "proposal {i}: {r:?}");
    }
    let ids: Vec<NodeId> = c.members.keys().copied().collect();
    for &id in &ids {
        let text = assert_scrape_matches_status(&c, id);
        assert_eq!(
            value(&text, "survivable_rpo_entries"),
            Some(c.status(id).rpo_entries as f64),
            "{text}"
        );
    }

    // The leader: its proposals and syncs were timed, its peers' lag and
    // connections are shown, Denver is the leader's site.
    let text = c.members[&leader].handle.metrics();
    let v = |s: &str| value(&text, s).unwrap_or_else(|| panic!("{s} missing in\n{text}"));
    assert!(v("survivable_proposal_seconds_count") >= 20.0, "{text}");
    assert!(v("survivable_fsync_seconds_count") >= 20.0, "{text}");
    assert_eq!(v(r#"survivable_leader_site{site="denver"}"#), 1.0);
    assert_eq!(v(r#"survivable_leader_site{site="paris"}"#), 0.0);
    let peer = format!(r#"{{member="{}",site="denver"}}"#, partner(leader));
    assert!(v(&format!("survivable_peer_lag_entries{peer}")) >= 0.0);
    c.wait_for(
        Duration::from_secs(10),
        "the leader's connection to its partner to show",
        |c| {
            let text = c.members[&leader].handle.metrics();
            value(&text, &format!("survivable_peer_connected{peer}")) == Some(1.0)
        },
    );
    let standby = partner(leader);
    let before = c.members[&standby].handle.metrics();
    assert_eq!(value(&before, "survivable_pair_failovers_total"), Some(0.0));
    let events = c.members[&standby].handle.events();
    let _ = events.try_iter().count(); // what came before the failover

    // The leader is killed; its partner takes over by a pair failover and
    // counts it (and its metrics still match its status).
    c.kill(leader);
    c.wait_for(Duration::from_secs(10), "the standby to lead", |c| {
        c.leader() == Some(standby)
    });
    let failovers = events
        .try_iter()
        .filter(|e| {
            matches!(
                e,
                Event::BecameLeader {
                    cause: LeadershipCause::PairFailover { .. },
                    ..
                }
            )
        })
        .count();
    assert_eq!(failovers, 1, "the standby took over by a pair failover");
    let text = assert_scrape_matches_status(&c, standby);
    assert_eq!(
        value(&text, "survivable_pair_failovers_total"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(value(&text, "survivable_takeovers_total"), Some(0.0));
    // Its connection to the killed member goes down within the slow
    // update period and a failed reconnect (a refused loopback connect
    // fails at once).
    let dead = format!(r#"survivable_peer_connected{{member="{leader}",site="denver"}}"#);
    c.wait_for(Duration::from_secs(10), "the dead connection to show", |c| {
        value(&c.members[&standby].handle.metrics(), &dead) == Some(0.0)
    });
}
