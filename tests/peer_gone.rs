//! A leader's process gone, over real sockets: its standby is told (the
//! leader's connection ended and a dial to it was refused) and takes over
//! without waiting out the failover timer; a connection that merely
//! flaps (reset by the network, the leader alive) tells it nothing and
//! moves no leadership.
//!
//! The test cluster's calm timers (heartbeat 50 ms, failover 500 ms) keep
//! the two cases far apart: a standby acting on the report campaigns
//! after a heartbeat interval and a tick of silence (60 ms) plus the time
//! the stopped leader's connections take to close, not after 500 ms. The
//! speed itself is measured by `node bench --failover`, not here.

mod support;

use std::time::{Duration, Instant};

use support::{partner, Cluster, Options, CM01A, CM01B};
use survivable_core::events::Event;
use survivable_core::relay::Relay;

#[test]
fn a_stopped_leaders_standby_takes_over_before_the_failover_timer() {
    let mut c = Cluster::new();
    let failover = c.topology.timers().failover;
    let leader = c.denver_leader_settled();
    let standby = partner(leader);
    let events = c.members[&standby].handle.events();
    while events.try_recv().is_ok() {}
    // Its process gone as the network sees it: the listener and every
    // connection closed, nothing sent first.
    c.kill(leader);
    c.wait_for(Duration::from_secs(10), "the standby to lead", |c| {
        c.leader() == Some(standby)
    });
    let started = events
        .try_iter()
        .find_map(|e| match e {
            Event::FailoverStarted { primary, silent_ms } => Some((primary, silent_ms)),
            _ => None,
        })
        .expect("a pair failover");
    assert_eq!(started.0, leader);
    assert!(
        u128::from(started.1) < failover.as_millis(),
        "the standby waited out the failover timer ({} ms of silence, the timer is {} ms): the refused dial was not taken",
        started.1,
        failover.as_millis()
    );
    c.assert_serving("the failover");
}

#[test]
fn a_flapping_connection_to_a_live_leader_moves_no_leadership() {
    // Denver's pair reaches each other through a relay, whose connections
    // are reset over and over while the leader lives: each reset ends the
    // standby's connection from the leader, and a dial then reaches the
    // relay (not refused), so nothing is reported.
    let relay = Relay::new();
    let mut c = Cluster::with(Options {
        absent: vec![CM01A, CM01B],
        ..Options::default()
    });
    for (id, other, from, to) in [(CM01A, CM01B, "a", "b"), (CM01B, CM01A, "b", "a")] {
        let mut cfg = c.config(id);
        let via = relay.route(from, to, c.addrs[&other]).unwrap();
        cfg.peers.insert(other, via);
        c.try_start(cfg).unwrap();
    }
    let leader = c.denver_leader_settled();
    let standby = partner(leader);
    let term = c.status(leader).term;
    let events = c.members[&standby].handle.events();
    while events.try_recv().is_ok() {}
    let mut resets = 0;
    let end = Instant::now() + Duration::from_secs(3);
    while Instant::now() < end {
        resets += relay.reset("a", "b");
        std::thread::sleep(Duration::from_millis(150));
    }
    assert!(resets >= 10, "only {resets} connections reset");
    let moves: Vec<Event> = events
        .try_iter()
        .filter(|e| {
            matches!(
                e,
                Event::FailoverStarted { .. } | Event::BecameLeader { .. }
            )
        })
        .collect();
    assert!(moves.is_empty(), "{moves:?}");
    assert_eq!(c.leader(), Some(leader));
    assert_eq!(c.status(leader).term, term, "no election");
    c.assert_serving("the resets");
}
