//! The report's rows for the paper's topologies, and the rendered table.

use std::time::Duration;

use super::*;
use crate::topology::{Appliance::Virtual, Core, NodeId, Site, Topology};

fn denver_paris() -> Topology {
    crate::topology::denver_paris().build().unwrap()
}

fn row(r: &SurvivabilityReport, f: Failure) -> &Scenario {
    r.scenario(&f).unwrap_or_else(|| panic!("no row for {f}"))
}

#[test]
fn lists_every_host_core_site_and_partition() {
    let r = denver_paris().survivability();
    // 5 hosts, 2 cores, 3 sites, 3 two-way partitions each followed by a
    // row per host on its leading side (3 + 4 + 3), every site alone.
    assert_eq!(r.scenarios.len(), 24);
    let apart = row(&r, Failure::AllApart);
    // No site holds three of the five voters.
    assert_eq!(apart.how, Takeover::NoQuorum);
    assert_eq!(apart.leader, None);
    assert_eq!(r.steady_leader, Some(NodeId(1)));
}

#[test]
fn primary_host_loss_is_a_pair_failover() {
    let r = denver_paris().survivability();
    let s = row(
        &r,
        Failure::Host {
            host: "esxi-1".into(),
        },
    );
    assert_eq!(s.leader, Some(NodeId(2)));
    assert_eq!(s.how, Takeover::PairFailover);
    assert_eq!(s.committed, Committed::Preserved);
    // Last heartbeat in flight (LAN); detection: the probe asked after
    // 25 ms is answered a WAN round trip later, past the 100 ms failover
    // time; then a vote round and a commit round over the WAN.
    assert_eq!(
        s.takeover,
        Some(Duration::from_micros(500 + (25_000 + 80_000) + 2 * 80_000))
    );
}

#[test]
fn main_site_loss_and_isolation_go_to_paris() {
    let r = denver_paris().survivability();
    for (f, in_flight) in [
        (
            Failure::Site {
                site: "denver".into(),
            },
            40,
        ),
        (
            Failure::Core {
                core: "cm01".into(),
            },
            40,
        ),
        (
            Failure::Partition {
                side_a: vec!["denver".into()],
                side_b: vec!["paris".into(), "kansas".into()],
            },
            0,
        ),
    ] {
        let s = row(&r, f);
        assert_eq!(s.leader, Some(NodeId(3)));
        assert_eq!(s.leader_site.as_deref(), Some("paris"));
        assert_eq!(s.how, Takeover::Survivable { rank: 1 });
        // The last heartbeat lands (a crash), survivable_after, then
        // pre-vote, vote and commit rounds.
        assert_eq!(
            s.takeover,
            Some(Duration::from_millis(in_flight + 2000 + 3 * 80))
        );
    }
}

#[test]
fn backup_failures_leave_the_leader_alone() {
    let r = denver_paris().survivability();
    for f in [
        Failure::Host {
            host: "esxi-3".into(),
        },
        Failure::Site {
            site: "paris".into(),
        },
        Failure::Site {
            site: "kansas".into(),
        },
        Failure::Partition {
            side_a: vec!["denver".into(), "kansas".into()],
            side_b: vec!["paris".into()],
        },
    ] {
        let s = row(&r, f);
        assert_eq!(s.how, Takeover::Unaffected);
        assert_eq!(s.leader, Some(NodeId(1)));
        assert_eq!(s.takeover, None);
    }
}

#[test]
fn a_lone_pair_has_no_quorum_after_a_host_loss() {
    let t = Topology::builder(1)
        .site(Site::main("denver"))
        .core(
            Core::new("cm01", "denver")
                .member(1, "a", "h1", Virtual)
                .member(2, "b", "h2", Virtual),
        )
        .allow_single_host_outage(true)
        .build()
        .unwrap();
    let r = t.survivability();
    let s = row(&r, Failure::Host { host: "h1".into() });
    assert_eq!(s.how, Takeover::NoQuorum);
    assert_eq!(s.leader, None);
    assert_eq!(s.committed, Committed::Unavailable);
}

#[test]
fn prints_an_aligned_table() {
    let text = denver_paris().survivability().to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].contains("5 voters, majority 3"));
    assert!(lines[1].starts_with("failure"));
    let takeover_col = lines[1].find("takeover").unwrap();
    assert!(lines[2..15].iter().all(|l| l.len() >= takeover_col));
    assert!(text.contains("partition denver | paris+kansas"));
    assert!(text.contains("CM02a (paris)"));
    assert!(text.contains("2240 ms"));
}

#[test]
fn the_two_site_report_is_honest() {
    let t = crate::topology::denver_paris_two_site().build().unwrap();
    let r = t.survivability();
    assert_eq!(r.voters, 3);
    // A host in Denver: the pair fails over over the LAN.
    let s = row(
        &r,
        Failure::Host {
            host: "esxi-1".into(),
        },
    );
    assert_eq!((s.how, s.leader), (Takeover::PairFailover, Some(NodeId(2))));
    assert_eq!(s.committed, Committed::Preserved);
    // The 100 ms failover time (the probe's LAN round trip inside it) and
    // two LAN rounds.
    assert!(s.takeover.unwrap() < Duration::from_millis(110));
    // Paris is a learner: losing it changes nothing.
    let s = row(
        &r,
        Failure::Site {
            site: "paris".into(),
        },
    );
    assert_eq!(s.how, Takeover::Unaffected);
    // Losing Denver costs the replication lag; Paris activates.
    let s = row(
        &r,
        Failure::Site {
            site: "denver".into(),
        },
    );
    assert_eq!(s.how, Takeover::Activation { rank: 1 });
    assert_eq!(
        (s.leader, s.committed),
        (Some(NodeId(3)), Committed::UpToLag)
    );
    assert!(s.takeover.unwrap() <= Duration::from_millis(2000 + 40 + 3));
    // A cut WAN: both sides serve, reconciled later.
    let s = row(
        &r,
        Failure::Partition {
            side_a: vec!["denver".into()],
            side_b: vec!["paris".into()],
        },
    );
    assert_eq!(s.how, Takeover::Split { rank: 1 });
    assert_eq!(
        (s.leader, s.epoch_leader),
        (Some(NodeId(1)), Some(NodeId(3)))
    );
    assert_eq!(s.committed, Committed::Reconciled);
    let text = r.to_string();
    assert!(text.contains("main-site mode: 3 voters"), "{text}");
    assert!(
        text.contains("CM01a (denver) + CM02a (new epoch)"),
        "{text}"
    );
}

#[test]
fn site_rtt_overrides_the_wan() {
    let l = Latency::default().with_site_rtt("denver", "kansas", Duration::from_millis(20));
    assert_eq!(l.rtt("kansas", "denver"), Duration::from_millis(20));
    assert_eq!(l.rtt("denver", "paris"), Duration::from_millis(80));
    assert_eq!(l.rtt("paris", "paris"), Duration::from_millis(1));
}

#[test]
fn uneven_wan_predictions_follow_the_actual_path() {
    // The witness nearer Denver: cut under load, it holds entries Paris
    // lacks and relays them (a round trip Paris-Kansas), then pre-vote,
    // vote and commit rounds, each a Paris-Kansas round trip.
    let latency = Latency::default()
        .with_site_rtt("denver", "kansas", Duration::from_millis(40))
        .with_site_rtt("paris", "kansas", Duration::from_millis(60));
    assert_eq!(latency.rtt("kansas", "paris"), Duration::from_millis(60));
    let r = denver_paris().survivability_with(latency);
    let cut = row(
        &r,
        Failure::Partition {
            side_a: vec!["denver".into()],
            side_b: vec!["paris".into(), "kansas".into()],
        },
    );
    assert_eq!(
        cut.takeover,
        Some(Duration::from_millis(2000 + 60 + 3 * 60))
    );
    // A crash: what Denver sent lands everywhere (no relay); silence at
    // Paris starts when Denver's last heartbeat lands, 40 ms one way.
    let lost = row(
        &r,
        Failure::Site {
            site: "denver".into(),
        },
    );
    assert_eq!(
        lost.takeover,
        Some(Duration::from_millis(40 + 2000 + 3 * 60))
    );

    // Paris nearer Denver than the witness is: the witness is behind, so
    // Paris needs no relay, but the witness refuses the new leader's first
    // append (it lacks the entry before) and takes the second: the commit
    // round is two round trips to it.
    let latency = Latency::default()
        .with_link_latency("denver", "kansas", Duration::from_millis(45))
        .with_link_latency("kansas", "denver", Duration::from_millis(25))
        .with_site_rtt("paris", "kansas", Duration::from_millis(30))
        .with_site_rtt("denver", "paris", Duration::from_millis(60));
    assert_eq!(latency.rtt("denver", "kansas"), Duration::from_millis(70));
    assert_eq!(
        latency.one_way("kansas", "denver"),
        Duration::from_millis(25)
    );
    let r = denver_paris().survivability_with(latency);
    let cut = row(
        &r,
        Failure::Partition {
            side_a: vec!["denver".into()],
            side_b: vec!["paris".into(), "kansas".into()],
        },
    );
    assert_eq!(
        cut.takeover,
        Some(Duration::from_millis(2000 + 30 + 30 + 2 * 30))
    );
}

#[test]
fn a_host_failure_during_a_partition_is_settled_from_the_partitions_leader() {
    let r = denver_paris().survivability();
    let during = |host: &str, a: &[&str], b: &[&str]| {
        row(
            &r,
            Failure::HostDuringPartition {
                host: host.into(),
                side_a: a.iter().map(|s| s.to_string()).collect(),
                side_b: b.iter().map(|s| s.to_string()).collect(),
            },
        )
        .clone()
    };
    // Kansas cut off, then Denver's primary dies: its standby fails over
    // with Paris's votes, as without the partition: the heartbeat in
    // flight (half a LAN RTT), detection (the 25 ms probe plus its WAN
    // round trip, later than the 100 ms failover), then votes and commit.
    let s = during("esxi-1", &["denver", "paris"], &["kansas"]);
    assert_eq!(s.how, Takeover::PairFailover);
    assert_eq!(s.leader, Some(NodeId(2)));
    assert_eq!(
        s.takeover,
        Some(Duration::from_micros(500 + (25_000 + 80_000) + 2 * 80_000))
    );
    // Paris cut off, then Denver's primary dies: two of five left.
    let s = during("esxi-1", &["denver", "kansas"], &["paris"]);
    assert_eq!(s.how, Takeover::NoQuorum);
    // Denver cut off and Paris leading, then the witness dies: two of five.
    let s = during("wit-1", &["denver"], &["paris", "kansas"]);
    assert_eq!(s.how, Takeover::NoQuorum);
    assert_eq!(
        s.failure.to_string(),
        "host wit-1 during denver | paris+kansas"
    );
    // A host on the cut-off side gets no row.
    assert!(r
        .scenario(&Failure::HostDuringPartition {
            host: "esxi-5".into(),
            side_a: vec!["denver".into(), "kansas".into()],
            side_b: vec!["paris".into()],
        })
        .is_none());
    assert_eq!(
        Failure::HostDuringPartition {
            host: "h".into(),
            side_a: vec!["a".into()],
            side_b: vec!["b".into()],
        }
        .before(),
        Some(Failure::Partition {
            side_a: vec!["a".into()],
            side_b: vec!["b".into()],
        })
    );
}

#[test]
fn the_dr_auto_sync_report_says_what_each_loss_costs() {
    let t = crate::topology::denver_paris_dr().build().unwrap();
    let r = t.survivability();
    assert_eq!(r.voters, 5);
    let ms = Duration::from_millis;
    // Denver lost: Paris activates once both its members stopped
    // acknowledging: Denver's last heartbeat (40 ms one way), the
    // standby's wait (2000 + 200 ms) and its answer (a 1 ms LAN round),
    // then the new epoch's vote and commit rounds (3 LAN rounds). RPO 0
    // if the cluster was in sync.
    let denver = row(
        &r,
        Failure::Site {
            site: "denver".into(),
        },
    );
    assert_eq!(denver.how, Takeover::Activation { rank: 1 });
    assert_eq!(
        (denver.leader, denver.committed),
        (Some(NodeId(3)), Committed::ZeroIfSync)
    );
    assert_eq!(denver.takeover, Some(ms(40 + 2000 + 200 + 1 + 3)));
    // Paris lost: Denver hears Paris's last messages (40 ms one way),
    // its commits stall sync_wait (4 s), then an announcement round and a
    // commit round on the LAN.
    for f in [
        Failure::Site {
            site: "paris".into(),
        },
        Failure::Core {
            core: "cm02".into(),
        },
    ] {
        let s = row(&r, f);
        assert_eq!(s.how, Takeover::StallThenAsync { stall: ms(4000) });
        assert_eq!(
            (s.leader, s.committed),
            (Some(NodeId(1)), Committed::Preserved)
        );
        assert_eq!(s.takeover, Some(ms(40 + 4000 + 2)));
    }
    // A WAN cut: Denver stalls, then commits alone; Paris, cut off from
    // the majority, activates as when Denver is lost (no heartbeat in
    // flight: the cut drops it).
    let cut = row(
        &r,
        Failure::Partition {
            side_a: vec!["denver".into()],
            side_b: vec!["paris".into()],
        },
    );
    assert_eq!(
        cut.how,
        Takeover::SplitAfterStall {
            rank: 1,
            stall: ms(4000)
        }
    );
    assert_eq!(
        (cut.leader, cut.epoch_leader, cut.committed),
        (Some(NodeId(1)), Some(NodeId(3)), Committed::Reconciled)
    );
    assert_eq!(cut.takeover, Some(ms(2000 + 200 + 1 + 3)));
    // Pair failovers as in the other modes: Denver's standby, and the
    // vote and commit need Paris (group commit), a WAN round each.
    let primary = row(
        &r,
        Failure::Host {
            host: "esxi-1".into(),
        },
    );
    assert_eq!(primary.how, Takeover::PairFailover);
    assert_eq!(primary.committed, Committed::Preserved);
    // Both Denver core members lost: the tie-breaker and Paris are a
    // majority: Paris is elected in the same epoch, nothing lost.
    let core = row(
        &r,
        Failure::Core {
            core: "cm01".into(),
        },
    );
    assert_eq!(core.how, Takeover::Survivable { rank: 1 });
    assert_eq!(core.committed, Committed::Preserved);
    // A Paris host: its partner still acknowledges, nothing changes.
    let paris_host = row(
        &r,
        Failure::Host {
            host: "esxi-5".into(),
        },
    );
    assert_eq!(paris_host.how, Takeover::Unaffected);
}

#[test]
fn the_dr_auto_sync_table_says_it_in_words() {
    let t = crate::topology::denver_paris_dr().build().unwrap();
    let text = t.survivability().to_string();
    assert!(text.contains("DR auto-sync mode: 5 voters"), "{text}");
    for cell in [
        "RPO 0 if in sync (lease), else async lag",
        "commits stall 4000 ms, then async",
        "both serve, rank 1; main stalls 4000 ms, then async",
        "CM01a (denver) + CM02a (new epoch)",
    ] {
        assert!(text.contains(cell), "{cell} missing in\n{text}");
    }
}
