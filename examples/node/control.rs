//! `node run`: one member, driven by commands on stdin, answering with JSON
//! lines on stdout.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use parking_lot::Mutex;
use survivable_core::node::Status;
use survivable_core::runtime::{start_member, Handle, Pending};
use survivable_core::sim::KvStore;
use survivable_core::{RestoreError, StateMachine};

use crate::config;

/// The replicated key-value state, readable by the control loop, and how
/// many times each command was applied: a command applied twice is a
/// double apply whatever it did to the map (a second `set` of the same
/// value changes nothing), so the count is kept beside the map, and in the
/// snapshot so a member restored from one keeps counting.
#[derive(Clone, Default)]
struct SharedKv(Arc<Mutex<Audited>>);

#[derive(Default)]
struct Audited {
    kv: KvStore,
    applies: BTreeMap<Vec<u8>, u32>,
}

impl Audited {
    /// Commands applied more than once, and a digest of the map and the
    /// counts (equal on members that applied the same commands).
    fn audit(&self) -> (Vec<String>, u64) {
        let dups = self
            .applies
            .iter()
            .filter(|(_, &n)| n > 1)
            .map(|(c, n)| format!("{} x{n}", String::from_utf8_lossy(c)))
            .collect();
        // FNV-1a over the entries and counts, in their (sorted) order.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut eat = |bytes: &[u8]| {
            for b in bytes.iter().chain([&0xff]) {
                h = (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
            }
        };
        for (k, v) in &self.kv.map {
            eat(k.as_bytes());
            eat(v.as_bytes());
        }
        for (c, n) in &self.applies {
            eat(c);
            eat(&n.to_le_bytes());
        }
        (dups, h)
    }
}

impl StateMachine for SharedKv {
    fn apply(&mut self, index: u64, command: &[u8]) -> Vec<u8> {
        let mut a = self.0.lock();
        *a.applies.entry(command.to_vec()).or_default() += 1;
        a.kv.apply(index, command)
    }
    fn snapshot(&self) -> Vec<u8> {
        let a = self.0.lock();
        let mut out = Vec::new();
        let mut push = |b: &[u8]| {
            out.extend_from_slice(&(b.len() as u32).to_le_bytes());
            out.extend_from_slice(b);
        };
        push(&a.kv.snapshot());
        for (c, n) in &a.applies {
            push(c);
            push(&n.to_le_bytes());
        }
        out
    }
    fn restore(&mut self, snapshot: &[u8]) -> Result<(), RestoreError> {
        let bad = |what: &str| RestoreError {
            reason: format!("node example snapshot: {what}"),
        };
        let mut rest = snapshot;
        let mut take = || -> Result<Option<&[u8]>, RestoreError> {
            if rest.is_empty() {
                return Ok(None);
            }
            let (len, tail) = rest
                .split_at_checked(4)
                .ok_or_else(|| bad("truncated length"))?;
            let len = u32::from_le_bytes(len.try_into().map_err(|_| bad("length"))?) as usize;
            let (item, tail) = tail
                .split_at_checked(len)
                .ok_or_else(|| bad("truncated item"))?;
            rest = tail;
            Ok(Some(item))
        };
        let mut kv = KvStore::default();
        kv.restore(take()?.ok_or_else(|| bad("empty"))?)?;
        let mut applies = BTreeMap::new();
        while let Some(c) = take()? {
            let n = take()?.ok_or_else(|| bad("a command without its count"))?;
            let n = u32::from_le_bytes(n.try_into().map_err(|_| bad("count is not 4 bytes"))?);
            applies.insert(c.to_vec(), n);
        }
        *self.0.lock() = Audited { kv, applies };
        Ok(())
    }
}

/// Logs to stderr, one line per record, with its key-value pairs and the
/// time in milliseconds since the UNIX epoch.
struct Stderr;

struct Line(String);

impl slog::Serializer for Line {
    fn emit_arguments(&mut self, key: slog::Key, val: &std::fmt::Arguments<'_>) -> slog::Result {
        self.0.push_str(&format!(" {key}={val}"));
        Ok(())
    }
}

impl slog::Drain for Stderr {
    type Ok = ();
    type Err = slog::Never;
    fn log(&self, r: &slog::Record<'_>, kv: &slog::OwnedKVList) -> Result<(), slog::Never> {
        use slog::KV as _;
        if r.level().is_at_least(slog::Level::Info) {
            let ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis());
            let mut line = Line(format!("{ms} {} {}", r.level().as_short_str(), r.msg()));
            let _ = r.kv().serialize(r, &mut line);
            let _ = kv.serialize(r, &mut line);
            eprintln!("{}", line.0);
        }
        Ok(())
    }
}

fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

type Out = Arc<Mutex<std::io::Stdout>>;

fn say(out: &Out, line: &str) {
    let mut o = out.lock();
    let _ = writeln!(o, "{line}");
    let _ = o.flush();
}

/// The status line; `refused`: envelopes the node refused so far.
fn status_json(s: &Status, refused: u64) -> String {
    let peers: Vec<String> = s
        .peers
        .iter()
        .map(|p| {
            format!(
                "{{\"id\":{},\"lag\":{},\"reachable\":{}}}",
                p.id.0, p.lag, p.reachable
            )
        })
        .collect();
    format!(
        "{{\"reply\":\"status\",\"id\":{},\"site\":{},\"role\":{},\"leader\":{},\"epoch\":{},\"term\":{},\"commit\":{},\"applied\":{},\"refused\":{refused},\"peers\":[{}]}}",
        s.id.0,
        quote(&s.site),
        quote(&format!("{:?}", s.role)),
        s.leader.map_or("null".into(), |l| l.0.to_string()),
        quote(&s.epoch.to_string()),
        s.term,
        s.commit,
        s.applied,
        peers.join(",")
    )
}

/// Proposals made and not yet answered, each with its tag.
type Waiting = Arc<Mutex<Vec<(String, Pending)>>>;

/// Runs the member of `path` until stdin ends.
pub(crate) fn run(path: &str) -> Result<(), String> {
    let cfg = config::load(path)?;
    let logger = slog::Logger::root(slog::Fuse(Stderr), slog::o!());
    let kv = SharedKv::default();
    let member = start_member(cfg, kv.clone(), &logger).map_err(|e| e.to_string())?;
    let handle = Arc::new(member.handle);
    let out: Out = Arc::new(Mutex::new(std::io::stdout()));
    forward_events(&handle, &out);
    let waiting = await_proposals(&out);

    say(
        &out,
        &format!(
            "{{\"ready\":true,\"listen\":{}}}",
            quote(&member.local_addr.to_string())
        ),
    );
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        answer(&line, &handle, &kv, &out, &waiting);
    }
    handle.shutdown();
    Ok(())
}

/// Prints every event of the member, one JSON line each, on a thread of
/// its own.
fn forward_events(handle: &Handle, out: &Out) {
    let events = handle.events();
    let o = out.clone();
    thread::spawn(move || {
        for e in events {
            say(&o, &format!("{{\"event\":{}}}", quote(&format!("{e:?}"))));
        }
    });
}

/// Waits for proposal results without a thread per proposal: one thread
/// answers each proposal put on the returned list once its result is in.
fn await_proposals(out: &Out) -> Waiting {
    let waiting: Waiting = Arc::default();
    let (w, o) = (waiting.clone(), out.clone());
    thread::spawn(move || loop {
        let done: Vec<(String, _)> = {
            let mut list = w.lock();
            let mut done = Vec::new();
            list.retain(|(tag, p)| match p.try_result() {
                Some(r) => {
                    done.push((tag.clone(), r));
                    false
                }
                None => true,
            });
            done
        };
        for (tag, r) in done {
            let line = match r {
                Ok(a) => format!(
                    "{{\"reply\":\"propose\",\"tag\":{},\"ok\":true,\"index\":{},\"term\":{}}}",
                    quote(&tag),
                    a.index,
                    a.term
                ),
                Err(e) => format!(
                    "{{\"reply\":\"propose\",\"tag\":{},\"ok\":false,\"error\":{}}}",
                    quote(&tag),
                    quote(&e.to_string())
                ),
            };
            say(&o, &line);
        }
        thread::sleep(Duration::from_millis(1));
    });
    waiting
}

/// `get <tag> <key>` (the key's value) and `audit [list]` (commands applied
/// more than once, a digest of the state, with `list` every command applied) after a linearizable read point,
/// on a thread of their own so other commands are not held up meanwhile.
fn read_then(word: &str, rest: &str, handle: &Arc<Handle>, kv: &SharedKv, out: &Out) {
    let (word, rest) = (word.to_string(), rest.to_string());
    let (handle, kv, out) = (handle.clone(), kv.clone(), out.clone());
    thread::spawn(move || {
        let read = handle.read(Duration::from_secs(2));
        let line = if word == "get" {
            let (tag, key) = rest.split_once(' ').unwrap_or((&rest, ""));
            match read {
                Ok(_) => {
                    let value = kv.0.lock().kv.map.get(key.trim()).map(|v| quote(v));
                    format!(
                        "{{\"reply\":\"get\",\"tag\":{},\"ok\":true,\"value\":{}}}",
                        quote(tag),
                        value.unwrap_or_else(|| "null".into())
                    )
                }
                Err(e) => format!(
                    "{{\"reply\":\"get\",\"tag\":{},\"ok\":false,\"error\":{}}}",
                    quote(tag),
                    quote(&e.to_string())
                ),
            }
        } else {
            match read {
                Ok(applied) => {
                    let a = kv.0.lock();
                    let (dups, digest) = a.audit();
                    let dups: Vec<String> = dups.iter().map(|d| quote(d)).collect();
                    let list: Vec<String> = if rest.trim() == "list" {
                        a.applies
                            .keys()
                            .map(|c| quote(&String::from_utf8_lossy(c)))
                            .collect()
                    } else {
                        Vec::new()
                    };
                    format!(
                        "{{\"reply\":\"audit\",\"ok\":true,\"applied\":{applied},\"commands\":{},\"digest\":\"{digest:016x}\",\"dups\":[{}],\"list\":[{}]}}",
                        a.applies.len(),
                        dups.join(","),
                        list.join(",")
                    )
                }
                Err(e) => format!(
                    "{{\"reply\":\"audit\",\"ok\":false,\"error\":{}}}",
                    quote(&e.to_string())
                ),
            }
        };
        say(&out, &line);
    });
}

/// Answers one command line read from stdin.
fn answer(line: &str, handle: &Arc<Handle>, kv: &SharedKv, out: &Out, waiting: &Waiting) {
    let (word, rest) = line.trim().split_once(' ').unwrap_or((line.trim(), ""));
    match word {
        "propose" => {
            let (tag, command) = rest.split_once(' ').unwrap_or((rest, ""));
            match handle.propose_async(command.as_bytes().to_vec()) {
                Ok(p) => waiting.lock().push((tag.to_string(), p)),
                Err(e) => say(
                    out,
                    &format!(
                        "{{\"reply\":\"propose\",\"tag\":{},\"ok\":false,\"error\":{}}}",
                        quote(tag),
                        quote(&e.to_string())
                    ),
                ),
            }
        }
        "status" => {
            let refused = handle.counters().rejected();
            say(out, &status_json(&handle.status(), refused));
        }
        "dump" => {
            // A linearizable read point first: the keys then include
            // every write acknowledged anywhere before the command.
            let line = match handle.read(Duration::from_secs(2)) {
                Ok(applied) => {
                    let keys: Vec<String> = kv.0.lock().kv.map.keys().map(|k| quote(k)).collect();
                    format!(
                        "{{\"reply\":\"dump\",\"ok\":true,\"applied\":{applied},\"keys\":[{}]}}",
                        keys.join(",")
                    )
                }
                Err(e) => format!(
                    "{{\"reply\":\"dump\",\"ok\":false,\"error\":{}}}",
                    quote(&e.to_string())
                ),
            };
            say(out, &line);
        }
        "get" | "audit" => read_then(word, rest, handle, kv, out),
        "hand-back" => {
            let r = handle.hand_back().map_err(|e| e.to_string());
            say(
                out,
                &format!(
                    "{{\"reply\":\"hand-back\",\"ok\":{},\"error\":{}}}",
                    r.is_ok(),
                    quote(&r.err().unwrap_or_default())
                ),
            );
        }
        "" => {}
        other => say(
            out,
            &format!(
                "{{\"reply\":\"error\",\"error\":{}}}",
                quote(&format!("unknown command {other}"))
            ),
        ),
    }
}
