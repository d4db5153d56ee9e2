//! Behaviour 5, split-brain prevention (witness mode): what happened on
//! Denver's side during the WAN cut of `wan_partition`, reported as a step
//! of its own at the same virtual time. The isolated old leader steps down
//! within two election timeouts (check-quorum); its commit index stays
//! where it was at the cut and its log stops growing once it stepped
//! down; nothing proposed at Denver is acknowledged there beyond what was
//! committed before the cut (the proposals are held, and acknowledged after
//! the heal: `hand_back` checks it); no term ever had two leaders.

use std::collections::BTreeSet;

use survivable_core::node::ProposalId;
use survivable_core::sim::Sim;
use survivable_core::topology::NodeId;
use survivable_core::Event;

use crate::{finish, json_num, json_str, line, name, print, Args, CallTable, Checks, Workload};

const STEP: &str = "split_brain";

/// Denver's leader, its term and its commit index when the WAN was cut,
/// and its log as watched during the cut.
pub(crate) struct Cut {
    at_us: u64,
    leader: Option<NodeId>,
    term: u64,
    commit: u64,
    /// The old leader's last log index when first seen not leading.
    log_at_step_down: Option<u64>,
    /// Its last log index when last watched.
    log_last_seen: Option<u64>,
}

impl Cut {
    /// To be taken just before the cut.
    pub(crate) fn now(sim: &Sim<CallTable>) -> Self {
        let leader = sim.leader();
        let status = leader.and_then(|l| sim.node(l)).map(|n| n.status());
        Self {
            at_us: sim.now_us(),
            leader,
            term: status.as_ref().map_or(0, |s| s.term),
            commit: status.map_or(0, |s| s.commit),
            log_at_step_down: None,
            log_last_seen: None,
        }
    }

    /// Looks at the old leader (call it during the cut, often).
    pub(crate) fn watch(&mut self, sim: &Sim<CallTable>) {
        let Some(n) = self.leader.and_then(|l| sim.node(l)) else {
            return;
        };
        if !n.is_leader() {
            let last = n.status().last_index;
            self.log_at_step_down.get_or_insert(last);
            self.log_last_seen = Some(last);
        }
    }
}

fn in_denver(sim: &Sim<CallTable>, id: NodeId) -> bool {
    sim.site_of(id) == "denver"
}

/// Reports and checks the step (the cut still in force; `before`: the
/// calls up at the cut); returns the proposals held at Denver's running
/// members, which the heal must acknowledge.
pub(crate) fn step(
    sim: &Sim<CallTable>,
    w: &Workload,
    c: &mut Checks,
    args: &Args,
    cut: &Cut,
    before: &BTreeSet<u64>,
) -> Vec<ProposalId> {
    let old = cut.leader;
    let status = old.and_then(|l| sim.node(l)).map(|n| n.status());
    let mut r = finish(sim, w, STEP, "behaviour 5", before, None, sim.now_us());

    let ticks = sim.topology().ticks();
    let election_ms = ticks.ms(ticks.election);
    let stepped_down_us = old.and_then(|l| {
        sim.events()
            .iter()
            .find(|(t, id, e)| {
                *t >= cut.at_us && *id == l && matches!(e, Event::SteppedDown { .. })
            })
            .map(|(t, _, _)| *t)
    });
    let stepped_ms = stepped_down_us.map(|t| (t - cut.at_us) / 1000);
    let commit_growth = status.map(|s| s.commit.saturating_sub(cut.commit));
    let log_growth = (cut.log_last_seen.zip(cut.log_at_step_down)).map(|(l, s)| l - s);
    // Acknowledged at a Denver member since the cut, beyond what the old
    // leader had committed by then (an entry committed just before the cut
    // may still reach its proposer after it).
    let acked_past_cut = (sim.commits().iter())
        .filter(|k| k.done_us >= cut.at_us && in_denver(sim, k.node))
        .filter(|k| (k.outcome.result.as_ref()).is_ok_and(|a| a.index > cut.commit))
        .count();
    let acked_elsewhere = (sim.commits().iter())
        .filter(|k| k.done_us >= cut.at_us && !in_denver(sim, k.node))
        .filter(|k| k.outcome.result.is_ok())
        .count();
    let held: Vec<ProposalId> = (w.proposed.keys())
        .filter(|id| in_denver(sim, id.node) && sim.is_up(id.node))
        .copied()
        .collect();
    let held_at: BTreeSet<String> = held.iter().map(|id| name(sim, id.node)).collect();

    let who = old.map_or("nobody".into(), |l| name(sim, l));
    let voters = old.and_then(|l| sim.node(l)).map_or(vec![], |n| n.voters());
    let reach = voters.iter().filter(|&&v| in_denver(sim, v)).count();
    let mut story = vec![line(
        cut.at_us,
        &format!(
            "the WAN is cut: {who} (leader, term {}, commit index {}) reaches {reach} of {} voters",
            cut.term,
            cut.commit,
            voters.len()
        ),
    )];
    if let (Some(t), Some(ms)) = (stepped_down_us, stepped_ms) {
        story.push(line(
            t,
            &format!("{ms} ms after the cut, {who} steps down: no majority heard (check-quorum)"),
        ));
    }
    story.push(line(
        sim.now_us(),
        &format!(
            "Denver's users: {} proposals held at {}, {acked_past_cut} acknowledged past \
             index {}; the majority side acknowledged {acked_elsewhere} since the cut",
            held.len(),
            held_at.into_iter().collect::<Vec<_>>().join(", "),
            cut.commit
        ),
    ));
    r.story = story;

    c.check(
        STEP,
        "Denver led when the WAN was cut",
        old.is_some_and(|l| in_denver(sim, l)),
        format!("{old:?}"),
    );
    let bound = 2 * election_ms;
    c.at_most(
        STEP,
        "the isolated old leader steps down within 2 election timeouts",
        stepped_ms,
        bound,
    );
    c.check(
        STEP,
        "the isolated old leader commits nothing after the cut",
        commit_growth == Some(0),
        format!("commit index grew by {commit_growth:?}"),
    );
    c.check(
        STEP,
        "the old leader's log stops growing once it stepped down",
        log_growth == Some(0),
        format!("log grew by {log_growth:?} entries"),
    );
    c.check(
        STEP,
        "nothing proposed at Denver is acknowledged there past the cut's commit index",
        acked_past_cut == 0,
        format!("{acked_past_cut} acknowledged"),
    );
    c.check(
        STEP,
        "Denver's users had proposals waiting (the old side was exercised)",
        !held.is_empty(),
        "none held".into(),
    );
    let (most, terms) = c.one_leader_per_term(STEP, sim);
    c.leads(&r, sim, "paris");
    c.nothing_lost(&r);
    c.no_call_dropped(&r);
    r.extra.extend([
        ("old_leader", json_str(&who)),
        ("stepped_down_after_ms", json_num(stepped_ms)),
        ("step_down_bound_ms", bound.to_string()),
        ("old_leader_commit_growth", json_num(commit_growth)),
        ("old_leader_log_growth", json_num(log_growth)),
        ("denver_held", held.len().to_string()),
        ("denver_acked_past_cut", acked_past_cut.to_string()),
        ("majority_acked_since_cut", acked_elsewhere.to_string()),
        ("max_leaders_per_term", most.to_string()),
        ("terms_led", terms.to_string()),
    ]);
    print(sim, "witness", &r, args.json);
    held
}

/// How many of the proposals held at Denver during the cut were
/// acknowledged (each has one outcome at most).
pub(crate) fn held_acknowledged(sim: &Sim<CallTable>, held: &[ProposalId]) -> usize {
    let held: BTreeSet<&ProposalId> = held.iter().collect();
    (sim.commits().iter())
        .filter(|k| held.contains(&k.id) && k.outcome.result.is_ok())
        .count()
}
