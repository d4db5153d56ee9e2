//! The invariant checks of a run (see [`super::invariants`]).

use std::time::Duration;

use super::invariants::{self, Ack, Replica, Violation};
use super::{LinkState, Sim};
use crate::ids::{EpochId, ProposalId};
use crate::state_machine::StateMachine;
use crate::topology::NodeId;

impl<M: StateMachine> Sim<M> {
    /// Invariant violations found so far: the safety invariants, checked
    /// after every step, plus whatever the end-of-run checks found, plus
    /// every proposal some member's state holds applied twice and every
    /// command applied that nobody proposed (counted per member as it
    /// goes, see [`Violation::AppliedTwice`]).
    pub fn violations(&self) -> Vec<Violation> {
        let mut found = self.obs.lock().violations().to_vec();
        found.extend(self.check_applied_once());
        found
    }

    /// Each proposal applied at most once in every member's state, and
    /// nothing applied that was never proposed through [`Sim::propose`]
    /// (or returned by a reconciliation hook). Computed afresh from the
    /// counts each call (they are latched: a restore cannot hide a double
    /// apply), so never recorded.
    fn check_applied_once(&self) -> Vec<Violation> {
        invariants::applied_once(&mut self.obs.lock().counts, &self.commands)
    }

    /// The digest of the command applied at `index` (by whoever applied it first).
    pub fn applied_digest(&self, epoch: EpochId, index: u64) -> Option<u64> {
        self.obs.lock().applied_digest(epoch, index)
    }

    /// What every member holds now (running or crashed: storage survives).
    fn replicas(&self) -> Vec<Replica> {
        use raft::Storage as _;
        self.slots
            .iter()
            .map(|(&id, s)| {
                let first = s.storage.first_index().unwrap_or(1);
                let last = s.storage.last_index().unwrap_or(0);
                let ctx = raft::GetEntriesContext::empty(false);
                let entries = if last >= first {
                    s.storage
                        .entries(first, last + 1, None, ctx)
                        .unwrap_or_default()
                } else {
                    Vec::new()
                };
                Replica {
                    id,
                    epoch: s
                        .node
                        .as_ref()
                        .map_or(crate::ids::FIRST_EPOCH, |n| n.epoch()),
                    live_voter: s.node.as_ref().is_some_and(|n| n.voters().contains(&id)),
                    applied: s.node.as_ref().map_or(0, |n| n.applied_index()),
                    log: entries
                        .iter()
                        .map(|e| (e.index, e.term, invariants::digest(&e.data)))
                        .collect(),
                }
            })
            .collect()
    }

    /// Checks log matching across every member's log now. Returns the
    /// violations (also kept).
    pub fn check_log_matching(&mut self) -> Vec<Violation> {
        let found = invariants::log_matching(&self.replicas());
        self.obs.lock().record(&found);
        found
    }

    /// The end-of-run checks, once every fault has healed and the cluster
    /// has had time to settle: every live voter applied the same prefix
    /// (convergence), every acknowledged proposal of the final epoch is in
    /// it with the acknowledged command (no committed entry lost), every
    /// one of an older epoch is in it or reconciled exactly once, never
    /// both, and shown, not only counted as compacted (nothing silently
    /// lost, nothing applied twice), the logs match, nothing acknowledged
    /// at RPO 0 (DR auto-sync) is missing from an epoch activated with RPO
    /// 0 proven ([`check_rpo_zero_kept`](Self::check_rpo_zero_kept)), and
    /// no member's state holds a proposal applied twice or a command
    /// nobody proposed.
    /// Returns the violations (kept, but for the last two kinds, which
    /// [`violations`](Self::violations) computes afresh).
    pub fn check_converged(&mut self) -> Vec<Violation> {
        let replicas = self.replicas();
        // Acknowledgements of the epoch everyone ended in; those of older
        // epochs are reconciled, not applied as they were.
        let last = replicas.iter().find(|r| r.live_voter).map(|r| r.epoch);
        let (acks, older): (Vec<Ack>, Vec<Ack>) = self
            .acks(|_| true)
            .into_iter()
            .partition(|a| Some(a.epoch) == last);
        let mut found: Vec<Violation> = invariants::convergence(&replicas).into_iter().collect();
        found.extend(invariants::no_committed_loss(
            &acks,
            &replicas,
            &self.obs.lock(),
        ));
        found.extend(invariants::log_matching(&replicas));
        found.extend(self.check_loss_reported(last, &older));
        found.extend(self.rpo_zero_lost());
        self.obs.lock().record(&found);
        found.extend(self.check_applied_once());
        found
    }

    /// Every acknowledged proposal `wanted` picks, with the digest of its
    /// command when it was proposed through [`Sim::propose`].
    pub(super) fn acks(&self, wanted: impl Fn(ProposalId) -> bool) -> Vec<Ack> {
        self.outcomes
            .iter()
            .filter(|c| wanted(c.id))
            .filter_map(|c| {
                let a = c.outcome.result.as_ref().ok()?;
                Some(Ack {
                    epoch: a.epoch,
                    index: a.index,
                    digest: self.commands.get(&c.id).copied(),
                })
            })
            .collect()
    }

    /// Every reconciliation any member applied.
    fn reports(&self) -> std::collections::BTreeSet<invariants::Report> {
        self.events
            .iter()
            .filter_map(|(_, _, e)| match e {
                crate::Event::Reconciled {
                    from,
                    from_index,
                    compacted,
                    epoch,
                    index,
                    ranges,
                    ..
                } => Some(invariants::Report {
                    epoch: *epoch,
                    index: *index,
                    ranges: ranges.clone(),
                    from: *from,
                    compacted: (*from_index, *compacted),
                }),
                _ => None,
            })
            .collect()
    }

    /// Acknowledgements of older epochs: each is in the final history or
    /// reconciled exactly once.
    fn check_loss_reported(&self, last: Option<EpochId>, older: &[Ack]) -> Vec<Violation> {
        let Some(last) = last else {
            return Vec::new();
        };
        let Some(lineage) = self
            .slots
            .values()
            .filter_map(|s| s.node.as_ref())
            .find(|n| n.epoch() == last)
            .map(|n| n.lineage().to_vec())
        else {
            return Vec::new();
        };
        invariants::loss_reported_once(older, &lineage, &self.reports(), &self.obs.lock())
    }

    /// The loss checks of [`check_converged`](Self::check_converged) for
    /// one member now, over the acknowledged proposals among `ids`: each
    /// one its epoch's history still holds is applied there with the
    /// acknowledged command; each one it does not (an epoch that lost a
    /// reunion) is shown to the application by exactly one reconciliation
    /// the member applied. A member that is not running holds none.
    /// Returns the violations (also kept).
    pub fn check_acknowledged_at(&self, node: NodeId, ids: &[ProposalId]) -> Vec<Violation> {
        let wanted: std::collections::BTreeSet<ProposalId> = ids.iter().copied().collect();
        let acks = self.acks(|id| wanted.contains(&id));
        let found = match self.node(node) {
            None => acks
                .iter()
                .map(|a| Violation::AckedLost {
                    index: a.index,
                    node,
                })
                .collect(),
            Some(n) => {
                let (epoch, applied) = (n.epoch(), n.applied_index());
                let lineage = n.lineage().to_vec();
                let (own, older): (Vec<Ack>, Vec<Ack>) =
                    acks.into_iter().partition(|a| a.epoch == epoch);
                let me = Replica {
                    id: node,
                    epoch,
                    live_voter: true,
                    applied,
                    log: Vec::new(),
                };
                let checker = self.obs.lock();
                let mut found = invariants::no_committed_loss(&own, &[me], &checker);
                // Only the reconciliations this member has applied count.
                let mut reports = self.reports();
                reports.retain(|r| r.index <= applied);
                found.extend(invariants::loss_reported_once(
                    &older, &lineage, &reports, &checker,
                ));
                // An older entry its history keeps must be applied here too.
                found.extend(
                    older
                        .iter()
                        .filter(|a| {
                            a.index > applied && invariants::survived(a.epoch, a.index, &lineage)
                        })
                        .map(|a| Violation::AckedLost {
                            index: a.index,
                            node,
                        }),
                );
                found
            }
        };
        self.obs.lock().record(&found);
        found
    }

    /// The leader a majority of its own voters acknowledge: they are
    /// running, in its epoch, name it as leader and the links between them
    /// are up; no running member of that epoch names another, and none is
    /// in a newer epoch. A deposed leader that has not noticed yet, or one
    /// cut off from its voters, does not count.
    pub fn agreed_leader(&self) -> Option<NodeId> {
        let leader = self.leader()?;
        let ln = self.slots.get(&leader)?.node.as_ref()?;
        let epoch = ln.epoch();
        let running = || {
            self.slots
                .iter()
                .filter(|(_, s)| !s.paused)
                .filter_map(|(&id, s)| s.node.as_ref().map(|n| (id, n)))
                .filter(move |(_, n)| n.epoch() == epoch)
        };
        let voters = ln.voters();
        let naming = running()
            .filter(|(id, n)| voters.contains(id) && n.leader() == Some(leader))
            .filter(|&(id, _)| id == leader || self.linked(leader, id))
            .count();
        let dissent = running().any(|(_, n)| n.leader().is_some_and(|l| l != leader));
        // A member of a newer epoch (even one not yet met) will fence it.

        let superseded = self
            .slots
            .values()
            .filter_map(|s| s.node.as_ref())
            .any(|n| crate::ids::newer(n.epoch(), epoch));
        if superseded {
            return None;
        }
        (naming * 2 > voters.len() && !dissent).then_some(leader)
    }

    /// Whether messages flow both ways between `a` and `b`.
    fn linked(&self, a: NodeId, b: NodeId) -> bool {
        self.link(a, b) == LinkState::Healthy && self.link(b, a) == LinkState::Healthy
    }

    /// Runs until a member of the main site leads, for at most `within`;
    /// a violation (also kept) if none does by then.
    pub fn check_main_site_leads(&mut self, within: Duration) -> Option<Violation> {
        let main = self.cfg.topology.main_site().to_string();
        self.run_until(within, |s| {
            s.agreed_leader().is_some_and(|l| s.site_of(l) == main)
        });
        let leader = self.agreed_leader().map(|l| (l, self.site_of(l)));
        let found = invariants::handback_liveness(leader, &main);
        if let Some(v) = &found {
            self.obs.lock().record(std::slice::from_ref(v));
        }
        found
    }
}
