//! Re-establishing redundancy (paper Fig. 5): a replacement member joins as
//! a learner, catches up, then one joint configuration change promotes it
//! and removes the member it replaces. The leader drives every step from
//! the replicated configuration, so a leader change mid-way resumes it.

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
    /// Starts replacing `dead` ([`Node::replace_member`]).
    pub(super) fn start_replacement(
        &mut self,
        dead: NodeId,
        new: MemberSpec,
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
        if let Some(s) = self
            .membership
            .members
            .values()
            .find(|s| s.replaces.is_some())
        {
            return Err(MembershipError::Busy(s.replaces.unwrap_or(s.member.id())));
        }
        if self.raw.raft.pending_conf_index > self.applied {
            return Err(MembershipError::Busy(dead));
        }
        let member = self
            .replacement_member(dead, new.clone())
            .ok_or(MembershipError::NotAVoter(dead))?;
        self.membership.check_partners(dead, &member)?;
        let record = MemberRecord::from(&MemberState {
            member,
            replaces: Some(dead),
        });
        let cc = ConfChangeV2 {
            changes: vec![single(ConfChangeType::AddLearnerNode, new.id)].into(),
            context: encode(&record).into(),
            ..Default::default()
        };
        let _ = self.raw.propose_conf_change(Vec::new(), cc);
        self.membership.conf_proposed_at = self.tick_no;
        self.on_ready();
        Ok(())
    }

    /// Leader duty each tick: finish a joint configuration, promote a
    /// caught-up replacement.
    pub(super) fn drive_membership(&mut self) {
        let pending = self.raw.raft.pending_conf_index > self.applied;
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
        let last = self.raw.raft.raft_log.last_index();
        let max_lag = self.cfg.topology.hand_back().max_lag_entries;
        let ready = self.membership.members.values().find_map(|s| {
            let dead = s.replaces?;
            let id = s.member.id();
            let pr = self.raw.raft.prs().get(id.0)?;
            let caught_up =
                self.membership.conf.learners.contains(&id.0) && pr.matched + max_lag >= last;
            caught_up.then(|| (id, dead, s.member.clone()))
        });
        let Some((id, dead, member)) = ready else {
            return;
        };
        let record = MemberRecord::from(&MemberState {
            member,
            replaces: None,
        });
        let cc = ConfChangeV2 {
            changes: vec![
                single(ConfChangeType::AddNode, id),
                single(ConfChangeType::RemoveNode, dead),
            ]
            .into(),
            context: encode(&record).into(),
            ..Default::default()
        };
        let _ = self.raw.propose_conf_change(Vec::new(), cc);
        self.membership.conf_proposed_at = self.tick_no;
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
}
