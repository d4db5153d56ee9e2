//! Re-establishing redundancy (paper Fig. 5): a replacement member joins as
//! a learner, catches up, then one joint configuration change promotes it
//! and removes the member it replaces. The leader drives every step from
//! the replicated configuration, so a leader change mid-way resumes it.
//! The promotion carries the next topology version in its context
//! (`reconfig`'s `promotion`), so the topology names the new member in the
//! dead member's slot from the same log index on as raft's configuration
//! does; until then the learner is a pending replacement only.

use std::collections::BTreeMap;

use raft::eraftpb::{ConfChangeSingle, ConfChangeType, ConfChangeV2, ConfState};
use raft::{ProgressState, SnapshotStatus, StateRole};

use super::Node;
use crate::error::MembershipError;
use crate::state_machine::StateMachine;
use crate::storage::LogStore;
use crate::topology::{Member, MemberSpec, NodeId};
use crate::wire::payload::{encode, MemberRecord, MemberState};

fn single(kind: ConfChangeType, id: NodeId) -> ConfChangeSingle {
    let mut s = ConfChangeSingle::default();
    s.set_change_type(kind);
    s.node_id = id.0;
    s
}

/// The members, the configuration as applied here, and the leader's
/// configuration-change bookkeeping.
#[derive(Debug, Default)]
pub(super) struct Membership {
    /// Every member known (the topology's and replacements), by id.
    pub(super) members: BTreeMap<NodeId, MemberState>,
    /// The configuration as applied here.
    pub(super) conf: ConfState,
    /// This member is out of the configuration.
    pub(super) removed: bool,
    /// Leader: snapshots sent, per peer (tick), to report the lost ones.
    pub(super) snapshot_sent: BTreeMap<NodeId, u64>,
    /// Leader: tick of the last configuration change proposed.
    pub(super) conf_proposed_at: u64,
    /// Leader: the index each pending replacement must have matched before
    /// it is promoted (see [`Catchup::bar`]).
    pub(super) catch_up_bar: BTreeMap<NodeId, u64>,
    /// Leader: the redundancy watch and replacement policy state.
    pub(super) watch: super::replace::Watch,
}

/// What the leader knows of a replacement learner, to decide whether it may
/// be promoted ([`Catchup::promotable`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Catchup {
    /// It is a learner of the applied configuration.
    pub(super) learner: bool,
    /// Ticks since the leader last heard from it (`None`: never heard).
    pub(super) silent_for: Option<u64>,
    /// Longest silence (ticks) that still counts as connected.
    pub(super) contact_gap: u64,
    /// The highest index known to be in its log.
    pub(super) matched: u64,
    /// The index it must have matched: the leader's commit index when the
    /// replacement was requested, or, at a leader that took over while it
    /// was pending, the index that leader had applied when it first saw
    /// it. That is at or above the entry that added the learner, itself
    /// above the requesting leader's commit index, so a new leader's bar
    /// is never lower than the original one.
    pub(super) bar: u64,
    /// The leader's last index.
    pub(super) last: u64,
    /// How far behind the last index a member may still be to count as
    /// caught up (the hand-back's `max_lag_entries`).
    pub(super) max_lag: u64,
}

impl Catchup {
    /// A replacement is promoted only once the leader has heard from it
    /// recently (it is connected: a member that never started, or is cut
    /// off, is never promoted), it holds everything committed when the
    /// replacement was requested, and it is within `max_lag` of the last
    /// index. The lag test alone is not enough: on a young log it holds
    /// for a member that has nothing.
    pub(super) fn promotable(&self) -> bool {
        let connected = self.silent_for.is_some_and(|s| s <= self.contact_gap);
        self.learner
            && connected
            && self.matched >= self.bar
            && self.matched.saturating_add(self.max_lag) >= self.last
    }
}

impl Membership {
    /// The configuration's voters, as applied here, in raft's order.
    pub(super) fn voter_ids(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.conf.voters.iter().map(|&v| NodeId(v))
    }

    /// The pair's anti-affinity rules for `member`, replacing `dead`: no
    /// partner in its core (other than `dead`) on the same host or on
    /// another kind of appliance.
    pub(super) fn check_partners(
        &self,
        dead: NodeId,
        member: &Member,
    ) -> Result<(), MembershipError> {
        let Some(core) = member.core() else {
            return Ok(());
        };
        let new = &member.spec;
        for s in self.members.values() {
            let p = &s.member;
            if p.id() == dead || p.core() != Some(core) {
                continue;
            }
            if p.spec.host == new.host {
                return Err(MembershipError::SharesHost {
                    new: new.id,
                    partner: p.id(),
                    host: new.host.clone(),
                });
            }
            if p.spec.appliance != new.appliance {
                return Err(MembershipError::MixesAppliances {
                    new: new.id,
                    partner: p.id(),
                });
            }
        }
        Ok(())
    }

    /// The member description a replacement for `dead` gets: `dead`'s site
    /// and role with the new id, name, host and appliance.
    pub(super) fn replacement(&self, dead: NodeId, new: MemberSpec) -> Option<Member> {
        let old = &self.members.get(&dead)?.member;
        Some(Member {
            spec: new,
            site: old.site.clone(),
            role: old.role.clone(),
        })
    }
}

impl<M: StateMachine, S: LogStore> Node<M, S> {
    /// Starts replacing `dead` ([`Node::replace_member_at`]).
    pub(super) fn start_replacement(
        &mut self,
        dead: NodeId,
        new: MemberSpec,
        address: Option<String>,
    ) -> Result<(), MembershipError> {
        if self.election.role != StateRole::Leader {
            return Err(MembershipError::NotLeader {
                leader: self.election.leader,
            });
        }
        if dead == self.id {
            return Err(MembershipError::IsLeader(dead));
        }
        if !self.membership.conf.voters.contains(&dead.0) {
            return Err(MembershipError::NotAVoter(dead));
        }
        if self.membership.members.contains_key(&new.id)
            || self.cfg.topology.member(new.id).is_some()
        {
            return Err(MembershipError::IdInUse(new.id));
        }
        if self.cfg.topology.is_removed(new.id) {
            return Err(MembershipError::IdRemoved(new.id));
        }
        if let Some(s) = self
            .membership
            .members
            .values()
            .find(|s| s.replaces.is_some())
        {
            return Err(MembershipError::Busy(s.replaces.unwrap_or(s.member.id())));
        }
        if self.topology_under_way() {
            return Err(MembershipError::UnderWay);
        }
        let member = self
            .replacement_member(dead, new.clone())
            .ok_or(MembershipError::NotAVoter(dead))?;
        self.membership.check_partners(dead, &member)?;
        // The promotion puts it in `dead`'s slot of the topology, at its
        // address: that topology must validate (host loss, an empty
        // address, ...) before anything starts.
        let change = crate::topology::TopologyChange::ReplaceMember {
            old: dead,
            new: new.clone(),
            address: address.clone(),
        };
        (self.cfg.topology.apply(&change)).map_err(MembershipError::Topology)?;
        let record = MemberRecord::from(&MemberState {
            member,
            replaces: Some(dead),
            address,
        });
        let cc = ConfChangeV2 {
            changes: vec![single(ConfChangeType::AddLearnerNode, new.id)].into(),
            context: encode(&record).into(),
            ..Default::default()
        };
        let _ = self.raw.propose_conf_change(Vec::new(), cc);
        self.membership.conf_proposed_at = self.tick_no;
        let committed = self.raw.raft.raft_log.committed;
        self.membership.catch_up_bar.insert(new.id, committed);
        self.on_ready();
        Ok(())
    }

    /// Leader duty each tick: watch the cores' redundancy (and apply the
    /// replacement policy), finish a joint configuration, promote a
    /// caught-up replacement.
    pub(super) fn drive_membership(&mut self) {
        self.watch_redundancy();
        let pending = self.topology_under_way();
        let recently = self.tick_no < self.membership.conf_proposed_at + self.ticks.election as u64;
        if pending || recently {
            return;
        }
        if !self.membership.conf.voters_outgoing.is_empty() {
            // raft's auto-leave can be missed (manual::raft_rs, "Joint
            // consensus and auto-leave"): leave explicitly.
            let _ = self
                .raw
                .propose_conf_change(Vec::new(), ConfChangeV2::default());
            self.membership.conf_proposed_at = self.tick_no;
            return;
        }
        let pending: Vec<NodeId> = self
            .membership
            .members
            .values()
            .filter(|s| s.replaces.is_some())
            .map(|s| s.member.id())
            .collect();
        // A leader that took over mid-way sets its bar from what it has
        // applied (see `Catchup::bar`); bars of finished replacements go.
        let applied = self.applied;
        let bars = &mut self.membership.catch_up_bar;
        bars.retain(|id, _| pending.contains(id));
        for &id in &pending {
            bars.entry(id).or_insert(applied);
        }
        let ready = self.membership.members.values().find_map(|s| {
            let dead = s.replaces?;
            let id = s.member.id();
            let check = self.catch_up(id)?;
            check.promotable().then(|| (dead, s.clone()))
        });
        let Some((dead, state)) = ready else {
            return;
        };
        let Some(cc) = self.promotion(dead, &state) else {
            return;
        };
        let _ = self.raw.propose_conf_change(Vec::new(), cc);
        self.membership.conf_proposed_at = self.tick_no;
    }

    /// What this leader knows of replacement `id`'s catch-up.
    fn catch_up(&self, id: NodeId) -> Option<Catchup> {
        let pr = self.raw.raft.prs().get(id.0)?;
        Some(Catchup {
            learner: self.membership.conf.learners.contains(&id.0),
            silent_for: self
                .contact
                .last_heard
                .get(&id)
                .map(|&t| self.tick_no.saturating_sub(t)),
            contact_gap: self.ticks.contact_gap() as u64,
            matched: pr.matched,
            bar: *self.membership.catch_up_bar.get(&id)?,
            last: self.raw.raft.raft_log.last_index(),
            max_lag: self.cfg.topology.hand_back().max_lag_entries,
        })
    }

    /// A snapshot that never arrived leaves the peer paused forever unless
    /// reported ([`manual::raft_rs`](crate::manual::raft_rs#reporting-snapshot-status)):
    /// report it failed after a while.
    pub(super) fn expire_snapshots(&mut self) {
        let limit = 4 * self.ticks.election as u64;
        let expired: Vec<NodeId> = self
            .membership
            .snapshot_sent
            .iter()
            .filter(|(_, &at)| self.tick_no - at > limit)
            .map(|(&id, _)| id)
            .collect();
        for id in expired {
            self.membership.snapshot_sent.remove(&id);
            let stuck = self
                .raw
                .raft
                .prs()
                .get(id.0)
                .is_some_and(|p| p.state == ProgressState::Snapshot);
            if stuck {
                self.raw.report_snapshot(id.0, SnapshotStatus::Failure);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::testkit::{main_core, survivable, witness};
    use crate::topology::Appliance;

    fn membership(members: &[Member]) -> Membership {
        Membership {
            members: members
                .iter()
                .map(|m| {
                    (
                        m.id(),
                        MemberState {
                            member: m.clone(),
                            replaces: None,
                            address: None,
                        },
                    )
                })
                .collect(),
            ..Membership::default()
        }
    }

    fn spec(id: u64, host: &str, appliance: Appliance) -> MemberSpec {
        MemberSpec {
            id: NodeId(id),
            name: format!("n{id}"),
            host: host.into(),
            appliance,
        }
    }

    #[test]
    fn a_replacement_takes_the_dead_members_site_and_role_with_its_own_spec() {
        let m = membership(&[main_core(1, 0), main_core(2, 1), witness(5)]);
        let new = spec(9, "h9", Appliance::Dedicated);
        let r = m.replacement(NodeId(2), new.clone()).unwrap();
        assert_eq!(r.spec, new);
        assert_eq!(r.site, "denver");
        assert_eq!(r.role, main_core(2, 1).role);
        assert_eq!(m.replacement(NodeId(7), new), None, "unknown member");
    }

    #[test]
    fn a_replacement_must_not_share_a_host_or_mix_appliances_with_its_partner() {
        let m = membership(&[
            main_core(1, 0),
            main_core(2, 1),
            survivable(3, 1, 0),
            witness(5),
        ]);
        let replace_2 = |host: &str, appliance| {
            let r = m.replacement(NodeId(2), spec(9, host, appliance)).unwrap();
            m.check_partners(NodeId(2), &r)
        };
        assert_eq!(replace_2("h9", Appliance::Dedicated), Ok(()));
        // The dead member's own host may be reused; the other core's too.
        assert_eq!(replace_2("h2", Appliance::Dedicated), Ok(()));
        assert_eq!(replace_2("h3", Appliance::Dedicated), Ok(()));
        assert_eq!(
            replace_2("h1", Appliance::Dedicated),
            Err(MembershipError::SharesHost {
                new: NodeId(9),
                partner: NodeId(1),
                host: "h1".into()
            })
        );
        assert_eq!(
            replace_2("h9", Appliance::Virtual),
            Err(MembershipError::MixesAppliances {
                new: NodeId(9),
                partner: NodeId(1)
            })
        );
        // A witness has no partner.
        let w = m
            .replacement(NodeId(5), spec(8, "h1", Appliance::Virtual))
            .unwrap();
        assert_eq!(m.check_partners(NodeId(5), &w), Ok(()));
    }

    fn caught_up() -> Catchup {
        Catchup {
            learner: true,
            silent_for: Some(0),
            contact_gap: 3,
            matched: 10,
            bar: 10,
            last: 12,
            max_lag: 64,
        }
    }

    #[test]
    fn a_replacement_is_promotable_once_connected_and_at_the_bar() {
        assert!(caught_up().promotable());
        // Heard just within the contact gap still counts.
        let gap = Catchup {
            silent_for: Some(3),
            ..caught_up()
        };
        assert!(gap.promotable());
    }

    #[test]
    fn a_replacement_never_heard_or_silent_or_short_of_the_bar_is_not_promoted() {
        let c = caught_up();
        // A young log: within max_lag of the last index, yet never heard.
        let never = Catchup {
            silent_for: None,
            matched: 0,
            ..c
        };
        assert!(!never.promotable());
        let silent = Catchup {
            silent_for: Some(4),
            ..c
        };
        assert!(!silent.promotable(), "silent longer than the gap");
        let short = Catchup { matched: 9, ..c };
        assert!(!short.promotable(), "below the commit index of the request");
        let lagging = Catchup {
            matched: 10,
            last: 75,
            ..c
        };
        assert!(!lagging.promotable(), "more than max_lag behind");
        let voter = Catchup {
            learner: false,
            ..c
        };
        assert!(!voter.promotable(), "not a learner (already promoted)");
    }
}
