//! Behaviour 8, ranked survivable cores: with Paris (rank 1) and London
//! (rank 2), London takes over only when Paris cannot.

use std::time::Duration;

use survivable_core::events::LeadershipCause;
use survivable_core::sim::scenarios::ranked::{self, RankOneCut, SiteLost};
use survivable_core::sim::scenarios::SiteCut;
use survivable_core::sim::{KvStore, Sim};
use survivable_core::topology::NodeId;

use crate::support::*;

/// How many of `campaigns` (when, who) were by members of `site`.
fn campaigns_by(sim: &Sim<KvStore>, campaigns: &[(u64, NodeId)], site: &str) -> usize {
    (campaigns.iter())
        .filter(|(_, id)| sim.site_of(*id) == site)
        .count()
}

#[test]
fn rank_one_takes_over_and_rank_two_stays_put() {
    for seed in 1..=3 {
        let mut sim = started(&with_london(), seed);
        let mut load = Load::new(&["denver", "paris", "london"], Duration::from_millis(10));
        load.run(&mut sim, Duration::from_secs(1));
        let plan = SiteLost {
            site: "denver".into(),
            heal: false,
            run_for: Duration::from_secs(6),
        };
        let out = ranked::site_lost(&mut sim, &plan, |s, d| load.run(s, d));
        assert_eq!(out.takeover.leader_at_end, Some(CM02A), "seed {seed}");
        assert_eq!(
            campaigns_by(&sim, &out.campaigns, "london"),
            0,
            "London campaigned"
        );
        settle(&mut sim);
        assert_acknowledged_applied(&sim, &load, CM03A);
        assert_clean(&mut sim);
    }
}

#[test]
fn rank_two_takes_over_when_rank_one_cannot() {
    let mut sim = started(&with_london(), 11);
    let mut load = Load::new(&["denver", "london"], Duration::from_millis(10));
    load.run(&mut sim, Duration::from_secs(1));
    // Paris is cut off for a while: Denver, London and the witness go on
    // committing without it, so Paris's log falls behind.
    let plan = RankOneCut {
        cut: SiteCut::new(&["paris"], &["denver", "london", "kansas"]),
        cut_for: Duration::from_secs(3),
        main_site: "denver".into(),
    };
    let stale = ranked::rank_one_cut(&mut sim, &plan, |s, d| load.run(s, d));
    assert_eq!(stale.leader_while_cut, Some(CM01A));
    // Paris comes back just as Denver dies: Paris campaigns first (rank 1)
    // but the others refuse its stale log; London (rank 2), fresher, wins.
    let plan = SiteLost {
        site: "denver".into(),
        heal: true,
        run_for: Duration::from_secs(5),
    };
    let lost = ranked::site_lost(&mut sim, &plan, |s, d| load.run(s, d));
    let t0 = lost.takeover.lost_at_us;
    let campaigns: Vec<(u64, NodeId)> = (stale.campaigns.iter().chain(&lost.campaigns))
        .copied()
        .collect();
    assert!(
        campaigns_by(&sim, &campaigns, "paris") > 0,
        "Paris never tried"
    );
    let winner = lost.takeover.first_leader().expect("someone took over");
    assert_eq!(winner.1, CM03A);
    assert_eq!(winner.2, LeadershipCause::Takeover { rank: 2 });
    // London does not wait out its own rank-2 timer: Paris's stale
    // candidacy proved that rank 1 cannot lead, so London steps up at once.
    let rank_two_after = sim.topology().ticks().survivable_campaign_after(2, 0) as u64
        * sim.topology().ticks().tick_ms;
    assert!((winner.0 - t0) / 1000 < rank_two_after);
    // Nothing Denver committed is lost.
    assert_acknowledged_applied(&sim, &load, CM03A);
    // Once Paris has caught up and stayed reachable for the stability
    // window, control moves to the better-ranked Paris.
    load.run(&mut sim, Duration::from_secs(7));
    assert_eq!(sim.leader(), Some(CM02A));
    settle(&mut sim);
    assert_acknowledged_applied(&sim, &load, CM02A);
    assert!(sim.commits().iter().all(|c| c.outcome.result.is_ok()));
    assert_clean(&mut sim);
}
