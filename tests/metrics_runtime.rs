//! The runtime's metrics over real loopback sockets (plaintext): the
//! Denver/Paris cluster as five members in this process (a pair failover
//! needs a quorum once one member is gone: three of five), each scraped
//! through `Handle::metrics` and compared with its `Status`; a failover
//! moves the counter that names it. And (simulated) a suppressed pair
//! failover is counted where the metrics read it.

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

/// Whether `text` shows what `s` says: role, term, commit, applied,
/// epoch and the entries the survivable site lacks.
fn shows(text: &str, s: &Status) -> bool {
    let role = format!(r#"survivable_role{{role="{}"}}"#, role_label(s.role));
    value(text, &role) == Some(1.0)
        && value(text, "survivable_term") == Some(s.term as f64)
        && value(text, "survivable_commit_index") == Some(s.commit as f64)
        && value(text, "survivable_applied_index") == Some(s.applied as f64)
        && value(text, "survivable_epoch") == Some(s.epoch.number as f64)
        && value(text, "survivable_rpo_entries") == Some(s.rpo_entries as f64)
}

/// Scrapes `id` between two identical statuses and checks the scrape
/// shows them. The thread updates the metrics just before the status, so
/// a scrape may be one pass ahead of the status read before it: tried
/// until the status held still around a scrape (an idle cluster's status
/// holds still between heartbeats, which change none of these fields).
fn assert_scrape_matches_status(c: &Cluster, id: NodeId) -> String {
    let h = &c.members[&id].handle;
    let mut last = String::new();
    // A bound on a hang: a loaded host can keep the status moving (or the
    // test thread off the CPU) for longer than a fixed number of tries.
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
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
        assert_scrape_matches_status(&c, id);
    }

    // Where the proposals were made: they and the syncs were timed, and
    // Denver is the leader's site.
    let text = c.members[&leader].handle.metrics();
    let v = |s: &str| value(&text, s).unwrap_or_else(|| panic!("{s} missing in\n{text}"));
    assert!(v("survivable_proposal_seconds_count") >= 20.0, "{text}");
    assert!(v("survivable_fsync_seconds_count") >= 20.0, "{text}");
    assert_eq!(v(r#"survivable_leader_site{site="denver"}"#), 1.0);
    assert_eq!(v(r#"survivable_leader_site{site="paris"}"#), 0.0);
    // Whoever leads now (a stall of the machine can move leadership
    // inside the pair at any time, and the peers' series are the leader's
    // only): its peers' lag and connections are shown.
    let leader = c.denver_leader_settled();
    let text = c.members[&leader].handle.metrics();
    let v = |s: &str| value(&text, s).unwrap_or_else(|| panic!("{s} missing in\n{text}"));
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
    // The member killed is the one leading just before the kill.
    let leader = c.denver_leader_settled();
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
    c.wait_for(
        Duration::from_secs(10),
        "the dead connection to show",
        |c| value(&c.members[&standby].handle.metrics(), &dead) == Some(0.0),
    );
}

/// A pair standby that loses sight of a live primary for longer than the
/// failover time while its log misses the primary's last appends runs no
/// campaign (declined while catching up, or refused by a quorum): counted
/// as suppressed, and the primary keeps leading.
#[cfg(feature = "sim")]
#[test]
fn a_suppressed_pair_failover_is_counted() {
    use survivable_core::sim::{KvStore, Sim};
    use survivable_core::topology::denver_paris;
    let (primary, standby) = (NodeId(1), NodeId(2));
    for seed in 1..=3 {
        let topology = denver_paris().build().unwrap().shared();
        let mut sim = Sim::builder(topology)
            .seed(seed)
            .build(|_| KvStore::default());
        assert!(sim.run_until(Duration::from_secs(3), |s| s.leader() == Some(primary)));
        let mut n = 0;
        let mut load = |sim: &mut Sim<KvStore>, d: Duration| {
            // A proposal every 2 ms, so the standby falls behind at once.
            for _ in 0..d.as_millis() / 2 {
                let _ = sim.propose(primary, format!("set k{n} v").into_bytes());
                n += 1;
                sim.run_for(Duration::from_millis(2));
            }
        };
        load(&mut sim, Duration::from_secs(1));
        let before = sim.node(standby).unwrap().counters().campaigns_suppressed;
        // Longer than the failover time (30 ms), shorter than an election.
        sim.set_link_loss(primary, standby, 1.0);
        load(&mut sim, Duration::from_millis(150));
        sim.restore_links();
        load(&mut sim, Duration::from_secs(1));
        assert_eq!(sim.leader(), Some(primary), "seed {seed}");
        let after = sim.node(standby).unwrap().counters().campaigns_suppressed;
        assert!(after > before, "seed {seed}: {before} -> {after}");
    }
}

/// A Paris member whose link from the leader loses most messages falls
/// behind what the leader reports committed: its `Status` shows the RPO
/// (entries and ms) it would lose if Denver were lost then, and none once
/// the link is healthy and it has caught up.
#[cfg(feature = "sim")]
#[test]
fn the_rpo_shows_what_a_lagging_member_would_lose() {
    use survivable_core::sim::{KvStore, Sim};
    use survivable_core::topology::denver_paris;
    let paris = NodeId(3);
    let topology = denver_paris().build().unwrap().shared();
    let mut sim = Sim::builder(topology).seed(5).build(|_| KvStore::default());
    assert!(sim.run_until(Duration::from_secs(3), |s| s.leader().is_some()));
    let leader = sim.leader().unwrap();
    let (mut worst_entries, mut worst_ms) = (0, 0);
    let mut propose = |sim: &mut Sim<KvStore>, steps: u32, sample: bool| {
        for n in 0..steps {
            let _ = sim.propose(leader, format!("set k{n} v").into_bytes());
            sim.run_for(Duration::from_millis(2));
            let s = sim.node(paris).unwrap().status();
            if sample {
                worst_entries = worst_entries.max(s.rpo_entries);
                worst_ms = worst_ms.max(s.rpo_ms);
            }
        }
    };
    propose(&mut sim, 250, false);
    // Most appends lost: those that arrive report commits beyond the
    // entries Paris holds.
    sim.set_link_loss(leader, paris, 0.8);
    propose(&mut sim, 1_000, true);
    assert!(worst_entries > 0, "no RPO in entries");
    assert!(worst_ms > 0, "no RPO in time");
    sim.restore_links();
    sim.run_for(Duration::from_secs(2));
    let s = sim.node(paris).unwrap().status();
    assert_eq!((s.rpo_entries, s.rpo_ms), (0, 0), "{s:?}");
    let at_leader = sim.node(leader).unwrap().status();
    assert_eq!((at_leader.rpo_entries, at_leader.rpo_ms), (0, 0));
}
