//! Tests of the topology builder and its validation.

use super::*;
use crate::policy::{HandBackPolicy, PolicyError, TimeOfDay};
use crate::topology::denver_paris;
use crate::topology::Appliance::{Dedicated, Virtual};
use std::time::Duration;

#[test]
fn the_paper_topology_is_valid() {
    let t = denver_paris().build().unwrap();
    assert_eq!(t.voters().len(), 5);
    assert_eq!(t.main_site(), "denver");
    assert_eq!(t.max_rank(), 1);
    assert_eq!(t.member(NodeId(1)).unwrap().priority(), 100);
    assert_eq!(t.member(NodeId(3)).unwrap().priority(), 89);
    assert_eq!(t.member(NodeId(5)).unwrap().priority(), 0);
}

#[test]
fn an_election_timeout_short_of_the_worst_declared_wan_is_refused() {
    let ms = Duration::from_millis;
    let wan = Latency::new(ms(1), ms(80))
        .with_site_rtt("denver", "paris", ms(150))
        .with_site_rtt("paris", "kansas", ms(100));
    // The default 200 ms covers an even 80 ms WAN: 2 × (80 + 10).
    let mut b = denver_paris();
    b.wan(Latency::new(ms(1), ms(80)));
    assert!(b.build().is_ok());
    // Undeclared, nothing is checked.
    assert!(denver_paris().build().is_ok());
    b.wan(wan);
    let err = b.build().unwrap_err();
    assert_eq!(
        err,
        TopologyError::ElectionTooShortForWan {
            a: "denver".into(),
            b: "paris".into(),
            rtt: ms(150),
            election: ms(200),
            need: ms(320),
        }
    );
    assert!(err
        .to_string()
        .contains("set Timers::election to at least 320ms"));
    b.timers(Timers {
        election: ms(320),
        ..Timers::default()
    });
    assert!(b.build().is_ok());
}

#[test]
fn pair_on_one_host_is_refused() {
    let mut b = denver_paris();
    b.cores[0].members[1].host = "esxi-1".into();
    let err = b.build().unwrap_err();
    assert_eq!(
        err,
        TopologyError::PairSharesHost {
            core: "cm01".into(),
            first: "CM01a".into(),
            second: "CM01b".into(),
            host: "esxi-1".into()
        }
    );
    assert!(err.to_string().contains("separate physical hosts"));
}

#[test]
fn pair_mixing_appliances_is_refused() {
    let mut b = denver_paris();
    b.survivable[0].core.members[0].appliance = Dedicated;
    assert!(matches!(
        b.build(),
        Err(TopologyError::PairMixesAppliances { core, first, .. }) if core == "cm02" && first == "CM02a"
    ));
}

#[test]
fn duplicate_ids_and_names_are_refused() {
    let mut b = denver_paris();
    b.witnesses[0].member.id = NodeId(3);
    assert!(matches!(
        b.build(),
        Err(TopologyError::DuplicateNodeId { id: NodeId(3), first, second }) if first == "CM02a" && second == "W1"
    ));
    let mut b = denver_paris();
    b.witnesses[0].member.name = "CM01a".into();
    assert!(matches!(
        b.build(),
        Err(TopologyError::DuplicateName { name, first: NodeId(1), second: NodeId(5) }) if name == "CM01a"
    ));
    let mut b = denver_paris();
    b.witnesses[0].member.id = NodeId(0);
    assert!(matches!(b.build(), Err(TopologyError::ZeroNodeId { .. })));
}

#[test]
fn site_errors() {
    let mut b = denver_paris();
    b.sites[0].main = false;
    assert_eq!(b.build().unwrap_err(), TopologyError::NoMainSite);
    let mut b = denver_paris();
    b.sites[1].main = true;
    assert!(matches!(b.build(), Err(TopologyError::TwoMainSites { .. })));
    let mut b = denver_paris();
    b.sites.push(Site::backup("paris"));
    assert!(matches!(
        b.build(),
        Err(TopologyError::DuplicateSite { site }) if site == "paris"
    ));
    let mut b = denver_paris();
    b.witnesses[0].site = "tokyo".into();
    assert!(matches!(
        b.build(),
        Err(TopologyError::UnknownSite {
            what: "witness",
            ..
        })
    ));
}

#[test]
fn a_core_in_an_unknown_site_is_refused_with_the_fix() {
    let mut b = denver_paris();
    b.cores[0].site = "boston".into();
    let err = b.build().unwrap_err();
    assert_eq!(
        err,
        TopologyError::UnknownSite {
            what: "core",
            name: "cm01".into(),
            site: "boston".into(),
        }
    );
    assert!(err.to_string().contains("declare it with .site(..) first"));
    // A survivable core is a core too.
    let mut b = denver_paris();
    b.survivable[0].core.site = "boston".into();
    assert!(matches!(
        b.build(),
        Err(TopologyError::UnknownSite { what: "core", name, site })
            if name == "cm02" && site == "boston"
    ));
}

#[test]
fn a_main_site_mode_tie_breaker_outside_the_main_site_is_refused_with_the_fix() {
    let mut b = crate::topology::denver_paris_two_site();
    b.witnesses[0].site = "paris".into();
    let err = b.build().unwrap_err();
    assert_eq!(
        err,
        TopologyError::WitnessOutsideMainSite {
            witness: "TB".into(),
            site: "paris".into(),
            main: "denver".into(),
        }
    );
    let text = err.to_string();
    assert!(
        text.contains("must be in the main site \"denver\""),
        "{text}"
    );
    assert!(
        text.contains("move it, or use QuorumMode::Witness"),
        "{text}"
    );
    // The same witness in the main site is the valid reference layout.
    b.witnesses[0].site = "denver".into();
    assert!(b.build().is_ok());
}

#[test]
fn rank_errors() {
    let mut b = denver_paris();
    b.site(Site::backup("london"))
        .survivable_core(SurvivableCore::new(
            1,
            Core::new("cm03", "london")
                .member(6, "CM03a", "l-1", Virtual)
                .member(7, "CM03b", "l-2", Virtual),
        ));
    assert!(matches!(
        b.build(),
        Err(TopologyError::DuplicateRank { rank: 1, first, second }) if first == "cm02" && second == "cm03"
    ));
    let mut b = denver_paris();
    b.survivable[0].rank = 0;
    assert!(matches!(b.build(), Err(TopologyError::ZeroRank { .. })));
}

#[test]
fn survivable_core_in_main_site_is_refused() {
    let mut b = denver_paris();
    b.survivable[0].core.site = "denver".into();
    assert!(matches!(
        b.build(),
        Err(TopologyError::SurvivableInMainSite { core, site }) if core == "cm02" && site == "denver"
    ));
}

#[test]
fn core_shape_errors() {
    let mut b = denver_paris();
    b.cores[0].members.pop();
    assert!(matches!(
        b.build(),
        Err(TopologyError::NotAPair { count: 1, .. })
    ));
    let mut b = denver_paris();
    b.cores[0].site = "paris".into();
    assert!(matches!(
        b.build(),
        Err(TopologyError::CoreOutsideMainSite { .. })
    ));
    let mut b = denver_paris();
    b.cores.clear();
    assert!(matches!(b.build(), Err(TopologyError::NoMainCore { .. })));
    let mut b = denver_paris();
    b.core(
        Core::new("cm09", "denver")
            .member(8, "X", "h8", Virtual)
            .member(9, "Y", "h9", Virtual),
    );
    assert!(matches!(b.build(), Err(TopologyError::TwoMainCores { .. })));
    let mut b = denver_paris();
    b.cores.push(b.cores[0].clone());
    assert!(matches!(
        b.build(),
        Err(TopologyError::DuplicateCore { .. })
    ));
}

#[test]
fn a_lone_pair_cannot_survive_a_host_loss_unless_allowed() {
    let mut b = Topology::builder(1);
    b.site(Site::main("denver")).core(
        Core::new("cm01", "denver")
            .member(1, "CM01a", "esxi-1", Virtual)
            .member(2, "CM01b", "esxi-3", Virtual),
    );
    let err = b.build().unwrap_err();
    assert!(matches!(
        &err,
        TopologyError::HostLossBreaksQuorum { host, left: 1, voters: 2, .. } if host == "esxi-1"
    ));
    assert!(err.to_string().contains("tie-breaker"));
    b.allow_single_host_outage(true);
    assert!(b.build().is_ok());
    // A local tie-breaker fixes it.
    b.allow_single_host_outage(false)
        .witness(Witness::new(3, "TB", "denver", "esxi-9"));
    assert!(b.build().is_ok());
}

#[test]
fn shared_witness_host_breaks_quorum() {
    let mut b = denver_paris();
    // Witness on the same host as CM02a: losing that host leaves 3 of 5, still fine.
    b.witnesses[0].member.host = "esxi-5".into();
    assert!(b.build().is_ok());
    // Put CM01b on it too: losing esxi-5 leaves 2 of 5.
    b.cores[0].members[1].host = "esxi-5".into();
    assert!(matches!(
        b.build(),
        Err(TopologyError::HostLossBreaksQuorum {
            left: 2,
            voters: 5,
            ..
        })
    ));
}

#[test]
fn policy_errors_surface() {
    let mut b = denver_paris();
    b.timers(Timers {
        survivable_after: Duration::from_millis(10),
        ..Timers::default()
    });
    assert!(matches!(
        b.build(),
        Err(TopologyError::Policy(
            PolicyError::SurvivableTooEarly { .. }
        ))
    ));
    let mut b = denver_paris();
    let t = TimeOfDay::hm(3, 0);
    b.hand_back(HandBack {
        policy: HandBackPolicy::Window { start: t, end: t },
        ..HandBack::default()
    });
    assert!(matches!(
        b.build(),
        Err(TopologyError::Policy(PolicyError::EmptyWindow { .. }))
    ));
}

#[test]
fn dr_auto_sync_needs_two_sites_a_voter_in_each_and_a_main_site_majority() {
    use crate::topology::denver_paris_dr;
    assert!(denver_paris_dr().build().is_ok());
    // A third site: refused, naming all three.
    let mut three = denver_paris_dr();
    three.site(Site::backup("kansas"));
    assert_eq!(
        three.build().unwrap_err(),
        TopologyError::DrNeedsTwoSites {
            count: 3,
            sites: vec!["denver".into(), "paris".into(), "kansas".into()],
        }
    );
    // Paris without its core: no commit could ever reach it.
    let mut empty = denver_paris_dr();
    empty.survivable.clear();
    assert_eq!(
        empty.build().unwrap_err(),
        TopologyError::DrSiteWithoutVoter {
            site: "paris".into()
        }
    );
    // Without the tie-breaker Denver holds 2 of 4: one more is needed.
    let mut no_tb = denver_paris_dr();
    no_tb.witnesses.clear();
    no_tb.allow_single_host_outage(true);
    let err = no_tb.build().unwrap_err();
    assert_eq!(
        err,
        TopologyError::DrMainSiteNotMajority {
            main: "denver".into(),
            main_voters: 2,
            voters: 4,
            more: 1,
        }
    );
    assert!(err.to_string().contains("add 1 tie-breaker(s)"), "{err}");
    // A second Paris core (4 of 7 is not Denver's 3): two more needed.
    let mut two = denver_paris_dr();
    two.survivable_core(SurvivableCore::new(
        2,
        Core::new("cm03", "paris")
            .member(6, "CM03a", "esxi-11", Virtual)
            .member(7, "CM03b", "esxi-12", Virtual),
    ));
    let err = two.build().unwrap_err();
    assert!(
        matches!(
            err,
            TopologyError::DrMainSiteNotMajority {
                main_voters: 3,
                voters: 7,
                more: 2,
                ..
            }
        ),
        "{err:?}"
    );
    // The tie-breaker in Paris: refused as in main-site mode.
    let mut away = denver_paris_dr();
    away.witnesses[0].site = "paris".into();
    let err = away.build().unwrap_err();
    assert!(
        matches!(err, TopologyError::WitnessOutsideMainSite { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("DR auto-sync"), "{err}");
}

#[test]
fn dr_auto_sync_refuses_a_sync_wait_its_takeover_could_not_prove_rpo_0_with() {
    use crate::topology::denver_paris_dr;
    let ms = Duration::from_millis;
    let ticks = Timers::default().to_ticks().unwrap();
    // 2000 + 200 + 50 = 2250 ms to outlast: the lease of s ms is
    // s - s/100 - 10, so s - s/100 > 2260: 2285 (lease 2253), not 2280
    // (lease 2248).
    assert_eq!(min_sync_wait(&ticks, Duration::ZERO), ms(2285));
    // Two 80 ms round trips more: 2410 to outlast, 2445 (lease 2411),
    // not 2440 (lease 2406).
    assert_eq!(min_sync_wait(&ticks, ms(80)), ms(2445));
    let mut b = denver_paris_dr();
    let short = |wait: u64| Timers {
        sync_wait: ms(wait),
        ..Timers::default()
    };
    b.timers(short(2285));
    assert!(b.build().is_ok());
    b.timers(short(2280));
    let err = b.build().unwrap_err();
    assert_eq!(
        err,
        TopologyError::DrSyncWaitTooShort {
            sync_wait: ms(2280),
            need: ms(2285),
            survivable_after: ms(2000),
            election: ms(200),
            rtt: Duration::ZERO,
        }
    );
    assert!(
        err.to_string()
            .contains("set Timers::sync_wait to at least 2.285s"),
        "{err}"
    );
    // A declared WAN counts its worst round trip.
    b.timers(short(2285)).wan(Latency::new(ms(1), ms(80)));
    let err = b.build().unwrap_err();
    assert!(
        matches!(err, TopologyError::DrSyncWaitTooShort { need, rtt, .. } if need == ms(2445) && rtt == ms(80)),
        "{err:?}"
    );
    // Unless takeovers with an unproven RPO are accepted.
    b.allow_unproven_takeover(true);
    assert!(b.build().is_ok());
    b.allow_unproven_takeover(false);
    // Other modes do not wait for a site: the same timers pass.
    let mut witness = denver_paris();
    witness.timers(short(10));
    assert!(witness.build().is_ok());
}
