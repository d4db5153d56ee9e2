//! Uneven long WANs (round trips of 10–300 ms, different per pair of
//! sites): the election timeout must cover the worst of them. A layout told
//! its WAN ([`TopologyBuilder::wan`]) refuses a timeout too short for it
//! and says what to set; with that timeout, the pair fails over and stays
//! failed over, and control is handed back to Denver after a WAN cut, with
//! every proposal applied exactly once.
//!
//! With the 200 ms default over these layouts, a Denver leader that needs a
//! Paris voter for its majority (250 ms away) fails its check-quorum 200 ms
//! after every election, and a Paris leader's freshness gate (what it had
//! half an election timeout ago, 100 ms) never opens under load for a
//! Denver member whose acknowledgements take 150 ms to come back: the
//! hand-back never starts.

use std::collections::BTreeMap;
use std::time::Duration;

use survivable_core::events::Event;
use survivable_core::node::ProposalId;
use survivable_core::policy::{HandBackPolicy, Timers};
use survivable_core::sim::Sim;
use survivable_core::topology::{
    denver_paris, min_election_for_rtt, Failure, Latency, TopologyBuilder, TopologyError,
};
use survivable_core::{RestoreError, StateMachine};

use crate::support::{hand_back, CM01B};

/// Counts how often each command was applied (an idempotent `set` would
/// hide a double apply).
#[derive(Debug, Default, Clone)]
struct Counts {
    applied: BTreeMap<Vec<u8>, u32>,
}

impl StateMachine for Counts {
    fn apply(&mut self, _index: u64, command: &[u8]) -> Vec<u8> {
        *self.applied.entry(command.to_vec()).or_default() += 1;
        Vec::new()
    }

    fn snapshot(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (c, n) in &self.applied {
            out.extend((c.len() as u32).to_le_bytes());
            out.extend(c);
            out.extend(n.to_le_bytes());
        }
        out
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), RestoreError> {
        let bad = || RestoreError {
            reason: "truncated snapshot".into(),
        };
        let mut applied = BTreeMap::new();
        let mut rest = snapshot;
        while !rest.is_empty() {
            let len = u32::from_le_bytes(rest.get(..4).ok_or_else(bad)?.try_into().unwrap());
            let len = len as usize;
            let c = rest.get(4..4 + len).ok_or_else(bad)?.to_vec();
            let n = rest.get(4 + len..8 + len).ok_or_else(bad)?;
            applied.insert(c, u32::from_le_bytes(n.try_into().unwrap()));
            rest = &rest[8 + len..];
        }
        self.applied = applied;
        Ok(())
    }
}

/// The layouts the `denver_paris` example missed its figures on.
const LAYOUTS: [[u64; 3]; 3] = [
    // denver-paris, denver-kansas, paris-kansas round trips (ms)
    [150, 60, 100],
    [250, 30, 120],
    [300, 10, 290],
];

fn latency([dp, dk, pk]: [u64; 3]) -> Latency {
    Latency::new(Duration::from_millis(1), Duration::from_millis(dp))
        .with_site_rtt("denver", "paris", Duration::from_millis(dp))
        .with_site_rtt("denver", "kansas", Duration::from_millis(dk))
        .with_site_rtt("paris", "kansas", Duration::from_millis(pk))
}

/// Witness mode over `rtt`, with the election timeout the layout's error
/// asks for when given the default one (which it must refuse), and a 2 s
/// hand-back stability window.
fn layout(rtt: [u64; 3]) -> TopologyBuilder {
    let mut b = denver_paris();
    b.wan(latency(rtt))
        .hand_back(hand_back(HandBackPolicy::AfterStable(Duration::from_secs(
            2,
        ))));
    let need = match b.build() {
        Err(TopologyError::ElectionTooShortForWan {
            a, b, rtt: r, need, ..
        }) => {
            assert_eq!((a.as_str(), b.as_str()), ("denver", "paris"), "{rtt:?}");
            assert_eq!(r, Duration::from_millis(rtt[0]), "{rtt:?}");
            need
        }
        other => panic!("{rtt:?}: the 200 ms default was not refused: {other:?}"),
    };
    // Two round trips of the worst pair and two 10 ms heartbeats.
    let heartbeat = Timers::default().heartbeat;
    assert_eq!(
        need,
        min_election_for_rtt(Duration::from_millis(rtt[0]), heartbeat)
    );
    assert_eq!(need, Duration::from_millis(2 * (rtt[0] + 10)));
    b.timers(Timers {
        election: need,
        survivable_after: Duration::from_secs(2).max(2 * need),
        ..Timers::default()
    });
    b
}

fn sim(b: &TopologyBuilder, rtt: [u64; 3], seed: u64) -> Sim<Counts> {
    let topology = b.build().expect("the timeout the error asked for").shared();
    let mut s = Sim::builder(topology);
    s.seed(seed).wan_rtt(Duration::from_millis(rtt[0]));
    s.site_rtt("denver", "paris", Duration::from_millis(rtt[0]))
        .site_rtt("denver", "kansas", Duration::from_millis(rtt[1]))
        .site_rtt("paris", "kansas", Duration::from_millis(rtt[2]));
    s.build(|_| Counts::default())
}

/// Users in Denver and Paris, a proposal every 2.5 ms in turn at a live
/// voter of each (400/s: more than `max_lag_entries` in flight over these
/// WANs), each with a unique command.
#[derive(Default)]
struct Users {
    next: u64,
    proposed: BTreeMap<ProposalId, Vec<u8>>,
}

impl Users {
    fn run(&mut self, sim: &mut Sim<Counts>, d: Duration) {
        let end = sim.now_us() + d.as_micros() as u64;
        while sim.now_us() < end {
            let site = ["denver", "paris"][self.next as usize % 2];
            let live: Vec<_> = (sim.site_members(site).into_iter())
                .filter(|&id| sim.node(id).is_some_and(|n| n.voters().contains(&id)))
                .collect();
            if let Some(&at) = live.get(self.next as usize / 2 % live.len().max(1)) {
                let cmd = format!("call {}", self.next).into_bytes();
                if let Ok(id) = sim.propose(at, cmd.clone()) {
                    self.proposed.insert(id, cmd);
                }
            }
            self.next += 1;
            sim.run_for(Duration::from_micros(2_500));
        }
    }

    /// Every acknowledged proposal applied exactly once at `at`, and no
    /// command applied twice.
    fn assert_applied_once(&self, sim: &Sim<Counts>, at: survivable_core::topology::NodeId) {
        let applied = &sim.node(at).expect("up").state_machine().applied;
        let twice: Vec<_> = applied.iter().filter(|(_, &n)| n > 1).collect();
        assert!(twice.is_empty(), "applied more than once: {twice:?}");
        let acked: Vec<&Vec<u8>> = (sim.commits().iter())
            .filter(|c| c.outcome.result.is_ok())
            .filter_map(|c| self.proposed.get(&c.id))
            .collect();
        assert!(!acked.is_empty(), "nothing acknowledged");
        let missing = acked
            .iter()
            .filter(|c| applied.get(**c) != Some(&1))
            .count();
        assert_eq!(missing, 0, "acknowledged but not applied once at {at}");
        assert!(sim.violations().is_empty(), "{:?}", sim.violations());
    }
}

#[test]
fn the_default_election_timeout_is_refused_for_a_long_wan_and_the_error_says_what_to_set() {
    for rtt in LAYOUTS {
        let b = layout(rtt);
        let t = b.build().expect("builds with the timeout asked for");
        assert_eq!(
            t.timers().election,
            Duration::from_millis(2 * (rtt[0] + 10))
        );
    }
    // One tick short of it is refused again.
    let mut b = denver_paris();
    b.wan(latency([150, 60, 100])).timers(Timers {
        election: Duration::from_millis(315),
        ..Timers::default()
    });
    let e = b.build().unwrap_err();
    assert!(e.to_string().contains("at least 320ms"), "{e}");
}

/// CM01a's host fails: CM01b takes over within the report's figure and
/// keeps leading (its majority needs a Paris voter, 150–300 ms away).
#[test]
fn the_pair_fails_over_and_stays_failed_over_over_an_uneven_wan() {
    for rtt in LAYOUTS {
        let b = layout(rtt);
        let mut sim = sim(&b, rtt, 1);
        let mut users = Users::default();
        users.run(&mut sim, Duration::from_secs(3));
        let what = format!("{rtt:?}");
        assert_eq!(sim.site_of(sim.leader().expect(&what)), "denver", "{what}");
        let t0 = sim.now_us();
        let term = sim.node(sim.leader().unwrap()).unwrap().term();
        sim.crash_host("esxi-1");
        users.run(&mut sim, Duration::from_secs(3));
        let leaders: Vec<_> = (sim.events().iter())
            .filter(|(t, _, e)| *t >= t0 && matches!(e, Event::BecameLeader { .. }))
            .map(|(_, id, _)| *id)
            .collect();
        assert_eq!(leaders, vec![CM01B], "{what}: one failover, no flapping");
        // The report models the path (detection, the standby's probe and
        // vote rounds to the voters it needs, its first commit); the
        // simulator's timers fire on the next tick (5 ms) and each one-way
        // trip carries up to 200 µs of jitter (1 ms covers the path).
        let failure = Failure::Host {
            host: "esxi-1".into(),
        };
        let report = sim.topology().survivability_with(latency(rtt));
        let figure =
            (report.scenario(&failure).and_then(|s| s.takeover)).expect("a takeover figure");
        let took = sim.first_commit_after(t0, term).expect("a commit") / 1000;
        let bound = figure.as_millis() as u64 + 5 + 1;
        assert!(took <= bound, "{what}: takeover {took} ms > {bound} ms");
        sim.run_for(Duration::from_secs(2));
        users.assert_applied_once(&sim, CM01B);
    }
}

/// Denver is cut off, Paris takes over, the WAN heals: control goes home
/// after the stability window, with a bounded write outage and every
/// proposal applied once.
#[test]
fn control_is_handed_back_to_denver_over_an_uneven_wan() {
    for rtt in LAYOUTS {
        for seed in 1..=2 {
            let what = format!("{rtt:?}, seed {seed}");
            let b = layout(rtt);
            let mut sim = sim(&b, rtt, seed);
            let mut users = Users::default();
            users.run(&mut sim, Duration::from_secs(3));
            sim.partition_sites(&["denver"], &["paris", "kansas"]);
            let after = b.build().unwrap().timers().survivable_after;
            users.run(&mut sim, after + Duration::from_secs(3));
            let leader = sim.leader().expect(&what);
            assert_eq!(sim.site_of(leader), "paris", "{what}");
            let healed = sim.now_us();
            sim.heal();
            // The window (2 s) starts once contact is back (half a round
            // trip); 3 s more leave room for the attempt and the transfer.
            users.run(&mut sim, Duration::from_secs(5));
            let attempt = (sim.events().iter())
                .find(|(t, _, e)| *t >= healed && matches!(e, Event::HandBackAttempt { .. }))
                .map(|(t, _, _)| *t)
                .unwrap_or_else(|| panic!("{what}: no hand-back attempt"));
            let leader = sim.leader().expect(&what);
            assert_eq!(sim.site_of(leader), "denver", "{what}");
            // The transfer's path from the attempt: MsgTimeoutNow (half a
            // Paris–Denver round trip), votes and the first commit (a round
            // trip each to Denver's nearest remote voter, at most the
            // Paris–Denver one), less the half round trip for which the
            // old leader's entries keep committing: 2 round trips; plus a
            // LAN round trip on each side, a tick of probe spacing and one
            // for the decision (5 ms each), and 1 ms of jitter.
            let gap = sim
                .longest_commit_gap(attempt.saturating_sub(500_000), attempt + 2_000_000)
                .expect("commits around the hand-back")
                / 1000;
            let bound = 2 * rtt[0] + 2 + 2 * 5 + 1;
            assert!(gap <= bound, "{what}: write outage {gap} ms > {bound} ms");
            sim.run_for(Duration::from_secs(2));
            users.assert_applied_once(&sim, leader);
        }
    }
}

/// A linearizable read at each follower (the standby, both Paris members,
/// the witness) completes when its round trip to the leader is longer than
/// the election timeout it is retried at: the default 200 ms timers, not
/// told of a 250 ms Denver–Paris WAN. Before, each retry replaced the
/// attempt whose answer was on its way, and a Paris read never completed.
#[test]
fn a_read_completes_when_its_round_trip_exceeds_the_retry_interval() {
    use crate::support::{CM01A, CM02A, CM02B, W1};
    let rtt = [250, 30, 120];
    let topology = denver_paris().build().expect("default timers").shared();
    let tick = topology.timers().tick;
    let mut s = Sim::builder(topology);
    s.seed(3)
        .wan_rtt(Duration::from_millis(rtt[0]))
        .site_rtt("denver", "paris", Duration::from_millis(rtt[0]))
        .site_rtt("denver", "kansas", Duration::from_millis(rtt[1]))
        .site_rtt("paris", "kansas", Duration::from_millis(rtt[2]));
    let mut sim = s.build(|_| Counts::default());
    sim.run_for(Duration::from_secs(3));
    assert_eq!(sim.leader(), Some(CM01A));
    for (at, to_leader) in [(CM01B, 1), (CM02A, rtt[0]), (CM02B, rtt[0]), (W1, rtt[1])] {
        let asked = sim.now_us();
        let id = sim.read(at).expect("a live member takes reads");
        let done = sim.run_until(Duration::from_secs(5), |s| {
            s.reads().iter().any(|r| r.id == id)
        });
        assert!(done, "the read at {at:?} never completed");
        let took = sim.reads().iter().find(|r| r.id == id).unwrap().done_us - asked;
        // There and back to the leader, the leader's quorum round (the
        // standby over the LAN and the witness: a Denver–Kansas round trip),
        // a tick on each side to pass the messages on, 1 ms of jitter per hop.
        let bound = Duration::from_millis(to_leader + rtt[1] + 4) + 2 * tick;
        assert!(
            Duration::from_micros(took) <= bound,
            "read at {at:?} took {took} µs, bound {bound:?}"
        );
    }
}
