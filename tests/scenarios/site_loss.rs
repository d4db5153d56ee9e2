//! Behaviour 4, site loss / rainy day (paper Fig. 8): the main site dies or
//! is cut off; the rank-1 survivable core leads after `survivable_after`
//! and, in witness mode, nothing committed is lost.

use std::time::Duration;

use survivable_core::events::LeadershipCause;
use survivable_core::sim::{KvStore, Sim};
use survivable_core::Event;

use crate::support::*;

const SURVIVABLE_AFTER_MS: u64 = 2_000;
/// The bound: geo takeover ≤ survivable_after + 3 WAN RTT.
const BOUND_MS: u64 = SURVIVABLE_AFTER_MS + 3 * WAN_RTT_MS;
/// A crashed site's last heartbeat is still in flight: silence at Paris
/// starts half a WAN round trip after the crash.
const CRASH_BOUND_MS: u64 = BOUND_MS + WAN_RTT_MS / 2;
/// Tick granularity and link jitter on top of the bound.
const SLACK_MS: u64 = 10;

/// Checks the takeover after `failure` (applied at `t0`): nobody outside
/// Denver leads before `survivable_after`, then Paris does, within `bound_ms`.
fn check_takeover(sim: &mut Sim<KvStore>, load: &mut Load, t0: u64, old_term: u64, bound_ms: u64) {
    load.run(sim, Duration::from_millis(SURVIVABLE_AFTER_MS - 100));
    assert!(
        sim.leader().is_none_or(|l| sim.site_of(l) == "denver"),
        "{:?} led before survivable_after",
        sim.leader()
    );
    load.run(sim, Duration::from_secs(2));
    assert_eq!(sim.leader(), Some(CM02A));
    let took = first_commit_after(sim, t0, old_term).expect("a commit under Paris");
    assert!(
        took >= SURVIVABLE_AFTER_MS && took <= bound_ms + SLACK_MS,
        "takeover took {took} ms, bound {bound_ms} ms"
    );
    assert!(events_since(sim, t0, |e| matches!(
        e,
        Event::BecameLeader {
            cause: LeadershipCause::Takeover { rank: 1 },
            ..
        }
    ))
    .any(|(_, id, _)| *id == CM02A));
}

/// Steady load, then `fault` hits Denver; Paris must take over within
/// `bound_ms` with every acknowledged proposal.
fn paris_takes_over(
    seed: u64,
    bound_ms: u64,
    fault: fn(&mut Sim<KvStore>),
) -> (Sim<KvStore>, Load) {
    let mut sim = started(&denver_paris(), seed);
    let mut load = Load::new(&["denver", "paris"], Duration::from_millis(10));
    load.run(&mut sim, Duration::from_secs(2));
    let t0 = sim.now_us();
    let old_term = term(&sim);
    fault(&mut sim);
    check_takeover(&mut sim, &mut load, t0, old_term, bound_ms);
    // Every acknowledged call set-up, Denver's included, is in Paris.
    assert_acknowledged_applied(&sim, &load, CM02A);
    (sim, load)
}

#[test]
fn paris_takes_over_when_denver_is_lost() {
    for seed in 1..=3 {
        let (mut sim, load) = paris_takes_over(seed, CRASH_BOUND_MS, |s| s.crash_site("denver"));
        settle(&mut sim);
        assert_acknowledged_applied(&sim, &load, CM02B);
        assert!(sim.commits().iter().all(|c| c.outcome.result.is_ok()));
        assert_clean(&mut sim);
    }
}

#[test]
fn paris_takes_over_when_denver_is_cut_off() {
    for seed in 1..=3 {
        let (mut sim, mut load) = paris_takes_over(seed, BOUND_MS, |s| {
            s.partition_sites(&["denver"], &["paris", "kansas"])
        });
        // Denver's users kept proposing at Denver: those wait and are
        // applied once the WAN heals, none is failed back.
        sim.heal();
        load.run(&mut sim, Duration::from_secs(1));
        sim.run_for(Duration::from_secs(10));
        assert!(sim.commits().iter().all(|c| c.outcome.result.is_ok()));
        assert_eq!(sim.commits().len(), load.proposed.len(), "seed {seed}");
        assert_acknowledged_applied(&sim, &load, CM01A);
        assert_clean(&mut sim);
    }
}

#[test]
fn denver_coming_back_catches_up_from_paris() {
    let mut sim = started(&denver_paris(), 5);
    let mut load = Load::new(&["paris"], Duration::from_millis(5));
    load.run(&mut sim, Duration::from_secs(1));
    sim.crash_site("denver");
    // Long enough for Paris to compact its log: Denver comes back by snapshot.
    load.run(&mut sim, Duration::from_secs(20));
    assert_eq!(sim.leader(), Some(CM02A));
    sim.restart(CM01A);
    sim.restart(CM01B);
    load.run(&mut sim, Duration::from_secs(2));
    settle(&mut sim);
    assert_acknowledged_applied(&sim, &load, CM01A);
    assert_acknowledged_applied(&sim, &load, CM01B);
    assert_clean(&mut sim);
}

#[test]
fn a_stale_paris_takes_the_witness_relay_and_leads_when_denver_dies() {
    // Paris is cut off while Denver and the witness go on committing, then
    // Denver dies as Paris returns: only the witness holds the latest log.
    // It refuses Paris's candidates but relays them the lost leader's tail
    // (`node::relay`): a Paris member leads without the witness bridging.
    let mut sim = started(&denver_paris(), 12);
    let mut load = Load::new(&["denver"], Duration::from_millis(10));
    load.run(&mut sim, Duration::from_secs(1));
    sim.partition_sites(&["paris"], &["denver", "kansas"]);
    load.run(&mut sim, Duration::from_secs(3));
    let t0 = sim.now_us();
    sim.heal();
    sim.crash_site("denver");
    let mut load_paris = Load::new(&["paris"], Duration::from_millis(10));
    load_paris.run(&mut sim, Duration::from_secs(6));

    let moves = leaders_since(&sim, t0);
    let first = moves.first().copied().expect("someone leads");
    assert_eq!(sim.site_of(first.1), "paris", "{moves:?}");
    assert!(
        !events_since(&sim, t0, |e| matches!(
            e,
            Event::BecameLeader {
                cause: LeadershipCause::LastResort,
                ..
            }
        ))
        .any(|_| true),
        "the witness led: {moves:?}"
    );
    // Paris has been leaderless for longer than `survivable_after`: its
    // members campaign every one to two election timeouts, and the
    // witness answers once its lease on Denver's last heartbeat ran out
    // (an election timeout). The witness also stands once (it heard
    // Paris's stale requests during its lease), which can split one vote:
    // one more retry, up to two election timeouts. Then a relay, a
    // pre-vote and a vote round trip.
    let ticks = sim.topology().ticks();
    let election_ms = ticks.election as u64 * ticks.tick_ms;
    let bound_ms = 5 * election_ms + 3 * WAN_RTT_MS + SLACK_MS;
    let led_ms = (first.0 - t0) / 1000;
    assert!(
        led_ms <= bound_ms,
        "Paris led {led_ms} ms after, bound {bound_ms} ms"
    );
    assert_eq!(sim.leader(), Some(first.1));
    settle(&mut sim);
    assert_acknowledged_applied(&sim, &load, first.1);
    assert_acknowledged_applied(&sim, &load_paris, first.1);
    assert_clean(&mut sim);
}

#[test]
fn a_fresher_witness_relays_its_tail_so_paris_leads_after_a_wan_cut() {
    for seed in 1..=3 {
        let mut sim = started(&denver_paris(), seed);
        let mut load = Load::new(&["denver"], Duration::from_millis(10));
        load.run(&mut sim, Duration::from_secs(1));
        // Denver → Paris loses most messages: the witness holds entries
        // Paris lacks when the WAN is cut. It relays them to Paris's
        // candidate (`node::relay`), which then wins.
        for d in sim.site_members("denver") {
            for p in sim.site_members("paris") {
                sim.set_link_loss(d, p, 0.8);
            }
        }
        load.run(&mut sim, Duration::from_secs(1));
        let t0 = sim.now_us();
        sim.partition_sites(&["denver"], &["paris", "kansas"]);
        sim.restore_links();
        let mut load_paris = Load::new(&["paris"], Duration::from_millis(10));
        load_paris.run(&mut sim, Duration::from_secs(5));

        let moves = leaders_since(&sim, t0);
        assert_eq!(
            moves.first().map(|m| m.1),
            Some(CM02A),
            "seed {seed}: {moves:?}"
        );
        // Paris campaigns after `survivable_after`; the witness's relay
        // comes a WAN round trip later, then pre-vote and vote round trips.
        let bound_ms = SURVIVABLE_AFTER_MS + 3 * WAN_RTT_MS + SLACK_MS;
        let led_ms = (moves[0].0 - t0) / 1000;
        assert!(
            led_ms <= bound_ms,
            "seed {seed}: Paris led {led_ms} ms after the cut, bound {bound_ms} ms"
        );
        assert_eq!(sim.leader(), Some(CM02A), "seed {seed}");
        sim.heal();
        sim.run_for(Duration::from_secs(10));
        assert_acknowledged_applied(&sim, &load, CM02A);
        assert_acknowledged_applied(&sim, &load_paris, CM02A);
        assert_clean(&mut sim);
    }
}
