//! Witness mode (the paper's Figures 3–8): Denver's duplicated core, Paris's
//! rank-1 survivable core and a witness in Kansas are all voters, so every
//! commit spans two sites and nothing committed is ever lost. After the
//! paper's steps come split-brain prevention (`split_brain.rs`, Denver's
//! side of the WAN cut) and no flapping (`no_flapping.rs`, after the
//! hand-back).

use std::collections::BTreeSet;
use std::time::Duration;

use survivable_core::node::ProposalId;
use survivable_core::sim::scenarios::split_brain::SplitBrainOutcome;
use survivable_core::sim::Sim;
use survivable_core::topology::{denver_paris, Appliance::Virtual, Failure, MemberSpec, NodeId};

use crate::bounds::Bounds;
use crate::{
    finish, first_commit_in_term, hand_back_attempt, hand_back_figures, json_num, leader_term,
    no_flapping, print, split_brain, start, Args, CallTable, Checks, Workload,
};

/// A witness-mode run: the simulator, the users' calls and the checks,
/// shared by its steps.
struct Run<'a> {
    sim: Sim<CallTable>,
    w: Workload,
    c: Checks,
    args: &'a Args,
}

/// Runs the seven witness-mode steps; whether each behaved as designed and
/// reached the figures (takeovers, the isolated leader stepping
/// down, hand-back outage, no flapping, nothing lost).
pub(crate) fn run(args: &Args) -> bool {
    let Some(sim) = start("witness mode", denver_paris(), CallTable::default(), args) else {
        return false;
    };
    let mut run = Run {
        sim,
        w: Workload::new(args.seed, false),
        c: Checks::new("witness"),
        args,
    };
    run.normal();
    run.duplication_failover();
    run.standby_restored();
    let (cut, before) = run.wan_partition();
    // split_brain (behaviour 5): Denver's side of that cut.
    let held = split_brain::step(&run.sim, &run.w, &mut run.c, args, &cut, &before);
    run.hand_back(&held);
    // no_flapping (behaviour 7): cut again, a flapping WAN, then steady.
    no_flapping::step(&mut run.sim, &mut run.w, &mut run.c, args);
    let drawn = crate::write_svg(args, crate::Mode::Witness, &run.sim, &run.w);
    run.c.finish(&run.sim.violations()) && drawn
}

impl Run<'_> {
    /// normal (Fig. 7).
    fn normal(&mut self) {
        let Self { sim, w, c, args } = self;
        let since = sim.now_us();
        w.run(sim, Duration::from_secs(5));
        let r = finish(sim, w, "normal", "Fig. 7", &w.up.clone(), None, since);
        c.leads(&r, sim, "denver");
        c.nothing_lost(&r);
        print(sim, "witness", &r, args.json);
    }

    /// duplication_failover (Fig. 3-4): CM01a's host fails.
    fn duplication_failover(&mut self) {
        let Self { sim, w, c, args } = self;
        let before = w.up.clone();
        let since = sim.now_us();
        let term = leader_term(sim).map_or(0, |(_, t)| t);
        let bounds = Bounds::new(sim, args);
        w.probe = true;
        sim.crash_host("esxi-1");
        w.run(sim, Duration::from_secs(3));
        w.probe = false;
        let takeover = first_commit_in_term(sim, since, term);
        let r = finish(
            sim,
            w,
            "duplication_failover",
            "Fig. 3-4",
            &before,
            takeover,
            since,
        );
        c.check(
            r.step,
            "CM01b leads",
            r.leader == Some(NodeId(2)),
            format!("{:?}", r.leader),
        );
        c.no_call_dropped(&r);
        // The standby's detection (failover timer), its votes and its
        // first commit, each a round trip to its nearest remote voter: the
        // report's figure (190 ms at the default 80 ms WAN).
        let host = Failure::Host {
            host: "esxi-1".into(),
        };
        c.at_most(
            r.step,
            "takeover ≤ the report's pair-failover figure + 1 tick",
            takeover,
            bounds.takeover_ms(&host).unwrap_or(0),
        );
        c.nothing_lost(&r);
        print(sim, "witness", &r, args.json);
    }

    /// standby_restored (Fig. 5): a replacement CM01c on another host.
    fn standby_restored(&mut self) {
        let Self { sim, w, c, args } = self;
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
            c.check(
                "standby_restored",
                "the replacement is accepted",
                false,
                format!("{replaced:?}"),
            );
        }
        let mut restored_ms = None;
        for _ in 0..100 {
            w.run(sim, Duration::from_millis(100));
            let voters = sim.node(leader).map(|n| n.voters()).unwrap_or_default();
            if voters.contains(&NodeId(6)) && !voters.contains(&NodeId(1)) {
                restored_ms = Some((sim.now_us() - since) / 1000);
                break;
            }
        }
        w.run(sim, Duration::from_secs(1));
        let mut r = finish(sim, w, "standby_restored", "Fig. 5", &before, None, since);
        r.extra
            .push(("redundancy_restored_ms", json_num(restored_ms)));
        c.check(
            r.step,
            "the replacement becomes a voter",
            restored_ms.is_some(),
            "not within 10 s".into(),
        );
        c.nothing_lost(&r);
        print(sim, "witness", &r, args.json);
    }

    /// wan_partition (Fig. 8): Denver is cut off; Paris takes over. Returns
    /// what the cut did on Denver's side (for `split_brain`) and the calls
    /// up at the cut.
    fn wan_partition(&mut self) -> (SplitBrainOutcome, BTreeSet<u64>) {
        let Self { sim, w, c, args } = self;
        let before = w.up.clone();
        let since = sim.now_us();
        let term = leader_term(sim).map_or(0, |(_, t)| t);
        let bounds = Bounds::new(sim, args);
        w.probe = true;
        let cut = split_brain::cut(
            sim,
            w,
            Duration::from_millis(args.survivable_after_ms + 3_000),
        );
        w.probe = false;
        let takeover = first_commit_in_term(sim, since, term);
        let r = finish(sim, w, "wan_partition", "Fig. 8", &before, takeover, since);
        c.leads(&r, sim, "paris");
        // Detection (survivable_after), pre-vote, vote and first commit,
        // each a round trip to the farthest voter Paris needs: the report's
        // figure for this cut.
        let cut_off = Failure::Partition {
            side_a: vec!["denver".into()],
            side_b: vec!["paris".into(), "kansas".into()],
        };
        c.at_most(
            r.step,
            "takeover ≤ the report's figure for the cut + 1 tick",
            takeover,
            bounds.takeover_ms(&cut_off).unwrap_or(0),
        );
        c.nothing_lost(&r);
        print(sim, "witness", &r, args.json);
        (cut, before)
    }

    /// hand_back: the WAN heals; control returns to Denver; every proposal
    /// `held` at Denver during the cut is acknowledged.
    fn hand_back(&mut self, held: &[ProposalId]) {
        let Self { sim, w, c, args } = self;
        let before = w.up.clone();
        let since = sim.now_us();
        let term = leader_term(sim).map_or(0, |(_, t)| t);
        sim.heal();
        let failed_before = w.failed;
        w.probe = true;
        w.run(sim, Duration::from_millis(args.stable_ms + 4_000));
        w.probe = false;
        // The hand-back's own "takeover": from its first attempt to the first
        // commit under the main site's leader.
        let handed_at = hand_back_attempt(sim, since);
        let takeover = handed_at.and_then(|t0| first_commit_in_term(sim, t0, term));
        let mut r = finish(sim, w, "hand_back", "design card", &before, takeover, since);
        let outage = hand_back_figures(sim, &mut r, handed_at, since, w.failed - failed_before);
        c.leads(&r, sim, "denver");
        c.at_most(
            r.step,
            "write outage ≤ 2 WAN RTT + 2 LAN RTT + 2 ticks",
            outage,
            Bounds::new(sim, args).hand_back_outage_ms("paris", "denver"),
        );
        let failed = w.failed - failed_before;
        c.check(
            r.step,
            "no failed proposal",
            failed == 0,
            format!("{failed} failed"),
        );
        let held_acked = split_brain::held_acknowledged(sim, held);
        r.extra.push(("denver_held_acked", held_acked.to_string()));
        c.check(
            r.step,
            "every proposal held at Denver during the cut is acknowledged after the heal",
            held_acked == held.len(),
            format!("{held_acked} of {}", held.len()),
        );
        c.nothing_lost(&r);
        print(sim, "witness", &r, args.json);
    }
}
