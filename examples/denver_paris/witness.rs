//! Witness mode (the paper's Figures 3–8): Denver's duplicated core, Paris's
//! rank-1 survivable core and a witness in Kansas are all voters, so every
//! commit spans two sites and nothing committed is ever lost.

use std::time::Duration;

use survivable_core::topology::{denver_paris, Appliance::Virtual, MemberSpec, NodeId};
use survivable_core::Event;

use crate::{
    finish, first_commit_in_term, json_num, leader_term, print, start, Args, CallTable, Workload,
};

/// Runs the five witness-mode steps; whether each behaved as designed.
pub(crate) fn run(args: &Args) -> bool {
    let Some(mut sim) = start("witness mode", denver_paris(), CallTable::default(), args) else {
        return false;
    };
    let mut w = Workload::new(args.seed, false);
    let mut ok = true;

    // normal (Fig. 7)
    let since = sim.now_us();
    w.run(&mut sim, Duration::from_secs(5));
    let r = finish(&sim, &w, "normal", "Fig. 7", &w.up.clone(), None, since);
    ok &= r.leader.is_some_and(|l| sim.site_of(l) == "denver");
    print(&sim, "witness", &r, args.json);

    // duplication_failover (Fig. 3-4): CM01a's host fails.
    let before = w.up.clone();
    let since = sim.now_us();
    let term = leader_term(&sim).map_or(0, |(_, t)| t);
    sim.crash_host("esxi-1");
    w.run(&mut sim, Duration::from_secs(3));
    let takeover = first_commit_in_term(&sim, since, term);
    let r = finish(
        &sim,
        &w,
        "duplication_failover",
        "Fig. 3-4",
        &before,
        takeover,
        since,
    );
    ok &= r.leader == Some(NodeId(2)) && r.calls_dropped == 0;
    print(&sim, "witness", &r, args.json);

    // standby_restored (Fig. 5): a replacement CM01c on another host.
    let before = w.up.clone();
    let since = sim.now_us();
    let spec = MemberSpec {
        id: NodeId(6),
        name: "CM01c".into(),
        host: "esxi-4".into(),
        appliance: Virtual,
    };
    let leader = sim.leader().unwrap_or(NodeId(2));
    let member = sim
        .node(leader)
        .and_then(|n| n.replacement_member(NodeId(1), spec.clone()));
    let replaced = sim
        .node_mut(leader)
        .map(|n| n.replace_member(NodeId(1), spec));
    sim.flush(leader);
    if let (Some(member), Some(Ok(()))) = (member, &replaced) {
        sim.add_member(member.clone());
    } else {
        eprintln!("replacement refused: {replaced:?}");
        ok = false;
    }
    let mut restored_ms = None;
    for _ in 0..100 {
        w.run(&mut sim, Duration::from_millis(100));
        let voters = sim.node(leader).map(|n| n.voters()).unwrap_or_default();
        if voters.contains(&NodeId(6)) && !voters.contains(&NodeId(1)) {
            restored_ms = Some((sim.now_us() - since) / 1000);
            break;
        }
    }
    w.run(&mut sim, Duration::from_secs(1));
    let mut r = finish(&sim, &w, "standby_restored", "Fig. 5", &before, None, since);
    r.extra
        .push(("redundancy_restored_ms", json_num(restored_ms)));
    ok &= restored_ms.is_some();
    print(&sim, "witness", &r, args.json);

    // wan_partition (Fig. 8): Denver is cut off; Paris takes over.
    let before = w.up.clone();
    let since = sim.now_us();
    let term = leader_term(&sim).map_or(0, |(_, t)| t);
    sim.partition_sites(&["denver"], &["paris", "kansas"]);
    w.run(
        &mut sim,
        Duration::from_millis(args.survivable_after_ms + 3_000),
    );
    let takeover = first_commit_in_term(&sim, since, term);
    let r = finish(
        &sim,
        &w,
        "wan_partition",
        "Fig. 8",
        &before,
        takeover,
        since,
    );
    ok &= r.leader.is_some_and(|l| sim.site_of(l) == "paris") && r.committed_lost == 0;
    print(&sim, "witness", &r, args.json);

    // hand_back: the WAN heals; control returns to Denver.
    let before = w.up.clone();
    let since = sim.now_us();
    let term = leader_term(&sim).map_or(0, |(_, t)| t);
    sim.heal();
    let failed_before = w.failed;
    w.run(&mut sim, Duration::from_millis(args.stable_ms + 4_000));
    // The hand-back's own "takeover": from its first attempt to the first
    // commit under the main site's leader.
    let handed_at = sim
        .events()
        .iter()
        .find(|(t, _, e)| *t >= since && matches!(e, Event::HandBackAttempt { .. }))
        .map(|(t, _, _)| *t);
    let takeover = handed_at.and_then(|t0| first_commit_in_term(&sim, t0, term));
    let mut r = finish(
        &sim,
        &w,
        "hand_back",
        "design card",
        &before,
        takeover,
        since,
    );
    // Longest gap between commits from 0.5 s before the hand-back to 2 s after.
    let outage = handed_at
        .and_then(|t0| sim.longest_commit_gap(t0.saturating_sub(500_000), t0 + 2_000_000))
        .map(|us| us / 1000);
    r.extra.push((
        "stable_wait_ms",
        json_num(handed_at.map(|t| (t - since) / 1000)),
    ));
    r.extra.push(("write_outage_ms", json_num(outage)));
    r.extra
        .push(("failed_proposals", (w.failed - failed_before).to_string()));
    ok &= r.leader.is_some_and(|l| sim.site_of(l) == "denver") && w.failed == failed_before;
    print(&sim, "witness", &r, args.json);

    let violations = sim.violations();
    if !violations.is_empty() {
        eprintln!("invariant violations: {violations:?}");
        ok = false;
    }
    ok
}
