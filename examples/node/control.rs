//! `node run`: one member, driven by commands on stdin, answering with JSON
//! lines on stdout.
//!
//! Commands, one per line:
//! - `propose [--timeout-ms N] <tag> <command>` (e.g. `propose 7 set call-7
//!   up`): answered `{"reply":"propose","tag":"7","ok":true,"index":..,
//!   "term":..,"epoch":{"name":"e1","number":1,"founder":0}}` once applied
//!   (`(epoch, term)` is the fencing token to hand downstream), or
//!   `{"reply":"propose","tag":"7","ok":false,"timeout":..,"error":".."}`.
//!   A proposal without a result after its timeout (`--timeout-ms`, else
//!   the default: 30 s, or as set by `timeout`) is answered with
//!   `"timeout":true`: it may still be applied.
//! - `timeout <ms>`: the default timeout of the proposals that follow.
//! - `status`: `{"reply":"status","refused":N,"status":{..},"text":".."}`,
//!   the member's `Status` in its JSON form and as one human line.
//! - `dump`: every key with its value (`"entries":{"k":"v",..}`, and
//!   `"keys":[..]`) after a linearizable read point.
//! - `get <tag> <key>`: one key's value after a read point.
//! - `audit [list]`: commands applied more than once, and a digest of the
//!   state and of each command's apply count (equal on members that
//!   applied the same commands); with `list`, every command applied.
//! - `hand-back`: hand leadership back to the most preferred member now.
//!
//! Each event is printed as it happens, as one line
//! `{"ts_ms":<unix ms>,"event":<the event's JSON>,"text":"<its human line>"}`
//! (see `Event::to_json`). Logs go to stderr: `<unix ms> <LEVEL> <message>
//! key=value ...`. End of input stops the member.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use survivable_core::error::ProposeError;
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
        for (k, v) in self.kv.map.iter() {
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

/// A JSON string.
fn quote(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// A JSON object with its keys in the order given.
fn obj(pairs: &[(&str, String)]) -> String {
    let fields: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{}:{v}", quote(k)))
        .collect();
    format!("{{{}}}", fields.join(","))
}

/// Milliseconds since the UNIX epoch.
fn unix_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

type Out = Arc<Mutex<std::io::Stdout>>;

fn say(out: &Out, line: &str) {
    let mut o = out.lock();
    let _ = writeln!(o, "{line}");
    let _ = o.flush();
}

/// The status line: the member's [`Status`] JSON, the envelopes it refused
/// so far, and the status's human line.
fn status_json(s: &Status, refused: u64) -> String {
    obj(&[
        ("reply", quote("status")),
        ("refused", refused.to_string()),
        ("status", s.to_json()),
        ("text", quote(&s.to_string())),
    ])
}

/// How long a proposal waits for its result unless told otherwise.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// A proposal made and not yet answered: its tag, its result to come, and
/// when it is given up.
struct Waiter {
    tag: String,
    pending: Pending,
    deadline: Instant,
    timeout: Duration,
}

/// Proposals made and not yet answered.
type Waiting = Arc<Mutex<Vec<Waiter>>>;

/// Runs the member of `path` until stdin ends.
pub(crate) fn run(path: &str) -> Result<(), String> {
    let cfg = config::load(path)?;
    let logger = slog::Logger::root(slog::Fuse(Stderr), slog::o!());
    let kv = SharedKv::default();
    let operator_cfg = cfg.clone();
    let member = start_member(cfg, kv.clone(), &logger).map_err(|e| e.to_string())?;
    // The endpoint of the file's [operator] table, if any (it holds a
    // clone of the handle: it is shut down first).
    let operator = survivable_core::operator::serve_member(&operator_cfg, &member.handle)
        .map_err(|e| e.to_string())?;
    let operator_addr = operator.as_ref().map(|o| o.local_addr().to_string());
    let handle = Arc::new(member.handle);
    let out: Out = Arc::new(Mutex::new(std::io::stdout()));
    forward_events(&handle, &out);
    let waiting = await_proposals(&out);

    say(
        &out,
        &obj(&[
            ("ready", "true".into()),
            ("listen", quote(&member.local_addr.to_string())),
            (
                "operator",
                operator_addr.map_or_else(|| "null".into(), |a| quote(&a)),
            ),
        ]),
    );
    let mut timeout = DEFAULT_TIMEOUT;
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        answer(&line, &handle, &kv, &out, &waiting, &mut timeout);
    }
    if let Some(o) = operator {
        o.shutdown();
    }
    handle.shutdown();
    Ok(())
}

/// Prints every event of the member, one JSON line each
/// (`{"ts_ms":..,"event":{..},"text":".."}`), on a thread of its own.
fn forward_events(handle: &Handle, out: &Out) {
    let events = handle.events();
    let o = out.clone();
    thread::spawn(move || {
        for e in events {
            let line = obj(&[
                ("ts_ms", unix_ms().to_string()),
                ("event", e.to_json()),
                ("text", quote(&e.to_string())),
            ]);
            say(&o, &line);
        }
    });
}

/// The reply to a proposal that failed (refused, or no result in time).
fn propose_failed(tag: &str, error: &ProposeError) -> String {
    obj(&[
        ("reply", quote("propose")),
        ("tag", quote(tag)),
        ("ok", "false".into()),
        (
            "timeout",
            matches!(error, ProposeError::Timeout { .. }).to_string(),
        ),
        ("error", quote(&error.to_string())),
    ])
}

/// Waits for proposal results without a thread per proposal: one thread
/// answers each proposal put on the returned list once its result is in,
/// or once its timeout passed (then it may still be applied).
fn await_proposals(out: &Out) -> Waiting {
    let waiting: Waiting = Arc::default();
    let (w, o) = (waiting.clone(), out.clone());
    thread::spawn(move || loop {
        let now = Instant::now();
        let done: Vec<(String, _)> = {
            let mut list = w.lock();
            let mut done = Vec::new();
            list.retain(|p| match p.pending.try_result() {
                Some(r) => {
                    done.push((p.tag.clone(), r));
                    false
                }
                None if now >= p.deadline => {
                    let waited = p.timeout;
                    done.push((p.tag.clone(), Err(ProposeError::Timeout { waited })));
                    false
                }
                None => true,
            });
            done
        };
        for (tag, r) in done {
            let line = match r {
                Ok(a) => obj(&[
                    ("reply", quote("propose")),
                    ("tag", quote(&tag)),
                    ("ok", "true".into()),
                    ("index", a.index.to_string()),
                    ("term", a.term.to_string()),
                    // The fencing token is (epoch, term).
                    ("epoch", serde_json::to_string(&a.epoch).unwrap_or_default()),
                ]),
                Err(e) => propose_failed(&tag, &e),
            };
            say(&o, &line);
        }
        thread::sleep(Duration::from_millis(1));
    });
    waiting
}

/// `propose [--timeout-ms N] <tag> <command>`: starts the proposal and
/// puts it on the waiting list, or answers its refusal.
fn propose(rest: &str, handle: &Handle, out: &Out, waiting: &Waiting, default: Duration) {
    let mut rest = rest.trim_start();
    let mut timeout = default;
    if let Some(after) = rest.strip_prefix("--timeout-ms") {
        let (ms, tail) = after
            .trim_start()
            .split_once(' ')
            .unwrap_or((after.trim(), ""));
        match ms.parse::<u64>() {
            Ok(ms) if ms > 0 => timeout = Duration::from_millis(ms),
            _ => {
                let error = format!(
                    "--timeout-ms takes a number of milliseconds above 0, got {ms:?}; \
                     write `propose --timeout-ms 500 <tag> <command>`"
                );
                say(
                    out,
                    &obj(&[("reply", quote("error")), ("error", quote(&error))]),
                );
                return;
            }
        }
        rest = tail.trim_start();
    }
    let (tag, command) = rest.split_once(' ').unwrap_or((rest, ""));
    match handle.propose_async(command.as_bytes().to_vec()) {
        Ok(pending) => waiting.lock().push(Waiter {
            tag: tag.to_string(),
            pending,
            deadline: Instant::now() + timeout,
            timeout,
        }),
        Err(e) => say(out, &propose_failed(tag, &e)),
    }
}

/// `timeout <ms>`: the default timeout of the proposals that follow.
fn set_timeout(rest: &str, out: &Out, timeout: &mut Duration) {
    let line = match rest.trim().parse::<u64>() {
        Ok(ms) if ms > 0 => {
            *timeout = Duration::from_millis(ms);
            obj(&[
                ("reply", quote("timeout")),
                ("ok", "true".into()),
                ("timeout_ms", ms.to_string()),
            ])
        }
        _ => obj(&[
            ("reply", quote("timeout")),
            ("ok", "false".into()),
            (
                "error",
                quote(&format!(
                    "timeout takes a number of milliseconds above 0, got {:?}; e.g. `timeout 5000`",
                    rest.trim()
                )),
            ),
        ]),
    };
    say(out, &line);
}

/// `dump`: every key with its value (and the keys alone, as before), after
/// a linearizable read point, so it includes every write acknowledged
/// anywhere before the command.
fn dump(handle: &Handle, kv: &SharedKv, out: &Out) {
    let line = match handle.read(Duration::from_secs(2)) {
        Ok(applied) => {
            let a = kv.0.lock();
            let entries = serde_json::to_string(&*a.kv.map).unwrap_or_default();
            let keys: Vec<String> = a.kv.map.keys().map(|k| quote(k)).collect();
            obj(&[
                ("reply", quote("dump")),
                ("ok", "true".into()),
                ("applied", applied.to_string()),
                ("entries", entries),
                ("keys", format!("[{}]", keys.join(","))),
            ])
        }
        Err(e) => obj(&[
            ("reply", quote("dump")),
            ("ok", "false".into()),
            ("error", quote(&e.to_string())),
        ]),
    };
    say(out, &line);
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
fn answer(
    line: &str,
    handle: &Arc<Handle>,
    kv: &SharedKv,
    out: &Out,
    waiting: &Waiting,
    timeout: &mut Duration,
) {
    let (word, rest) = line.trim().split_once(' ').unwrap_or((line.trim(), ""));
    match word {
        "propose" => propose(rest, handle, out, waiting, *timeout),
        "timeout" => set_timeout(rest, out, timeout),
        "status" => {
            let refused = handle.counters().rejected();
            say(out, &status_json(&handle.status(), refused));
        }
        "dump" => dump(handle, kv, out),
        "get" | "audit" => read_then(word, rest, handle, kv, out),
        "hand-back" => {
            let r = handle.hand_back().map_err(|e| e.to_string());
            say(
                out,
                &obj(&[
                    ("reply", quote("hand-back")),
                    ("ok", r.is_ok().to_string()),
                    ("error", quote(&r.err().unwrap_or_default())),
                ]),
            );
        }
        "" => {}
        other => say(
            out,
            &obj(&[
                ("reply", quote("error")),
                (
                    "error",
                    quote(&format!(
                        "unknown command {other:?}; commands: propose, timeout, status, dump, \
                         get, audit, hand-back"
                    )),
                ),
            ]),
        ),
    }
}
