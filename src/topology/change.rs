//! Changing a running cluster's topology: one [`TopologyChange`] at a
//! time, validated by rebuilding the topology through the
//! [`TopologyBuilder`] (so a change can never produce a topology the
//! builder would refuse: anti-affinity, ranks, majorities, host loss), and
//! versioned so every member applies the same sequence.
//!
//! ```
//! use survivable_core::topology::{denver_paris, TopologyChange, TopologyError, NodeId};
//!
//! let t = denver_paris().build().unwrap();
//! let change = TopologyChange::SetAddress { id: NodeId(5), address: "10.0.0.5:7000".into() };
//! let report = t.preview(&change).unwrap(); // the survivability after the change
//! assert!(!report.to_string().is_empty());
//! let next = t.apply(&change).unwrap();
//! assert_eq!((next.version(), next.address(NodeId(5))), (1, Some("10.0.0.5:7000")));
//! // A rank past the last one would leave a gap: refused, naming the range.
//! let gap = TopologyChange::SetRank { core: "cm02".into(), rank: 3 };
//! assert!(matches!(t.apply(&gap), Err(TopologyError::RankGap { max: 1, .. })));
//! ```

use std::collections::{BTreeMap, BTreeSet};

use super::{
    Core, MemberSpec, NodeId, Role, Site, SurvivabilityReport, SurvivableCore, Topology,
    TopologyBuilder, TopologyError, Witness,
};

/// One change to a running cluster's topology
/// ([`Topology::apply`], `Node::change_topology`).
///
/// Survivable ranks stay a list `1..=n`: adding a core at a rank, moving
/// one to a rank, or removing one shifts the others, so no two cores ever
/// share a rank and no gap appears.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TopologyChange {
    /// Declares a new backup site, for a survivable core or witness to go in.
    AddSite {
        /// The site's name (unique).
        name: String,
    },
    /// Adds a survivable core (a pair) at `rank` (`1..=n+1` with `n`
    /// survivable cores today); the cores from that rank on move down one.
    AddSurvivableCore {
        /// Its rank.
        rank: u32,
        /// The core, with its two members.
        core: Core,
        /// Its members' addresses (`host:port`), if known.
        addresses: BTreeMap<NodeId, String>,
    },
    /// Removes a survivable core and its members; the cores ranked after
    /// it move up one.
    RemoveSurvivableCore {
        /// The core's name.
        core: String,
    },
    /// Moves a survivable core to `rank` (`1..=n`); the cores between its
    /// old and new rank shift by one.
    SetRank {
        /// The core's name.
        core: String,
        /// Its new rank.
        rank: u32,
    },
    /// Adds a witness (a third-site witness, or a main-site tie-breaker).
    AddWitness {
        /// The witness.
        witness: Witness,
        /// Its address, if known.
        address: Option<String>,
    },
    /// Removes a member. A member of a core cannot leave its pair alone:
    /// replace it ([`ReplaceMember`](Self::ReplaceMember)) or remove the
    /// whole core.
    RemoveMember {
        /// The member.
        id: NodeId,
    },
    /// Puts a new member in an existing member's place (same site, core
    /// and position, or witness), removing the old one.
    ReplaceMember {
        /// The member leaving.
        old: NodeId,
        /// The member taking its place (a new, never used id).
        new: MemberSpec,
        /// The new member's address, if known.
        address: Option<String>,
    },
    /// Sets or moves a member's address; its peers follow it.
    SetAddress {
        /// The member.
        id: NodeId,
        /// Its new address (`host:port`).
        address: String,
    },
}

/// How a change moves the raft configuration: members that join as
/// voters or learners, and members that leave (first-epoch roles:
/// [`Topology::voters`], [`Topology::learners`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ConfMoves {
    pub(crate) add_voters: Vec<NodeId>,
    pub(crate) add_learners: Vec<NodeId>,
    pub(crate) remove: Vec<NodeId>,
}

impl ConfMoves {
    /// The moves from `old` to `new`.
    pub(crate) fn between(old: &Topology, new: &Topology) -> Self {
        let (old_v, new_v) = (old.voters(), new.voters());
        let mut m = Self::default();
        for id in new.members.keys() {
            let was = old.members.contains_key(id);
            let voter = new_v.contains(id);
            if voter && !old_v.contains(id) {
                m.add_voters.push(*id);
            } else if !voter && (!was || old_v.contains(id)) {
                m.add_learners.push(*id);
            }
        }
        m.remove = (old.members.keys())
            .filter(|id| !new.members.contains_key(id))
            .copied()
            .collect();
        m
    }

    /// Whether the configuration stays as it is.
    pub(crate) fn is_empty(&self) -> bool {
        self.add_voters.is_empty() && self.add_learners.is_empty() && self.remove.is_empty()
    }
}

impl Topology {
    /// The topology after `change`, one version on, validated exactly as
    /// [`TopologyBuilder::build`] validates.
    ///
    /// # Errors
    /// The [`TopologyError`] saying what is wrong: an unknown member or
    /// core ([`UnknownMember`](TopologyError::UnknownMember),
    /// [`UnknownCore`](TopologyError::UnknownCore)), a rank outside
    /// `1..=n` ([`RankGap`](TopologyError::RankGap)), a change that
    /// changes nothing ([`NoChange`](TopologyError::NoChange)), or any
    /// error the builder gives for the result (a pair on one host, a core
    /// left with one member, a host whose loss breaks the majority, ...).
    pub fn apply(&self, change: &TopologyChange) -> Result<Self, TopologyError> {
        let mut b = TopologyBuilder::of(self);
        edit(self, &mut b, change)?;
        b.set_version(self.version + 1).build()
    }

    /// The survivability report of the topology after `change`
    /// ([`apply`](Self::apply) then [`survivability`](Self::survivability)):
    /// look before proposing.
    ///
    /// # Errors
    /// As [`apply`](Self::apply).
    pub fn preview(&self, change: &TopologyChange) -> Result<SurvivabilityReport, TopologyError> {
        Ok(self.apply(change)?.survivability())
    }
}

impl Topology {
    /// A topology of `base`'s cluster, mode, timers and hand-back policy
    /// with the given sites, members and addresses (a version read from
    /// the log), validated as the builder validates.
    pub(crate) fn from_parts(
        base: &Self,
        version: u64,
        sites: Vec<Site>,
        members: BTreeMap<NodeId, super::Member>,
        addresses: BTreeMap<NodeId, String>,
        removed: BTreeSet<NodeId>,
    ) -> Result<Self, TopologyError> {
        let parts = Self {
            sites,
            members,
            addresses,
            removed,
            version,
            ..base.clone()
        };
        TopologyBuilder::of(&parts).build()
    }
}

fn unknown(id: NodeId) -> TopologyError {
    TopologyError::UnknownMember {
        id,
        what: "the change",
    }
}

/// Applies `change` to the builder `b` of `t`.
fn edit(
    t: &Topology,
    b: &mut TopologyBuilder,
    change: &TopologyChange,
) -> Result<(), TopologyError> {
    match change {
        TopologyChange::AddSite { name } => {
            b.sites_mut().push(Site::backup(name.as_str()));
        }
        TopologyChange::AddSurvivableCore {
            rank,
            core,
            addresses,
        } => {
            let list = b.survivable_mut();
            let at = position(&core.name, *rank, list.len() + 1)?;
            list.insert(at, SurvivableCore::new(*rank, core.clone()));
            renumber(list);
            b.addresses_mut().extend(addresses.clone());
        }
        TopologyChange::RemoveSurvivableCore { core } => {
            let list = b.survivable_mut();
            let at = find_core(t, list, core)?;
            let gone = list.remove(at);
            renumber(list);
            for m in gone.core.members {
                b.addresses_mut().remove(&m.id);
                b.removed_mut().insert(m.id);
            }
        }
        TopologyChange::SetRank { core, rank } => {
            let list = b.survivable_mut();
            let from = find_core(t, list, core)?;
            let to = position(core, *rank, list.len())?;
            if from == to {
                return Err(TopologyError::NoChange {
                    what: format!("core {core:?} already has rank {rank}"),
                });
            }
            let moved = list.remove(from);
            list.insert(to, moved);
            renumber(list);
        }
        TopologyChange::AddWitness { witness, address } => {
            if let Some(a) = address {
                b.addresses_mut().insert(witness.member.id, a.clone());
            }
            b.witnesses_mut().push(witness.clone());
        }
        TopologyChange::RemoveMember { id } => {
            t.member(*id).ok_or_else(|| unknown(*id))?;
            swap_member(b, *id, None);
            b.addresses_mut().remove(id);
            b.removed_mut().insert(*id);
        }
        TopologyChange::ReplaceMember { old, new, address } => {
            t.member(*old).ok_or_else(|| unknown(*old))?;
            swap_member(b, *old, Some(new));
            b.addresses_mut().remove(old);
            b.removed_mut().insert(*old);
            if let Some(a) = address {
                b.addresses_mut().insert(new.id, a.clone());
            }
        }
        TopologyChange::SetAddress { id, address } => {
            t.member(*id).ok_or_else(|| unknown(*id))?;
            if t.address(*id) == Some(address.as_str()) {
                return Err(TopologyError::NoChange {
                    what: format!("member {id} already has address {address:?}"),
                });
            }
            b.addresses_mut().insert(*id, address.clone());
        }
    }
    Ok(())
}

/// The list index of `rank` among `max` ranks, or the gap it would leave.
fn position(core: &str, rank: u32, max: usize) -> Result<usize, TopologyError> {
    let max = u32::try_from(max).unwrap_or(u32::MAX);
    if rank == 0 || rank > max {
        return Err(TopologyError::RankGap {
            core: core.to_string(),
            rank,
            max,
        });
    }
    Ok(rank as usize - 1)
}

/// The list index of the survivable core `name`.
fn find_core(t: &Topology, list: &[SurvivableCore], name: &str) -> Result<usize, TopologyError> {
    if let Some(at) = list.iter().position(|s| s.core.name == name) {
        return Ok(at);
    }
    let main = t
        .members
        .values()
        .any(|m| matches!(&m.role, Role::MainCore { core, .. } if core == name));
    Err(if main {
        TopologyError::NotSurvivable {
            core: name.to_string(),
        }
    } else {
        TopologyError::UnknownCore {
            core: name.to_string(),
        }
    })
}

/// Ranks `1..=n` in list order.
fn renumber(list: &mut [SurvivableCore]) {
    for (i, s) in list.iter_mut().enumerate() {
        s.rank = i as u32 + 1;
    }
}

/// Removes member `id` wherever it is declared, putting `new` in its
/// place when given.
fn swap_member(b: &mut TopologyBuilder, id: NodeId, new: Option<&MemberSpec>) {
    let replace = |members: &mut Vec<MemberSpec>| {
        if let Some(at) = members.iter().position(|m| m.id == id) {
            match new {
                Some(n) => members[at] = n.clone(),
                None => {
                    members.remove(at);
                }
            }
        }
    };
    for core in b.cores_mut().iter_mut() {
        replace(&mut core.members);
    }
    for s in b.survivable_mut().iter_mut() {
        replace(&mut s.core.members);
    }
    let witnesses = b.witnesses_mut();
    if let Some(at) = witnesses.iter().position(|w| w.member.id == id) {
        match new {
            Some(n) => witnesses[at].member = n.clone(),
            None => {
                witnesses.remove(at);
            }
        }
    }
}

#[cfg(test)]
#[path = "change_tests.rs"]
mod tests;
