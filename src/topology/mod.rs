//! Where the members of the control plane run: sites, duplicated cores,
//! ranked survivable cores and witnesses, validated before anything starts.
//!
//! ```
//! use survivable_core::topology::{Appliance, Core, Site, SurvivableCore, Topology, Witness};
//!
//! let topology = Topology::builder(7)
//!     .site(Site::main("denver"))
//!     .site(Site::backup("paris"))
//!     .site(Site::backup("kansas"))
//!     .core(Core::new("cm01", "denver")
//!         .member(1, "CM01a", "esxi-1", Appliance::Virtual)
//!         .member(2, "CM01b", "esxi-3", Appliance::Virtual))
//!     .survivable_core(SurvivableCore::new(1, Core::new("cm02", "paris")
//!         .member(3, "CM02a", "esxi-5", Appliance::Virtual)
//!         .member(4, "CM02b", "esxi-7", Appliance::Virtual)))
//!     .witness(Witness::new(5, "W1", "kansas", "wit-1"))
//!     .build()
//!     .expect("a valid Denver/Paris topology");
//! assert_eq!(topology.voters().len(), 5);
//! ```

mod builder;
pub(crate) mod change;
mod error;
mod reference;
mod survivability;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

pub use builder::{min_election_for_rtt, min_sync_wait, TopologyBuilder};
pub use change::TopologyChange;
pub use error::TopologyError;
pub use reference::{denver_paris, denver_paris_dr, denver_paris_london, denver_paris_two_site};
pub use survivability::{Committed, Failure, Latency, Scenario, SurvivabilityReport, Takeover};

use crate::policy::{Digest, HandBack, QuorumMode, TickTimers, Timers};

/// A member's id, unique in the cluster and never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub u64);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}", self.0)
    }
}

/// The stable JSON form: the bare number (`3` for `n3`).
impl serde::Serialize for NodeId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

/// What a member runs on. The two members of a duplicated pair must be of
/// the same type (the paper: "of the same appliance type").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Appliance {
    /// A dedicated server.
    Dedicated,
    /// A virtual machine.
    Virtual,
}

/// A data centre.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    /// Unique site name, e.g. `"denver"`.
    pub name: String,
    /// Whether this is the main site (exactly one is).
    pub main: bool,
}

impl Site {
    /// The main site: its core is the preferred leader.
    pub fn main(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            main: true,
        }
    }

    /// A backup site: hosts survivable cores or witnesses.
    pub fn backup(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            main: false,
        }
    }
}

/// One member as declared: id, name, host and appliance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberSpec {
    /// Node id.
    pub id: NodeId,
    /// Human name, e.g. `"CM01a"`.
    pub name: String,
    /// Physical host; no two members of a pair may share one.
    pub host: String,
    /// Appliance type.
    pub appliance: Appliance,
}

/// A duplicated core: a pair of members (primary first) in one site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Core {
    /// Unique core name, e.g. `"cm01"`.
    pub name: String,
    /// The site the core runs in.
    pub site: String,
    /// Members, preferred (primary) first.
    pub members: Vec<MemberSpec>,
}

impl Core {
    /// A core named `name` in `site`, with no members yet.
    pub fn new(name: impl Into<String>, site: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            site: site.into(),
            members: Vec::new(),
        }
    }

    /// Adds a member; the first one added is the primary.
    pub fn member(
        mut self,
        id: u64,
        name: impl Into<String>,
        host: impl Into<String>,
        appliance: Appliance,
    ) -> Self {
        self.members.push(MemberSpec {
            id: NodeId(id),
            name: name.into(),
            host: host.into(),
            appliance,
        });
        self
    }
}

/// A core in a backup site that takes over control when the main site is
/// lost or cut off. Rank 1 is tried first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SurvivableCore {
    /// Rank, 1 = first choice. Unique among survivable cores.
    pub rank: u32,
    /// The core itself.
    pub core: Core,
}

impl SurvivableCore {
    /// A survivable core of the given rank.
    pub fn new(rank: u32, core: Core) -> Self {
        Self { rank, core }
    }
}

/// A light voter that breaks ties. In a third site it is the witness of
/// witness mode; in the main site it is a local tie-breaker. It leads only
/// as a last resort and then hands leadership on at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Witness {
    /// The site it runs in.
    pub site: String,
    /// The member.
    pub member: MemberSpec,
}

impl Witness {
    /// A witness with id `id` named `name` on `host` in `site`.
    pub fn new(
        id: u64,
        name: impl Into<String>,
        site: impl Into<String>,
        host: impl Into<String>,
    ) -> Self {
        Self {
            site: site.into(),
            member: MemberSpec {
                id: NodeId(id),
                name: name.into(),
                host: host.into(),
                appliance: Appliance::Virtual,
            },
        }
    }
}

/// What a member is for.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Role {
    /// Member of the main site's duplicated core.
    MainCore {
        /// Core name.
        core: String,
        /// 0 = primary, 1 = standby, ...
        position: usize,
    },
    /// Member of a survivable core.
    Survivable {
        /// Core name.
        core: String,
        /// Rank of the survivable core.
        rank: u32,
        /// 0 = primary, 1 = standby, ...
        position: usize,
    },
    /// A witness or tie-breaker: votes, leads only as a last resort.
    Witness,
}

/// A member with its place in the topology.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Id, name, host and appliance.
    pub spec: MemberSpec,
    /// Site name.
    pub site: String,
    /// Role.
    pub role: Role,
}

impl Member {
    /// The member's id.
    pub fn id(&self) -> NodeId {
        self.spec.id
    }

    /// The name of the core the member belongs to, if any.
    pub fn core(&self) -> Option<&str> {
        match &self.role {
            Role::MainCore { core, .. } | Role::Survivable { core, .. } => Some(core),
            Role::Witness => None,
        }
    }

    /// Leadership preference: 0 for the main core, the rank for a survivable
    /// core, `u32::MAX` for a witness. Lower is preferred.
    pub fn preference(&self) -> u32 {
        match &self.role {
            Role::MainCore { .. } => 0,
            Role::Survivable { rank, .. } => *rank,
            Role::Witness => u32::MAX,
        }
    }

    /// Position in its pair (0 = primary); 0 for a witness.
    pub fn position(&self) -> usize {
        match &self.role {
            Role::MainCore { position, .. } | Role::Survivable { position, .. } => *position,
            Role::Witness => 0,
        }
    }

    /// The raft election priority derived from the preference: a voter
    /// refuses a candidate of lower priority unless its log is longer.
    pub fn priority(&self) -> i64 {
        match self.preference() {
            0 => 100,
            u32::MAX => 0,
            rank => (90 - i64::from(rank.min(89))).max(1),
        }
    }
}

/// A validated topology. Build one with [`Topology::builder`].
#[derive(Debug, Clone)]
pub struct Topology {
    pub(crate) cluster_id: u64,
    pub(crate) mode: QuorumMode,
    pub(crate) sites: Vec<Site>,
    pub(crate) members: BTreeMap<NodeId, Member>,
    pub(crate) timers: Timers,
    pub(crate) ticks: TickTimers,
    pub(crate) hand_back: HandBack,
    /// Accepted with [`TopologyBuilder::allow_single_host_outage`]: kept
    /// so a [`TopologyChange`] is validated under the same rule.
    pub(crate) allow_single_host_outage: bool,
    /// 0 as built; each applied [`TopologyChange`] adds one.
    pub(crate) version: u64,
    /// Each member's network address, where known
    /// ([`TopologyBuilder::address`], [`TopologyChange::SetAddress`]).
    pub(crate) addresses: BTreeMap<NodeId, String>,
    /// Ids removed from the cluster ([`TopologyChange::RemoveMember`],
    /// [`TopologyChange::ReplaceMember`], a removed core's members, a
    /// replaced member): never used again, so a new member can never be
    /// mistaken for the old one (its log, its votes, its messages still in
    /// flight). Not part of the [`fingerprint`](Self::fingerprint): a
    /// member started from its file knows none of them until it has
    /// applied the log.
    pub(crate) removed: BTreeSet<NodeId>,
    /// [`max_rank`](Self::max_rank), worked out once when built: the
    /// election reads it at every campaign check.
    pub(crate) max_rank: u32,
}

impl Topology {
    /// Starts a builder for the cluster `cluster_id` (messages carrying
    /// another cluster id are rejected).
    pub fn builder(cluster_id: u64) -> TopologyBuilder {
        TopologyBuilder::new(cluster_id)
    }

    /// Wraps the topology for sharing between nodes.
    pub fn shared(self) -> Arc<Self> {
        Arc::new(self)
    }

    /// The cluster id.
    pub fn cluster_id(&self) -> u64 {
        self.cluster_id
    }

    /// The quorum mode.
    pub fn mode(&self) -> QuorumMode {
        self.mode
    }

    /// The sites, in declaration order.
    pub fn sites(&self) -> &[Site] {
        &self.sites
    }

    /// The main site's name.
    pub fn main_site(&self) -> &str {
        &self
            .sites
            .iter()
            .find(|s| s.main)
            .expect("validated: one main site")
            .name
    }

    /// Every declared member, by id.
    pub fn members(&self) -> &BTreeMap<NodeId, Member> {
        &self.members
    }

    /// One member.
    pub fn member(&self, id: NodeId) -> Option<&Member> {
        self.members.get(&id)
    }

    /// The voting members of the first epoch: everyone in witness mode,
    /// the main site's members in main-site mode.
    pub fn voters(&self) -> Vec<NodeId> {
        let main = self.main_site();
        self.members
            .values()
            .filter(|m| self.mode.survivors_vote() || m.site == main)
            .map(Member::id)
            .collect()
    }

    /// The learners of the first epoch: none in witness mode, every
    /// survivable core's members in main-site mode.
    pub fn learners(&self) -> Vec<NodeId> {
        let voters = self.voters();
        self.members
            .keys()
            .copied()
            .filter(|id| !voters.contains(id))
            .collect()
    }

    /// Members of a site.
    pub fn site_members(&self, site: &str) -> Vec<NodeId> {
        self.members
            .values()
            .filter(|m| m.site == site)
            .map(Member::id)
            .collect()
    }

    /// The timers as configured.
    pub fn timers(&self) -> &Timers {
        &self.timers
    }

    /// The timers in ticks.
    pub fn ticks(&self) -> &TickTimers {
        &self.ticks
    }

    /// The hand-back policy.
    pub fn hand_back(&self) -> &HandBack {
        &self.hand_back
    }

    /// The version: 0 as built, one more for each applied
    /// [`TopologyChange`]. Every member applies the changes in log order,
    /// so members at the same version hold the same topology.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// A member's network address (`host:port`), when the topology names it.
    pub fn address(&self, id: NodeId) -> Option<&str> {
        self.addresses.get(&id).map(String::as_str)
    }

    /// Every address the topology names, by member.
    pub fn addresses(&self) -> &BTreeMap<NodeId, String> {
        &self.addresses
    }

    /// The ids of members removed from the cluster (removed, replaced, or
    /// in a removed core): a new member may never take one
    /// ([`TopologyError::IdRemoved`]).
    pub fn removed_ids(&self) -> &BTreeSet<NodeId> {
        &self.removed
    }

    /// Whether `id` belonged to a member removed from the cluster.
    pub fn is_removed(&self, id: NodeId) -> bool {
        self.removed.contains(&id)
    }

    /// The highest (worst) survivable rank, 0 when there is none.
    pub fn max_rank(&self) -> u32 {
        self.max_rank
    }

    /// The survivability report: what happens under each single failure and
    /// each partition between sites, assuming 1 ms LAN and 80 ms WAN round
    /// trips. Print it for an aligned table. See [`SurvivabilityReport`].
    pub fn survivability(&self) -> SurvivabilityReport {
        self.survivability_with(Latency::default())
    }

    /// The survivability report for the given round-trip times.
    pub fn survivability_with(&self, latency: Latency) -> SurvivabilityReport {
        survivability::analyse(self, latency)
    }

    /// What members compare when they connect: a stable digest of each
    /// [section](Section) of the topology. Every member's file repeats the
    /// whole topology, and members that disagree about it can each elect
    /// leaders the others do not know of and lose acknowledged writes, so
    /// the transport's hello carries this and members whose fingerprints
    /// differ refuse each other, naming the sections that differ
    /// ([`Fingerprint::differences`]). Everything the topology holds is
    /// covered (the cluster id is compared on its own); the members'
    /// addresses are not part of it (each member lists its peers'
    /// addresses in its own configuration), so they may differ, e.g.
    /// behind NAT.
    pub fn fingerprint(&self) -> Fingerprint {
        let ids = |name, ids: Vec<NodeId>| {
            let d = Digest::new(name).u64(ids.len() as u64);
            ids.into_iter().fold(d, |d, id| d.u64(id.0)).finish()
        };
        let mut sites: Vec<&str> = self.sites.iter().map(|s| s.name.as_str()).collect();
        sites.sort_unstable();
        let sites = sites.iter().fold(Digest::new("sites"), |d, s| d.str(s));
        let mut cores = Digest::new("cores");
        let mut members = Digest::new("members");
        for m in self.members.values() {
            let (kind, core, rank) = match &m.role {
                Role::MainCore { core, .. } => (0, core.as_str(), 0),
                Role::Survivable { core, rank, .. } => (1, core.as_str(), *rank),
                Role::Witness => (2, "", 0),
            };
            cores = (cores.u64(m.id().0).str(&m.site).u64(kind).str(core))
                .u64(u64::from(rank))
                .u64(m.position() as u64);
            let appliance = match m.spec.appliance {
                Appliance::Dedicated => 0,
                Appliance::Virtual => 1,
            };
            members = (members.u64(m.id().0).str(&m.spec.name).str(&m.spec.host)).u64(appliance);
        }
        let mode = match self.mode {
            QuorumMode::Witness => 0,
            QuorumMode::MainSite => 1,
            QuorumMode::DrAutoSync => 2,
        };
        Fingerprint {
            quorum_mode: Digest::new("quorum mode").u64(mode).finish(),
            sites: sites.finish(),
            main_site: Digest::new("main site").str(self.main_site()).finish(),
            voters: ids("voters", self.voters()),
            learners: ids("learners", self.learners()),
            cores: cores.finish(),
            members: members.finish(),
            timers: self.timers.fingerprint(),
            hand_back: self.hand_back.fingerprint(),
        }
    }
}

/// A stable digest of each section of a [`Topology`]
/// ([`Topology::fingerprint`]): members compare them when they connect
/// and refuse each other, naming the sections, when they differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Fingerprint {
    /// The [`QuorumMode`].
    pub quorum_mode: u64,
    /// The sites' names.
    pub sites: u64,
    /// Which site is the main site.
    pub main_site: u64,
    /// The first epoch's voters ([`Topology::voters`]).
    pub voters: u64,
    /// The first epoch's learners ([`Topology::learners`]).
    pub learners: u64,
    /// Each member's site and role: its core, rank and position, or witness.
    pub cores: u64,
    /// Each member's name, host and appliance.
    pub members: u64,
    /// The [`Timers`] ([`Timers::fingerprint`]).
    pub timers: u64,
    /// The [`HandBack`] policy ([`HandBack::fingerprint`]).
    pub hand_back: u64,
}

impl Fingerprint {
    /// The sections whose digests differ, in [`Section`] order (empty
    /// when the topologies agree).
    pub fn differences(&self, other: &Self) -> Vec<Section> {
        let pairs = [
            (Section::QuorumMode, self.quorum_mode, other.quorum_mode),
            (Section::Sites, self.sites, other.sites),
            (Section::MainSite, self.main_site, other.main_site),
            (Section::Voters, self.voters, other.voters),
            (Section::Learners, self.learners, other.learners),
            (Section::Cores, self.cores, other.cores),
            (Section::Members, self.members, other.members),
            (Section::Timers, self.timers, other.timers),
            (Section::HandBack, self.hand_back, other.hand_back),
        ];
        pairs
            .into_iter()
            .filter(|(_, a, b)| a != b)
            .map(|(s, ..)| s)
            .collect()
    }
}

/// A section of the [`Fingerprint`]: what two members' topologies may
/// disagree on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Section {
    /// Witness or main-site mode.
    QuorumMode,
    /// The sites' names.
    Sites,
    /// Which site is the main site.
    MainSite,
    /// The first epoch's voters.
    Voters,
    /// The first epoch's learners.
    Learners,
    /// The members' sites and roles (cores, ranks, positions, witnesses).
    Cores,
    /// The members' names, hosts and appliances.
    Members,
    /// The timers.
    Timers,
    /// The hand-back policy.
    HandBack,
}

impl fmt::Display for Section {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::QuorumMode => "quorum mode",
            Self::Sites => "sites",
            Self::MainSite => "main site",
            Self::Voters => "voters",
            Self::Learners => "learners",
            Self::Cores => "cores, ranks and witnesses",
            Self::Members => "members' names, hosts and appliances",
            Self::Timers => "timers",
            Self::HandBack => "hand-back policy",
        })
    }
}
