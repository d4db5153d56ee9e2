//! Shared set-up for the scenario tests: the paper's Denver/Paris/Kansas
//! topology, a steady workload, and the checks every scenario ends with.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use protobuf::Message as _;
use raft::eraftpb::Message;
use survivable_core::node::ProposalId;
use survivable_core::policy::{HandBack, HandBackPolicy};
use survivable_core::sim::{KvStore, Sim};
use survivable_core::topology::{NodeId, Topology, TopologyBuilder};
use survivable_core::wire::{Envelope, PROTOCOL_VERSION};
use survivable_core::Event;

pub(crate) const CM01A: NodeId = NodeId(1);
pub(crate) const CM01B: NodeId = NodeId(2);
pub(crate) const CM02A: NodeId = NodeId(3);
pub(crate) const CM02B: NodeId = NodeId(4);
pub(crate) const W1: NodeId = NodeId(5);
pub(crate) const CM03A: NodeId = NodeId(6);

/// WAN round trip of the simulator's default network, in ms.
pub(crate) const WAN_RTT_MS: u64 = 80;

pub(crate) use survivable_core::topology::{denver_paris, denver_paris_london as with_london};

/// The envelope a member of the first epoch would send `m` in (from
/// `m.from` to `m.to`), for tests that feed a node by hand.
pub(crate) fn envelope(m: &Message) -> Envelope {
    Envelope {
        version: PROTOCOL_VERSION,
        cluster_id: 2026,
        epoch: 1,
        from: m.from,
        to: m.to,
        raft: m.write_to_bytes().expect("a raft message encodes"),
        ..Envelope::default()
    }
}

/// A hand-back policy with the default gates.
pub(crate) fn hand_back(policy: HandBackPolicy) -> HandBack {
    HandBack {
        policy,
        ..HandBack::default()
    }
}

pub(crate) fn build(b: &TopologyBuilder) -> Arc<Topology> {
    b.build().expect("valid topology").shared()
}

/// A simulator of `b`, run until the main site's primary leads.
pub(crate) fn started(b: &TopologyBuilder, seed: u64) -> Sim<KvStore> {
    started_over(b, seed, Duration::from_millis(WAN_RTT_MS))
}

/// [`started`] with a WAN round trip of `wan_rtt` between every two sites
/// (the primary may take longer to lead: up to 5 s).
pub(crate) fn started_over(b: &TopologyBuilder, seed: u64, wan_rtt: Duration) -> Sim<KvStore> {
    let mut sim = Sim::builder(build(b))
        .seed(seed)
        .wan_rtt(wan_rtt)
        .build(|_| KvStore::default());
    let led = sim.run_until(Duration::from_secs(5), |s| s.leader() == Some(CM01A));
    assert!(led, "CM01a never led; trace:\n{}", sim.trace().join("\n"));
    sim
}

/// A steady stream of `set kN N` proposals made at live voters of the
/// given sites in turn, as users of those sites would.
pub(crate) struct Load {
    sites: Vec<&'static str>,
    every: Duration,
    next: u64,
    turn: usize,
    /// Proposal ids and the key each one sets.
    pub(crate) proposed: BTreeMap<ProposalId, String>,
    /// Proposals refused outright.
    pub(crate) refused: u64,
}

impl Load {
    pub(crate) fn new(sites: &[&'static str], every: Duration) -> Self {
        Self {
            sites: sites.to_vec(),
            every,
            next: 0,
            turn: 0,
            proposed: BTreeMap::new(),
            refused: 0,
        }
    }

    /// One proposal at the next site in turn, if it has a live voter.
    pub(crate) fn propose_one(&mut self, sim: &mut Sim<KvStore>) {
        let site = self.sites[self.turn % self.sites.len()];
        self.turn += 1;
        let live: Vec<NodeId> = sim
            .site_members(site)
            .into_iter()
            .filter(|&id| sim.node(id).is_some_and(|n| n.voters().contains(&id)))
            .collect();
        let Some(&at) = live.get(self.turn / self.sites.len() % live.len().max(1)) else {
            return;
        };
        let key = format!("k{}", self.next);
        self.next += 1;
        match sim.propose(at, format!("set {key} {}", self.next - 1).into_bytes()) {
            Ok(id) => {
                self.proposed.insert(id, key);
            }
            Err(_) => self.refused += 1,
        }
    }

    /// Runs `d` of virtual time, proposing every `self.every`.
    pub(crate) fn run(&mut self, sim: &mut Sim<KvStore>, d: Duration) {
        let end = sim.now_us() + d.as_micros() as u64;
        while sim.now_us() < end {
            self.propose_one(sim);
            let step = self.every.min(Duration::from_micros(end - sim.now_us()));
            sim.run_for(step);
        }
    }
}

/// Milliseconds from `t0_us` to the first acknowledged proposal applied in
/// a term above `term`.
pub(crate) fn first_commit_after(sim: &Sim<KvStore>, t0_us: u64, term: u64) -> Option<u64> {
    sim.first_commit_after(t0_us, term).map(|us| us / 1000)
}

/// The leader's term.
pub(crate) fn term(sim: &Sim<KvStore>) -> u64 {
    let l = sim.leader().expect("a leader");
    sim.node(l).expect("leader is up").term()
}

/// Every `BecameLeader` since `t0_us`: (time µs, node).
pub(crate) fn leaders_since(sim: &Sim<KvStore>, t0_us: u64) -> Vec<(u64, NodeId)> {
    sim.events()
        .iter()
        .filter(|(t, _, e)| *t >= t0_us && matches!(e, Event::BecameLeader { .. }))
        .map(|(t, id, _)| (*t, *id))
        .collect()
}

/// Events of one kind since `t0_us`.
pub(crate) fn events_since<'a>(
    sim: &'a Sim<KvStore>,
    t0_us: u64,
    pred: impl Fn(&Event) -> bool + 'a,
) -> impl Iterator<Item = &'a (u64, NodeId, Event)> + 'a {
    sim.events()
        .iter()
        .filter(move |(t, _, e)| *t >= t0_us && pred(e))
}

/// Every acknowledged proposal of `load` is held by `node`, as the
/// simulator's invariant checker sees it ([`Sim::check_acknowledged_at`]:
/// applied there with the acknowledged command, or, if its epoch lost a
/// reunion, shown by exactly one reconciliation `node` applied); and, as
/// the key-value state of `node` shows it, its key is set.
pub(crate) fn assert_acknowledged_applied(sim: &Sim<KvStore>, load: &Load, node: NodeId) {
    let ids: Vec<ProposalId> = load.proposed.keys().copied().collect();
    let acked: Vec<&String> = sim
        .commits()
        .iter()
        .filter(|c| c.outcome.result.is_ok())
        .filter_map(|c| load.proposed.get(&c.id))
        .collect();
    assert!(!acked.is_empty(), "nothing was acknowledged");
    let lost = sim.check_acknowledged_at(node, &ids);
    assert!(
        lost.is_empty(),
        "acknowledged proposals missing at {node}: {lost:?}\ntrace:\n{}",
        sim.trace().join("\n")
    );
    let kv = sim.node(node).expect("node is up").state_machine();
    let missing: Vec<&&String> = acked.iter().filter(|k| !kv.map.contains_key(**k)).collect();
    assert!(
        missing.is_empty(),
        "acknowledged keys {missing:?} missing at {node}"
    );
}

/// No invariant broken so far, and every live voter converged.
pub(crate) fn assert_clean(sim: &mut Sim<KvStore>) {
    let violations = sim.violations();
    assert!(
        violations.is_empty(),
        "violations: {violations:?}\ntrace:\n{}",
        sim.trace().join("\n")
    );
    let converged = sim.check_converged();
    assert!(converged.is_empty(), "not converged: {converged:?}");
}

/// Lets proposals drain and members converge.
pub(crate) fn settle(sim: &mut Sim<KvStore>) {
    sim.run_for(Duration::from_secs(2));
}
