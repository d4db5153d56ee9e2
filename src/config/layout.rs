//! The file's topology: `[[sites]]`, `[[cores]]` and `[[witnesses]]`,
//! with every member's address; checked as a whole (names, ids, addresses
//! and ranks unique, sites declared, ranks without gaps) before the
//! topology's own checks run.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use super::error::ProblemKind;
use super::read::{Optional, Problems, Required, Tbl};
use crate::node::ReplacePolicy;
use crate::topology::{Appliance, Core, MemberSpec, NodeId, Site, Witness};

const SITE_KEYS: &[&str] = &["name", "main"];
const CORE_KEYS: &[&str] = &["name", "site", "rank", "members"];
const MEMBER_KEYS: &[&str] = &["id", "name", "host", "dedicated", "addr"];
const WITNESS_KEYS: &[&str] = &["id", "name", "site", "host", "addr"];
const REPLACE_KEYS: &[&str] = &["after_ms", "spares"];

/// What the file declares, read and checked.
#[derive(Default)]
pub(super) struct Layout {
    pub(super) sites: Vec<Site>,
    /// Each core with its rank (none: the main site's core).
    pub(super) cores: Vec<(Core, Option<u32>)>,
    pub(super) witnesses: Vec<Witness>,
    /// Every member's address, and the key it was given at.
    pub(super) addrs: BTreeMap<NodeId, (SocketAddr, String)>,
    /// Every id given (also of entries with other problems).
    pub(super) ids: BTreeSet<u64>,
    /// The key of each core, witness and site by name, for the
    /// topology's own errors.
    pub(super) keys: BTreeMap<String, String>,
    /// `[replace]`: the leader's automatic replacement policy (absent: off).
    pub(super) replace: Option<ReplacePolicy>,
}

/// First uses of names, ids and addresses, to report the second.
#[derive(Default)]
struct Seen {
    sites: BTreeMap<String, String>,
    cores: BTreeMap<String, String>,
    names: BTreeMap<String, String>,
    ids: BTreeMap<u64, String>,
    addrs: BTreeMap<SocketAddr, String>,
}

/// Records `value`'s first use at `key`; reports a later one.
fn once<K: Ord + Clone>(
    seen: &mut BTreeMap<K, String>,
    value: &K,
    key: String,
    p: &mut Problems,
    kind: impl FnOnce(String) -> ProblemKind,
) {
    match seen.get(value) {
        Some(first) => p.add(key, kind(first.clone())),
        None => {
            seen.insert(value.clone(), key);
        }
    }
}

/// Reads the sites, cores and witnesses of `root`.
pub(super) fn read(root: Tbl<'_>, p: &mut Problems) -> Layout {
    let mut out = Layout::default();
    let mut seen = Seen::default();
    let hint = "[[sites]] entries with name, and main = true for one";
    for s in root.tables("sites", Required(hint), SITE_KEYS, p) {
        let t = s.tbl();
        let main = t.bool("main", p).unwrap_or(false);
        if let Some(name) = t.str("name", Required("the site's name"), p) {
            once(
                &mut seen.sites,
                &name.to_string(),
                t.key("name"),
                p,
                |first| ProblemKind::DuplicateName {
                    name: name.into(),
                    first,
                },
            );
            out.keys.insert(name.to_string(), s.path.clone());
            out.sites.push(Site {
                name: name.into(),
                main,
            });
        }
    }
    let mains = out.sites.iter().filter(|s| s.main).count();
    if !out.sites.is_empty() && mains != 1 {
        p.add("sites", ProblemKind::MainSites { count: mains });
    }
    let hint = "[[cores]] entries: the main site's core, and any survivable cores with a rank";
    let mut ranks = BTreeMap::new();
    for c in root.tables("cores", Required(hint), CORE_KEYS, p) {
        let t = c.tbl();
        let name = t.str("name", Required("the core's name"), p);
        let site = t.str("site", Required("the site it runs in"), p);
        site_known(t, site, &seen, p);
        let rank = t.uint("rank", Optional, 1, u32::MAX.into(), "ranks start at 1", p);
        if let Some(rank) = rank {
            once(&mut ranks, &rank, t.key("rank"), p, |first| {
                ProblemKind::DuplicateRank {
                    rank: rank as u32,
                    first,
                }
            });
        }
        let hint = "the pair: [{ id, name, host, addr }, { ... }], primary first";
        let mut members = Vec::new();
        for m in t.tables("members", Required(hint), MEMBER_KEYS, p) {
            let t = m.tbl();
            let dedicated = t.bool("dedicated", p).unwrap_or(false);
            let kind = if dedicated {
                Appliance::Dedicated
            } else {
                Appliance::Virtual
            };
            if let Some(spec) = member(t, kind, &mut seen, &mut out, p) {
                members.push(spec);
            }
        }
        if let (Some(name), Some(site)) = (name, site) {
            once(
                &mut seen.cores,
                &name.to_string(),
                t.key("name"),
                p,
                |first| ProblemKind::DuplicateName {
                    name: name.into(),
                    first,
                },
            );
            out.keys.insert(name.to_string(), c.path.clone());
            let core = Core {
                name: name.into(),
                site: site.into(),
                members,
            };
            out.cores.push((core, rank.map(|r| r as u32)));
        }
    }
    rank_gaps(&ranks, p);
    for w in root.tables("witnesses", Optional, WITNESS_KEYS, p) {
        let t = w.tbl();
        let site = t.str("site", Required("the site it runs in"), p);
        site_known(t, site, &seen, p);
        let spec = member(t, Appliance::Virtual, &mut seen, &mut out, p);
        if let (Some(member), Some(site)) = (spec, site) {
            out.keys.insert(member.name.clone(), w.path.clone());
            out.witnesses.push(Witness {
                site: site.into(),
                member,
            });
        }
    }
    out.replace = replace(root, &mut seen, &mut out, p);
    out
}

/// `[replace]`: how long a core member must be silent before the leader
/// replaces it, and the spares (each like a core member: id, name, host,
/// addr, dedicated; their ids and addresses unique among all members'). A
/// spare's address joins the peers, so members can reach it once the
/// leader adds it, and fills [`ReplacePolicy::addresses`] (its
/// replacement carries it into the topology).
fn replace(
    root: Tbl<'_>,
    seen: &mut Seen,
    out: &mut Layout,
    p: &mut Problems,
) -> Option<ReplacePolicy> {
    let owned = root.table("replace", Optional, REPLACE_KEYS, p)?;
    let t = owned.tbl();
    if !t.has("after_ms") {
        let hint = "how long (ms) a core member must be silent before it is replaced, e.g. 600000";
        p.add(t.key("after_ms"), ProblemKind::Missing { hint });
    }
    let after = t.ms("after_ms", 1, p);
    let hint = "the spare members: [{ id, name, host, addr }, ...], in order of preference";
    let mut spares = Vec::new();
    let mut addresses = BTreeMap::new();
    for m in t.tables("spares", Required(hint), MEMBER_KEYS, p) {
        let t = m.tbl();
        let kind = if t.bool("dedicated", p).unwrap_or(false) {
            Appliance::Dedicated
        } else {
            Appliance::Virtual
        };
        if let Some(spec) = member(t, kind, seen, out, p) {
            // Not a member of the topology: a file naming a spare as
            // `member.id` is refused as not in the topology (unless the id
            // was a member's first: that is reported as a duplicate).
            if seen.ids.get(&spec.id.0) == Some(&t.key("id")) {
                out.ids.remove(&spec.id.0);
            }
            // Its address rides in its replacement's record.
            if let Some((addr, _)) = out.addrs.get(&spec.id) {
                addresses.insert(spec.id, addr.to_string());
            }
            spares.push(spec);
        }
    }
    Some(ReplacePolicy {
        after: after?,
        spares,
        addresses,
    })
}

/// Reports a `site` no `[[sites]]` entry declares.
fn site_known(t: Tbl<'_>, site: Option<&str>, seen: &Seen, p: &mut Problems) {
    if let Some(site) = site {
        if !seen.sites.contains_key(site) {
            let site = site.to_string();
            p.add(t.key("site"), ProblemKind::UnknownSite { site });
        }
    }
}

/// Reads a member's (or a witness's) id, name, host and address.
fn member(
    t: Tbl<'_>,
    appliance: Appliance,
    seen: &mut Seen,
    out: &mut Layout,
    p: &mut Problems,
) -> Option<MemberSpec> {
    let id = t.uint(
        "id",
        Required("its id, 1 or more"),
        1,
        u64::MAX,
        "ids start at 1 (raft reserves 0)",
        p,
    );
    let name = t.str("name", Required("its name"), p);
    let host = t.str("host", Required("the physical host it runs on"), p);
    let addr = t.addr(
        "addr",
        Required("where it listens, e.g. \"10.0.0.1:7001\""),
        p,
    );
    if let Some(id) = id {
        out.ids.insert(id);
        once(&mut seen.ids, &id, t.key("id"), p, |first| {
            ProblemKind::DuplicateId { id, first }
        });
    }
    if let Some(name) = name {
        once(
            &mut seen.names,
            &name.to_string(),
            t.key("name"),
            p,
            |first| ProblemKind::DuplicateName {
                name: name.into(),
                first,
            },
        );
    }
    if let Some(addr) = addr {
        once(&mut seen.addrs, &addr, t.key("addr"), p, |first| {
            ProblemKind::DuplicateAddress { addr, first }
        });
    }
    let (id, name, host, addr) = (id?, name?, host?, addr?);
    out.addrs.entry(NodeId(id)).or_insert((addr, t.key("addr")));
    Some(MemberSpec {
        id: NodeId(id),
        name: name.into(),
        host: host.into(),
        appliance,
    })
}

/// Reports ranks that skip one: 1, 2, 4 has no 3.
pub(super) fn rank_gaps(ranks: &BTreeMap<u64, String>, p: &mut Problems) {
    let given: BTreeSet<u64> = ranks.keys().copied().collect();
    for (&rank, key) in ranks {
        if let Some(missing) = (1..rank).find(|r| !given.contains(r)) {
            // Only the ranks above the first gap are reported, each once.
            let (rank, missing) = (rank as u32, missing as u32);
            p.add(key.clone(), ProblemKind::RankGap { rank, missing });
        }
    }
}
