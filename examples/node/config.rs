//! The member's TOML file: the topology, every member's address, and which
//! member this process is.
//!
//! ```toml
//! cluster_id = 2026
//!
//! [[sites]]
//! name = "denver"
//! main = true
//! [[sites]]
//! name = "paris"
//!
//! [[cores]]                      # no rank: the main site's duplicated core
//! name = "cm01"
//! site = "denver"
//! members = [
//!   { id = 1, name = "CM01a", host = "esxi-1", addr = "127.0.0.1:7001" },
//!   { id = 2, name = "CM01b", host = "esxi-3", addr = "127.0.0.1:7002" },
//! ]
//! [[cores]]                      # a rank: a survivable core
//! name = "cm02"
//! site = "paris"
//! rank = 1
//! members = [ ... ]
//!
//! [[witnesses]]
//! id = 5
//! name = "W1"
//! site = "kansas"
//! host = "wit-1"
//! addr = "127.0.0.1:7005"
//!
//! [timers]                       # optional, milliseconds
//! survivable_after_ms = 2000
//! [hand_back]                    # optional: immediate | after-stable | manual
//! policy = "after-stable"
//! stable_ms = 5000
//!
//! [member]
//! id = 1
//! data_dir = "/var/lib/survivable/cm01a"
//! # listen = "0.0.0.0:7001"      # defaults to this member's addr
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use survivable_core::policy::{HandBack, HandBackPolicy, Timers};
use survivable_core::runtime::MemberConfig;
use survivable_core::topology::{Appliance, Core, NodeId, Site, SurvivableCore, Topology, Witness};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    cluster_id: u64,
    sites: Vec<SiteCfg>,
    cores: Vec<CoreCfg>,
    #[serde(default)]
    witnesses: Vec<WitnessCfg>,
    #[serde(default)]
    timers: TimersCfg,
    #[serde(default)]
    hand_back: HandBackCfg,
    member: ThisMember,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SiteCfg {
    name: String,
    #[serde(default)]
    main: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CoreCfg {
    name: String,
    site: String,
    rank: Option<u32>,
    members: Vec<MemberCfg>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MemberCfg {
    id: u64,
    name: String,
    host: String,
    #[serde(default)]
    dedicated: bool,
    addr: SocketAddr,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WitnessCfg {
    id: u64,
    name: String,
    site: String,
    host: String,
    addr: SocketAddr,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TimersCfg {
    tick_ms: Option<u64>,
    heartbeat_ms: Option<u64>,
    election_ms: Option<u64>,
    failover_ms: Option<u64>,
    survivable_after_ms: Option<u64>,
    rank_step_ms: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct HandBackCfg {
    policy: Option<String>,
    stable_ms: Option<u64>,
    max_lag_entries: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ThisMember {
    id: u64,
    data_dir: PathBuf,
    listen: Option<SocketAddr>,
}

fn ms(v: Option<u64>, default: Duration) -> Duration {
    v.map_or(default, Duration::from_millis)
}

/// Reads a member's file into what [`survivable_core::runtime::start_member`] takes.
pub(crate) fn load(path: &str) -> Result<MemberConfig, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    parse(&text).map_err(|e| format!("{path}: {e}"))
}

/// Parses a member's file.
pub(crate) fn parse(text: &str) -> Result<MemberConfig, String> {
    let f: File = toml::from_str(text).map_err(|e| e.to_string())?;
    let mut b = Topology::builder(f.cluster_id);
    for s in &f.sites {
        b.site(if s.main {
            Site::main(&s.name)
        } else {
            Site::backup(&s.name)
        });
    }
    let mut addrs: BTreeMap<NodeId, SocketAddr> = BTreeMap::new();
    for c in &f.cores {
        let mut core = Core::new(&c.name, &c.site);
        for m in &c.members {
            let kind = if m.dedicated {
                Appliance::Dedicated
            } else {
                Appliance::Virtual
            };
            core = core.member(m.id, &m.name, &m.host, kind);
            addrs.insert(NodeId(m.id), m.addr);
        }
        match c.rank {
            None => b.core(core),
            Some(rank) => b.survivable_core(SurvivableCore::new(rank, core)),
        };
    }
    for w in &f.witnesses {
        b.witness(Witness::new(w.id, &w.name, &w.site, &w.host));
        addrs.insert(NodeId(w.id), w.addr);
    }
    let d = Timers::default();
    b.timers(Timers {
        tick: ms(f.timers.tick_ms, d.tick),
        heartbeat: ms(f.timers.heartbeat_ms, d.heartbeat),
        election: ms(f.timers.election_ms, d.election),
        failover: ms(f.timers.failover_ms, d.failover),
        survivable_after: ms(f.timers.survivable_after_ms, d.survivable_after),
        rank_step: ms(f.timers.rank_step_ms, d.rank_step),
    });
    let hb = HandBack::default();
    let stable = ms(f.hand_back.stable_ms, Duration::from_secs(5));
    let policy = match f.hand_back.policy.as_deref() {
        None | Some("after-stable") => HandBackPolicy::AfterStable(stable),
        Some("immediate") => HandBackPolicy::Immediate,
        Some("manual") => HandBackPolicy::Manual,
        Some(other) => {
            return Err(format!(
                "hand_back.policy {other:?}: use immediate, after-stable or manual"
            ))
        }
    };
    b.hand_back(HandBack {
        policy,
        max_lag_entries: f.hand_back.max_lag_entries.unwrap_or(hb.max_lag_entries),
        ..hb
    });
    let topology = b.build().map_err(|e| e.to_string())?.shared();
    let id = NodeId(f.member.id);
    let own = *addrs
        .get(&id)
        .ok_or_else(|| format!("member.id {} is not in the topology", id.0))?;
    let peers = addrs.into_iter().filter(|(p, _)| *p != id).collect();
    Ok(MemberConfig {
        topology,
        id,
        listen: f.member.listen.unwrap_or(own),
        peers,
        data_dir: f.member.data_dir,
        joining: None,
    })
}
