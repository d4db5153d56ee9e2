//! The member's TOML file: the topology, every member's address, which
//! member this process is, and its TLS files.
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
//!
//! [tls]                          # mutual TLS between members (required)
//! ca = "pki/ca.pem"              # the cluster CA: the only trust anchor
//! cert = "pki/node-1.pem"        # this member's certificate (+ intermediates)
//! key = "pki/node-1.key"         # its private key (PKCS#8, PKCS#1 or SEC1)
//! ```
//!
//! Relative paths in `[tls]` (and `data_dir`) are relative to the
//! directory of the TOML file. The certificate must be issued by the CA
//! and carry the URI subject alternative name
//! `survivable://<cluster_id>/node/<member.id>` (`node certs <dir>` writes
//! such files; the README shows how to issue them with your own PKI). The
//! files are read again on every new connection, so renewed certificates
//! are used without a restart.
//!
//! For tests on one machine only, `[tls]` may be replaced by
//! `insecure_plaintext_loopback_only = true` under `[member]`: no
//! encryption and no authentication, and start-up refuses it unless every
//! address is a loopback address. A file with both, or neither, is
//! refused.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use survivable_core::policy::{HandBack, HandBackPolicy, Timers};
use survivable_core::runtime::MemberConfig;
use survivable_core::topology::{Appliance, Core, NodeId, Site, SurvivableCore, Topology, Witness};
use survivable_core::transport::{Limits, TransportSecurity};

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
    tls: Option<TlsCfg>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsCfg {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
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
    #[serde(default)]
    insecure_plaintext_loopback_only: bool,
}

fn ms(v: Option<u64>, default: Duration) -> Duration {
    v.map_or(default, Duration::from_millis)
}

/// Reads a member's file into what [`survivable_core::runtime::start_member`] takes.
pub(crate) fn load(path: &str) -> Result<MemberConfig, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let base = Path::new(path).parent().unwrap_or(Path::new("."));
    parse(&text, base).map_err(|e| format!("{path}: {e}"))
}

/// The security the file asks for; exactly one of `[tls]` and
/// `member.insecure_plaintext_loopback_only` must be given.
fn security(f: &File, base: &Path) -> Result<TransportSecurity, String> {
    match (&f.tls, f.member.insecure_plaintext_loopback_only) {
        (Some(t), false) => Ok(TransportSecurity::mutual_tls(
            base.join(&t.ca),
            base.join(&t.cert),
            base.join(&t.key),
        )),
        (None, true) => Ok(TransportSecurity::InsecurePlaintextLoopbackOnly),
        (Some(_), true) => Err(
            "both [tls] and member.insecure_plaintext_loopback_only: choose one mode".into(),
        ),
        (None, false) => Err("no [tls] table: members authenticate each other with mutual TLS (see `node certs`); plaintext needs member.insecure_plaintext_loopback_only = true and loopback addresses".into()),
    }
}

/// Parses a member's file; relative paths are taken from `base`.
pub(crate) fn parse(text: &str, base: &Path) -> Result<MemberConfig, String> {
    let f: File = toml::from_str(text).map_err(|e| e.to_string())?;
    let security = security(&f, base)?;
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
        data_dir: base.join(f.member.data_dir),
        joining: None,
        replacements: Default::default(),
        security,
        limits: Limits::default(),
    })
}
