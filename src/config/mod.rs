//! A member's TOML file, read into the [`MemberConfig`] that
//! [`start_member`](crate::runtime::start_member) takes:
//! [`MemberConfig::load`] (a file; relative paths are relative to its
//! directory) and [`MemberConfig::from_toml`] (a text and the directory to
//! resolve its paths from).
//!
//! The file is checked as a whole before anything starts: every problem
//! is reported (not only the first), each as a [`Problem`] naming its key
//! (`cores[1].members[0].addr`, array indexes from 0) and saying what to
//! do; unknown keys are refused, so a misspelt setting never goes
//! unnoticed. Then the topology's own checks run
//! ([`TopologyBuilder::build`](crate::topology::TopologyBuilder::build)).
//!
//! # The file
//!
//! The certificate in `[tls]` must be issued by the CA and carry the URI
//! subject alternative name `survivable://<cluster_id>/node/<member.id>`;
//! the files are looked at again while the member runs, so renewed
//! certificates are used without a restart (see
//! [`TlsFiles`](crate::transport::TlsFiles)). For tests on one machine
//! only, `member.insecure_plaintext_loopback_only = true` replaces `[tls]`:
//! no encryption and no authentication, refused unless every address is a
//! loopback address. A file with both, or neither, is refused.
//!
//! Every member's file holds the same topology (the cluster's sites,
//! cores, witnesses, timers and hand-back policy: members compare a
//! fingerprint of it when they connect) and every member's address, then
//! what is this process's own: `[member]`, `[tls]`, and the optional
//! tuning tables `[node]`, `[runtime]` and `[limits]`. Durations are in
//! milliseconds (at most a day); every optional key shows its default
//! below.
//!
//! ```
//! # use std::path::Path;
//! # use std::time::Duration;
//! # use survivable_core::runtime::MemberConfig;
//! # use survivable_core::topology::NodeId;
//! let text = r#"
//! cluster_id = 2026                # in every message: other clusters are refused
//! ## mode = "witness"               # or "main-site", "dr-auto-sync" (two data centres)
//! ## allow_single_host_outage = false
//! ## allow_unproven_takeover = false  # dr-auto-sync: a sync_wait too short to prove RPO 0
//!
//! [[sites]]
//! name = "denver"
//! main = true                      # exactly one site is main
//! [[sites]]
//! name = "paris"
//! [[sites]]
//! name = "kansas"
//!
//! [[cores]]                        # no rank: the main site's duplicated core
//! name = "cm01"
//! site = "denver"
//! members = [                      # primary first; `dedicated = true` for hardware
//!   { id = 1, name = "CM01a", host = "esxi-1", addr = "10.0.1.1:7001" },
//!   { id = 2, name = "CM01b", host = "esxi-3", addr = "10.0.1.2:7001" },
//! ]
//! [[cores]]                        # a survivable core: ranks 1, 2, ... without gaps
//! name = "cm02"
//! site = "paris"
//! rank = 1
//! members = [
//!   { id = 3, name = "CM02a", host = "esxi-5", addr = "10.0.2.1:7001" },
//!   { id = 4, name = "CM02b", host = "esxi-7", addr = "10.0.2.2:7001" },
//! ]
//!
//! [[witnesses]]                    # third-site witness (main-site mode: a tie-breaker)
//! id = 5
//! name = "W1"
//! site = "kansas"
//! host = "wit-1"
//! addr = "10.0.3.1:7001"
//!
//! [timers]                         # the cluster's clock; the same in every file
//! tick_ms = 5
//! heartbeat_ms = 10
//! election_ms = 200                # above the worst WAN round trip
//! failover_ms = 100                # pair standby takes over; 2 heartbeats .. election
//! survivable_after_ms = 2000       # at least 2 elections
//! rank_step_ms = 1000
//! ## sync_wait_ms = 4000            # mode = "dr-auto-sync" only: commits stall this long
//! ##                                # on a WAN cut; above survivable_after + election + 2 RTTs
//!
//! [hand_back]
//! policy = "after-stable"          # immediate | after-stable | window | manual
//! stable_ms = 5000                 # only with after-stable
//! ## window_start = "22:00"         # only with window, UTC
//! ## window_end = "06:00"
//! max_lag_entries = 64
//! ## max_attempts = 3               # default: retry without limit
//! retry_after_ms = 250
//!
//! ## [replace]                      # optional, off by default: the leader replaces a core
//! ## after_ms = 600000              # member silent this long by the first spare that fits
//! ## spares = [                     # like core members; they start as joining members
//! ##   { id = 9, name = "CM01c", host = "esxi-4", addr = "10.0.1.3:7001" },
//! ## ]
//!
//! [member]                         # this process
//! id = 1
//! data_dir = "data/cm01a"          # relative to this file's directory
//! ## listen = "0.0.0.0:7001"        # default: its own addr above
//! ## insecure_plaintext_loopback_only = true   # tests on one machine, instead of [tls]
//!
//! [tls]                            # mutual TLS, required unless the flag above
//! ca = "pki/ca.pem"
//! cert = "pki/node-1.pem"          # names survivable://2026/node/1
//! key = "pki/node-1.key"
//!
//! [node]                           # optional: this member's node
//! forward_proposals = true
//! max_pending = 4096
//! max_command_len = 1048576
//! snapshot_every = 1024
//! keep_entries = 10000             # default 256: raise for followers that lag more
//! ## seed = 1                       # default: the member's id
//! retain_max_entries = 5000000     # default none: hold every entry Paris lacks, however long the cut
//! ## retain_max_bytes = 1073741824  # the same bound in bytes (default none)
//! ## retain_warn_percent = 80       # RetentionWarning at this share of a bound
//!
//! [runtime]                        # optional: its thread
//! batch = 1024
//! event_queue = 4096
//! warn_stall_ms = 50
//! metrics = true                   # keep the Prometheus metrics (default true)
//!
//! [operator]                       # optional: the operator endpoint (`node run` starts it)
//! listen = "127.0.0.1:8001"        # off loopback requires tls = true
//! tls = false                      # true: mutual TLS with [tls]; clients need an operator certificate
//! startup_grace_ms = 10000         # /health is 200 without a leader for this long after start
//! threads = 2
//!
//! [limits]                         # optional: its transport
//! queue_len = 4096
//! max_frame = 16777216
//! max_message = 1073741824
//! hello_timeout_ms = 2000
//! frame_timeout_ms = 10000
//! max_connections = 64
//! backoff_min_ms = 20
//! backoff_max_ms = 1000
//! keepalive_ms = 250
//! idle_timeout_ms = 2000
//! inbound_bytes = 268435456
//! "#;
//! let cfg = MemberConfig::from_toml(text, Path::new("/etc/survivable"))?;
//! assert_eq!(cfg.id, NodeId(1));
//! assert_eq!(cfg.peers.len(), 4);
//! assert_eq!(cfg.data_dir, Path::new("/etc/survivable/data/cm01a"));
//! assert_eq!(cfg.node.keep_entries, 10_000);
//! assert_eq!(cfg.node.retain_max_entries, Some(5_000_000));
//! assert_eq!(cfg.topology.timers().survivable_after, Duration::from_secs(2));
//!
//! // A bad file: every problem, each at its key.
//! let bad = text.replace("10.0.2.2:7001", "10.0.2.2").replace("keep_entries", "keep_entry");
//! let err = MemberConfig::from_toml(&bad, Path::new(".")).unwrap_err();
//! let keys: Vec<&str> = err.problems().iter().map(|p| p.key.as_str()).collect();
//! assert_eq!(keys, ["cores[1].members[1].addr", "node.keep_entry"]);
//! # Ok::<(), survivable_core::config::ConfigError>(())
//! ```

mod error;
mod layout;
mod read;
mod settings;
#[cfg(test)]
mod tests;

use std::path::Path;

pub use error::{ConfigError, Problem, ProblemKind};

use self::layout::Layout;
use self::read::{Problems, Required, Tbl};
use crate::policy::QuorumMode;
use crate::runtime::MemberConfig;
use crate::topology::{Member, MemberSpec, NodeId, Role, SurvivableCore, Topology, TopologyError};
use crate::transport::TransportSecurity;

const ROOT_KEYS: &[&str] = &[
    "cluster_id",
    "mode",
    "allow_single_host_outage",
    "allow_unproven_takeover",
    "sites",
    "cores",
    "witnesses",
    "timers",
    "hand_back",
    "member",
    "tls",
    "node",
    "runtime",
    "limits",
    "operator",
    "replace",
];

impl MemberConfig {
    /// Reads the member file at `path` (see the [`config`](crate::config)
    /// module for its keys); relative paths in it are relative to its
    /// directory.
    ///
    /// # Errors
    /// [`ConfigError::Read`] when it cannot be read,
    /// [`ConfigError::Invalid`] with every problem found.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        parse(&text, base).map_err(|problems| ConfigError::Invalid {
            file: Some(path.to_path_buf()),
            problems,
        })
    }

    /// Reads a member file's text (see the [`config`](crate::config)
    /// module); relative paths in it are taken from `base_dir`.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] with every problem found.
    pub fn from_toml(text: &str, base_dir: &Path) -> Result<Self, ConfigError> {
        parse(text, base_dir).map_err(|problems| ConfigError::Invalid {
            file: None,
            problems,
        })
    }
}

/// `member.id` names a member or witness of the topology, or one of the
/// `[replace]` spares (which start joining).
fn member_known(layout: &Layout, id: u64, p: &mut Problems) {
    let spare = (layout.replace.iter()).any(|r| r.spares.iter().any(|s| s.id.0 == id));
    if !layout.ids.contains(&id) && !spare {
        p.add("member.id", ProblemKind::NotInTopology { id });
    }
}

/// The replacement policy: the spares are peers that are not in the
/// topology, and a spare's own file starts it joining.
fn with_spares(cfg: &mut MemberConfig, replace: Option<crate::node::ReplacePolicy>) {
    if let Some(r) = &replace {
        cfg.replacements.extend(r.spares.iter().map(|s| s.id));
        if let Some(spec) = r.spares.iter().find(|s| s.id == cfg.id) {
            cfg.joining = Some(spare_member(&cfg.topology, spec.clone()));
        }
    }
    cfg.node.replace = replace;
}

/// How a spare started from its own member file describes itself until
/// the leader adds it: as the main core's standby slot (the slot it is
/// most often called to), with its own id, name, host and appliance. The
/// description is provisional: the leader's record of the slot it really
/// takes (sent with the learner's configuration change and in the
/// snapshot it catches up from) replaces it, and the promotion's topology
/// names it there. As a learner it neither votes nor campaigns, so the
/// provisional slot decides nothing. On a restart with data, the member's
/// own applied records win over it.
fn spare_member(topology: &Topology, spec: MemberSpec) -> Member {
    let standby = |m: &&Member| matches!(m.role, Role::MainCore { position: 1, .. });
    let slot = (topology.members().values().find(standby))
        .or_else(|| topology.members().values().next())
        .expect("a built topology has members");
    Member {
        spec,
        site: slot.site.clone(),
        role: slot.role.clone(),
    }
}

/// A syntax error's line and column, from its byte offset.
fn syntax(text: &str, e: &toml::de::Error) -> Problem {
    let at = e.span().map_or(0, |s| s.start).min(text.len());
    let before = text.get(..at).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    let message = e.message().trim().to_string();
    Problem {
        key: String::new(),
        kind: ProblemKind::Syntax {
            line,
            column,
            message,
        },
    }
}

/// The whole file: every problem, or the member's configuration.
fn parse(text: &str, base: &Path) -> Result<MemberConfig, Vec<Problem>> {
    let table: toml::Table = text.parse().map_err(|e| vec![syntax(text, &e)])?;
    let mut p = Problems::default();
    let root = Tbl::new(&table, "", ROOT_KEYS, &mut p);
    let cluster_id = root.u64("cluster_id", Required("the cluster's id, a number"), &mut p);
    let mode = match root.choice("mode", &["witness", "main-site", "dr-auto-sync"], &mut p) {
        Some("main-site") => QuorumMode::MainSite,
        Some("dr-auto-sync") => QuorumMode::DrAutoSync,
        _ => QuorumMode::Witness,
    };
    let single_host = root.bool("allow_single_host_outage", &mut p);
    let unproven = root.bool("allow_unproven_takeover", &mut p);
    let layout = layout::read(root, &mut p);
    let timers = settings::timers(root, mode, &mut p);
    let hand_back = settings::hand_back(root, &mut p);
    let me = settings::member(root, base, &mut p);
    let node = settings::node(root, &mut p);
    let runtime = settings::runtime(root, &mut p);
    let limits = settings::limits(root, &mut p);
    let operator = settings::operator(root, &mut p);
    if let Some(o) = &operator {
        if !o.tls && !o.listen.ip().is_loopback() {
            p.add(
                "operator.listen",
                ProblemKind::OperatorOffLoopback { addr: o.listen },
            );
        }
        if o.tls && me.security == Some(TransportSecurity::InsecurePlaintextLoopbackOnly) {
            p.add("operator.tls", ProblemKind::TlsMissing);
        }
    }
    if let Some(id) = me.id {
        member_known(&layout, id, &mut p);
    }
    if me.security == Some(TransportSecurity::InsecurePlaintextLoopbackOnly) {
        plaintext_on_loopback(&layout, me.listen, &mut p);
    }
    let (Some(cluster_id), Some(id), Some(data_dir), Some(security), true) =
        (cluster_id, me.id, me.data_dir, me.security, p.is_empty())
    else {
        return Err(p.0);
    };
    let id = NodeId(id);
    let mut b = Topology::builder(cluster_id);
    b.mode(mode)
        .timers(timers)
        .hand_back(hand_back)
        .allow_single_host_outage(single_host.unwrap_or(false))
        .allow_unproven_takeover(unproven.unwrap_or(false));
    let Layout {
        sites,
        cores,
        witnesses,
        mut addrs,
        keys,
        replace,
        ..
    } = layout;
    for site in sites {
        b.site(site);
    }
    for (core, rank) in cores {
        match rank {
            Some(rank) => b.survivable_core(SurvivableCore::new(rank, core)),
            None => b.core(core),
        };
    }
    for w in witnesses {
        b.witness(w);
    }
    let topology = match b.build() {
        Ok(t) => t.shared(),
        Err(e) => {
            let key = topology_key(&e, &keys);
            return Err(vec![Problem {
                key,
                kind: ProblemKind::Topology(e),
            }]);
        }
    };
    let Some((own, _)) = addrs.remove(&id) else {
        return Err(vec![Problem {
            key: "member.id".into(),
            kind: ProblemKind::NotInTopology { id: id.0 },
        }]);
    };
    let peers = addrs.into_iter().map(|(n, (a, _))| (n, a)).collect();
    let listen = me.listen.unwrap_or(own);
    let mut cfg = MemberConfig::new(topology, id, listen, peers, data_dir, security);
    cfg.node = node;
    with_spares(&mut cfg, replace);
    cfg.runtime = runtime;
    cfg.limits = limits;
    cfg.operator = operator;
    Ok(cfg)
}

/// Reports every address that plaintext would be refused on.
fn plaintext_on_loopback(layout: &Layout, listen: Option<std::net::SocketAddr>, p: &mut Problems) {
    let listen = listen.map(|a| (a, "member.listen".to_string()));
    let all = layout.addrs.values().cloned().chain(listen);
    for (addr, key) in all.filter(|(a, _)| !a.ip().is_loopback()) {
        p.add(key, ProblemKind::PlaintextOffLoopback { addr });
    }
}

/// The key of the table a topology error is about: the core, witness or
/// site it names, by name.
fn topology_key(e: &TopologyError, keys: &std::collections::BTreeMap<String, String>) -> String {
    use TopologyError as E;
    let at = |name: &str, suffix: &str| {
        keys.get(name)
            .map_or_else(|| "cores".to_string(), |k| format!("{k}{suffix}"))
    };
    match e {
        E::NoMainSite | E::TwoMainSites { .. } | E::DuplicateSite { .. } => "sites".into(),
        E::UnknownSite { name, .. } => at(name, ".site"),
        E::DuplicateNodeId { second, .. } => at(second, ""),
        E::ZeroNodeId { name } => at(name, ""),
        E::DuplicateName { .. } | E::NoMainCore { .. } | E::HostLossBreaksQuorum { .. } => {
            "cores".into()
        }
        E::DuplicateCore { core }
        | E::NotAPair { core, .. }
        | E::PairSharesHost { core, .. }
        | E::PairMixesAppliances { core, .. } => at(core, ".members"),
        E::TwoMainCores { second, .. } => at(second, ""),
        E::CoreOutsideMainSite { core, .. } | E::SurvivableInMainSite { core, .. } => {
            at(core, ".rank")
        }
        E::DuplicateRank { second, .. } => at(second, ".rank"),
        E::ZeroRank { core } => at(core, ".rank"),
        E::WitnessOutsideMainSite { witness, .. } => at(witness, ".site"),
        E::Policy(_) | E::ElectionTooShortForWan { .. } => "timers".into(),
        E::DrSyncWaitTooShort { .. } => "timers.sync_wait_ms".into(),
        E::DrNeedsTwoSites { .. } => "sites".into(),
        E::DrSiteWithoutVoter { .. } => "cores".into(),
        E::DrMainSiteNotMajority { .. } => "witnesses".into(),
        // Only a runtime TopologyChange gives these; never a file.
        _ => "cores".into(),
    }
}
