//! `node jepsen`: five real members over the relay with uneven WAN
//! latencies, clients at every member writing and reading registers, and a
//! random nemesis (both-way and one-way WAN cuts, a site cut off, connection
//! resets, kill -9 and restart, SIGSTOP pauses). At the end every fault is
//! healed and the run is judged: the clients' history must be linearizable
//! (`survivable_core::sim::linearizability`), every acknowledged write
//! applied exactly once and nothing applied that no client wrote, on every
//! member (counted per command by the member, not read back from the
//! map), and the members identical.
//!
//! The schedule follows from the seed alone, and is printed with it:
//! `node jepsen --seed N` replays it (the processes' timing differs between
//! runs, so a replay repeats the faults, not every interleaving).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::{Duration, Instant};

use survivable_core::sim::linearizability::{CheckError, History, Op, OpId, OpResult};

use crate::launcher::{field, parse_wan, site_of, Cluster, DEFAULT_WAN, NAMES};

/// Registers the clients use: few, so reads see other clients' writes.
const KEYS: u64 = 5;
/// Clients per member.
const CLIENTS_PER_MEMBER: u64 = 2;
/// A client gives up on an operation after this long (its outcome is then
/// unknown) and continues as a new client, as Jepsen's processes do.
const OP_TIMEOUT: Duration = Duration::from_secs(3);

/// splitmix64: the schedule and the workload from the seed alone.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// In `lo..hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo).max(1)
    }
    fn pick<T: Copy>(&mut self, of: &[T]) -> T {
        of[self.next() as usize % of.len()]
    }
}

const SITES: [&str; 3] = ["denver", "paris", "kansas"];

/// One fault of the nemesis.
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// Both directions between two sites cut.
    Cut(&'static str, &'static str),
    /// One direction cut.
    OneWay(&'static str, &'static str),
    /// A site cut off from both others.
    Isolate(&'static str),
    /// Every connection between two sites reset (instantaneous).
    Reset(&'static str, &'static str),
    /// A member killed with SIGKILL, restarted from its data at the end.
    Kill(u64),
    /// A member stopped with SIGSTOP, resumed at the end.
    Pause(u64),
}

pub(crate) fn name(id: u64) -> &'static str {
    NAMES.iter().find(|n| n.0 == id).map_or("?", |n| n.1)
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Cut(a, b) => write!(f, "cut {a}<->{b}"),
            Self::OneWay(a, b) => write!(f, "cut {a}->{b}"),
            Self::Isolate(s) => write!(f, "isolate {s}"),
            Self::Reset(a, b) => write!(f, "reset {a}<->{b}"),
            Self::Kill(id) => write!(f, "kill -9 {}", name(id)),
            Self::Pause(id) => write!(f, "pause {}", name(id)),
        }
    }
}

/// Faults inflicted together at `at_ms` after the start, held for
/// `hold_ms`.
struct Planned {
    at_ms: u64,
    faults: Vec<Fault>,
    hold_ms: u64,
}

impl Planned {
    fn describe(&self) -> String {
        let names: Vec<String> = self.faults.iter().map(ToString::to_string).collect();
        names.join(" + ")
    }
}

/// The nemesis's schedule over `secs`, from 2 s in (the cluster elects
/// first): a fault held 1-5 s, 1-3 s of calm between; one time in three a
/// network fault comes with a member killed or paused at the same time.
fn schedule(rng: &mut Rng, secs: u64) -> Vec<Planned> {
    let mut out = Vec::new();
    let mut t = 2_000;
    while t < secs * 1_000 {
        let (a, b) = {
            let a = rng.pick(&SITES);
            let others: Vec<&str> = SITES.iter().copied().filter(|s| *s != a).collect();
            (a, rng.pick(&others))
        };
        let member = rng.range(1, 6);
        let process = if rng.next() % 2 == 0 {
            Fault::Kill(member)
        } else {
            Fault::Pause(member)
        };
        let mut faults = vec![match rng.range(0, 6) {
            0 => Fault::Cut(a, b),
            1 => Fault::OneWay(a, b),
            2 => Fault::Isolate(a),
            3 => Fault::Reset(a, b),
            _ => process,
        }];
        let network = !matches!(faults[0], Fault::Kill(_) | Fault::Pause(_));
        if network && !matches!(faults[0], Fault::Reset(..)) && rng.next() % 3 == 0 {
            faults.push(process);
        }
        let hold_ms = if matches!(faults[..], [Fault::Reset(..)]) {
            0
        } else {
            rng.range(1_000, 5_000)
        };
        out.push(Planned {
            at_ms: t,
            faults,
            hold_ms,
        });
        t += hold_ms + rng.range(1_000, 3_000);
    }
    out
}

fn inflict(c: &mut Cluster, fault: Fault) {
    match fault {
        Fault::Cut(a, b) => c.relay.cut_both(a, b),
        Fault::OneWay(a, b) => c.relay.cut(a, b),
        Fault::Isolate(s) => SITES
            .iter()
            .filter(|o| **o != s)
            .for_each(|o| c.relay.cut_both(s, o)),
        Fault::Reset(a, b) => {
            c.relay.reset(a, b);
        }
        Fault::Kill(id) => c.kill9(id),
        Fault::Pause(id) => c.signal(id, "-STOP"),
    }
}

fn heal(c: &mut Cluster, fault: Fault) -> Result<(), String> {
    match fault {
        Fault::Cut(..) | Fault::OneWay(..) | Fault::Isolate(_) | Fault::Reset(..) => {
            c.relay.heal_all();
            Ok(())
        }
        Fault::Kill(id) => c.spawn(id),
        Fault::Pause(id) => {
            c.signal(id, "-CONT");
            Ok(())
        }
    }
}

/// An operation a client is waiting on.
struct InFlight {
    tag: String,
    op: OpId,
    /// The value, for a write.
    write: Option<String>,
    sent: Instant,
}

struct Client {
    /// Its id in the history (a new one after each unknown outcome).
    id: u64,
    member: u64,
    waiting: Option<InFlight>,
    next_at: Instant,
}

/// The clients, their history and what was acknowledged.
struct Workload {
    t0: Instant,
    rng: Rng,
    history: History,
    clients: Vec<Client>,
    next_client: u64,
    next_tag: u64,
    /// Values written (every one unique), acknowledged or not.
    invoked: BTreeSet<String>,
    /// The command of every acknowledged write.
    acked: BTreeSet<String>,
    /// Acknowledged late (after its client gave up): present all the same.
    late_acks: u64,
    reads_ok: u64,
}

impl Workload {
    fn new(seed: u64) -> Self {
        let t0 = Instant::now();
        let mut clients = Vec::new();
        for (member, ..) in NAMES {
            for _ in 0..CLIENTS_PER_MEMBER {
                let id = clients.len() as u64;
                clients.push(Client {
                    id,
                    member,
                    waiting: None,
                    next_at: t0,
                });
            }
        }
        Self {
            t0,
            rng: Rng(seed ^ 0x5eed),
            history: History::new(),
            next_client: clients.len() as u64,
            clients,
            next_tag: 0,
            invoked: BTreeSet::new(),
            acked: BTreeSet::new(),
            late_acks: 0,
            reads_ok: 0,
        }
    }

    fn us(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.t0).as_micros() as u64
    }

    /// Idle clients whose pause is over invoke their next operation.
    fn issue(&mut self, c: &mut Cluster) {
        let now = Instant::now();
        for i in 0..self.clients.len() {
            let cl = &self.clients[i];
            if cl.waiting.is_some() || cl.next_at > now {
                continue;
            }
            let (member, id) = (cl.member, cl.id);
            let key = format!("r{}", self.rng.range(0, KEYS));
            let tag = format!("j{}", self.next_tag);
            self.next_tag += 1;
            let (op, write, line) = if self.rng.next() % 2 == 0 {
                let value = format!("c{id}-{tag}");
                let line = format!("propose {tag} set {key} {value}");
                self.invoked.insert(value.clone());
                (
                    Op::Write {
                        key,
                        value: value.clone(),
                    },
                    Some(value),
                    line,
                )
            } else {
                let line = format!("get {tag} {key}");
                (Op::Read { key }, None, line)
            };
            let op = self.history.invoke(id, op, self.us(now));
            c.send(member, &line);
            self.clients[i].waiting = Some(InFlight {
                tag,
                op,
                write,
                sent: now,
            });
        }
    }

    /// A client's operation ended without a known outcome: it continues as
    /// a new client (its old one may still take effect).
    fn give_up(&mut self, i: usize, at: Instant) {
        if let Some(w) = self.clients[i].waiting.take() {
            self.history.fail(w.op, self.us(at));
        }
        self.clients[i].id = self.next_client;
        self.next_client += 1;
    }

    /// Operations past their timeout, or at a member that died, give up.
    fn expire(&mut self, c: &Cluster) {
        let now = Instant::now();
        for i in 0..self.clients.len() {
            let cl = &self.clients[i];
            let dead = !c.runs(cl.member);
            if cl
                .waiting
                .as_ref()
                .is_some_and(|w| dead || now - w.sent > OP_TIMEOUT)
            {
                self.give_up(i, now);
            }
        }
    }

    fn on_line(&mut self, at: Instant, member: u64, line: &str) {
        let reply = field(line, "reply");
        if !matches!(reply, Some("propose" | "get")) {
            return;
        }
        let Some(tag) = field(line, "tag") else {
            return;
        };
        let ok = field(line, "ok") == Some("true");
        let Some(i) = self
            .clients
            .iter()
            .position(|c| c.member == member && c.waiting.as_ref().is_some_and(|w| w.tag == tag))
        else {
            // A reply after its client gave up: an acknowledged write
            // must be present all the same.
            if ok && reply == Some("propose") {
                if let Some(cmd) = self.late_write(tag) {
                    self.acked.insert(cmd);
                    self.late_acks += 1;
                }
            }
            return;
        };
        let w = self.clients[i].waiting.take().expect("found waiting");
        let us = self.us(at);
        self.clients[i].next_at = at + Duration::from_millis(self.rng.range(0, 40));
        match (ok, &w.write) {
            (true, Some(value)) => {
                self.history.complete(w.op, OpResult::Written, us);
                let key = self.history.entries()[op_index(&self.history, w.op)]
                    .op
                    .key();
                self.acked.insert(format!("set {key} {value}"));
            }
            (true, None) => {
                let value = field(line, "value").filter(|v| *v != "null");
                self.history
                    .complete(w.op, OpResult::Read(value.map(str::to_string)), us);
                self.reads_ok += 1;
            }
            (false, _) => {
                self.clients[i].waiting = Some(w);
                self.give_up(i, at);
            }
        }
    }

    /// The command of the write tagged `tag`, from the history.
    fn late_write(&self, tag: &str) -> Option<String> {
        self.history.entries().iter().find_map(|e| match &e.op {
            Op::Write { key, value } if value.ends_with(&format!("-{tag}")) => {
                Some(format!("set {key} {value}"))
            }
            _ => None,
        })
    }
}

fn op_index(h: &History, op: OpId) -> usize {
    h.entries().iter().position(|e| e.id == op).unwrap_or(0)
}

/// Options of `node jepsen`.
pub(crate) struct Options {
    pub(crate) seed: u64,
    pub(crate) secs: u64,
    pub(crate) wan: String,
    pub(crate) keep: bool,
}

impl Options {
    pub(crate) fn parse(args: &[String]) -> Result<Self, String> {
        let usage = "usage: node jepsen [--seed N] [--secs S] [--wan SPEC] [--keep]";
        let mut o = Self {
            seed: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64),
            secs: 60,
            wan: DEFAULT_WAN.to_string(),
            keep: false,
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut value = || {
                it.next()
                    .cloned()
                    .ok_or_else(|| format!("{a} needs a value; {usage}"))
            };
            let num = |v: String| {
                v.parse::<u64>()
                    .map_err(|_| format!("{a} {v:?}: not a number; {usage}"))
            };
            match a.as_str() {
                "--seed" => o.seed = num(value()?)?,
                "--secs" => o.secs = num(value()?)?,
                "--wan" => o.wan = value()?,
                "--keep" => o.keep = true,
                other => return Err(format!("unknown option {other}; {usage}")),
            }
        }
        Ok(o)
    }
}

/// Runs the workload until `until`, playing due faults of `plan` and
/// healing them when their hold ends.
fn play(c: &mut Cluster, w: &mut Workload, plan: &[Planned]) -> Result<(), String> {
    let mut next = 0;
    let mut active: Option<(Instant, &[Fault])> = None;
    let end = plan.last().map_or(0, |p| p.at_ms + p.hold_ms + 1_000);
    loop {
        let ms = w.t0.elapsed().as_millis() as u64;
        if let Some((until, faults)) = active {
            if Instant::now() >= until {
                for f in faults.iter().rev() {
                    heal(c, *f)?;
                }
                active = None;
            }
        }
        if active.is_none() && next < plan.len() && ms >= plan[next].at_ms {
            let p = &plan[next];
            println!(
                "{{\"nemesis\":\"{}\",\"t_ms\":{ms},\"hold_ms\":{}}}",
                p.describe(),
                p.hold_ms
            );
            for f in &p.faults {
                inflict(c, *f);
            }
            active = Some((Instant::now() + Duration::from_millis(p.hold_ms), &p.faults));
            next += 1;
        }
        if next == plan.len() && active.is_none() && ms >= end {
            return Ok(());
        }
        step(c, w, Duration::from_millis(5));
    }
}

/// One turn of the clients: issue, wait up to `d` for output, take it in.
fn step(c: &mut Cluster, w: &mut Workload, d: Duration) {
    w.issue(c);
    c.wait_until(d, |_, _, _| false);
    for (at, id, line) in c.tap.as_mut().map(std::mem::take).unwrap_or_default() {
        w.on_line(at, id, &line);
    }
    w.expire(c);
}

/// What the members' audits say, once they agree (or the last answers).
struct Audits {
    identical: bool,
    /// Per member: (digest, commands applied, commands applied twice).
    by_member: BTreeMap<u64, (String, u64, Vec<String>)>,
    /// Every command applied, from one member's full list.
    commands: BTreeSet<String>,
    /// Per member that has not answered: its last refusal, if any.
    refused: BTreeMap<u64, String>,
}

/// Asks every member to audit until all answer with the same digest
/// (they converge once the faults are healed), for up to 30 s.
fn audit(c: &mut Cluster) -> Audits {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut by_member = BTreeMap::new();
    let mut commands = BTreeSet::new();
    let mut refused = BTreeMap::new();
    loop {
        by_member.clear();
        c.tap = Some(Vec::new());
        for (id, ..) in NAMES {
            c.send(id, "audit list");
        }
        let until = Instant::now() + Duration::from_secs(3);
        while by_member.len() < NAMES.len() && Instant::now() < until {
            c.wait_until(Duration::from_millis(50), |_, _, _| false);
            for (_, id, line) in c.tap.as_mut().map(std::mem::take).unwrap_or_default() {
                if field(&line, "reply") != Some("audit") {
                    continue;
                }
                if field(&line, "ok") != Some("true") {
                    refused.insert(id, field(&line, "error").unwrap_or("").to_string());
                    continue;
                }
                let digest = field(&line, "digest").unwrap_or("").to_string();
                let n = field(&line, "commands")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                let dups = string_list(&line, "dups");
                commands = string_list(&line, "list").into_iter().collect();
                by_member.insert(id, (digest, n, dups));
            }
        }
        let digests: BTreeSet<&String> = by_member.values().map(|v| &v.0).collect();
        let identical = by_member.len() == NAMES.len() && digests.len() == 1;
        if identical || Instant::now() >= deadline {
            refused.retain(|id, _| !by_member.contains_key(id));
            return Audits {
                identical,
                by_member,
                commands,
                refused,
            };
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The strings of the JSON array `"key":[...]` in one of our lines.
fn string_list(line: &str, key: &str) -> Vec<String> {
    let Some(at) = line.find(&format!("\"{key}\":[")) else {
        return Vec::new();
    };
    let rest = &line[at + key.len() + 4..];
    let body = &rest[..rest.find(']').unwrap_or(rest.len())];
    body.split("\",\"")
        .map(|s| s.trim_matches('"').to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Runs the test; `Err` names what broke (after the verdict line).
pub(crate) fn run(o: &Options) -> Result<(), String> {
    let wan = parse_wan(&o.wan)?;
    let mut rng = Rng(o.seed);
    let plan = schedule(&mut rng, o.secs);
    println!(
        "{{\"jepsen\":\"start\",\"seed\":{},\"secs\":{},\"wan\":\"{}\",\"faults\":{},\"replay\":\"node jepsen --seed {} --secs {} (or JEPSEN_SEED={} cargo test --test jepsen)\"}}",
        o.seed, o.secs, o.wan, plan.len(), o.seed, o.secs, o.seed
    );
    for p in &plan {
        println!(
            "{{\"planned\":\"{}\",\"at_ms\":{},\"hold_ms\":{}}}",
            p.describe(),
            p.at_ms,
            p.hold_ms
        );
    }
    let mut c = Cluster::start(true, &crate::launcher::wan_timers(&wan, ""), &wan)?;
    c.keep = o.keep;
    c.tap = Some(Vec::new());
    let mut w = Workload::new(o.seed);
    play(&mut c, &mut w, &plan)?;
    // Every fault healed by `play`; the clients run on a healed cluster,
    // then stop, and what is still waiting after the timeout is unknown.
    let calm = Instant::now() + Duration::from_secs(5);
    while Instant::now() < calm {
        step(&mut c, &mut w, Duration::from_millis(5));
    }
    let drain = Instant::now() + OP_TIMEOUT;
    while w.clients.iter().any(|c| c.waiting.is_some()) && Instant::now() < drain {
        w.clients
            .iter_mut()
            .for_each(|c| c.next_at = drain + OP_TIMEOUT);
        step(&mut c, &mut w, Duration::from_millis(5));
    }
    for i in 0..w.clients.len() {
        w.give_up(i, Instant::now());
    }
    verdict(&mut c, &w, o)
}

/// Checks the history and the members, prints the verdict line.
fn verdict(c: &mut Cluster, w: &Workload, o: &Options) -> Result<(), String> {
    let audits = audit(c);
    let check = w.history.check();
    let lost: Vec<&String> = w
        .acked
        .iter()
        .filter(|a| !audits.commands.contains(*a))
        .collect();
    let dups: BTreeSet<&String> = audits.by_member.values().flat_map(|v| &v.2).collect();
    let phantom: Vec<&String> = audits
        .commands
        .iter()
        .filter(|cmd| cmd.starts_with("set r"))
        .filter(|cmd| {
            cmd.rsplit(' ')
                .next()
                .is_none_or(|v| !w.invoked.contains(v))
        })
        .collect();
    let mut broke = Vec::new();
    let linearizable = match &check {
        Ok(_) => true,
        Err(CheckError::TooComplex { key, states }) => {
            broke.push(format!(
                "the checker gave up on key {key} after {states} states"
            ));
            false
        }
        Err(e) => {
            broke.push(e.to_string());
            false
        }
    };
    if !lost.is_empty() {
        broke.push(format!(
            "{} acknowledged writes not applied, e.g. {:?}",
            lost.len(),
            lost.iter().take(5).collect::<Vec<_>>()
        ));
    }
    if !dups.is_empty() {
        broke.push(format!("commands applied more than once: {dups:?}"));
    }
    if !phantom.is_empty() {
        broke.push(format!("writes applied that no client made: {phantom:?}"));
    }
    if !audits.identical {
        broke.push(format!(
            "members differ (digest, commands, doubles): {:?}; refusals of those that did not answer: {:?}",
            audits.by_member, audits.refused
        ));
    }
    let report = check.as_ref().ok();
    println!(
        "{{\"jepsen\":\"verdict\",\"seed\":{},\"ops\":{},\"acked_writes\":{},\"late_acks\":{},\"reads_ok\":{},\"applied_commands\":{},\"checked_states\":{},\"linearizable\":{linearizable},\"lost\":{},\"duplicated\":{},\"phantom\":{},\"members_identical\":{},\"ok\":{}}}",
        o.seed,
        w.history.len(),
        w.acked.len(),
        w.late_acks,
        w.reads_ok,
        audits.commands.len(),
        report.map_or(0, |r| r.states),
        lost.len(),
        dups.len(),
        phantom.len(),
        audits.identical,
        broke.is_empty()
    );
    if broke.is_empty() {
        return Ok(());
    }
    let members: Vec<String> = NAMES
        .iter()
        .map(|n| format!("{} ({})", n.1, site_of(n.0)))
        .collect();
    Err(format!(
        "seed {} broke: {}\n(members {}; replay: node jepsen --seed {} --secs {})",
        o.seed,
        broke.join("\n"),
        members.join(", "),
        o.seed,
        o.secs
    ))
}
