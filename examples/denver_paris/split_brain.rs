//! Behaviour 5, split-brain prevention (witness mode): what happened on
//! Denver's side during the WAN cut of `wan_partition`, reported as a step
//! of its own at the same virtual time. The isolated old leader steps down
//! within two election timeouts (check-quorum); its commit index stays
//! where it was at the cut and its log stops growing once it stepped
//! down; nothing proposed at Denver is acknowledged there beyond what was
//! committed before the cut (the proposals are held, and acknowledged after
//! the heal: `hand_back` checks it); no term ever had two leaders.
//!
//! The cut itself is scripted and measured by the library
//! (`survivable_core::sim::scenarios::split_brain`, which the scenario
//! tests assert on too); this step narrates and enforces its outcome.

use std::collections::BTreeSet;
use std::time::Duration;

use survivable_core::node::ProposalId;
use survivable_core::sim::scenarios::split_brain::{self, Cut, SplitBrain, SplitBrainOutcome};
use survivable_core::sim::scenarios::SiteCut;
use survivable_core::sim::Sim;
use survivable_core::topology::NodeId;

use crate::{
    finish, json_num, json_str, line, name, print, Args, CallTable, Checks, Report, Workload,
};

const STEP: &str = "split_brain";

fn in_denver(sim: &Sim<CallTable>, id: NodeId) -> bool {
    sim.site_of(id) == "denver"
}

/// Cuts Denver off from Paris and Kansas and runs the calls for `run_for`,
/// watching Denver's old leader (`wan_partition` reports the takeover,
/// [`step`] Denver's side).
pub(crate) fn cut(
    sim: &mut Sim<CallTable>,
    w: &mut Workload,
    run_for: Duration,
) -> SplitBrainOutcome {
    let plan = SplitBrain {
        cut: Cut::Sites(SiteCut::new(&["denver"], &["paris", "kansas"])),
        run_for,
    };
    split_brain::run(sim, &plan, |s, d, watch| w.run_watching(s, d, watch))
}

/// What the step measured beyond the scenario's outcome.
struct Held {
    /// The proposals held at Denver's running members.
    ids: Vec<ProposalId>,
    /// Where they are held.
    at: BTreeSet<String>,
}

/// The step's story: the cut, the step-down, what Denver's users saw.
fn story(sim: &Sim<CallTable>, cut: &SplitBrainOutcome, held: &Held) -> Vec<String> {
    let who = cut.old_leader.map_or("nobody".into(), |l| name(sim, l));
    let voters = (cut.old_leader.and_then(|l| sim.node(l))).map_or(vec![], |n| n.voters());
    let reach = voters.iter().filter(|&&v| in_denver(sim, v)).count();
    let mut story = vec![line(
        cut.cut_at_us,
        &format!(
            "the WAN is cut: {who} (leader, term {}, commit index {}) reaches {reach} of {} voters",
            cut.term_at_cut,
            cut.commit_at_cut,
            voters.len()
        ),
    )];
    if let (Some(t), Some(ms)) = (cut.stepped_down_at_us, cut.stepped_down_after_ms()) {
        story.push(line(
            t,
            &format!("{ms} ms after the cut, {who} steps down: no majority heard (check-quorum)"),
        ));
    }
    story.push(line(
        sim.now_us(),
        &format!(
            "Denver's users: {} proposals held at {}, {} acknowledged past \
             index {}; the majority side acknowledged {} since the cut",
            held.ids.len(),
            held.at.iter().cloned().collect::<Vec<_>>().join(", "),
            cut.isolated_acked_past_cut,
            cut.commit_at_cut,
            cut.majority_acked
        ),
    ));
    story
}

/// The step's checks on the old leader and Denver's side.
fn check(sim: &Sim<CallTable>, c: &mut Checks, cut: &SplitBrainOutcome, held: &Held) -> u64 {
    let old = cut.old_leader;
    c.check(
        STEP,
        "Denver led when the WAN was cut",
        old.is_some_and(|l| in_denver(sim, l)),
        format!("{old:?}"),
    );
    let ticks = sim.topology().ticks();
    let bound = 2 * ticks.ms(ticks.election);
    c.at_most(
        STEP,
        "the isolated old leader steps down within 2 election timeouts",
        cut.stepped_down_after_ms(),
        bound,
    );
    c.check(
        STEP,
        "the isolated old leader commits nothing after the cut",
        cut.commit_growth == Some(0),
        format!("commit index grew by {:?}", cut.commit_growth),
    );
    c.check(
        STEP,
        "the old leader's log stops growing once it stepped down",
        cut.log_growth() == Some(0),
        format!("log grew by {:?} entries", cut.log_growth()),
    );
    let acked_past_cut = cut.isolated_acked_past_cut;
    c.check(
        STEP,
        "nothing proposed at Denver is acknowledged there past the cut's commit index",
        acked_past_cut == 0,
        format!("{acked_past_cut} acknowledged"),
    );
    c.check(
        STEP,
        "Denver's users had proposals waiting (the old side was exercised)",
        !held.ids.is_empty(),
        "none held".into(),
    );
    bound
}

/// Reports and checks the step (the cut still in force; `before`: the
/// calls up at the cut); returns the proposals held at Denver's running
/// members, which the heal must acknowledge.
pub(crate) fn step(
    sim: &Sim<CallTable>,
    w: &Workload,
    c: &mut Checks,
    args: &Args,
    cut: &SplitBrainOutcome,
    before: &BTreeSet<u64>,
) -> Vec<ProposalId> {
    let mut r = finish(sim, w, STEP, "behaviour 5", before, None, sim.now_us());
    let ids: Vec<ProposalId> = (w.proposed.keys())
        .filter(|id| in_denver(sim, id.node) && sim.is_up(id.node))
        .copied()
        .collect();
    let at = ids.iter().map(|id| name(sim, id.node)).collect();
    let held = Held { ids, at };
    r.story = story(sim, cut, &held);
    let bound = check(sim, c, cut, &held);
    let (most, terms) = c.one_leader_per_term(STEP, sim);
    c.leads(&r, sim, "paris");
    c.nothing_lost(&r);
    c.no_call_dropped(&r);
    extra(&mut r, sim, cut, &held, bound, (most, terms));
    print(sim, "witness", &r, args.json);
    held.ids
}

/// The step's figures, for the report and `--json`.
fn extra(
    r: &mut Report,
    sim: &Sim<CallTable>,
    cut: &SplitBrainOutcome,
    held: &Held,
    bound: u64,
    (most, terms): (usize, usize),
) {
    let who = cut.old_leader.map_or("nobody".into(), |l| name(sim, l));
    r.extra.extend([
        ("old_leader", json_str(&who)),
        (
            "stepped_down_after_ms",
            json_num(cut.stepped_down_after_ms()),
        ),
        ("step_down_bound_ms", bound.to_string()),
        ("old_leader_commit_growth", json_num(cut.commit_growth)),
        ("old_leader_log_growth", json_num(cut.log_growth())),
        ("denver_held", held.ids.len().to_string()),
        (
            "denver_acked_past_cut",
            cut.isolated_acked_past_cut.to_string(),
        ),
        ("majority_acked_since_cut", cut.majority_acked.to_string()),
        ("max_leaders_per_term", most.to_string()),
        ("terms_led", terms.to_string()),
    ]);
}

/// How many of the proposals held at Denver during the cut were
/// acknowledged (each has one outcome at most).
pub(crate) fn held_acknowledged(sim: &Sim<CallTable>, held: &[ProposalId]) -> usize {
    let held: BTreeSet<&ProposalId> = held.iter().collect();
    (sim.commits().iter())
        .filter(|k| held.contains(&k.id) && k.outcome.result.is_ok())
        .count()
}
