//! The long-partition scenario shared by `tests/long_partition.rs` (short
//! cuts, under `cargo test`) and `benches/long_partition.rs` (the full
//! 10-minute cut, printing JSON): a main-site cluster (Denver duplicated
//! core and witness, Paris survivable core) takes 200 proposals/s, the WAN
//! is cut, Paris activates and both sites take writes, then the WAN heals
//! and the reunion reconciles Denver's divergent tail into Paris's epoch
//! and hands back. Everything is counted per proposal id.

use std::collections::BTreeSet;
use std::time::Duration;

use survivable_core::node::{NodeConfig, ProposalId};
use survivable_core::sim::{KvStore, Sim, Violation};
use survivable_core::topology::{denver_paris_two_site, NodeId};
use survivable_core::Event;

/// What one run measured.
#[derive(Debug, Default, Clone)]
pub(crate) struct Outcome {
    /// Length of the cut, in virtual seconds.
    pub(crate) cut_s: u64,
    /// Proposals the members accepted (with an id).
    pub(crate) proposed: usize,
    /// Proposals acknowledged as applied to their proposer.
    pub(crate) acked: usize,
    /// Acknowledged proposals some member does not hold at the end
    /// (neither applied in its epoch's history nor shown by a
    /// reconciliation it applied): the invariant checker's verdict, per
    /// member. Silent losses: always 0.
    pub(crate) lost: usize,
    /// Proposal ids applied more than once on one member, or shown by
    /// more than one reconciliation.
    pub(crate) applied_twice: usize,
    /// Acknowledged proposals the reunion could only count as compacted
    /// (a retention bound dropped them), per member that misses them.
    pub(crate) lost_compacted: usize,
    /// Every other invariant violation.
    pub(crate) other_violations: Vec<String>,
    /// Divergent entries the reunion could only count (compacted before it
    /// was sent): 0 unless a retention bound dropped them.
    pub(crate) compacted_at_reunion: u64,
    /// Virtual ms from the heal until every member is in the newest epoch,
    /// converged, and the main site leads again.
    pub(crate) reunion_ms: Option<u64>,
    /// Most log entries any member held at once (samples every second).
    pub(crate) peak_retained_entries: u64,
    /// Most log bytes any member held at once.
    pub(crate) peak_retained_bytes: u64,
}

impl Outcome {
    /// One JSON line.
    pub(crate) fn to_json(&self) -> String {
        format!(
            "{{\"cut_s\":{},\"proposed\":{},\"acked\":{},\"lost\":{},\"lost_compacted\":{},\"applied_twice\":{},\
             \"other_violations\":{},\"compacted_at_reunion\":{},\"reunion_ms\":{},\
             \"peak_retained_entries\":{},\"peak_retained_bytes\":{}}}",
            self.cut_s,
            self.proposed,
            self.acked,
            self.lost,
            self.lost_compacted,
            self.applied_twice,
            self.other_violations.len(),
            self.compacted_at_reunion,
            self.reunion_ms.map_or("null".to_string(), |m| m.to_string()),
            self.peak_retained_entries,
            self.peak_retained_bytes
        )
    }
}

/// Denver's primary.
pub(crate) const CM01A: NodeId = NodeId(1);
/// Paris's primary: it founds the newer epoch and applies every
/// reconciliation of Denver's tail (Denver's members join it later, from a
/// snapshot, and see none).
pub(crate) const CM02A: NodeId = NodeId(3);

/// Proposals at 200/s, alternating between the sites whose members see
/// themselves as voters (before Paris activates, Denver takes them all).
struct Load {
    every: Duration,
    next: u64,
    turn: usize,
    proposed: BTreeSet<ProposalId>,
}

impl Load {
    fn propose_one(&mut self, sim: &mut Sim<KvStore>) {
        let sites = ["denver", "paris"];
        self.turn += 1;
        for k in 0..sites.len() {
            let site = sites[(self.turn + k) % sites.len()];
            let live: Vec<NodeId> = sim
                .site_members(site)
                .into_iter()
                .filter(|&id| sim.node(id).is_some_and(|n| n.voters().contains(&id)))
                .collect();
            let Some(&at) = live.get(self.turn / sites.len() % live.len().max(1)) else {
                continue;
            };
            let command = format!("set k{} {}", self.next, self.next).into_bytes();
            self.next += 1;
            if let Ok(id) = sim.propose(at, command) {
                self.proposed.insert(id);
                return;
            }
        }
    }

    fn run(&mut self, sim: &mut Sim<KvStore>, d: Duration, peak: &mut (u64, u64)) {
        let end = sim.now_us() + d.as_micros() as u64;
        let mut sampled = sim.now_us();
        while sim.now_us() < end {
            self.propose_one(sim);
            let step = self.every.min(Duration::from_micros(end - sim.now_us()));
            sim.run_for(step);
            if sim.now_us() >= sampled + 1_000_000 {
                sampled = sim.now_us();
                sample(sim, peak);
            }
        }
    }
}

/// Records the largest retained log of any member.
fn sample(sim: &Sim<KvStore>, peak: &mut (u64, u64)) {
    for id in sim.members() {
        if let Some(n) = sim.node(id) {
            let s = n.status();
            peak.0 = peak.0.max(s.retained.entries);
            peak.1 = peak.1.max(s.retained.bytes);
        }
    }
}

/// Whether the reunion is over: every running member is in one epoch,
/// the main site's primary leads it, and every member converged.
fn reunited(sim: &Sim<KvStore>) -> bool {
    let Some(leader) = sim.node(CM01A) else {
        return false;
    };
    let epoch = leader.epoch();
    sim.leader() == Some(CM01A)
        && leader.epoch() != survivable_core::node::FIRST_EPOCH
        && sim.members().into_iter().all(|id| {
            sim.node(id)
                .is_none_or(|n| n.epoch() == epoch && n.status().applied == leader.status().applied)
        })
}

/// Runs a cut of `cut` under 200 proposals/s with `seed`, `tune` applied
/// to every member's configuration; `settle` bounds the reunion.
pub(crate) fn run(
    seed: u64,
    cut: Duration,
    settle: Duration,
    tune: impl Fn(&mut NodeConfig) + 'static,
) -> (Sim<KvStore>, Outcome) {
    let topology = denver_paris_two_site()
        .build()
        .expect("valid topology")
        .shared();
    let mut sim = Sim::builder(topology)
        .seed(seed)
        .node_config(tune)
        .build(|_| KvStore::default());
    let led = sim.run_until(Duration::from_secs(3), |s| s.leader() == Some(CM01A));
    assert!(led, "CM01a never led");
    let mut load = Load {
        every: Duration::from_millis(5),
        next: 0,
        turn: 0,
        proposed: BTreeSet::new(),
    };
    let mut peak = (0, 0);
    load.run(&mut sim, Duration::from_secs(1), &mut peak);
    sim.partition_sites(&["denver"], &["paris"]);
    load.run(&mut sim, cut, &mut peak);
    sim.heal();
    let healed = sim.now_us();
    let mut reunion_ms = None;
    let end = healed + settle.as_micros() as u64;
    while sim.now_us() < end {
        sim.run_for(Duration::from_millis(100));
        sample(&sim, &mut peak);
        if reunited(&sim) {
            reunion_ms = Some((sim.now_us() - healed) / 1000);
            break;
        }
    }
    // Let the last proposals drain before counting.
    sim.run_for(Duration::from_secs(2));
    sim.check_converged();
    let ids: Vec<ProposalId> = load.proposed.iter().copied().collect();
    for id in sim.members() {
        sim.check_acknowledged_at(id, &ids);
    }
    let mut out = Outcome {
        cut_s: cut.as_secs(),
        proposed: ids.len(),
        acked: sim
            .commits()
            .iter()
            .filter(|c| c.outcome.result.is_ok())
            .count(),
        reunion_ms,
        peak_retained_entries: peak.0,
        peak_retained_bytes: peak.1,
        ..Outcome::default()
    };
    for (_, node, e) in sim.events() {
        if let Event::Reconciled { compacted, .. } = e {
            if *node == CM02A {
                out.compacted_at_reunion += compacted;
            }
        }
    }
    for v in sim.violations() {
        match v {
            Violation::AckedCompacted { .. } => out.lost_compacted += 1,
            Violation::AckedLost { .. } | Violation::AckedUnreported { .. } => out.lost += 1,
            Violation::AppliedTwice { .. } | Violation::ReportedTwice { .. } => {
                out.applied_twice += 1
            }
            other => out.other_violations.push(format!("{other:?}")),
        }
    }
    (sim, out)
}
