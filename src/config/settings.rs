//! The file's settings tables: `[timers]` and `[hand_back]` (the
//! cluster's, into the topology), `[member]` and `[tls]` (this process),
//! and `[node]`, `[runtime]` and `[limits]` (this member's own tuning).

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::error::ProblemKind;
use super::read::{Optional, Problems, Required, Tbl};
use crate::policy::{HandBack, HandBackPolicy, PolicyError, QuorumMode, TimeOfDay, Timers};
use crate::runtime::{NodeSettings, OperatorSettings, RuntimeSettings};
use crate::transport::{Limits, TransportSecurity};
use crate::wire::MAX_FRAME_LEN;

const TIMER_KEYS: &[&str] = &[
    "tick_ms",
    "heartbeat_ms",
    "election_ms",
    "failover_ms",
    "survivable_after_ms",
    "rank_step_ms",
    "sync_wait_ms",
];
const HAND_BACK_KEYS: &[&str] = &[
    "policy",
    "stable_ms",
    "window_start",
    "window_end",
    "max_lag_entries",
    "max_attempts",
    "retry_after_ms",
];
const POLICIES: &[&str] = &["immediate", "after-stable", "window", "manual"];
const MEMBER_KEYS: &[&str] = &[
    "id",
    "data_dir",
    "listen",
    "insecure_plaintext_loopback_only",
];
const TLS_KEYS: &[&str] = &["ca", "cert", "key"];
const NODE_KEYS: &[&str] = &[
    "forward_proposals",
    "max_pending",
    "max_command_len",
    "snapshot_every",
    "keep_entries",
    "seed",
    "retain_max_entries",
    "retain_max_bytes",
    "retain_warn_percent",
];
const OPERATOR_KEYS: &[&str] = &["listen", "tls", "startup_grace_ms", "threads"];
const RUNTIME_KEYS: &[&str] = &["batch", "event_queue", "warn_stall_ms", "metrics"];
const LIMIT_KEYS: &[&str] = &[
    "queue_len",
    "max_frame",
    "max_message",
    "hello_timeout_ms",
    "frame_timeout_ms",
    "max_connections",
    "backoff_min_ms",
    "backoff_max_ms",
    "keepalive_ms",
    "idle_timeout_ms",
    "inbound_bytes",
];

/// `[timers]`, defaults for what it leaves out, checked against each
/// other (the problem at the key to change). `sync_wait_ms` is read only
/// in DR auto-sync mode (`mode`), the one mode that waits for a site.
pub(super) fn timers(root: Tbl<'_>, mode: QuorumMode, p: &mut Problems) -> Timers {
    let mut t = Timers::default();
    let Some(owned) = root.table("timers", Optional, TIMER_KEYS, p) else {
        return t;
    };
    let s = owned.tbl();
    let set = |key: &str, min: u64, field: &mut Duration, p: &mut Problems| {
        if let Some(d) = s.ms(key, min, p) {
            *field = d;
        }
    };
    set("tick_ms", 1, &mut t.tick, p);
    set("heartbeat_ms", 1, &mut t.heartbeat, p);
    set("election_ms", 1, &mut t.election, p);
    set("failover_ms", 1, &mut t.failover, p);
    set("survivable_after_ms", 1, &mut t.survivable_after, p);
    set("rank_step_ms", 0, &mut t.rank_step, p);
    if mode == QuorumMode::DrAutoSync {
        set("sync_wait_ms", 1, &mut t.sync_wait, p);
    } else if s.has("sync_wait_ms") {
        let unless = "unless mode = \"dr-auto-sync\"";
        p.add(s.key("sync_wait_ms"), ProblemKind::Unused { unless });
    }
    if let Err(e) = t.to_ticks() {
        let key = match e {
            PolicyError::BadTick { .. } => "tick_ms",
            PolicyError::HeartbeatNotBelowElection { .. } => "heartbeat_ms",
            PolicyError::FailoverOutOfRange { .. } => "failover_ms",
            PolicyError::SurvivableTooEarly { .. } => "survivable_after_ms",
            PolicyError::EmptyWindow { .. } => "",
        };
        p.add(s.key(key), ProblemKind::Policy(e));
    }
    t
}

/// A `"HH:MM"` time of day.
pub(super) fn time_of_day(s: Tbl<'_>, key: &str, p: &mut Problems) -> Option<TimeOfDay> {
    let text = s.str(key, Required("a time of day, \"HH:MM\" (UTC)"), p)?;
    let parsed = text.split_once(':').and_then(|(h, m)| {
        let two = |x: &str| x.len() == 2 && x.bytes().all(|b| b.is_ascii_digit());
        let (h2, m2) = (two(h), two(m));
        let (h, m) = (h.parse::<u32>().ok()?, m.parse::<u32>().ok()?);
        (h2 && m2 && h < 24 && m < 60).then(|| TimeOfDay::hm(h, m))
    });
    if parsed.is_none() {
        let value = text.to_string();
        p.add(s.key(key), ProblemKind::BadTime { value });
    }
    parsed
}

/// `[hand_back]`, defaults for what it leaves out.
pub(super) fn hand_back(root: Tbl<'_>, p: &mut Problems) -> HandBack {
    let mut hb = HandBack::default();
    let Some(owned) = root.table("hand_back", Optional, HAND_BACK_KEYS, p) else {
        return hb;
    };
    let s = owned.tbl();
    let policy = s.choice("policy", POLICIES, p).unwrap_or("after-stable");
    let only = |key: &str, wanted: &str, unless: &'static str, p: &mut Problems| {
        if policy != wanted && s.has(key) {
            p.add(s.key(key), ProblemKind::Unused { unless });
        }
    };
    only(
        "stable_ms",
        "after-stable",
        "unless policy = \"after-stable\"",
        p,
    );
    only("window_start", "window", "unless policy = \"window\"", p);
    only("window_end", "window", "unless policy = \"window\"", p);
    let stable = s.ms("stable_ms", 0, p).unwrap_or(Duration::from_secs(5));
    hb.policy = match policy {
        "immediate" => HandBackPolicy::Immediate,
        "manual" => HandBackPolicy::Manual,
        "window" => {
            let start = time_of_day(s, "window_start", p);
            let end = time_of_day(s, "window_end", p);
            match (start, end) {
                (Some(start), Some(end)) => HandBackPolicy::Window { start, end },
                _ => hb.policy,
            }
        }
        _ => HandBackPolicy::AfterStable(stable),
    };
    if let Some(lag) = s.u64("max_lag_entries", Optional, p) {
        hb.max_lag_entries = lag;
    }
    let most = u32::MAX.into();
    let attempts = s.uint(
        "max_attempts",
        Optional,
        1,
        most,
        "must be 1 or more (leave it out to retry without limit)",
        p,
    );
    if let Some(n) = attempts {
        hb.max_attempts = Some(n as u32);
    }
    if let Some(d) = s.ms("retry_after_ms", 1, p) {
        hb.retry_after = d;
    }
    if let Err(e) = hb.validate() {
        p.add(s.key("window_end"), ProblemKind::Policy(e));
    }
    hb
}

/// `[member]` and `[tls]`: this process's id, directory, listen address
/// and security.
pub(super) struct ThisMember {
    pub(super) id: Option<u64>,
    pub(super) data_dir: Option<PathBuf>,
    pub(super) listen: Option<std::net::SocketAddr>,
    pub(super) security: Option<TransportSecurity>,
}

/// Reads `[member]` and `[tls]`; relative paths are taken from `base`.
pub(super) fn member(root: Tbl<'_>, base: &Path, p: &mut Problems) -> ThisMember {
    let mut out = ThisMember {
        id: None,
        data_dir: None,
        listen: None,
        security: None,
    };
    let hint = "[member] with this process's id and data_dir";
    let plaintext = match root.table("member", Required(hint), MEMBER_KEYS, p) {
        Some(owned) => {
            let m = owned.tbl();
            out.id = m.u64("id", Required("this process's member id"), p);
            out.data_dir = m
                .str("data_dir", Required("its own data directory"), p)
                .map(|d| base.join(d));
            out.listen = m.addr("listen", Optional, p);
            let plain = m.bool("insecure_plaintext_loopback_only", p) == Some(true);
            if plain && root.has("tls") {
                p.add(
                    m.key("insecure_plaintext_loopback_only"),
                    ProblemKind::TlsAndPlaintext,
                );
            }
            plain
        }
        None => false,
    };
    let tls = root.table("tls", Optional, TLS_KEYS, p).map(|owned| {
        let t = owned.tbl();
        let file =
            |key: &str, hint, p: &mut Problems| t.str(key, Required(hint), p).map(|f| base.join(f));
        let ca = file("ca", "the cluster CA's PEM file", p);
        let cert = file("cert", "this member's certificate, PEM", p);
        let key = file("key", "this member's private key, PEM", p);
        (ca, cert, key)
    });
    out.security = match tls {
        Some((Some(ca), Some(cert), Some(key))) if !plaintext => {
            Some(TransportSecurity::mutual_tls(ca, cert, key))
        }
        Some(_) => None, // reported above
        None if plaintext => Some(TransportSecurity::InsecurePlaintextLoopbackOnly),
        None => {
            p.add("tls", ProblemKind::TlsMissing);
            None
        }
    };
    out
}

/// `[node]`.
pub(super) fn node(root: Tbl<'_>, p: &mut Problems) -> NodeSettings {
    let mut n = NodeSettings::default();
    let Some(owned) = root.table("node", Optional, NODE_KEYS, p) else {
        return n;
    };
    let s = owned.tbl();
    if let Some(b) = s.bool("forward_proposals", p) {
        n.forward_proposals = b;
    }
    if let Some(v) = s.count("max_pending", p) {
        n.max_pending = v;
    }
    if let Some(v) = s.count("max_command_len", p) {
        n.max_command_len = v;
    }
    if let Some(v) = s.count("snapshot_every", p) {
        n.snapshot_every = v as u64;
    }
    if let Some(v) = s.u64("keep_entries", Optional, p) {
        n.keep_entries = v;
    }
    if let Some(v) = s.u64("seed", Optional, p) {
        n.seed = Some(v);
    }
    retention(&s, &mut n, p);
    n
}

/// `[node]`'s retention bound: a bound in entries must leave room for
/// what compaction keeps anyway (`keep_entries`, twice over), or every
/// batch would compact at the bound.
fn retention(s: &Tbl<'_>, n: &mut NodeSettings, p: &mut Problems) {
    if let Some(v) = s.u64("retain_max_entries", Optional, p) {
        if v < n.keep_entries.saturating_mul(2).max(1) {
            p.add(
                s.key("retain_max_entries"),
                ProblemKind::OutOfRange {
                    value: i64::try_from(v).unwrap_or(i64::MAX),
                    allowed: "must be at least twice keep_entries (and 1 or more)",
                },
            );
        } else {
            n.retain_max_entries = Some(v);
        }
    }
    if let Some(v) = s.uint(
        "retain_max_bytes",
        Optional,
        1,
        u64::MAX,
        "must be 1 or more",
        p,
    ) {
        n.retain_max_bytes = Some(v);
    }
    if let Some(v) = s.uint("retain_warn_percent", Optional, 1, 99, "must be 1 to 99", p) {
        n.retain_warn_percent = v as u8;
    }
}

/// `[runtime]`.
pub(super) fn runtime(root: Tbl<'_>, p: &mut Problems) -> RuntimeSettings {
    let mut r = RuntimeSettings::default();
    let Some(owned) = root.table("runtime", Optional, RUNTIME_KEYS, p) else {
        return r;
    };
    let s = owned.tbl();
    if let Some(v) = s.count("batch", p) {
        r.batch = v;
    }
    if let Some(v) = s.count("event_queue", p) {
        r.event_queue = v;
    }
    if let Some(d) = s.ms("warn_stall_ms", 1, p) {
        r.warn_stall = d;
    }
    if let Some(b) = s.bool("metrics", p) {
        r.metrics = b;
    }
    r
}

/// `[operator]`: the operator endpoint, if the file asks for one.
pub(super) fn operator(root: Tbl<'_>, p: &mut Problems) -> Option<OperatorSettings> {
    let owned = root.table("operator", Optional, OPERATOR_KEYS, p)?;
    let s = owned.tbl();
    let listen = s.addr(
        "listen",
        Required("where the endpoint listens, e.g. \"127.0.0.1:8001\""),
        p,
    )?;
    let mut o = OperatorSettings::new(listen);
    if let Some(b) = s.bool("tls", p) {
        o.tls = b;
    }
    if let Some(d) = s.ms("startup_grace_ms", 0, p) {
        o.startup_grace = d;
    }
    if let Some(n) = s.count("threads", p) {
        o.threads = n;
    }
    Some(o)
}

/// `[limits]`, checked as the transport checks them at start.
pub(super) fn limits(root: Tbl<'_>, p: &mut Problems) -> Limits {
    let mut l = Limits::default();
    let Some(owned) = root.table("limits", Optional, LIMIT_KEYS, p) else {
        return l;
    };
    let s = owned.tbl();
    let count = |key: &str, field: &mut usize, p: &mut Problems| {
        if let Some(v) = s.count(key, p) {
            *field = v;
        }
    };
    count("queue_len", &mut l.queue_len, p);
    count("max_frame", &mut l.max_frame, p);
    count("max_message", &mut l.max_message, p);
    count("max_connections", &mut l.max_connections, p);
    count("inbound_bytes", &mut l.inbound_bytes, p);
    let ms = |key: &str, field: &mut Duration, p: &mut Problems| {
        if let Some(d) = s.ms(key, 1, p) {
            *field = d;
        }
    };
    ms("hello_timeout_ms", &mut l.hello_timeout, p);
    ms("frame_timeout_ms", &mut l.frame_timeout, p);
    ms("backoff_min_ms", &mut l.backoff.0, p);
    ms("backoff_max_ms", &mut l.backoff.1, p);
    ms("keepalive_ms", &mut l.keepalive, p);
    ms("idle_timeout_ms", &mut l.idle_timeout, p);
    if !(Limits::MIN_FRAME..=MAX_FRAME_LEN).contains(&l.max_frame) {
        let (min, max) = (Limits::MIN_FRAME, MAX_FRAME_LEN);
        p.add(s.key("max_frame"), ProblemKind::FrameLimit { min, max });
    }
    if l.keepalive.is_zero() || l.idle_timeout < l.keepalive.saturating_mul(4) {
        p.add(s.key("idle_timeout_ms"), ProblemKind::IdleBelowKeepalives);
    }
    if l.backoff.0 > l.backoff.1 {
        p.add(s.key("backoff_min_ms"), ProblemKind::BackoffOrder);
    }
    l
}
