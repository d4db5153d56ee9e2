use thiserror::Error;

use super::NodeId;
use crate::policy::PolicyError;

/// Why a topology was refused. Each variant names the offending members and
/// says how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum TopologyError {
    /// No site is marked main.
    #[error("no main site: mark exactly one site with Site::main(..)")]
    NoMainSite,
    /// More than one site is marked main.
    #[error("sites {first:?} and {second:?} are both main: keep Site::main for one, Site::backup for the other")]
    TwoMainSites {
        /// First main site.
        first: String,
        /// Second main site.
        second: String,
    },
    /// Two sites share a name.
    #[error("site {site:?} is declared twice: give each site a unique name")]
    DuplicateSite {
        /// The repeated name.
        site: String,
    },
    /// A core, survivable core or witness names an undeclared site.
    #[error("{what} {name:?} is placed in unknown site {site:?}: declare it with .site(..) first")]
    UnknownSite {
        /// "core" or "witness".
        what: &'static str,
        /// Its name.
        name: String,
        /// The unknown site.
        site: String,
    },
    /// Two members share an id.
    #[error(
        "members {first:?} and {second:?} both use id {id}: ids must be unique and never reused"
    )]
    DuplicateNodeId {
        /// The repeated id.
        id: NodeId,
        /// First member's name.
        first: String,
        /// Second member's name.
        second: String,
    },
    /// Id 0 is reserved by raft.
    #[error("member {name:?} uses id 0, which raft reserves: use an id >= 1")]
    ZeroNodeId {
        /// The member's name.
        name: String,
    },
    /// Two members share a name.
    #[error("two members are named {name:?} (ids {first} and {second}): names must be unique")]
    DuplicateName {
        /// The repeated name.
        name: String,
        /// First id.
        first: NodeId,
        /// Second id.
        second: NodeId,
    },
    /// Two cores share a name.
    #[error("core {core:?} is declared twice: give each core a unique name")]
    DuplicateCore {
        /// The repeated name.
        core: String,
    },
    /// A core without exactly two members.
    #[error("core {core:?} has {count} members; a duplicated core is a pair: give it a primary and a standby")]
    NotAPair {
        /// Core name.
        core: String,
        /// How many members it has.
        count: usize,
    },
    /// Both members of a pair on one physical host.
    #[error("core {core:?}: {first:?} and {second:?} share host {host:?}; a pair must run on separate physical hosts")]
    PairSharesHost {
        /// Core name.
        core: String,
        /// First member.
        first: String,
        /// Second member.
        second: String,
        /// The shared host.
        host: String,
    },
    /// A pair mixing dedicated and virtual appliances.
    #[error("core {core:?}: {first:?} is {first_kind:?} but {second:?} is {second_kind:?}; both members of a pair must be the same appliance type")]
    PairMixesAppliances {
        /// Core name.
        core: String,
        /// First member.
        first: String,
        /// Its appliance.
        first_kind: super::Appliance,
        /// Second member.
        second: String,
        /// Its appliance.
        second_kind: super::Appliance,
    },
    /// The main site has no core.
    #[error("main site {site:?} has no core: add one with .core(Core::new(.., {site:?}))")]
    NoMainCore {
        /// The main site.
        site: String,
    },
    /// More than one core in the main site.
    #[error(
        "main site {site:?} has cores {first:?} and {second:?}: one duplicated core per main site"
    )]
    TwoMainCores {
        /// The main site.
        site: String,
        /// First core.
        first: String,
        /// Second core.
        second: String,
    },
    /// A plain core placed outside the main site.
    #[error("core {core:?} is in backup site {site:?}: declare backup cores with .survivable_core(SurvivableCore::new(rank, ..))")]
    CoreOutsideMainSite {
        /// Core name.
        core: String,
        /// Its site.
        site: String,
    },
    /// A survivable core placed in the main site.
    #[error("survivable core {core:?} is in the main site {site:?}: a survivable core must live in a backup site")]
    SurvivableInMainSite {
        /// Core name.
        core: String,
        /// The main site.
        site: String,
    },
    /// Two survivable cores with one rank.
    #[error("survivable cores {first:?} and {second:?} both have rank {rank}: give each a distinct rank (1 = first choice)")]
    DuplicateRank {
        /// The repeated rank.
        rank: u32,
        /// First core.
        first: String,
        /// Second core.
        second: String,
    },
    /// Rank 0 is not a rank.
    #[error("survivable core {core:?} has rank 0: ranks start at 1")]
    ZeroRank {
        /// Core name.
        core: String,
    },
    /// Losing one host would leave the voters without a majority.
    #[error("losing host {host:?} (members {lost:?}) leaves {left} of {voters} voters, no majority: add a tie-breaker or witness on another host, or call allow_single_host_outage(true)")]
    HostLossBreaksQuorum {
        /// The host.
        host: String,
        /// Members on it.
        lost: Vec<String>,
        /// Voters left.
        left: usize,
        /// Voters in all.
        voters: usize,
    },
    /// In main-site or DR auto-sync mode, a witness outside the main site.
    #[error("witness {witness:?} is in site {site:?}, but in main-site and DR auto-sync modes the tie-breaker must be in the main site {main:?} (the main site holds the voting majority); move it, or use QuorumMode::Witness for a third-site witness")]
    WitnessOutsideMainSite {
        /// The witness.
        witness: String,
        /// Its site.
        site: String,
        /// The main site.
        main: String,
    },
    /// The election timeout is too short for a declared WAN round trip
    /// ([`TopologyBuilder::wan`](super::TopologyBuilder::wan)).
    #[error(
        "the election timeout ({election:?}) is too short for the {rtt:?} round trip between sites \
         {a:?} and {b:?}: set Timers::election to at least {need:?} (two round trips and two \
         heartbeat intervals: a hand-back's leader transfer and its freshness gate must cross that \
         link within it)"
    )]
    ElectionTooShortForWan {
        /// One site of the worst pair.
        a: String,
        /// The other site.
        b: String,
        /// Their round trip.
        rtt: std::time::Duration,
        /// The election timeout given (in whole ticks).
        election: std::time::Duration,
        /// The shortest that pair allows (see
        /// [`min_election_for_rtt`](super::min_election_for_rtt)).
        need: std::time::Duration,
    },
    /// DR auto-sync mode with other than two sites.
    #[error("DR auto-sync mode replicates between two sites, the main site and one survivable site, but {count} are declared ({sites:?}): declare exactly two, or use QuorumMode::Witness for a third-site witness")]
    DrNeedsTwoSites {
        /// How many sites are declared.
        count: usize,
        /// Their names.
        sites: Vec<String>,
    },
    /// DR auto-sync mode with no voter in the survivable site.
    #[error("DR auto-sync mode: site {site:?} has no voter, so no commit could ever reach it: declare a survivable core there with .survivable_core(SurvivableCore::new(1, ..))")]
    DrSiteWithoutVoter {
        /// The site without a voter.
        site: String,
    },
    /// DR auto-sync mode where the main site alone is no majority.
    #[error("DR auto-sync mode: main site {main:?} has {main_voters} of the {voters} voters, no majority, so it could not commit alone when the survivable site is silent: add {more} tie-breaker(s) in {main:?} (.witness(Witness::new(.., {main:?}, ..))) or declare fewer survivable members")]
    DrMainSiteNotMajority {
        /// The main site.
        main: String,
        /// Its voters (core and tie-breakers).
        main_voters: usize,
        /// Voters in all.
        voters: usize,
        /// The fewest tie-breakers to add.
        more: usize,
    },
    /// DR auto-sync mode with a `sync_wait` too short for a survivable
    /// member's lease to outlast its takeover (see
    /// [`min_sync_wait`](super::min_sync_wait)): a takeover could not
    /// prove RPO 0.
    #[error(
        "Timers::sync_wait ({sync_wait:?}) is too short for a takeover to prove RPO 0: a survivable \
         member's lease (sync_wait less 1% and two ticks) must outlast survivable_after \
         ({survivable_after:?}), the standby's stagger of one election timeout ({election:?}), a \
         quarter election timeout between its lease pings and two WAN round trips ({rtt:?}, 0 when \
         no WAN is declared): set Timers::sync_wait to at least {need:?}, or lower \
         survivable_after, or accept takeovers with an unproven RPO \
         (TopologyBuilder::allow_unproven_takeover, `allow_unproven_takeover = true`)"
    )]
    DrSyncWaitTooShort {
        /// The `sync_wait` given (in whole ticks).
        sync_wait: std::time::Duration,
        /// The shortest that proves RPO 0.
        need: std::time::Duration,
        /// `survivable_after` (in whole ticks).
        survivable_after: std::time::Duration,
        /// The election timeout (in whole ticks).
        election: std::time::Duration,
        /// The worst declared WAN round trip (0: none declared).
        rtt: std::time::Duration,
    },
    /// A change or an address names a member the topology does not have.
    #[error("{what} names member {id}, which is not in the topology: use the id of a current member (Topology::members)")]
    UnknownMember {
        /// The unknown id.
        id: NodeId,
        /// What named it, e.g. "an address".
        what: &'static str,
    },
    /// A member's address is empty.
    #[error("member {id} has an empty address: give host:port where its peers reach it")]
    EmptyAddress {
        /// The member.
        id: NodeId,
    },
    /// A change names a core the topology does not have.
    #[error("no core named {core:?}: use the name of a current core")]
    UnknownCore {
        /// The unknown name.
        core: String,
    },
    /// A change names the main site's core where a survivable core is needed.
    #[error(
        "core {core:?} is the main site's core and has no rank: ranks belong to survivable cores"
    )]
    NotSurvivable {
        /// The core.
        core: String,
    },
    /// A change would leave the survivable ranks with a gap.
    #[error("rank {rank} for core {core:?} would leave a gap: with this change the ranks run 1..={max}, pick one of them")]
    RankGap {
        /// The core.
        core: String,
        /// The rank asked for.
        rank: u32,
        /// The highest rank possible.
        max: u32,
    },
    /// A change would leave the topology as it is.
    #[error("the change leaves the topology as it is ({what}): nothing to propose")]
    NoChange {
        /// What is already so.
        what: String,
    },
    /// The id belonged to a member removed from the cluster (removed or
    /// replaced); ids are never reused, so that the new member cannot be
    /// taken for the old one.
    #[error("node id {id} belonged to a member removed from the cluster and is never reused: pick a new id")]
    IdRemoved {
        /// The id.
        id: NodeId,
    },
    /// The timers or hand-back policy are inconsistent.
    #[error("policy: {0}")]
    Policy(#[from] PolicyError),
}
