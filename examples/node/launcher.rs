//! `node cluster`: the Denver/Paris/witness cluster as five processes on
//! 127.0.0.1 (mutual TLS between them, with a CA and certificates made for
//! the run), under a call workload, through a leader kill, a restart, a
//! Denver cut-off and its return.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use survivable_core::relay::Relay;
use survivable_core::topology::NodeId;
use survivable_core::transport::{free_loopback_addr, TlsFiles};

use crate::pki;

#[path = "dr_cluster.rs"]
mod dr_cluster;
#[path = "timeline.rs"]
mod timeline;

pub(crate) const NAMES: [(u64, &str, &str, &str); 5] = [
    (1, "CM01a", "denver", "esxi-1"),
    (2, "CM01b", "denver", "esxi-3"),
    (3, "CM02a", "paris", "esxi-5"),
    (4, "CM02b", "paris", "esxi-7"),
    (5, "W1", "kansas", "wit-1"),
];
/// `--mode dr-auto-sync`: the two-site layout of
/// `topology::denver_paris_dr()`, member 5 a tie-breaker on Denver's LAN.
pub(crate) const DR_NAMES: [(u64, &str, &str, &str); 5] = [
    NAMES[0],
    NAMES[1],
    NAMES[2],
    NAMES[3],
    (5, "TB", "denver", "esxi-9"),
];
/// The quorum mode `node cluster` runs in: the member files' `mode`, and
/// which member 5 is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Three sites, W1 a witness in Kansas (the default).
    Witness,
    /// Two sites, TB a tie-breaker in Denver.
    DrAutoSync,
}

impl Mode {
    /// The members of this mode: (id, name, site, host).
    pub(crate) fn names(self) -> &'static [(u64, &'static str, &'static str, &'static str); 5] {
        match self {
            Self::Witness => &NAMES,
            Self::DrAutoSync => &DR_NAMES,
        }
    }
}
pub(crate) const SURVIVABLE_AFTER_MS: u64 = 2_000;
const STABLE_MS: u64 = 3_000;

/// The site of member `id`.
pub(crate) fn site_of(id: u64) -> &'static str {
    NAMES.iter().find(|n| n.0 == id).map_or("?", |n| n.2)
}

/// The one-way delays between sites: `denver-paris=80` is a round-trip
/// time in milliseconds (half each way), `denver>paris=30` one direction's
/// delay; `none` is no delay at all. Later items override earlier ones.
pub(crate) fn parse_wan(spec: &str) -> Result<Vec<(String, String, Duration)>, String> {
    let usage = |what: &str| {
        format!("--wan {spec:?}: {what}; write e.g. denver-paris=80,denver-kansas=40,paris-kansas=60 (round trips in ms) or denver>paris=30 (one way), or none")
    };
    let sites = ["denver", "paris", "kansas"];
    let mut out = Vec::new();
    if spec == "none" {
        return Ok(out);
    }
    for item in spec.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (pair, ms) = item
            .split_once('=')
            .ok_or_else(|| usage("an item has no ="))?;
        let ms: u64 = ms
            .trim()
            .parse()
            .map_err(|_| usage("a delay is not a whole number of ms"))?;
        let (one_way, (a, b)) = match (pair.split_once('>'), pair.split_once('-')) {
            (Some(ab), None) => (true, ab),
            (None, Some(ab)) => (false, ab),
            _ => return Err(usage("a pair is not site-site or site>site")),
        };
        let (a, b) = (a.trim(), b.trim());
        if !sites.contains(&a) || !sites.contains(&b) || a == b {
            return Err(usage(&format!(
                "{a:?} and {b:?} are not two of denver, paris, kansas"
            )));
        }
        let d = Duration::from_millis(ms);
        if one_way {
            out.push((a.to_string(), b.to_string(), d));
        } else {
            out.push((a.to_string(), b.to_string(), d / 2));
            out.push((b.to_string(), a.to_string(), d - d / 2));
        }
    }
    Ok(out)
}

/// The `[timers]` lines for a run over `wan`: `extra`, and an election
/// timeout of 2.5 times the worst round trip between two sites (at least
/// the default 200 ms). A pair failover or a hand-back may need a vote, or
/// a transfer, from across the WAN: pre-vote and vote are two round trips,
/// which must fit in one election timeout (the library's
/// `min_election_for_rtt` asks for 2 × (round trip + heartbeat); 2.5 round
/// trips cover it from a 40 ms round trip up).
pub(crate) fn wan_timers(wan: &[(String, String, Duration)], extra: &str) -> String {
    let one_way = |a: &str, b: &str| {
        (wan.iter())
            .find(|(x, y, _)| x == a && y == b)
            .map_or(Duration::ZERO, |(_, _, d)| *d)
    };
    let worst = (wan.iter())
        .map(|(a, b, d)| *d + one_way(b, a))
        .max()
        .unwrap_or_default();
    let election = (worst * 5 / 2).max(Duration::from_millis(200));
    format!("{extra}\nelection_ms = {}", election.as_millis())
}

/// The issue's uneven layout: the witness nearer Denver than Paris.
pub(crate) const DEFAULT_WAN: &str = "denver-paris=80,denver-kansas=40,paris-kansas=60";

/// Member `id`'s file; `addrs[i]` is where it reaches member `NAMES[i]`
/// (its own real port for itself, a relay port for other sites).
fn config_text(addrs: &[SocketAddr], id: u64, dir: &Path, timers: &str, mode: Mode) -> String {
    let tls = TlsFiles::in_dir(&dir.join("pki"), NodeId(id));
    let names = mode.names();
    let m = |i: usize| {
        let (id, name, _, host) = names[i];
        format!(
            "{{ id = {id}, name = \"{name}\", host = \"{host}\", addr = \"{}\" }}",
            addrs[i]
        )
    };
    let text = format!(
        r#"cluster_id = 2026
[[sites]]
name = "denver"
main = true
[[sites]]
name = "paris"
[[sites]]
name = "kansas"
[[cores]]
name = "cm01"
site = "denver"
members = [{}, {}]
[[cores]]
name = "cm02"
site = "paris"
rank = 1
members = [{}, {}]
[[witnesses]]
id = 5
name = "W1"
site = "kansas"
host = "wit-1"
addr = "{}"
[timers]
survivable_after_ms = {SURVIVABLE_AFTER_MS}
{timers}
[hand_back]
policy = "after-stable"
stable_ms = {STABLE_MS}
[member]
id = {id}
data_dir = "{}"
[operator]
listen = "127.0.0.1:0"
[tls]
ca = "{}"
cert = "{}"
key = "{}"
"#,
        m(0),
        m(1),
        m(2),
        m(3),
        addrs[4],
        dir.join(format!("n{id}")).display(),
        tls.ca.display(),
        tls.cert.display(),
        tls.key.display(),
    );
    match mode {
        Mode::Witness => text,
        // Two sites; member 5 is the tie-breaker, a `[[witnesses]]` entry
        // in Denver (see `topology::denver_paris_dr()`).
        Mode::DrAutoSync => format!("mode = \"dr-auto-sync\"\n{text}")
            .replace("[[sites]]\nname = \"kansas\"\n", "")
            .replace(
                "name = \"W1\"\nsite = \"kansas\"\nhost = \"wit-1\"",
                "name = \"TB\"\nsite = \"denver\"\nhost = \"esxi-9\"",
            ),
    }
}

/// Reads `"key":value` out of one of our own JSON lines.
pub(crate) fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let at = line.find(&format!("\"{key}\":"))? + key.len() + 3;
    let rest = &line[at..];
    let end = if let Some(s) = rest.strip_prefix('"') {
        return s.find('"').map(|e| &s[..e]);
    } else {
        rest.find([',', '}', ']']).unwrap_or(rest.len())
    };
    Some(&rest[..end])
}

/// The event of a member's event line (`{"ts_ms":..,"event":{"type":..},
/// "text":..}`): its type (`became_leader`, ...) and its human line.
pub(crate) fn event_of(line: &str) -> Option<(String, String)> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    let kind = v["event"]["type"].as_str()?.to_string();
    Some((kind, v["text"].as_str().unwrap_or_default().to_string()))
}

struct Proc {
    child: Child,
    stdin: Option<ChildStdin>,
    stopped: bool,
}

struct Op {
    call: u64,
    setup: bool,
    /// The member it was proposed at.
    at: u64,
    /// When it was sent.
    sent: Instant,
}

/// Output lines of the members: (member id, line).
type Lines = (Sender<(u64, String)>, Receiver<(u64, String)>);

pub(crate) struct Cluster {
    /// A new call every this long under [`Cluster::run_for`].
    pub(crate) every: Duration,
    /// The WAN between sites: delays, cuts, resets.
    pub(crate) relay: Relay,
    /// Every output line seen, with when, for a driver of its own
    /// (`node jepsen`) to drain; `None`: not kept.
    pub(crate) tap: Option<Vec<(Instant, u64, String)>>,
    /// Sites cut off through the relay: the workload leaves them alone.
    pub(crate) isolated: BTreeSet<&'static str>,
    pub(crate) dir: PathBuf,
    /// The quorum mode: which member 5 is, and where.
    pub(crate) mode: Mode,
    /// (ack time ms since start, member proposed at, µs from the proposal
    /// to its acknowledgement) of every acknowledged proposal.
    pub(crate) latencies: Vec<(u64, u64, u64)>,
    /// The `replication` object of each member's last status (DR
    /// auto-sync; `null` in other modes).
    pub(crate) replication: BTreeMap<u64, serde_json::Value>,
    configs: BTreeMap<u64, PathBuf>,
    procs: BTreeMap<u64, Proc>,
    lines: Lines,
    started: Instant,
    // workload
    next_tag: u64,
    next_call: u64,
    sent: BTreeMap<String, Op>,
    /// (time ms since start, term) of every acknowledged proposal.
    acks: Vec<(u64, u64)>,
    failed: u64,
    up: BTreeSet<u64>,
    down: BTreeSet<u64>,
    ending: BTreeMap<u64, Vec<u64>>,
    statuses: BTreeMap<u64, (String, u64, u64)>, // id -> (role, term, applied)
    /// The last `dump` answer: the keys, or why no read point was given.
    dump: Option<Result<BTreeSet<String>, String>>,
    json: bool,
    /// Leave the directory (logs, data, certificates) behind.
    pub(crate) keep: bool,
    /// `--svg`: the timeline being recorded (see `timeline.rs`).
    timeline: Option<timeline::Picture>,
}

impl Cluster {
    /// Starts the five members; `timers` are extra `[timers]` lines, `wan`
    /// the one-way delays between sites (see [`parse_wan`]): members of
    /// different sites reach each other through the relay, members of one
    /// site directly.
    pub(crate) fn start(
        json: bool,
        timers: &str,
        wan: &[(String, String, Duration)],
    ) -> Result<Self, String> {
        Self::start_in(Mode::Witness, json, timers, wan)
    }

    /// [`Cluster::start`] in `mode`: the relay routes by each member's
    /// site in that mode (DR auto-sync's tie-breaker is on Denver's LAN).
    pub(crate) fn start_in(
        mode: Mode,
        json: bool,
        timers: &str,
        wan: &[(String, String, Duration)],
    ) -> Result<Self, String> {
        let names = mode.names();
        // A new directory every run (never an old run's data), removed if
        // anything below fails; once the cluster holds it, its drop removes it.
        let tmp = tempfile::Builder::new()
            .prefix("sc-cluster-")
            .tempdir()
            .map_err(|e| format!("creating a temporary directory: {e}"))?;
        let dir = tmp.path().to_path_buf();
        let nodes: Vec<NodeId> = names.iter().map(|n| NodeId(n.0)).collect();
        pki::write_cluster(&dir.join("pki"), 2026, &nodes, 2)?;
        let real: Vec<SocketAddr> = (0..5)
            .map(|_| free_loopback_addr())
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
        let relay = Relay::new();
        for (from, to, d) in wan {
            relay.set_delay(from, to, *d);
        }
        let mut configs = BTreeMap::new();
        for &(id, _, site, _) in names {
            let mut addrs = real.clone();
            for (i, (_, _, other, _)) in names.iter().enumerate() {
                if other != &site {
                    addrs[i] = relay
                        .route(site, other, real[i])
                        .map_err(|e| e.to_string())?;
                }
            }
            let path = dir.join(format!("n{id}.toml"));
            let text = config_text(&addrs, id, &dir, timers, mode);
            std::fs::write(&path, text).map_err(|e| e.to_string())?;
            configs.insert(id, path);
        }
        let mut c = Self {
            every: Duration::from_millis(20),
            relay,
            isolated: BTreeSet::new(),
            tap: None,
            dir: tmp.keep(),
            mode,
            latencies: Vec::new(),
            replication: BTreeMap::new(),
            configs,
            procs: BTreeMap::new(),
            lines: crossbeam_channel::unbounded(),
            started: Instant::now(),
            next_tag: 0,
            next_call: 1,
            sent: BTreeMap::new(),
            acks: Vec::new(),
            failed: 0,
            up: BTreeSet::new(),
            down: BTreeSet::new(),
            ending: BTreeMap::new(),
            statuses: BTreeMap::new(),
            dump: None,
            json,
            keep: false,
            timeline: None,
        };
        for &(id, ..) in names {
            c.spawn(id)?;
        }
        Ok(c)
    }

    pub(crate) fn spawn(&mut self, id: u64) -> Result<(), String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let log = std::fs::File::create(self.dir.join(format!("n{id}.log")))
            .map_err(|e| e.to_string())?;
        let mut child = Command::new(exe)
            .args(["run", "--config"])
            .arg(&self.configs[&id])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .map_err(|e| e.to_string())?;
        // Held by the cluster from here on, so whatever happens next its
        // drop ends the process.
        let (stdin, stdout) = (child.stdin.take(), child.stdout.take());
        self.procs.insert(
            id,
            Proc {
                child,
                stdin,
                stopped: false,
            },
        );
        let stdout = stdout.ok_or("no stdout")?;
        let tx = self.lines.0.clone();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send((id, line));
            }
        });
        self.wait_until(Duration::from_secs(10), |_, id2, line| {
            id2 == id && line.contains("\"ready\"")
        })
        .then_some(())
        .ok_or_else(|| format!("member {id} did not start; see {}", self.dir.display()))
    }

    pub(crate) fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Sends a command line to member `id` (dropped if it is stopped).
    pub(crate) fn send(&mut self, id: u64, line: &str) {
        let Some(p) = self.procs.get_mut(&id).filter(|p| !p.stopped) else {
            return;
        };
        if let Some(stdin) = p.stdin.as_mut() {
            let _ = writeln!(stdin, "{line}");
        }
    }

    /// Sends `sig` (`-STOP`, `-CONT`) to member `id`.
    pub(crate) fn signal(&mut self, id: u64, sig: &str) {
        if let Some(p) = self.procs.get_mut(&id) {
            p.stopped = sig == "-STOP";
            let _ = Command::new("kill")
                .arg(sig)
                .arg(p.child.id().to_string())
                .status();
        }
    }

    pub(crate) fn kill9(&mut self, id: u64) {
        if let Some(mut p) = self.procs.remove(&id) {
            let _ = p.child.kill(); // SIGKILL
            let _ = p.child.wait();
        }
        self.statuses.remove(&id);
    }

    /// Whether member `id`'s process runs (stopped or not).
    pub(crate) fn runs(&self, id: u64) -> bool {
        self.procs.contains_key(&id)
    }

    /// Whether member `id` runs, is not stopped and its site is not cut
    /// off (the workload's clients use only such members).
    pub(crate) fn serving(&self, id: u64) -> bool {
        self.procs.get(&id).is_some_and(|p| !p.stopped) && !self.isolated.contains(self.site(id))
    }

    /// The site of member `id` in this cluster's mode.
    pub(crate) fn site(&self, id: u64) -> &'static str {
        (self.mode.names().iter())
            .find(|n| n.0 == id)
            .map_or("?", |n| n.2)
    }

    /// The core members of `site` the workload may use now (never member
    /// 5: a witness or tie-breaker holds no state machine).
    fn live(&self, site: &str) -> Vec<u64> {
        (self.mode.names().iter())
            .filter(|(id, _, s, _)| *s == site && *id != 5 && self.serving(*id))
            .map(|(id, ..)| *id)
            .collect()
    }

    fn propose(&mut self, call: u64, setup: bool) {
        let site = if self.next_tag % 2 == 0 {
            "denver"
        } else {
            "paris"
        };
        let mut at = self.live(site);
        if at.is_empty() {
            at = self.live(if site == "denver" { "paris" } else { "denver" });
        }
        let Some(&id) = at.get((self.next_tag / 2) as usize % at.len().max(1)) else {
            self.failed += 1;
            return;
        };
        let tag = self.next_tag.to_string();
        self.next_tag += 1;
        let cmd = if setup {
            format!("set call-{call} up")
        } else {
            format!("del call-{call}")
        };
        self.send(id, &format!("propose {tag} {cmd}"));
        self.sent.insert(
            tag,
            Op {
                call,
                setup,
                at: id,
                sent: Instant::now(),
            },
        );
    }

    fn handle(&mut self, id: u64, line: &str) {
        match field(line, "reply") {
            Some("propose") => {
                let Some(op) = field(line, "tag").and_then(|t| self.sent.remove(t)) else {
                    return;
                };
                if field(line, "ok") == Some("true") {
                    let term = field(line, "term")
                        .and_then(|t| t.parse().ok())
                        .unwrap_or(0);
                    self.acks.push((self.now_ms(), term));
                    let us = op.sent.elapsed().as_micros() as u64;
                    self.latencies.push((self.now_ms(), op.at, us));
                    if op.setup {
                        self.up.insert(op.call);
                        self.down.remove(&op.call);
                        let end = self.now_ms() + 2_000 + (op.call * 7919) % 8_000;
                        self.ending.entry(end).or_default().push(op.call);
                    } else {
                        self.up.remove(&op.call);
                        self.down.insert(op.call);
                    }
                } else {
                    self.failed += 1;
                }
            }
            Some("status") => {
                let role = field(line, "role").unwrap_or("").to_string();
                let num = |k| field(line, k).and_then(|v| v.parse().ok()).unwrap_or(0);
                self.statuses
                    .insert(id, (role, num("term"), num("applied")));
                if self.mode == Mode::DrAutoSync {
                    let v: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
                    (self.replication).insert(id, v["status"]["replication"].clone());
                }
            }
            Some("dump") => {
                if field(line, "ok") != Some("true") {
                    let e = field(line, "error").unwrap_or("no answer").to_string();
                    self.dump = Some(Err(e));
                    return;
                }
                let dump: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
                let entries = dump["entries"].as_object().cloned().unwrap_or_default();
                self.dump = Some(Ok(entries.keys().cloned().collect()));
            }
            _ => {
                if let (false, Some((kind, e))) = (self.json, event_of(line)) {
                    if kind == "became_leader"
                        || kind.starts_with("hand_back")
                        || kind.ends_with("_started")
                    {
                        let name = (self.mode.names().iter())
                            .find(|n| n.0 == id)
                            .map_or("?", |n| n.1);
                        println!("  {:>7.3} s  {name}: {e}", self.now_ms() as f64 / 1000.0);
                    }
                }
            }
        }
    }

    /// Processes output lines until `pred` holds for one or `limit` passes.
    pub(crate) fn wait_until(
        &mut self,
        limit: Duration,
        mut pred: impl FnMut(&Self, u64, &str) -> bool,
    ) -> bool {
        let end = Instant::now() + limit;
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            let Ok((id, line)) = self.lines.1.recv_timeout(left) else {
                return false;
            };
            self.handle(id, &line);
            if let Some(tap) = self.tap.as_mut() {
                tap.push((Instant::now(), id, line.clone()));
            }
            if pred(self, id, &line) {
                return true;
            }
        }
        false
    }

    /// Runs the workload for `d`: a new call every [`Cluster::every`],
    /// tear-downs due, a status poll every 100 ms.
    pub(crate) fn run_for(&mut self, d: Duration) {
        let end = Instant::now() + d;
        let mut tick = 0u64;
        while Instant::now() < end {
            let call = self.next_call;
            self.next_call += 1;
            self.propose(call, true);
            let now = self.now_ms();
            let due: Vec<u64> = self
                .ending
                .range(..=now)
                .flat_map(|(_, v)| v.clone())
                .collect();
            self.ending.retain(|&t, _| t > now);
            for call in due {
                self.propose(call, false);
            }
            if tick % (100 / self.every.as_millis().max(1) as u64).max(1) == 0 {
                let ids: Vec<u64> = self.procs.keys().copied().collect();
                for id in ids {
                    self.send(id, "status");
                }
            }
            tick += 1;
            self.wait_until(self.every, |_, _, _| false);
            self.sample_timeline();
        }
    }

    /// Keeps the workload running for up to 3 s while nobody leads (a
    /// step may end in the middle of an election).
    fn await_leader(&mut self) {
        let end = Instant::now() + Duration::from_secs(3);
        while self.leader().is_none() && Instant::now() < end {
            self.run_for(Duration::from_millis(50));
        }
    }

    pub(crate) fn leader(&self) -> Option<u64> {
        self.statuses
            .iter()
            .filter(|(id, (role, ..))| role == "leader" && self.serving(**id))
            .max_by_key(|(_, (_, term, _))| *term)
            .map(|(&id, _)| id)
    }

    /// The applied index a member last reported.
    pub(crate) fn applied(&self, id: u64) -> Option<u64> {
        self.statuses.get(&id).map(|s| s.2)
    }

    pub(crate) fn term(&self) -> u64 {
        self.leader().map_or(0, |l| self.statuses[&l].1)
    }

    pub(crate) fn first_ack_after(&self, t_ms: u64, term: u64) -> Option<u64> {
        self.acks
            .iter()
            .filter(|(t, tm)| *t >= t_ms && *tm > term)
            .map(|(t, _)| t - t_ms)
            .min()
    }

    /// The replicated keys as of now, read after a linearizable read point
    /// (so a member that is behind cannot make acknowledged calls look
    /// lost), asked of the leader first, then of the other live members.
    fn linearizable_dump(&mut self, leader: Option<u64>) -> Result<BTreeSet<String>, String> {
        let mut ask: Vec<u64> = leader.into_iter().collect();
        ask.extend(self.procs.keys().filter(|&&id| Some(id) != leader));
        let mut why = Vec::new();
        for id in ask {
            if self.procs.get(&id).is_none_or(|p| p.stopped) {
                continue;
            }
            self.dump = None;
            self.send(id, "dump");
            self.wait_until(Duration::from_secs(3), |c, _, _| c.dump.is_some());
            match self.dump.take() {
                Some(Ok(keys)) => return Ok(keys),
                Some(Err(e)) => why.push(format!("n{id}: {e}")),
                None => why.push(format!("n{id}: no answer in 3 s")),
            }
        }
        Err(why.join("; "))
    }

    /// Prints the step's line; returns the committed entries found lost
    /// (all of them when no member could give a read point).
    fn report(
        &mut self,
        step: &str,
        takeover_ms: Option<u64>,
        before: &BTreeSet<u64>,
        extra: &[(&str, String)],
    ) -> usize {
        // Every operation sent to a running member is answered first (no
        // new ones go out meanwhile), so each call's state is known: a
        // tear-down applied but not yet acknowledged would otherwise look
        // like a lost call. What stays unanswered is in doubt, not counted.
        let settled = |c: &Self| c.sent.values().all(|op| !c.serving(op.at));
        if !settled(self) {
            self.wait_until(Duration::from_secs(3), |c, _, _| settled(c));
        }
        let in_doubt: BTreeSet<u64> = self.sent.values().map(|op| op.call).collect();
        let leader = self.leader();
        let keys = self.linearizable_dump(leader);
        let has = |call: &u64| {
            keys.as_ref()
                .is_ok_and(|k| k.contains(&format!("call-{call}")))
        };
        let known = |c: &&u64| !in_doubt.contains(c);
        let wanted: Vec<u64> = before
            .intersection(&self.up)
            .filter(known)
            .copied()
            .collect();
        let preserved = wanted.iter().filter(|c| has(c)).count();
        let lost = self.up.iter().filter(known).filter(|c| !has(c)).count()
            + self.down.iter().filter(known).filter(|c| has(c)).count();
        if let Err(e) = &keys {
            eprintln!("{step}: no member gave a linearizable read point: {e}");
        }
        let (site, node) = leader
            .and_then(|l| self.mode.names().iter().find(|n| n.0 == l))
            .map_or(("none", "none"), |n| (n.2, n.1));
        let mut line = format!(
            "{{\"step\":\"{step}\",\"t_ms\":{},\"leader_site\":\"{site}\",\"leader_node\":\"{node}\",\"takeover_ms\":{},\"calls_active\":{},\"calls_preserved\":{preserved},\"calls_dropped\":{},\"committed_lost\":{lost},\"calls_in_doubt\":{}",
            self.now_ms(),
            takeover_ms.map_or("null".into(), |t| t.to_string()),
            keys.as_ref().map_or(0, BTreeSet::len),
            wanted.len() - preserved,
            in_doubt.len(),
        );
        for (k, v) in extra {
            line.push_str(&format!(",\"{k}\":{v}"));
        }
        line.push('}');
        if self.json {
            println!("{line}");
        } else {
            println!(
                "== {step}: leader {node} ({site}), takeover {}, calls active {}, preserved {preserved}, dropped {}, committed lost {lost}, in doubt {}{}",
                takeover_ms.map_or("-".into(), |t| format!("{t} ms")),
                keys.as_ref().map_or(0, BTreeSet::len),
                wanted.len() - preserved,
                in_doubt.len(),
                extra.iter().map(|(k, v)| format!(", {k} {v}")).collect::<String>()
            );
        }
        lost
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for p in self.procs.values_mut() {
            // Every member, whatever `stopped` says (a stop signal may have
            // been sent without the flag being set): a stopped process would
            // never see its end of input.
            if matches!(p.child.try_wait(), Ok(None)) {
                let _ = Command::new("kill")
                    .arg("-CONT")
                    .arg(p.child.id().to_string())
                    .status();
            }
            p.stdin = None; // end of input: the member shuts down
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        for p in self.procs.values_mut() {
            while Instant::now() < deadline && matches!(p.child.try_wait(), Ok(None)) {
                thread::sleep(Duration::from_millis(20));
            }
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
        if self.keep {
            eprintln!("logs, data and certificates kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The `--wan` default of `mode`: DR auto-sync has two sites only.
pub(crate) fn default_wan(mode: Mode) -> &'static str {
    match mode {
        Mode::Witness => DEFAULT_WAN,
        Mode::DrAutoSync => "denver-paris=80",
    }
}

/// Reads `--mode`: `witness` (the default) or `dr-auto-sync`.
pub(crate) fn parse_mode(mode: Option<&str>) -> Result<Mode, String> {
    match mode {
        None | Some("witness") => Ok(Mode::Witness),
        Some("dr-auto-sync") => Ok(Mode::DrAutoSync),
        Some(other) => Err(format!(
            "--mode {other:?}: node cluster runs witness (the default) or dr-auto-sync"
        )),
    }
}

/// Runs the scenario; `json` prints one object per step, `keep` leaves the
/// members' logs and data directories behind, `wan` is the `--wan` value
/// (see [`parse_wan`]), `svg` where to draw the run's timeline (witness
/// mode only), `mode` which story runs (see `dr_cluster.rs` for DR
/// auto-sync's).
pub(crate) fn run(
    json: bool,
    keep: bool,
    wan: &str,
    svg: Option<&str>,
    mode: Mode,
) -> Result<(), String> {
    let wan = parse_wan(wan)?;
    if mode == Mode::DrAutoSync {
        return dr_cluster::run(json, keep, &wan, svg);
    }
    // Five processes (debug builds under `cargo test`) on a shared 2-core
    // machine stall for tens of milliseconds now and then; with the 30 ms
    // default a stalled primary loses its lead to its standby before the
    // story starts. The story runs with a 100 ms failover detection; `node
    // bench` measures the default timers.
    let mut c = Cluster::start(json, &wan_timers(&wan, "failover_ms = 100"), &wan)?;
    c.keep = keep;
    if svg.is_some() {
        c.timeline = Some(timeline::Picture::new()?);
        c.tap = Some(Vec::new());
    }
    if !json {
        println!(
            "Denver/Paris cluster: five processes on 127.0.0.1, mutual TLS, the WAN through a relay ({}), data and certificates in {}",
            wan.iter().map(|(a, b, d)| format!("{a}>{b} {} ms", d.as_millis())).collect::<Vec<_>>().join(", "),
            c.dir.display()
        );
    }
    let mut ok = true;
    ok &= normal(&mut c);
    let killed = duplication_failover(&mut c, &mut ok);
    ok &= primary_restarted(&mut c, killed)?;
    ok &= wan_partition(&mut c);
    ok &= hand_back(&mut c);
    if let Some(path) = svg {
        c.write_timeline(path)?;
    }
    if ok {
        return Ok(());
    }
    dump_logs(&c);
    Err("a step did not behave as designed (member logs above)".into())
}

/// Whether `l` is one of Denver's pair.
fn in_denver(l: Option<u64>) -> bool {
    l.is_some_and(|l| l == 1 || l == 2)
}

/// normal: Denver's pair leads (CM01a, unless a stall on this machine
/// already moved leadership to its standby).
fn normal(c: &mut Cluster) -> bool {
    c.run_for(Duration::from_secs(3));
    c.await_leader();
    let mut ok = in_denver(c.leader());
    ok &= c.report("normal", None, &BTreeSet::new(), &[]) == 0;
    ok
}

/// duplication_failover: the leader's process is killed with SIGKILL.
/// Returns the member killed (`ok` records whether the step behaved).
fn duplication_failover(c: &mut Cluster, ok: &mut bool) -> u64 {
    let (killed, partner) = if c.leader() == Some(2) {
        (2, 1)
    } else {
        (1, 2)
    };
    let before = c.up.clone();
    let (t0, term) = (c.now_ms(), c.term());
    c.kill9(killed);
    c.timeline_fault("kill -9", &[killed]);
    c.run_for(Duration::from_secs(2));
    c.await_leader();
    let takeover = c.first_ack_after(t0, term);
    *ok &= c.leader() == Some(partner);
    *ok &= c.report("duplication_failover", takeover, &before, &[]) == 0;
    killed
}

/// primary_restarted: the `killed` member comes back from its data
/// directory.
fn primary_restarted(c: &mut Cluster, killed: u64) -> Result<bool, String> {
    let before = c.up.clone();
    let t0 = c.now_ms();
    c.spawn(killed)?;
    c.timeline_fault("restart", &[killed]);
    let mut caught_up = None;
    for _ in 0..100 {
        c.run_for(Duration::from_millis(100));
        let leader_applied = c.leader().map_or(u64::MAX, |l| c.statuses[&l].2);
        if c.statuses
            .get(&killed)
            .is_some_and(|s| s.2 + 5 >= leader_applied)
        {
            caught_up = Some(c.now_ms() - t0);
            break;
        }
    }
    let mut ok = caught_up.is_some();
    c.await_leader();
    ok &= in_denver(c.leader());
    let caught = (
        "caught_up_ms",
        caught_up.map_or("null".into(), |t| t.to_string()),
    );
    ok &= c.report("primary_restarted", None, &before, &[caught]) == 0;
    Ok(ok)
}

/// wan_partition: the WAN cuts Denver off (both ways, from Paris and from
/// Kansas) at the relay: connections stay open, bytes sent across are held.
fn wan_partition(c: &mut Cluster) -> bool {
    let before = c.up.clone();
    let (t0, term) = (c.now_ms(), c.term());
    c.relay.cut_both("denver", "paris");
    c.relay.cut_both("denver", "kansas");
    c.isolated.insert("denver");
    c.timeline_fault("cut denver | paris, kansas", &[]);
    c.run_for(Duration::from_millis(SURVIVABLE_AFTER_MS + 2_000));
    c.await_leader();
    let takeover = c.first_ack_after(t0, term);
    let mut ok = c.leader().is_some_and(|l| l == 3 || l == 4);
    ok &= c.report("wan_partition", takeover, &before, &[]) == 0;
    ok
}

/// hand_back: the WAN heals (held bytes are delivered); control goes home
/// once stable.
fn hand_back(c: &mut Cluster) -> bool {
    let before = c.up.clone();
    let (t0, term, failed) = (c.now_ms(), c.term(), c.failed);
    c.relay.heal_all();
    c.isolated.clear();
    c.timeline_fault("heal", &[]);
    // Home once Denver has been in contact for STABLE_MS; a disturbance on
    // the way (a stalled leader replaced by its standby) starts that wait
    // again, so allow a few of them, then watch writes for a while.
    c.run_for(Duration::from_millis(STABLE_MS));
    let home = |c: &Cluster| c.leader().is_some_and(|l| l == 1 || l == 2);
    while !home(c) && c.now_ms() < t0 + 3 * STABLE_MS + 3_000 {
        c.run_for(Duration::from_millis(100));
    }
    let home_ms = home(c).then(|| c.now_ms() - t0);
    c.run_for(Duration::from_millis(2_000));
    c.await_leader();
    let takeover = c.first_ack_after(t0 + STABLE_MS, term);
    let mut times: Vec<u64> = c
        .acks
        .iter()
        .map(|a| a.0)
        .filter(|&t| t >= t0 + STABLE_MS)
        .collect();
    times.sort_unstable();
    let outage = times.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
    let ok = c.leader().is_some_and(|l| l == 1 || l == 2) && c.failed == failed;
    let extra = [
        ("home_ms", home_ms.map_or("null".into(), |t| t.to_string())),
        ("write_outage_ms", outage.to_string()),
        ("failed_proposals", (c.failed - failed).to_string()),
    ];
    ok & (c.report("hand_back", takeover, &before, &extra) == 0)
}

/// Prints each member's warnings and the tail of its log (on stderr).
fn dump_logs(c: &Cluster) {
    for &(id, name, ..) in c.mode.names() {
        let log = std::fs::read_to_string(c.dir.join(format!("n{id}.log"))).unwrap_or_default();
        let warnings: Vec<&str> = log
            .lines()
            .filter(|l| l.contains(" WARN ") || l.contains(" CRIT "))
            .collect();
        eprintln!("--- {name}: {} warning(s)", warnings.len());
        for l in warnings.iter().rev().take(20).rev() {
            eprintln!("{l}");
        }
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        eprintln!("--- {name} (last {} log lines)", tail.len());
        for l in tail.iter().rev() {
            eprintln!("{l}");
        }
    }
}
