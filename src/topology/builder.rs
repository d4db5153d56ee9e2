use std::collections::{BTreeMap, BTreeSet, HashMap};

use std::time::Duration;

use super::{
    Core, Latency, Member, MemberSpec, NodeId, Role, Site, SurvivableCore, Topology, TopologyError,
    Witness,
};
use crate::policy::{HandBack, QuorumMode, TickTimers, Timers};

/// Builds a validated [`Topology`]. Setters take `&mut self` so one builder
/// can be reused; [`build`](Self::build) checks everything and never panics.
#[derive(Debug, Clone)]
pub struct TopologyBuilder {
    cluster_id: u64,
    mode: QuorumMode,
    sites: Vec<Site>,
    cores: Vec<Core>,
    survivable: Vec<SurvivableCore>,
    witnesses: Vec<Witness>,
    timers: Timers,
    hand_back: HandBack,
    allow_single_host_outage: bool,
    allow_unproven_takeover: bool,
    wan: Option<Latency>,
    addresses: BTreeMap<NodeId, String>,
    version: u64,
    removed: BTreeSet<NodeId>,
}

impl TopologyBuilder {
    pub(super) fn new(cluster_id: u64) -> Self {
        Self {
            cluster_id,
            mode: QuorumMode::default(),
            sites: Vec::new(),
            cores: Vec::new(),
            survivable: Vec::new(),
            witnesses: Vec::new(),
            timers: Timers::default(),
            hand_back: HandBack::default(),
            allow_single_host_outage: false,
            allow_unproven_takeover: false,
            wan: None,
            addresses: BTreeMap::new(),
            version: 0,
            removed: BTreeSet::new(),
        }
    }

    /// Quorum mode. Defaults to [`QuorumMode::Witness`]. In
    /// [`QuorumMode::MainSite`] the main site's members (its core and
    /// tie-breakers) are the voters and every survivable core a learner;
    /// witnesses must then be in the main site. [`QuorumMode::DrAutoSync`]
    /// also keeps witnesses in the main site and needs exactly two sites,
    /// a voter in each and the main site alone a majority, and a
    /// [`Timers::sync_wait`] of at least [`min_sync_wait`].
    pub fn mode(&mut self, mode: QuorumMode) -> &mut Self {
        self.mode = mode;
        self
    }

    /// Declares a site. Exactly one must be [`Site::main`].
    pub fn site(&mut self, site: Site) -> &mut Self {
        self.sites.push(site);
        self
    }

    /// Declares the main site's duplicated core.
    pub fn core(&mut self, core: Core) -> &mut Self {
        self.cores.push(core);
        self
    }

    /// Declares a survivable core in a backup site.
    pub fn survivable_core(&mut self, core: SurvivableCore) -> &mut Self {
        self.survivable.push(core);
        self
    }

    /// Declares a witness (third site) or tie-breaker (main site).
    pub fn witness(&mut self, witness: Witness) -> &mut Self {
        self.witnesses.push(witness);
        self
    }

    /// Timers. Defaults to [`Timers::default`].
    pub fn timers(&mut self, timers: Timers) -> &mut Self {
        self.timers = timers;
        self
    }

    /// Hand-back policy. Defaults to [`HandBack::default`] (after 5 s stable).
    pub fn hand_back(&mut self, hand_back: HandBack) -> &mut Self {
        self.hand_back = hand_back;
        self
    }

    /// Accepts a voter layout where losing one host loses the majority
    /// (e.g. a lone pair with no tie-breaker). Defaults to `false`.
    pub fn allow_single_host_outage(&mut self, allow: bool) -> &mut Self {
        self.allow_single_host_outage = allow;
        self
    }

    /// DR auto-sync mode: accept a `sync_wait` too short for a takeover to
    /// prove RPO 0 ([`TopologyError::DrSyncWaitTooShort`]), e.g. to let the
    /// main site stop waiting for the survivable site sooner than that site
    /// takes over. A takeover then reports the RPO it knows, unproven, as
    /// in main-site mode; what was committed in `Sync` is still on the
    /// survivable site. Defaults to false.
    pub fn allow_unproven_takeover(&mut self, allow: bool) -> &mut Self {
        self.allow_unproven_takeover = allow;
        self
    }

    /// The WAN the members will run over: the round trip between each pair
    /// of declared sites (overrides per pair, as for the survivability
    /// report). [`build`](Self::build) then refuses an election timeout too
    /// short for the worst round trip between two declared sites
    /// ([`TopologyError::ElectionTooShortForWan`], which says what to set)
    /// and, in DR auto-sync mode, a `sync_wait` that round trip leaves
    /// too short ([`TopologyError::DrSyncWaitTooShort`]). It changes no
    /// timer.
    /// Not declared, nothing is checked: [`Timers::election`] must still
    /// exceed [`min_election_for_rtt`] of the worst round trip.
    pub fn wan(&mut self, latency: Latency) -> &mut Self {
        self.wan = Some(latency);
        self
    }

    /// Names member `id`'s network address (`host:port`, where its peers
    /// reach it). Optional: a runtime member may list its peers' addresses
    /// in its own configuration instead; a [`TopologyChange`] can set or
    /// move it later, and every member then follows it.
    ///
    /// [`TopologyChange`]: super::TopologyChange
    pub fn address(&mut self, id: u64, address: impl Into<String>) -> &mut Self {
        self.addresses.insert(NodeId(id), address.into());
        self
    }

    /// Validates and builds the topology.
    ///
    /// # Errors
    /// The first [`TopologyError`] found, naming the members involved.
    pub fn build(&self) -> Result<Topology, TopologyError> {
        let ticks = self.timers.to_ticks()?;
        self.check_wan(&ticks)?;
        self.hand_back.validate()?;
        let main = self.check_sites()?;
        let mut members: BTreeMap<NodeId, Member> = BTreeMap::new();
        let mut core_names: HashMap<&str, ()> = HashMap::new();
        self.add_main_core(main, &mut members, &mut core_names)?;
        self.add_survivable_cores(main, &mut members, &mut core_names)?;
        self.add_witnesses(main, &mut members)?;
        if self.mode == QuorumMode::DrAutoSync {
            self.check_dr(main, &members, &ticks)?;
        }

        if !self.allow_single_host_outage {
            let voters = members
                .iter()
                .filter(|(_, m)| self.mode.survivors_vote() || m.site == main)
                .map(|(&id, m)| (id, m.clone()))
                .collect();
            check_host_loss(&voters)?;
        }
        self.check_addresses(&members)?;
        if let Some(&id) = members.keys().find(|id| self.removed.contains(id)) {
            return Err(TopologyError::IdRemoved { id });
        }

        let max_rank = (members.values())
            .filter_map(|m| match m.role {
                Role::Survivable { rank, .. } => Some(rank),
                _ => None,
            })
            .max()
            .unwrap_or(0);
        Ok(Topology {
            max_rank,
            cluster_id: self.cluster_id,
            mode: self.mode,
            sites: self.sites.clone(),
            members,
            timers: self.timers.clone(),
            ticks,
            hand_back: self.hand_back.clone(),
            allow_single_host_outage: self.allow_single_host_outage,
            version: self.version,
            addresses: self.addresses.clone(),
            removed: self.removed.clone(),
        })
    }

    /// With a [`wan`](Self::wan) declared: the election timeout (in whole
    /// ticks, as the nodes run it) against the worst round trip between
    /// two declared sites.
    fn check_wan(&self, ticks: &TickTimers) -> Result<(), TopologyError> {
        let Some((a, b, rtt)) = self.worst_rtt() else {
            return Ok(());
        };
        let heartbeat = Duration::from_millis(ticks.heartbeat as u64 * ticks.tick_ms);
        let need = min_election_for_rtt(rtt, heartbeat);
        let election = Duration::from_millis(ticks.election as u64 * ticks.tick_ms);
        if election < need {
            return Err(TopologyError::ElectionTooShortForWan {
                a: a.to_string(),
                b: b.to_string(),
                rtt,
                election,
                need,
            });
        }
        Ok(())
    }

    /// The worst round trip between two declared sites of the declared
    /// [`wan`](Self::wan), if any.
    fn worst_rtt(&self) -> Option<(&str, &str, Duration)> {
        let latency = self.wan.as_ref()?;
        let mut worst: Option<(&str, &str, Duration)> = None;
        for (i, a) in self.sites.iter().enumerate() {
            for b in &self.sites[i + 1..] {
                let rtt = latency.rtt(&a.name, &b.name);
                if worst.is_none_or(|(_, _, w)| rtt > w) {
                    worst = Some((&a.name, &b.name, rtt));
                }
            }
        }
        worst
    }

    /// DR auto-sync mode's layout: two sites, each with a voter, the main
    /// site alone a majority (it commits alone when the other is silent);
    /// and a `sync_wait` long enough for a takeover to prove RPO 0 (see
    /// [`min_sync_wait`]; with a [`wan`](Self::wan) declared, its worst
    /// round trip counts). Tie-breakers outside the main site are refused
    /// before, as in main-site mode.
    fn check_dr(
        &self,
        main: &str,
        members: &BTreeMap<NodeId, Member>,
        ticks: &TickTimers,
    ) -> Result<(), TopologyError> {
        if self.sites.len() != 2 {
            return Err(TopologyError::DrNeedsTwoSites {
                count: self.sites.len(),
                sites: self.sites.iter().map(|s| s.name.clone()).collect(),
            });
        }
        let voters = members.len();
        let main_voters = members.values().filter(|m| m.site == main).count();
        if let Some(other) = self.sites.iter().find(|s| s.name != main) {
            if main_voters == voters {
                return Err(TopologyError::DrSiteWithoutVoter {
                    site: other.name.clone(),
                });
            }
        }
        if main_voters * 2 <= voters {
            return Err(TopologyError::DrMainSiteNotMajority {
                main: main.to_string(),
                main_voters,
                voters,
                // m + k > (v + k) / 2  <=>  k > v - 2m.
                more: voters - 2 * main_voters + 1,
            });
        }
        let rtt = self.worst_rtt().map_or(Duration::ZERO, |(_, _, r)| r);
        let need = min_sync_wait(ticks, rtt);
        let sync_wait = Duration::from_millis(ticks.ms(ticks.sync_wait));
        if sync_wait < need && !self.allow_unproven_takeover {
            return Err(TopologyError::DrSyncWaitTooShort {
                sync_wait,
                need,
                survivable_after: Duration::from_millis(ticks.ms(ticks.survivable_after)),
                election: Duration::from_millis(ticks.ms(ticks.election)),
                rtt,
            });
        }
        Ok(())
    }

    /// Every address names a member and is not empty.
    fn check_addresses(&self, members: &BTreeMap<NodeId, Member>) -> Result<(), TopologyError> {
        for (&id, address) in &self.addresses {
            if !members.contains_key(&id) {
                return Err(TopologyError::UnknownMember {
                    id,
                    what: "an address",
                });
            }
            if address.trim().is_empty() {
                return Err(TopologyError::EmptyAddress { id });
            }
        }
        Ok(())
    }

    /// The builder that builds `topology` again (its members regrouped
    /// into cores, survivable cores by rank, and witnesses), so a changed
    /// copy is validated exactly as the original was.
    pub(super) fn of(topology: &Topology) -> Self {
        let mut b = Self::new(topology.cluster_id);
        b.mode = topology.mode;
        b.sites = topology.sites.clone();
        b.timers = topology.timers.clone();
        b.hand_back = topology.hand_back.clone();
        b.allow_single_host_outage = topology.allow_single_host_outage;
        b.addresses = topology.addresses.clone();
        b.version = topology.version;
        b.removed = topology.removed.clone();
        let mut cores: BTreeMap<(u32, &str), Core> = BTreeMap::new();
        let mut pairs: Vec<(&Member, usize)> = Vec::new();
        for m in topology.members.values() {
            match &m.role {
                Role::Witness => b.witnesses.push(Witness {
                    site: m.site.clone(),
                    member: m.spec.clone(),
                }),
                Role::MainCore { core, .. } | Role::Survivable { core, .. } => {
                    cores
                        .entry((m.preference(), core))
                        .or_insert_with(|| Core::new(core.as_str(), m.site.as_str()));
                    pairs.push((m, m.position()));
                }
            }
        }
        pairs.sort_by_key(|&(m, position)| (position, m.id()));
        for (m, _) in pairs {
            if let Some(core) = m.core() {
                if let Some(c) = cores.get_mut(&(m.preference(), core)) {
                    c.members.push(m.spec.clone());
                }
            }
        }
        for ((rank, _), core) in cores {
            if rank == 0 {
                b.cores.push(core);
            } else {
                b.survivable.push(SurvivableCore::new(rank, core));
            }
        }
        b
    }

    /// The builder's survivable cores, for a change to edit.
    pub(super) fn survivable_mut(&mut self) -> &mut Vec<SurvivableCore> {
        &mut self.survivable
    }

    /// The builder's main cores, for a change to edit.
    pub(super) fn cores_mut(&mut self) -> &mut Vec<Core> {
        &mut self.cores
    }

    /// The builder's witnesses, for a change to edit.
    pub(super) fn witnesses_mut(&mut self) -> &mut Vec<Witness> {
        &mut self.witnesses
    }

    /// The builder's addresses, for a change to edit.
    pub(super) fn addresses_mut(&mut self) -> &mut BTreeMap<NodeId, String> {
        &mut self.addresses
    }

    /// The builder's sites, for a change to edit.
    pub(super) fn sites_mut(&mut self) -> &mut Vec<Site> {
        &mut self.sites
    }

    /// The ids removed from the cluster, for a change to extend.
    pub(super) fn removed_mut(&mut self) -> &mut BTreeSet<NodeId> {
        &mut self.removed
    }

    /// Sets the version the built topology carries.
    pub(super) fn set_version(&mut self, version: u64) -> &mut Self {
        self.version = version;
        self
    }

    /// Checks the main core (exactly one, in the `main` site) and adds its
    /// members.
    fn add_main_core<'a>(
        &'a self,
        main: &str,
        members: &mut BTreeMap<NodeId, Member>,
        core_names: &mut HashMap<&'a str, ()>,
    ) -> Result<(), TopologyError> {
        let mut main_core: Option<&str> = None;
        for core in &self.cores {
            self.check_core(core, "core", core_names)?;
            if core.site != main {
                return Err(TopologyError::CoreOutsideMainSite {
                    core: core.name.clone(),
                    site: core.site.clone(),
                });
            }
            if let Some(first) = main_core {
                return Err(TopologyError::TwoMainCores {
                    site: main.to_string(),
                    first: first.to_string(),
                    second: core.name.clone(),
                });
            }
            main_core = Some(&core.name);
            for (position, spec) in core.members.iter().enumerate() {
                let role = Role::MainCore {
                    core: core.name.clone(),
                    position,
                };
                insert(members, spec, &core.site, role)?;
            }
        }
        if main_core.is_none() {
            return Err(TopologyError::NoMainCore {
                site: main.to_string(),
            });
        }
        Ok(())
    }

    /// Checks the survivable cores (outside the `main` site, each with a
    /// rank of its own from 1) and adds their members.
    fn add_survivable_cores<'a>(
        &'a self,
        main: &str,
        members: &mut BTreeMap<NodeId, Member>,
        core_names: &mut HashMap<&'a str, ()>,
    ) -> Result<(), TopologyError> {
        let mut ranks: HashMap<u32, &str> = HashMap::new();
        for sc in &self.survivable {
            let core = &sc.core;
            self.check_core(core, "core", core_names)?;
            if core.site == main {
                return Err(TopologyError::SurvivableInMainSite {
                    core: core.name.clone(),
                    site: main.to_string(),
                });
            }
            if sc.rank == 0 {
                return Err(TopologyError::ZeroRank {
                    core: core.name.clone(),
                });
            }
            if let Some(first) = ranks.insert(sc.rank, &core.name) {
                return Err(TopologyError::DuplicateRank {
                    rank: sc.rank,
                    first: first.to_string(),
                    second: core.name.clone(),
                });
            }
            for (position, spec) in core.members.iter().enumerate() {
                let role = Role::Survivable {
                    core: core.name.clone(),
                    rank: sc.rank,
                    position,
                };
                insert(members, spec, &core.site, role)?;
            }
        }
        Ok(())
    }

    /// Checks the witnesses (in a known site; in main-site mode, in the
    /// `main` site) and adds them.
    fn add_witnesses(
        &self,
        main: &str,
        members: &mut BTreeMap<NodeId, Member>,
    ) -> Result<(), TopologyError> {
        for w in &self.witnesses {
            if !self.sites.iter().any(|s| s.name == w.site) {
                return Err(TopologyError::UnknownSite {
                    what: "witness",
                    name: w.member.name.clone(),
                    site: w.site.clone(),
                });
            }
            if self.mode.forks_epochs() && w.site != main {
                return Err(TopologyError::WitnessOutsideMainSite {
                    witness: w.member.name.clone(),
                    site: w.site.clone(),
                    main: main.to_string(),
                });
            }
            insert(members, &w.member, &w.site, Role::Witness)?;
        }
        Ok(())
    }

    fn check_sites(&self) -> Result<&str, TopologyError> {
        let mut seen: HashMap<&str, ()> = HashMap::new();
        let mut main: Option<&str> = None;
        for s in &self.sites {
            if seen.insert(&s.name, ()).is_some() {
                return Err(TopologyError::DuplicateSite {
                    site: s.name.clone(),
                });
            }
            if s.main {
                if let Some(first) = main {
                    return Err(TopologyError::TwoMainSites {
                        first: first.to_string(),
                        second: s.name.clone(),
                    });
                }
                main = Some(&s.name);
            }
        }
        main.ok_or(TopologyError::NoMainSite)
    }

    fn check_core<'a>(
        &self,
        core: &'a Core,
        what: &'static str,
        names: &mut HashMap<&'a str, ()>,
    ) -> Result<(), TopologyError> {
        if !self.sites.iter().any(|s| s.name == core.site) {
            return Err(TopologyError::UnknownSite {
                what,
                name: core.name.clone(),
                site: core.site.clone(),
            });
        }
        if names.insert(&core.name, ()).is_some() {
            return Err(TopologyError::DuplicateCore {
                core: core.name.clone(),
            });
        }
        let [a, b] = core.members.as_slice() else {
            return Err(TopologyError::NotAPair {
                core: core.name.clone(),
                count: core.members.len(),
            });
        };
        if a.host == b.host {
            return Err(TopologyError::PairSharesHost {
                core: core.name.clone(),
                first: a.name.clone(),
                second: b.name.clone(),
                host: a.host.clone(),
            });
        }
        if a.appliance != b.appliance {
            return Err(TopologyError::PairMixesAppliances {
                core: core.name.clone(),
                first: a.name.clone(),
                first_kind: a.appliance,
                second: b.name.clone(),
                second_kind: b.appliance,
            });
        }
        Ok(())
    }
}

fn insert(
    members: &mut BTreeMap<NodeId, Member>,
    spec: &MemberSpec,
    site: &str,
    role: Role,
) -> Result<(), TopologyError> {
    if spec.id.0 == 0 {
        return Err(TopologyError::ZeroNodeId {
            name: spec.name.clone(),
        });
    }
    if let Some(existing) = members.get(&spec.id) {
        return Err(TopologyError::DuplicateNodeId {
            id: spec.id,
            first: existing.spec.name.clone(),
            second: spec.name.clone(),
        });
    }
    if let Some(existing) = members.values().find(|m| m.spec.name == spec.name) {
        return Err(TopologyError::DuplicateName {
            name: spec.name.clone(),
            first: existing.id(),
            second: spec.id,
        });
    }
    members.insert(
        spec.id,
        Member {
            spec: spec.clone(),
            site: site.to_string(),
            role,
        },
    );
    Ok(())
}

/// Every single host failure must leave a majority of voters.
fn check_host_loss(members: &BTreeMap<NodeId, Member>) -> Result<(), TopologyError> {
    let voters = members.len();
    let mut hosts: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for m in members.values() {
        hosts
            .entry(m.spec.host.as_str())
            .or_default()
            .push(m.spec.name.clone());
    }
    for (host, lost) in hosts {
        let left = voters - lost.len();
        if left * 2 <= voters {
            return Err(TopologyError::HostLossBreaksQuorum {
                host: host.to_string(),
                lost,
                left,
                voters,
            });
        }
    }
    Ok(())
}

/// The shortest election timeout ([`Timers::election`]) that a WAN round
/// trip of `rtt` between two sites allows, with leader heartbeats every
/// `heartbeat`: two round trips and two heartbeat intervals.
///
/// Why: the election timeout is also the window of every path that must
/// cross the WAN before it runs out.
/// - A hand-back is a raft leader transfer, which raft aborts one election
///   timeout after it starts (the old leader then takes proposals again
///   and the attempt fails). When the target has not yet acknowledged the
///   leader's last entry, the transfer waits for that acknowledgement
///   (one round trip, starting at the next append or heartbeat: up to one
///   heartbeat interval later), then the leader's `MsgTimeoutNow` reaches
///   the target and the target's vote request reaches the old leader (one
///   more round trip, in two halves): two round trips and a heartbeat
///   interval before the old leader knows it is over.
/// - The hand-back's freshness gate passes a target holding every entry
///   the leader had half an election timeout ago: under a steady load
///   the target's acknowledgement of an entry comes back one round trip
///   after the entry was sent, and the leader notes it on its next tick
///   (within a heartbeat interval), so half an election timeout must
///   cover a round trip and a heartbeat interval, or the gate never opens
///   while the load lasts.
/// - A new leader's check-quorum looks, one election timeout after it
///   took over, for an answer from a majority: the farthest voter it needs
///   answers its first heartbeat a round trip (and a heartbeat interval)
///   later. Covered by either of the two above.
pub fn min_election_for_rtt(rtt: Duration, heartbeat: Duration) -> Duration {
    2 * (rtt + heartbeat)
}

/// The shortest [`Timers::sync_wait`] (in whole ticks) with which a DR
/// auto-sync takeover proves RPO 0, for timers `ticks` and a worst WAN
/// round trip of `rtt` (zero when unknown).
///
/// Why: a survivable member claims RPO 0 only while its lease runs, and
/// the lease ends `sync_wait` (less 1% for clock rates and two ticks)
/// after it sent the last ping the leader answered. Counted from that
/// send, the member activates no sooner than after:
/// - a round trip for that ping's answer, and the main site's last
///   message on its way (together at most another round trip, so two);
/// - up to a quarter of an election timeout between two pings (the last
///   one the leader answered may be that much older than its last
///   heartbeat);
/// - `survivable_after` without a leader, and one election timeout more
///   for the core's standby (its stagger behind the primary).
///
/// The lease must still run then, so this is the smallest whole number of
/// ticks whose lease exceeds that sum.
pub fn min_sync_wait(ticks: &TickTimers, rtt: Duration) -> Duration {
    let tick = ticks.tick_ms.max(1);
    let ping_every = (ticks.election / 4).max(1);
    let need =
        ticks.ms(ticks.survivable_after + ticks.election + ping_every) + 2 * rtt.as_millis() as u64;
    let lease = |s: u64| s.saturating_sub(s / 100 + 2 * tick);
    // The lease loses 1% of `s`: start where it would lose nothing, then
    // step up by ticks (about need / 100 / tick steps).
    let mut s = (need + 2 * tick + 1).div_ceil(tick) * tick;
    while lease(s) <= need {
        s += tick;
    }
    Duration::from_millis(s)
}

#[cfg(test)]
#[path = "builder_tests.rs"]
mod tests;
